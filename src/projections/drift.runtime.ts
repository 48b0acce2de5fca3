/**
 * Projection lag and drift (handler-side): for every aggregate of the projected types, the store's last
 * sequence against the projection's checkpoint. Aggregates are enumerated from the sparse `aggregates` index and
 * their streams read with the partition key value the index returns, as stored; checkpoints are kept per read
 * model and keyed `<readModel>#<public aggregate id>` (the id the events carry). Costs one to two reads per
 * aggregate plus one per read model: schedule it accordingly.
 */
import { GetItemCommand, QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { aggregateStreamKeys } from './aggregate-index.runtime';
import { streamKey, VERSIONED_READ_MODEL } from './keys';
import { envelopeFromItem } from '../runtime/envelope';
import { EventStoreSchema as S } from '../runtime/event-store-schema';

export interface DriftConfig {
  readonly client: DynamoDBClient;
  readonly eventStoreTable: string;
  /** The domain whose aggregates are listed (the aggregates index is keyed `<domain>#<aggregateType>`). */
  readonly domain: string;
  readonly aggregateTypes: string[];
  readonly checkpointTable: string;
  /** The read models whose checkpoints are compared with the store. */
  readonly readModels: string[];
  /** How many drifting aggregates the report lists. @default 100 */
  readonly limit?: number;
  /** @default () => new Date() */
  readonly clock?: () => Date;
}

export interface DriftingAggregate {
  readonly readModel: string;
  readonly aggregateId: string;
  readonly aggregateType: string;
  readonly storeLastSequence: number;
  readonly checkpointSequence: number;
  /** Events the checkpoint trails the store by. */
  readonly lagEvents: number;
  /** Age of the oldest event not applied, in seconds. */
  readonly lagSeconds: number;
  /** The aggregate's earliest parked event, if any. */
  readonly parkedSequence?: number;
}

export interface DriftReport {
  readonly aggregates: number;
  readonly drifting: number;
  readonly totalLagEvents: number;
  readonly maxLagEvents: number;
  readonly maxLagSeconds: number;
  /** Per read model: its drifting aggregates and its largest lag (the per-read-model metrics). */
  readonly readModels: Record<string, { drifting: number; maxLagEvents: number; maxLagSeconds: number }>;
  /** The most lagging aggregates first, at most `limit`. */
  readonly list: DriftingAggregate[];
  readonly generatedAt: string;
}

async function lastEvent(config: DriftConfig, storedKey: AttributeValue, after?: number): Promise<Record<string, any> | undefined> {
  const out = await config.client.send(
    new QueryCommand({
      TableName: config.eventStoreTable,
      KeyConditionExpression: after === undefined ? '#pk = :pk' : '#pk = :pk AND #sk = :seq',
      ExpressionAttributeNames: { '#pk': S.PARTITION_KEY, ...(after === undefined ? {} : { '#sk': S.SORT_KEY }) },
      ExpressionAttributeValues: { ':pk': storedKey, ...(after === undefined ? {} : { ':seq': { N: String(after) } }) },
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
    }),
  );
  return out.Items?.[0] ? unmarshall(out.Items[0]) : undefined;
}

/** Lists the aggregates whose checkpoint differs from the store's last sequence. */
export async function driftReport(config: DriftConfig): Promise<DriftReport> {
  // Read model version identities only (`name`, `name@v<N>`): the checkpoint keys are built from them.
  const invalid = config.readModels.filter((rm) => typeof rm !== 'string' || !VERSIONED_READ_MODEL.test(rm));
  if (invalid.length > 0) throw new Error(`drift: ${JSON.stringify(invalid)} ${invalid.length === 1 ? 'is not a read model identity' : 'are not read model identities'} (name, or name@v<N>)`);
  const now = (config.clock ?? (() => new Date()))();
  const list: DriftingAggregate[] = [];
  let aggregates = 0;
  let drifting = 0;
  let totalLagEvents = 0;
  let maxLagEvents = 0;
  let maxLagSeconds = 0;
  const counted = new Set<string>();
  const perReadModel: DriftReport['readModels'] = Object.fromEntries(config.readModels.map((rm) => [rm, { drifting: 0, maxLagEvents: 0, maxLagSeconds: 0 }]));
  for (const aggregateType of config.aggregateTypes) {
    const index = { client: config.client, eventStoreTable: config.eventStoreTable, domain: config.domain, aggregateType };
    for await (const storedKey of aggregateStreamKeys(index)) {
      aggregates++;
      const last = await lastEvent(config, storedKey);
      if (!last || last[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT) continue;
      // The public id the events carry (what the live checkpoints are keyed by), whatever the stored key.
      const aggregateId = envelopeFromItem(last).aggregateId;
      for (const readModel of config.readModels) {
        const cp = await config.client.send(
          new GetItemCommand({
            TableName: config.checkpointTable,
            Key: { aggregateId: { S: streamKey(readModel, aggregateId) } },
            ConsistentRead: true,
          }),
        );
        const checkpoint = cp.Item ? unmarshall(cp.Item) : {};
        const checkpointSequence = Number(checkpoint.lastEventSequence ?? 0);
        const storeLastSequence = Number(last[S.SORT_KEY]);
        if (checkpointSequence === storeLastSequence) continue;
        // One drifting aggregate counts once, however many of its read models trail.
        if (!counted.has(aggregateId)) drifting++;
        counted.add(aggregateId);
        const behind = checkpointSequence < storeLastSequence;
        const firstMissing = behind ? await lastEvent(config, storedKey, checkpointSequence + 1) : undefined;
        const lagEvents = storeLastSequence - checkpointSequence;
        const lagSeconds = firstMissing ? Math.max(0, Math.round((now.getTime() - Date.parse(String(firstMissing.timestamp))) / 1000)) : 0;
        totalLagEvents += Math.max(0, lagEvents);
        maxLagEvents = Math.max(maxLagEvents, lagEvents);
        maxLagSeconds = Math.max(maxLagSeconds, lagSeconds);
        const mine = perReadModel[readModel];
        mine.drifting++;
        mine.maxLagEvents = Math.max(mine.maxLagEvents, lagEvents);
        mine.maxLagSeconds = Math.max(mine.maxLagSeconds, lagSeconds);
        list.push({
          readModel,
          aggregateId,
          aggregateType,
          storeLastSequence,
          checkpointSequence,
          lagEvents,
          lagSeconds,
          ...(checkpoint.parkedSequence !== undefined ? { parkedSequence: Number(checkpoint.parkedSequence) } : {}),
        });
        list.sort((a, b) => b.lagSeconds - a.lagSeconds || b.lagEvents - a.lagEvents);
        list.splice(config.limit ?? 100);
      }
    }
  }
  return { aggregates, drifting, totalLagEvents, maxLagEvents, maxLagSeconds, readModels: perReadModel, list, generatedAt: now.toISOString() };
}
