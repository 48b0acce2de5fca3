/**
 * One bounded step of a read model's backfill (rebuild.runtime.ts, in place): the backfill state machine
 * invokes it until the progress it returns is no longer RUNNING. Input: `{"readModel":"totals","rebuildId":"..."}`;
 * the same rebuildId resumes where the last step saved its progress. The projection definition is read from
 * the deployed projection state machine (DescribeStateMachine), so that the backfill applies exactly what the
 * live projection applies.
 *
 * Metrics (namespace Skafu, dimensions Domain and ReadModel), the backfill's running totals after each step
 * (read them with the Maximum statistic): BackfillEventsApplied, BackfillAggregatesVisited, BackfillFailures.
 *
 * A read model version from 2 on (`Totals@v2`): the step that ends CAUGHT_UP (no failures) switches queries to
 * it, writing the active-version pointer (versions.runtime.ts); its output says `switched`. A resumed run that
 * finds the backfill caught up writes the pointer again if it is missing (a step that died between the two) and
 * never moves it back. CAUGHT_UP_WITH_FAILURES switches nothing: queries keep reading the previous version.
 *
 * The same function is two custom resources:
 * - `Custom::SkafuReadModelBackfill` starts a read model version's backfill after deployment (one per read model
 *   version, created with it): a CloudFormation Create starts the backfill state machine for that read model, with
 *   a rebuildId of its own (deployRebuildId), and answers at once; Update and Delete do nothing.
 * - `Custom::SkafuReadModelVersionGuard` (one per read model from version 2 on) answers FAILED to a deployment that
 *   would remove the previous version's table before queries switched away from it and the retention passed, or
 *   make queries read an incomplete version (versions.runtime.ts guardDecision).
 */
import * as https from 'node:https';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { runRebuildStep, type RebuildProgress } from './rebuild.runtime';
import { guardDecision, isRollingBack, hasReadModelItems, parseVersionedReadModel, readActivePointer, switchActiveVersion } from './versions.runtime';
import { powertools, traced } from '../internal/powertools';

interface SfnModule {
  SFNClient: new (config: object) => { send(command: unknown): Promise<{ definition?: string; executionArn?: string }> };
  DescribeStateMachineCommand: new (input: { stateMachineArn: string }) => unknown;
  StartExecutionCommand: new (input: { stateMachineArn: string; input: string }) => unknown;
}

function sfnModule(): SfnModule {
  const moduleName = '@aws-sdk/client-sfn';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(moduleName) as SfnModule;
}

interface CfnRequest {
  RequestType: 'Create' | 'Update' | 'Delete';
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  ResourceType?: string;
  LogicalResourceId: string;
  PhysicalResourceId?: string;
  ResourceProperties: {
    StateMachineArn?: string;
    ReadModel?: string;
    RebuildId?: string;
    // The version guard's (CloudFormation sends every scalar as a string).
    ReadModelName?: string;
    Version?: string;
    RetainPreviousVersion?: string;
    RetentionSeconds?: string;
    CheckpointTable?: string;
  };
  OldResourceProperties?: { Version?: string; RetainPreviousVersion?: string; RetentionSeconds?: string };
}

