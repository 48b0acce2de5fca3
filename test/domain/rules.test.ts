/**
 * Declared business rules, through the BUNDLED command handler (assets/domain/command.lambda) against DynamoDB
 * Local, configured with the spec the inventory domain synthesizes: state fold, guards (409), ownership (403),
 * several events per command, upcasting of stored v1 events, and reactions delivered twice and out of order.
 * No error bus is configured: error events fall back to console.error, which the tests read.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { createQueryHandler } from '../../src/domain/query.lambda';
import { powertools } from '../../src/internal/powertools';
import { ErrorReporter, DeclaredStateFold, EventStore, EventUpcaster, encodeDomainSpec, loadDeclaredState } from '../../src/runtime';
import { apiEvent, type ApiEventOptions } from '../support/api-events';
import { synthInventory } from '../support/inventory';
import { createEventStoreTable, createTableInputFromCfn, localClient } from '../support/tables';

/** The command handler exactly as synthesized: the bundle with the inventory spec and validators in its asset. */
const bundle = () => path.join(synthInventory().commandDirectory, 'index.js');
const PRODUCTS = '/api/v1/inventory/products';
const STOCK = '/api/v1/inventory/products/{productId}/stock';
const DISCONTINUE = '/api/v1/inventory/products/{productId}/discontinue';
const RENAME = '/api/v1/inventory/products/{productId}/name';

type Handler = (event: unknown, context?: unknown) => Promise<APIGatewayProxyResult | void>;
let client: DynamoDBClient;
let store: EventStore;
let handler: Handler;
let errorLines: string[] = [];
const spec = () => synthInventory().spec;

beforeAll(async () => {
  client = localClient();
  const table = await createEventStoreTable(client);
  store = new EventStore({ tableName: table, domain: 'inventory', client });
  Object.assign(process.env, { SKAFU_DOMAIN: 'inventory', SKAFU_EVENT_STORE_TABLE: table });
  delete process.env.SKAFU_ERROR_BUS_NAME;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    handler = (require(bundle()) as { handler: Handler }).handler;
  });
});
afterAll(() => client.destroy());
beforeEach(() => {
  errorLines = [];
  jest.spyOn(console, 'error').mockImplementation((line: unknown) => void errorLines.push(String(line)));
});
afterEach(() => jest.restoreAllMocks());

const call = async (method: string, resource: string, options: ApiEventOptions & { groups?: string } = {}) => {
  const event = apiEvent(method, resource, options) as any;
  if (options.groups !== undefined) event.requestContext.authorizer.groups = options.groups;
  if (options.userId === '') delete event.requestContext.authorizer.userId;
  const res = (await handler(event, { functionName: 'inventory-commands' })) as APIGatewayProxyResult;
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, any>, headers: res.headers ?? {} };
};
const register = async (userId = 'alice', initialStock = 10) => {
  const res = await call('POST', PRODUCTS, { body: { name: 'Widget', initialStock }, userId });
  expect(res.status).toBe(201);
  return res.body.aggregateId as string;
};
const adjust = (productId: string, delta: number, options: ApiEventOptions & { groups?: string } = {}) =>
  call('POST', STOCK, { userId: 'alice', ...options, pathParameters: { productId }, body: { delta } });
const discontinue = (productId: string, options: ApiEventOptions & { groups?: string } = {}) =>
  call('POST', DISCONTINUE, { userId: 'alice', ...options, pathParameters: { productId }, body: options.body ?? {} });
const types = async (id: string) => (await store.load(id)).map((e) => e.eventType);
const declaredFold = () => new DeclaredStateFold(spec().aggregates![0], new EventUpcaster(spec().upcasters!, spec().eventVersions!));
const stateOf = async (id: string) => loadDeclaredState(store, id, declaredFold());

