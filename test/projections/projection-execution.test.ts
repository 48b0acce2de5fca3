/**
 * ProjectionStateMachine, proven by running the exact definition it synthesizes: aws-local-stepfunctions executes
 * it, its DynamoDB tasks run against DynamoDB Local (tables created from the same template), and the error-bus
 * task is captured (EventBridge has no local engine).
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient, GetItemCommand, ScanCommand, TransactionConflictException } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { DomainEventBus, ErrorBus, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { definitionFrom, runLocal, validateAsl } from '../support/asl';
import { createTableInputFromCfn, localClient } from '../support/tables';

let client: DynamoDBClient;
let definition: Record<string, any>;
/** The definition as synthesized (aws-local-stepfunctions adds defaults such as QueryLanguage to the one it runs). */
let synthesized: Record<string, any>;
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
  synthesized = JSON.parse(JSON.stringify(definition));
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

// ---- an event type a read model does not project: its checkpoint alone, in one conditional UpdateItem ----------

/** The states of one read model's branch, as synthesized, by their names without the read model suffix. */
function branch(readModel: string): Record<string, any> {
  const b = synthesized.States.ApplyPerReadModel.Branches.find((x: { StartAt: string }) => x.StartAt.endsWith(`(${readModel})`));
  return Object.fromEntries(Object.entries(b.States as Record<string, any>).map(([k, v]) => [k.replace(` (${readModel})`, ''), v]));
}
const READ_MODELS = ['Projects', 'Metrics', 'Totals'];
async function checkpointOf(readModel: string, id: string) {
  const out = await client.send(new GetItemCommand({ TableName: table('ProjectionsCheckpoints'), Key: { aggregateId: { S: `${readModel}#${id}` } }, ConsistentRead: true }));
  return out.Item ? unmarshall(out.Item) : undefined;
}
const checkpoints = async (id: string) =>
  Object.fromEntries(await Promise.all(READ_MODELS.map(async (rm) => [rm, await checkpointOf(rm, id)] as const)));
/** Runs one execution; `applies` collects the Apply states entered, one entry per attempt. */
type Override = (state: string, input: any) => Promise<unknown> | undefined;
function runCounting(input: unknown, applies: string[], options: { waitMs?: number; taskOverride?: Override } = {}) {
  return runLocal(definition, input, {
    client,
    waitMs: options.waitMs ?? 20,
    onPutEvents: (entries) => errors.push(...entries),
    taskOverride: (state, taskInput) => {
      if (state.startsWith('Apply ')) applies.push(state);
      return options.taskOverride?.(state, taskInput);
    },
  }) as Promise<{ readModels: string[] }>;
}
const conflict = () => Object.assign(new Error('Transaction is ongoing for the item'), { name: 'DynamoDB.TransactionConflictException' });

