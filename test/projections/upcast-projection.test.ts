/**
 * Issue 15, "an upcast of a v1 event into v2 state and projection": the inventory domain (test/support/inventory.ts)
 * synthesized on a platform; a ProductRenamed stored at v1 (`title`, no `locale`) by the previous deployment is
 * projected after the schema moved to v2 (`name`, `locale`). Commands go through the BUNDLED command handler, the
 * events through the SYNTHESIZED projection definition (aws-local-stepfunctions), everything against DynamoDB
 * Local; the rebuild of the read model from the store must give the same items as the live projection.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { CreateTableCommand, GetItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { SkafuPlatform } from '../../src';
import { streamKey } from '../../src/projections/keys';
import { runRebuildStep } from '../../src/projections/rebuild.runtime';
import { DeclaredStateFold, encodeDomainSpec, EventStore, loadDeclaredState, type EventEnvelope } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { definitionFrom, runLocal, validateAsl } from '../support/asl';
import { inventory } from '../support/inventory';
import { assetDirectory, outdirOf, provideRuntimeSdk, shippedDomainSpec } from '../support/shipped';
import { createTableInputFromCfn, localClient } from '../support/tables';

type Handler = (event: unknown, context?: unknown) => Promise<APIGatewayProxyResult | void>;

let client: DynamoDBClient;
let store: EventStore;
let handler: Handler;
let definition: Record<string, any>;
const tables: Record<string, string> = {};
const byKey: Record<string, string> = {};
const errors: Array<Record<string, any>> = [];
let readModelResource: any;

beforeAll(async () => {
  client = localClient();
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false }).addDomain(inventory);
  const template = Template.fromStack(stack);
  for (const [logicalId, resource] of Object.entries(template.findResources('AWS::DynamoDB::Table'))) {
    tables[logicalId] = `${logicalId.slice(0, 60)}-${randomUUID().slice(0, 8)}`;
    const key: string = (resource as any).Properties.KeySchema[0].AttributeName;
    byKey[key] ??= tables[logicalId];
    if (key === 'productId') readModelResource = (resource as any).Properties;
    await client.send(new CreateTableCommand(createTableInputFromCfn((resource as any).Properties, tables[logicalId])));
  }
  const refs: Record<string, string> = { ...tables };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine')).filter((m: any) => JSON.stringify(m.Properties.DefinitionString).includes('inventory'));
  definition = definitionFrom(machine as never, refs);
  validateAsl(definition);

  const [fn] = Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Description: 'Skafu inventory command handler' } })) as any[];
  const storeTable = Object.entries(tables).find(([id]) => /EventStore/.test(id) && !/Idempotency/.test(id))![1];
  store = new EventStore({ tableName: storeTable, domain: 'inventory', client });
  // The command handler exactly as synthesized (the bundle with the inventory spec and validators in its asset);
  // the test's own fold reads the same spec from the environment, as a custom handler's would.
  const outdir = outdirOf(stack);
  provideRuntimeSdk(outdir);
  const bundle = path.join(assetDirectory(outdir, fn), 'index.js');
  Object.assign(process.env, { SKAFU_DOMAIN: 'inventory', SKAFU_DOMAIN_SPEC: encodeDomainSpec(shippedDomainSpec(outdir, fn)), SKAFU_EVENT_STORE_TABLE: storeTable });
  delete process.env.SKAFU_ERROR_BUS_NAME;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    handler = (require(bundle) as { handler: Handler }).handler;
  });
});
afterAll(() => client.destroy());

const call = async (method: string, resource: string, body: unknown, pathParameters?: Record<string, string>) => {
  const res = (await handler(apiEvent(method, resource, { body, userId: 'alice', pathParameters }), { functionName: 'inventory-commands' })) as APIGatewayProxyResult;
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, any> };
};
const products = () => byKey.productId;

/** Every event of the stream not yet projected, through the synthesized definition, as the bus carries it. */
async function project(id: string, from = 1): Promise<EventEnvelope[]> {
  const events = (await store.load(id)).filter((e) => e.eventSequence >= from);
  for (const e of events) {
    const detail = { ...e, timestampEpochSeconds: Math.floor(Date.parse(e.timestamp) / 1000) };
    const onPutEvents = (entries: Array<Record<string, unknown>>) => errors.push(...entries.map((x) => (typeof x.Detail === 'string' ? JSON.parse(x.Detail) : x.Detail) as Record<string, any>));
    // A parked event fails its execution (ProjectionEventParked); nothing else may.
    await runLocal(definition, { 'detail-type': e.eventType, 'source': 'skafu.inventory', detail }, { client, onPutEvents }).catch(
      (err: { cause?: { name?: string } }) => expect(err.cause?.name).toBe('ProjectionEventParked'),
    );
  }
  return events;
}
const item = async (table: string, productId: string) => {
  const out = await client.send(new GetItemCommand({ TableName: table, Key: { productId: { S: productId } }, ConsistentRead: true }));
  return out.Item ? unmarshall(out.Item) : undefined;
};

