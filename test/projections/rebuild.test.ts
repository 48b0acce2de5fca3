/**
 * Rebuilding a read model from the event store into a fresh table, compared item by item with the same read
 * model built live by the synthesized projection definition (aws-local-stepfunctions against DynamoDB Local).
 * The store holds a few thousand events over two hundred aggregates, two of them with more than 100 events;
 * the rebuild is killed half-way and resumed, and events appended during the rebuild are caught up.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient, GetItemCommand, ScanCommand, TransactWriteItemsCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DomainEventBus, ErrorBus, EventStoreTable, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { evaluateTemplate } from '../../src/projections/asl-template.runtime';
import { driftReport } from '../../src/projections/drift.runtime';
import { runRebuildStep, writesFor, type RebuildConfig } from '../../src/projections/rebuild.runtime';
import { EventStore } from '../../src/runtime';
import { definitionFrom, runLocal } from '../support/asl';
import { createTableInputFromCfn, localClient } from '../support/tables';

jest.setTimeout(600_000); // the longest test took 238 s on a loaded 2-core machine

let client: DynamoDBClient;
let template: Template;
let definition: Record<string, any>;
let store: EventStore;
const tables: Record<string, string> = {};
const resources: Record<string, any> = {};

function synth() {
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' } });
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'customer' } });
  const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
  new ProjectionStateMachine(stack, 'Projections', {
    domain: 'shop',
    eventBus: bus.eventBus,
    errorBus,
    eventTypes: ['OrderPaid'],
    projections: [
      {
        eventType: 'OrderPlaced',
        readModel: orders,
        action: ProjectionAction.putItem({
          key,
          attributes: { customer: ProjectionValue.fromData('customer'), amount: ProjectionValue.fromData('amount', ValueType.NUMBER), lines: ProjectionValue.fromData('lines', ValueType.JSON) },
        }),
      },
      {
        eventType: 'OrderPlaced',
        readModel: totals,
        action: ProjectionAction.updateItem({
          key: { customer: ProjectionValue.fromData('customer') },
          add: { orders: ProjectionValue.number(1), amount: ProjectionValue.fromData('amount', ValueType.NUMBER) },
        }),
      },
      {
        eventType: 'OrderNoted',
        readModel: orders,
        action: ProjectionAction.updateItem({ key, append: { notes: ProjectionValue.fromData('note') }, set: { version: ProjectionValue.fromEnvelope('eventSequence') }, add: { noteCount: ProjectionValue.number(1) } }),
      },
    ],
  });
  return Template.fromStack(stack);
}

const table = (prefix: string) => tables[Object.keys(tables).find((k) => k.startsWith(prefix))!];

async function freshTable(prefix: string): Promise<string> {
  const [, resource] = Object.entries(resources).find(([id]) => id.startsWith(prefix))!;
  const name = `${prefix}-v-${randomUUID().slice(0, 8)}`;
  await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, name)));
  return name;
}

async function scanAll(name: string): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: name, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...(page.Items ?? []).map((i) => unmarshall(i)));
    start = page.LastEvaluatedKey;
  } while (start);
  const keyOf = (i: Record<string, unknown>) => String(i.orderId ?? i.customer);
  return items.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
}

/** Appends events to the store and returns them as the bus would carry them. */
const published: Array<{ aggregateId: string; detail: Record<string, unknown> }> = [];
async function append(aggregateId: string, events: Array<{ eventType: string; data: Record<string, unknown> }>, expectedVersion: number | 'no-stream') {
  const result = await store.append(aggregateId, events as never, { expectedVersion: expectedVersion as never, aggregateType: 'Order', metadata: { userId: 'u' } });
  for (const e of (result as unknown as { events: Array<Record<string, any>> }).events) {
    published.push({ aggregateId, detail: { ...e, timestampEpochSeconds: Math.floor(Date.parse(e.timestamp) / 1000) } });
  }
}

