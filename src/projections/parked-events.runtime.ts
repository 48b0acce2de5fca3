/**
 * The operator's actions on parked events (handler-side; the parked-events Lambda wires it to the SDK and to
 * StartSyncExecution of the projection state machine): list, retry (replay parked events through the same
 * state machine, in aggregate order, after a fix), and skip (advance the aggregate's checkpoint past one parked
 * event, recorded on the parked item, then retry the aggregate's later parked events).
 */
import {
  DeleteItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { DriftReport } from './drift.runtime';
import { streamKey, VERSIONED_READ_MODEL } from './keys';

/** The result of one replay execution. */
export interface ReplayOutcome {
  /** True when the execution succeeded (applied, or already applied). */
  readonly succeeded: boolean;
  /** The execution's error when it failed (`ProjectionEventParked` when the event was parked again). */
  readonly error?: string;
}

export interface ParkedEventsDeps {
  readonly client: DynamoDBClient;
  readonly parkingTable: string;
  readonly checkpointTable: string;
  /** The read models of the state machine: checkpoints and parked events are kept per read model and aggregate. */
  readonly readModels: string[];
  /** The domain (events are replayed with source `skafu.<domain>`). */
  readonly domain: string;
  /** Runs the projection state machine on one input and waits for its outcome. */
  readonly replay: (input: Record<string, unknown>) => Promise<ReplayOutcome>;
  /** @default () => new Date().toISOString() */
  readonly now?: () => string;
  /** The drift report (when the function knows the event store). @default - drift is not available */
  readonly drift?: (limit: number) => Promise<DriftReport>;
}

export type ParkedEventsRequest =
  | { action: 'list'; aggregateId?: string; readModel?: string; limit?: number }
  | { action: 'retry'; aggregateId?: string; readModel?: string; requestedBy: string }
  | { action: 'skip'; aggregateId: string; readModel?: string; eventSequence: number; reason: string; requestedBy: string }
  | { action: 'drift'; limit: number }
  | { action: 'migrate-checkpoints'; requestedBy: string };

export interface ParkedEvent {
  readonly readModel: string;
  readonly aggregateId: string;
  readonly eventSequence: number;
  readonly eventType: string;
  readonly reason: string;
  readonly errorType: string;
  readonly error: unknown;
  readonly status: string;
  readonly parkedAt: string;
}

export interface RetryReport {
  readonly readModel: string;
  readonly aggregateId: string;
  readonly applied: number[];
  /** The first event that failed again (parked again, with the new error), if any. */
  readonly failed?: { eventSequence: number; error?: string };
  /** Whether the aggregate's parked marker was cleared (live events flow again). */
  readonly released: boolean;
}

const ID = /^[\x20-\x7e]{1,1024}$/;
const ACTIONS = new Set(['list', 'retry', 'skip', 'drift', 'migrate-checkpoints']);


function splitKey(key: string): { readModel: string; aggregateId: string } {
  const at = key.indexOf('#');
  return { readModel: key.slice(0, at), aggregateId: key.slice(at + 1) };
}

/** Checks an operator's request; throws an Error naming the problem. */
export function parseParkedEventsRequest(raw: unknown): ParkedEventsRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('the request must be a JSON object with an "action"');
  const r = raw as Record<string, unknown>;
  const own = (k: string) => (Object.prototype.hasOwnProperty.call(r, k) ? r[k] : undefined);
  const action = own('action');
  if (typeof action !== 'string' || !ACTIONS.has(action)) throw new Error(`"action" must be one of ${[...ACTIONS].join(', ')}`);
  const aggregateId = own('aggregateId');
  if (aggregateId !== undefined && (typeof aggregateId !== 'string' || !ID.test(aggregateId))) throw new Error('"aggregateId" must be a printable string of 1-1024 characters');
  const readModel = own('readModel');
  if (readModel !== undefined && (typeof readModel !== 'string' || !VERSIONED_READ_MODEL.test(readModel))) throw new Error('"readModel" must be a read model version\'s identity (`name`, or `name@v<N>` from version 2 on)');
  const text = (k: string) => {
    const v = own(k);
    if (typeof v !== 'string' || v.trim() === '' || v.length > 1000) throw new Error(`"${k}" is required: a non-empty string of at most 1000 characters`);
    return v;
  };
  if (action === 'drift') {
    const limit = own('limit') ?? 100;
    if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > 1000) throw new Error('"limit" must be an integer 1-1000');
    return { action, limit: limit as number };
  }
  if (action === 'list') {
    const limit = own('limit') ?? 100;
    if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > 1000) throw new Error('"limit" must be an integer 1-1000');
    return { action, aggregateId: aggregateId as string | undefined, readModel: readModel as string | undefined, limit: limit as number };
  }
  if (action === 'retry') return { action, aggregateId: aggregateId as string | undefined, readModel: readModel as string | undefined, requestedBy: text('requestedBy') };
  if (action === 'migrate-checkpoints') return { action, requestedBy: text('requestedBy') };
  const eventSequence = own('eventSequence');
  if (aggregateId === undefined) throw new Error('"aggregateId" is required to skip');
  if (!Number.isSafeInteger(eventSequence) || (eventSequence as number) < 1) throw new Error('"eventSequence" must be a positive integer');
  return { action: 'skip', aggregateId: aggregateId as string, readModel: readModel as string | undefined, eventSequence: eventSequence as number, reason: text('reason'), requestedBy: text('requestedBy') };
}

