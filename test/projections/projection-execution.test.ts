/**
 * ProjectionStateMachine, proven by running the exact definition it synthesizes: aws-local-stepfunctions executes
 * it, its DynamoDB tasks run against DynamoDB Local (tables created from the same template), and the error-bus
 * task is captured (EventBridge has no local engine).
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient, GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { DomainEventBus, ErrorBus, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { definitionFrom, runLocal, validateAsl } from '../support/asl';
import { createTableInputFromCfn, localClient } from '../support/tables';

let client: DynamoDBClient;
let definition: Record<string, any>;
const tables: Record<string, string> = {};
const errors: Array<Record<string, any>> = [];

function synth() {
  const stack = new Stack(new App(), 'Projections', { env: { account: '111111111111', region: 'us-east-1' } });
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const projects = new ReadModelTable(stack, 'Projects', { partitionKey: { name: 'projectId' } });
  const metrics = new ReadModelTable(stack, 'Metrics', {
    partitionKey: { name: 'name' },
    sortKey: { name: 'timestamp' },
    timeToLiveAttribute: 'expiresAt',
  });
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'scope' }, sortKey: { name: 'bucket', type: dynamodb.AttributeType.NUMBER } });
  const projectKey = { projectId: ProjectionValue.fromEnvelope('aggregateId') };
  new ProjectionStateMachine(stack, 'Projections', {
    domain: 'projects',
    eventBus: bus.eventBus,
    errorBus,
    eventTypes: ['ProjectNoteAdded'],
    projections: [
      {
        eventType: 'ProjectCreated',
        readModel: projects,
        action: ProjectionAction.putItem({
          key: projectKey,
          attributes: {
            name: ProjectionValue.fromData('name'),
            ownerId: ProjectionValue.fromMetadata('userId'),
            status: ProjectionValue.string('ACTIVE'),
            createdAt: ProjectionValue.fromEnvelope('timestamp'),
            version: ProjectionValue.fromEnvelope('eventSequence'),
            configuration: ProjectionValue.fromData('configuration', ValueType.JSON),
          },
        }),
      },
      {
        eventType: 'ProjectRenamed',
        readModel: projects,
        action: ProjectionAction.updateItem({
          key: projectKey,
          set: { name: ProjectionValue.fromData('name'), version: ProjectionValue.fromEnvelope('eventSequence') },
          add: { renames: ProjectionValue.number(1) },
          append: { history: ProjectionValue.fromData('name') },
        }),
      },
      {
        eventType: 'ProjectArchived',
        readModel: projects,
        action: ProjectionAction.updateItem({ key: projectKey, set: { status: ProjectionValue.string('ARCHIVED'), archived: ProjectionValue.boolean(true) }, remove: ['ownerId'] }),
      },
      { eventType: 'ProjectDeleted', readModel: projects, action: ProjectionAction.deleteItem({ key: projectKey }) },
      {
        eventType: 'MetricCollected',
        readModel: metrics,
        action: ProjectionAction.putItem({
          key: { name: ProjectionValue.fromData('name'), timestamp: ProjectionValue.fromEnvelope('timestamp') },
          attributes: { value: ProjectionValue.fromData('value', ValueType.NUMBER), tags: ProjectionValue.fromData('tags', ValueType.JSON) },
          ttl: Duration.days(30),
        }),
      },
      {
        eventType: 'MetricCollected',
        readModel: totals,
        action: ProjectionAction.updateItem({
          key: { scope: ProjectionValue.string('all'), bucket: ProjectionValue.number(0) },
          add: { count: ProjectionValue.number(1), sum: ProjectionValue.fromData('value', ValueType.NUMBER) },
        }),
      },
    ],
  });
  return Template.fromStack(stack);
}

beforeAll(async () => {
  client = localClient();
  const template = synth();
  // Every table of the template, created in DynamoDB Local under a unique name.
  for (const [logicalId, resource] of Object.entries(template.findResources('AWS::DynamoDB::Table'))) {
    tables[logicalId] = `${logicalId}-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, tables[logicalId])));
  }
  const refs: Record<string, string> = { ...tables };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = id === Object.keys(template.findResources('AWS::Events::EventBus'))[1] ? 'skafu-errors' : 'skafu-errors';
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  definition = definitionFrom(machine as { Properties: Record<string, unknown> }, refs);
});
afterAll(() => client.destroy());
beforeEach(() => (errors.length = 0));

const table = (prefix: string) => tables[Object.keys(tables).find((k) => k.startsWith(prefix))!];

let seq = 0;
function bridgeEvent(type: string, aggregateId: string, eventSequence: number, data: Record<string, unknown>, timestamp = '2026-03-01T10:00:00.000Z') {
  return {
    'version': '0',
    'id': randomUUID(),
    'detail-type': type,
    'source': 'skafu.projects',
    'account': '111111111111',
    'time': timestamp,
    'region': 'us-east-1',
    'resources': [],
    'detail': {
      eventId: `ev-${++seq}`,
      eventType: type,
      eventVersion: 1,
      aggregateId,
      aggregateType: 'Project',
      eventSequence,
      timestamp,
      timestampEpochSeconds: Math.floor(Date.parse(timestamp) / 1000),
      correlationId: `corr-${aggregateId}`,
      causationId: `corr-${aggregateId}`,
      source: 'skafu.projects',
      data,
      metadata: { userId: 'user-1' },
    },
  };
}

/** The ASL error an execution failed with (Fail state's Error). */
async function failureOf(execution: Promise<unknown>): Promise<string> {
  const err = await execution.then(
    () => undefined,
    (e: { cause?: { name?: string } }) => e,
  );
  expect(err).toBeDefined();
  return String(err!.cause?.name);
}