describe('inventory rules', () => {
  test('no negative stock, no double discontinue, no adjust after discontinue: 409 with the guard name, nothing written', async () => {
    const id = await register('alice', 10);
    expect((await adjust(id, -4)).status).toBe(202);
    const negative = await adjust(id, -7);
    expect(negative).toMatchObject({ status: 409, body: { error: 'InsufficientStock', message: 'stock cannot go below zero', command: 'AdjustStock', correlationId: expect.any(String) } });
    expect(await types(id)).toEqual(['ProductRegistered', 'StockAdjusted']);
    expect((await adjust(id, -6)).status).toBe(202); // exactly to zero is allowed

    const first = await discontinue(id, { body: { reason: 'end of line' } });
    expect(first.status).toBe(202);
    // Two events in one atomic commit, both reported.
    expect(first.body.events).toEqual([
      { eventId: expect.any(String), eventType: 'ProductDiscontinued', eventSequence: 4 },
      { eventId: expect.any(String), eventType: 'ListingRemoved', eventSequence: 5 },
    ]);
    expect(first.headers.ETag).toBe('"5"');
    const again = await discontinue(id);
    expect(again).toMatchObject({ status: 409, body: { error: 'AlreadyDiscontinued', message: "DiscontinueProduct refused: state.status != 'DISCONTINUED'" } });
    const after = await adjust(id, 5);
    expect(after).toMatchObject({ status: 409, body: { error: 'ProductDiscontinued' } });
    expect(await types(id)).toEqual(['ProductRegistered', 'StockAdjusted', 'StockAdjusted', 'ProductDiscontinued', 'ListingRemoved']);
    const stored = await store.load(id);
    expect(stored[3].data).toEqual({ reason: 'end of line', productId: id });
    expect(stored[4].data).toEqual({ productId: id }); // includeBody: false
    expect(stored[3].correlationId).toBe(stored[4].correlationId);
    expect((await stateOf(id)).state).toMatchObject({ status: 'DISCONTINUED', stock: 0, adjustments: 2 });
    // A guard failure is a business answer, not an error event.
    expect(errorLines).toEqual([]);
  });

  test('the state loads from a snapshot (every 3 events) and equals the fold of the whole stream', async () => {
    const id = await register('alice', 1);
    for (let i = 0; i < 4; i++) expect((await adjust(id, 1)).status).toBe(202);
    const fold = new DeclaredStateFold(spec().aggregates![0], new EventUpcaster(spec().upcasters!, spec().eventVersions!));
    const snapshot = await store.loadSnapshot(id, fold.reducerVersion);
    expect(snapshot?.version).toBe(3);
    expect(await loadDeclaredState(store, id, fold)).toEqual(fold.fold(await store.load(id)));
    expect((await stateOf(id)).state.stock).toBe(5);
    // The handler reads the snapshot too: the guard sees stock 5.
    expect((await adjust(id, -6)).body.error).toBe('InsufficientStock');
    expect((await adjust(id, -5)).status).toBe(202);
  });

  test('ownership matrix: owner, another developer, an Admin, no user, a look-alike group', async () => {
    const id = await register('alice', 100);
    const cases: Array<[string, string, string, number]> = [
      ['owner', 'alice', 'Developer', 202],
      ['another developer', 'bob', 'Developer', 403],
      ['admin who is not the owner', 'carol', 'Admin', 202],
      ['admin among other groups', 'carol', 'Developer,Admin', 202],
      ['a look-alike group', 'mallory', 'Administrators,admin', 403],
      ['no user id', '', 'Developer', 403],
    ];
    for (const [label, userId, groups, status] of cases) {
      const res = await adjust(id, 1, { userId, groups });
      expect({ label, status: res.status }).toEqual({ label, status });
      if (status === 403) expect(res.body).toMatchObject({ error: 'NotOwner', message: expect.stringContaining('Admin') });
    }
    expect((await discontinue(id, { userId: 'bob' })).status).toBe(403);
    expect(await types(id)).toEqual(['ProductRegistered', 'StockAdjusted', 'StockAdjusted', 'StockAdjusted']);
    // A command without ownership stays open to the route's groups.
    expect((await call('POST', RENAME, { userId: 'bob', pathParameters: { productId: id }, body: { name: 'Gadget', locale: 'fr' } })).status).toBe(202);
    expect((await discontinue(id, { userId: 'carol', groups: 'Admin' })).status).toBe(202);
  });

  test('hostile ids: another type\'s stream, another domain\'s stream, a missing aggregate, a stale If-Match', async () => {
    const otherType = `other-${randomUUID()}`;
    await store.append(otherType, [{ eventType: 'CartCreated', data: { stock: 1000, status: 'ACTIVE' }, metadata: { userId: 'alice' } }], { expectedVersion: 'no-stream', aggregateType: 'Cart' });
    expect(await adjust(otherType, 1)).toMatchObject({ status: 404, body: { error: 'AggregateNotFound' } });
    const foreign = `foreign-${randomUUID()}`;
    const otherDomain = new EventStore({ tableName: store.tableName, domain: 'suppliers', client });
    await otherDomain.append(foreign, [{ eventType: 'ProductRegistered', data: { name: 'x', initialStock: 5 }, metadata: { userId: 'alice' } }], { expectedVersion: 'no-stream', aggregateType: 'Product' });
    expect(await adjust(foreign, 1)).toMatchObject({ status: 404, body: { error: 'AggregateNotFound' } });
    expect((await adjust(`product-${randomUUID()}`, 1)).status).toBe(404);
    expect(await types(otherType)).toEqual(['CartCreated']);
    // Streams are per domain (issue 10's key layout): nothing was written here, and the other domain's stream is intact.
    expect(await types(foreign)).toEqual([]);
    expect((await otherDomain.load(foreign)).map((e) => e.eventType)).toEqual(['ProductRegistered']);

    const id = await register('alice', 5);
    const stale = await adjust(id, 1, { headers: { 'If-Match': '"7"' } });
    expect(stale).toMatchObject({ status: 409, body: { error: 'VersionConflict', expectedVersion: 7, actualVersion: 1 } });
    expect((await adjust(id, 1, { headers: { 'If-Match': '"1"' } })).status).toBe(202);
    expect(await types(id)).toEqual(['ProductRegistered', 'StockAdjusted']);
  });

  test('a retried command replays its first answer even though its guard would now refuse it; a reused key is refused', async () => {
    const id = await register('alice', 5);
    const first = await discontinue(id, { headers: { 'Idempotency-Key': 'disc-1' } });
    expect(first.status).toBe(202);
    const retry = await discontinue(id, { headers: { 'Idempotency-Key': 'disc-1' } });
    expect(retry).toMatchObject({ status: 202, body: { eventId: first.body.eventId }, headers: { 'Idempotent-Replayed': 'true' } });
    const reused = await discontinue(id, { headers: { 'Idempotency-Key': 'disc-1' }, body: { reason: 'other' } });
    expect(reused).toMatchObject({ status: 409, body: { error: 'IdempotencyKeyReused' } });
    // Another user's key of the same name is theirs: the guard answers.
    expect((await discontinue(id, { userId: 'carol', groups: 'Admin', headers: { 'Idempotency-Key': 'disc-1' } })).body.error).toBe('AlreadyDiscontinued');
    expect(await types(id)).toEqual(['ProductRegistered', 'ProductDiscontinued', 'ListingRemoved']);
  });

  test('a racing writer: guards hold under concurrency (no stock below zero with 10 parallel -1 on stock 5)', async () => {
    const id = await register('alice', 5);
    const results = await Promise.all(Array.from({ length: 10 }, () => adjust(id, -1)));
    const accepted = results.filter((r) => r.status === 202).length;
    expect(accepted).toBeLessThanOrEqual(5);
    for (const r of results.filter((x) => x.status !== 202)) expect(['InsufficientStock', 'VersionConflict']).toContain(r.body.error);
    const state = await stateOf(id);
    expect(state.state.stock).toBe(5 - accepted);
    expect(state.state.stock).toBeGreaterThanOrEqual(0);
  });
});