test('the definition: a checkpoint-only apply is one conditional UpdateItem of exactly the checkpoint; one with writes stays one transaction, checkpoint first', () => {
  const checkpointTable = table('ProjectionsCheckpoints');
  for (const rm of READ_MODELS) {
    const states = branch(rm);
    const applies = Object.entries(states).filter(([name]) => name.startsWith('Apply '));
    expect(applies.length).toBe(6); // ProjectCreated, ProjectRenamed, ProjectArchived, ProjectDeleted, MetricCollected, ProjectNoteAdded
    const transactions = applies.filter(([, s]) => s.Resource === 'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems');
    const updates = applies.filter(([, s]) => s.Resource === 'arn:aws:states:::dynamodb:updateItem');
    expect(transactions.length + updates.length).toBe(applies.length);
    expect(transactions.length).toBeGreaterThan(0);
    // The checkpoint update of this read model's transactions, the same in every one of them.
    const [checkpoint] = transactions[0][1].Parameters.TransactItems;
    expect(checkpoint.Update).toMatchObject({
      TableName: checkpointTable,
      Key: { aggregateId: { 'S.$': `States.Format('${rm}#{}', $.detail.aggregateId)` } },
      ConditionExpression: '(attribute_not_exists(#seq) AND :seq = :one) OR #seq = :prev',
    });
    for (const [name, s] of transactions) {
      // Never a one-item transaction: the checkpoint first, then at least one read-model write.
      expect(s.Parameters.TransactItems.length).toBeGreaterThan(1);
      expect(s.Parameters.TransactItems[0]).toEqual(checkpoint);
      const written = s.Parameters.TransactItems.slice(1).map((i: Record<string, { TableName: string }>) => Object.values(i)[0].TableName);
      expect(written).not.toContain(checkpointTable);
      expect(s.Retry[0]).toEqual({ ErrorEquals: expect.arrayContaining(['DynamoDb.TransactionCanceledException']), MaxAttempts: 0 });
      expect(name).not.toBe('Apply ProjectNoteAdded');
    }
    for (const [, s] of updates) {
      expect(s).toEqual({
        Type: 'Task',
        Comment: expect.stringMatching(/advances the checkpoint only/),
        Resource: 'arn:aws:states:::dynamodb:updateItem',
        Parameters: checkpoint.Update,
        ResultPath: null,
        // The refusals WhyCancelled explains are not retried blindly, and come before the generic retry whose
        // States.TaskFailed would match them too.
        Retry: [
          { ErrorEquals: ['DynamoDB.ConditionalCheckFailedException', 'DynamoDb.ConditionalCheckFailedException', 'DynamoDB.TransactionConflictException', 'DynamoDb.TransactionConflictException'], MaxAttempts: 0 },
          { ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2 },
        ],
        Catch: [
          { ErrorEquals: ['DynamoDB.ConditionalCheckFailedException', 'DynamoDb.ConditionalCheckFailedException', 'DynamoDB.TransactionConflictException', 'DynamoDb.TransactionConflictException'], ResultPath: '$.failure', Next: `WhyCancelled (${rm})` },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: `NotApplied (${rm})` },
        ],
        Next: `Applied (${rm})`,
      });
    }
    expect(states['Apply ProjectNoteAdded'].Resource).toBe('arn:aws:states:::dynamodb:updateItem');
  }
  // Which read model projects what: Projects the Project* types, Metrics and Totals MetricCollected.
  const kinds = (rm: string) => Object.fromEntries(Object.entries(branch(rm)).filter(([n]) => n.startsWith('Apply ')).map(([n, s]) => [n.slice(6), s.Resource.endsWith('updateItem') ? 'checkpoint only' : 'transaction']));
  expect(kinds('Projects')).toEqual({ ProjectCreated: 'transaction', ProjectRenamed: 'transaction', ProjectArchived: 'transaction', ProjectDeleted: 'transaction', MetricCollected: 'checkpoint only', ProjectNoteAdded: 'checkpoint only' });
  expect(kinds('Metrics')).toEqual({ ProjectCreated: 'checkpoint only', ProjectRenamed: 'checkpoint only', ProjectArchived: 'checkpoint only', ProjectDeleted: 'checkpoint only', MetricCollected: 'transaction', ProjectNoteAdded: 'checkpoint only' });
  // WhyCancelled reads a standard write's refusal from its error name, before the transaction's reasons.
  expect(branch('Metrics').WhyCancelled.Choices.slice(0, 2)).toEqual([
    { Variable: '$.failure.Error', StringMatches: '*.TransactionConflictException', Next: 'MayRetryConflict (Metrics)' },
    { Variable: '$.failure.Error', StringMatches: '*.ConditionalCheckFailedException', Next: 'ReadCheckpoint (Metrics)' },
  ]);
});

