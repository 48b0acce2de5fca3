/**
 * Poison events, parking, the operator's retry and skip, and transaction conflicts, proven by running the exact
 * definition ProjectionStateMachine synthesizes (aws-local-stepfunctions, DynamoDB tasks against DynamoDB Local,
 * error-bus entries captured) and the parked-events function's core against the same tables, with the state
 * machine itself as its replay engine.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient, GetItemCommand, TransactWriteItemsCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DomainEventBus, ErrorBus, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { handleParkedEvents, parseParkedEventsRequest, type ParkedEventsDeps } from '../../src/projections/parked-events.runtime';
import { definitionFrom, runLocal, validateAsl } from '../support/asl';
import { createTableInputFromCfn, localClient } from '../support/tables';

let client: DynamoDBClient;
let template: Template;
let definition: Record<string, any>;
const tables: Record<string, string> = {};
const errors: Array<Record<string, any>> = [];

function synth() {
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' } });
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'scope' } });
  const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
  new ProjectionStateMachine(stack, 'Projections', {
    domain: 'shop',
    eventBus: bus.eventBus,
    errorBus,
    projections: [
      {
        eventType: 'OrderPlaced',
        readModel: orders,
        action: ProjectionAction.putItem({ key, attributes: { amount: ProjectionValue.fromData('amount', ValueType.NUMBER), customer: ProjectionValue.fromMetadata('userId') } }),
      },
      {
        eventType: 'OrderPlaced',
        readModel: totals,
        action: ProjectionAction.updateItem({ key: { scope: ProjectionValue.string('all') }, add: { count: ProjectionValue.number(1), sum: ProjectionValue.fromData('amount', ValueType.NUMBER) } }),
      },
      { eventType: 'OrderNoted', readModel: orders, action: ProjectionAction.updateItem({ key, append: { notes: ProjectionValue.fromData('note') }, set: { version: ProjectionValue.fromEnvelope('eventSequence') } }) },
      { eventType: 'OrderTagged', readModel: orders, action: ProjectionAction.updateItem({ key, set: { tag: ProjectionValue.fromData('constructor') } }) },
    ],
  });
  return Template.fromStack(stack);
}

beforeAll(async () => {
  client = localClient();
  template = synth();
  for (const [logicalId, resource] of Object.entries(template.findResources('AWS::DynamoDB::Table'))) {
    tables[logicalId] = `${logicalId}-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, tables[logicalId])));
  }
  const refs: Record<string, string> = { ...tables };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  definition = definitionFrom(machine as never, refs);
});
afterAll(() => client.destroy());
beforeEach(() => (errors.length = 0));

const table = (prefix: string) => tables[Object.keys(tables).find((k) => k.startsWith(prefix))!];

let seq = 0;
function event(type: string, aggregateId: string, eventSequence: number, data: Record<string, unknown>, metadata: Record<string, unknown> = { userId: 'user-1' }) {
  return {
    'detail-type': type,
    'source': 'skafu.shop',
    'detail': {
      eventId: `ev-${++seq}`,
      eventType: type,
      eventVersion: 1,
      aggregateId,
      aggregateType: 'Order',
      eventSequence,
      timestamp: '2026-03-01T10:00:00.000Z',
      timestampEpochSeconds: 1772359200,
      correlationId: `corr-${aggregateId}`,
      causationId: `corr-${aggregateId}`,
      source: 'skafu.shop',
      data,
      metadata,
    },
  };
}

type Override = NonNullable<Parameters<typeof runLocal>[2]['taskOverride']>;
const run = (input: unknown, options: { waitMs?: number; taskOverride?: Override } = {}) =>
  runLocal(definition, input, {
    client,
    waitMs: options.waitMs ?? 1,
    onPutEvents: (entries) => errors.push(...entries),
    taskOverride: options.taskOverride,
  });
/** The execution's outcome: 'succeeded' or the ASL error it failed with. */
const outcome = (input: unknown, options?: { waitMs?: number; taskOverride?: Override }) =>
  run(input, options).then(
    () => 'succeeded',
    (e: { cause?: { name?: string } }) => String(e.cause?.name),
  );