function toParked(item: Record<string, AttributeValue>): ParkedEvent & { event: string; detailType: string; eventId: string } {
  let error: unknown = item.error?.S;
  try {
    error = JSON.parse(item.error?.S ?? 'null');
  } catch {
    // kept as text
  }
  const key = splitKey(item.aggregateId.S!);
  return {
    readModel: item.readModel?.S ?? key.readModel,
    aggregateId: item.eventAggregateId?.S ?? key.aggregateId,
    eventSequence: Number(item.eventSequence.N),
    eventType: item.eventType?.S ?? '',
    eventId: item.eventId?.S ?? '',
    detailType: item.detailType?.S ?? item.eventType?.S ?? '',
    event: item.event?.S ?? '{}',
    reason: item.reason?.S ?? '',
    errorType: item.errorType?.S ?? '',
    error,
    status: item.status?.S ?? 'PARKED',
    parkedAt: item.parkedAt?.S ?? '',
  };
}

/** The parked (not skipped) events of one read model's aggregate (its stream key), in sequence order. */
async function parkedOf(deps: ParkedEventsDeps, aggregateId: string) {
  const out: Array<ReturnType<typeof toParked>> = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await deps.client.send(
      new QueryCommand({
        TableName: deps.parkingTable,
        KeyConditionExpression: '#agg = :agg',
        FilterExpression: '#status = :parked',
        ExpressionAttributeNames: { '#agg': 'aggregateId', '#status': 'status' },
        ExpressionAttributeValues: { ':agg': { S: aggregateId }, ':parked': { S: 'PARKED' } },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    out.push(...(page.Items ?? []).map(toParked));
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

/** The stream keys with parked events (a scan of the parking table, which holds only parked and skipped events). */
async function parkedAggregates(deps: ParkedEventsDeps): Promise<string[]> {
  const ids = new Set<string>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await deps.client.send(
      new ScanCommand({
        TableName: deps.parkingTable,
        FilterExpression: '#status = :parked',
        ProjectionExpression: '#agg',
        ExpressionAttributeNames: { '#agg': 'aggregateId', '#status': 'status' },
        ExpressionAttributeValues: { ':parked': { S: 'PARKED' } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) ids.add(item.aggregateId.S!);
    start = page.LastEvaluatedKey;
  } while (start);
  return [...ids].sort();
}

/**
 * Replays an aggregate's parked events in order; stops at the first that fails again. When none is left, the
 * aggregate's parked marker is removed so that its live events apply again; an event parked behind the marker
 * while this ran is replayed in a next round (at most 5 rounds).
 */
async function retryAggregate(deps: ParkedEventsDeps, aggregateId: string, requestedBy: string): Promise<RetryReport> {
  const applied: number[] = [];
  const ids = splitKey(aggregateId);
  for (let round = 0; round < 5; round++) {
    const parked = await parkedOf(deps, aggregateId);
    if (parked.length === 0) {
      await deps.client
        .send(
          new UpdateItemCommand({
            TableName: deps.checkpointTable,
            Key: { aggregateId: { S: aggregateId } },
            UpdateExpression: 'REMOVE #parked',
            ConditionExpression: 'attribute_exists(#parked)',
            ExpressionAttributeNames: { '#parked': 'parkedSequence' },
          }),
        )
        .catch((err: Error) => {
          if (err.name !== 'ConditionalCheckFailedException') throw err;
        });
      // An event parked between the query and the removal would otherwise wait for the next retry.
      if ((await parkedOf(deps, aggregateId)).length === 0) return { ...ids, applied, released: true };
      continue;
    }
    for (const p of parked) {
      const outcome = await deps.replay({
        'detail-type': p.detailType,
        'source': `skafu.${deps.domain}`,
        'detail': JSON.parse(p.event),
        'skafuReplay': { requestedBy, parkedAt: p.parkedAt, requestedAt: (deps.now ?? (() => new Date().toISOString()))() },
      });
      if (!outcome.succeeded) return { ...ids, applied, failed: { eventSequence: p.eventSequence, error: outcome.error }, released: false };
      await deps.client
        .send(
          new DeleteItemCommand({
            TableName: deps.parkingTable,
            Key: { aggregateId: { S: aggregateId }, eventSequence: { N: String(p.eventSequence) } },
            ConditionExpression: '#status = :parked',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':parked': { S: 'PARKED' } },
          }),
        )
        .catch((err: Error) => {
          if (err.name !== 'ConditionalCheckFailedException') throw err;
        });
      applied.push(p.eventSequence);
    }
  }
  return { ...ids, applied, released: false };
}

type ParkedEventItem = ReturnType<typeof toParked>;

/** The stream keys an operator's aggregate (and optional read model) names; a read model not of this machine is refused. */
function keysOf(deps: ParkedEventsDeps, aggregateId: string, readModel?: string): string[] {
  if (readModel && !deps.readModels.includes(readModel)) throw new Error(`"readModel" ${readModel} is not one of this state machine's read models (${deps.readModels.join(', ')})`);
  return (readModel ? [readModel] : deps.readModels).map((rm) => streamKey(rm, aggregateId));
}

/**
 * Upgrades checkpoints written before they were kept per read model (items keyed by the bare aggregate id, with
 * no `readModel` attribute): each becomes one checkpoint per read model of this machine (`<readModel>#<id>`),
 * unless that read model already has one. Idempotent; the legacy items are kept (they are no longer read).
 * Read models added after the upgrade must not inherit a legacy checkpoint: run it once, right after deploying
 * the upgrade, before adding read models.
 */
export async function migrateCheckpoints(deps: Pick<ParkedEventsDeps, 'client' | 'checkpointTable' | 'readModels'>): Promise<{ legacyCheckpoints: number; created: number }> {
  let legacyCheckpoints = 0;
  let created = 0;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await deps.client.send(
      new ScanCommand({ TableName: deps.checkpointTable, FilterExpression: 'attribute_not_exists(#rm)', ExpressionAttributeNames: { '#rm': 'readModel' }, ExclusiveStartKey: start, ConsistentRead: true }),
    );
    for (const item of page.Items ?? []) {
      legacyCheckpoints++;
      for (const rm of deps.readModels) {
        const copy = { ...item, aggregateId: { S: streamKey(rm, item.aggregateId.S!) }, readModel: { S: rm } };
        const ok = await deps.client
          .send(new PutItemCommand({ TableName: deps.checkpointTable, Item: copy, ConditionExpression: 'attribute_not_exists(#agg)', ExpressionAttributeNames: { '#agg': 'aggregateId' } }))
          .then(() => true)
          .catch((err: Error) => {
            if (err.name !== 'ConditionalCheckFailedException') throw err;
            return false;
          });
        if (ok) created++;
      }
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return { legacyCheckpoints, created };
}

/** Runs one operator request. */
export async function handleParkedEvents(deps: ParkedEventsDeps, request: ParkedEventsRequest): Promise<Record<string, unknown>> {
  const now = deps.now ?? (() => new Date().toISOString());
  switch (request.action) {
    case 'drift': {
      if (!deps.drift) throw new Error('drift needs the event store: give the projections their eventStore and aggregateTypes');
      return { ...(await deps.drift(request.limit)) };
    }
    case 'list': {
      if (request.aggregateId) {
        const items: ParkedEvent[] = [];
        for (const key of keysOf(deps, request.aggregateId, request.readModel)) {
          items.push(...(await parkedOf(deps, key)).map(({ event: _e, detailType: _d, ...rest }) => rest));
        }
        return { parked: items.slice(0, request.limit) };
      }
      const aggregates = (await parkedAggregates(deps)).filter((k) => !request.readModel || splitKey(k).readModel === request.readModel);
      const parked: ParkedEvent[] = [];
      for (const id of aggregates) {
        if (parked.length >= request.limit!) break;
        parked.push(...(await parkedOf(deps, id)).map(({ event: _e, detailType: _d, ...rest }) => rest));
      }
      return { aggregates: aggregates.length, parked: parked.slice(0, request.limit) };
    }
    case 'retry': {
      const ids = request.aggregateId
        ? keysOf(deps, request.aggregateId, request.readModel)
        : (await parkedAggregates(deps)).filter((k) => !request.readModel || splitKey(k).readModel === request.readModel);
      const reports: RetryReport[] = [];
      for (const id of ids) reports.push(await retryAggregate(deps, id, request.requestedBy));
      return { retried: reports, stillParked: reports.filter((r) => r.failed).length };
    }
    case 'migrate-checkpoints':
      return { ...(await migrateCheckpoints(deps)), requestedBy: request.requestedBy };
    case 'skip': {
      const candidates = keysOf(deps, request.aggregateId, request.readModel);
      const found: Array<{ key: string; parked: ParkedEventItem }> = [];
      for (const key of candidates) {
        const hit = (await parkedOf(deps, key)).find((p) => p.eventSequence === request.eventSequence);
        if (hit) found.push({ key, parked: hit });
      }
      if (found.length === 0) throw new Error(`event ${request.eventSequence} of aggregate ${request.aggregateId} is not parked${request.readModel ? ` for read model ${request.readModel}` : ''}`);
      if (found.length > 1) throw new Error(`event ${request.eventSequence} of aggregate ${request.aggregateId} is parked for several read models (${found.map((f) => f.parked.readModel).join(', ')}): say which with "readModel"`);
      const [{ key, parked }] = found;
      const seq = request.eventSequence;
      try {
        await deps.client.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              {
                Update: {
                  TableName: deps.checkpointTable,
                  Key: { aggregateId: { S: key } },
                  UpdateExpression: 'SET #seq = :seq, #eventId = :eventId, #eventType = :eventType, #appliedAt = :now ADD #skipped :one',
                  // Only the aggregate's next event can be skipped: earlier ones must be applied or skipped first.
                  ConditionExpression: '(attribute_not_exists(#seq) AND :seq = :one) OR #seq = :prev',
                  ExpressionAttributeNames: { '#seq': 'lastEventSequence', '#eventId': 'lastEventId', '#eventType': 'lastEventType', '#appliedAt': 'appliedAt', '#skipped': 'skippedEvents' },
                  ExpressionAttributeValues: {
                    ':seq': { N: String(seq) },
                    ':prev': { N: String(seq - 1) },
                    ':one': { N: '1' },
                    ':eventId': { S: parked.eventId },
                    ':eventType': { S: parked.eventType },
                    ':now': { S: now() },
                  },
                },
              },
              {
                Update: {
                  TableName: deps.parkingTable,
                  Key: { aggregateId: { S: key }, eventSequence: { N: String(seq) } },
                  UpdateExpression: 'SET #status = :skipped, #skippedAt = :now, #skippedBy = :by, #skipReason = :reason',
                  ConditionExpression: '#status = :parked',
                  ExpressionAttributeNames: { '#status': 'status', '#skippedAt': 'skippedAt', '#skippedBy': 'skippedBy', '#skipReason': 'skipReason' },
                  ExpressionAttributeValues: { ':skipped': { S: 'SKIPPED' }, ':parked': { S: 'PARKED' }, ':now': { S: now() }, ':by': { S: request.requestedBy }, ':reason': { S: request.reason } },
                },
              },
            ],
          }),
        );
      } catch (err) {
        if ((err as Error).name === 'TransactionCanceledException') {
          throw new Error(`event ${seq} of aggregate ${request.aggregateId} cannot be skipped for read model ${parked.readModel}: the aggregate's checkpoint is not at ${seq - 1} (apply or skip its earlier events first; an earlier event that never reached the projection is not parked: republish it from the store with the outbox's republish function, then retry), or it was skipped or retried meanwhile`);
        }
        throw err;
      }
      // The aggregate's later parked events follow.
      const retry = await retryAggregate(deps, key, request.requestedBy);
      const skipped = {
        readModel: parked.readModel,
        aggregateId: request.aggregateId,
        eventSequence: seq,
        reason: request.reason,
        requestedBy: request.requestedBy,
      };
      return { skipped, retried: retry };
    }
  }
}