test('a v1 ProductRenamed stored before v2, projected after: the read model holds the v2 fields the state folds; a rebuild gives the same items', async () => {
  const registered = await call('POST', '/api/v1/inventory/products', { name: 'Widget', initialStock: 10 });
  expect(registered.status).toBe(201);
  const id = registered.body.aggregateId as string;
  // Written by the previous deployment, when ProductRenamed was v1 and called the name `title`.
  await store.append(id, [{ eventType: 'ProductRenamed', eventVersion: 1, data: { title: 'Old name' }, metadata: { userId: 'alice' } }], { expectedVersion: 1, aggregateType: 'Product' });
  await project(id);

  const state = (await loadDeclaredState(store, id, DeclaredStateFold.fromEnvironment('Product'))).state;
  expect(state).toMatchObject({ name: 'Old name', locale: 'en' });
  expect(await item(products(), id)).toEqual({ productId: id, name: state.name, locale: state.locale, renamedVersion: 2, ownerId: 'alice', stock: 10, status: 'ACTIVE' });
  // The stored event never changes.
  expect((await store.load(id))[1]).toMatchObject({ eventVersion: 1, data: { title: 'Old name' } });

  // A v2 rename through the bundled handler, projected as it is.
  expect((await call('POST', '/api/v1/inventory/products/{productId}/name', { name: 'New name', locale: 'de' }, { productId: id })).status).toBe(202);
  await project(id, 3);
  expect(await item(products(), id)).toMatchObject({ name: 'New name', locale: 'de', renamedVersion: 2 });
  expect(errors).toEqual([]);

  // The rebuild reads the store (stored v1 events included) and upgrades them with the definition's own states.
  const target = `products-rebuilt-${randomUUID().slice(0, 8)}`;
  await freshTable(target);
  const progress = await runRebuildStep(
    { client, eventStoreTable: store.tableName, domain: 'inventory', aggregateTypes: ['Product'], definition: definition as never, readModelTable: products(), targetTable: target, stateTable: byKey.rebuildId, rebuildId: `r-${randomUUID().slice(0, 8)}` },
    Date.now() + 60_000,
  );
  expect(progress.status).toBe('CAUGHT_UP');
  expect(await item(target, id)).toEqual(await item(products(), id));
});