async function item(prefix: string, key: Record<string, string | number>) {
  const out = await client.send(
    new GetItemCommand({ TableName: table(prefix), Key: Object.fromEntries(Object.entries(key).map(([k, v]) => [k, typeof v === 'number' ? { N: String(v) } : { S: v }])), ConsistentRead: true }),
  );
  return out.Item ? unmarshall(out.Item) : undefined;
}

/** The states of one read model's branch, by their names without the read model suffix. */
function branch(readModel: string): Record<string, any> {
  const b = definition.States.ApplyPerReadModel.Branches.find((x: { StartAt: string }) => x.StartAt.endsWith(`(${readModel})`));
  return Object.fromEntries(Object.entries(b.States as Record<string, any>).map(([k, v]) => [k.replace(` (${readModel})`, ''), v]));
}
const key = (readModel: string, id: string) => `${readModel}#${id}`;

function operator(): ParkedEventsDeps {
  return {
    client,
    readModels: ['Orders', 'Totals'],
    parkingTable: table('ProjectionsParkedEvents'),
    checkpointTable: table('ProjectionsCheckpoints'),
    domain: 'shop',
    replay: async (input) => {
      const result = await outcome(input);
      return { succeeded: result === 'succeeded', error: result === 'succeeded' ? undefined : result };
    },
  };
}

test('the definition is valid ASL and checks every field a projection reads before writing', () => {
  validateAsl(definition);
  expect(branch('Orders')['Check OrderPlaced'].Choices[0].Or).toEqual(
    expect.arrayContaining([{ Not: { Variable: '$.detail.data.amount', IsPresent: true } }, { Not: { Variable: '$.detail.metadata.userId', IsPresent: true } }]),
  );
  expect(branch('Orders')['Check types OrderPlaced'].Choices[0].Or).toEqual(expect.arrayContaining([{ Not: { Variable: '$.detail.data.amount', IsNumeric: true } }]));
  // Each read model checks only what its own projections read.
  expect(branch('Totals')['Check OrderPlaced'].Choices[0]).toEqual({ Not: { Variable: '$.detail.data.amount', IsPresent: true }, Next: 'Invalid OrderPlaced (Totals)' });
});

