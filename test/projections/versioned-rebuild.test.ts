/**
 * Rebuilding an existing read model into a fresh versioned table (version 1 → 2 with a fixed projection), proven
 * against DynamoDB Local with the synthesized definitions (the live projection and the backfill state machine)
 * run by aws-local-stepfunctions, and the bundled query handler reading the tables:
 *
 * - the store holds about three thousand events over two hundred aggregates (three with more than 100), version 1
 *   built live; version 2 is backfilled (killed half-way, resumed with the same rebuildId through the backfill
 *   state machine and the backfill function) while live events keep arriving;
 * - until the switch the query handler answers from version 1, never from the half-built version 2; after it,
 *   from version 2, which equals, item by item, the read model built live from the first event with the fixed
 *   projection (counters: an event applied twice would show); version 1 is untouched;
 * - the pointer never moves back and a forged one never sends queries elsewhere;
 * - the version guard's decisions on the real pointer; the backfill state machine reports a failed backfill once on
 *   the error bus and does not switch.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { DomainEventBus, ErrorBus, EventStoreTable, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { createQueryHandler } from '../../src/domain/query.lambda';
import { powertools } from '../../src/internal/powertools';
import { handler as backfillStep, type BackfillStepOutput } from '../../src/projections/backfill.lambda';
import { runRebuildStep, type RebuildConfig, type RebuildProgress } from '../../src/projections/rebuild.runtime';
import { guardDecision, readActivePointer, switchActiveVersion, type GuardRequest } from '../../src/projections/versions.runtime';
import { activeReadModelTable, ErrorReporter, EventStore, type DomainSpec } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { runLocal } from '../support/asl';
import { captureCloudFormationResponses, RESPONSE_URL, versionGuardRequest } from '../support/cloudformation-response';
import { appendEvents, createTemplateTables, LiveProjection, machineDefinition, scanTable, tableOf, type Detail } from '../support/projection-harness';
import { createTableInputFromCfn, localClient } from '../support/tables';

jest.setTimeout(480_000);

/** Orders stays at version 1; Totals is version 1 (it forgets the amounts) or version 2 (fixed, and counts notes' characters). */
function synth(totalsVersion: number): Template {
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  const store = new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' } });
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'customer' }, version: totalsVersion, previousVersionRetention: Duration.days(2) });
  const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
  const customer = { customer: ProjectionValue.fromData('customer') };
  const fixed = totalsVersion >= 2;
  new ProjectionStateMachine(stack, 'Projections', {
    domain: 'shop',
    eventBus: bus.eventBus,
    errorBus,
    eventStore: store,
    aggregateTypes: ['Order'],
    projections: [
      { eventType: 'OrderPlaced', readModel: orders, action: ProjectionAction.putItem({ key, attributes: { customer: ProjectionValue.fromData('customer'), amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } }) },
      { eventType: 'OrderNoted', readModel: orders, action: ProjectionAction.updateItem({ key, set: { lastNote: ProjectionValue.fromData('note'), version: ProjectionValue.fromEnvelope('eventSequence') } }) },
      {
        eventType: 'OrderPlaced',
        readModel: totals,
        action: ProjectionAction.updateItem({
          key: customer,
          add: fixed ? { orders: ProjectionValue.number(1), amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } : { orders: ProjectionValue.number(1) },
        }),
      },
      {
        eventType: 'OrderNoted',
        readModel: totals,
        action: ProjectionAction.updateItem({ key: customer, add: fixed ? { notes: ProjectionValue.number(1), noteUnits: ProjectionValue.fromData('units', ValueType.NUMBER) } : { notes: ProjectionValue.number(1) } }),
      },
    ],
  });
  return Template.fromStack(stack);
}

let client: DynamoDBClient;
let names: Record<string, string>;
let referenceNames: Record<string, string>;
let v1: Record<string, any>;
let v2: Record<string, any>;
/** Version 2 built live from the first event, in tables of its own: the reference. */
let reference: Record<string, any>;
let backfillMachine: Record<string, any>;
let store: EventStore;
const live = () => new LiveProjection(client, 'skafu.shop');
let projection: LiveProjection;

const T = {
  store: () => tableOf(names, 'Store'),
  orders: () => tableOf(names, 'OrdersTable'),
  totalsV1: () => tableOf(names, 'TotalsTable', ['TotalsTableV2']),
  totalsV2: () => tableOf(names, 'TotalsTableV2'),
  checkpoints: () => tableOf(names, 'ProjectionsCheckpoints'),
  parked: () => tableOf(names, 'ProjectionsParkedEvents'),
  rebuildState: () => tableOf(names, 'ProjectionsRebuildState'),
};

