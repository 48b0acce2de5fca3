/**
 * A read model added to a domain that already holds events (v1 → v2), backfilled from the event store while the
 * live projection keeps running, proven against DynamoDB Local with the synthesized definitions run by
 * aws-local-stepfunctions:
 *
 * - checkpoints are per read model: the new read model starts at 0, the existing one is untouched;
 * - the backfill is killed half-way and resumed without starting over;
 * - live events of existing aggregates during the backfill are left to it (no gap waits, no parked gaps, nothing
 *   reported), including one appended right before the hand-over and one right after it (the race);
 * - the backfilled read model equals, item by item, the same read model built live from the first event.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand, TransactWriteItemsCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DomainEventBus, ErrorBus, EventStoreTable, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { runRebuildStep, type RebuildConfig, type RebuildProgress } from '../../src/projections/rebuild.runtime';
import { EventStore } from '../../src/runtime';
import { appendEvents, createTemplateTables, LiveProjection, machineDefinition, scanTable, type Detail } from '../support/projection-harness';
import { localClient } from '../support/tables';

jest.setTimeout(300_000);

/** v1: Orders only; v2 adds Totals (a counter per customer, shared by many aggregates). Same construct ids. */
function synth(withTotals: boolean) {
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' } });
  const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
  const projections = [
    { eventType: 'OrderPlaced', readModel: orders, action: ProjectionAction.putItem({ key, attributes: { customer: ProjectionValue.fromData('customer'), amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } }) },
    { eventType: 'OrderNoted', readModel: orders, action: ProjectionAction.updateItem({ key, append: { notes: ProjectionValue.fromData('note') }, set: { version: ProjectionValue.fromEnvelope('eventSequence') } }) },
  ];
  if (withTotals) {
    const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'customer' } });
    projections.push(
      { eventType: 'OrderPlaced', readModel: totals, action: ProjectionAction.updateItem({ key: { customer: ProjectionValue.fromData('customer') }, add: { orders: ProjectionValue.number(1), amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } }) },
      // One item counts every note of every order: a counter shared by all aggregates.
      { eventType: 'OrderNoted', readModel: totals, action: ProjectionAction.updateItem({ key: { customer: ProjectionValue.string('*') }, add: { notes: ProjectionValue.number(1) } }) },
    );
  }
  new ProjectionStateMachine(stack, 'Projections', { domain: 'shop', eventBus: bus.eventBus, errorBus, projections });
  return Template.fromStack(stack);
}

let client: DynamoDBClient;
let v1: Record<string, any>;
let v2: Record<string, any>;
/** The same v2 read models built live from the first event, in tables of their own: the reference. */
let reference: Record<string, any>;
let store: EventStore;
let tables: Record<string, string> = {};
let referenceTables: Record<string, string> = {};
let live: LiveProjection;
let errors: unknown[];
let outcomes: Map<string, number>;

const table = (names: Record<string, string>, prefix: string) => names[Object.keys(names).find((k) => k.startsWith(prefix))!];

beforeAll(async () => {
  client = localClient();
  const t2 = synth(true);
  const created = await createTemplateTables(client, t2, { copies: ['ref'], skipCopies: (id) => id.startsWith('Store') });
  tables = created.names;
  referenceTables = created.copies.ref;
  v1 = machineDefinition(synth(false), 'EXPRESS', tables);
  v2 = machineDefinition(t2, 'EXPRESS', tables);
  reference = machineDefinition(t2, 'EXPRESS', referenceTables);
  store = new EventStore({ tableName: table(tables, 'Store'), domain: 'shop', client });
  live = new LiveProjection(client, 'skafu.shop');
  errors = live.errors;
  outcomes = live.outcomes;
});
afterAll(() => client.destroy());

const customers = Array.from({ length: 7 }, (_, i) => `customer-${i}`);

const append = (aggregateId: string, events: Array<{ eventType: string; data: Record<string, unknown> }>, expectedVersion: number | 'no-stream'): Promise<Detail[]> =>
  appendEvents(store, aggregateId, events, expectedVersion, 'Order');
const project = (definition: Record<string, any>, details: Detail[]) => live.project(definition, details);
const projectAll = (definition: Record<string, any>, streams: Detail[][]) => live.projectAll(definition, streams);
const scanAll = (name: string) => scanTable(client, name, ['customer', 'orderId']);

async function checkpoint(key: string): Promise<number | undefined> {
  const out = await client.send(new GetItemCommand({ TableName: table(tables, 'ProjectionsCheckpoints'), Key: { aggregateId: { S: key } }, ConsistentRead: true }));
  return out.Item ? Number(out.Item.lastEventSequence.N) : undefined;
}