test('a poison event in the middle is parked and reported once; later events park behind it at once; skip advances past it, recorded, and the rest flow', async () => {
  const id = `o-${randomUUID()}`;
  const other = `o-${randomUUID()}`;
  expect(await outcome(event('OrderPlaced', id, 1, { amount: 10 }))).toBe('succeeded');
  expect(await outcome(event('OrderNoted', id, 2, { note: 'first' }))).toBe('succeeded');
  const poison = event('OrderNoted', id, 3, { note: 42 }); // a number where the projection reads a string
  expect(await outcome(poison)).toBe('ProjectionEventParked');
  // Behind it: parked without waiting for the gap to fill (the gap path would record reason 'Gap'), not reported.
  expect(await outcome(event('OrderNoted', id, 4, { note: 'fourth' }), { waitMs: 5000 })).toBe('succeeded');
  expect(await outcome(event('OrderNoted', id, 5, { note: 'fifth' }), { waitMs: 5000 })).toBe('succeeded');
  // Another aggregate is not affected.
  expect(await outcome(event('OrderPlaced', other, 1, { amount: 1 }))).toBe('succeeded');
  // The same poison delivered again is not reported again.
  expect(await outcome(poison)).toBe('succeeded');

  expect(errors).toHaveLength(1);
  expect(errors[0].Detail).toMatchObject({
    errorType: 'ProjectionFailed',
    context: { readModel: 'Orders' },
    metadata: { parked: true, original: poison.detail, failure: { Error: 'Skafu.InvalidEvent' }, parking: { readModel: 'Orders', aggregateId: id, eventSequence: 3 } },
  });
  expect(errors[0].Detail.failure ?? errors[0].Detail.metadata.failure.Cause).toMatch(/data\.note \(STRING\)/);
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Orders', id), eventSequence: 3 })).toMatchObject({ status: 'PARKED', reason: 'InvalidEvent', readModel: 'Orders', eventAggregateId: id });
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Orders', id), eventSequence: 4 })).toMatchObject({ status: 'PARKED', reason: 'BehindParkedEvent' });
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Orders', id) })).toMatchObject({ lastEventSequence: 2, parkedSequence: 3, readModel: 'Orders' });
  // The other read model of the same aggregate is not held back by Orders' parked event.
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Totals', id) })).toMatchObject({ lastEventSequence: 5, readModel: 'Totals' });
  expect((await item('ProjectionsCheckpoints', { aggregateId: key('Totals', id) }))!.parkedSequence).toBeUndefined();
  expect(await item('Orders', { orderId: id })).toMatchObject({ notes: ['first'], version: 2 });

  const listed = await handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'list', aggregateId: id }));
  const parkedList = listed.parked as Array<{ eventSequence: number; readModel: string; aggregateId: string }>;
  expect(parkedList.map((p) => [p.readModel, p.aggregateId, p.eventSequence])).toEqual([
    ['Orders', id, 3],
    ['Orders', id, 4],
    ['Orders', id, 5],
  ]);
  // A read model this machine does not have is refused, not guessed.
  await expect(handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'list', aggregateId: id, readModel: 'Invoices' }))).rejects.toThrow(/not one of this state machine's read models/);
  await expect(handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'skip', aggregateId: id, readModel: 'Totals', eventSequence: 3, reason: 'x', requestedBy: 'alice' }))).rejects.toThrow(
    /is not parked for read model Totals/,
  );

  // Skipping 4 first is refused: 3 comes before it.
  await expect(handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'skip', aggregateId: id, eventSequence: 4, reason: 'x', requestedBy: 'alice' }))).rejects.toThrow(
    /checkpoint is not at 3/,
  );
  const skipped = await handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'skip', aggregateId: id, eventSequence: 3, reason: 'a numeric note from the 2025 import', requestedBy: 'alice' }));
  expect(skipped).toMatchObject({ skipped: { readModel: 'Orders', aggregateId: id, eventSequence: 3 }, retried: { readModel: 'Orders', aggregateId: id, applied: [4, 5], released: true } });
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Orders', id), eventSequence: 3 })).toMatchObject({ status: 'SKIPPED', skippedBy: 'alice', skipReason: 'a numeric note from the 2025 import' });
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Orders', id), eventSequence: 4 })).toBeUndefined();
  const checkpoint = await item('ProjectionsCheckpoints', { aggregateId: key('Orders', id) });
  expect(checkpoint).toMatchObject({ lastEventSequence: 5, skippedEvents: 1 });
  expect(checkpoint!.parkedSequence).toBeUndefined();
  expect(await item('Orders', { orderId: id })).toMatchObject({ notes: ['first', 'fourth', 'fifth'], version: 5 });
  // Live events flow again.
  expect(await outcome(event('OrderNoted', id, 6, { note: 'sixth' }))).toBe('succeeded');
  expect(await item('Orders', { orderId: id })).toMatchObject({ notes: ['first', 'fourth', 'fifth', 'sixth'], version: 6 });
  expect(errors).toHaveLength(1);
});