const spec: DomainSpec = {
  domain: 'shop',
  commands: [],
  queries: [
    {
      name: 'GetTotals',
      resource: '/api/v1/shop/totals/{customer}',
      readModel: 'totals',
      kind: 'get',
      key: { customer: { kind: 'path', name: 'customer', type: 'S' } },
      filters: [],
      pageSize: 25,
      maxPageSize: 100,
      newestFirst: false,
      startKey: [{ name: 'customer', type: 'S' }],
    },
    { name: 'ListTotals', resource: '/api/v1/shop/totals', readModel: 'totals', kind: 'list', filters: [], pageSize: 100, maxPageSize: 100, newestFirst: false, startKey: [{ name: 'customer', type: 'S' }] },
  ],
};

/** The bundled query handler as EventSourcedDomain wires it for Totals at version 2 (a fresh container each call). */
function queryHandler() {
  return createQueryHandler({
    spec,
    doc: DynamoDBDocumentClient.from(client),
    tables: { totals: T.totalsV2() },
    versions: { totals: { version: 2, previousTable: T.totalsV1(), checkpointTable: T.checkpoints(), pointerKey: '#active#Totals' } },
    pointerClient: client,
    tools: powertools('test'),
    reporter: new ErrorReporter({ component: 'shop', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
  });
}
const body = (r: APIGatewayProxyResult) => {
  expect(r.statusCode).toBe(200);
  return JSON.parse(r.body) as { item?: Record<string, unknown>; items?: Array<Record<string, unknown>> };
};
const byCustomer = (items: Array<Record<string, unknown>>) => [...items].sort((a, b) => String(a.customer).localeCompare(String(b.customer)));

beforeAll(async () => {
  client = localClient();
  const t2 = synth(2);
  const created = await createTemplateTables(client, t2, { copies: ['ref'], skipCopies: (id) => id.startsWith('Store') });
  names = created.names;
  referenceNames = created.copies.ref;
  v1 = machineDefinition(synth(1), 'EXPRESS', names);
  v2 = machineDefinition(t2, 'EXPRESS', names);
  reference = machineDefinition(t2, 'EXPRESS', referenceNames);
  backfillMachine = machineDefinition(t2, 'STANDARD', names);
  store = new EventStore({ tableName: T.store(), domain: 'shop', client });
  // The backfill function's environment, as the construct sets it (the definition given, as Skafu Local does).
  Object.assign(process.env, {
    SKAFU_DOMAIN: 'shop',
    SKAFU_EVENT_STORE_TABLE: T.store(),
    SKAFU_AGGREGATE_TYPES: 'Order',
    SKAFU_CHECKPOINT_TABLE: T.checkpoints(),
    SKAFU_REBUILD_STATE_TABLE: T.rebuildState(),
    SKAFU_PROJECTION_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111111111111:stateMachine:unused',
    SKAFU_READ_MODEL_TABLES: JSON.stringify({ 'Orders': T.orders(), 'Totals@v2': T.totalsV2() }),
    SKAFU_PROJECTION_DEFINITION_OVERRIDE: JSON.stringify(v2),
  });
});
afterAll(() => client.destroy());

const customers = Array.from({ length: 9 }, (_, i) => `customer-${i}`);

/** The backfill state machine's ASL, its Lambda step run by the backfill function itself. */
const realStep = (payload: any) => backfillStep(payload, { getRemainingTimeInMillis: () => 70_000 });
async function runBackfillMachine(input: Record<string, unknown>, step: (payload: any) => Promise<unknown> = realStep) {
  const reported: Array<Record<string, any>> = [];
  let steps = 0;
  const run = runLocal(backfillMachine, input, {
    client,
    onPutEvents: (entries) => reported.push(...entries),
    taskOverride: (state, taskInput) => {
      if (state !== 'Step') return undefined;
      steps++;
      return step(taskInput.Payload).then((Payload) => ({ Payload }));
    },
  });
  return { run, reported, steps: () => steps };
}

test('version 2 is rebuilt from the store into its own table, queries read version 1 until it has caught up, then version 2 at once', async () => {
  projection = live();
  const started = Date.now();
  // Version 1 live: 200 aggregates, three with more than 100 events, the others 5 to 24 (about 3,200 events in all).
  const ids = Array.from({ length: 200 }, (_, a) => `order-${String(a).padStart(3, '0')}-${randomUUID().slice(0, 6)}`);
  const streams: Detail[][] = [];
  const versions = new Map<string, number>();
  const customerOf = (a: number) => customers[a % customers.length];
  for (let a = 0; a < ids.length; a++) {
    const total = a < 3 ? 101 + a * 3 : 5 + (a % 20);
    const events = Array.from({ length: total }, (_e, i) =>
      i === 0
        ? { eventType: 'OrderPlaced', data: { customer: customerOf(a), amount: a + 0.5 } }
        : { eventType: 'OrderNoted', data: { customer: customerOf(a), note: `n${i}`, units: (i % 4) + 1 } },
    );
    const stream: Detail[] = [];
    for (let i = 0; i < events.length; i += 90) stream.push(...(await appendEvents(store, ids[a], events.slice(i, i + 90), i === 0 ? 'no-stream' : i, 'Order')));
    streams.push(stream);
    versions.set(ids[a], total);
  }
  const total = streams.reduce((n, s) => n + s.length, 0);
  expect(total).toBeGreaterThan(3000);
  const appended = Date.now();
  // Version 1 live, and the reference (version 2 live from the first event) at the same time.
  await Promise.all([projection.projectAll(v1, streams, 12), projection.projectAll(reference, streams, 12)]);
  const projected = Date.now();
  expect(projection.errors).toEqual([]);
  const v1Items = await scanTable(client, T.totalsV1(), ['customer']);
  expect(v1Items).toHaveLength(customers.length);
  // Version 1's projection forgot the amounts; the fixed one has them.
  expect(v1Items.every((i) => i.amount === undefined)).toBe(true);
  expect((await scanTable(client, tableOf(referenceNames, 'TotalsTableV2'), ['customer'])).every((i) => typeof i.amount === 'number')).toBe(true);

  // Version 2 deployed: the live projection writes version 2 only; version 2's table is empty, nothing switched.
  const liveEvent = async (id: string, note: string) => {
    const v = versions.get(id)!;
    const a = ids.indexOf(id);
    const [d] = await appendEvents(store, id, [{ eventType: 'OrderNoted', data: { customer: customerOf(a), note, units: 3 } }], v, 'Order');
    versions.set(id, v + 1);
    await projection.project(v2, [d]);
    await projection.project(reference, [d]);
  };
  const queries = queryHandler();
  const get = async (customer: string) => body(await queries(apiEvent('GET', '/api/v1/shop/totals/{customer}', { pathParameters: { customer } }))).item;
  const list = async () => byCustomer(body(await queries(apiEvent('GET', '/api/v1/shop/totals'))).items!);
  expect(await list()).toEqual(v1Items);

  // The backfill of version 2 (the rebuildId its deploy-time custom resource gives), killed half-way.
  const rebuildId = 'deploy-v2';
  const config = (overrides: Partial<RebuildConfig> = {}): RebuildConfig => ({
    client,
    eventStoreTable: T.store(),
    domain: 'shop',
    aggregateTypes: ['Order'],
    definition: v2 as never,
    readModelTable: T.totalsV2(),
    targetTable: T.totalsV2(),
    stateTable: T.rebuildState(),
    // The backfill function's own id for it: `<readModel>:<rebuildId>`.
    rebuildId: `Totals@v2:${rebuildId}`,
    backfill: { checkpointTable: T.checkpoints(), readModel: 'Totals@v2' },
    pageSize: 10,
    concurrency: 4,
    ...overrides,
  });
  let writes = 0;
  const crashing = {
    send: (command: unknown) => {
      if (command instanceof TransactWriteItemsCommand && ++writes === 400) return Promise.reject(Object.assign(new Error('the Lambda was killed'), { name: 'Killed' }));
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;
  await expect(runRebuildStep(config({ client: crashing }), Date.now() + 120_000)).rejects.toThrow(/killed/);
  let progress: RebuildProgress = await runRebuildStep(config(), Date.now() + 300);
  expect(progress.status).toBe('RUNNING');
  // Live events while version 2 is half-built: left to its backfill (no gap waits, nothing parked).
  for (const id of [ids[0], ids[50], ids[199]]) await liveEvent(id, 'during the rebuild');
  expect(projection.errors).toEqual([]);
  expect(projection.outcomes.get('LEFT_TO_BACKFILL')).toBeGreaterThanOrEqual(1);

  // Half-built: version 2 holds items, and differs from the finished read model; queries still answer from version 1.
  const halfBuilt = await scanTable(client, T.totalsV2(), ['customer']);
  expect(halfBuilt.length).toBeGreaterThan(0);
  expect(halfBuilt).not.toEqual(await scanTable(client, tableOf(referenceNames, 'TotalsTableV2'), ['customer']));
  expect(await list()).toEqual(v1Items);
  for (const c of [customers[0], customers[4]]) expect(await get(c)).toEqual(v1Items.find((i) => i.customer === c));
  // A pointer forged to an older version (naming another table) changes nothing for queries.
  await client.send(
    new PutItemCommand({ TableName: T.checkpoints(), Item: { aggregateId: { S: '#active#Totals' }, version: { N: '1' }, readModel: { S: 'Totals' }, tableName: { S: T.orders() }, switchedAt: { S: new Date().toISOString() } } }),
  );
  expect(await list()).toEqual(v1Items);

  // Resumed with the same rebuildId through the backfill state machine and the backfill function, to the switch.
  const resumedAt = Date.now();
  const machine = await runBackfillMachine({ readModel: 'Totals@v2', rebuildId });
  const out = (await machine.run) as { step: { progress: BackfillStepOutput } };
  const backfillMs = Date.now() - resumedAt;
  expect(machine.reported).toEqual([]);
  expect(out.step.progress).toMatchObject({ status: 'CAUGHT_UP', handedOver: true, failures: 0, switched: true, activeVersion: 2 });
  progress = out.step.progress as never;
  // Resumed, not started over: every event of the store applied at most once in all.
  expect(progress.eventsApplied).toBeLessThanOrEqual(total + 3);
  const pointer = await readActivePointer(client, T.checkpoints(), 'Totals');
  expect(pointer).toMatchObject({ version: 2, readModel: 'Totals@v2', tableName: T.totalsV2(), rebuildId: `Totals@v2:${rebuildId}` });

  // Version 2 equals, item by item, the read model built live from scratch with the fixed projection (an event
  // applied twice would show in the counters); Orders too; version 1 is untouched; nothing parked or reported.
  const rebuilt = await scanTable(client, T.totalsV2(), ['customer']);
  expect(rebuilt).toEqual(await scanTable(client, tableOf(referenceNames, 'TotalsTableV2'), ['customer']));
  expect(rebuilt.reduce((n, t) => n + Number(t.orders), 0)).toBe(200);
  expect(rebuilt.reduce((n, t) => n + Number(t.notes), 0)).toBe(total - 200 + 3);
  expect(await scanTable(client, T.orders(), ['orderId'])).toEqual(await scanTable(client, tableOf(referenceNames, 'OrdersTable'), ['orderId']));
  expect(await scanTable(client, T.totalsV1(), ['customer'])).toEqual(v1Items);
  expect(projection.errors).toEqual([]);
  expect((await client.send(new ScanCommand({ TableName: T.parked(), Select: 'COUNT' }))).Count).toBe(0);

  // Queries switched at once, in the same container and in a fresh one.
  expect(await list()).toEqual(rebuilt);
  expect(byCustomer(body(await queryHandler()(apiEvent('GET', '/api/v1/shop/totals'))).items!)).toEqual(rebuilt);
  // And stay there: a live event after the switch is in version 2 and what queries answer, version 1 stays as it was.
  await liveEvent(ids[7], 'after the switch');
  expect(await get(customerOf(7))).toEqual((await scanTable(client, tableOf(referenceNames, 'TotalsTableV2'), ['customer'])).find((i) => i.customer === customerOf(7)));
  expect(await scanTable(client, T.totalsV1(), ['customer'])).toEqual(v1Items);

  // The same backfill started again (a repeated start-execution): nothing applied, the switch kept as it was.
  const again = await backfillStep({ readModel: 'Totals@v2', rebuildId }, { getRemainingTimeInMillis: () => 70_000 });
  expect(again).toMatchObject({ status: 'CAUGHT_UP', eventsApplied: progress.eventsApplied, switched: true, activeVersion: 2 });
  expect((await readActivePointer(client, T.checkpoints(), 'Totals'))?.switchedAt).toBe(pointer?.switchedAt);
  // A switch to an older version never wins.
  expect(await switchActiveVersion(client, { checkpointTable: T.checkpoints(), readModelName: 'Totals', version: 1, tableName: T.totalsV1(), rebuildId: 'forged' })).toMatchObject({ switched: false, activeVersion: 2 });
  expect((await readActivePointer(client, T.checkpoints(), 'Totals'))?.version).toBe(2);
  // A pointer naming another table is only a version to queries: they read their own version 2 table.
  await client.send(
    new PutItemCommand({ TableName: T.checkpoints(), Item: { aggregateId: { S: '#active#Totals' }, version: { N: '2' }, tableName: { S: T.orders() }, switchedAt: { S: pointer!.switchedAt! } } }),
  );
  expect(byCustomer(body(await queryHandler()(apiEvent('GET', '/api/v1/shop/totals'))).items!)).toEqual(await scanTable(client, T.totalsV2(), ['customer']));
  // Version 1's checkpoints are where version 1 left them (its keys unchanged); version 2's are its own.
  const cp = async (key: string) => {
    const item = await client.send(new GetItemCommand({ TableName: T.checkpoints(), Key: { aggregateId: { S: key } }, ConsistentRead: true }));
    return item.Item?.lastEventSequence?.N;
  };
  expect(await cp(`Totals#${ids[0]}`)).toBe('101');
  expect(await cp(`Totals@v2#${ids[0]}`)).toBe(String(versions.get(ids[0])));
  expect(await cp(`Orders#${ids[0]}`)).toBe(String(versions.get(ids[0])));
  console.log(
    `versioned rebuild: ${total} events over 200 aggregates appended in ${appended - started} ms, v1 + reference live in ${projected - appended} ms; ` +
      `v2 resumed by the state machine in ${machine.steps()} step(s), ${backfillMs} ms, ${progress.eventsApplied} events applied in all, ${progress.writeRequests} writes, ${progress.readRequests} reads`,
  );
});

test('the version guard refuses to remove the previous version before the switch and the retention, and never a rollback', async () => {
  const name = `Guarded${randomUUID().slice(0, 6)}`;
  const checkpointTable = T.checkpoints();
  const ask = async (request: Partial<GuardRequest>, now: Date) =>
    guardDecision({ requestType: 'Update', readModelName: name, version: 2, retainPreviousVersion: false, retentionSeconds: 3 * 86400, ...request }, await readActivePointer(client, checkpointTable, name), now);
  const t0 = new Date('2026-11-01T00:00:00Z');
  // Before any switch: removing version 1 is refused, keeping it is fine.
  expect(await ask({}, t0)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(new RegExp(`read model ${name}: retainPreviousVersion is false.*have not switched to version 2.*version 1 \\(no version`)) });
  expect(await ask({ retainPreviousVersion: true }, t0)).toMatchObject({ status: 'SUCCESS' });
  expect(await ask({ requestType: 'Create', retainPreviousVersion: true }, t0)).toMatchObject({ status: 'SUCCESS' });
  // Jumping to version 3 while version 2 never became active: queries would read an incomplete table.
  expect(await ask({ version: 3, retainPreviousVersion: true }, t0)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/version 2 never became active/) });
  // A malformed pointer (no numeric version) switches nothing and does not block the switch to version 2.
  await client.send(new PutItemCommand({ TableName: checkpointTable, Item: { aggregateId: { S: `#active#${name}` }, version: { S: '99' } } }));
  expect(await ask({ retainPreviousVersion: true }, t0)).toMatchObject({ status: 'SUCCESS' });
  expect(await switchActiveVersion(client, { checkpointTable, readModelName: name, version: 2, tableName: 't2', rebuildId: 'r', now: t0 })).toMatchObject({ switched: true });
  // Before the retention: refused, naming when it ends.
  expect(await ask({}, new Date(t0.getTime() + 86400_000))).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/retention \(259200 s\).*ends at 2026-11-04T00:00:00.000Z/) });
  // After it: allowed; and keeping it is always allowed.
  expect(await ask({}, new Date(t0.getTime() + 3 * 86400_000))).toMatchObject({ status: 'SUCCESS' });
  expect(await ask({ retainPreviousVersion: true }, t0)).toMatchObject({ status: 'SUCCESS' });
  // Version 3 after version 2 became active is fine; lowering the version is refused, but a rollback never is.
  expect(await ask({ version: 3, retainPreviousVersion: true }, t0)).toMatchObject({ status: 'SUCCESS' });
  await switchActiveVersion(client, { checkpointTable, readModelName: name, version: 3, tableName: 't3', rebuildId: 'r', now: t0 });
  expect(await ask({ version: 2, retainPreviousVersion: true }, t0)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/never lowered/) });
  // An Update 3 → 2: a rollback when the stack is rolling back, lowered by hand when it is not (refused); unknown
  // status (DescribeStacks failed): let through, never failing a rollback.
  expect(await ask({ version: 2, retainPreviousVersion: true, previousPropertiesVersion: 3, stackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS' }, t0)).toMatchObject({ status: 'SUCCESS' });
  expect(await ask({ version: 2, retainPreviousVersion: true, previousPropertiesVersion: 3, stackStatus: 'UPDATE_IN_PROGRESS' }, t0)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/never lowered/) });
  expect(await ask({ version: 2, retainPreviousVersion: true, previousPropertiesVersion: 3, stackStatusError: 'Throttling' }, t0)).toMatchObject({ status: 'SUCCESS' });
  expect(await ask({ requestType: 'Delete', version: 2 }, t0)).toMatchObject({ status: 'SUCCESS' });
  // A pointer without a readable switchedAt never lets the previous table go.
  await client.send(new PutItemCommand({ TableName: checkpointTable, Item: { aggregateId: { S: `#active#${name}` }, version: { N: '3' } } }));
  expect(await ask({ version: 3 }, new Date(t0.getTime() + 30 * 86400_000))).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/no readable switchedAt/) });
  await client.send(new DeleteItemCommand({ TableName: checkpointTable, Key: { aggregateId: { S: `#active#${name}` } } }));
});

