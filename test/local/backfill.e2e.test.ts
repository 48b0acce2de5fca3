/**
 * Day two under Skafu Local: v1 of the example platform runs and takes commands; v2 adds a read model to the
 * projects domain (a count of projects per status, with a query); Skafu Local restarts on v2 against the same
 * DynamoDB, backfills the new read model from the event store at start, and its query answers with every
 * project created under v1. Live commands after the restart keep it current, and nothing is parked or reported.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { observability, projectManagement } from '../../examples/platform/domains';
import { DemoClient } from '../../local/src/demo';
import { SkafuLocal } from '../../local/src/skafu-local';
import { ProjectionAction, ProjectionValue, QueryInput, SkafuEnvironment, SkafuPlatform } from '../../src';
import { until } from './support/until';

jest.setTimeout(300_000);

function synth(outdir: string, v2: boolean): void {
  const app = new App({ outdir });
  // Its own stack name: the tests share one DynamoDB Local, and another suite runs the example app (stack
  // Skafu-development) at the same time; the same name would mean the same physical tables.
  const stack = new Stack(app, 'Skafu-backfill-e2e');
  const platform = new SkafuPlatform(stack, 'Platform', { environment: SkafuEnvironment.DEVELOPMENT });
  platform.addDomain(observability);
  platform.addDomain(
    v2
      ? {
        ...projectManagement,
        readModels: [
          ...(projectManagement.readModels ?? []),
          {
            name: 'projectCounts',
            partitionKey: { name: 'status' },
            projections: [{ eventType: 'ProjectCreated', action: ProjectionAction.updateItem({ key: { status: ProjectionValue.fromData('status') }, add: { projects: ProjectionValue.number(1) } }) }],
          },
        ],
        queries: [
          ...(projectManagement.queries ?? []),
          { name: 'GetProjectCount', path: 'project-counts/{status}', allowedGroups: ['Admin', 'Developer', 'Viewer'], readModel: 'projectCounts', key: { status: QueryInput.pathParameter('status') } },
        ],
      }
      : projectManagement,
  );
  app.synth();
}


test('a read model added in v2 is backfilled at start from the events written under v1, and its query answers', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-backfill-e2e-'));
  const lines: string[] = [];
  const start = async (outdir: string) => {
    const local = new SkafuLocal({ assembly: outdir, dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, workDirectory: path.join(root, '.skafu-local'), log: (l) => lines.push(l) });
    await local.start();
    return local;
  };

  // v1: twelve projects, two archived.
  synth(path.join(root, 'v1'), false);
  let local = await start(path.join(root, 'v1'));
  let api = new DemoClient(local, 'backfill');
  const ids: string[] = [];
  try {
    for (let i = 0; i < 12; i++) {
      const created = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: `P${i}`, description: 'v1', templateId: 'tpl' } });
      expect(created.status).toBe(201);
      ids.push(created.body.aggregateId);
    }
    for (const id of ids.slice(0, 2)) expect((await api.call('POST', `/api/v1/projects/projects/${id}/archive`, { as: 'Developer', body: {} })).status).toBe(202);
    const last = await until(() => api.call('GET', `/api/v1/projects/projects/${ids[11]}`, { as: 'Viewer' }), (r) => r.status === 200);
    expect(last.status).toBe(200);
  } finally {
    await local.stop();
  }

  // v2, same DynamoDB: the new read model is backfilled before the API answers.
  synth(path.join(root, 'v2'), true);
  const restarted = Date.now();
  local = await start(path.join(root, 'v2'));
  api = new DemoClient(local, 'backfill');
  try {
    const startMs = Date.now() - restarted;
    // The backfill and the live projection share the work (Skafu Local's stream poller hands the v1 events to the
    // bus again at start, and a ProjectCreated, first of its stream, applies live at once): whoever comes first
    // applies an event, the other finds the checkpoint past it. The count below proves each applied once.
    const backfills = lines.filter((l) => l.includes('backfill projects/projectCounts'));
    expect(backfills).toEqual([expect.stringMatching(/^ {2}backfill projects\/projectCounts: CAUGHT_UP, \d+ events applied/)]);
    const count = await api.call('GET', '/api/v1/projects/project-counts/ACTIVE', { as: 'Viewer' });
    expect(count.status).toBe(200);
    expect(count.body.item).toMatchObject({ status: 'ACTIVE', projects: 12 });
    // The existing read models are not touched: their checkpoints were at the store's end.
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^ {2}backfill projects\/projects: CAUGHT_UP, 0 events applied/)]));

    // Live after the backfill: a new project and a command on a v1 project (no gap, nothing parked).
    const created = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: 'P12', description: 'v2', templateId: 'tpl' } });
    expect(created.status).toBe(201);
    const updated = await api.call('PUT', `/api/v1/projects/projects/${ids[5]}`, { as: 'Developer', body: { name: 'P5 renamed', description: 'v2' } });
    expect(updated.status).toBe(202);
    const after = await until(() => api.call('GET', '/api/v1/projects/project-counts/ACTIVE', { as: 'Viewer' }), (r) => r.body?.item?.projects === 13);
    expect(after.body.item).toMatchObject({ projects: 13 });
    const renamed = await until(() => api.call('GET', `/api/v1/projects/projects/${ids[5]}`, { as: 'Viewer' }), (r) => r.body?.item?.name === 'P5 renamed');
    expect(renamed.body.item).toMatchObject({ name: 'P5 renamed' });
    const parkingTables = Object.entries(local.tables).filter(([p]) => /ParkedEvents/.test(p)).map(([, name]) => name);
    for (const name of parkingTables) expect((await local.client.send(new ScanCommand({ TableName: name, Select: 'COUNT' }))).Count).toBe(0);
    expect(local.errors.filter((e) => /Projection/.test(String(e.errorType ?? e.kind)))).toEqual([]);
    console.log(`Skafu Local restart on v2 with the backfill: ${startMs} ms`);
  } finally {
    await local.stop();
  }
});