describe('event schema versions', () => {
  test('a stored v1 ProductRenamed (title) folds as v2 (name, default locale); new ones are stored as v2', async () => {
    const id = await register('alice', 1);
    // An event written by the previous deployment, at v1.
    await store.append(id, [{ eventType: 'ProductRenamed', eventVersion: 1, data: { title: 'Old name' }, metadata: { userId: 'alice' } }], { expectedVersion: 1, aggregateType: 'Product' });
    expect((await stateOf(id)).state).toMatchObject({ name: 'Old name', locale: 'en' });
    // The same fold, from the environment, as a custom handler gets it (the declared states, upcasters and event
    // versions: what EventSourcedDomain puts in a custom command handler's SKAFU_DOMAIN_SPEC).
    const { aggregates, upcasters, eventVersions } = spec();
    process.env.SKAFU_DOMAIN_SPEC = encodeDomainSpec({ domain: 'inventory', commands: [], queries: [], aggregates, upcasters, eventVersions });
    expect((await loadDeclaredState(store, id, DeclaredStateFold.fromEnvironment('Product'))).state).toMatchObject({ name: 'Old name', locale: 'en' });
    const res = await call('POST', RENAME, { userId: 'alice', pathParameters: { productId: id }, body: { name: 'New name', locale: 'de' } });
    expect(res.status).toBe(202);
    const [, v1, v2] = await store.load(id);
    expect([v1.eventVersion, v1.data]).toEqual([1, { title: 'Old name' }]); // stored events never change
    expect([v2.eventVersion, v2.data]).toEqual([2, { name: 'New name', locale: 'de' }]);
    expect((await stateOf(id)).state).toMatchObject({ name: 'New name', locale: 'de' });
  });

  test('a stored version newer than the handler knows fails loudly (500, reported), never folds silently', async () => {
    const id = await register('alice', 1);
    await store.append(id, [{ eventType: 'ProductRenamed', eventVersion: 3, data: { label: 'x' } }], { expectedVersion: 1, aggregateType: 'Product' });
    const res = await adjust(id, 1);
    expect(res).toMatchObject({ status: 500, body: { error: 'InternalError' } });
    expect(errorLines.join('\n')).toContain('ProductRenamed v3 is newer than the v2 this handler knows');
    expect(await types(id)).toEqual(['ProductRegistered', 'ProductRenamed']);
  });
});

