/**
 * DynamoDB Streams and the Lambda event source mappings that read them, the way Lambda's poller does it
 * (Lambda developer guide, "Using AWS Lambda with Amazon DynamoDB"; DynamoDB developer guide, "Change data
 * capture for DynamoDB Streams"):
 * - every shard of the table's current stream is read, a parent shard to its end before its children, shards
 *   in parallel, one batch per shard at a time (per-item order is kept);
 * - a shard iterator is asked for again whenever GetRecords refuses it (expired, or trimmed: DynamoDB Local
 *   refuses an iterator taken on an empty shard once records arrive), after the last record read, so that no
 *   record is read twice or skipped; a shard with no NextShardIterator is closed and done;
 * - a table that is deleted and created again has a new stream: its shards are read from the start;
 * - records are filtered by the mapping's FilterCriteria, the batch goes to the function; on failure the batch is
 *   retried from the first failed item (`batchItemFailures`) up to MaximumRetryAttempts, then its metadata goes
 *   to the on-failure destination (no records, like Lambda);
 * - a stream that cannot be read, or a batch that keeps failing, is reported on the console and in errors.log
 *   (again at most once a minute while it lasts), never a silent loop.
 * Each mapping polls in its own loop: again right away while a shard hands back a full batch (or a shard closed and
 * its children are to be read), otherwise every pollIntervalMs (default 250 ms: Lambda's poller reads each shard
 * about four times a second, Lambda developer guide, "Polling and batching streams").
 *
 * Where Skafu Local is faster than AWS, on purpose: a mapping is also polled at once when something Skafu Local
 * runs has just written to its table (nudge): a handler's DynamoDB write, reported by its worker as soon as
 * DynamoDB answered it (dynamodb-writes.js), and a state machine's DynamoDB write task. On AWS the record would
 * wait for the poller's next read (up to about 250 ms, plus the stream's own propagation delay); here it is read
 * within milliseconds, which keeps a test suite fast. A write from outside (another client of DynamoDB Local) is
 * read at the next interval, as on AWS. Nudges change only when a shard is read, never what is read, in which
 * batches it may be cut or in which order (one GetRecords at a time per shard, a nudge during a read makes one
 * more read after it), so ordering, retries and exactly-once delivery are those of the interval-only poller.
 */
import { LOCAL_REGION, type LocalResource } from './assembly';
import type { DynamoDbJsonClient } from './dynamodb-json';
import type { ErrorLog } from './error-log';
import { matchesPattern, validatePattern } from './event-pattern';

export interface StreamServices {
  /** DynamoDB's and DynamoDB Streams' JSON APIs (the Streams API as Lambda's poller reads it). */
  readonly api: DynamoDbJsonClient;
  readonly errors: ErrorLog;
  readonly log: (line: string) => void;
  readonly invoke: (fn: string, event: unknown) => Promise<unknown>;
  /** Sends to an on-failure destination (a queue). */
  readonly sendToDestination: (arn: string, body: string) => void;
  readonly pollIntervalMs: number;
}

interface ShardState {
  readonly id: string;
  readonly parent?: string;
  iterator?: string;
  lastSequence?: string;
  done: boolean;
  /** The iterator type for the first iterator of this shard. */
  readonly start: 'TRIM_HORIZON' | 'LATEST';
}

const REPORT_EVERY_MS = 60_000;
/**
 * How often the table is described and the shards of an unchanged stream are listed again. In between, the
 * stream is looked up every second with ListStreams, which is cheap: DescribeTable counts the table's items and
 * its cost grows with them (measured on DynamoDB Local 3: 2 ms at 1,000 items, 8 ms at 8,000, against under 1 ms
 * for ListStreams at any size).
 */
const SHARD_LISTING_EVERY_MS = 10_000;

/** A shard, as DescribeStream describes it. */
interface Shard {
  readonly ShardId?: string;
  readonly ParentShardId?: string;
  readonly SequenceNumberRange?: { StartingSequenceNumber?: string; EndingSequenceNumber?: string };
}