const run = (input: unknown, waitMs = 20) => runLocal(definition, input, { client, waitMs, onPutEvents: (entries) => errors.push(...entries) });
async function item(prefix: string, key: Record<string, unknown>) {
  const out = await client.send(new GetItemCommand({ TableName: table(prefix), Key: Object.fromEntries(Object.entries(key).map(([k, v]) => [k, typeof v === 'number' ? { N: String(v) } : { S: String(v) }])), ConsistentRead: true }));
  return out.Item ? unmarshall(out.Item) : undefined;
}

test('the synthesized definition is valid ASL, JSONPath only, EXPRESS-sized', () => {
  validateAsl(definition);
  expect(JSON.stringify(definition)).not.toContain('JSONata');
  expect(definition.QueryLanguage).toBeUndefined();
  expect(definition.TimeoutSeconds).toBe(300);
});

test('put, update (set, add, append, remove) and delete, each against DynamoDB Local', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'Apollo', configuration: { region: 'eu', tiers: [1, 2] } }));
  expect(await item('Projects', { projectId: id })).toEqual({
    projectId: id,
    name: 'Apollo',
    ownerId: 'user-1',
    status: 'ACTIVE',
    createdAt: '2026-03-01T10:00:00.000Z',
    version: 1,
    configuration: '{"region":"eu","tiers":[1,2]}',
  });
  await run(bridgeEvent('ProjectRenamed', id, 2, { name: 'Artemis' }));
  await run(bridgeEvent('ProjectRenamed', id, 3, { name: 'Orion' }));
  expect(await item('Projects', { projectId: id })).toMatchObject({ name: 'Orion', version: 3, renames: 2, history: ['Artemis', 'Orion'] });
  await run(bridgeEvent('ProjectArchived', id, 4, {}));
  const archived = await item('Projects', { projectId: id });
  expect(archived).toMatchObject({ status: 'ARCHIVED', archived: true });
  expect(archived!.ownerId).toBeUndefined();
  await run(bridgeEvent('ProjectDeleted', id, 5, {}));
  expect(await item('Projects', { projectId: id })).toBeUndefined();
  const checkpoint = await client.send(new GetItemCommand({ TableName: table('ProjectionsCheckpoints'), Key: { aggregateId: { S: `Projects#${id}` } }, ConsistentRead: true }));
  // Kept per read model and aggregate: every read model of the machine has its own checkpoint.
  expect(unmarshall(checkpoint.Item!)).toMatchObject({ aggregateId: `Projects#${id}`, readModel: 'Projects', lastEventSequence: 5, lastEventType: 'ProjectDeleted' });
  const metricsCheckpoint = await client.send(new GetItemCommand({ TableName: table('ProjectionsCheckpoints'), Key: { aggregateId: { S: `Metrics#${id}` } }, ConsistentRead: true }));
  expect(unmarshall(metricsCheckpoint.Item!)).toMatchObject({ readModel: 'Metrics', lastEventSequence: 5 });
  expect(errors).toEqual([]);
});