describe('reactions', () => {
  const delisted = (productId: string, eventId = randomUUID()) => ({
    'version': '0',
    'id': randomUUID(), // EventBridge's id changes on every put; the envelope's eventId does not
    'source': 'skafu.suppliers',
    'detail-type': 'SupplierProductDelisted',
    'detail': { eventId, eventType: 'SupplierProductDelisted', correlationId: `corr-${eventId.slice(0, 8)}`, source: 'skafu.suppliers', data: { productId }, metadata: {} },
  });

  test('delivered twice and out of order, each event issues its command once, caused by the event', async () => {
    const a = await register('alice', 3);
    const b = await register('bob', 3);
    const ea = delisted(a);
    const eb = delisted(b);
    for (const e of [eb, ea, { ...eb, id: randomUUID() }, ea, eb]) await expect(handler(e)).resolves.toBeUndefined();
    for (const [id, e] of [[a, ea], [b, eb]] as const) {
      const stream = await store.load(id);
      expect(stream.map((x) => x.eventType)).toEqual(['ProductRegistered', 'ProductDiscontinued', 'ListingRemoved']);
      expect(stream[1]).toMatchObject({ causationId: e.detail.eventId, correlationId: e.detail.correlationId, data: { productId: id, reason: 'supplier delisted the product' } });
      expect(stream[1].metadata.userId).toBeUndefined(); // issued by the platform, not by a user: ownership does not apply
    }
    expect(errorLines).toEqual([]);
  });

  test('a refused reaction (guard, missing aggregate, unusable event) is reported on the error bus and not retried', async () => {
    const id = await register('alice', 3);
    expect((await discontinue(id)).status).toBe(202); // discontinued by its owner first
    await expect(handler(delisted(id))).resolves.toBeUndefined();
    await expect(handler(delisted(`product-${randomUUID()}`))).resolves.toBeUndefined();
    await expect(handler({ ...delisted(id), detail: { eventId: '../../x', data: { productId: id } } })).resolves.toBeUndefined();
    await expect(handler({ ...delisted(id), detail: { eventId: randomUUID(), data: { productId: { __proto__: 'x' } } } })).resolves.toBeUndefined();
    const reports = errorLines.map((l) => JSON.parse(l).detail).filter((d) => d?.errorType === 'ReactionRejected');
    expect(reports.map((r) => r.context.error ?? r.message)).toEqual([
      'AlreadyDiscontinued',
      'AggregateNotFound',
      expect.stringContaining('no usable eventId'),
      expect.stringContaining('path parameter productId has no string value'),
    ]);
    expect(reports.every((r) => r.metadata.retryable === false && r.context.reaction === 'DiscontinueDelistedProduct')).toBe(true);
    expect(await types(id)).toEqual(['ProductRegistered', 'ProductDiscontinued', 'ListingRemoved']);
  });

  test('an event no reaction is declared for is reported, not run', async () => {
    await expect(handler({ ...delisted('x'), 'detail-type': 'SupplierCreated' })).resolves.toBeUndefined();
    expect(errorLines.join('\n')).toContain('no reaction of inventory is declared for skafu.suppliers SupplierCreated');
  });
});