test('an event DynamoDB refuses is parked; after the fix, retry replays it and the events behind it, in order', async () => {
  const id = `o-${randomUUID()}`;
  const name = table('Orders');
  expect(await outcome(event('OrderPlaced', id, 1, { amount: 3 }))).toBe('succeeded');
  await client.send(new DeleteTableCommand({ TableName: name }));
  try {
    expect(await outcome(event('OrderNoted', id, 2, { note: 'a' }))).toBe('ProjectionEventParked');
    // While the table is missing, every write fails on its own (before any checkpoint condition): parked too.
    expect(await outcome(event('OrderNoted', id, 3, { note: 'b' }))).toBe('ProjectionEventParked');
    // Retrying before the fix: parked again with the new error, the later event stays parked.
    const early = await handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'retry', aggregateId: id, requestedBy: 'bob' }));
    expect(early).toMatchObject({
      stillParked: 1,
      retried: [
        { readModel: 'Orders', aggregateId: id, applied: [], failed: { eventSequence: 2 }, released: false },
        { readModel: 'Totals', aggregateId: id, applied: [], released: true },
      ],
    });
  } finally {
    const [, resource] = Object.entries(template.findResources('AWS::DynamoDB::Table')).find(([logicalId]) => logicalId.startsWith('Orders'))!;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, name)));
  }
  // The fix is in (the table is back; the item lost with it is not the point here): retry every aggregate.
  const result = await handleParkedEvents(operator(), parseParkedEventsRequest({ action: 'retry', requestedBy: 'bob' }));
  expect(result.retried).toEqual(expect.arrayContaining([expect.objectContaining({ readModel: 'Orders', aggregateId: id, applied: [2, 3], released: true })]));
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Orders', id) })).toMatchObject({ lastEventSequence: 3 });
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Totals', id) })).toMatchObject({ lastEventSequence: 3 });
  expect(await item('Orders', { orderId: id })).toMatchObject({ notes: ['a', 'b'], version: 3 });
  // 2 and 3 parked, then the early retry of 2 failed again: each reported once.
  expect(errors.map((e) => [e.Detail.metadata.original.eventSequence, e.Detail.metadata.failure.Error])).toEqual([
    [2, 'DynamoDb.ResourceNotFoundException'],
    [3, 'DynamoDb.ResourceNotFoundException'],
    [2, 'DynamoDb.ResourceNotFoundException'],
  ]);
  expect(await outcome(event('OrderNoted', id, 4, { note: 'c' }))).toBe('succeeded');
});

test('a missing metadata path, a claim-checked event without its data, and a prototype key are parked, never a States.Runtime failure', async () => {
  const a = `o-${randomUUID()}`;
  expect(await outcome(event('OrderPlaced', a, 1, { amount: 5 }, {}))).toBe('ProjectionEventParked');
  const b = `o-${randomUUID()}`;
  expect(await outcome(event('OrderPlaced', b, 1, { claimCheck: { bucket: 'b', key: 'k' } }))).toBe('ProjectionEventParked');
  const c = `o-${randomUUID()}`;
  expect(await outcome(event('OrderPlaced', c, 1, { amount: 1 }))).toBe('succeeded');
  // `data.constructor` is absent: it must not resolve to Object.prototype.constructor.
  expect(await outcome(event('OrderTagged', c, 2, JSON.parse('{"__proto__": {"constructor": "x"}}')))).toBe('ProjectionEventParked');
  expect(await outcome(event('OrderTagged', c, 3, { constructor: 'gold' }))).toBe('succeeded'); // parked behind 2
  // a: only Orders reads metadata.userId (Totals applied it); b: both read models read data.amount (one report
  // each, per read model); c: only Orders reads data.constructor.
  expect(errors.map((e) => [e.Detail.metadata.original.aggregateId, e.Detail.context.readModel, e.Detail.metadata.failure.Error])).toEqual(
    expect.arrayContaining([
      [a, 'Orders', 'Skafu.InvalidEvent'],
      [b, 'Orders', 'Skafu.InvalidEvent'],
      [b, 'Totals', 'Skafu.InvalidEvent'],
      [c, 'Orders', 'Skafu.InvalidEvent'],
    ]),
  );
  expect(errors).toHaveLength(4);
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Totals', a) })).toMatchObject({ lastEventSequence: 1 });
  expect(await item('Orders', { orderId: a })).toBeUndefined();
  expect(await item('Orders', { orderId: c })).toEqual({ orderId: c, amount: 1, customer: 'user-1' });
});