test('TTL: epoch seconds 30 days after the event timestamp; several read models in one transaction', async () => {
  const before = (await item('Totals', { scope: 'all', bucket: 0 })) ?? { count: 0, sum: 0 };
  const timestamp = '2026-05-17T08:30:00.000Z';
  await run(bridgeEvent('MetricCollected', `m-${randomUUID()}`, 1, { name: 'cpu', value: 42.5, tags: { host: 'a' } }, timestamp));
  const metric = await item('Metrics', { name: 'cpu', timestamp });
  expect(metric).toEqual({ name: 'cpu', timestamp, value: 42.5, tags: '{"host":"a"}', expiresAt: Date.parse(timestamp) / 1000 + 30 * 86400 });
  expect(await item('Totals', { scope: 'all', bucket: 0 })).toMatchObject({ count: before.count + 1, sum: before.sum + 42.5 });
});

test('the same event twice: applied once, the counter counts it once', async () => {
  const before = (await item('Totals', { scope: 'all', bucket: 0 })) ?? { count: 0, sum: 0 };
  const event = bridgeEvent('MetricCollected', `m-${randomUUID()}`, 1, { name: 'mem', value: 7, tags: {} }, '2026-05-17T09:00:00.000Z');
  await run(event);
  await expect(run(event)).resolves.toBeDefined(); // the duplicate succeeds...
  const concurrent = await Promise.all([run(event), run(event)]);
  expect(concurrent).toHaveLength(2);
  expect(await item('Totals', { scope: 'all', bucket: 0 })).toMatchObject({ count: before.count + 1, sum: before.sum + 7 }); // ...without writing
  expect(errors).toEqual([]);
});

test('two events of one aggregate started in reverse order at the same time: both applied, in sequence order', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'v1', configuration: {} }));
  const second = run(bridgeEvent('ProjectRenamed', id, 3, { name: 'v3' }), 50);
  const first = run(bridgeEvent('ProjectRenamed', id, 2, { name: 'v2' }), 50);
  await Promise.all([second, first]);
  expect(await item('Projects', { projectId: id })).toMatchObject({ name: 'v3', version: 3, renames: 2, history: ['v2', 'v3'] });
  expect(errors).toEqual([]);
});

test('event types routed without a projection advance the checkpoint, so later events still apply', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'n', configuration: {} }));
  await run(bridgeEvent('ProjectNoteAdded', id, 2, { note: 'hello' }));
  await run(bridgeEvent('ProjectRenamed', id, 3, { name: 'after note' }));
  expect(await item('Projects', { projectId: id })).toMatchObject({ name: 'after note', version: 3 });
});