describe('query ownership (bundled query handler)', () => {
  const LIST = '/api/v1/inventory/products';
  const GET = '/api/v1/inventory/products/{productId}';
  let query: ReturnType<typeof createQueryHandler>;
  beforeAll(async () => {
    const { templates } = synthInventory();
    const table = Object.values(templates).flatMap((t) => Object.values(t.Resources ?? {}) as any[]).find((r) => r.Type === 'AWS::DynamoDB::Table' && r.Properties.KeySchema[0].AttributeName === 'productId');
    const name = `products-${randomUUID()}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(table.Properties, name)));
    const doc = DynamoDBDocumentClient.from(client);
    const items = Array.from({ length: 9 }, (_, i) => ({ productId: `p-${i}`, ownerId: ['alice', 'bob', 'carol'][i % 3], name: `P${i}` }));
    await doc.send(new BatchWriteCommand({ RequestItems: { [name]: [...items, { productId: 'p-orphan', name: 'no owner' }].map((Item) => ({ PutRequest: { Item } })) } }));
    query = createQueryHandler({
      spec: spec(),
      doc,
      tables: { products: name },
      tools: powertools('test'),
      reporter: new ErrorReporter({ component: 'inventory', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
    });
  });
  const ask = async (resource: string, userId: string, groups: string, options: ApiEventOptions = {}) => {
    const event = apiEvent('GET', resource, { ...options, userId }) as any;
    event.requestContext.authorizer.groups = groups;
    if (userId === '') delete event.requestContext.authorizer.userId;
    const res = await query(event);
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, any> };
  };

  test('a list returns only the caller\'s items, across pages; an Admin sees all; no user id is refused', async () => {
    const all = async (userId: string, groups: string) => {
      const ids: string[] = [];
      let token: string | undefined;
      do {
        const page = await ask(LIST, userId, groups, { queryStringParameters: { limit: '2', ...(token ? { nextToken: token } : {}) } });
        expect(page.status).toBe(200);
        ids.push(...page.body.items.map((i: { productId: string }) => i.productId));
        token = page.body.nextToken;
      } while (token);
      return ids.sort();
    };
    expect(await all('alice', 'Developer')).toEqual(['p-0', 'p-3', 'p-6']);
    expect(await all('bob', 'Developer')).toEqual(['p-1', 'p-4', 'p-7']);
    expect(await all('mallory', 'Developer,Administrators')).toEqual([]);
    expect(await all('carol', 'Admin')).toHaveLength(10);
    expect(await ask(LIST, '', 'Developer')).toMatchObject({ status: 403, body: { error: 'NotOwner' } });
  });

  test('a get of another user\'s item is 403 NotOwner; the owner and an Admin read it', async () => {
    expect(await ask(GET, 'alice', 'Developer', { pathParameters: { productId: 'p-0' } })).toMatchObject({ status: 200, body: { item: { productId: 'p-0' } } });
    expect(await ask(GET, 'bob', 'Developer', { pathParameters: { productId: 'p-0' } })).toMatchObject({ status: 403, body: { error: 'NotOwner', message: expect.stringContaining('Admin') } });
    expect(await ask(GET, 'bob', 'Developer', { pathParameters: { productId: 'p-orphan' } })).toMatchObject({ status: 403 });
    expect(await ask(GET, 'carol', 'Admin', { pathParameters: { productId: 'p-0' } })).toMatchObject({ status: 200 });
    expect(await ask(GET, 'bob', 'Developer', { pathParameters: { productId: 'p-missing' } })).toMatchObject({ status: 404 });
  });
});