test('operator requests are checked: unknown actions, prototype keys, missing reasons', () => {
  expect(() => parseParkedEventsRequest({ action: 'toString' })).toThrow(/"action" must be one of/);
  expect(() => parseParkedEventsRequest(JSON.parse('{"__proto__": {"action": "retry"}, "requestedBy": "x"}'))).toThrow(/"action"/);
  expect(() => parseParkedEventsRequest({ action: 'skip', aggregateId: 'a', eventSequence: 1, requestedBy: 'x' })).toThrow(/"reason" is required/);
  expect(() => parseParkedEventsRequest({ action: 'skip', aggregateId: 'a', eventSequence: 0, reason: 'r', requestedBy: 'x' })).toThrow(/eventSequence/);
  expect(() => parseParkedEventsRequest({ action: 'retry' })).toThrow(/"requestedBy" is required/);
  expect(() => parseParkedEventsRequest([])).toThrow(/JSON object/);
});

/**
 * DynamoDB cancels a transaction with reason TransactionConflict when another transaction is in progress on one
 * of its items, and refuses a standard write (PutItem, UpdateItem, DeleteItem) of such an item with
 * TransactionConflictException ("Transaction conflict handling in DynamoDB", DynamoDB Developer Guide;
 * TransactWriteItems, TransactionCanceledException, DynamoDB API Reference). DynamoDB Local serializes
 * transactions and never raises either, so this model does: it runs the real request against DynamoDB Local, and
 * refuses one that overlaps a transaction in flight on the same item, with the error the way Step Functions names
 * it (`DynamoDb.` for the SDK integration's transaction, `DynamoDB.` for the optimized integration's UpdateItem of
 * a checkpoint-only apply).
 */
function conflictModel(windowMs = 5, options: { releaseOnRefusal?: boolean } = {}) {
  // A transaction holds its items for windowMs (on AWS a transaction lasts tens of milliseconds while the
  // definition's conflict waits last seconds; DynamoDB Local's own latency under test load is kept out of the
  // window so that this ratio stays realistic). A transaction that finds one of its items held is cancelled.
  // With releaseOnRefusal, a hold ends when it has refused one write (whatever the time: a test that needs a
  // refusal does not depend on the machine's speed).
  const heldUntil = new Map<string, number>();
  const stats = { conflicts: 0, applied: 0, standardConflicts: 0 };
  const override: Override = async (state, input) => {
    if (!state.startsWith('Apply ')) return undefined;
    type Op = { TableName: string; Key?: unknown; Item?: unknown };
    const now = Date.now();
    if (!input.TransactItems) {
      // A checkpoint-only apply: one standard UpdateItem, refused while a transaction holds its item.
      const op = input as Op;
      const heldKey = `${op.TableName}|${JSON.stringify(op.Key)}`;
      if ((heldUntil.get(heldKey) ?? 0) > now) {
        stats.conflicts++;
        stats.standardConflicts++;
        if (options.releaseOnRefusal) heldUntil.delete(heldKey);
        throw Object.assign(new Error('Transaction is ongoing for the item'), { name: 'DynamoDB.TransactionConflictException' });
      }
      return send(new UpdateItemCommand(input), 'DynamoDB');
    }
    const items = (input.TransactItems as Array<Record<string, Op>>).map((i) => Object.values(i)[0]);
    const keys = items.map((op) => `${op.TableName}|${JSON.stringify(op.Key ?? op.Item)}`);
    const held = keys.map((k) => (heldUntil.get(k) ?? 0) > now);
    if (held.some(Boolean)) {
      stats.conflicts++;
      if (options.releaseOnRefusal) keys.forEach((k, i) => held[i] && heldUntil.delete(k));
      const reasons = held.map((h) => (h ? 'TransactionConflict' : 'None')).join(', ');
      throw Object.assign(new Error(`Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons}]`), { name: 'DynamoDb.TransactionCanceledException' });
    }
    keys.forEach((k) => heldUntil.set(k, now + windowMs));
    return send(new TransactWriteItemsCommand(input), 'DynamoDb');
  };
  /** Sends the apply to DynamoDB Local; a refusal is named as Step Functions names it (`<prefix>.<exception>`). */
  const send = async (command: UpdateItemCommand | TransactWriteItemsCommand, prefix: 'DynamoDB' | 'DynamoDb') => {
    try {
      await client.send(command as never);
      stats.applied++;
      return {};
    } catch (err) {
      throw Object.assign(new Error((err as Error).message), { name: `${prefix}.${(err as Error).name}` });
    }
  };
  return { override, stats };
}