test('a backfill that caught up with failures does not switch and is reported once on the error bus; so is a step that keeps failing', async () => {
  const failed: BackfillStepOutput = {
    rebuildId: 'Totals@v2:x',
    status: 'CAUGHT_UP_WITH_FAILURES',
    pass: 3,
    typeIndex: 0,
    aggregatesVisited: 10,
    eventsApplied: 7,
    appliedThisPass: 0,
    writeRequests: 9,
    readRequests: 20,
    failures: 1,
    firstFailures: [{ aggregateId: 'order-1', eventSequence: 2, error: 'ValidationException: bad' }],
    startedAt: 't',
    updatedAt: 't',
  };
  const withFailures = await runBackfillMachine({ readModel: 'Totals@v2', rebuildId: 'x' }, async () => failed);
  await expect(withFailures.run).rejects.toMatchObject({ cause: expect.objectContaining({ name: 'Skafu.BackfillFailures' }) });
  expect(withFailures.reported).toHaveLength(1);
  const detail = withFailures.reported[0].Detail as Record<string, any>;
  expect(withFailures.reported[0]).toMatchObject({ EventBusName: 'skafu-errors', Source: 'skafu.shop', DetailType: 'Application Error' });
  expect(detail).toMatchObject({ errorType: 'BackfillFailures', severity: 'HIGH', correlationId: 'x', context: { domain: 'shop', readModel: 'Totals@v2', rebuildId: 'x' }, metadata: { firstFailures: failed.firstFailures } });
  expect(detail.message).toMatch(/Totals@v2.*1 event\(s\) it could not apply.*queries did not switch/);

  const dying = await runBackfillMachine({ readModel: 'Totals@v2', rebuildId: 'y' }, async () => {
    throw Object.assign(new Error('out of memory'), { name: 'Lambda.ServiceException' });
  });
  await expect(dying.run).rejects.toMatchObject({ cause: expect.objectContaining({ name: 'Skafu.BackfillStepFailed' }) });
  // The step is retried (6 times) before it is reported, once.
  expect(dying.steps()).toBe(7);
  expect(dying.reported).toHaveLength(1);
  expect(dying.reported[0].Detail).toMatchObject({ errorType: 'BackfillFailed', context: { readModel: 'Totals@v2', rebuildId: 'y' } });
});

