/**
 * Rebuilding a read model under Skafu Local: v1 of the example platform runs and takes commands; v2 raises the
 * projects read model to version 2 with a changed projection; Skafu Local restarts on v2 against the same
 * DynamoDB, backfills version 2 from the event store at start, switches queries to it, and the bundled query
 * handler answers from it (the new attribute, every project, the archived ones archived). Version 1's table is
 * left as it was; live commands after the restart reach version 2; nothing is parked or reported.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { observability, projectManagement } from '../../examples/platform/domains';
import { DemoClient } from '../../local/src/demo';
import { SkafuLocal } from '../../local/src/skafu-local';
import { ProjectionAction, ProjectionValue, SkafuEnvironment, SkafuPlatform, type DomainDeclaration } from '../../src';
import { until } from './support/until';

jest.setTimeout(300_000);

/** Version 2 of the projects read model: ProjectCreated also records the template as `templateLabel`. */
function projectsV2(): DomainDeclaration {
  return {
    ...projectManagement,
    readModels: (projectManagement.readModels ?? []).map((rm) =>
      rm.name !== 'projects'
        ? rm
        : {
          ...rm,
          version: 2,
          projections: rm.projections.map((p) =>
            p.eventType !== 'ProjectCreated'
              ? p
              : {
                eventType: 'ProjectCreated',
                action: ProjectionAction.putItem({
                  key: { projectId: ProjectionValue.fromEnvelope('aggregateId') },
                  attributes: {
                    name: ProjectionValue.fromData('name'),
                    description: ProjectionValue.fromData('description'),
                    templateId: ProjectionValue.fromData('templateId'),
                    templateLabel: ProjectionValue.fromData('templateId'),
                    ownerId: ProjectionValue.fromData('ownerId'),
                    status: ProjectionValue.string('ACTIVE'),
                    createdAt: ProjectionValue.fromEnvelope('timestamp'),
                    updatedAt: ProjectionValue.fromEnvelope('timestamp'),
                    version: ProjectionValue.fromEnvelope('eventSequence'),
                  },
                }),
              },
          ),
        },
    ),
  };
}

function synth(outdir: string, v2: boolean): void {
  const app = new App({ outdir });
  // Its own stack name: the tests share one DynamoDB Local; the same name would mean the same physical tables.
  const stack = new Stack(app, 'Skafu-versions-e2e');
  const platform = new SkafuPlatform(stack, 'Platform', { environment: SkafuEnvironment.DEVELOPMENT });
  platform.addDomain(observability);
  platform.addDomain(v2 ? projectsV2() : projectManagement);
  app.synth();
}


