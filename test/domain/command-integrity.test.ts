/**
 * The bundled command handler as a hostile user meets it (issue 10), against DynamoDB Local with every domain
 * on ONE shared event store table, as on the platform: another domain's ids, another type's ids, client-chosen
 * ids squatting, prototype keys, idempotency scopes built to collide, 30 unconditional updates at once, and
 * contention until the time budget runs out. EventBridge (error reports) has no local engine: PutEvents is mocked.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { createCommandHandler } from '../../src/domain/command.lambda';
import { powertools } from '../../src/internal/powertools';
import { ErrorReporter, EventStore, type DomainSpec } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { exampleDomainSpec } from '../support/example';
import { validatorsFor } from '../support/shipped';
import { createEventStoreTable, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
let client: DynamoDBClient;
let tableName: string;

beforeAll(async () => {
  client = localClient();
  tableName = await createEventStoreTable(client);
});
afterAll(() => client.destroy());
beforeEach(() => {
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
});

function handlerFor(spec: DomainSpec, doc?: DynamoDBDocumentClient) {
  const store = new EventStore({ tableName, domain: spec.domain, client: doc ?? client });
  const handler = createCommandHandler({
    spec,
    validators: validatorsFor(spec),
    store,
    tools: powertools('test'),
    reporter: new ErrorReporter({ component: spec.domain, client: new EventBridgeClient({ region: 'us-east-1' }), log: (l) => process.env.DEBUG_REPORT && console.log(l) }),
  });
  return { handler, store };
}

const json = (r: APIGatewayProxyResult) => JSON.parse(r.body) as Record<string, any>;
const TRIGGER = '/api/v1/observability/alerts/{alertId}/trigger';
const METRICS = '/api/v1/observability/metrics';
const PROJECTS = '/api/v1/projects/projects';
const PROJECT = '/api/v1/projects/projects/{projectId}';
const projectBody = { name: 'Apollo', description: 'Moon', templateId: 'tpl-1' };

async function tableItems(): Promise<number> {
  let count = 0;
  let start: Record<string, any> | undefined;
  do {
    const out = await client.send(new ScanCommand({ TableName: tableName, Select: 'COUNT', ExclusiveStartKey: start, ConsistentRead: true }));
    count += out.Count ?? 0;
    start = out.LastEvaluatedKey;
  } while (start);
  return count;
}

/** The answer's shape with the id-specific parts masked, to compare a refusal with a missing id's. */
const shape = (r: APIGatewayProxyResult, id: string) => ({ status: r.statusCode, body: { ...json(r), correlationId: '-', message: json(r).message.replace(id, '<id>') } });