/** Answers CloudFormation on the pre-signed URL (the custom resource response object, CloudFormation User Guide). */
function respond(request: CfnRequest, status: 'SUCCESS' | 'FAILED', reason: string, data: Record<string, string> = {}): Promise<void> {
  const body = JSON.stringify({
    Status: status,
    Reason: reason.slice(0, 1000),
    PhysicalResourceId:
      request.PhysicalResourceId ??
      (request.ResourceType === VERSION_GUARD
        ? `version-guard-${request.ResourceProperties.ReadModelName ?? 'unknown'}`
        : `backfill-${request.ResourceProperties.ReadModel ?? 'unknown'}-${request.RequestId}`),
    StackId: request.StackId,
    RequestId: request.RequestId,
    LogicalResourceId: request.LogicalResourceId,
    Data: data,
  });
  return new Promise((resolve, reject) => {
    const req = https.request(request.ResponseURL, { method: 'PUT', headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(body);
  });
}

const VERSION_GUARD = 'Custom::SkafuReadModelVersionGuard';

/**
 * The version guard: answers FAILED when this deployment would remove the previous version's table too early
 * (guardDecision). Why this keeps CloudFormation from deleting the table: a resource removed from the template is
 * deleted in the UPDATE_COMPLETE_CLEANUP_IN_PROGRESS phase, which runs only after every resource of the update
 * was created or updated successfully; a custom resource that answers FAILED fails the update, CloudFormation
 * rolls the stack back to the previous template, and the cleanup (the deletion) never happens. The guard's
 * properties change whenever the version or retainPreviousVersion does, so it is asked on every such deployment.
 * A Delete is never refused, nor an Update to a lower version while the stack is rolling back (DescribeStacks on
 * the request's StackId; a failed rollback leaves the stack stuck), nor one whose stack status cannot be read; an
 * Update to a lower version on a stack that is not rolling back (lowered by hand) is refused. Reads the pointer item
 * (GetItem) and, on a Create at version 3 or more with no pointer, scans the checkpoint table's keys for an item of
 * this read model (hasReadModelItems) to tell a new environment from a jump.
 */
async function onVersionGuard(request: CfnRequest): Promise<void> {
  try {
    const p = request.ResourceProperties;
    const version = Number(p.Version);
    const retentionSeconds = Number(p.RetentionSeconds);
    if (request.RequestType === 'Delete') return await respond(request, 'SUCCESS', 'Delete: nothing to do');
    if (!p.ReadModelName || !p.CheckpointTable || !Number.isSafeInteger(version) || version < 2 || !Number.isFinite(retentionSeconds)) {
      throw new Error('ReadModelName, CheckpointTable, Version (2 or more) and RetentionSeconds are required');
    }
    dynamodb ??= new DynamoDBClient({});
    const pointer = await readActivePointer(dynamodb, p.CheckpointTable, p.ReadModelName);
    const oldProps = request.RequestType === 'Update' ? request.OldResourceProperties : undefined;
    const old = Number(oldProps?.Version);
    const previousPropertiesVersion = Number.isSafeInteger(old) ? old : undefined;
    const oldRetention = Number(oldProps?.RetentionSeconds);
    // A Create with no pointer at version 3 or more: a new environment, or a jump on an existing one (guardDecision);
    // the checkpoint table says which (hasReadModelItems: its cost is there). Bounded well inside the function's
    // 15 minutes, so CloudFormation always gets an answer.
    const readModelHasItems =
      request.RequestType === 'Create' && !pointer && version >= 3 ? await hasReadModelItems(dynamodb, p.CheckpointTable, p.ReadModelName, { deadline: Date.now() + 10 * 60_000 }) : undefined;
    // An Update to a lower version: a rollback only if the stack is rolling back.
    const stack = previousPropertiesVersion !== undefined && version < previousPropertiesVersion ? await stackStatus(request.StackId) : {};
    const decision = guardDecision(
      {
        requestType: request.RequestType,
        readModelName: p.ReadModelName,
        version,
        retainPreviousVersion: p.RetainPreviousVersion !== 'false',
        retentionSeconds,
        previousPropertiesVersion,
        previousPropertiesRetainedPreviousVersion: oldProps ? oldProps.RetainPreviousVersion !== 'false' : undefined,
        previousPropertiesRetentionSeconds: Number.isFinite(oldRetention) && oldProps?.RetentionSeconds !== undefined ? oldRetention : undefined,
        readModelHasItems,
        ...stack,
      },
      pointer,
      new Date(),
    );
    await respond(request, decision.status, decision.reason, { ActiveVersion: String(pointer?.version ?? 1) });
  } catch (err) {
    // Unreadable pointer or bad properties: refuse rather than let a table be removed unchecked.
    await respond(request, 'FAILED', `the read model version guard could not decide: ${(err as Error).message}`);
  }
}

interface CloudFormationModule {
  CloudFormationClient: new (config: object) => { send(command: unknown): Promise<{ Stacks?: Array<{ StackStatus?: string; RootId?: string }> }> };
  DescribeStacksCommand: new (input: { StackName: string }) => unknown;
}

/**
 * The status of the guard's own stack, to tell a rollback from a version lowered by hand. In a nested stack whose
 * own status does not say it rolls back, the root stack's status is read too (DescribeStacks gives a nested stack's
 * RootId; CloudFormation rolls nested stacks back with their root, and which status a nested stack shows meanwhile
 * is not verified here): a root rolling back counts. `@aws-sdk/client-cloudformation` is provided by the Lambda
 * Node 22 runtime (not bundled, as the SFN client). Any failure (module, permission, throttling) is returned as
 * `stackStatusError`: the guard then lets the Update through (a rollback is never failed).
 */
async function stackStatus(stackId: string): Promise<{ stackStatus?: string; stackStatusError?: string }> {
  try {
    const moduleName = '@aws-sdk/client-cloudformation';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cfn = require(moduleName) as CloudFormationModule;
    const client = new cfn.CloudFormationClient({});
    const out = await client.send(new cfn.DescribeStacksCommand({ StackName: stackId }));
    const own = out.Stacks?.[0];
    const status = own?.StackStatus;
    if (!status) return { stackStatusError: `DescribeStacks returned no status for ${stackId}` };
    if (isRollingBack(status) || !own?.RootId || own.RootId === stackId) return { stackStatus: status };
    const root = (await client.send(new cfn.DescribeStacksCommand({ StackName: own.RootId }))).Stacks?.[0]?.StackStatus;
    if (!root) return { stackStatusError: `DescribeStacks returned no status for the root stack ${own.RootId}` };
    return { stackStatus: isRollingBack(root) ? root : status };
  } catch (err) {
    return { stackStatusError: `DescribeStacks failed: ${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** After deployment, a new read model's backfill starts; CloudFormation does not wait for it. */
async function onDeploy(request: CfnRequest): Promise<void> {
  try {
    if (request.RequestType !== 'Create') return await respond(request, 'SUCCESS', `${request.RequestType}: nothing to do`);
    const { StateMachineArn: arn, ReadModel: readModel, RebuildId: base } = request.ResourceProperties;
    if (!arn || !readModel || !base) throw new Error('StateMachineArn, ReadModel and RebuildId are required');
    // Unique to this Create: a table created again under the same name (a user-given tableName, after a rollback
    // or a replacement) is new and empty, and `deploy-<tableName>` alone would name a backfill that has finished.
    const rebuildId = deployRebuildId(base, request.RequestId);
    const sfn = sfnModule();
    const start = new sfn.StartExecutionCommand({ stateMachineArn: arn, input: JSON.stringify({ readModel, rebuildId }) });
    const out = await new sfn.SFNClient({}).send(start);
    await respond(request, 'SUCCESS', `backfill of ${readModel} started`, { ExecutionArn: out.executionArn ?? '' });
  } catch (err) {
    // Never leave CloudFormation waiting: a backfill that did not start is reported (and can be started by hand).
    await respond(request, 'FAILED', `the backfill could not be started: ${(err as Error).message}`);
  }
}

/**
 * The rebuildId a Create of the backfill custom resource starts: the resource's RebuildId (`deploy-<tableName>`)
 * and the request's id (a UUID, unique per request), within the 255 characters a rebuildId may hold.
 */
export function deployRebuildId(base: string, requestId: string): string {
  const suffix = requestId.replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, 64);
  return `${base.slice(0, 255 - suffix.length - 1)}:${suffix}`;
}

let dynamodb: DynamoDBClient | undefined;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const ID = /^[A-Za-z0-9_.:-]{1,255}$/;

/** What a backfill step returns (the state machine loops on `status`). */
export type BackfillStepOutput = Omit<RebuildProgress, 'failures'> & {
  failures: number;
  firstFailures: RebuildProgress['failures'];
  /** Version 2 on, once CAUGHT_UP: whether queries read this version now (the pointer names it). */
  switched?: boolean;
  /** Version 2 on, once CAUGHT_UP: the version queries read. */
  activeVersion?: number;
};

export const handler = async (input: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<BackfillStepOutput> => {
  const tools = powertools('skafu-backfill');
  const request = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  if (typeof request.RequestType === 'string' && typeof request.ResponseURL === 'string') {
    const cfn = request as unknown as CfnRequest;
    await (cfn.ResourceType === VERSION_GUARD ? onVersionGuard(cfn) : onDeploy(cfn));
    return undefined as never;
  }
  const own = (k: string) => (Object.prototype.hasOwnProperty.call(request, k) ? request[k] : undefined);
  const tables = JSON.parse(env('SKAFU_READ_MODEL_TABLES')) as Record<string, string>;
  const readModel = own('readModel');
  if (typeof readModel !== 'string' || !Object.prototype.hasOwnProperty.call(tables, readModel)) {
    throw new Error(`"readModel" must be one of ${Object.keys(tables).join(', ')}`);
  }
  const rebuildId = own('rebuildId');
  if (typeof rebuildId !== 'string' || !ID.test(rebuildId)) throw new Error('"rebuildId" must be 1-255 letters, digits, _ . : -');
  dynamodb ??= traced(tools, new DynamoDBClient({}));
  // Skafu Local gives the definition (it emulates no DescribeStateMachine); on AWS it is read from the machine, at
  // every step: a deployment that fixes the projection changes the state machine, not this function, so a warm
  // container must not resume a backfill with the definition it read before the fix (one read per step of minutes).
  let definition: { States: Record<string, any> };
  if (process.env.SKAFU_PROJECTION_DEFINITION_OVERRIDE) {
    definition = JSON.parse(process.env.SKAFU_PROJECTION_DEFINITION_OVERRIDE);
  } else {
    const sfn = sfnModule();
    const out = await traced(tools, new sfn.SFNClient({})).send(new sfn.DescribeStateMachineCommand({ stateMachineArn: env('SKAFU_PROJECTION_STATE_MACHINE_ARN') }));
    definition = JSON.parse(out.definition ?? '{}');
  }
  const checkpointTable = env('SKAFU_CHECKPOINT_TABLE');
  // Leave a minute for the last page of aggregates and the progress write.
  const budget = (context?.getRemainingTimeInMillis?.() ?? 900_000) - 60_000;
  const progress = await runRebuildStep(
    {
      client: dynamodb,
      eventStoreTable: env('SKAFU_EVENT_STORE_TABLE'),
      domain: env('SKAFU_DOMAIN'),
      aggregateTypes: env('SKAFU_AGGREGATE_TYPES').split(',').filter(Boolean),
      definition,
      readModelTable: tables[readModel],
      targetTable: tables[readModel],
      stateTable: env('SKAFU_REBUILD_STATE_TABLE'),
      rebuildId: `${readModel}:${rebuildId}`,
      backfill: { checkpointTable, readModel },
    },
    Date.now() + Math.max(10_000, budget),
  );
  tools.metrics.addDimension('Domain', env('SKAFU_DOMAIN'));
  tools.metrics.addDimension('ReadModel', readModel);
  tools.metrics.addMetric('BackfillEventsApplied', MetricUnit.Count, progress.eventsApplied);
  tools.metrics.addMetric('BackfillAggregatesVisited', MetricUnit.Count, progress.aggregatesVisited);
  tools.metrics.addMetric('BackfillFailures', MetricUnit.Count, progress.failures.length);
  tools.metrics.publishStoredMetrics();
  tools.logger.info('backfill step', { readModel, rebuildId, status: progress.status, pass: progress.pass, eventsApplied: progress.eventsApplied });
  // A new version that has caught up with no failure: queries switch to it (idempotent, never backwards).
  const { readModelName, version } = parseVersionedReadModel(readModel);
  let switchOutcome: { switched: boolean; activeVersion: number } | undefined;
  if (version >= 2 && progress.status === 'CAUGHT_UP') {
    const outcome = await switchActiveVersion(dynamodb, { checkpointTable, readModelName, version, tableName: tables[readModel], rebuildId: `${readModel}:${rebuildId}` });
    switchOutcome = { switched: outcome.switched, activeVersion: outcome.activeVersion };
    tools.logger.info('active version', { readModel, ...outcome });
  } else if (version >= 2 && progress.status === 'CAUGHT_UP_WITH_FAILURES') {
    // No switch: say which version queries read (the previous one, unless an earlier run switched already).
    const active = (await readActivePointer(dynamodb, checkpointTable, readModelName))?.version ?? 1;
    switchOutcome = { switched: active >= version, activeVersion: active };
  }
  const { failures, ...rest } = progress;
  // The step's output stays small (Step Functions passes at most 256 KB): the first failures only.
  return { ...rest, failures: failures.length, firstFailures: failures.slice(0, 10), ...(switchOutcome ?? {}) };
};