/** A record, as the Streams API's GetRecords answers it (JSON). */
export interface StreamRecord {
  readonly eventID?: string;
  readonly eventName?: string;
  readonly eventVersion?: string;
  readonly dynamodb?: Record<string, any>;
}

/** What a stream handler may return (partial batch response). */
interface BatchResponse {
  readonly batchItemFailures?: Array<{ itemIdentifier: string }>;
}

/** One AWS::Lambda::EventSourceMapping on a table's stream. */
export class StreamMapping {
  public busy = false;
  /** Records delivered to the function (after filtering). */
  public delivered = 0;
  private streamArn?: string;
  private readonly shards = new Map<string, ShardState>();
  private lastDescribe = 0;
  private lastShardListing = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private readonly lastReport = new Map<string, number>();
  private readonly filters: Array<Record<string, unknown>>;
  private readonly batchSize: number;
  private readonly retries: number;
  private readonly onFailure?: string;
  private readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  private firstStream = true;
  private tableMissing = false;
  private nudged = false;

  constructor(
    public readonly resource: string,
    public readonly table: string,
    public readonly functionName: string,
    props: Record<string, any>,
    private readonly services: StreamServices,
  ) {
    const filterList = (props.FilterCriteria?.Filters ?? []) as Array<{ Pattern: string }>;
    this.filters = filterList.map((f) => JSON.parse(f.Pattern) as Record<string, unknown>);
    this.filters.forEach((f) => validatePattern(f, `${resource} FilterCriteria`));
    this.batchSize = Math.min(1000, Number(props.BatchSize ?? 100));
    this.retries = Number(props.MaximumRetryAttempts ?? -1);
    this.onFailure = props.DestinationConfig?.OnFailure?.Destination as string | undefined;
    this.startingPosition = props.StartingPosition === 'LATEST' ? 'LATEST' : 'TRIM_HORIZON';
  }

  public describe(): string {
    return `stream of ${this.table} -> ${this.functionName} (batch ${this.batchSize}, ${this.filters.length} filter(s), from ${this.startingPosition})`;
  }

  public start(): void {
    this.loop = this.run();
  }

  /** Polls now if the mapping is waiting out its idle interval (something may have been written). */
  public nudge(): void {
    if (this.wake) this.wake();
    else this.nudged = true; // polling now: poll again right after
  }

