/**
 * The bundled command handler against DynamoDB Local, configured with the exact domain specs the example
 * platform synthesizes. EventBridge (error reports) has no local engine: PutEvents is mocked.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import * as fc from 'fast-check';
import { createCommandHandler } from '../../src/domain/command.lambda';
import { powertools } from '../../src/internal/powertools';
import { ErrorReporter, EventStore } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { exampleDomain } from '../support/example';
import { createEventStoreTable, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
let client: DynamoDBClient;

beforeAll(() => {
  client = localClient();
});
afterAll(() => client.destroy());
beforeEach(() => {
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
});

async function handlerFor(domain: string, tableName?: string) {
  const table = tableName ?? (await createEventStoreTable(client));
  const store = new EventStore({ tableName: table, domain, client });
  const handler = createCommandHandler({
    ...exampleDomain(domain),
    store,
    tools: powertools('test'),
    reporter: new ErrorReporter({ component: domain, busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
    corsOrigins: ['http://localhost:3000'],
  });
  return { handler, store, table };
}

const json = (r: APIGatewayProxyResult) => JSON.parse(r.body) as Record<string, any>;
const METRICS = '/api/v1/observability/metrics';
const ALERTS = '/api/v1/observability/alerts';
const TRIGGER = '/api/v1/observability/alerts/{alertId}/trigger';
const PROJECTS = '/api/v1/projects/projects';
const PROJECT = '/api/v1/projects/projects/{projectId}';
const ARCHIVE = '/api/v1/projects/projects/{projectId}/archive';
const alertBody = { name: 'High CPU', metricName: 'cpu', threshold: 90, condition: 'GreaterThan', severity: 'high' };
const projectBody = { name: 'Apollo', description: 'Moon', templateId: 'tpl-1' };

describe('observability and projects commands', () => {
  let obs: Awaited<ReturnType<typeof handlerFor>>;
  let pm: Awaited<ReturnType<typeof handlerFor>>;
  beforeAll(async () => {
    obs = await handlerFor('observability');
    pm = await handlerFor('projects');
  });

  test('201: a new aggregate, with aggregateId, eventSequence and correlationId; the event is stored as declared', async () => {
    const res = await obs.handler(apiEvent('POST', ALERTS, { body: alertBody, correlationId: 'corr-201', userId: 'u-42', headers: { Origin: 'http://localhost:3000' } }));
    expect(res.statusCode).toBe(201);
    const body = json(res);
    expect(body).toEqual({ aggregateId: expect.stringMatching(/^alert-[0-9a-f-]{36}$/), eventSequence: 1, eventId: expect.any(String), eventType: 'AlertCreated', correlationId: 'corr-201' });
    expect(res.headers).toMatchObject({ 'X-Correlation-Id': 'corr-201', 'ETag': '"1"', 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': 'http://localhost:3000' });
    const [event] = await obs.store.load(body.aggregateId);
    expect(event).toMatchObject({
      eventType: 'AlertCreated',
      aggregateType: 'Alert',
      source: 'skafu.observability',
      correlationId: 'corr-201',
      data: { ...alertBody, alertId: body.aggregateId, createdBy: 'u-42' },
      metadata: { userId: 'u-42', command: 'CreateAlert' },
    });
  });

  test('202: a command on an existing aggregate; path parameters and request time join the data', async () => {
    const created = json(await obs.handler(apiEvent('POST', ALERTS, { body: alertBody })));
    const res = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: created.aggregateId }, body: { metricValue: 97.5 } }));
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ aggregateId: created.aggregateId, eventSequence: 2, eventType: 'AlertTriggered' });
    const [, triggered] = await obs.store.load(created.aggregateId);
    expect(triggered.data).toMatchObject({ metricValue: 97.5, alertId: created.aggregateId, triggeredAt: expect.stringMatching(/Z$/) });
  });

  test('400: invalid JSON, schema failures with their paths, bad headers, bad ids', async () => {
    const bad = await obs.handler(apiEvent('POST', METRICS, { rawBody: '{"name": ' }));
    expect(bad.statusCode).toBe(400);
    expect(json(bad)).toMatchObject({ error: 'ValidationError', message: 'the body is not valid JSON', correlationId: expect.any(String) });

    const invalid = await obs.handler(apiEvent('POST', METRICS, { body: { name: 'cpu', value: 'high', unit: 'Percent', extra: 1 } }));
    expect(invalid.statusCode).toBe(400);
    const details = json(invalid).details as Array<{ path: string; message: string }>;
    expect(details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: '/value', message: 'must be number' }),
        expect.objectContaining({ path: '/', message: "must have required property 'source'" }),
        expect.objectContaining({ path: '/', message: 'must NOT have additional properties' }),
      ]),
    );

    const created = json(await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody })));
    const update = { name: 'n', description: 'd' };
    const badIfMatch = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: created.aggregateId }, body: update, headers: { 'If-Match': 'yesterday' } }));
    expect(badIfMatch.statusCode).toBe(400);
    expect(json(badIfMatch).message).toMatch(/If-Match must be a version number/);
    const badKey = await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody, headers: { 'Idempotency-Key': 'has spaces in it' } }));
    expect(badKey.statusCode).toBe(400);
    const badId = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: '$idempotency#x' }, body: update }));
    expect(badId.statusCode).toBe(400);
    expect(json(badId).message).toMatch(/path parameter 'projectId' must be/);
    const ifMatchOnCreate = await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody, headers: { 'If-Match': '"4"' } }));
    expect(ifMatchOnCreate.statusCode).toBe(400);
  });

  test('404: a command that needs an existing aggregate, on one that does not exist', async () => {
    const res = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: 'alert-missing' }, body: { metricValue: 1 } }));
    expect(res.statusCode).toBe(404);
    expect(json(res)).toMatchObject({ error: 'AggregateNotFound', message: "Alert 'alert-missing' does not exist" });
    const update = { name: 'n', description: 'd' };
    const withIfMatch = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: 'project-missing' }, body: update, headers: { 'If-Match': '"1"' } }));
    expect(withIfMatch.statusCode).toBe(404);
    expect(await obs.store.readVersion('alert-missing')).toBe(0);
  });

  test('409: If-Match with a stale version; the conflict says both versions', async () => {
    const { aggregateId } = json(await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody })));
    const ok = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: aggregateId }, body: { name: 'B', description: 'b' }, headers: { 'If-Match': '"1"' } }));
    expect(ok.statusCode).toBe(202);
    expect(ok.headers!.ETag).toBe('"2"');
    const stale = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: aggregateId }, body: { name: 'C', description: 'c' }, headers: { 'If-Match': '"1"' } }));
    expect(stale.statusCode).toBe(409);
    expect(json(stale)).toMatchObject({ error: 'VersionConflict', expectedVersion: 1, actualVersion: 2 });
    expect((await pm.store.load(aggregateId)).map((e) => e.data.name)).toEqual(['Apollo', 'B']);
  });

  test('idempotent retry: the same Idempotency-Key returns the first result and writes nothing new', async () => {
    const key = `retry-${Date.now()}`;
    const first = await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody, headers: { 'Idempotency-Key': key } }));
    const again = await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody, headers: { 'Idempotency-Key': key } }));
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(json(again).aggregateId).toBe(json(first).aggregateId);
    expect(json(again).eventId).toBe(json(first).eventId);
    expect(again.headers!['Idempotent-Replayed']).toBe('true');
    expect(await pm.store.load(json(first).aggregateId)).toHaveLength(1);
    const reused = await pm.handler(apiEvent('POST', PROJECTS, { body: { ...projectBody, name: 'Other' }, headers: { 'Idempotency-Key': key } }));
    expect(reused.statusCode).toBe(409);
    expect(json(reused).error).toBe('IdempotencyKeyReused');
    // The same key from another user is another request.
    const otherUser = await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody, userId: 'someone-else', headers: { 'Idempotency-Key': key } }));
    expect(json(otherUser).aggregateId).not.toBe(json(first).aggregateId);
  });

  test('413 and 415', async () => {
    const big = await pm.handler(apiEvent('POST', PROJECTS, { rawBody: JSON.stringify({ ...projectBody, description: 'x'.repeat(200 * 1024) }) }));
    expect(big.statusCode).toBe(413);
    expect(json(big)).toMatchObject({ error: 'PayloadTooLarge' });
    const text = await pm.handler(apiEvent('POST', PROJECTS, { rawBody: 'name=Apollo', headers: { 'Content-Type': 'text/plain' } }));
    expect(text.statusCode).toBe(415);
  });

  test('a correlation id is generated when none came, and returned in body and header', async () => {
    const event = apiEvent('POST', PROJECTS, { body: projectBody });
    delete (event.requestContext.authorizer as Record<string, unknown>).correlationId;
    const res = await pm.handler(event);
    expect(json(res).correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers!['X-Correlation-Id']).toBe(json(res).correlationId);
  });

  test('[mocked EventBridge] 500: an unexpected failure answers a generic JSON error and is reported on the error bus', async () => {
    const broken = await handlerFor('projects', 'no-such-table');
    const res = await broken.handler(apiEvent('POST', PROJECTS, { body: projectBody, correlationId: 'corr-500', headers: { Authorization: 'Bearer secret-token' } }));
    expect(res.statusCode).toBe(500);
    expect(json(res)).toEqual({ error: 'InternalError', message: 'Internal error', correlationId: 'corr-500' });
    const [call] = eventBridge.commandCalls(PutEventsCommand);
    const detail = JSON.parse(call.args[0].input.Entries![0].Detail!);
    expect(detail).toMatchObject({
      correlationId: 'corr-500',
      errorType: 'ResourceNotFoundException',
      severity: 'HIGH',
      context: { domain: 'projects', apiPath: PROJECTS, httpMethod: 'POST', userId: 'user-1' },
      // Headers from an allow-list only: Authorization is not even named.
      metadata: { original: { headers: { 'Content-Type': 'application/json' }, body: projectBody } },
    });
    expect(detail.metadata.original.headers).not.toHaveProperty('Authorization');
    expect(call.args[0].input.Entries![0].Detail).not.toContain('secret-token');
  });
});

describe('property-based: 10,000 generated bodies per command', () => {
  const RUNS = Number(process.env.SKAFU_PROPERTY_RUNS ?? 10_000);
  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const text = fc.oneof(fc.string({ maxLength: 12 }), fc.constant(''), fc.integer(), fc.constant(null));
  const num = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.string({ maxLength: 3 }));
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });
  const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

  const shapes: Record<string, fc.Arbitrary<unknown>> = {
    CollectMetric: fc.oneof(anyJson, fc.record({ name: maybe(fc.oneof(text, fc.stringMatching(/^[a-z.]{1,10}$/))), value: maybe(num), unit: maybe(text), source: maybe(text), tags: maybe(fc.dictionary(fc.string({ maxLength: 5 }), text, { maxKeys: 3 })), timestamp: maybe(fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), text)) }).map(strip)),
    CreateAlert: fc.oneof(anyJson, fc.record({ name: maybe(text), metricName: maybe(text), threshold: maybe(num), condition: maybe(fc.constantFrom('GreaterThan', 'LessThan', 'Sideways')), severity: maybe(fc.constantFrom('low', 'high', 'urgent')), description: maybe(text) }).map(strip)),
    TriggerAlert: fc.oneof(anyJson, fc.record({ metricValue: maybe(num), message: maybe(text) }).map(strip)),
    CreateProject: fc.oneof(anyJson, fc.record({ name: maybe(text), description: maybe(text), templateId: maybe(text) }).map(strip)),
    UpdateProject: fc.oneof(anyJson, fc.record({ name: maybe(text), description: maybe(text), status: maybe(text) }).map(strip)),
    ArchiveProject: fc.oneof(anyJson, fc.record({ reason: maybe(text), force: maybe(fc.boolean()) }).map(strip)),
  };
  const routes: Record<string, { domain: string; method: string; resource: string; path?: 'alert' | 'project' }> = {
    CollectMetric: { domain: 'observability', method: 'POST', resource: METRICS },
    CreateAlert: { domain: 'observability', method: 'POST', resource: ALERTS },
    TriggerAlert: { domain: 'observability', method: 'POST', resource: TRIGGER, path: 'alert' },
    CreateProject: { domain: 'projects', method: 'POST', resource: PROJECTS },
    UpdateProject: { domain: 'projects', method: 'PUT', resource: PROJECT, path: 'project' },
    ArchiveProject: { domain: 'projects', method: 'POST', resource: ARCHIVE, path: 'project' },
  };

  test.each(Object.keys(routes))('%s: invalid bodies get only 4xx JSON answers and write nothing; nothing is ever unhandled', async (command) => {
    const route = routes[command];
    const { handler, store, table } = await handlerFor(route.domain);
    const seeded = route.path === 'alert'
      ? json(await handler(apiEvent('POST', ALERTS, { body: alertBody }))).aggregateId
      : route.path === 'project' ? json(await handler(apiEvent('POST', PROJECTS, { body: projectBody }))).aggregateId : undefined;
    const baseline = (await client.send(new ScanCommand({ TableName: table, Select: 'COUNT' }))).Count ?? 0;
    let accepted = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(shapes[command], fc.boolean(), async (body, asRaw) => {
        const pathParameters = seeded ? { [route.path === 'alert' ? 'alertId' : 'projectId']: seeded } : undefined;
        const event = apiEvent(route.method, route.resource, asRaw ? { pathParameters, rawBody: typeof body === 'string' ? body : JSON.stringify(body) } : { pathParameters, body });
        const res = await handler(event); // must not throw
        const parsed = JSON.parse(res.body) as Record<string, unknown>;
        expect(parsed.correlationId).toEqual(expect.any(String));
        expect(res.headers!['Content-Type']).toBe('application/json');
        if (res.statusCode === 201 || res.statusCode === 202) {
          accepted++;
          expect(parsed.aggregateId).toEqual(expect.any(String));
        } else {
          rejected++;
          expect([400, 404, 409, 413, 415]).toContain(res.statusCode);
          expect(parsed.error).toEqual(expect.any(String));
          expect(parsed.message).toEqual(expect.any(String));
        }
      }),
      { numRuns: RUNS, seed: 20261127 },
    );
    const after = (await client.send(new ScanCommand({ TableName: table, Select: 'COUNT' }))).Count ?? 0;
    // Every accepted command wrote exactly one event, and no rejected one wrote anything.
    expect(after - baseline).toBe(accepted);
    expect(accepted + rejected).toBe(RUNS);
    expect(rejected).toBeGreaterThan(RUNS / 10);
    void store;
  });
});