test('a gap that never fills: parked, reported once on the error bus as ProjectionGap with the whole event inside', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'n', configuration: {} }));
  const orphan = bridgeEvent('ProjectRenamed', id, 3, { name: 'never' });
  expect(await failureOf(run(orphan, 1))).toBe('ProjectionEventParked');
  // Each read model has its own checkpoint and parking place: the gap is parked and reported once per read model.
  expect(errors.map((e) => e.Detail.context.readModel).sort()).toEqual(['Metrics', 'Projects', 'Totals']);
  const entry = errors.find((e) => e.Detail.context.readModel === 'Projects')!;
  expect(entry).toMatchObject({ Source: 'skafu.projects', DetailType: 'Application Error' });
  expect(entry.Detail).toMatchObject({
    errorType: 'ProjectionGap',
    severity: 'HIGH',
    correlationId: `corr-${id}`,
    context: { domain: 'projects', stateMachine: 'local' },
    metadata: { retryCount: 6, retryable: true, parked: true, original: orphan.detail, failure: { Error: 'Skafu.ProjectionGap' } },
  });
  expect(entry.Detail.message).toMatch(/ProjectRenamed 3 of aggregate .* was parked for read model Projects \(Gap\)/);
  expect(entry.Detail.errorId).toMatch(/^[0-9a-f-]{36}$/);
  expect(await item('Projects', { projectId: id })).toMatchObject({ name: 'n', version: 1 });
  expect(await item('ProjectionsParkedEvents', { aggregateId: `Projects#${id}`, eventSequence: 3 })).toMatchObject({ status: 'PARKED', reason: 'Gap', errorType: 'ProjectionGap', event: JSON.stringify(orphan.detail) });
  // A second delivery of the parked event: nothing more is reported.
  await run(orphan, 1);
  expect(errors).toHaveLength(3);
});

test('an unknown event type succeeds without writing', async () => {
  const before = await client.send(new ScanCommand({ TableName: table('ProjectionsCheckpoints'), Select: 'COUNT' }));
  await expect(run(bridgeEvent('SomethingElse', `p-${randomUUID()}`, 1, {}))).resolves.toBeDefined();
  const after = await client.send(new ScanCommand({ TableName: table('ProjectionsCheckpoints'), Select: 'COUNT' }));
  expect(after.Count).toBe(before.Count);
  expect(errors).toEqual([]);
});

test('a DynamoDB failure: retried, then parked and reported with the original event inside', async () => {
  const id = `p-${randomUUID()}`;
  const event = bridgeEvent('ProjectCreated', id, 1, { name: 'doomed', configuration: {} });
  let attempts = 0;
  const failed = failureOf(
    runLocal(definition, event, {
      client,
      onPutEvents: (entries) => errors.push(...entries),
      taskOverride: (state) => {
        if (state !== 'Apply ProjectCreated (Projects)') return undefined;
        attempts++;
        const err = new Error('Throughput exceeds the current capacity');
        err.name = 'DynamoDb.ProvisionedThroughputExceededException';
        throw err;
      },
    }),
  );
  expect(await failed).toBe('ProjectionEventParked');
  expect(attempts).toBe(4); // the first try and 3 retries
  expect(errors).toHaveLength(1);
  expect(errors[0].Detail).toMatchObject({
    errorType: 'ProjectionFailed',
    metadata: { parked: true, original: event.detail, failure: { Error: 'DynamoDb.ProvisionedThroughputExceededException' } },
  });
  expect(await item('ProjectionsParkedEvents', { aggregateId: `Projects#${id}`, eventSequence: 1 })).toMatchObject({ status: 'PARKED', reason: 'WriteFailed' });
  expect(await item('Projects', { projectId: id })).toBeUndefined();
});

test('a missing read-model table (a real DynamoDB error from DynamoDB Local) takes the same path', async () => {
  const name = table('Metrics');
  await client.send(new DeleteTableCommand({ TableName: name }));
  try {
    const event = bridgeEvent('MetricCollected', `m-${randomUUID()}`, 1, { name: 'x', value: 1, tags: {} });
    expect(await failureOf(run(event))).toBe('ProjectionEventParked');
    expect(errors[0].Detail).toMatchObject({ errorType: 'ProjectionFailed', metadata: { parked: true, original: event.detail, failure: { Error: 'DynamoDb.ResourceNotFoundException' } } });
  } finally {
    const template = synth();
    const [, resource] = Object.entries(template.findResources('AWS::DynamoDB::Table')).find(([id]) => id.startsWith('Metrics'))!;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, name)));
  }
});