test('a read model added to a domain with events is backfilled from the store, resumed after a crash, while live events flow; it equals the read model built live', async () => {
  const started = Date.now();
  // v1 live: 30 aggregates, two with 102 events, the others 3 to 9.
  const ids = Array.from({ length: 30 }, (_, a) => `order-${String(a).padStart(3, '0')}-${randomUUID().slice(0, 6)}`);
  const streams: Detail[][] = [];
  const versions = new Map<string, number>();
  for (let a = 0; a < ids.length; a++) {
    const total = a < 2 ? 102 : 3 + (a % 7);
    const events = Array.from({ length: total }, (_e, i) =>
      i === 0 ? { eventType: 'OrderPlaced', data: { customer: customers[a % customers.length], amount: a + 0.25 } } : { eventType: 'OrderNoted', data: { note: `n${i}` } },
    );
    const stream: Detail[] = [];
    for (let i = 0; i < events.length; i += 90) stream.push(...(await append(ids[a], events.slice(i, i + 90), i === 0 ? 'no-stream' : i)));
    streams.push(stream);
    versions.set(ids[a], total);
  }
  const total = streams.reduce((n, s) => n + s.length, 0);
  const appended = Date.now();
  await projectAll(v1, streams);
  const seeded = Date.now();
  console.log(`phase: append ${appended - started} ms, v1 live ${seeded - appended} ms`);
  expect(errors).toEqual([]);
  expect(await checkpoint(`Orders#${ids[0]}`)).toBe(102);
  // Per read model: v1 never had Totals, so Totals has no checkpoint anywhere.
  expect(await checkpoint(`Totals#${ids[0]}`)).toBeUndefined();

  // The reference: the same v2 read models, built live from the first event.
  await projectAll(reference, streams);
  expect(errors).toEqual([]);
  console.log(`phase: reference live ${Date.now() - seeded} ms`);

  // v2 is deployed. Without a backfill, a live event of an existing aggregate would wait for a gap in Totals and
  // be parked as ProjectionGap; the backfill's status item tells the live projection to leave it to the backfill.
  const later: Detail[] = [];
  const liveBoth = async (id: string, data: Record<string, unknown>) => {
    const v = versions.get(id)!;
    const [d] = await append(id, [{ eventType: 'OrderNoted', data }], v);
    versions.set(id, v + 1);
    later.push(d);
    await project(v2, [d]);
    await project(reference, [d]);
  };

  const config = (overrides: Partial<RebuildConfig> = {}): RebuildConfig => ({
    client,
    eventStoreTable: table(tables, 'Store'),
    domain: 'shop',
    aggregateTypes: ['Order'],
    definition: v2 as never,
    readModelTable: table(tables, 'Totals'),
    targetTable: table(tables, 'Totals'),
    stateTable: table(tables, 'ProjectionsRebuildState'),
    rebuildId: 'backfill-totals-1',
    backfill: { checkpointTable: table(tables, 'ProjectionsCheckpoints'), readModel: 'Totals' },
    pageSize: 5,
    concurrency: 4,
    ...overrides,
  });
  // Killed half-way: the 150th transaction fails as a crash would.
  let writes = 0;
  const crashing = {
    send: (command: unknown) => {
      if (command instanceof TransactWriteItemsCommand && ++writes === 60) return Promise.reject(Object.assign(new Error('the Lambda was killed'), { name: 'Killed' }));
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;
  await expect(runRebuildStep(config({ client: crashing }), Date.now() + 120_000)).rejects.toThrow(/killed/);
  const status = await client.send(new GetItemCommand({ TableName: table(tables, 'ProjectionsCheckpoints'), Key: { aggregateId: { S: '#backfill#Totals' } }, ConsistentRead: true }));
  expect(status.Item?.status.S).toBe('BACKFILLING');

  // Live events while the backfill is down: applied to Orders, left to the backfill by Totals (not parked).
  for (const id of [ids[0], ids[15], ids[29]]) await liveBoth(id, { note: 'during the backfill' });
  expect(errors).toEqual([]);
  expect(outcomes.get('LEFT_TO_BACKFILL')).toBeGreaterThanOrEqual(1);
  expect(await checkpoint(`Orders#${ids[29]}`)).toBe(versions.get(ids[29]));

  // The hand-over race: one event appended just before the status turns LIVE (left to the backfill), one just
  // after (applied live, or waits for the backfill's last pass to fill its gap).
  const raced: Array<Promise<void>> = [];
  const handingOver = {
    send: async (command: unknown) => {
      const input = (command as { input?: { Item?: Record<string, AttributeValue> } }).input;
      if (command instanceof PutItemCommand && input?.Item?.status?.S === 'LIVE') {
        await liveBoth(ids[1], { note: 'just before the hand-over' });
        const out = await client.send(command);
        raced.push(liveBoth(ids[2], { note: 'just after the hand-over' }));
        return out;
      }
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;

  // Resumed in bounded steps until caught up; live events keep arriving between steps.
  const resumed = Date.now();
  let progress: RebuildProgress = await runRebuildStep(config({ client: handingOver }), Date.now() + 1000);
  let steps = 1;
  while (progress.status === 'RUNNING') {
    if (steps % 3 === 0 && steps < 20) await liveBoth(ids[3 + steps], { note: `step ${steps}` });
    progress = await runRebuildStep(config({ client: handingOver }), Date.now() + 1000);
    steps++;
  }
  await Promise.all(raced);
  const backfillMs = Date.now() - resumed;
  expect(progress).toMatchObject({ status: 'CAUGHT_UP', handedOver: true, failures: [] });
  expect(steps).toBeGreaterThan(1);
  // Resumed, not started over: the backfill applied each event of the store at most once in all.
  expect(progress.eventsApplied).toBeLessThanOrEqual(total + later.length);
  expect(raced).toHaveLength(1);

  // Nothing parked, nothing reported, and the backfilled read model equals the one built live, item by item.
  expect(errors).toEqual([]);
  const parked = await client.send(new ScanCommand({ TableName: table(tables, 'ProjectionsParkedEvents'), Select: 'COUNT' }));
  expect(parked.Count).toBe(0);
  expect(await scanAll(table(tables, 'Totals'))).toEqual(await scanAll(table(referenceTables, 'Totals')));
  expect(await scanAll(table(tables, 'Orders'))).toEqual(await scanAll(table(referenceTables, 'Orders')));
  const totals = await scanAll(table(tables, 'Totals'));
  expect(totals.reduce((n, t) => n + Number(t.orders ?? 0), 0)).toBe(30);
  expect(totals.find((t) => t.customer === '*')).toMatchObject({ notes: total - 30 + later.length });
  // Every aggregate's Totals checkpoint is at the store's last sequence: the live projection carries on from it.
  for (const id of [ids[0], ids[1], ids[2], ids[15]]) expect(await checkpoint(`Totals#${id}`)).toBe(versions.get(id));
  await liveBoth(ids[0], { note: 'after the backfill' });
  expect(await checkpoint(`Totals#${ids[0]}`)).toBe(versions.get(ids[0]));
  expect(errors).toEqual([]);
  console.log(`backfill: ${total} events over 30 aggregates seeded and projected live (v1) in ${seeded - started} ms; backfill resumed in ${steps} steps, ${backfillMs} ms, ${progress.eventsApplied} events applied, ${progress.writeRequests} writes, ${progress.readRequests} reads`);
});

test('a backfill refuses to write over a read model that holds items but has no checkpoints', async () => {
  const stateTable = table(tables, 'ProjectionsRebuildState');
  await client.send(new PutItemCommand({ TableName: table(tables, 'Orders'), Item: { orderId: { S: 'stray' } } }));
  // Orders has checkpoints (from v1): a backfill of it finds them and applies nothing new.
  const again = await runRebuildStep(
    {
      client,
      eventStoreTable: table(tables, 'Store'),
      domain: 'shop',
      aggregateTypes: ['Order'],
      definition: v2 as never,
      readModelTable: table(tables, 'Orders'),
      targetTable: table(tables, 'Orders'),
      stateTable,
      rebuildId: `orders-${randomUUID().slice(0, 6)}`,
      backfill: { checkpointTable: table(tables, 'ProjectionsCheckpoints'), readModel: 'Orders' },
    },
    Date.now() + 60_000,
  );
  expect(again).toMatchObject({ status: 'CAUGHT_UP', eventsApplied: 0 });
  // Another domain's writer sets shop's index keys on its own item, sorting first: the index leaves it out, and
  // the backfill still finds its sample aggregate on a later page (an empty first page is not "no aggregates").
  await client.send(
    new PutItemCommand({
      TableName: table(tables, 'Store'),
      Item: { streamId: { S: 'billing#forged' }, eventSequence: { N: '1' }, aggregateListType: { S: 'shop#Order' }, aggregateListCreatedAt: { S: '0000#forged' } },
    }),
  );
  // A read model with items and no checkpoint at all (none to migrate either) is refused: the Totals table,
  // backfilled as if it were a read model named Invoices, would count every event twice.
  await expect(
    runRebuildStep(
      {
        client,
        eventStoreTable: table(tables, 'Store'),
        domain: 'shop',
        aggregateTypes: ['Order'],
        definition: v2 as never,
        readModelTable: table(tables, 'Totals'),
        targetTable: table(tables, 'Totals'),
        stateTable,
        rebuildId: `other-${randomUUID().slice(0, 6)}`,
        backfill: { checkpointTable: table(tables, 'ProjectionsCheckpoints'), readModel: 'Invoices' },
      },
      Date.now() + 60_000,
    ),
  ).rejects.toThrow(/holds items but it has no checkpoints/);
});