test('a stored v1 event the upgrade cannot complete is parked upgraded and reported once, live and in a rebuild alike', async () => {
  const registered = await call('POST', '/api/v1/inventory/products', { name: 'Gadget', initialStock: 1 });
  const id = registered.body.aggregateId as string;
  // No title: the upgraded event has no `name`, which the projection reads (the fold sets name to null).
  await store.append(id, [{ eventType: 'ProductRenamed', eventVersion: 1, data: { note: 'x' }, metadata: { userId: 'alice' } }], { expectedVersion: 1, aggregateType: 'Product' });
  errors.length = 0;
  await project(id);
  expect(errors.map((e) => [e.errorType, e.metadata.failure.Error])).toEqual([['ProjectionFailed', 'Skafu.InvalidEvent']]);
  // Parked under the products read model's own key (checkpoints and parking are per read model).
  const parked = await client.send(
    new QueryCommand({ TableName: parkingTable(), KeyConditionExpression: 'aggregateId = :a', ExpressionAttributeValues: { ':a': { S: streamKey('products', id) } } }),
  );
  const [row] = (parked.Items ?? []).map((i) => unmarshall(i));
  expect(row).toMatchObject({ eventSequence: 2, status: 'PARKED', reason: 'InvalidEvent' });
  // Parked as projected: upgraded to v2, so that a replay projects what this execution saw.
  expect(JSON.parse(row.event)).toMatchObject({ eventVersion: 2, data: { note: 'x', locale: 'en' } });
  expect(await item(products(), id)).toMatchObject({ name: 'Gadget', status: 'ACTIVE' });

  const target = `products-rebuilt-${randomUUID().slice(0, 8)}`;
  await freshTable(target);
  const progress = await runRebuildStep(
    { client, eventStoreTable: store.tableName, domain: 'inventory', aggregateTypes: ['Product'], definition: definition as never, readModelTable: products(), targetTable: target, stateTable: byKey.rebuildId, rebuildId: `r-${randomUUID().slice(0, 8)}` },
    Date.now() + 60_000,
  );
  expect(progress.status).toBe('CAUGHT_UP_WITH_FAILURES');
  // Stopped at the same event, for the same reason (the rebuild evaluates the writes without the Check states).
  expect(progress.failures).toEqual([{ aggregateId: id, eventSequence: 2, error: expect.stringContaining('$.detail.data.name does not exist') }]);
  expect(await item(target, id)).toEqual(await item(products(), id));
});

/** A table like the products read model (the rebuild's target). */
async function freshTable(name: string): Promise<void> {
  await client.send(new CreateTableCommand(createTableInputFromCfn(readModelResource, name)));
}

function parkingTable(): string {
  return Object.entries(tables).find(([id]) => /ParkedEvents/.test(id))![1];
}

test('an event whose version the upcast states cannot upgrade is parked by the read model under its own key', async () => {
  const registered = await call('POST', '/api/v1/inventory/products', { name: 'Gizmo', initialStock: 2 });
  const id = registered.body.aggregateId as string;
  await store.append(id, [{ eventType: 'ProductRenamed', eventVersion: 1, data: { title: 'T' }, metadata: { userId: 'alice' } }], { expectedVersion: 1, aggregateType: 'Product' });
  // The store refuses versions that are not positive integers; the bus may still carry one (a producer outside
  // Skafu, a hand-written republish): delivered as version 0, which no upcaster starts from.
  const [first, second] = await store.load(id);
  errors.length = 0;
  for (const [event, eventVersion] of [[first, first.eventVersion], [second, 0]] as const) {
    const detail = { ...event, eventVersion, timestampEpochSeconds: Math.floor(Date.parse(event.timestamp) / 1000) };
    const onPutEvents = (entries: Array<Record<string, unknown>>) => errors.push(...entries.map((x) => (typeof x.Detail === 'string' ? JSON.parse(x.Detail) : x.Detail) as Record<string, any>));
    await runLocal(definition, { 'detail-type': event.eventType, 'source': 'skafu.inventory', detail }, { client, onPutEvents }).catch(
      (err: { cause?: { name?: string } }) => expect(err.cause?.name).toBe('ProjectionEventParked'),
    );
  }
  expect(errors.map((e) => [e.errorType, e.metadata.failure.Error])).toEqual([['ProjectionFailed', 'Skafu.InvalidEventVersion']]);
  const parked = await client.send(
    new QueryCommand({ TableName: parkingTable(), KeyConditionExpression: 'aggregateId = :a', ExpressionAttributeValues: { ':a': { S: streamKey('products', id) } } }),
  );
  expect((parked.Items ?? []).map((i) => unmarshall(i))).toEqual([expect.objectContaining({ eventSequence: 2, status: 'PARKED' })]);
  // The read model still holds what the first event wrote; nothing of the parked event.
  expect(await item(products(), id)).toMatchObject({ name: 'Gizmo', status: 'ACTIVE' });
});
