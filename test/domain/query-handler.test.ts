/** The bundled query handler against DynamoDB Local, on read-model tables made from the example templates. */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { createQueryHandler } from '../../src/domain/query.lambda';
import { powertools } from '../../src/internal/powertools';
import { ErrorReporter } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { exampleDomainSpec, synthExample } from '../support/example';
import { createTableInputFromCfn, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
const tables: Record<string, string> = {};

/** Creates the example's read-model table whose handler env names it, under a unique name. */
async function readModelTable(envName: string): Promise<string> {
  const { templates } = synthExample();
  for (const template of Object.values(templates)) {
    const resources = template.Resources as Record<string, any>;
    for (const fn of Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Function')) {
      const ref = fn.Properties?.Environment?.Variables?.[envName]?.Ref;
      if (ref && resources[ref]) {
        const name = `rm-${randomUUID()}`;
        await client.send(new CreateTableCommand(createTableInputFromCfn(resources[ref].Properties, name)));
        return name;
      }
    }
  }
  // The platform keeps read models in its own stack: the nested template passes the name in as a parameter.
  const pascal = envName.replace(/^SKAFU_READ_MODEL_/, '').toLowerCase().replace(/(^|_)([a-z0-9])/g, (_m, _u, c: string) => c.toUpperCase());
  for (const template of Object.values(templates)) {
    const found = Object.entries(template.Resources as Record<string, any>).find(([id, r]) => r.Type === 'AWS::DynamoDB::Table' && id.includes(`ReadModel${pascal}Table`));
    if (found) {
      const name = `rm-${randomUUID()}`;
      await client.send(new CreateTableCommand(createTableInputFromCfn(found[1].Properties, name)));
      return name;
    }
  }
  throw new Error(`no table for ${envName}`);
}

beforeAll(async () => {
  client = localClient();
  doc = DynamoDBDocumentClient.from(client);
  tables.metrics = await readModelTable('SKAFU_READ_MODEL_METRICS');
  tables.alerts = await readModelTable('SKAFU_READ_MODEL_ALERTS');
  const metrics = Array.from({ length: 12 }, (_, i) => ({ name: 'cpu', collectedAt: `2026-01-01T00:${String(i).padStart(2, '0')}:00.000Z`, value: i }));
  const alerts = Array.from({ length: 7 }, (_, i) => ({ alertId: `alert-${i}`, name: `A${i}`, severity: i % 2 ? 'high' : 'low', triggerCount: i }));
  for (const [table, items] of [[tables.metrics, [...metrics, { name: 'mem', collectedAt: '2026-01-01T00:00:00.000Z', value: 1 }]], [tables.alerts, alerts]] as const) {
    for (let i = 0; i < items.length; i += 25) {
      await doc.send(new BatchWriteCommand({ RequestItems: { [table]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })) } }));
    }
  }
});
afterAll(() => client.destroy());

function handler(tableOverrides: Record<string, string> = {}) {
  return createQueryHandler({
    spec: exampleDomainSpec('observability'),
    doc,
    tables: { ...tables, ...tableOverrides },
    tools: powertools('test'),
    reporter: new ErrorReporter({ component: 'observability', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
  });
}
const json = (r: APIGatewayProxyResult) => JSON.parse(r.body) as Record<string, any>;
const METRICS = '/api/v1/observability/metrics';
const ALERTS = '/api/v1/observability/alerts';
const ALERT = '/api/v1/observability/alerts/{alertId}';

test('get by key: 200 with the item, 404 when absent', async () => {
  const found = await handler()(apiEvent('GET', ALERT, { pathParameters: { alertId: 'alert-3' }, correlationId: 'c-get' }));
  expect(found.statusCode).toBe(200);
  expect(json(found)).toEqual({ item: { alertId: 'alert-3', name: 'A3', severity: 'high', triggerCount: 3 }, correlationId: 'c-get' });
  const missing = await handler()(apiEvent('GET', ALERT, { pathParameters: { alertId: 'alert-99' } }));
  expect(missing.statusCode).toBe(404);
  expect(json(missing)).toMatchObject({ error: 'NotFound' });
});

test('list by partition key with a sort-key range, newest first, paginated with an opaque token', async () => {
  const h = handler();
  const page1 = json(await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', from: '2026-01-01T00:02:00.000Z', to: '2026-01-01T00:09:00.000Z', limit: '3' } })));
  expect(page1.items.map((i: { value: number }) => i.value)).toEqual([9, 8, 7]);
  expect(page1.nextToken).toEqual(expect.any(String));
  const seen = [...page1.items];
  let token = page1.nextToken;
  while (token) {
    const page = json(await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', from: '2026-01-01T00:02:00.000Z', to: '2026-01-01T00:09:00.000Z', limit: '3', nextToken: token } })));
    seen.push(...page.items);
    token = page.nextToken;
  }
  expect(seen.map((i) => i.value)).toEqual([9, 8, 7, 6, 5, 4, 3, 2]);
  const other = json(await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'mem' } })));
  expect(other.items).toEqual([{ name: 'mem', collectedAt: '2026-01-01T00:00:00.000Z', value: 1 }]);
});

test('list without a key condition (scan) with an equality filter', async () => {
  const h = handler();
  const all: Array<Record<string, unknown>> = [];
  let token: string | undefined;
  do {
    const page = json(await h(apiEvent('GET', ALERTS, { queryStringParameters: { severity: 'high', ...(token ? { nextToken: token } : {}) } })));
    all.push(...page.items);
    token = page.nextToken;
  } while (token);
  expect(all.map((a) => a.alertId).sort()).toEqual(['alert-1', 'alert-3', 'alert-5']);
});

test('400: a required parameter missing, a bad limit, a forged token; 404 an undeclared route', async () => {
  const h = handler();
  const missing = await h(apiEvent('GET', METRICS, { queryStringParameters: {} }));
  expect(missing.statusCode).toBe(400);
  expect(json(missing).message).toBe("query parameter 'name' is required");
  expect((await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', limit: '100000' } }))).statusCode).toBe(400);
  expect((await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', limit: '0' } }))).statusCode).toBe(400);
  const forged = await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', nextToken: Buffer.from('{"name":{"S":"x"}}').toString('base64url') } }));
  expect(forged.statusCode).toBe(400);
  expect(json(forged).message).toBe('nextToken is not a token this query returned');
  expect((await h(apiEvent('GET', '/api/v1/observability/nothing'))).statusCode).toBe(404);
  expect((await h(apiEvent('POST', ALERTS))).statusCode).toBe(404);
});

test('[mocked EventBridge] 500 when the read model is unreachable, reported on the error bus', async () => {
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
  const res = await handler({ alerts: 'no-such-table' })(apiEvent('GET', ALERT, { pathParameters: { alertId: 'x' }, correlationId: 'c-500' }));
  expect(res.statusCode).toBe(500);
  expect(json(res)).toEqual({ error: 'InternalError', message: 'Internal error', correlationId: 'c-500' });
  expect(JSON.parse(eventBridge.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0].Detail!)).toMatchObject({ correlationId: 'c-500', context: { domain: 'observability' } });
});