describe('cross-domain and cross-type injection through the bundled handler', () => {
  let obs: ReturnType<typeof handlerFor>;
  let pm: ReturnType<typeof handlerFor>;
  beforeAll(() => {
    obs = handlerFor(exampleDomainSpec('observability'));
    pm = handlerFor(exampleDomainSpec('projects'));
  });

  test("the issue's attack: TriggerAlert on a project's id answers 404 exactly as a missing id; the project's stream is untouched", async () => {
    const { aggregateId: projectId } = json(await pm.handler(apiEvent('POST', PROJECTS, { body: projectBody })));
    const before = await tableItems();
    const attack = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: projectId }, body: { metricValue: 1 }, userId: 'mallory' }));
    const missing = `project-${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`;
    const control = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: missing }, body: { metricValue: 1 }, userId: 'mallory' }));
    expect(attack.statusCode).toBe(404);
    expect(shape(attack, projectId)).toEqual(shape(control, missing));
    expect(await tableItems()).toBe(before);
    // The victim's stream goes on without a gap: its next event is 2, which its projection applies next.
    const update = await pm.handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId }, body: { name: 'B', description: 'b' } }));
    expect(json(update)).toMatchObject({ eventSequence: 2 });
    expect((await pm.store.load(projectId)).map((e) => [e.eventSequence, e.eventType, e.source])).toEqual([
      [1, 'ProjectCreated', 'skafu.projects'],
      [2, 'ProjectUpdated', 'skafu.projects'],
    ]);
  });

  test("a command of another type of the same domain on an aggregate's id: 404 as for a missing id, nothing written", async () => {
    const { aggregateId: metricId } = json(await obs.handler(apiEvent('POST', METRICS, { body: { name: 'cpu', value: 1, unit: 'Percent', source: 's' } })));
    const before = await tableItems();
    const attack = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: metricId }, body: { metricValue: 1 } }));
    const control = await obs.handler(apiEvent('POST', TRIGGER, { pathParameters: { alertId: 'metric-nothing' }, body: { metricValue: 1 } }));
    expect(shape(attack, metricId)).toEqual(shape(control, 'metric-nothing'));
    expect(await tableItems()).toBe(before);
    expect((await obs.store.load(metricId)).map((e) => e.eventType)).toEqual(['MetricCollected']);
  });

  test('with If-Match, an unconditional upsert, or a client-chosen id: another type never takes the stream', async () => {
    // A domain with client-chosen ids in the body and on the path, as users declare them.
    const spec: DomainSpec = {
      domain: `things${Date.now()}`,
      commands: [
        { name: 'CreateWidget', method: 'POST', resource: '/w', aggregateType: 'Widget', eventType: 'WidgetCreated', eventVersion: 1, aggregateId: { kind: 'body', field: 'id' }, precondition: 'must-not-exist', schema: { type: 'object', required: ['id'] }, extraData: {}, maxBodyBytes: 1000 },
        { name: 'CreateGadget', method: 'POST', resource: '/g', aggregateType: 'Gadget', eventType: 'GadgetCreated', eventVersion: 1, aggregateId: { kind: 'body', field: 'id' }, precondition: 'must-not-exist', schema: { type: 'object', required: ['id'] }, extraData: {}, maxBodyBytes: 1000 },
        { name: 'TouchGadget', method: 'POST', resource: '/g/{id}/touch', aggregateType: 'Gadget', eventType: 'GadgetTouched', eventVersion: 1, aggregateId: { kind: 'path', name: 'id' }, precondition: 'must-exist', schema: { type: 'object' }, extraData: {}, maxBodyBytes: 1000 },
        { name: 'UpsertGadget', method: 'PUT', resource: '/g/{id}', aggregateType: 'Gadget', eventType: 'GadgetSet', eventVersion: 1, aggregateId: { kind: 'path', name: 'id' }, precondition: 'any', schema: { type: 'object' }, extraData: {}, maxBodyBytes: 1000 },
      ],
      queries: [],
    };
    const things = handlerFor(spec);
    const id = `squat-${Date.now()}`;
    expect((await things.handler(apiEvent('POST', '/w', { body: { id } }))).statusCode).toBe(201);
    const before = await tableItems();
    const create = await things.handler(apiEvent('POST', '/g', { body: { id } }));
    expect(create.statusCode).toBe(409);
    expect(json(create)).toMatchObject({ error: 'AggregateAlreadyExists' });
    for (const [method, resource, headers] of [
      ['POST', '/g/{id}/touch', {}],
      ['POST', '/g/{id}/touch', { 'If-Match': '"1"' }],
      ['PUT', '/g/{id}', {}],
      ['PUT', '/g/{id}', { 'If-Match': '"1"' }],
      ['PUT', '/g/{id}', { 'If-Match': '*' }],
    ] as const) {
      const res = await things.handler(apiEvent(method, resource, { pathParameters: { id }, body: {}, headers }));
      expect({ method, resource, headers, status: res.statusCode, error: json(res).error }).toEqual({ method, resource, headers, status: 404, error: 'AggregateNotFound' });
    }
    expect(await tableItems()).toBe(before);
    expect((await things.store.load(id)).map((e) => e.eventType)).toEqual(['WidgetCreated']);
  });
});

