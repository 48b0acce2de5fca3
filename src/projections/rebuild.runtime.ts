/**
 * Rebuilds one read model from the event store into a fresh table (handler-side; the rebuild Lambda runs it a
 * bounded step at a time, a Standard state machine loops the steps).
 *
 * - Aggregates are enumerated from the event store's sparse `aggregates` index, per aggregate type, and each
 *   stream is read with the partition key value the index returns, exactly as stored (never rebuilt from a
 *   public id: the store's key layout is its own business).
 * - Each event is applied with the read model's own projections: the write templates of the deployed
 *   projection definition (`Apply <type>` states), evaluated as Step Functions evaluates them, aimed at the
 *   target table, after the definition's upcast states upgraded an older schema version (upcast-states.ts).
 *   Nothing is published: other consumers of the bus see nothing.
 * - Exactly once per event, resumable: every write commits in one transaction with the aggregate's checkpoint
 *   for this rebuild (in the state table, under the rebuild's id), conditioned on the previous sequence. The
 *   progress item records the index cursor after each page; a step that dies mid-page is resumed from the page,
 *   and the checkpoints skip what was applied.
 * - Catch-up: when a pass over every aggregate applied anything, another pass follows (events appended during
 *   the rebuild); the rebuild is CAUGHT_UP after a pass that applied nothing, i.e. when every aggregate's
 *   checkpoint equalled the store's last sequence at the moment it was read.
 * - An event that cannot be applied (a missing path, a write DynamoDB refuses) stops its aggregate there, as
 *   the live projection would park it; it is recorded in the progress item's `failures` and the rebuild ends
 *   CAUGHT_UP_WITH_FAILURES. Nothing is skipped silently. Run again with the same rebuildId (after a fix), it
 *   makes one more pass from the checkpoints, and the stopped aggregates go on.
 */
