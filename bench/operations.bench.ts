/**
 * `npx projen bench capacity`: DynamoDB capacity units per operation of the example platform's projects domain,
 * through the real handlers and the synthesized projection, against one DynamoDB Local (units as DynamoDB Local
 * reports them, plus what it leaves out: see bench/capacity.ts):
 *  - one command: a create (new stream), an update on a short stream and on a 1,037-event stream whose aggregate
 *    snapshots every 100 events, each with and without an Idempotency-Key header, each in a fresh handler (no
 *    stream known to its event store client: the worst case of a new Lambda container);
 *  - one query: GET /projects/{projectId} on the read model;
 *  - one projected event: the projects domain's synthesized state machine run on a ProjectUpdated event
 *    (aws-local-stepfunctions), with the states it entered.
 * It also times the warm command and query handlers (median, in this process against DynamoDB Local: an upper
 * bound of what they take on AWS, where DynamoDB answers in single-digit ms).
 *
 * The units are compared with those recorded last in bench/baseline.json: any growth is flagged and makes the
 * bench exit with status 1. `BENCH_RECORD=1 npx projen bench capacity` records the new figures (commit them).
 * The cost model (src/cost) is then run on the example assembly with these figures, and compared with the seed
 * design's choices priced the same way.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { CapacityMeter, fmtUnits, type Units } from './capacity';
import { fmt, median, printSection, timed, type Row } from './harness';
import { PreparedDefinition } from '../local/src/state-machines';
import { DEFAULT_MEASUREMENTS, type Measurements } from '../src/cost/measurements';
import { estimate, findPaths, formatReport } from '../src/cost/model';
import { US_EAST_1_ON_DEMAND } from '../src/cost/prices';
import { createCommandHandler } from '../src/domain/command.lambda';
import { createQueryHandler } from '../src/domain/query.lambda';
import { powertools } from '../src/internal/powertools';
import { ErrorReporter, EventStore } from '../src/runtime';
import { apiEvent } from '../test/support/api-events';
import { definitionFrom, resolveCfn } from '../test/support/asl';
import { startDynamoDbLocal } from '../test/support/dynamodb-local';
import { exampleDomain, synthExample } from '../test/support/example';
import { createEventStoreTable, createTableInputFromCfn } from '../test/support/tables';

const BASELINE = path.join(__dirname, 'baseline.json');
const TIMING_RUNS = Number(process.env.BENCH_TIMING_RUNS ?? 30);
const LONG_STREAM = 1_037;

const PROJECTS = '/api/v1/projects/projects';
const PROJECT = '/api/v1/projects/projects/{projectId}';
const body = { name: 'Apollo', description: 'Moon', templateId: 'tpl-1' };
const json = (r: APIGatewayProxyResult) => JSON.parse(r.body) as Record<string, any>;

interface Baseline {
  readonly recordedAt: string;
  readonly units: Record<string, { read: number; write: number }>;
  readonly measurements: Measurements;
}

const silentReporter = () =>
  new ErrorReporter({ component: 'bench', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined });

export async function runCapacityBench(): Promise<void> {
  const local = await startDynamoDbLocal();
  process.env.SKAFU_TEST_DYNAMODB_ENDPOINT = local.endpoint;
  const client = new DynamoDBClient({ endpoint: local.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const meter = new CapacityMeter().attach(client);
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  try {
    const { templates } = synthExample();
    const { spec, validators } = exampleDomain('projects');
    const eventTable = await createEventStoreTable(client);
    /** A handler as a fresh Lambda container has it: its event store client knows no stream yet. */
    const commands = () =>
      createCommandHandler({ spec, validators, store: new EventStore({ tableName: eventTable, domain: 'projects', client }), tools: powertools('bench'), reporter: silentReporter() });
    const warm = commands();
    const create = async (handler = warm, headers: Record<string, string> = {}) => {
      const res = await handler(apiEvent('POST', PROJECTS, { body, userId: 'owner-1', headers }));
      if (res.statusCode !== 201) throw new Error(`bench: create answered ${res.statusCode} ${res.body}`);
      return json(res).aggregateId as string;
    };
    const update = async (projectId: string, handler = warm, headers: Record<string, string> = {}) => {
      const res = await handler(apiEvent('PUT', PROJECT, { pathParameters: { projectId }, body: { name: `n-${randomUUID().slice(0, 8)}`, description: 'd' }, userId: 'owner-1', headers }));
      if (res.statusCode !== 202) throw new Error(`bench: update answered ${res.statusCode} ${res.body}`);
    };

    // ---- streams to command on (not metered) ------------------------------------------------------------------
    const short = await create();
    await update(short);
    await update(short);
    // The long stream: events 2-999 appended directly (99 a commit), then through the handler, which folds them
    // once and snapshots at 1,000 (the Project aggregate snapshots every 100 events), up to LONG_STREAM.
    const long = await create();
    const built = await timed(async () => {
      const store = new EventStore({ tableName: eventTable, domain: 'projects', client });
      for (let v = 1; v < 999; v += 99) {
        const count = Math.min(99, 999 - v);
        const events = Array.from({ length: count }, (_, i) => ({
          eventType: 'ProjectUpdated',
          data: { projectId: long, name: `bulk-${v + i}`, description: 'd', updatedBy: 'owner-1' },
        }));
        await store.append(long, events, { expectedVersion: v, aggregateType: 'Project', metadata: { userId: 'owner-1', command: 'UpdateProject' } });
      }
      for (let v = 1000; v <= LONG_STREAM; v++) await update(long);
    });
    console.log(`  (setup: a ${LONG_STREAM}-event stream in ${fmt(built.ms / 1000)} s)`);

    // ---- units per operation ----------------------------------------------------------------------------------
    const measured: Record<string, Units> = {};
    const measure = async (name: string, fn: () => Promise<unknown>) => {
      measured[name] = (await meter.measure(fn)).units;
    };
    await measure('command: create (new stream)', () => create(commands()));
    await measure('command: create, Idempotency-Key', () => create(commands(), { 'Idempotency-Key': randomUUID() }));
    await measure('command: update, 3-event stream', () => update(short, commands()));
    await measure('command: update, 3-event stream, Idempotency-Key', () => update(short, commands(), { 'Idempotency-Key': randomUUID() }));
    await measure(`command: update, ${LONG_STREAM}-event stream (snapshot every 100)`, () => update(long, commands()));
    await measure(`command: update, ${LONG_STREAM}-event stream, Idempotency-Key`, () => update(long, commands(), { 'Idempotency-Key': randomUUID() }));

    // One projected event: the projects domain's state machine, its tables created from the templates (the read
    // model the query reads is the one it writes).
    const projection = await projectionRunner(templates, client);
    await projection.run('ProjectCreated', short, 1, { name: 'Apollo', description: 'Moon', templateId: 'tpl-1', ownerId: 'owner-1' });
    await projection.run('ProjectUpdated', short, 2, { name: 'Apollo 2', description: 'Moon' });
    let states = 0;
    await measure('projected event: ProjectUpdated', async () => {
      states = await projection.run('ProjectUpdated', short, 3, { name: 'Apollo 3', description: 'Moon' });
    });
    const queries = createQueryHandler({ spec, doc, tables: { projects: projection.readModelTable }, tools: powertools('bench'), reporter: silentReporter() });
    const get = async () => {
      const res = await queries(apiEvent('GET', PROJECT, { pathParameters: { projectId: short }, userId: 'owner-1' }));
      if (res.statusCode !== 200) throw new Error(`bench: query answered ${res.statusCode} ${res.body}`);
    };
    await measure('query: GET /projects/{projectId}', get);

    // ---- warm durations -----------------------------------------------------------------------------------------
    for (let i = 0; i < 5; i++) await update(short);
    const commandMs: number[] = [];
    const queryMs: number[] = [];
    for (let i = 0; i < TIMING_RUNS; i++) {
      commandMs.push((await timed(() => update(short))).ms);
      queryMs.push((await timed(get)).ms);
    }

    // ---- print, compare with the baseline -----------------------------------------------------------------------
    const baseline: Baseline | undefined = fs.existsSync(BASELINE) ? JSON.parse(fs.readFileSync(BASELINE, 'utf8')) : undefined;
    const grown: string[] = [];
    const rows: Row[] = Object.entries(measured).map(([name, u]) => {
      const before = baseline?.units[name];
      let note = before ? `(recorded ${before.read} RRU + ${before.write} WRU on ${baseline!.recordedAt.slice(0, 10)})` : '(no recorded figure)';
      if (before && (u.read > before.read + 1e-9 || u.write > before.write + 1e-9)) {
        grown.push(name);
        note = `GREW from ${before.read} RRU + ${before.write} WRU recorded on ${baseline!.recordedAt.slice(0, 10)}`;
      }
      return { name, value: `${fmtUnits(u)}  ${note}` };
    });
    rows.push({ name: 'states entered by the projection execution', value: String(states) });
    rows.push({ name: 'warm command handler (update)', value: `${fmt(median(commandMs), 1)} ms median of ${TIMING_RUNS}, DynamoDB Local` });
    rows.push({ name: 'warm query handler (get)', value: `${fmt(median(queryMs), 1)} ms median of ${TIMING_RUNS}, DynamoDB Local` });
    printSection('Capacity units per operation (projects domain, real handlers and state machine, DynamoDB Local)', rows);

    const pick = (name: string) => ({ read: measured[name].read, write: measured[name].write });
    const measurements: Measurements = {
      ...DEFAULT_MEASUREMENTS,
      measuredOn: new Date().toISOString().slice(0, 10),
      units: {
        command: pick('command: update, 3-event stream'),
        commandWithIdempotencyKey: pick('command: update, 3-event stream, Idempotency-Key'),
        query: pick('query: GET /projects/{projectId}'),
        projectedEvent: pick('projected event: ProjectUpdated'),
      },
      durationsMs: { ...DEFAULT_MEASUREMENTS.durationsMs, command: Math.ceil(median(commandMs)), query: Math.ceil(median(queryMs)) },
      projection: { ...DEFAULT_MEASUREMENTS.projection, statesPerExecution: states },
    };

    const paths = findPaths(synthExample().templates);
    const costs = estimate(paths, US_EAST_1_ON_DEMAND, measurements);
    console.log('\n## Cost model of the example platform with these figures (src/cost, `skafu-cost`)');
    console.log(formatReport(paths, costs, US_EAST_1_ON_DEMAND, measurements).split('\n').map((l) => `  ${l}`).join('\n'));

    if (process.env.BENCH_RECORD === '1') {
      const record: Baseline = {
        recordedAt: new Date().toISOString(),
        units: Object.fromEntries(Object.entries(measured).map(([n, u]) => [n, { read: u.read, write: u.write }])),
        measurements,
      };
      fs.writeFileSync(BASELINE, `${JSON.stringify(record, null, 2)}\n`);
      console.log(`\n  recorded in ${path.relative(process.cwd(), BASELINE)}`);
    } else if (grown.length > 0) {
      console.log(`\n  CAPACITY GREW for: ${grown.join('; ')}. If intended, record with BENCH_RECORD=1 and commit bench/baseline.json.`);
      process.exitCode = 1;
    }
  } finally {
    client.destroy();
    await local.stop();
  }
}

