/**
 * End to end, on one machine: the example platform under Skafu Local. Every request goes over HTTP to the API,
 * through the bundled authorizer, to the bundled handlers; events go from the event store's stream through the
 * bundled publisher to the local bus, into the projection state machines (their exact definitions), into the
 * read models, and back out through the queries. DynamoDB is the jest run's DynamoDB Local.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { buildExampleApp } from '../../examples/platform/app';
import { realtimeHeader } from '../../local/src/appsync-server';
import { DemoClient, runScenario } from '../../local/src/demo';
import { SkafuLocal } from '../../local/src/skafu-local';
import type { SkafuPlatform } from '../../src';
import { EventStore } from '../../src/runtime';
import { inventory } from '../support/inventory';

let local: SkafuLocal;
let api: DemoClient;
const lines: string[] = [];

beforeAll(async () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-e2e-'));
  const app = buildExampleApp(outdir);
  // Issue 15's inventory domain (declared rules: numeric guards, ownership, two events per command, an upcaster)
  // joins the example platform here, so that its rules run over HTTP in the same Skafu Local.
  (app.node.findChild('Skafu-development').node.findChild('Platform') as SkafuPlatform).addDomain(inventory);
  app.synth();
  local = new SkafuLocal({
    assembly: outdir,
    dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT,
    workDirectory: path.join(outdir, '.skafu-local'),
    log: (line) => lines.push(line),
  });
  await local.start();
  api = new DemoClient(local, 'e2e');
}, 120_000);
afterAll(() => local?.stop());

test('start-up: progress, the route table with groups, and what is not emulated, by name', () => {
  expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^ {2}table Skafu-development-PlatformEventStoreTable/), expect.stringMatching(/^Routes:$/)]));
  expect(lines.find((l) => l.includes('POST   /api/v1/observability/alerts/{alertId}/trigger'))).toMatch(/Admin, Developer$/);
  expect(local.routes).toHaveLength(13 + 6); // the example's 13, and the inventory domain's 6
  expect(local.unsupported.map((u) => u.type)).toEqual(expect.arrayContaining(['AWS::CloudWatch::Alarm', 'AWS::CloudWatch::Dashboard', 'AWS::IAM::Role']));
  expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^ {2}AWS::CloudWatch::Alarm x\d+: alarms need CloudWatch metrics/)]));
  expect(Object.keys(local.tokens).sort()).toEqual(['Admin', 'Developer', 'NoGroup', 'Viewer']);
  expect(local.graphqlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
  expect(local.unsupported.map((u) => u.type)).not.toContain('AWS::AppSync::Resolver');
});

test('the scripted scenario: commands to read models, refusals, validation, conflict, a failing projection', async () => {
  const steps = await runScenario(local, (line) => lines.push(line));
  expect(steps.filter((s) => !s.ok)).toEqual([]);
  // 16 recorded steps, 3 over GraphQL (query, a refused subscription, a subscription seeing a trigger arrive), the failing projection.
  expect(steps).toHaveLength(20);
  expect(steps.find((s) => s.name === 'GraphQL subscription: the Viewer sees the trigger arrive')?.ok).toBe(true);
  expect(fs.readFileSync(path.join(local.workDirectory, 'errors.log'), 'utf8')).toContain('ProjectionFailed');
});

test('every command of both domains: command -> store -> stream -> publisher -> bus -> projection -> read model -> query', async () => {
  const alert = await api.call('POST', '/api/v1/observability/alerts', { as: 'Admin', body: { name: 'Disk', metricName: 'disk', threshold: 80, condition: 'GreaterThanOrEqual', severity: 'medium' } });
  expect(alert.status).toBe(201);
  const trigger = await api.call('POST', `/api/v1/observability/alerts/${alert.body.aggregateId}/trigger`, { as: 'Developer', body: { metricValue: 81 } });
  expect(trigger.status).toBe(202);
  const metric = await api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: { name: 'disk', value: 81, unit: 'Percent', source: 'e2e' } });
  expect(metric.status).toBe(201);
  // Created by the Developer who updates and archives it: projects belong to their creator (Admins override).
  const project = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: 'Gemini', description: 'two', templateId: 'tpl' } });
  expect(project.status).toBe(201);
  const update = await api.call('PUT', `/api/v1/projects/projects/${project.body.aggregateId}`, { as: 'Developer', body: { name: 'Gemini II', description: 'three' } });
  expect(update.status).toBe(202);
  const archive = await api.call('POST', `/api/v1/projects/projects/${project.body.aggregateId}/archive`, { as: 'Developer', body: { reason: 'done' } });
  expect(archive.status).toBe(202);

  const alertView = await api.until(`/api/v1/observability/alerts/${alert.body.aggregateId}`, 'Viewer', (r) => r.body.item?.triggerCount === 1);
  expect(alertView.body.item).toMatchObject({ name: 'Disk', triggerCount: 1, lastValue: 81, version: 2 });
  const metrics = await api.until('/api/v1/observability/metrics?name=disk', 'Viewer', (r) => r.body.count === 1);

  expect(metrics.body.items[0]).toMatchObject({ name: 'disk', value: 81, unit: 'Percent', metricId: metric.body.aggregateId });
  const projectView = await api.until(`/api/v1/projects/projects/${project.body.aggregateId}`, 'Viewer', (r) => r.body.item?.status === 'ARCHIVED');
  expect(projectView.body.item).toMatchObject({ name: 'Gemini II', description: 'three', status: 'ARCHIVED', version: 3 });
  const archived = await api.until('/api/v1/projects/projects?status=ARCHIVED', 'Viewer', (r) => (r.body.items ?? []).some((p: { projectId: string }) => p.projectId === project.body.aggregateId));
  expect(archived.status).toBe(200);
  // Each event reached the bus once per publication, with the envelope as detail.
  const published = local.events.filter((e) => e.detail?.aggregateId === project.body.aggregateId);
  expect(published.map((e) => e['detail-type'])).toEqual(['ProjectCreated', 'ProjectUpdated', 'ProjectArchived']);
  expect(published[0]).toMatchObject({ source: 'skafu.projects', detail: { eventSequence: 1, correlationId: expect.stringMatching(/^e2e-/) } });
});

test('waitUntil: true once the condition holds, checked when an event is on the bus (its execution started) and when an execution ends; false on timeout or stop; a throwing condition rejects', async () => {
  await local.settle(30_000);
  const [eventsBefore, startedBefore, finishedBefore] = [local.events.length, local.executions.started, local.executions.finished];
  const checks: Array<{ events: number; started: number; finished: number }> = [];
  const accepted = await api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: { name: 'e2e.waitUntil', value: 1, unit: 'Count', source: 'e2e' } });
  expect(accepted.status).toBe(201);
  const ended = await local.waitUntil(() => {
    const { started, finished } = local.executions;
    checks.push({ events: local.events.length - eventsBefore, started: started - startedBefore, finished: finished - finishedBefore });
    return local.executions.finished > finishedBefore;
  }, 20_000);
  expect(ended).toBe(true);
  // One check when the MetricCollected was put on the bus: the execution it starts already counted, none ended
  // (the check ran inside the delivery, not on a timer); the last check when that execution ended.
  expect(checks).toContainEqual({ events: 1, started: 1, finished: 0 });
  expect(checks[checks.length - 1]).toEqual({ events: 1, started: 1, finished: 1 });
  expect(local.events.slice(eventsBefore).map((e) => e['detail-type'])).toEqual(['MetricCollected']);
  const started = Date.now();
  await expect(local.waitUntil(() => false, 150)).resolves.toBe(false);
  expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  await expect(local.waitUntil(() => true, 10)).resolves.toBe(true);
  // A condition that throws when the next event reaches the bus rejects its own wait; the delivery goes on.
  await local.settle(30_000);
  const eventsNow = local.events.length;
  const failing = local.waitUntil(() => {
    if (local.events.length > eventsNow) throw new Error('condition broke');
    return false;
  }, 20_000);
  const more = await api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: { name: 'e2e.waitUntil.2', value: 2, unit: 'Count', source: 'e2e' } });
  expect(more.status).toBe(201);
  await expect(failing).rejects.toThrow('condition broke');
  const visible = await api.until('/api/v1/observability/metrics?name=e2e.waitUntil.2', 'Viewer', (r) => r.body.count === 1);
  expect(visible.body.count).toBe(1);
});

test('RBAC refusals over HTTP: no token, a forged one, a user outside the route\'s groups', async () => {
  expect((await api.call('GET', '/api/v1/projects/projects')).status).toBe(401);
  expect((await api.call('GET', '/api/v1/projects/projects', { headers: { Authorization: 'Bearer a.b.c' } })).status).toBe(401);
  const noGroup = await api.call('GET', '/api/v1/projects/projects', { as: 'NoGroup', headers: { 'X-Correlation-Id': 'e2e-forbidden' } });
  expect(noGroup.status).toBe(403);
  expect(noGroup.body).toEqual({ error: 'Forbidden', message: 'Your groups may not call this route', reason: 'requires one of: Admin, Developer, Viewer', correlationId: expect.any(String) });
  expect(noGroup.headers.get('x-correlation-id')).toBe('e2e-forbidden');
  expect(noGroup.headers.get('x-content-type-options')).toBe('nosniff');
  const anonymous = await api.call('GET', '/api/v1/projects/projects', { headers: { 'X-Correlation-Id': 'e2e-anon' } });
  expect(anonymous.body).toMatchObject({ error: 'Unauthorized', correlationId: expect.any(String) });
  expect(anonymous.headers.get('x-correlation-id')).toBe('e2e-anon');
  expect((await api.call('POST', '/api/v1/projects/projects', { as: 'Viewer', body: { name: 'x', description: 'y', templateId: 'z' } })).status).toBe(403);
  const list = await api.call('GET', '/api/v1/projects/projects', { as: 'Viewer' });
  expect(list.status).toBe(200);
  expect(list.headers.get('cache-control')).toBe('no-store');
  expect(list.headers.get('x-content-type-options')).toBe('nosniff');
  // CORS preflight: open (no token), answering a configured origin.
  const preflight = await fetch(`${local.url}/api/v1/projects/projects/p1`, { method: 'OPTIONS', headers: { 'Origin': 'http://localhost:3000', 'Access-Control-Request-Method': 'PUT' } });
  expect([preflight.status, preflight.headers.get('access-control-allow-origin')]).toEqual([204, 'http://localhost:3000']);
  // An undeclared method or path, whatever the token: API Gateway's "Missing Authentication Token", as 404 JSON.
  for (const [method, route] of [['DELETE', '/api/v1/projects/projects'], ['GET', '/api/v1/nowhere'], ['GET', '/api/v1/__proto__']]) {
    const missing = await api.call(method, route, { as: 'Admin' });
    expect([missing.status, missing.body.error]).toEqual([404, 'NotFound']);
  }
});

test('the same parameterized route, the same token, different ids: each decided for its own route, through the authorizer cache', async () => {
  const ids: string[] = [];
  for (const name of ['One', 'Two']) {
    // Created by the Developer who updates them below (projects belong to their creator, issue 15).
    const created = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name, description: name, templateId: 'tpl' } });
    expect(created.status).toBe(201);
    ids.push(created.body.aggregateId);
  }
  for (const order of [ids, [...ids].reverse()]) {
    for (const id of order) {
      expect((await api.call('PUT', `/api/v1/projects/projects/${id}`, { as: 'Developer', body: { name: `n-${id.slice(-4)}`, description: 'd' } })).status).toBe(202);
      expect((await api.call('PUT', `/api/v1/projects/projects/${id}`, { as: 'Viewer', body: { name: 'x', description: 'd' } })).status).toBe(403);
    }
  }
  for (const id of ids) {
    const view = await api.until(`/api/v1/projects/projects/${id}`, 'Viewer', (r) => r.body.item?.version === 3);
    expect([view.status, view.body.item?.version]).toEqual([200, 3]);
  }
  for (const alertName of ['a1', 'a2']) {
    const alert = await api.call('POST', '/api/v1/observability/alerts', { as: 'Admin', body: { name: alertName, metricName: 'm', threshold: 1, condition: 'GreaterThan', severity: 'low' } });
    expect((await api.call('POST', `/api/v1/observability/alerts/${alert.body.aggregateId}/trigger`, { as: 'Developer', body: { metricValue: 2 } })).status).toBe(202);
  }
});

test('idempotent retry over HTTP: the same Idempotency-Key creates one project', async () => {
  const headers = { 'Idempotency-Key': `e2e-${Date.now()}` };
  const body = { name: 'Once', description: 'only once', templateId: 'tpl' };
  const first = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body, headers });
  const retry = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body, headers });
  expect(first.status).toBe(201);
  expect(retry.status).toBe(201);
  expect(retry.body.aggregateId).toBe(first.body.aggregateId);
  expect(retry.headers.get('idempotent-replayed')).toBe('true');
  await local.settle();
  expect(local.events.filter((e) => e.detail?.aggregateId === first.body.aggregateId)).toHaveLength(1);
});

// Declared business rules over HTTP (issue 15): ownership, guards, and the ProjectArchived reaction.
const create = async (as: string, name: string) => {
  const res = await api.call('POST', '/api/v1/projects/projects', { as, body: { name, description: 'e2e', templateId: 'tpl' } });
  expect(res.status).toBe(201);
  return res.body.aggregateId as string;
};
// Streams are per domain (issue 10's key layout): a client reads its own domain's streams.
const eventStore = (domain = 'projects') => new EventStore({ tableName: Object.entries(local.tables).find(([p]) => /EventStore/.test(p))![1], client: local.client, domain });
const alertsDisabled = async (projectId: string) => (await eventStore('observability').load(`project-alerts-${projectId}`)).filter((e) => e.eventType === 'ProjectAlertsDisabled');
const until = async (check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
};

test('ownership and guards over HTTP: 403 NotOwner for another user, Admin overrides, 409 with the guard name', async () => {
  const byAdmin = await create('Admin', 'Admin project');
  const update = { name: 'Renamed', description: 'x' };
  const refused = await api.call('PUT', `/api/v1/projects/projects/${byAdmin}`, { as: 'Developer', body: update });
  expect(refused).toMatchObject({ status: 403, body: { error: 'NotOwner', correlationId: expect.stringMatching(/^e2e-/) } });
  const mine = await create('Developer', 'Developer project');
  expect((await api.call('PUT', `/api/v1/projects/projects/${mine}`, { as: 'Admin', body: update })).status).toBe(202);
  expect((await api.call('POST', `/api/v1/projects/projects/${mine}/archive`, { as: 'Developer', body: {} })).status).toBe(202);
  const twice = await api.call('POST', `/api/v1/projects/projects/${mine}/archive`, { as: 'Developer', body: {} });
  expect(twice).toMatchObject({ status: 409, body: { error: 'ProjectAlreadyArchived', message: 'the project is already archived' } });
  const afterArchive = await api.call('PUT', `/api/v1/projects/projects/${mine}`, { as: 'Developer', body: update });
  expect(afterArchive).toMatchObject({ status: 409, body: { error: 'ProjectArchived' } });
  expect((await eventStore().load(byAdmin)).map((e) => e.eventType)).toEqual(['ProjectCreated']);
  expect((await eventStore().load(mine)).map((e) => e.eventType)).toEqual(['ProjectCreated', 'ProjectUpdated', 'ProjectArchived']);

  // My projects: the Developer's own only; an Admin sees every project.
  const my = await api.until('/api/v1/projects/my-projects?limit=100', 'Developer', (r) => (r.body.items ?? []).some((p: { projectId: string }) => p.projectId === mine));
  expect(my.body.items.map((p: { projectId: string }) => p.projectId)).not.toContain(byAdmin);
  expect(my.body.items.every((p: { ownerId: string }) => p.ownerId === my.body.items[0].ownerId)).toBe(true);
  const all = await api.until('/api/v1/projects/my-projects?limit=100', 'Admin', (r) => (r.body.items ?? []).some((p: { projectId: string }) => p.projectId === byAdmin));
  expect(all.body.items.map((p: { projectId: string }) => p.projectId)).toEqual(expect.arrayContaining([byAdmin, mine]));
});

test('ProjectArchived disables the project\'s alerts in observability, once, delivered twice and out of order', async () => {
  const a = await create('Developer', 'A');
  const b = await create('Developer', 'B');
  for (const id of [a, b]) expect((await api.call('POST', `/api/v1/projects/projects/${id}/archive`, { as: 'Developer', body: { reason: 'done' } })).status).toBe(202);
  await until(async () => (await alertsDisabled(a)).length > 0 && (await alertsDisabled(b)).length > 0);
  const archived = (id: string) => local.events.find((e) => e['detail-type'] === 'ProjectArchived' && e.detail.aggregateId === id)!;
  for (const id of [a, b]) {
    const [disabled] = await alertsDisabled(id);
    expect(disabled).toMatchObject({
      source: 'skafu.observability',
      aggregateType: 'ProjectAlerts',
      causationId: archived(id).detail.eventId,
      correlationId: archived(id).detail.correlationId,
      data: { projectId: id, reason: 'project archived' },
    });
  }
  // Redelivered, B before A, twice each.
  const redeliver = (id: string) => local.putEvents([{ EventBusName: 'skafu-events-development', Source: 'skafu.projects', DetailType: 'ProjectArchived', Detail: JSON.stringify(archived(id).detail) }]);
  for (const id of [b, a, b, a]) await redeliver(id);
  await local.settle(20_000);
  expect((await alertsDisabled(a)).length).toBe(1);
  expect((await alertsDisabled(b)).length).toBe(1);
  expect(local.errors.filter((e) => e.errorType === 'ReactionRejected' || /reaction/i.test(String(e.message)))).toEqual([]);
});

test('issue 10, as reported: another domain\'s command on a project id is refused as a missing id, and the project\'s read model keeps converging', async () => {
  const project = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: 'Victim', description: 'v1', templateId: 'tpl' } });
  expect(project.status).toBe(201);
  const victim = project.body.aggregateId as string;
  // The attack: a Developer triggers an "alert" whose id is the project's (any Viewer can list project ids).
  const attack = await api.call('POST', `/api/v1/observability/alerts/${victim}/trigger`, { as: 'Developer', body: { metricValue: 1 } });
  const missing = await api.call('POST', `/api/v1/observability/alerts/alert-${victim.slice(8)}/trigger`, { as: 'Developer', body: { metricValue: 1 } });
  expect([attack.status, attack.body.error]).toEqual([404, 'AggregateNotFound']);
  expect([missing.status, missing.body.error]).toEqual([404, 'AggregateNotFound']);
  expect(attack.body.message).toBe(`Alert '${victim}' does not exist`);
  // Nothing landed in either domain's stream under that id; the project's own stream is untouched.
  expect(await eventStore('observability').load(victim)).toEqual([]);
  expect((await eventStore().load(victim)).map((e) => e.eventType)).toEqual(['ProjectCreated']);
  // The victim's next events are projected: no gap, no freeze.
  for (const description of ['v2', 'v3']) {
    expect((await api.call('PUT', `/api/v1/projects/projects/${victim}`, { as: 'Developer', body: { name: 'Victim', description } })).status).toBe(202);
  }
  const view = await api.until(`/api/v1/projects/projects/${victim}`, 'Viewer', (r) => r.body.item?.version === 3);
  expect([view.body.item?.version, view.body.item?.description]).toEqual([3, 'v3']);
});

test('a ProjectCreated stored at v1, before the schema moved to v2, is projected upgraded and folds as v2 for ownership and guards, over HTTP', async () => {
  const developer = JSON.parse(Buffer.from(local.tokens.Developer.split('.')[1], 'base64url').toString('utf8')).sub as string;
  const id = `project-${randomUUID()}`;
  // Written by the previous deployment: v1 called the description `summary` and had no template.
  const v1 = { projectId: id, name: 'Legacy', summary: 'from v1', ownerId: developer, status: 'ACTIVE' };
  await eventStore().append(id, [{ eventType: 'ProjectCreated', eventVersion: 1, data: v1, metadata: { userId: developer } }], { expectedVersion: 'no-stream', aggregateType: 'Project' });
  // Store -> stream -> publisher -> bus -> projection (upcast states) -> read model -> query.
  const view = await api.until(`/api/v1/projects/projects/${id}`, 'Viewer', (r) => r.body.item?.version === 1);
  expect(view.body.item).toMatchObject({ projectId: id, name: 'Legacy', description: 'from v1', templateId: 'none', ownerId: developer, status: 'ACTIVE' });
  expect(view.body.item.summary).toBeUndefined();
  // The command handler folds the same v1 event: ACTIVE (the guard passes) and owned by the Developer.
  expect((await api.call('PUT', `/api/v1/projects/projects/${id}`, { as: 'Developer', body: { name: 'Legacy II', description: 'now v2' } })).status).toBe(202);
  const updated = await api.until(`/api/v1/projects/projects/${id}`, 'Viewer', (r) => r.body.item?.version === 2);
  expect(updated.body.item).toMatchObject({ name: 'Legacy II', description: 'now v2', templateId: 'none' });
  // The stored event is never rewritten; what went on the bus is the stored v1 event.
  expect((await eventStore().load(id))[0]).toMatchObject({ eventVersion: 1, data: v1 });
  expect(local.events.find((e) => e.detail?.aggregateId === id)?.detail).toMatchObject({ eventVersion: 1, data: v1 });
  expect(local.errors.filter((e) => JSON.stringify(e).includes(id))).toEqual([]);
});

test('the inventory rules over HTTP: no negative stock, two events per discontinue, no double discontinue, no adjust after it', async () => {
  const created = await api.call('POST', '/api/v1/inventory/products', { as: 'Developer', body: { name: 'Widget', initialStock: 5 } });
  expect(created.status).toBe(201);
  const id = created.body.aggregateId as string;
  const stock = (delta: number, as = 'Developer') => api.call('POST', `/api/v1/inventory/products/${id}/stock`, { as, body: { delta } });
  const discontinue = (as = 'Developer') => api.call('POST', `/api/v1/inventory/products/${id}/discontinue`, { as, body: { reason: 'e2e' } });
  expect(await stock(-6)).toMatchObject({ status: 409, body: { error: 'InsufficientStock', message: 'stock cannot go below zero', correlationId: expect.stringMatching(/^e2e-/) } });
  expect((await stock(-5)).status).toBe(202); // exactly to zero
  expect((await stock(2, 'Admin')).status).toBe(202); // not the owner, but an Admin
  const first = await discontinue();
  expect(first.status).toBe(202);
  expect(first.body.events.map((e: { eventType: string }) => e.eventType)).toEqual(['ProductDiscontinued', 'ListingRemoved']);
  expect(await discontinue()).toMatchObject({ status: 409, body: { error: 'AlreadyDiscontinued' } });
  expect(await stock(1)).toMatchObject({ status: 409, body: { error: 'ProductDiscontinued', message: 'a discontinued product cannot change stock' } });
  const stream = await eventStore('inventory').load(id);
  expect(stream.map((e) => e.eventType)).toEqual(['ProductRegistered', 'StockAdjusted', 'StockAdjusted', 'ProductDiscontinued', 'ListingRemoved']);
  expect(stream[3].correlationId).toBe(stream[4].correlationId);
  // Both events of the discontinue were published, once each; the owner reads the product, the Viewer may not.
  await local.settle();
  expect(local.events.filter((e) => e.detail?.aggregateId === id).map((e) => e['detail-type'])).toEqual(stream.map((e) => e.eventType));
  const view = await api.until(`/api/v1/inventory/products/${id}`, 'Developer', (r) => r.status === 200);
  expect(view.body.item).toMatchObject({ productId: id, name: 'Widget', stock: 5, status: 'ACTIVE' });
  expect((await api.call('GET', `/api/v1/inventory/products/${id}`, { as: 'Viewer' })).status).toBe(403);
});

describe('GraphQL end to end: the same tables, the local issuer, subscriptions over the real-time protocol', () => {
  const gql = async (query: string, variables: Record<string, unknown>, token?: string) => {
    const response = await fetch(local.graphqlUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: token } : {}) }, body: JSON.stringify({ query, variables }) });
    return { status: response.status, body: (await response.json()) as any };
  };

  test('a subscriber to one project sees exactly that project\'s REST update; a user in no group is refused; queries and forged cursors over HTTP', async () => {
    const createProject = (name: string) => api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name, description: 'x', templateId: 'tpl' } });
    const [mine, other] = [(await createProject('Mine')).body.aggregateId as string, (await createProject('Other')).body.aggregateId as string];
    await api.until(`/api/v1/projects/projects/${other}`, 'Viewer', (r) => r.status === 200);
    await api.until(`/api/v1/projects/projects/${mine}`, 'Viewer', (r) => r.status === 200);

    expect((await gql('{ listProjects { count } }', {})).status).toBe(401);
    const read = await gql('query($id: String!) { getProject(projectId: $id) { projectId name version } }', { id: mine }, local.tokens.Viewer);
    expect(read).toEqual({ status: 200, body: { data: { getProject: { projectId: mine, name: 'Mine', version: 1 } } } });
    const forged = await gql('{ listProjects(nextToken: "bGlzdFByb2plY3RzOmZvcmdlZA==") { count } }', {}, local.tokens.Viewer);
    expect(forged.body.errors).toEqual([expect.objectContaining({ errorType: 'InvalidNextToken' })]);

    const host = new URL(local.graphqlUrl).host;
    const ws = new WebSocket(`${local.graphqlRealtimeUrl}?header=${realtimeHeader(local.tokens.Viewer, host)}&payload=e30=`, 'graphql-ws');
    const messages: any[] = [];
    ws.on('message', (raw) => messages.push(JSON.parse(String(raw))));
    const waitFor = async (match: (m: any) => boolean, ms = 20_000) => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline && !messages.some(match)) await new Promise((r) => setTimeout(r, 50));
      return messages.find(match);
    };
    try {
      await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
      ws.send(JSON.stringify({ type: 'connection_init' }));
      expect(await waitFor((m) => m.type === 'connection_ack')).toBeDefined();
      const query = 'subscription($id: String) { onProjectsChange(projectId: $id) { projectId change item { name version } } }';
      const start = (id: string, token: string) => ws.send(JSON.stringify({ id, type: 'start', payload: { data: JSON.stringify({ query, variables: { id: mine } }), extensions: { authorization: { Authorization: token, host } } } }));
      start('mine', local.tokens.Viewer);
      start('outsider', local.tokens.NoGroup);
      expect(await waitFor((m) => m.type === 'start_ack' && m.id === 'mine')).toBeDefined();
      expect((await waitFor((m) => m.id === 'outsider' && m.type === 'error'))?.payload.errors[0].errorType).toBe('Unauthorized');

      const update = (id: string, name: string) => api.call('PUT', `/api/v1/projects/projects/${id}`, { as: 'Developer', body: { name, description: 'y' } });
      expect((await update(other, 'Other 2')).status).toBe(202);
      expect((await update(mine, 'Mine 2')).status).toBe(202);
      const data = await waitFor((m) => m.type === 'data' && m.id === 'mine');
      expect(data.payload).toEqual({ data: { onProjectsChange: { projectId: mine, change: 'UPSERT', item: { name: 'Mine 2', version: 2 } } } });
      await api.until(`/api/v1/projects/projects/${other}`, 'Viewer', (r) => r.body.item?.version === 2);
      await local.settle();
      expect(messages.filter((m) => m.type === 'data').map((m) => m.payload.data.onProjectsChange.projectId)).toEqual([mine]);
      expect(messages.some((m) => m.id === 'outsider' && m.type === 'data')).toBe(false);
    } finally {
      ws.terminate();
    }
  });
});