test('a read model raised to version 2 is rebuilt at start from the events written under v1, and queries answer from it', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-versions-e2e-'));
  const lines: string[] = [];
  const start = async (outdir: string) => {
    const local = new SkafuLocal({ assembly: outdir, dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, workDirectory: path.join(root, '.skafu-local'), log: (l) => lines.push(l) });
    await local.start();
    return local;
  };

  // v1: ten projects, three archived.
  synth(path.join(root, 'v1'), false);
  let local = await start(path.join(root, 'v1'));
  let api = new DemoClient(local, 'versions');
  const ids: string[] = [];
  let v1Table = '';
  try {
    for (let i = 0; i < 10; i++) {
      const created = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: `P${i}`, description: 'v1', templateId: `tpl-${i % 3}` } });
      expect(created.status).toBe(201);
      ids.push(created.body.aggregateId);
    }
    for (const id of ids.slice(0, 3)) expect((await api.call('POST', `/api/v1/projects/projects/${id}/archive`, { as: 'Developer', body: {} })).status).toBe(202);
    const archived = await until(() => api.call('GET', `/api/v1/projects/projects/${ids[2]}`, { as: 'Viewer' }), (r) => r.body?.item?.status === 'ARCHIVED');
    expect(archived.body.item).toMatchObject({ status: 'ARCHIVED' });
    expect(archived.body.item.templateLabel).toBeUndefined();
    await until(() => api.call('GET', `/api/v1/projects/projects/${ids[9]}`, { as: 'Viewer' }), (r) => r.status === 200);
    v1Table = Object.entries(local.tables).find(([p]) => /ReadModelProjectsTable[0-9A-F]{8}$/.test(p))![1];
  } finally {
    await local.stop();
  }

  // v2, same DynamoDB: version 2 is backfilled before the API answers, and queries switch to it.
  synth(path.join(root, 'v2'), true);
  const restarted = Date.now();
  const v1Lines = lines.length;
  local = await start(path.join(root, 'v2'));
  api = new DemoClient(local, 'versions');
  try {
    const startMs = Date.now() - restarted;
    // The backfill and the live projection share the work (Skafu Local's stream poller hands the v1 events to the
    // bus again at start): whoever comes first applies an event; the items below prove each applied once.
    const backfills = lines.slice(v1Lines).filter((l) => l.includes('backfill projects/projects'));
    expect(backfills).toEqual([expect.stringMatching(/^ {2}backfill projects\/projects@v2: CAUGHT_UP, \d+ events applied, \d+ ms, queries read version 2$/)]);
    // The guard is named at start with the reason it does not run locally.
    expect(local.unsupported).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'Custom::SkafuReadModelVersionGuard', why: expect.stringContaining('never deletes a table') })]));
    // Both versions' tables exist: version 1's is the one v1 wrote (same physical table), untouched.
    const v2Table = Object.entries(local.tables).find(([p]) => /ReadModelProjectsTableV2/.test(p))![1];
    expect(v2Table).not.toBe(v1Table);
    expect(Object.values(local.tables)).toContain(v1Table);
    // The active-version pointer in the projects domain's checkpoint table names version 2.
    const checkpoints = Object.entries(local.tables).find(([p]) => /ProjectionTablesprojectsProjectionsCheckpoints/.test(p))![1];
    const pointer = await local.client.send(new GetItemCommand({ TableName: checkpoints, Key: { aggregateId: { S: '#active#projects' } }, ConsistentRead: true }));
    expect(unmarshall(pointer.Item!)).toMatchObject({ version: 2, readModel: 'projects@v2', tableName: v2Table });

    // Queries answer from version 2: the new attribute on every project, the archived ones archived.
    for (const [i, id] of ids.entries()) {
      const got = await api.call('GET', `/api/v1/projects/projects/${id}`, { as: 'Viewer' });
      expect(got.status).toBe(200);
      expect(got.body.item).toMatchObject({ projectId: id, name: `P${i}`, templateLabel: `tpl-${i % 3}`, status: i < 3 ? 'ARCHIVED' : 'ACTIVE' });
    }
    // Version 1's table is as v1 left it (no longer updated).
    const v1Items = (await local.client.send(new ScanCommand({ TableName: v1Table, ConsistentRead: true }))).Items!.map((i) => unmarshall(i));
    expect(v1Items).toHaveLength(10);
    expect(v1Items.every((i) => i.templateLabel === undefined)).toBe(true);

    // Live after the switch: a new project reaches version 2 (and only version 2).
    const created = await api.call('POST', '/api/v1/projects/projects', { as: 'Developer', body: { name: 'P10', description: 'v2', templateId: 'tpl-new' } });
    expect(created.status).toBe(201);
    const fresh = await until(() => api.call('GET', `/api/v1/projects/projects/${created.body.aggregateId}`, { as: 'Viewer' }), (r) => r.status === 200);
    expect(fresh.body.item).toMatchObject({ name: 'P10', templateLabel: 'tpl-new' });
    expect((await local.client.send(new ScanCommand({ TableName: v1Table, Select: 'COUNT' }))).Count).toBe(10);
    const parkingTables = Object.entries(local.tables).filter(([p]) => /ParkedEvents/.test(p)).map(([, name]) => name);
    for (const name of parkingTables) expect((await local.client.send(new ScanCommand({ TableName: name, Select: 'COUNT' }))).Count).toBe(0);
    expect(local.errors.filter((e) => /Projection|Backfill/.test(String(e.errorType ?? e.kind)))).toEqual([]);
    console.log(`Skafu Local restart on v2 with the versioned rebuild: ${startMs} ms`);
  } finally {
    await local.stop();
  }
});