test("a custom query handler's activeReadModelTable follows the pointer the same way, keeps the switch for a minute, then reads the pointer again", async () => {
  const key = `#active#Reports${randomUUID().slice(0, 6)}`;
  Object.assign(process.env, {
    SKAFU_READ_MODEL_REPORTS: 'reports-v3',
    SKAFU_ACTIVE_VERSION_REPORTS: JSON.stringify({ version: 3, previousTable: 'reports-v2', checkpointTable: T.checkpoints(), pointerKey: key }),
    SKAFU_READ_MODEL_PLAIN: 'plain-v1',
  });
  let reads = 0;
  const counting = { send: (c: GetItemCommand) => (reads++, client.send(c)) };
  expect(await activeReadModelTable('reports', { client: counting })).toBe('reports-v2');
  // An older version in the pointer: still the previous table.
  await client.send(new PutItemCommand({ TableName: T.checkpoints(), Item: { aggregateId: { S: key }, version: { N: '2' } } }));
  expect(await activeReadModelTable('reports')).toBe('reports-v2');
  expect(reads).toBe(2);
  await client.send(new PutItemCommand({ TableName: T.checkpoints(), Item: { aggregateId: { S: key }, version: { N: '3' } } }));
  expect(await activeReadModelTable('reports')).toBe('reports-v3');
  // Switched: no more reads for a minute, even if the pointer item went away (a backfill into a re-created table
  // of this version deletes it); after that minute the pointer is read again, and the previous version answers.
  await client.send(new DeleteItemCommand({ TableName: T.checkpoints(), Key: { aggregateId: { S: key } } }));
  expect(await activeReadModelTable('reports')).toBe('reports-v3');
  expect(reads).toBe(3);
  const now = Date.now();
  const clock = jest.spyOn(Date, 'now').mockReturnValue(now + 61_000);
  try {
    expect(await activeReadModelTable('reports')).toBe('reports-v2');
    expect(reads).toBe(4);
  } finally {
    clock.mockRestore();
  }
  // A read model without versions reads its table, without a pointer; an unknown name is an error, not a table.
  expect(await activeReadModelTable('plain', { client: counting })).toBe('plain-v1');
  expect(reads).toBe(4);
  for (const bad of ['__proto__', 'constructor', 'unknown']) await expect(activeReadModelTable(bad)).rejects.toThrow(/has no table name/);
});