/** Builds the live read models: every published event through the synthesized definition, in order per aggregate. */
async function projectLive(events: Array<{ aggregateId: string; detail: Record<string, any> }>, concurrency = 24): Promise<number> {
  const byAggregate = new Map<string, Array<Record<string, any>>>();
  for (const e of events) byAggregate.set(e.aggregateId, [...(byAggregate.get(e.aggregateId) ?? []), e.detail]);
  const queues = [...byAggregate.values()];
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < queues.length) {
        const queue = queues[next++];
        for (const detail of queue) {
          await runLocal(definition, { 'detail-type': detail.eventType, 'source': 'skafu.shop', detail }, { client, onPutEvents: (e) => { throw new Error(`unexpected error event ${JSON.stringify(e)}`); } });
        }
      }
    }),
  );
  return Date.now() - started;
}

const customers = Array.from({ length: 12 }, (_, i) => `customer-${i}`);
const ids: string[] = [];

beforeAll(async () => {
  client = localClient();
  template = synth();
  Object.assign(resources, template.findResources('AWS::DynamoDB::Table'));
  for (const [logicalId, resource] of Object.entries(resources)) {
    tables[logicalId] = `${logicalId}-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, tables[logicalId])));
  }
  const refs: Record<string, string> = { ...tables };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  definition = definitionFrom(machine as never, refs);
  store = new EventStore({ tableName: table('Store'), domain: 'shop', client });

  // 200 aggregates: two with 130 events, the others with 4 to 12; every 7th event an unprojected OrderPaid.
  for (let a = 0; a < 200; a++) ids.push(`order-${String(a).padStart(3, '0')}-${randomUUID().slice(0, 6)}`);
  await Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      for (let a = worker; a < ids.length; a += 8) {
        const id = ids[a];
        const total = a < 2 ? 130 : 4 + (a % 9);
        const events = Array.from({ length: total }, (_e, i) =>
          i === 0
            ? { eventType: 'OrderPlaced', data: { customer: customers[a % customers.length], amount: (a % 50) + 0.5, lines: [{ sku: `s${a}`, qty: 1 + (a % 3) }] } }
            : i % 7 === 0
              ? { eventType: 'OrderPaid', data: { at: i } }
              : { eventType: 'OrderNoted', data: { note: `note ${i} of ${a}` } },
        );
        for (let i = 0; i < events.length; i += 90) await append(id, events.slice(i, i + 90), i === 0 ? 'no-stream' : i);
      }
    }),
  );
});
afterAll(() => client.destroy());

function config(readModel: 'Orders' | 'Totals', targetTable: string, rebuildId: string, overrides: Partial<RebuildConfig> = {}): RebuildConfig {
  return {
    client,
    eventStoreTable: table('Store'),
    domain: 'shop',
    aggregateTypes: ['Order'],
    definition: definition as never,
    readModelTable: table(readModel),
    targetTable,
    stateTable: table('ProjectionsRebuildState'),
    rebuildId,
    pageSize: 25,
    concurrency: 6,
    ...overrides,
  };
}

test('the template evaluator reads own properties only, like Step Functions', () => {
  const input = JSON.parse('{"detail": {"data": {"__proto__": {"x": 1}, "n": 2.5}}}');
  expect(evaluateTemplate({ 'a.$': "States.Format('{}', $.detail.data.n)", 'b.$': 'States.JsonToString($.detail.data)' }, input)).toEqual({ a: '2.5', b: '{"__proto__":{"x":1},"n":2.5}' });
  expect(() => evaluateTemplate({ 'c.$': '$.detail.data.constructor' }, input)).toThrow(/does not exist/);
  expect(() => evaluateTemplate({ 'c.$': '$.detail.data.toString' }, { detail: { data: {} } })).toThrow(/does not exist/);
});

test('a rebuild from the store equals, item by item, the read models built live; killed half-way, it resumes; events appended meanwhile are caught up', async () => {
  const liveMs = await projectLive(published);
  const liveEvents = published.length;
  expect(liveEvents).toBeGreaterThan(1800);
  console.log(`live: ${liveEvents} events in ${liveMs} ms`);

  const orders = await freshTable('Orders');
  const rebuildId = `orders-${randomUUID().slice(0, 8)}`;
  // A step killed half-way: the 600th write fails as a crash would.
  let writes = 0;
  const crashing = {
    send: (command: unknown) => {
      if (command instanceof TransactWriteItemsCommand && ++writes === 600) return Promise.reject(Object.assign(new Error('the Lambda was killed'), { name: 'Killed' }));
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;
  await expect(runRebuildStep(config('Orders', orders, rebuildId, { client: crashing }), Date.now() + 120_000)).rejects.toThrow(/killed/);
  // The pages finished before the crash are recorded: the resumed rebuild starts after them, not over.
  const saved = await client.send(new GetItemCommand({ TableName: table('ProjectionsRebuildState'), Key: { rebuildId: { S: rebuildId }, key: { S: '#progress' } }, ConsistentRead: true }));
  expect(unmarshall(saved.Item!)).toMatchObject({ status: 'RUNNING', pass: 1, cursor: expect.any(String) });
  expect(Number(saved.Item!.aggregatesVisited.N)).toBeGreaterThanOrEqual(25);

  // Events arrive while the rebuild is under way (live projection and store both get them).
  const late = published.length;
  await append(ids[5], [{ eventType: 'OrderNoted', data: { note: 'late' } }], 4 + (5 % 9));
  await append(`order-late-${randomUUID().slice(0, 6)}`, [{ eventType: 'OrderPlaced', data: { customer: 'customer-1', amount: 7, lines: [] } }], 'no-stream');
  await projectLive(published.slice(late));

  // Resumed: bounded steps until it has caught up.
  const started = Date.now();
  let progress = await runRebuildStep(config('Orders', orders, rebuildId), Date.now() + 1500);
  let steps = 1;
  while (progress.status === 'RUNNING') {
    progress = await runRebuildStep(config('Orders', orders, rebuildId), Date.now() + 1500);
    steps++;
  }
  const rebuildMs = Date.now() - started;
  expect(progress).toMatchObject({ status: 'CAUGHT_UP', failures: [] });
  expect(progress.pass).toBeGreaterThanOrEqual(2); // the pass that applied nothing proves it caught up
  expect(steps).toBeGreaterThan(1);
  expect(await scanAll(orders)).toEqual(await scanAll(table('Orders')));

  // The other read model, rebuilt in one go: the shared counters are counted exactly once.
  const totals = await freshTable('Totals');
  const done = await runRebuildStep(config('Totals', totals, `totals-${randomUUID().slice(0, 8)}`), Date.now() + 120_000);
  expect(done).toMatchObject({ status: 'CAUGHT_UP', failures: [] });
  const rebuiltTotals = await scanAll(totals);
  expect(rebuiltTotals).toEqual(await scanAll(table('Totals')));
  expect(rebuiltTotals.reduce((n, t) => n + Number(t.orders), 0)).toBe(201);
  // Figures for the record (the benchmark measures them properly).
  console.log(`live: ${liveEvents} events in ${liveMs} ms; rebuild of Orders resumed in ${steps} steps, ${rebuildMs} ms, ${progress.eventsApplied} events, ${progress.writeRequests} writes`);
});

test('the definition yields exactly the read model\'s own writes, aimed at the target table', () => {
  const writes = writesFor(definition as never, table('Totals'));
  expect([...writes.keys()].sort()).toEqual(['OrderNoted', 'OrderPaid', 'OrderPlaced']);
  expect(writes.get('OrderPlaced')).toHaveLength(1);
  expect(writes.get('OrderNoted')).toEqual([]);
});

/** The deployed definition aimed at fresh Totals and checkpoint tables, as a deployment of a new read model would be. */
function definitionAimedAt(totals: string, checkpoints: string) {
  const idOf = (prefix: string) => Object.keys(tables).find((k) => k.startsWith(prefix))!;
  const refs: Record<string, string> = { ...tables, [idOf('Totals')]: totals, [idOf('ProjectionsCheckpoints')]: checkpoints };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  return definitionFrom(machine as never, refs);
}

test('a backfill of Totals, which projects neither OrderNoted nor OrderPaid (checkpoint-only applies live), gives the checkpoints and the read model the live projection gave', async () => {
  // Every published event was projected live (the first test). The same read model backfilled into a fresh table
  // with fresh checkpoints: the definition aimed at them, as a deployment of a new read model would be.
  const totals = await freshTable('Totals');
  const checkpoints = await freshTable('ProjectionsCheckpoints');
  const aimed = definitionAimedAt(totals, checkpoints);
  const totalsBranch = aimed.States.ApplyPerReadModel.Branches.find((b: { StartAt: string }) => b.StartAt.endsWith('(Totals)')).States;
  expect(totalsBranch['Apply OrderNoted (Totals)'].Resource).toBe('arn:aws:states:::dynamodb:updateItem');
  expect(totalsBranch['Apply OrderPaid (Totals)'].Resource).toBe('arn:aws:states:::dynamodb:updateItem');
  const backfill = { ...config('Totals', totals, `backfill-${randomUUID().slice(0, 8)}`), definition: aimed as never, readModelTable: totals, backfill: { checkpointTable: checkpoints, readModel: 'Totals' } };
  let progress = await runRebuildStep(backfill, Date.now() + 120_000);
  while (progress.status === 'RUNNING') progress = await runRebuildStep(backfill, Date.now() + 120_000);
  expect(progress).toMatchObject({ status: 'CAUGHT_UP', failures: [], handedOver: true });
  expect(await scanAll(totals)).toEqual(await scanAll(table('Totals')));
  // Every aggregate's Totals checkpoint is where the live projection's is (its last event, projected or not).
  const sequences = async (name: string) => {
    const out = new Map<string, number>();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await client.send(new ScanCommand({ TableName: name, ExclusiveStartKey: start, ConsistentRead: true }));
      for (const i of page.Items ?? []) if (i.aggregateId.S!.startsWith('Totals#') && i.lastEventSequence) out.set(i.aggregateId.S!, Number(i.lastEventSequence.N));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  };
  const live = await sequences(table('ProjectionsCheckpoints'));
  expect(live.size).toBeGreaterThanOrEqual(201);
  expect(await sequences(checkpoints)).toEqual(live);
  // Every seeded aggregate's events after the first (OrderNoted, OrderPaid) are ones Totals does not project: its
  // checkpoint reached the stream's last event by checkpoint-only advances live, by the rebuild's own advance here.
  for (const a of [0, 2, 10, 100]) expect(live.get(`Totals#${ids[a]}`)).toBe(a < 2 ? 130 : 4 + (a % 9));
});

test("the live projection advancing a checkpoint while a backfill holds its last, unprojected events: the backfill's refused advance ends with the checkpoint at the last event, no failure", async () => {
  // OrderPlaced (Totals projects it), then OrderNoted and OrderPaid (checkpoint-only for Totals). The backfill applies
  // 1, reads 2 and 3, and advances the checkpoint to 3 in one write conditioned on 1; just before that write, the
  // live projection applies 2 (a late delivery): the write is refused, and the aggregate is read again from 2.
  const id = `order-race-${randomUUID().slice(0, 6)}`;
  await append(id, [{ eventType: 'OrderPlaced', data: { customer: 'customer-1', amount: 5, lines: [] } }, { eventType: 'OrderNoted', data: { note: 'n' } }, { eventType: 'OrderPaid', data: {} }], 'no-stream');
  const totals = await freshTable('Totals');
  const checkpoints = await freshTable('ProjectionsCheckpoints');
  const checkpointKey = { aggregateId: { S: `Totals#${id}` } };
  let raced = 0;
  const racing = {
    send: async (command: any) => {
      const items = command instanceof TransactWriteItemsCommand ? command.input.TransactItems ?? [] : [];
      if (raced === 0 && items.length === 1 && items[0].Update?.Key?.aggregateId?.S === `Totals#${id}`) {
        raced++;
        await client.send(new UpdateItemCommand({ TableName: checkpoints, Key: checkpointKey, UpdateExpression: 'SET lastEventSequence = :two', ConditionExpression: 'lastEventSequence = :one', ExpressionAttributeValues: { ':one': { N: '1' }, ':two': { N: '2' } } }));
      }
      return client.send(command);
    },
  } as unknown as DynamoDBClient;
  const backfill = { ...config('Totals', totals, `backfill-${randomUUID().slice(0, 8)}`), client: racing, definition: definitionAimedAt(totals, checkpoints) as never, readModelTable: totals, backfill: { checkpointTable: checkpoints, readModel: 'Totals' } };
  // Not shown here: a race in the backfill's LAST pass (the one that applies nothing else), where no later pass
  // would read the aggregate again; this run's later passes would also repair a checkpoint left at 2.
  let progress = await runRebuildStep(backfill, Date.now() + 120_000);
  while (progress.status === 'RUNNING') progress = await runRebuildStep(backfill, Date.now() + 120_000);
  expect(raced).toBe(1);
  expect(progress).toMatchObject({ status: 'CAUGHT_UP', failures: [] });
  const checkpoint = await client.send(new GetItemCommand({ TableName: checkpoints, Key: checkpointKey, ConsistentRead: true }));
  expect(checkpoint.Item?.lastEventSequence).toEqual({ N: '3' });
});

test('an event the projection cannot apply stops its aggregate, is recorded, and the rebuild says so', async () => {
  const id = `order-bad-${randomUUID().slice(0, 6)}`;
  await append(id, [{ eventType: 'OrderPlaced', data: { customer: 'customer-2', amount: 'lots', lines: [] } }, { eventType: 'OrderNoted', data: { note: 'after' } }], 'no-stream');
  const target = await freshTable('Orders');
  const progress = await runRebuildStep(config('Orders', target, `bad-${randomUUID().slice(0, 8)}`, { pageSize: 100, concurrency: 8 }), Date.now() + 120_000);
  expect(progress.status).toBe('CAUGHT_UP_WITH_FAILURES');
  expect(progress.failures).toEqual([expect.objectContaining({ aggregateId: id, eventSequence: 1, error: expect.stringMatching(/ValidationException/) })]);
  expect((await scanAll(target)).find((i) => i.orderId === id)).toBeUndefined();
});

test('the drift report lists exactly the aggregates whose checkpoint differs from the store, with lag in events and seconds', async () => {
  // Everything published so far was projected live: an event appended and not (yet) projected is drift.
  const clean = await driftReport({ client, eventStoreTable: table('Store'), domain: 'shop', aggregateTypes: ['Order'], checkpointTable: table('ProjectionsCheckpoints'), readModels: ['Orders', 'Totals'] });
  const before = new Set(clean.list.map((d) => d.aggregateId));
  const id = ids[7];
  const version = 4 + (7 % 9);
  await append(id, [{ eventType: 'OrderNoted', data: { note: 'unprojected 1' } }, { eventType: 'OrderNoted', data: { note: 'unprojected 2' } }], version);
  const appendedAt = Date.now();
  const report = await driftReport({
    client,
    eventStoreTable: table('Store'),
    domain: 'shop',
    aggregateTypes: ['Order'],
    checkpointTable: table('ProjectionsCheckpoints'),
    readModels: ['Orders', 'Totals'],
    clock: () => new Date(appendedAt + 90_000),
  });
  const fresh = report.list.filter((d) => !before.has(d.aggregateId));
  // Per read model: both of the machine's read models trail the store by the same two events.
  const lag = { aggregateId: id, aggregateType: 'Order', storeLastSequence: version + 2, checkpointSequence: version, lagEvents: 2, lagSeconds: expect.any(Number) };
  expect(fresh.sort((x, y) => x.readModel.localeCompare(y.readModel))).toEqual([{ readModel: 'Orders', ...lag }, { readModel: 'Totals', ...lag }]);
  expect(report.readModels.Orders.maxLagEvents).toBeGreaterThanOrEqual(2);
  expect(report.readModels.Totals.drifting).toBeGreaterThanOrEqual(1);
  expect(fresh[0].lagSeconds).toBeGreaterThanOrEqual(89);
  expect(fresh[0].lagSeconds).toBeLessThan(150);
  expect(report.aggregates).toBeGreaterThanOrEqual(200);
  expect(report.maxLagEvents).toBeGreaterThanOrEqual(2);
});