describe('hostile bodies', () => {
  const obs = () => handlerFor(exampleDomainSpec('observability'));

  test.each([
    ['constructor in tags (the issue\'s body)', '{"name":"m","value":1,"unit":"u","source":"s","tags":{"constructor":"y"}}', '/tags/constructor'],
    ['__proto__ in tags', '{"name":"m","value":1,"unit":"u","source":"s","tags":{"__proto__":{"admin":true}}}', '/tags/__proto__'],
    ['__proto__ at the top', '{"name":"m","value":1,"unit":"u","source":"s","__proto__":{"admin":true}}', '/__proto__'],
  ])('%s: 400 naming the path, nothing written, no prototype polluted', async (_label, rawBody, path) => {
    const { handler } = obs();
    const before = await tableItems();
    const res = await handler(apiEvent('POST', METRICS, { rawBody }));
    // The example's schema may refuse a top-level extra key itself (additionalProperties); either way a 400.
    expect(res.statusCode).toBe(400);
    const details = json(res).details as Array<{ path: string }> | undefined;
    if (path !== '/__proto__' || details?.some((d) => d.path === path)) expect(details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    expect(json(res).correlationId).toEqual(expect.any(String));
    expect(await tableItems()).toBe(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});

describe('idempotency scopes', () => {
  test("user 'u' with key 'x:K1' and user 'u:x' with key 'K1' are two requests, not one", async () => {
    const { handler } = handlerFor(exampleDomainSpec('projects'));
    const stamp = Date.now();
    const a = await handler(apiEvent('POST', PROJECTS, { body: projectBody, userId: `u${stamp}`, headers: { 'Idempotency-Key': 'x:K1' } }));
    const b = await handler(apiEvent('POST', PROJECTS, { body: projectBody, userId: `u${stamp}:x`, headers: { 'Idempotency-Key': 'K1' } }));
    expect(a.statusCode).toBe(201);
    expect(b.statusCode).toBe(201);
    expect(b.headers!['Idempotent-Replayed']).toBeUndefined();
    expect(json(b).aggregateId).not.toBe(json(a).aggregateId);
    // And a real retry is still recognised, whatever the user id's length (a 1,500-character subject).
    const longUser = 'x'.repeat(1500);
    const first = await handler(apiEvent('POST', PROJECTS, { body: projectBody, userId: longUser, headers: { 'Idempotency-Key': 'K'.repeat(128) } }));
    const retry = await handler(apiEvent('POST', PROJECTS, { body: projectBody, userId: longUser, headers: { 'Idempotency-Key': 'K'.repeat(128) } }));
    expect(first.statusCode).toBe(201);
    expect(retry.headers!['Idempotent-Replayed']).toBe('true');
    expect(json(retry).aggregateId).toBe(json(first).aggregateId);
  });
});

describe('"any version" means it', () => {
  test('30 concurrent PUTs without If-Match on one project: all 202, sequences 2..31, no gap, no 409', async () => {
    const { handler, store } = handlerFor(exampleDomainSpec('projects'));
    const { aggregateId } = json(await handler(apiEvent('POST', PROJECTS, { body: projectBody })));
    // DynamoDB Local on this shared 2-core machine answers a Query in about 110 ms (DynamoDB: a few ms), and
    // serves the losers' conditional writes one after another: the handlers get a budget sized for it.
    const context = { getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: aggregateId }, body: { name: `n${i}`, description: 'd' } }), context),
      ),
    );
    console.log(`30 concurrent unconditional updates landed in ${Date.now() - started} ms`);
    expect(answers.map((a) => a.statusCode)).toEqual(Array(30).fill(202));
    expect(answers.map((a) => json(a).eventSequence).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
    const events = await store.load(aggregateId);
    expect(events.map((e) => e.eventSequence)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
    expect(new Set(events.slice(1).map((e) => e.data.name)).size).toBe(30);
  }, 90_000);

  test('an append that keeps losing races until the time budget is spent answers 503 with Retry-After, writing nothing of its own', async () => {
    // Every write of this handler is preceded by a competitor's event at the same position: it always loses.
    const doc = DynamoDBDocumentClient.from(localClient());
    const competitor = DynamoDBDocumentClient.from(localClient());
    let stolen = 0;
    doc.middlewareStack.add(
      (next) => async (args) => {
        const input = (args as { input: { Item?: Record<string, any>; TableName?: string } }).input;
        if (input.Item?.itemType === 'event' && input.Item.eventSequence > 1) {
          stolen++;
          await competitor.send(new PutCommand({ TableName: tableName, Item: { ...input.Item, eventId: `competitor-${stolen}`, data: { name: 'competitor', description: '' } } }));
        }
        return next(args);
      },
      { step: 'initialize', name: 'competitor' },
    );
    const { handler, store } = handlerFor(exampleDomainSpec('projects'), doc);
    const { aggregateId } = json(await handler(apiEvent('POST', PROJECTS, { body: projectBody })));
    const context = { getRemainingTimeInMillis: () => 2500, functionName: 'commands' } as unknown as Context;
    const res = await handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId: aggregateId }, body: { name: 'mine', description: 'd' } }), context);
    expect(json(res)).toMatchObject({ error: 'AggregateBusy' });
    expect(res.statusCode).toBe(503);
    expect(res.headers).toMatchObject({ 'Retry-After': '1' });
    expect(json(res)).toMatchObject({ error: 'AggregateBusy', correlationId: expect.any(String) });
    expect(stolen).toBeGreaterThan(0);
    const events = await store.load(aggregateId);
    expect(events.map((e) => e.eventSequence)).toEqual(Array.from({ length: stolen + 1 }, (_, i) => i + 1));
    expect(events.some((e) => e.data.name === 'mine')).toBe(false);
    doc.destroy();
    competitor.destroy();
  });
});
