/**
 * The operator's commands on a projection's parked events. Invoke it with one request:
 *
 *   aws lambda invoke --function-name <parkedEventsFunction> --cli-binary-format raw-in-base64-out \
 *     --payload '{"action":"list"}' out.json
 *   ... --payload '{"action":"retry","requestedBy":"alice"}'                      (every aggregate, after a fix)
 *   ... --payload '{"action":"retry","aggregateId":"project-42","requestedBy":"alice"}'
 *   ... --payload '{"action":"skip","aggregateId":"project-42","readModel":"projects","eventSequence":7,"reason":"bad import","requestedBy":"alice"}'
 *   ... --payload '{"action":"migrate-checkpoints","requestedBy":"alice"}'   (once, after upgrading to per-read-model checkpoints)
 *   ... --payload '{"action":"drift"}'    (aggregates whose checkpoint differs from the store; also on a schedule)
 *
 * Retry replays each parked event through the projection state machine (StartSyncExecution), in aggregate
 * order; skip advances the aggregate's checkpoint past one parked event (recorded on the parked item as
 * SKIPPED, with who and why) and then retries the aggregate's later parked events.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { driftReport } from './drift.runtime';
import { handleParkedEvents, parseParkedEventsRequest, type ParkedEventsDeps, type ReplayOutcome } from './parked-events.runtime';
import { powertools, traced } from '../internal/powertools';

/** The Step Functions client comes from the Lambda runtime's AWS SDK (not a dependency of this package). */
interface SfnModule {
  SFNClient: new (config: object) => { send(command: unknown): Promise<{ status?: string; error?: string; cause?: string }> };
  StartSyncExecutionCommand: new (input: { stateMachineArn: string; input: string }) => unknown;
}

let deps: ParkedEventsDeps | undefined;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export const handler = async (input: unknown): Promise<Record<string, unknown>> => {
  const tools = powertools('skafu-parked-events');
  if (!deps) {
    const moduleName = '@aws-sdk/client-sfn';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sfn = require(moduleName) as SfnModule;
    const client = traced(tools, new sfn.SFNClient({}));
    const stateMachineArn = env('SKAFU_PROJECTION_STATE_MACHINE_ARN');
    const dynamodb = traced(tools, new DynamoDBClient({}));
    const eventStoreTable = process.env.SKAFU_EVENT_STORE_TABLE;
    const aggregateTypes = (process.env.SKAFU_AGGREGATE_TYPES ?? '').split(',').filter(Boolean);
    const readModels = env('SKAFU_READ_MODELS').split(',').filter(Boolean);
    deps = {
      client: dynamodb,
      drift:
        eventStoreTable && aggregateTypes.length > 0
          ? (limit) => driftReport({ client: dynamodb, eventStoreTable, domain: env('SKAFU_DOMAIN'), aggregateTypes, checkpointTable: env('SKAFU_CHECKPOINT_TABLE'), readModels, limit })
          : undefined,
      parkingTable: env('SKAFU_PARKING_TABLE'),
      checkpointTable: env('SKAFU_CHECKPOINT_TABLE'),
      readModels,
      domain: env('SKAFU_DOMAIN'),
      replay: async (replayInput): Promise<ReplayOutcome> => {
        const out = await client.send(new sfn.StartSyncExecutionCommand({ stateMachineArn, input: JSON.stringify(replayInput) }));
        return { succeeded: out.status === 'SUCCEEDED', error: out.status === 'SUCCEEDED' ? undefined : `${out.error ?? out.status}: ${out.cause ?? ''}` };
      },
    };
  }
  const request = parseParkedEventsRequest(input);
  const result = await handleParkedEvents(deps, request);
  if (request.action === 'drift') {
    // The lag metrics (per domain's projections): events and seconds the checkpoints trail the store.
    tools.metrics.addDimension('Domain', env('SKAFU_DOMAIN'));
    tools.metrics.addMetric('ProjectionLagEvents', MetricUnit.Count, Number(result.maxLagEvents));
    tools.metrics.addMetric('ProjectionLagSeconds', MetricUnit.Seconds, Number(result.maxLagSeconds));
    tools.metrics.addMetric('ProjectionDriftingAggregates', MetricUnit.Count, Number(result.drifting));
    tools.metrics.publishStoredMetrics();
    // And per read model (dimensions Domain and ReadModel): a new read model's backfill shows as its own lag.
    const perReadModel = (result as { readModels?: Record<string, { maxLagEvents: number; maxLagSeconds: number }> }).readModels ?? {};
    for (const [readModel, lag] of Object.entries(perReadModel)) {
      const single = tools.metrics.singleMetric();
      single.addDimension('Domain', env('SKAFU_DOMAIN'));
      single.addDimension('ReadModel', readModel);
      single.addMetric('ProjectionLagEvents', MetricUnit.Count, lag.maxLagEvents);
      const seconds = tools.metrics.singleMetric();
      seconds.addDimension('Domain', env('SKAFU_DOMAIN'));
      seconds.addDimension('ReadModel', readModel);
      seconds.addMetric('ProjectionLagSeconds', MetricUnit.Seconds, lag.maxLagSeconds);
    }
  }
  tools.logger.info('parked events', { request, result });
  return result;
};