test('an unprojected event advances every read model\'s checkpoint (1, then 2); a duplicate delivery is AlreadyApplied, one refused attempt, nothing written', async () => {
  const id = `p-${randomUUID()}`;
  const applies: string[] = [];
  const first = bridgeEvent('ProjectNoteAdded', id, 1, { note: 'one' });
  expect((await runCounting(first, applies)).readModels).toEqual(['APPLIED', 'APPLIED', 'APPLIED']);
  for (const rm of READ_MODELS) expect(await checkpointOf(rm, id)).toMatchObject({ readModel: rm, lastEventSequence: 1, lastEventId: first.detail.eventId, lastEventType: 'ProjectNoteAdded' });
  const second = bridgeEvent('ProjectNoteAdded', id, 2, { note: 'two' });
  expect((await runCounting(second, applies)).readModels).toEqual(['APPLIED', 'APPLIED', 'APPLIED']);
  for (const rm of READ_MODELS) expect(await checkpointOf(rm, id)).toMatchObject({ lastEventSequence: 2, lastEventId: second.detail.eventId });
  expect(applies.sort()).toEqual(READ_MODELS.flatMap((rm) => [`Apply ProjectNoteAdded (${rm})`, `Apply ProjectNoteAdded (${rm})`]).sort());

  // Delivered again (the latest, then an older one): refused by the condition once per read model (no blind
  // retry: DynamoDB Local's ConditionalCheckFailedException reaches the ASL as DynamoDB.ConditionalCheckFailedException),
  // found applied, nothing written (appliedAt, set on every write, is unchanged).
  const before = await checkpoints(id);
  for (const again of [second, first]) {
    applies.length = 0;
    expect((await runCounting(again, applies)).readModels).toEqual(['DUPLICATE', 'DUPLICATE', 'DUPLICATE']);
    expect(applies).toHaveLength(3);
  }
  expect(await checkpoints(id)).toEqual(before);
  // Not parked either.
  const parked = await client.send(new ScanCommand({ TableName: table('ProjectionsParkedEvents'), FilterExpression: 'eventAggregateId = :id', ExpressionAttributeValues: { ':id': { S: id } } }));
  expect(parked.Items).toEqual([]);
  expect(errors).toEqual([]);
});

test('out of order: an unprojected event 3 refused before 2 waits on the gap path, then applies after 2, in order', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'n', configuration: {} }));
  const second = bridgeEvent('ProjectNoteAdded', id, 2, { note: 'two' });
  const third = bridgeEvent('ProjectNoteAdded', id, 3, { note: 'three' });
  const applies: string[] = [];
  let delivered: Promise<unknown> | undefined;
  // Event 3 runs first. When its first read model, refused by the condition, reaches the gap path (it reads the
  // backfill status there, just before it waits), event 2 is delivered and applied.
  const out = await runCounting(third, applies, {
    waitMs: 50,
    taskOverride: async (state) => {
      if (state.startsWith('ReadBackfill (') && !delivered) {
        delivered = runCounting(second, []);
        await delivered;
      }
      return undefined;
    },
  });
  expect(out.readModels).toEqual(['APPLIED', 'APPLIED', 'APPLIED']);
  expect(delivered).toBeDefined();
  for (const rm of READ_MODELS) {
    expect(await checkpointOf(rm, id)).toMatchObject({ lastEventSequence: 3, lastEventId: third.detail.eventId });
    // Refused once (event 2 missing), then applied after a wait: no blind retry, no parking.
    expect(applies.filter((a) => a === `Apply ProjectNoteAdded (${rm})`).length).toBeGreaterThanOrEqual(2);
  }
  expect(errors).toEqual([]);
});

test('a transaction conflict on the checkpoint (DynamoDB.TransactionConflictException from the UpdateItem) goes through the conflict retries, then applies', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectNoteAdded', id, 1, { note: 'one' }));
  // The SDK client refuses Metrics' checkpoint UpdateItem 4 times with DynamoDB's own TransactionConflictException
  // (what DynamoDB answers a standard write of an item an ongoing transaction holds; DynamoDB Local serializes
  // transactions and never does): the runner names it DynamoDB.TransactionConflictException, as Step Functions
  // names the optimized integration's errors, and WhyCancelled sends it to the conflict retries. (That it is not
  // retried blindly first is shown by the next test's count of attempts.)
  const refusing = localClient();
  let refused = 0;
  refusing.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { TableName?: string; Key?: { aggregateId?: { S?: string } } };
      if (context.commandName === 'UpdateItemCommand' && input.Key?.aggregateId?.S === `Metrics#${id}` && refused < 4) {
        refused++;
        throw new TransactionConflictException({ message: 'Transaction is ongoing for the item', $metadata: {} });
      }
      return next(args);
    },
    { step: 'initialize', name: 'refuse-checkpoint' },
  );
  const applies: string[] = [];
  try {
    const out = (await runLocal(definition, bridgeEvent('ProjectNoteAdded', id, 2, { note: 'two' }), {
      client: refusing,
      waitMs: 1,
      onPutEvents: (entries) => errors.push(...entries),
      taskOverride: (state) => {
        if (state.startsWith('Apply ')) applies.push(state);
        return undefined;
      },
    })) as { readModels: string[] };
    expect(out.readModels).toEqual(['APPLIED', 'APPLIED', 'APPLIED']);
  } finally {
    refusing.destroy();
  }
  expect(refused).toBe(4);
  expect(applies.filter((a) => a === 'Apply ProjectNoteAdded (Metrics)')).toHaveLength(5);
  expect(applies.filter((a) => a === 'Apply ProjectNoteAdded (Projects)')).toHaveLength(1);
  for (const rm of READ_MODELS) expect(await checkpointOf(rm, id)).toMatchObject({ lastEventSequence: 2 });
  expect(errors).toEqual([]);
});