test('the version guard answers CloudFormation through the backfill function: properties as strings, FAILED with the reason, never stuck', async () => {
  // CloudFormation has no local engine: the pre-signed response URL is captured (node:https stubbed, nothing sent).
  const captured = captureCloudFormationResponses();
  const answers = captured.answers;
  try {
    const name = `Cfn${randomUUID().slice(0, 6)}`;
    const request = (type: 'Create' | 'Update' | 'Delete', properties: Record<string, string>, old?: Record<string, string>) =>
      versionGuardRequest({
        requestType: type,
        readModelName: name,
        stackId: 'arn:aws:cloudformation:us-east-1:111111111111:stack/Shop/1',
        properties: { Version: '2', RetainPreviousVersion: 'true', RetentionSeconds: '3600', CheckpointTable: T.checkpoints(), ...properties },
        oldProperties: old,
      });
    const answer = (event: object) => captured.answer(backfillStep, event);
    expect(await answer(request('Create', {}))).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: `version-guard-${name}`, Data: { ActiveVersion: '1' } });
    const early = await answer(request('Update', { RetainPreviousVersion: 'false' }));
    expect(early).toMatchObject({ Status: 'FAILED', PhysicalResourceId: `version-guard-${name}` });
    expect(early.Reason).toMatch(new RegExp(`read model ${name}: retainPreviousVersion is false.*have not switched to version 2`));
    // Switched two hours ago: a one-hour retention has passed, a three-hour one has not.
    await switchActiveVersion(client, { checkpointTable: T.checkpoints(), readModelName: name, version: 2, tableName: 't', rebuildId: 'r', now: new Date(Date.now() - 7200_000) });
    expect(await answer(request('Update', { RetainPreviousVersion: 'false', RetentionSeconds: '10800' }))).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/retention \(10800 s\)/) });
    expect(await answer(request('Update', { RetainPreviousVersion: 'false' }))).toMatchObject({ Status: 'SUCCESS', Data: { ActiveVersion: '2' } });
    // An Update 3 → 2 whose stack status cannot be read (@aws-sdk/client-cloudformation, which the Lambda runtime
    // provides, is not installed here: DescribeStacks fails) is let through, a rollback is never failed (the status
    // read is tested with a fake of that module in versions-review.test.ts); a Delete; properties or a table it cannot read.
    expect(await answer(request('Update', { Version: '2' }, { Version: '3' }))).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(/status could not be read \(DescribeStacks failed/) });
    expect(await answer(request('Delete', { Version: 'garbage' }))).toMatchObject({ Status: 'SUCCESS' });
    expect(await answer(request('Update', { Version: 'x' }))).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/could not decide: .*Version \(2 or more\)/) });
    expect(await answer(request('Update', { CheckpointTable: 'no-such-table' }))).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/could not decide/) });
    expect(answers.every((a) => a.url === RESPONSE_URL && a.Reason.length <= 1000)).toBe(true);
  } finally {
    captured.restore();
  }
});