/**
 * Runs the example projects domain's projection state machine, exactly as synthesized (its nested stack's
 * parameters resolved to tables created from the parent template), and counts the states each execution enters.
 */
async function projectionRunner(templates: Record<string, any>, client: DynamoDBClient) {
  const [, nested] = Object.entries(templates).find(([file, t]) =>
    /Projects/i.test(file) && Object.values((t.Resources ?? {}) as Record<string, any>).some((r) => r.Type === 'AWS::StepFunctions::StateMachine'))!;
  // The nested stack's resource in its parent: the one that passes every parameter the nested template declares.
  const params = Object.keys(nested.Parameters ?? {});
  const isItsStack = (r: any) => r.Type === 'AWS::CloudFormation::Stack' && params.every((k) => k in (r.Properties?.Parameters ?? {}));
  const parent = Object.values(templates).find((t) => Object.values((t.Resources ?? {}) as Record<string, any>).some(isItsStack))!;
  const parentRefs: Record<string, string> = {};
  for (const [id, r] of Object.entries(parent.Resources as Record<string, any>)) {
    if (r.Type === 'AWS::DynamoDB::Table') {
      parentRefs[id] = `${id.slice(0, 40)}-${randomUUID().slice(0, 8)}`;
      await client.send(new CreateTableCommand(createTableInputFromCfn(r.Properties, parentRefs[id])));
    } else {
      parentRefs[id] = id;
    }
  }
  const stackResource = Object.values(parent.Resources as Record<string, any>).find(isItsStack);
  const nestedRefs: Record<string, string> = {};
  for (const [param, value] of Object.entries((stackResource.Properties.Parameters ?? {}) as Record<string, unknown>)) {
    try {
      nestedRefs[param] = String(resolveCfn(value, parentRefs));
    } catch {
      nestedRefs[param] = param; // an attribute the projection does not use (a queue name, say)
    }
  }
  for (const id of Object.keys(nested.Resources)) nestedRefs[id] ??= id;
  const machine = Object.values(nested.Resources as Record<string, any>).find((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  const definition = definitionFrom(machine, nestedRefs);
  const readModelParam = Object.keys(nestedRefs).find((k) => /ReadModelProjectsTable.*Ref$/.test(k));
  const prepared = new PreparedDefinition(definition, {
    client,
    putEvents: ({ Entries }) => ({ FailedEntryCount: 0, Entries: Entries.map(() => ({ EventId: 'bench' })) }),
    stateMachine: { id: 'arn:aws:states:us-east-1:111111111111:stateMachine:bench', name: 'bench', type: 'EXPRESS' },
    waitMs: 10,
    retryMs: 0,
  });
  // PreparedDefinition.run returns only the result; the states entered come from the execution's event log.
  const internals = prepared as unknown as { machine: any; handlers: unknown; waits: unknown; retries: unknown };
  const run = async (eventType: string, aggregateId: string, eventSequence: number, data: Record<string, unknown>): Promise<number> => {
    const timestamp = new Date().toISOString();
    const input = {
      'version': '0',
      'id': randomUUID(),
      'detail-type': eventType,
      'source': 'skafu.projects',
      'account': '111111111111',
      'time': timestamp,
      'region': 'us-east-1',
      'resources': [],
      'detail': {
        eventId: randomUUID(),
        eventType,
        eventVersion: 1,
        aggregateId,
        aggregateType: 'Project',
        eventSequence,
        timestamp,
        timestampEpochSeconds: Math.floor(Date.parse(timestamp) / 1000),
        correlationId: randomUUID(),
        causationId: randomUUID(),
        source: 'skafu.projects',
        data,
        metadata: { userId: 'owner-1' },
      },
    };
    const name = randomUUID();
    const execution = internals.machine.run(input, {
      overrides: { taskResourceLocalHandlers: internals.handlers, waitTimeOverrides: internals.waits, retryIntervalOverrides: internals.retries },
      context: {
        StateMachine: { Id: 'arn:aws:states:us-east-1:111111111111:stateMachine:bench', Name: 'bench' },
        Execution: { Id: `arn:aws:states:us-east-1:111111111111:express:bench:${name}`, Name: name, StartTime: timestamp },
        State: { EnteredTime: timestamp, Name: 'local', RetryCount: 0 },
      },
    });
    let entered = 0;
    const counting = (async () => {
      for await (const event of execution.eventLogs as AsyncIterable<{ type: string }>) if (event.type === 'StateEntered') entered++;
    })();
    const output = await execution.result;
    await counting;
    if (output && typeof output === 'object' && 'Error' in output) throw new Error(`bench: projection failed: ${JSON.stringify(output)}`);
    return entered;
  };
  if (!readModelParam) throw new Error('bench: the projects state machine names no ReadModelProjectsTable');
  return { run, readModelTable: nestedRefs[readModelParam] };
}