import {
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { aggregateIndexPage, aggregateStreamKeys } from './aggregate-index.runtime';
import { evaluateTemplate } from './asl-template.runtime';
import { activeVersionKey, BACKFILLING, backfillStatusKey, streamKey, VERSIONED_READ_MODEL } from './keys';
import { migrateCheckpoints } from './parked-events.runtime';
import { runUpcastStates } from './upcast-states';
import { envelopeFromItem } from '../runtime/envelope';
import { EventStoreSchema as S } from '../runtime/event-store-schema';

export interface RebuildConfig {
  readonly client: DynamoDBClient;
  readonly eventStoreTable: string;
  /** The domain whose streams are read (the aggregates index is keyed `<domain>#<aggregateType>`). */
  readonly domain: string;
  /** The aggregate types whose streams hold the projected events. */
  readonly aggregateTypes: string[];
  /** The deployed projection definition (ASL). */
  readonly definition: { States: Record<string, any> };
  /** The live read model's table: the writes aimed at it in the definition are the ones replayed. */
  readonly readModelTable: string;
  /** The fresh table the rebuild writes. */
  readonly targetTable: string;
  /** Progress and this rebuild's per-aggregate checkpoints (`rebuildId` S, `key` S). */
  readonly stateTable: string;
  readonly rebuildId: string;
  /** @default 100 */
  readonly pageSize?: number;
  /** Aggregates of one page rebuilt at the same time. @default 8 */
  readonly concurrency?: number;
  /** @default () => new Date() */
  readonly clock?: () => Date;
  /**
   * Backfill the read model in place instead of rebuilding it into a fresh table: for a read model added to a
   * domain that already has events (its table is new, its checkpoints absent). The writes go to the live table
   * (`targetTable` must be `readModelTable`) with the live checkpoints (`<readModel>#<aggregateId>` in the
   * projections' checkpoint table), under the same condition as the live projection's, so that the two never
   * apply an event twice. See `runRebuildStep` for the hand-over to the live projection.
   * @default - a rebuild into `targetTable`, with this rebuild's own checkpoints in `stateTable`
   */
  readonly backfill?: BackfillTarget;
}

export interface BackfillTarget {
  readonly checkpointTable: string;
  readonly readModel: string;
}

export interface RebuildFailure {
  readonly aggregateId: string;
  readonly eventSequence: number;
  readonly error: string;
}

export interface RebuildProgress {
  readonly rebuildId: string;
  readonly status: 'RUNNING' | 'CAUGHT_UP' | 'CAUGHT_UP_WITH_FAILURES';
  /** A backfill: whether the live projection has taken the read model over (the last pass runs after it). */
  readonly handedOver?: boolean;
  readonly pass: number;
  /** The aggregate type being enumerated (an index into aggregateTypes). */
  readonly typeIndex: number;
  /** The index cursor (JSON), where the next step starts. */
  readonly cursor?: string;
  readonly aggregatesVisited: number;
  readonly eventsApplied: number;
  readonly appliedThisPass: number;
  readonly writeRequests: number;
  readonly readRequests: number;
  readonly failures: RebuildFailure[];
  readonly startedAt: string;
  readonly updatedAt: string;
}

const PROGRESS_KEY = '#progress';
const MAX_FAILURES = 100;

/** The write templates per event type that the definition aims at one table. */
export function writesFor(definition: { States: Record<string, any> }, tableName: string): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  // The states of each read model's branch (`Apply <type> (<readModel>)`), or of a flat definition (`Apply <type>`).
  const states = Object.entries(definition.States).flatMap(([name, state]) =>
    state.Type === 'Parallel' ? (state.Branches as Array<{ States: Record<string, any> }>).flatMap((b) => Object.entries(b.States)) : [[name, state] as [string, any]],
  );
  for (const [name, state] of states) {
    // The branch name is the read model version's identity (`Totals`, `Totals@v2`: keys.ts VERSIONED_READ_MODEL).
    const match = /^Apply (.+?)(?: \([A-Za-z][A-Za-z0-9_-]*(?:@v[1-9][0-9]*)?\))?$/.exec(name);
    if (!match || state.Type !== 'Task') continue;
    // A transaction: the checkpoint first, then the writes. A checkpoint-only apply (a `dynamodb:updateItem` task
    // of the checkpoint alone) has no TransactItems and no writes: the rebuild advances the checkpoint for it.
    const items = (state.Parameters?.TransactItems ?? []) as Array<Record<string, { TableName?: string }>>;
    out.set(match[1], [...(out.get(match[1]) ?? []), ...items.slice(1).filter((i) => Object.values(i)[0]?.TableName === tableName)]);
  }
  return out;
}

function retarget(action: unknown, table: string): TransactWriteItem {
  const [kind, body] = Object.entries(action as Record<string, Record<string, unknown>>)[0];
  return { [kind]: { ...body, TableName: table } } as TransactWriteItem;
}

async function loadProgress(config: RebuildConfig): Promise<RebuildProgress | undefined> {
  const out = await config.client.send(
    new GetItemCommand({ TableName: config.stateTable, Key: { rebuildId: { S: config.rebuildId }, key: { S: PROGRESS_KEY } }, ConsistentRead: true }),
  );
  return out.Item ? (unmarshall(out.Item) as unknown as RebuildProgress) : undefined;
}

async function saveProgress(config: RebuildConfig, progress: RebuildProgress): Promise<void> {
  const { rebuildId: _, key: _key, ...rest } = progress as RebuildProgress & { key?: string };
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const sets = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v], i) => {
      names[`#f${i}`] = k;
      values[`:v${i}`] = marshall({ v }, { removeUndefinedValues: true }).v;
      return `#f${i} = :v${i}`;
    });
  const removes = Object.entries(rest).filter(([, v]) => v === undefined).map(([k], i) => {
    names[`#r${i}`] = k;
    return `#r${i}`;
  });
  await config.client.send(
    new UpdateItemCommand({
      TableName: config.stateTable,
      Key: { rebuildId: { S: config.rebuildId }, key: { S: PROGRESS_KEY } },
      UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    }),
  );
}

interface Counters {
  applied: number;
  writes: number;
  reads: number;
  failures: RebuildFailure[];
}

/** A write's error as the SDK throws it: a cancelled transaction carries one reason per item. */
type CancelledWrite = Error & { CancellationReasons?: Array<{ Code?: string }> };