  public async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let more = false;
      this.busy = true;
      this.nudged = false;
      try {
        more = (await this.poll()).more;
      } catch (err) {
        this.report('stream', 'StreamReadFailed', `the stream of ${this.table} cannot be read: ${(err as Error).name}: ${(err as Error).message}`);
      } finally {
        this.busy = more;
      }
      if (!more && !this.stopped && !this.nudged) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.services.pollIntervalMs);
          this.wake = () => {
            this.wake = undefined;
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  /** Reads one batch from every readable shard; returns how many records were read. */
  public async pollOnce(): Promise<number> {
    return (await this.poll()).read;
  }

  /** One batch from every readable shard: how many records, and whether to read again at once (more may wait). */
  private async poll(): Promise<{ read: number; more: boolean }> {
    // The stream and its shards are looked up first when they must be (no stream yet, the table was missing, a
    // shard closed or vanished); the periodic look-up (a recreated table, new shards) comes after the read, so
    // that it never delays records that are already there.
    if (!this.streamArn || this.tableMissing || this.lastDescribe === 0) await this.refresh();
    if (!this.streamArn || this.tableMissing) return { read: 0, more: false };
    const stale = Date.now() - this.lastDescribe > 1000;
    const ready = [...this.shards.values()].filter((s) => !s.done && (!s.parent || !this.shards.has(s.parent) || this.shards.get(s.parent)!.done));
    const results = await Promise.all(ready.map((s) => this.readShard(s)));
    const found = { read: results.reduce((a, r) => a + r.read, 0), more: results.some((r) => r.more) };
    if (stale && this.lastDescribe !== 0) {
      const [stream, shards] = [this.streamArn, this.shards.size];
      const full = Date.now() - this.lastShardListing > SHARD_LISTING_EVERY_MS;
      if (full || (await this.newerStreamListed())) await this.refresh(full);
      else this.lastDescribe = Date.now();
      if (this.streamArn !== stream || this.shards.size !== shards) found.more = true; // read what appeared at once
    }
    return found;
  }

  /**
   * Whether ListStreams names a stream of the table newer than the one read (the table was created again), or
   * does not name the one read. ListStreams keeps naming the streams of a deleted table (for 24 hours on AWS), so
   * it cannot tell that the table is gone: the full look-up every SHARD_LISTING_EVERY_MS does.
   */
  private async newerStreamListed(): Promise<boolean> {
    const arns: string[] = [];
    let exclusiveStart: string | undefined;
    do {
      const out = await this.services.api.streams<{ Streams?: Array<{ StreamArn?: string }>; LastEvaluatedStreamArn?: string }>('ListStreams', {
        TableName: this.table,
        ExclusiveStartStreamArn: exclusiveStart,
      });
      arns.push(...(out.Streams ?? []).map((st) => st.StreamArn ?? ''));
      exclusiveStart = out.LastEvaluatedStreamArn;
    } while (exclusiveStart);
    // A stream's ARN ends with its label, the ISO 8601 time it was created: a later label sorts after.
    return !arns.includes(this.streamArn!) || arns.some((arn) => arn > this.streamArn!);
  }

  /**
   * Finds the table's current stream (DescribeTable) and its shards (DescribeStream). The periodic look-up
   * (`listShards` false) lists the shards only when the stream changed: a new shard of the same stream is the
   * child of a shard that closed, and a closed shard's last read already asks for a full look-up. The shards are
   * still listed every SHARD_LISTING_EVERY_MS, in case.
   */
  private async refresh(listShards = true): Promise<void> {
    this.lastDescribe = Date.now();
    let latest: string | undefined;
    try {
      latest = (await this.services.api.dynamodb<{ Table?: { LatestStreamArn?: string } }>('DescribeTable', { TableName: this.table })).Table?.LatestStreamArn;
    } catch (err) {
      if ((err as Error).name !== 'ResourceNotFoundException') throw err;
      this.report('table', 'StreamReadFailed', `table ${this.table} does not exist (deleted?): its stream is read again once it is created`);
      this.tableMissing = true;
      return;
    }
    this.tableMissing = false;
    if (!latest) throw new Error(`table ${this.table} has no stream enabled`);
    if (latest !== this.streamArn) {
      if (this.streamArn) this.services.log(`[stream ${this.table}] the table has a new stream (recreated): reading it from the start`);
      this.streamArn = latest;
      this.shards.clear();
    }
    if (!listShards && this.shards.size > 0) return;
    this.lastShardListing = Date.now();
    const shards: Shard[] = [];
    let exclusiveStart: string | undefined;
    do {
      const out = await this.services.api.streams<{ StreamDescription?: { Shards?: Shard[]; LastEvaluatedShardId?: string } }>('DescribeStream', { StreamArn: latest, ExclusiveStartShardId: exclusiveStart });
      shards.push(...(out.StreamDescription?.Shards ?? []));
      exclusiveStart = out.StreamDescription?.LastEvaluatedShardId;
    } while (exclusiveStart);
    const initial = this.shards.size === 0;
    for (const shard of shards) {
      if (!shard.ShardId || this.shards.has(shard.ShardId)) continue;
      // The mapping's starting position applies to the shards open when it starts; later shards are read whole.
      const start = initial && this.firstStream && !shard.SequenceNumberRange?.EndingSequenceNumber ? this.startingPosition : 'TRIM_HORIZON';
      this.shards.set(shard.ShardId, { id: shard.ShardId, parent: shard.ParentShardId, done: false, start });
    }
    this.firstStream = false;
  }

  private async iterator(shard: ShardState): Promise<string | undefined> {
    const input = shard.lastSequence
      ? { StreamArn: this.streamArn, ShardId: shard.id, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER' as const, SequenceNumber: shard.lastSequence }
      : { StreamArn: this.streamArn, ShardId: shard.id, ShardIteratorType: shard.start };
    try {
      return (await this.services.api.streams<{ ShardIterator?: string }>('GetShardIterator', input)).ShardIterator;
    } catch (err) {
      if ((err as Error).name === 'TrimmedDataAccessException' && shard.lastSequence) {
        // The records after the last one read are gone (older than 24 hours): reported, then read from the oldest.
        this.report(shard.id, 'StreamRecordsLost', `records of ${this.table} shard ${shard.id} after ${shard.lastSequence} were trimmed before they were read`);
        shard.lastSequence = undefined;
        return (await this.services.api.streams<{ ShardIterator?: string }>('GetShardIterator', { StreamArn: this.streamArn, ShardId: shard.id, ShardIteratorType: 'TRIM_HORIZON' })).ShardIterator;
      }
      if ((err as Error).name === 'ResourceNotFoundException') {
        shard.done = true; // the shard is gone with its stream
        return undefined;
      }
      throw err;
    }
  }

  private async readShard(shard: ShardState): Promise<{ read: number; more: boolean }> {
    shard.iterator ??= await this.iterator(shard);
    if (!shard.iterator) {
      shard.done = true;
      return { read: 0, more: false };
    }
    let out;
    try {
      out = await this.services.api.streams<{ Records?: StreamRecord[]; NextShardIterator?: string }>('GetRecords', { ShardIterator: shard.iterator, Limit: this.batchSize });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TrimmedDataAccessException' || name === 'ExpiredIteratorException') {
        shard.iterator = undefined; // ask for a new one after the last record read
        return { read: 0, more: true };
      }
      if (name === 'ResourceNotFoundException') {
        this.lastDescribe = 0;
        shard.iterator = undefined;
        return { read: 0, more: false };
      }
      throw err;
    }
    const records = out.Records ?? [];
    if (records.length > 0) {
      const lambdaRecords = records
        .map((r) => toLambdaRecord(r, this.streamArn))
        .filter((rec) => this.filters.length === 0 || this.filters.some((f) => matchesPattern(f, rec as never)));
      if (lambdaRecords.length > 0) await this.deliver(lambdaRecords, shard.id);
      shard.lastSequence = records[records.length - 1].dynamodb?.SequenceNumber ?? shard.lastSequence;
    }
    shard.iterator = out.NextShardIterator;
    if (!out.NextShardIterator) {
      shard.done = true;
      this.lastDescribe = 0; // look for its children
      return { read: records.length, more: true };
    }
    // A full batch: more records may be waiting. A shorter one has read the shard up to now.
    return { read: records.length, more: records.length >= this.batchSize };
  }

  private async deliver(records: Array<Record<string, any>>, shardId: string): Promise<void> {
    let batch = records;
    for (let attempt = 0; !this.stopped; attempt++) {
      let failedAt: string | undefined;
      let failure = '';
      try {
        const out = (await this.services.invoke(this.functionName, { Records: batch })) as BatchResponse | null;
        failedAt = out?.batchItemFailures?.[0]?.itemIdentifier;
        if (failedAt) failure = `item ${failedAt} reported as failed`;
      } catch (err) {
        failedAt = batch[0].dynamodb.SequenceNumber;
        failure = `${(err as Error).name}: ${(err as Error).message}`;
      }
      if (!failedAt) {
        this.delivered += batch.length;
        return;
      }
      const index = batch.findIndex((r) => r.dynamodb.SequenceNumber === failedAt);
      batch = batch.slice(Math.max(0, index));
      this.report(`batch:${shardId}`, 'StreamBatchFailed', `${this.functionName} failed on a batch of ${batch.length} record(s) from ${this.table} (attempt ${attempt + 1}): ${failure}`);
      if (this.retries >= 0 && attempt >= this.retries) {
        if (this.onFailure) {
          this.services.sendToDestination(
            this.onFailure,
            JSON.stringify({
              requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: attempt + 1 },
              responseContext: { functionError: 'Unhandled' },
              version: '1.0',
              timestamp: new Date().toISOString(),
              DDBStreamBatchInfo: {
                shardId,
                startSequenceNumber: batch[0].dynamodb.SequenceNumber,
                endSequenceNumber: batch[batch.length - 1].dynamodb.SequenceNumber,
                batchSize: batch.length,
                streamArn: this.streamArn,
              },
            }),
          );
        } else {
          this.report(`drop:${shardId}`, 'StreamBatchDropped', `${batch.length} record(s) of ${this.table} skipped after ${attempt + 1} attempts and no on-failure destination`, true);
        }
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
    }
  }

  /** Reports a problem on the console and in errors.log; the same problem again at most once a minute. */
  private report(key: string, kind: string, message: string, always = false): void {
    const last = this.lastReport.get(key) ?? 0;
    if (!always && Date.now() - last < REPORT_EVERY_MS) return;
    this.lastReport.set(key, Date.now());
    this.services.errors.report({ kind, resource: this.resource, message });
  }
}

