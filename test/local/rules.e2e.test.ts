/**
 * Declared business rules end to end under Skafu Local, over HTTP: the example's projects belong to their
 * creator (Admins override) and guard their status; observability reacts to ProjectArchived by disabling the
 * project's alerts, once, whether the event is delivered twice or out of order.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildExampleApp } from '../../examples/platform/app';
import { DemoClient } from '../../local/src/demo';
import { SkafuLocal } from '../../local/src/skafu-local';
import { EventStore } from '../../src/runtime';

let local: SkafuLocal;
let api: DemoClient;
let store: EventStore;

beforeAll(async () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-rules-e2e-'));
  buildExampleApp(outdir).synth();
  local = new SkafuLocal({ assembly: outdir, dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, workDirectory: path.join(outdir, '.skafu-local'), log: () => undefined });
  await local.start();
  api = new DemoClient(local, 'rules');
  const [, table] = Object.entries(local.tables).find(([p]) => /EventStore/.test(p))!;
  store = new EventStore({ tableName: table, client: local.client });
}, 180_000);
afterAll(() => local?.stop());

const create = async (as: string, name: string) => {
  const res = await api.call('POST', '/api/v1/projects/projects', { as, body: { name, description: 'e2e', templateId: 'tpl' } });
  expect(res.status).toBe(201);
  return res.body.aggregateId as string;
};
const alertsDisabled = async (projectId: string) => (await store.load(`project-alerts-${projectId}`)).filter((e) => e.eventType === 'ProjectAlertsDisabled');
const until = async (check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
};

test('ownership and guards over HTTP: 403 NotOwner for another user, Admin overrides, 409 with the guard name', async () => {
  const byAdmin = await create('Admin', 'Admin project');
  const update = { name: 'Renamed', description: 'x' };
  const refused = await api.call('PUT', `/api/v1/projects/projects/${byAdmin}`, { as: 'Developer', body: update });
  expect(refused).toMatchObject({ status: 403, body: { error: 'NotOwner', correlationId: expect.stringMatching(/^rules-/) } });
  const mine = await create('Developer', 'Developer project');
  expect((await api.call('PUT', `/api/v1/projects/projects/${mine}`, { as: 'Admin', body: update })).status).toBe(202);
  expect((await api.call('POST', `/api/v1/projects/projects/${mine}/archive`, { as: 'Developer', body: {} })).status).toBe(202);
  const twice = await api.call('POST', `/api/v1/projects/projects/${mine}/archive`, { as: 'Developer', body: {} });
  expect(twice).toMatchObject({ status: 409, body: { error: 'ProjectAlreadyArchived', message: 'the project is already archived' } });
  const afterArchive = await api.call('PUT', `/api/v1/projects/projects/${mine}`, { as: 'Developer', body: update });
  expect(afterArchive).toMatchObject({ status: 409, body: { error: 'ProjectArchived' } });
  expect((await store.load(byAdmin)).map((e) => e.eventType)).toEqual(['ProjectCreated']);
  expect((await store.load(mine)).map((e) => e.eventType)).toEqual(['ProjectCreated', 'ProjectUpdated', 'ProjectArchived']);

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
  const redeliver = (id: string) => local.putEvents({ Entries: [{ EventBusName: 'skafu-events-development', Source: 'skafu.projects', DetailType: 'ProjectArchived', Detail: JSON.stringify(archived(id).detail) }] });
  for (const id of [b, a, b, a]) await redeliver(id);
  await local.settle(20_000);
  expect((await alertsDisabled(a)).length).toBe(1);
  expect((await alertsDisabled(b)).length).toBe(1);
  expect(local.errors.filter((e) => e.errorType === 'ReactionRejected' || /reaction/i.test(String(e.message)))).toEqual([]);
});