/** Applies an aggregate's events after its rebuild checkpoint, in order; returns how many were applied. */
async function rebuildAggregate(
  config: RebuildConfig,
  storedKey: AttributeValue,
  writes: Map<string, unknown[]>,
  counters: Counters,
  conflicts = 0,
): Promise<void> {
  let checkpointTable = config.stateTable;
  let checkpointKey: Record<string, AttributeValue> = { rebuildId: { S: config.rebuildId }, key: { S: `a#${JSON.stringify(storedKey)}` } };
  if (config.backfill) {
    // The live checkpoints are keyed by the public aggregate id the events carry: read it from the first event.
    const item = await firstStoredItem(config, storedKey);
    counters.reads++;
    if (!item || item[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT) return;
    checkpointTable = config.backfill.checkpointTable;
    checkpointKey = { aggregateId: { S: streamKey(config.backfill.readModel, envelopeFromItem(item).aggregateId) } };
  }
  const cp = await config.client.send(new GetItemCommand({ TableName: checkpointTable, Key: checkpointKey, ConsistentRead: true }));
  counters.reads++;
  let applied = cp.Item?.lastEventSequence?.N ? Number(cp.Item.lastEventSequence.N) : 0;
  let pending = applied;
  let start: Record<string, AttributeValue> | undefined;
  const advance = (seq: number, actions: TransactWriteItem[]): TransactWriteItem[] => [
    {
      Update: {
        TableName: checkpointTable,
        Key: checkpointKey,
        // The live projection's condition too: the previous event must be the last one applied.
        UpdateExpression: config.backfill ? 'SET #seq = :seq, #readModel = :readModel' : 'SET #seq = :seq',
        ConditionExpression: applied === 0 ? 'attribute_not_exists(#seq)' : '#seq = :prev',
        ExpressionAttributeNames: { '#seq': 'lastEventSequence', ...(config.backfill ? { '#readModel': 'readModel' } : {}) },
        ExpressionAttributeValues: {
          ':seq': { N: String(seq) },
          ...(applied === 0 ? {} : { ':prev': { N: String(applied) } }),
          ...(config.backfill ? { ':readModel': { S: config.backfill.readModel } } : {}),
        },
      },
    },
    ...actions,
  ];
  const commit = async (seq: number, actions: TransactWriteItem[]) => {
    await config.client.send(new TransactWriteItemsCommand({ TransactItems: advance(seq, actions) }));
    counters.writes += 1 + actions.length;
    counters.applied += seq - applied;
    applied = seq;
  };
  do {
    const page = await config.client.send(
      new QueryCommand({
        TableName: config.eventStoreTable,
        KeyConditionExpression: '#pk = :pk AND #sk > :after',
        ExpressionAttributeNames: { '#pk': S.PARTITION_KEY, '#sk': S.SORT_KEY },
        ExpressionAttributeValues: { ':pk': storedKey, ':after': { N: String(applied) } },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    counters.reads++;
    for (const raw of page.Items ?? []) {
      const item = unmarshall(raw);
      if (item[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT) continue;
      const envelope = envelopeFromItem(item);
      const seq = envelope.eventSequence;
      if (seq !== pending + 1) {
        counters.failures.push({ aggregateId: envelope.aggregateId, eventSequence: seq, error: `the store's stream jumps from ${pending} to ${seq}` });
        return;
      }
      const templates = writes.get(envelope.eventType) ?? [];
      if (templates.length === 0) {
        pending = seq; // advances the checkpoint with the next write
        continue;
      }
      const detail = { ...envelope, timestampEpochSeconds: Math.floor(Date.parse(envelope.timestamp) / 1000) };
      // Older schema versions are upgraded by the definition's own upcast states, as the live projection does.
      const input = runUpcastStates(config.definition, { 'detail-type': envelope.eventType, detail });
      if (input.parked) {
        counters.failures.push({ aggregateId: envelope.aggregateId, eventSequence: seq, error: `${input.parked.error}: ${input.parked.cause}`.slice(0, 500) });
        return;
      }
      try {
        const actions = templates.map((t) => retarget(evaluateTemplate(t, input.input), config.targetTable));
        await commit(seq, actions);
        pending = seq;
      } catch (err) {
        const e = err as CancelledWrite;
        const codes = (e.CancellationReasons ?? []).map((r) => r.Code);
        const again = afterCancellation(e);
        if (again) return again;
        // What the live projection would park (a missing path, a value DynamoDB refuses) is recorded and stops
        // the aggregate; anything else (throttling past the SDK's retries, a crash) fails the step, which is
        // resumed from its last saved page.
        const permanent = e.name === 'States.Runtime' || e.name === 'ValidationException' || (e.name === 'TransactionCanceledException' && codes.includes('ValidationError'));
        if (!permanent) throw err;
        counters.failures.push({ aggregateId: envelope.aggregateId, eventSequence: seq, error: `${e.name}: ${e.message}`.slice(0, 500) });
        return;
      }
    }
    start = page.LastEvaluatedKey;
  } while (start);
  if (pending > applied) {
    // The aggregate's last events are ones this read model does not project: the checkpoint alone advances. The
    // live projection may have advanced it meanwhile (a late event it applied while this step read the store):
    // then this starts again from the checkpoint, as above, never leaving it behind the events it skipped.
    try {
      await commit(pending, []);
    } catch (err) {
      const again = afterCancellation(err as CancelledWrite);
      if (again) return again;
      throw err;
    }
  }

  /**
   * A transaction cancelled by another writer: the checkpoint moved (another step, resumed or concurrent, or the
   * live projection, got there first: start again from the checkpoint), or an item was held by another
   * transaction (a counter fed by many aggregates: again, after a jitter, at most 10 times). Anything else: undefined.
   */
  function afterCancellation(e: CancelledWrite): Promise<void> | undefined {
    if (e.name !== 'TransactionCanceledException') return undefined;
    const codes = (e.CancellationReasons ?? []).map((r) => r.Code);
    if (codes[0] === 'ConditionalCheckFailed') return rebuildAggregate(config, storedKey, writes, counters, conflicts);
    if (codes.includes('TransactionConflict') && conflicts < 10) {
      return new Promise((r) => setTimeout(r, 20 + Math.random() * 20 * 2 ** Math.min(conflicts, 5))).then(() =>
        rebuildAggregate(config, storedKey, writes, counters, conflicts + 1),
      );
    }
    return undefined;
  }
}

/** Writes a backfilling read model's status item (read by the live projection on its gap path). */
async function setBackfillStatus(config: RebuildConfig, target: BackfillTarget, status: typeof BACKFILLING | 'LIVE'): Promise<void> {
  await config.client.send(
    new PutItemCommand({
      TableName: target.checkpointTable,
      Item: {
        aggregateId: { S: backfillStatusKey(target.readModel) },
        readModel: { S: target.readModel },
        status: { S: status },
        rebuildId: { S: config.rebuildId },
        updatedAt: { S: (config.clock ?? (() => new Date()))().toISOString() },
      },
    }),
  );
}

/**
 * Before the first pass of a backfill: the live projection leaves the read model's unapplied events to it.
 *
 * - A table that already holds items while its first aggregate has no checkpoint is a read model upgraded from
 *   per-domain checkpoints: its legacy checkpoints are copied first (never applied twice); if that does not give
 *   it checkpoints, the backfill refuses to write over the items.
 * - An empty table while its first aggregate has a checkpoint is a table created again under an identity that
 *   was filled before (a deployment rolled back after this version's backfill, then deployed again; a table
 *   replaced): the checkpoints describe the table that is gone. They are deleted (clearStaleCheckpoints), and a
 *   pointer naming this version is deleted too, so that queries read the previous version again until this
 *   backfill switches them back. Both checks sample the first aggregate only (a few reads).
 */
async function startBackfill(config: RebuildConfig, target: BackfillTarget): Promise<void> {
  if (config.targetTable !== config.readModelTable) throw new Error('a backfill writes the live read model: targetTable must be readModelTable');
  const occupied = await config.client.send(new ScanCommand({ TableName: config.targetTable, Limit: 1, ProjectionExpression: '#k', ExpressionAttributeNames: { '#k': 'x' } }));
  const sample = await firstAggregateKey(config);
  if ((occupied.Count ?? 0) > 0 || (occupied.ScannedCount ?? 0) > 0) {
    if (sample && !(await hasCheckpoint(config, target, sample))) {
      await migrateCheckpoints({ client: config.client, checkpointTable: target.checkpointTable, readModels: [target.readModel] });
      if (!(await hasCheckpoint(config, target, sample))) {
        throw new Error(`read model ${target.readModel}: its table holds items but it has no checkpoints; a backfill would apply events twice. Empty the table (or rebuild into a fresh one) first`);
      }
    }
  } else if (sample) {
    const sampleKey = await checkpointKeyOf(config, target, sample);
    if (sampleKey && (await checkpointExists(config, target, sampleKey))) {
      // BACKFILLING first: an event the live projection finds without its (deleted) checkpoint is a gap it leaves
      // to this backfill instead of waiting for it and parking it.
      await setBackfillStatus(config, target, BACKFILLING);
      await clearStaleCheckpoints(config, target, sampleKey);
    }
  }
  await setBackfillStatus(config, target, BACKFILLING);
}

/**
 * Deletes a read model version's checkpoints (`<identity>#<aggregateId>`), and the active-version pointer if it
 * names this version (conditioned on that version: a pointer another version's backfill moved on stays).
 *
 * Cost: a Scan of the whole checkpoint table (every read model's checkpoints of the domain: 0.5 read capacity
 * unit per 4 KB read, eventually consistent, paginated by DynamoDB at 1 MB), filtered on the key prefix (a filter
 * does not reduce what is read), plus one DeleteItem per checkpoint of this version (one write unit each). It
 * runs only at the start of a backfill into an empty table that has checkpoints, i.e. once per re-created table.
 *
 * Each delete is conditioned on the checkpoint read by the Scan: a checkpoint the live projection advanced since
 * then means it wrote into the new table on top of the stale checkpoint, which no backfill can undo (it would
 * apply that event twice): the step fails naming the read model, and the operator empties the table.
 */
async function clearStaleCheckpoints(config: RebuildConfig, target: BackfillTarget, sampleKey: string): Promise<void> {
  const { name, version } = identityParts(target.readModel);
  // The pointer first, the sampled checkpoint last: a step that dies half-way is started again (its progress was
  // not saved), finds the sampled checkpoint still there and clears the rest.
  if (version >= 2) await deletePointerNaming(config, target, name, version);
  const prefix = `${target.readModel}#`;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await config.client.send(
      new ScanCommand({
        TableName: target.checkpointTable,
        FilterExpression: 'begins_with(#id, :prefix)',
        ProjectionExpression: '#id, #seq',
        ExpressionAttributeNames: { '#id': 'aggregateId', '#seq': 'lastEventSequence' },
        ExpressionAttributeValues: { ':prefix': { S: prefix } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      if (item.aggregateId?.S === sampleKey) continue;
      await deleteCheckpoint(config, target, item);
    }
    start = page.LastEvaluatedKey;
  } while (start);
  const sampleKeyItem = { aggregateId: { S: sampleKey } };
  const sample = await config.client.send(new GetItemCommand({ TableName: target.checkpointTable, Key: sampleKeyItem, ConsistentRead: true }));
  if (sample.Item) await deleteCheckpoint(config, target, sample.Item);
}

async function deleteCheckpoint(config: RebuildConfig, target: BackfillTarget, item: Record<string, AttributeValue>): Promise<void> {
  const seq = item.lastEventSequence;
  try {
    await config.client.send(
      new DeleteItemCommand({
        TableName: target.checkpointTable,
        Key: { aggregateId: item.aggregateId },
        ...(seq
          ? { ConditionExpression: '#seq = :seq', ExpressionAttributeNames: { '#seq': 'lastEventSequence' }, ExpressionAttributeValues: { ':seq': seq } }
          : {}),
      }),
    );
  } catch (err) {
    if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
    throw new Error(
      `read model ${target.readModel}: its table was created again (empty) while its checkpoints said it was filled, and the live projection applied an event of ${item.aggregateId?.S} to it on top of them; empty the table and start the backfill again`,
    );
  }
}

/** Deletes the active-version pointer if it names `version` (version 1 has none of its own). */
async function deletePointerNaming(config: RebuildConfig, target: BackfillTarget, name: string, version: number): Promise<void> {
  try {
    await config.client.send(
      new DeleteItemCommand({
        TableName: target.checkpointTable,
        Key: { aggregateId: { S: activeVersionKey(name) } },
        ConditionExpression: '#v = :v',
        ExpressionAttributeNames: { '#v': 'version' },
        ExpressionAttributeValues: { ':v': { N: String(version) } },
      }),
    );
  } catch (err) {
    if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
  }
}

/** `Totals` → version 1, `Totals@v2` → 2 (keys.ts VERSIONED_READ_MODEL; anything else: no pointer to touch). */
function identityParts(identity: string): { name: string; version: number } {
  if (!VERSIONED_READ_MODEL.test(identity)) return { name: identity, version: 0 };
  const at = identity.indexOf('@v');
  return at < 0 ? { name: identity, version: 1 } : { name: identity.slice(0, at), version: Number(identity.slice(at + 2)) };
}

async function firstAggregateKey(config: RebuildConfig): Promise<AttributeValue | undefined> {
  for (const type of config.aggregateTypes) {
    const { client, eventStoreTable, domain } = config;
    // Pages of one, followed past an empty one (an index entry of another domain's stream is left out of a page).
    for await (const key of aggregateStreamKeys({ client, eventStoreTable, domain, aggregateType: type, limit: 1 })) return key;
  }
  return undefined;
}

/** The first item (sequence 1 on) of a stored stream, read consistently: one request. */
async function firstStoredItem(config: RebuildConfig, storedKey: AttributeValue): Promise<Record<string, any> | undefined> {
  const first = await config.client.send(
    new QueryCommand({
      TableName: config.eventStoreTable,
      KeyConditionExpression: '#pk = :pk AND #sk >= :one',
      ExpressionAttributeNames: { '#pk': S.PARTITION_KEY, '#sk': S.SORT_KEY },
      ExpressionAttributeValues: { ':pk': storedKey, ':one': { N: '1' } },
      Limit: 1,
      ConsistentRead: true,
    }),
  );
  return first.Items?.[0] ? unmarshall(first.Items[0]) : undefined;
}

/** This read model's checkpoint key of a stored stream (read from its first event), or undefined without events. */
async function checkpointKeyOf(config: RebuildConfig, target: BackfillTarget, storedKey: AttributeValue): Promise<string | undefined> {
  const first = await firstStoredItem(config, storedKey);
  if (!first || first[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT) return undefined;
  return streamKey(target.readModel, envelopeFromItem(first).aggregateId);
}

async function checkpointExists(config: RebuildConfig, target: BackfillTarget, key: string): Promise<boolean> {
  const keyItem = { aggregateId: { S: key } };
  const cp = await config.client.send(new GetItemCommand({ TableName: target.checkpointTable, Key: keyItem, ConsistentRead: true }));
  return cp.Item !== undefined;
}

async function hasCheckpoint(config: RebuildConfig, target: BackfillTarget, storedKey: AttributeValue): Promise<boolean> {
  const key = await checkpointKeyOf(config, target, storedKey);
  return key === undefined || (await checkpointExists(config, target, key));
}

/**
 * Runs the rebuild until `deadline` (epoch ms) or until it has caught up; returns the progress, saved after
 * every page of the index. Call it again (with the same rebuildId) to continue.
 */
export async function runRebuildStep(config: RebuildConfig, deadline: number): Promise<RebuildProgress> {
  const clock = config.clock ?? (() => new Date());
  const writes = writesFor(config.definition, config.readModelTable);
  if ([...writes.values()].every((w) => w.length === 0)) {
    throw new Error(`the projection definition writes nothing to ${config.readModelTable}: is it the live read model's table?`);
  }
  let progress: RebuildProgress = (await loadProgress(config)) ?? {
    rebuildId: config.rebuildId,
    status: 'RUNNING',
    pass: 1,
    typeIndex: 0,
    aggregatesVisited: 0,
    eventsApplied: 0,
    appliedThisPass: 0,
    writeRequests: 0,
    readRequests: 0,
    failures: [],
    startedAt: clock().toISOString(),
    updatedAt: clock().toISOString(),
  };
  if (progress.status === 'CAUGHT_UP_WITH_FAILURES') {
    // Started again with the same rebuildId (after a fix of the projection): one more pass from the checkpoints,
    // so that the aggregates that stopped go on from the event that stopped them; nothing is applied twice.
    progress = { ...progress, status: 'RUNNING', failures: [], pass: progress.pass + 1, typeIndex: 0, cursor: undefined, appliedThisPass: 0 };
  } else if (progress.status !== 'RUNNING') {
    return progress;
  }
  if (config.backfill && progress.pass === 1 && progress.typeIndex === 0 && !progress.cursor && progress.aggregatesVisited === 0) {
    await startBackfill(config, config.backfill);
  }
  const concurrency = config.concurrency ?? 8;
  while (Date.now() < deadline) {
    const type = config.aggregateTypes[progress.typeIndex];
    const page = await aggregateIndexPage({
      client: config.client,
      eventStoreTable: config.eventStoreTable,
      domain: config.domain,
      aggregateType: type,
      limit: config.pageSize ?? 100,
      startKey: progress.cursor ? JSON.parse(progress.cursor) : undefined,
    });
    const counters: Counters = { applied: 0, writes: 0, reads: 1, failures: [] };
    const keys = page.streamKeys;
    for (let i = 0; i < keys.length; i += concurrency) {
      await Promise.all(keys.slice(i, i + concurrency).map((k) => rebuildAggregate(config, k, writes, counters)));
    }
    const next = page.next ? JSON.stringify(page.next) : undefined;
    const lastType = progress.typeIndex === config.aggregateTypes.length - 1;
    const appliedThisPass = progress.appliedThisPass + counters.applied;
    const seen = new Set(progress.failures.map((f) => `${f.aggregateId}#${f.eventSequence}`));
    const failures = [...progress.failures, ...counters.failures.filter((f) => !seen.has(`${f.aggregateId}#${f.eventSequence}`))].slice(0, MAX_FAILURES);
    let status: RebuildProgress['status'] = 'RUNNING';
    let pass = progress.pass;
    let typeIndex = progress.typeIndex;
    let passApplied = appliedThisPass;
    let handedOver = progress.handedOver;
    if (!next && lastType) {
      if (appliedThisPass === 0 && config.backfill && !progress.handedOver) {
        // Caught up: the live projection takes over (its events behind a checkpoint wait for a gap to fill
        // again), then one more pass applies what it left to the backfill meanwhile. Every event the live
        // projection left was appended before it read the status, hence before this pass reads the store.
        await setBackfillStatus(config, config.backfill, 'LIVE');
        handedOver = true;
        pass++;
        typeIndex = 0;
        passApplied = 0;
      } else if (appliedThisPass === 0) {status = failures.length > 0 ? 'CAUGHT_UP_WITH_FAILURES' : 'CAUGHT_UP';} else {
        pass++;
        typeIndex = 0;
        passApplied = 0;
      }
    } else if (!next) {typeIndex++;}
    progress = {
      ...progress,
      status,
      pass,
      typeIndex,
      cursor: next,
      aggregatesVisited: progress.aggregatesVisited + keys.length,
      eventsApplied: progress.eventsApplied + counters.applied,
      appliedThisPass: passApplied,
      writeRequests: progress.writeRequests + counters.writes,
      readRequests: progress.readRequests + counters.reads + 1,
      failures,
      ...(config.backfill ? { handedOver: handedOver ?? false } : {}),
      updatedAt: clock().toISOString(),
    };
    await saveProgress(config, progress);
    if (status !== 'RUNNING') break;
  }
  return progress;
}