test('a new version whose backfill meets an event it cannot apply ends CAUGHT_UP_WITH_FAILURES and does not switch queries; fixed at the same version, the same rebuildId resumes and switches', async () => {
  // Another domain in the same store, its own read model `Poison` at version 2 (version 2's definition aimed at a fresh table).
  const poisonTable = `Poison-${randomUUID().slice(0, 8)}`;
  const [, resource] = Object.entries(synth(2).findResources('AWS::DynamoDB::Table')).find(([id]) => id.startsWith('TotalsTableV2'))!;
  await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, poisonTable)));
  const definition = JSON.parse(JSON.stringify(v2).split(T.totalsV2()).join(poisonTable));
  const poisonStore = new EventStore({ tableName: T.store(), domain: 'poison', client });
  await appendEvents(poisonStore, 'order-good', [{ eventType: 'OrderPlaced', data: { customer: 'c', amount: 2 } }], 'no-stream', 'Order');
  // `amount` is not a number: DynamoDB refuses the ADD, as the live projection would park it.
  await appendEvents(poisonStore, 'order-bad', [{ eventType: 'OrderPlaced', data: { customer: 'c', amount: 'lots' } }], 'no-stream', 'Order');
  const saved = { ...process.env };
  Object.assign(process.env, { SKAFU_DOMAIN: 'poison', SKAFU_READ_MODEL_TABLES: JSON.stringify({ 'Poison@v2': poisonTable }), SKAFU_PROJECTION_DEFINITION_OVERRIDE: JSON.stringify(definition) });
  try {
    let step!: typeof backfillStep;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      step = require('../../src/projections/backfill.lambda').handler;
    });
    let out = await step({ readModel: 'Poison@v2', rebuildId: 'p1' }, { getRemainingTimeInMillis: () => 70_000 });
    while (out.status === 'RUNNING') out = await step({ readModel: 'Poison@v2', rebuildId: 'p1' }, { getRemainingTimeInMillis: () => 70_000 });
    expect(out).toMatchObject({ status: 'CAUGHT_UP_WITH_FAILURES', failures: 1, switched: false, activeVersion: 1 });
    expect(out.firstFailures).toEqual([expect.objectContaining({ aggregateId: 'order-bad', eventSequence: 1 })]);
    expect(await readActivePointer(client, T.checkpoints(), 'Poison')).toBeUndefined();
    // Started again with the same rebuildId (no fix): one more pass, the same failure, still no switch.
    const again = await step({ readModel: 'Poison@v2', rebuildId: 'p1' }, { getRemainingTimeInMillis: () => 70_000 });
    expect(again).toMatchObject({ status: 'CAUGHT_UP_WITH_FAILURES', failures: 1, switched: false });
    expect(await readActivePointer(client, T.checkpoints(), 'Poison')).toBeUndefined();
    // The projection fixed at the same version (here: one that does not add the amount) and deployed, the same
    // rebuildId resumes: the stopped aggregate goes on, nothing is applied twice, and queries switch.
    const fixed = JSON.parse(JSON.stringify(v1).split(T.totalsV1()).join(poisonTable));
    process.env.SKAFU_PROJECTION_DEFINITION_OVERRIDE = JSON.stringify(fixed);
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      step = require('../../src/projections/backfill.lambda').handler;
    });
    let resumed = await step({ readModel: 'Poison@v2', rebuildId: 'p1' }, { getRemainingTimeInMillis: () => 70_000 });
    while (resumed.status === 'RUNNING') resumed = await step({ readModel: 'Poison@v2', rebuildId: 'p1' }, { getRemainingTimeInMillis: () => 70_000 });
    expect(resumed).toMatchObject({ status: 'CAUGHT_UP', failures: 0, switched: true, activeVersion: 2, eventsApplied: 2 });
    expect(await scanTable(client, poisonTable, ['customer'])).toEqual([{ customer: 'c', orders: 2, amount: 2 }]);
    expect(await readActivePointer(client, T.checkpoints(), 'Poison')).toMatchObject({ version: 2, readModel: 'Poison@v2', tableName: poisonTable });
  } finally {
    for (const k of ['SKAFU_DOMAIN', 'SKAFU_READ_MODEL_TABLES', 'SKAFU_PROJECTION_DEFINITION_OVERRIDE']) process.env[k] = saved[k];
  }
});