test('conflicts on a checkpoint-only advance that outlast the conflict retries park it as ProjectionConflict, not WriteFailed', async () => {
  const id = `p-${randomUUID()}`;
  const applies: string[] = [];
  const event = bridgeEvent('ProjectNoteAdded', id, 1, { note: 'one' });
  const failed = failureOf(
    runCounting(event, applies, {
      waitMs: 1,
      taskOverride: (state) => {
        if (state !== 'Apply ProjectNoteAdded (Totals)') return undefined;
        throw conflict();
      },
    }),
  );
  expect(await failed).toBe('ProjectionEventParked');
  expect(applies.filter((a) => a === 'Apply ProjectNoteAdded (Totals)')).toHaveLength(11); // the first try and 10 conflict retries
  expect(errors).toHaveLength(1);
  expect(errors[0].Detail).toMatchObject({
    errorType: 'ProjectionConflict',
    context: { readModel: 'Totals' },
    metadata: { conflicts: 10, retryCount: 0, parked: true, original: event.detail, failure: { Error: 'DynamoDB.TransactionConflictException' } },
  });
  expect(await item('ProjectionsParkedEvents', { aggregateId: `Totals#${id}`, eventSequence: 1 })).toMatchObject({ status: 'PARKED', reason: 'TransactionConflict' });
  expect(await checkpointOf('Totals', id)).toMatchObject({ parkedSequence: 1 });
  expect((await checkpointOf('Totals', id))?.lastEventSequence).toBeUndefined();
  expect(await checkpointOf('Metrics', id)).toMatchObject({ lastEventSequence: 1 });
});

test('a parked event still blocks the unprojected events behind it: parked at once behind it, without waiting and without a second report', async () => {
  const id = `p-${randomUUID()}`;
  await run(bridgeEvent('ProjectCreated', id, 1, { name: 'n', configuration: {} }));
  // ProjectRenamed without its name: parked by Projects (InvalidEvent, reported); Metrics and Totals advance.
  expect(await failureOf(run(bridgeEvent('ProjectRenamed', id, 2, {})))).toBe('ProjectionEventParked');
  expect(errors).toHaveLength(1);
  expect(errors[0].Detail).toMatchObject({ context: { readModel: 'Projects' }, message: expect.stringMatching(/InvalidEvent/) });
  const applies: string[] = [];
  const out = await runCounting(bridgeEvent('ProjectNoteAdded', id, 3, { note: 'behind' }), applies);
  expect(out.readModels).toEqual(['PARKED_BEHIND', 'APPLIED', 'APPLIED']);
  // Refused once by the condition, then parked behind event 2: no gap waits.
  expect(applies.filter((a) => a === 'Apply ProjectNoteAdded (Projects)')).toHaveLength(1);
  expect(await item('ProjectionsParkedEvents', { aggregateId: `Projects#${id}`, eventSequence: 3 })).toMatchObject({ status: 'PARKED', reason: 'BehindParkedEvent', errorType: 'ProjectionBlocked' });
  expect(await checkpointOf('Projects', id)).toMatchObject({ lastEventSequence: 1, parkedSequence: 2 });
  for (const rm of ['Metrics', 'Totals']) expect(await checkpointOf(rm, id)).toMatchObject({ lastEventSequence: 3 });
  expect(errors).toHaveLength(1);
});