export class DynamoDbStreams {
  public readonly mappings: StreamMapping[] = [];

  constructor(private readonly services: StreamServices) {}

  /** Creates a poller for every event source mapping on a table stream; start() starts them. */
  public configure(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::EventSourceMapping')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const source = String(props.EventSourceArn);
      const table = /table\/([^/]+)\/stream/.exec(source)?.[1];
      if (!table) continue;
      const mapping = new StreamMapping(r.path, table, String(props.FunctionName), props, this.services);
      this.mappings.push(mapping);
      this.services.log(`  ${mapping.describe()}`);
    }
  }

  public start(): void {
    for (const m of this.mappings) m.start();
  }

  /**
   * Tells every mapping (or those on the given tables) to poll now, or right after the read in progress: called
   * when a handler's DynamoDB write or a state machine task wrote to them. Only when the next poll happens
   * changes; what is read, and in which order, does not.
   */
  public nudge(tableNames?: readonly string[]): void {
    for (const m of this.mappings) if (!tableNames || tableNames.includes(m.table)) m.nudge();
  }

  /** Whether any mapping is delivering records right now. */
  public get busy(): boolean {
    return this.mappings.some((m) => m.busy);
  }

  public async stop(): Promise<void> {
    await Promise.all(this.mappings.map((m) => m.stop()));
  }
}