test('a shared counter hammered by 50 aggregates converges: conflicts are retried as conflicts, never a ProjectionGap', async () => {
  const before = (await item('Totals', { scope: 'all' })) ?? { count: 0, sum: 0 };
  const model = conflictModel();
  const ids = Array.from({ length: 50 }, () => `o-${randomUUID()}`);
  // The local runner makes every Wait last waitMs, whatever its seconds; AWS waits the random 1..n seconds the
  // definition draws (checked below). A random waitMs per execution stands in for that jitter here.
  expect(branch('Totals').NextConflictWait.Parameters['seconds.$']).toMatch(/^States\.MathRandom\(1, /);
  const results = await Promise.all(
    ids.map((id, i) => outcome(event('OrderPlaced', id, 1, { amount: i + 1 }), { waitMs: 50 + Math.floor(Math.random() * 350), taskOverride: model.override })),
  );
  expect(results.filter((r) => r !== 'succeeded')).toEqual([]);
  expect(model.stats.conflicts).toBeGreaterThan(0); // the model did produce conflicts
  expect(errors).toEqual([]);
  expect(await item('Totals', { scope: 'all' })).toMatchObject({ count: before.count + 50, sum: before.sum + (50 * 51) / 2 });
});

test("an unprojected event's checkpoint advance refused while the previous event's transaction holds the checkpoint: retried as a conflict, then applied in order", async () => {
  // Each transaction holds its items (a slow transaction, or one in flight) until a write has been refused on them;
  // the definition's conflict waits last 100 ms each here: the next event's retry goes through.
  const model = conflictModel(Infinity, { releaseOnRefusal: true });
  const id = `o-${randomUUID()}`;
  expect(await outcome(event('OrderPlaced', id, 1, { amount: 3 }), { taskOverride: model.override })).toBe('succeeded');
  expect(model.stats.conflicts).toBe(0);
  // OrderNoted: Orders applies a write and its checkpoint in one transaction; Totals only advances its checkpoint
  // (a standard UpdateItem), on the item event 1's transaction still holds.
  expect(branch('Totals')['Apply OrderNoted'].Resource).toBe('arn:aws:states:::dynamodb:updateItem');
  expect(await outcome(event('OrderNoted', id, 2, { note: 'n' }), { waitMs: 100, taskOverride: model.override })).toBe('succeeded');
  expect(model.stats.standardConflicts).toBe(1);
  expect(errors).toEqual([]);
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Totals', id) })).toMatchObject({ lastEventSequence: 2, lastEventType: 'OrderNoted' });
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Orders', id) })).toMatchObject({ lastEventSequence: 2 });
  expect(await item('Orders', { orderId: id })).toMatchObject({ notes: ['n'], version: 2 });
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Totals', id), eventSequence: 2 })).toBeUndefined();
});

test('conflicts that outlast their retries park the event as a conflict, not as a gap', async () => {
  const id = `o-${randomUUID()}`;
  // Conflicts on Orders' writes only: Totals applies the event, Orders parks it as a conflict.
  const always: Override = async (state) => {
    if (!state.startsWith('Apply ') || !state.endsWith('(Orders)')) return undefined;
    throw Object.assign(new Error('Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict, None]'), { name: 'DynamoDb.TransactionCanceledException' });
  };
  expect(await outcome(event('OrderPlaced', id, 1, { amount: 2 }), { taskOverride: always })).toBe('ProjectionEventParked');
  expect(errors).toHaveLength(1);
  expect(errors[0].Detail).toMatchObject({ errorType: 'ProjectionConflict', context: { readModel: 'Orders' }, metadata: { conflicts: 10, retryCount: 0 } });
  expect(await item('ProjectionsParkedEvents', { aggregateId: key('Orders', id), eventSequence: 1 })).toMatchObject({ reason: 'TransactionConflict' });
  expect(await item('ProjectionsCheckpoints', { aggregateId: key('Totals', id) })).toMatchObject({ lastEventSequence: 1 });
});
