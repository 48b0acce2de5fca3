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

function handler(tableOverrides: Record<string, string> = {}, spec = exampleDomainSpec('observability')) {
  return createQueryHandler({
    spec,
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
  expect(json(forged)).toMatchObject({ error: 'InvalidNextToken', message: 'nextToken is not a token this query returned', parameter: 'nextToken' });
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

describe('hostile and careless clients: 400 naming the parameter, never a 500', () => {
  const reencode = (token: string, change: (t: Record<string, any>) => unknown) => {
    const decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    return Buffer.from(JSON.stringify(change(decoded) ?? decoded), 'utf8').toString('base64url');
  };
  const cpu = { name: 'cpu', from: '2026-01-01T00:02:00.000Z', to: '2026-01-01T00:09:00.000Z', limit: '2' };

  test('forged, altered and misplaced pagination tokens answer 400 InvalidNextToken', async () => {
    const h = handler();
    const real = json(await h(apiEvent('GET', METRICS, { queryStringParameters: cpu }))).nextToken as string;
    const scanToken = json(await h(apiEvent('GET', ALERTS, { queryStringParameters: { limit: '2' } }))).nextToken as string;
    expect(real).toEqual(expect.any(String));
    const forgeries: Array<[string, Record<string, string>]> = [
      ['garbage', { ...cpu, nextToken: 'not a token!' }],
      ['empty object', { ...cpu, nextToken: Buffer.from('{}').toString('base64url') }],
      ['a bare key (no query binding)', { ...cpu, nextToken: Buffer.from(JSON.stringify({ name: 'cpu', collectedAt: '2026-01-01T00:05:00.000Z' })).toString('base64url') }],
      ['another query\'s token', { ...cpu, nextToken: scanToken }],
      ['another route', { ...cpu, nextToken: reencode(real, (t) => void (t.r = ALERTS)) }],
      ['another partition in the key', { ...cpu, nextToken: reencode(real, (t) => void (t.k.name = 'mem')) }],
      ['the token with another partition parameter', { ...cpu, name: 'mem' }],
      ['a key outside the requested range', { ...cpu, to: '2026-01-01T00:03:00.000Z' }],
      ['an extra attribute', { ...cpu, nextToken: reencode(real, (t) => void (t.k.extra = 'x')) }],
      ['a missing attribute', { ...cpu, nextToken: reencode(real, (t) => void delete t.k.collectedAt) }],
      ['a wrongly typed attribute', { ...cpu, nextToken: reencode(real, (t) => void (t.k.collectedAt = 5)) }],
      ['an empty string key', { ...cpu, nextToken: reencode(real, (t) => void (t.k.collectedAt = '')) }],
      ['an oversized key', { ...cpu, nextToken: reencode(real, (t) => void (t.k.collectedAt = '€'.repeat(400))) }],
      ['a prototype key', { ...cpu, nextToken: reencode(real, (t) => ({ ...t, k: JSON.parse('{"__proto__":{"x":1},"name":"cpu"}') })) }],
      ['an array key', { ...cpu, nextToken: reencode(real, (t) => void (t.k = ['cpu'])) }],
    ];
    for (const [name, params] of forgeries) {
      const query = name.startsWith('the token') || name.startsWith('a key outside') ? { ...params, nextToken: real } : params;
      const res = await h(apiEvent('GET', METRICS, { queryStringParameters: query }));
      expect([name, res.statusCode, json(res).error]).toEqual([name, 400, 'InvalidNextToken']);
    }
    // A forged scan token for the alerts list (a key of the wrong shape for the table).
    const scanForged = await h(apiEvent('GET', ALERTS, { queryStringParameters: { nextToken: reencode(scanToken, (t) => void (t.k = { alertId: 'a', other: 'b' })) } }));
    expect([scanForged.statusCode, json(scanForged).error]).toEqual([400, 'InvalidNextToken']);
    // The real token still pages on.
    expect((await h(apiEvent('GET', METRICS, { queryStringParameters: { ...cpu, nextToken: real } }))).statusCode).toBe(200);
  });

  test('a range with from after to answers 400 naming the parameter', async () => {
    const res = await handler()(apiEvent('GET', METRICS, { queryStringParameters: { name: 'cpu', from: '2026-01-02', to: '2026-01-01' } }));
    expect(res.statusCode).toBe(400);
    expect(json(res)).toMatchObject({ error: 'ValidationError', parameter: 'from', message: "'from' must not be after 'to'" });
  });

  test('key values over DynamoDB\'s byte limits (not its character count) answer 400 naming the parameter', async () => {
    const h = handler();
    const cases: Array<[string, string, Record<string, string> | undefined, Record<string, string> | undefined, string]> = [
      ['get: 1,000 characters, 3,000 bytes', ALERT, { alertId: '€'.repeat(1000) }, undefined, 'alertId'],
      ['list partition: 2,100 bytes', METRICS, undefined, { name: '€'.repeat(700) }, 'name'],
      ['range bound: 1,200 bytes', METRICS, undefined, { name: 'cpu', from: '€'.repeat(400) }, 'from'],
      ['filter: 1,500 bytes', ALERTS, undefined, { severity: 'x'.repeat(1500) }, 'severity'],
    ];
    for (const [name, route, pathParameters, queryStringParameters, parameter] of cases) {
      const res = await h(apiEvent('GET', route, { pathParameters, queryStringParameters }));
      expect([name, res.statusCode, json(res).parameter]).toEqual([name, 400, parameter]);
    }
    // Within the limits: answered by DynamoDB.
    expect((await h(apiEvent('GET', METRICS, { queryStringParameters: { name: 'n'.repeat(2048) } }))).statusCode).toBe(200);
    expect((await h(apiEvent('GET', ALERT, { pathParameters: { alertId: '€'.repeat(682) } }))).statusCode).toBe(404);
  });

  test('prototype keys in query strings and parameters named like Object\'s properties', async () => {
    const spec = exampleDomainSpec('observability');
    const renamed = { ...spec, queries: spec.queries.map((q) => (q.name === 'ListAlerts' ? { ...q, filters: [{ ...q.filters[0], parameter: 'constructor' }] } : q)) };
    const h = handler({}, renamed);
    const plain = await h(apiEvent('GET', ALERTS, { queryStringParameters: JSON.parse('{"__proto__":{"limit":"0"},"toString":"x"}') }));
    expect(plain.statusCode).toBe(200);
    expect(json(plain).count).toBeGreaterThan(0);
    const filtered = await h(apiEvent('GET', ALERTS, { queryStringParameters: { constructor: 'high' } as never }));
    expect(json(filtered).items.every((a: { severity: string }) => a.severity === 'high')).toBe(true);
    const get = await handler()(apiEvent('GET', ALERT, { pathParameters: JSON.parse('{"__proto__":{"alertId":"alert-1"}}') }));
    expect([get.statusCode, json(get).parameter]).toEqual([400, 'alertId']);
  });

  test('every answer: nosniff and no-store', async () => {
    for (const res of [
      await handler()(apiEvent('GET', ALERT, { pathParameters: { alertId: 'alert-1' } })),
      await handler()(apiEvent('GET', METRICS, { queryStringParameters: {} })),
    ]) {
      expect(res.headers).toMatchObject({ 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
    }
  });
});

describe('review 11: numbers a client can shape', () => {
  test('numbers beyond JavaScript\'s safe integers (which the document client refuses to marshal) answer 400, never 500', async () => {
    const spec = exampleDomainSpec('observability');
    const numeric = { ...spec, queries: spec.queries.map((q) => (q.name === 'ListAlerts' ? { ...q, filters: [...q.filters, { attribute: 'triggerCount', parameter: 'count', type: 'N' as const }] } : q)) };
    const h = handler({}, numeric);
    for (const count of ['99999999999999999999', '-9007199254740993', '1' + '0'.repeat(37)]) {
      const res = await h(apiEvent('GET', ALERTS, { queryStringParameters: { count } }));
      expect([count, res.statusCode, json(res).error, json(res).parameter]).toEqual([count, 400, 'ValidationError', 'count']);
    }
    // Within the safe range, and decimals: answered.
    const ok = await h(apiEvent('GET', ALERTS, { queryStringParameters: { count: '3' } }));
    expect([ok.statusCode, json(ok).items.map((a: { alertId: string }) => a.alertId)]).toEqual([200, ['alert-3']]);
    expect((await h(apiEvent('GET', ALERTS, { queryStringParameters: { count: '9007199254740991' } }))).statusCode).toBe(200);
    expect((await h(apiEvent('GET', ALERTS, { queryStringParameters: { count: '-0.5' } }))).statusCode).toBe(200);
  });

  test('a forged token with an unsafe number in a numeric key answers 400 InvalidNextToken', async () => {
    // A spec that says the alerts' key is a number: the token check, not DynamoDB, must refuse 1e300.
    const spec = exampleDomainSpec('observability');
    const numericKey = { ...spec, queries: spec.queries.map((q) => (q.name === 'ListAlerts' ? { ...q, startKey: [{ name: 'alertId', type: 'N' as const }] } : q)) };
    const h = handler({}, numericKey);
    const real = json(await h(apiEvent('GET', ALERTS, { queryStringParameters: { limit: '2' } }))).nextToken as string;
    const decoded = JSON.parse(Buffer.from(real, 'base64url').toString('utf8'));
    const forged = Buffer.from(JSON.stringify({ ...decoded, k: { ...decoded.k, alertId: 1e300 } })).toString('base64url');
    const res = await h(apiEvent('GET', ALERTS, { queryStringParameters: { nextToken: forged } }));
    expect([res.statusCode, json(res).error]).toEqual([400, 'InvalidNextToken']);
  });
});