/**
 * A Streams API record in the shape Lambda hands to a stream handler (and that filter patterns match):
 * ApproximateCreationDateTime in whole epoch seconds (the API's JSON has epoch seconds; an SDK client's output has
 * a Date), binary attributes as base64 text, and an empty map, which DynamoDB Local's Streams API hands back as
 * `{}`, as `{ "M": {} }`.
 */
export function toLambdaRecord(record: StreamRecord, streamArn?: string): Record<string, any> {
  const fix = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(fix);
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 0) return { M: {} }; // an empty map comes back as {} through the Streams API
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, fix(x)]));
  };
  const image = (img: unknown) => (img ? Object.fromEntries(Object.entries(img as Record<string, unknown>).map(([k, v]) => [k, fix(v)])) : undefined);
  const d = record.dynamodb as Record<string, any> | undefined;
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion,
    eventSource: 'aws:dynamodb',
    // Lambda names the stream in every record (a handler reading several tables tells them apart by it).
    ...(streamArn ? { eventSourceARN: streamArn } : {}),
    awsRegion: LOCAL_REGION,
    dynamodb: {
      ...d,
      ApproximateCreationDateTime: creationSeconds(d?.ApproximateCreationDateTime),
      NewImage: image(d?.NewImage),
      OldImage: image(d?.OldImage),
    },
  };
}

function creationSeconds(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return Math.floor(value);
  const ms = new Date(value as string | Date).getTime();
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}
