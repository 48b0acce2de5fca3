/**
 * The aggregates index reader shared by drift, rebuild and backfill (src/projections/aggregate-index.runtime.ts),
 * against DynamoDB Local with the synthesized event store table: every aggregate of one domain and type once, in
 * the index's order, page after page, one Query a page and the next page only when the caller asks for it. Drift
 * reads pages of DynamoDB's 1 MB, which the other tests never fill: here small pages (`limit`) make it page.
 */
import { QueryCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { aggregateIndexPage, aggregateStreamKeys } from '../../src/projections/aggregate-index.runtime';
import { EventStore } from '../../src/runtime';
import { createEventStoreTable, localClient } from '../support/tables';

let client: DynamoDBClient;
let table: string;
/** What happened, in order: `Q` a Query of the index, `k` a key taken by the caller. */
let log: string[];
/** The client as the helper sees it: every request logged, then sent to DynamoDB Local. */
let counting: DynamoDBClient;
const orders = ['order-1', 'order-2', 'order-3', 'order-4', 'order-5'];

beforeAll(async () => {
  client = localClient();
  table = await createEventStoreTable(client);
  const shop = new EventStore({ tableName: table, domain: 'shop', client });
  for (const id of orders) await shop.append(id, [{ eventType: 'OrderPlaced', data: {} }] as never, { expectedVersion: 'no-stream' as never, aggregateType: 'Order' });
  // Another type of the same domain and the same type of another domain (one with the same id): never listed.
  await shop.append('invoice-1', [{ eventType: 'InvoiceSent', data: {} }] as never, { expectedVersion: 'no-stream' as never, aggregateType: 'Invoice' });
  const other = new EventStore({ tableName: table, domain: 'shopping', client });
  await other.append('order-1', [{ eventType: 'OrderPlaced', data: {} }] as never, { expectedVersion: 'no-stream' as never, aggregateType: 'Order' });
  // An aggregate's later events carry no index keys (the index is sparse): it is listed once.
  await shop.append('order-2', [{ eventType: 'OrderPlaced', data: {} }] as never, { expectedVersion: 1 as never, aggregateType: 'Order' });
  counting = {
    send: (command: unknown) => {
      if (command instanceof QueryCommand && command.input.IndexName === 'aggregates') log.push('Q');
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;
});
beforeEach(() => {
  log = [];
});
afterAll(() => client.destroy());

test("every aggregate of the domain's type once, in the index's order, one Query a page, the next page only when asked for", async () => {
  const keys: string[] = [];
  for await (const key of aggregateStreamKeys({ client: counting, eventStoreTable: table, domain: 'shop', aggregateType: 'Order', limit: 2 })) {
    log.push('k');
    keys.push(key.S!);
  }
  // The order the public listing (the same index) returns.
  const listed = (await new EventStore({ tableName: table, domain: 'shop', client }).listAggregates({ aggregateType: 'Order', limit: 10 })).aggregates.map((a) => a.streamId);
  expect(keys).toEqual(listed);
  expect([...keys].sort()).toEqual(orders.map((id) => `shop#${id}`));
  // Pages of 2, 2 and 1 (DynamoDB returns no LastEvaluatedKey with a page shorter than the limit).
  expect(log.join('')).toBe('QkkQkkQk');
});

test('a caller that stops early sends no further Query; the page reader resumes where a page ended', async () => {
  for await (const key of aggregateStreamKeys({ client: counting, eventStoreTable: table, domain: 'shop', aggregateType: 'Order', limit: 2 })) {
    log.push('k');
    expect(key.S).toMatch(/^shop#order-/);
    break;
  }
  expect(log.join('')).toBe('Qk');
  const first = await aggregateIndexPage({ client: counting, eventStoreTable: table, domain: 'shop', aggregateType: 'Order', limit: 3 });
  const rest = await aggregateIndexPage({ client: counting, eventStoreTable: table, domain: 'shop', aggregateType: 'Order', startKey: first.next });
  expect(first.streamKeys).toHaveLength(3);
  expect(first.next).toBeDefined();
  expect(rest.next).toBeUndefined();
  expect([...first.streamKeys, ...rest.streamKeys].map((k) => k.S).sort()).toEqual(orders.map((id) => `shop#${id}`));
});

test('another type, another domain, a domain that prefixes one, an unknown type: only their own aggregates', async () => {
  const all = async (domain: string, aggregateType: string) => {
    const keys: string[] = [];
    for await (const key of aggregateStreamKeys({ client: counting, eventStoreTable: table, domain, aggregateType })) keys.push(key.S!);
    return keys;
  };
  expect(await all('shop', 'Invoice')).toEqual(['shop#invoice-1']);
  expect(await all('shopping', 'Order')).toEqual(['shopping#order-1']);
  expect(await all('shop', 'Ord')).toEqual([]);
  expect(await all('sho', 'Order')).toEqual([]);
  // Without a limit (DynamoDB's 1 MB pages), each of these listings is one Query.
  expect(log).toEqual(['Q', 'Q', 'Q', 'Q']);
});

test("an index entry set on another domain's stream (by a writer confined to that domain's keys) is not listed", async () => {
  const billing = new EventStore({ tableName: table, domain: 'billing', client });
  await billing.append('z', [{ eventType: 'InvoiceSent', data: {} }] as never, { expectedVersion: 'no-stream' as never, aggregateType: 'Invoice' });
  // billing's writer may set any attribute on its own items, the index keys included: it claims shop's Order list.
  await client.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { streamId: { S: 'billing#z' }, eventSequence: { N: '1' } },
      UpdateExpression: 'SET aggregateListType = :t',
      ExpressionAttributeValues: { ':t': { S: 'shop#Order' } },
    }),
  );
  const keys: string[] = [];
  for await (const key of aggregateStreamKeys({ client, eventStoreTable: table, domain: 'shop', aggregateType: 'Order' })) keys.push(key.S!);
  expect([...keys].sort()).toEqual(orders.map((id) => `shop#${id}`));
  const listed = await new EventStore({ tableName: table, domain: 'shop', client }).listAggregates({ aggregateType: 'Order', limit: 100 });
  expect(listed.aggregates.map((a) => a.streamId).sort()).toEqual(orders.map((id) => `shop#${id}`));
});
