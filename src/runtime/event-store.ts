import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { canonicalJson, sha256 } from './canonical-json';
import { envelopeFromItem, type EventEnvelope, type EventMetadata, type NewEvent } from './envelope';
import {
  AggregateTypeMismatchError,
  ConcurrencyError,
  EventStoreValidationError,
  IdempotencyKeyReuseError,
  StreamContentionError,
} from './errors';
import { EventStoreSchema as S, aggregateListKey, domainKeyPrefix, isDomainKey, streamKey } from './event-store-schema';
import type { JsonObject } from './json';
import {
  MAX_ITEM_BYTES,
  MAX_TRANSACTION_ACTIONS,
  MAX_TRANSACTION_BYTES,
  ProblemList,
  checkId,
  checkJson,
  checkName,
  checkPositiveInteger,
  describe,
  isPlainObject,
  itemSize,
} from './validation';

/**
 * An idempotency key built from several parts (command, user, client key, ...), unambiguous whatever the parts
 * hold: each part is JSON-encoded (length-delimited) and the whole is hashed, so `('u', 'x:K1')` and
 * `('u:x', 'K1')` never meet, and the key always fits the store's limits.
 */
export function idempotencyScope(...parts: ReadonlyArray<string | number | null>): string {
  return `scope-${sha256(JSON.stringify(parts))}`;
}

/** Append only if the aggregate has no event yet. */
export const NO_STREAM = 'no-stream' as const;
/** Append at the end of the stream, whatever its version (no concurrency check). */
export const ANY = 'any' as const;
/**
 * The version the caller expects the stream to be at: the number of its last event (0 = no event yet),
 * `'no-stream'`, or `'any'`.
 */
export type ExpectedVersion = number | typeof NO_STREAM | typeof ANY;

export interface EventStoreOptions {
  /** The event store table (EventStoreTable's `tableName`). */
  readonly tableName: string;
  /**
   * The domain writing through this client: its events get `source: skafu.<domain>`.
   * @default none: the client can read but not append
   */
  readonly domain?: string;
  /**
   * A DynamoDB client or document client.
   * @default a new DynamoDBClient from the environment (AWS_ENDPOINT_URL_DYNAMODB is honoured)
   */
  readonly client?: DynamoDBClient | DynamoDBDocumentClient;
  /**
   * How long an idempotency key is remembered, in seconds.
   * @default 86400 (24 hours)
   */
  readonly idempotencyTtlSeconds?: number;
  /**
   * How long an `expectedVersion: 'any'` append keeps retrying (re-reading the version, with jittered backoff)
   * after losing races, before it throws StreamContentionError. An append's own `deadline` wins.
   * @default 5000 ms
   */
  readonly anyVersionTimeBudgetMs?: number;
  /** @default () => new Date() */
  readonly clock?: () => Date;
  /**
   * How many streams this client remembers the last event it read or wrote of (its sequence and aggregate type).
   * Events are immutable, never deleted and gap-free, so an event this client has seen still exists: an append
   * at a remembered (or earlier) version needs no check that the stream reached it, and is one conditional
   * PutItem. Any other numeric `expectedVersion` is checked inside the write (a TransactWriteItems with a
   * ConditionCheck on the expected event). 0 turns the memory off. The oldest stream is forgotten first.
   * @default 10000
   */
  readonly knownPositions?: number;
}

export interface AppendOptions {
  /** The version the stream must be at for the append to succeed. */
  readonly expectedVersion: ExpectedVersion;
  /** The aggregate's type, e.g. `Project`; recorded on every event and in the aggregate index. */
  readonly aggregateType: string;
  /**
   * A key (for example the command id or an `Idempotency-Key` header) that makes the append idempotent: an
   * append retried with the same key within the idempotency window writes nothing and returns the first
   * result. The key is global, not per aggregate, so a retried create with a newly generated aggregate id is
   * still recognised; the same key with different events is refused with IdempotencyKeyReuseError.
   * An idempotent append holds at most 99 events (DynamoDB's 100-action transaction limit, minus the record).
   */
  readonly idempotencyKey?: string;
  /**
   * What identifies the request for the idempotency check: a retry with the same key must carry the same
   * fingerprint. Give one when the events hold values generated per attempt (a new id, a time), for example a
   * hash of the HTTP request.
   * @default a hash of the aggregate type and the events' types, versions and data
   */
  readonly requestFingerprint?: string;
  /** @default a random UUID */
  readonly correlationId?: string;
  /** @default the correlation id */
  readonly causationId?: string;
  /** Applied to every event; an event's own metadata wins. */
  readonly metadata?: EventMetadata;
  /**
   * Set when `expectedVersion` is a version that a load of this very stream returned (as AggregateRepository
   * does). Kept for compatibility: it changes nothing. Every numeric `expectedVersion` is checked in the write
   * itself (the event at `expectedVersion` must exist and be of `aggregateType`), unless this client has itself
   * read or written that event (see EventStoreOptions.knownPositions), so a loaded version costs no extra check.
   * @default false
   */
  readonly expectedVersionFromLoad?: boolean;
  /**
   * For `expectedVersion: 'any'`: the time (epoch milliseconds) by which the append must have landed; past it,
   * StreamContentionError. A handler passes its remaining time minus a margin.
   * @default now + the client's anyVersionTimeBudgetMs
   */
  readonly deadline?: number;
}

export interface AppendResult {
  readonly aggregateId: string;
  readonly aggregateType: string;
  /** The committed events, as stored. */
  readonly events: EventEnvelope[];
  readonly firstSequence: number;
  readonly lastSequence: number;
  /** The stream's version after the append: pass it as the next `expectedVersion`. */
  readonly nextExpectedVersion: number;
  /** True when nothing was written because the idempotency key had been used for this request before. */
  readonly idempotentReplay: boolean;
}

/** Which domain's stream to read, and what type it must be. */
export interface StreamOptions {
  /**
   * The domain whose stream is read. Only a client created without a domain (a platform-wide reader such as the
   * republisher) may name one; a domain's client reads only its own domain.
   * @default the client's domain
   */
  readonly domain?: string;
  /**
   * The aggregate type the stream must belong to: a stream of another type is refused with
   * AggregateTypeMismatchError.
   * @default no check
   */
  readonly aggregateType?: string;
}

export interface LoadOptions extends StreamOptions {
  /** @default 1 */
  readonly fromSequence?: number;
  /** Inclusive. @default the end of the stream */
  readonly toSequence?: number;
}

export interface Snapshot<TState extends JsonObject = JsonObject> {
  readonly aggregateId: string;
  readonly aggregateType: string;
  /** The stream version (last event sequence) the state reflects. */
  readonly version: number;
  /** The version of the reducer that built the state: a snapshot is only used by the same reducer version. */
  readonly reducerVersion: string;
  readonly state: TState;
  readonly createdAt: string;
}

export interface ListAggregatesOptions {
  readonly aggregateType: string;
  /** @default the client's domain (see StreamOptions.domain) */
  readonly domain?: string;
  /** @default 100 */
  readonly limit?: number;
  /** The `nextToken` of the previous page. */
  readonly nextToken?: string;
  /** Newest first. @default false */
  readonly newestFirst?: boolean;
}

export interface AggregateSummary {
  readonly aggregateId: string;
  readonly aggregateType: string;
  readonly domain: string;
  /** The stream's stored partition key (`<domain>#<aggregateId>`): use it as is, never rebuild it. */
  readonly streamId: string;
  /** The timestamp of the aggregate's first event. */
  readonly createdAt: string;
}

export interface ListAggregatesResult {
  readonly aggregates: AggregateSummary[];
  /**
   * Present when there may be more: ask for the next page even when this one listed none (an index entry of
   * another domain's stream is left out of a page). Opaque.
   */
  readonly nextToken?: string;
}

interface IdempotencyRecord {
  readonly fingerprint: string;
  readonly aggregateId: string;
  readonly aggregateType: string;
  readonly firstSequence: number;
  readonly lastSequence: number;
}

/**
 * `exists`: an event's position was already taken (so, streams having no gap, the position after the base is);
 * `contended`: a concurrent transaction touched an item, nothing is known about the positions.
 */
type WriteOutcome = 'written' | 'exists' | 'contended' | 'idempotent' | 'unreached';

/** The event an append's transaction checks: it must exist and be of the stream's aggregate type. */
interface ExpectedEventCheck {
  readonly streamId: string;
  readonly version: number;
  readonly aggregateType: string;
}

const MAX_ID_BYTES = 1024;
const MAX_EVENT_TYPE_LENGTH = 128; // EventBridge's detail-type limit
const CONDITION_NEW_EVENT = 'attribute_not_exists(#seq)';

/**
 * The event store client: appends with optimistic concurrency, loads streams, keeps snapshots and lists
 * aggregates, against the table of an `EventStoreTable`.
 *
 * Every request is validated before anything is written; a rejected request throws EventStoreValidationError
 * listing every problem with its path. A lost race throws ConcurrencyError.
 */
export class EventStore {
  /** Reads the table and domain from the environment the Skafu constructs set on a handler. */
  public static fromEnvironment(options: Partial<EventStoreOptions> = {}): EventStore {
    const tableName = options.tableName ?? process.env.SKAFU_EVENT_STORE_TABLE;
    const domain = options.domain ?? process.env.SKAFU_DOMAIN;
    if (!tableName) {
      throw new Error('EventStore.fromEnvironment needs SKAFU_EVENT_STORE_TABLE (or the tableName option)');
    }
    return new EventStore({ ...options, tableName, domain });
  }

  public readonly tableName: string;
  /** `skafu.<domain>`, or undefined for a read-only client. */
  public readonly source?: string;
  /** The domain this client appends to and reads, or undefined for a platform-wide read-only client. */
  public readonly domain?: string;
  private readonly doc: DynamoDBDocumentClient;
  private readonly idempotencyTtlSeconds: number;
  private readonly anyVersionTimeBudgetMs: number;
  private readonly clock: () => Date;
  /** streamId -> the last event this client read or wrote: it exists, and so does every earlier one. */
  private readonly known = new Map<string, { readonly version: number; readonly aggregateType: string }>();
  private readonly knownLimit: number;

  constructor(options: EventStoreOptions) {
    const problems = new ProblemList();
    checkId(problems, 'tableName', options.tableName, { maxLength: 255 });
    if (options.domain !== undefined) checkName(problems, 'domain', options.domain, 64);
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    this.tableName = options.tableName;
    this.domain = options.domain;
    this.source = options.domain === undefined ? undefined : `skafu.${options.domain}`;
    const client = options.client ?? new DynamoDBClient({});
    this.doc =
      client instanceof DynamoDBDocumentClient
        ? client
        : DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.idempotencyTtlSeconds = options.idempotencyTtlSeconds ?? 24 * 60 * 60;
    this.anyVersionTimeBudgetMs = options.anyVersionTimeBudgetMs ?? 5000;
    this.clock = options.clock ?? (() => new Date());
    this.knownLimit = Math.max(0, Math.floor(options.knownPositions ?? 10_000));
  }

  /**
   * Appends events to an aggregate's stream, atomically: all of them or none.
   *
   * @throws EventStoreValidationError before any write when the request is malformed
   * The stream's aggregate type is fixed by its first event: an append of another type is refused before any
   * write. The stream lives in this client's domain: another domain's stream of the same id is another stream.
   *
   * @throws EventStoreValidationError before any write when the request is malformed
   * @throws AggregateTypeMismatchError when the stream belongs to another aggregate type
   * @throws ConcurrencyError when the stream is not at a numeric or 'no-stream' `expectedVersion`
   * @throws StreamContentionError when an 'any' append keeps losing races until its deadline
   * @throws IdempotencyKeyReuseError when the idempotency key was used for different events
   */
  public async append(aggregateId: string, events: ReadonlyArray<NewEvent>, options: AppendOptions): Promise<AppendResult> {
    this.validateAppend(aggregateId, events, options);
    const domain = this.domain!;
    const deadline = options.deadline ?? Date.now() + this.anyVersionTimeBudgetMs;
    const fingerprint = options.idempotencyKey ? options.requestFingerprint ?? this.fingerprint(options.aggregateType, events) : undefined;
    if (options.idempotencyKey && fingerprint) {
      const replay = await this.replayIdempotent(options.idempotencyKey, fingerprint);
      if (replay) return replay;
    }

    const expected = options.expectedVersion;
    // After an 'any' append found a position taken, event N+1 exists (streams have no gap) and has the stream's
    // type (checked when the stream was read non-empty), so the next attempt goes to N+2 without a read. After a
    // mere transaction conflict nothing is known: the version is read again.
    let nextBase: number | undefined;
    for (let attempt = 0; ; attempt++) {
      let current: number;
      let check: ExpectedEventCheck | undefined;
      if (nextBase !== undefined) {
        current = nextBase;
      } else if (typeof expected === 'number' && expected > 0 && !this.isKnown(domain, aggregateId, expected, options.aggregateType)) {
        // Without a check an append at N+1 onto a shorter stream would leave a gap: the write checks event N.
        current = expected;
        check = { streamId: streamKey(domain, aggregateId), version: expected, aggregateType: options.aggregateType };
      } else {
        current = await this.resolveBaseVersion(domain, aggregateId, options.aggregateType, expected);
      }
      const envelopes = this.buildEnvelopes(aggregateId, events, options, current);
      const items = envelopes.map((e) => this.eventItem(domain, e));
      const idempotencyItem =
        options.idempotencyKey && fingerprint
          ? this.idempotencyItem(domain, options.idempotencyKey, {
            fingerprint,
            aggregateId,
            aggregateType: options.aggregateType,
            firstSequence: current + 1,
            lastSequence: current + events.length,
          })
          : undefined;
      this.checkSizes(items, idempotencyItem);
      if (check && !fitsWithCheck(items, idempotencyItem)) {
        // No room left in one transaction for the check (100 actions, 4 MB): read the expected event first.
        await this.resolveBaseVersion(domain, aggregateId, options.aggregateType, expected);
        check = undefined;
      }

      const outcome = await this.write(items, idempotencyItem, check);
      if (outcome === 'unreached') throw await this.conflict(domain, aggregateId, options.aggregateType, expected);
      if (outcome === 'written') {
        this.remember(domain, aggregateId, current + events.length, options.aggregateType);
        return {
          aggregateId,
          aggregateType: options.aggregateType,
          events: envelopes,
          firstSequence: current + 1,
          lastSequence: current + events.length,
          nextExpectedVersion: current + events.length,
          idempotentReplay: false,
        };
      }
      if (outcome === 'idempotent' && options.idempotencyKey && fingerprint) {
        const replay = await this.replayIdempotent(options.idempotencyKey, fingerprint);
        if (replay) return replay;
      }
      if (expected === ANY) {
        // 'any' asked for no concurrency check: a lost race is retried with exponential backoff and full jitter
        // (so that the losers spread out instead of colliding again in lockstep) until the deadline. A stream that was empty is read again: the
        // winner of its first event fixed its type.
        nextBase = outcome === 'exists' && current > 0 ? current + 1 : undefined;
        const pause = Math.random() * Math.min(400, 10 * 2 ** Math.min(attempt, 6)); // full jitter, capped
        if (Date.now() + pause < deadline) {
          await sleep(pause);
          continue;
        }
        throw new StreamContentionError(aggregateId, attempt + 1, 1);
      }
      throw await this.conflict(domain, aggregateId, options.aggregateType, expected);
    }
  }

  /**
   * Loads an aggregate's events in sequence order, strongly consistent, following every page.
   * @throws AggregateTypeMismatchError when `aggregateType` is given and the stream belongs to another type
   */
  public async load(aggregateId: string, options: LoadOptions = {}): Promise<EventEnvelope[]> {
    const problems = new ProblemList();
    checkId(problems, 'aggregateId', aggregateId, { maxLength: MAX_ID_BYTES, reservedPrefix: S.RESERVED_PREFIX });
    const domain = this.readDomain(problems, options);
    if (options.aggregateType !== undefined) checkName(problems, 'aggregateType', options.aggregateType, 128);
    const from = options.fromSequence ?? 1;
    checkPositiveInteger(problems, 'fromSequence', from);
    if (options.toSequence !== undefined) checkPositiveInteger(problems, 'toSequence', options.toSequence);
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    const items = await this.queryAll({
      TableName: this.tableName,
      ConsistentRead: true,
      KeyConditionExpression:
        options.toSequence === undefined ? '#pk = :pk AND #seq >= :from' : '#pk = :pk AND #seq BETWEEN :from AND :to',
      ExpressionAttributeNames: { '#pk': S.PARTITION_KEY, '#seq': S.SORT_KEY },
      ExpressionAttributeValues: {
        ':pk': streamKey(domain!, aggregateId),
        ':from': from,
        ...(options.toSequence === undefined ? {} : { ':to': options.toSequence }),
      },
    });
    const events = items.map(envelopeFromItem);
    const foreign = options.aggregateType === undefined ? undefined : events.find((e) => e.aggregateType !== options.aggregateType);
    if (foreign) throw new AggregateTypeMismatchError(aggregateId, options.aggregateType!, foreign.aggregateType);
    const last = events[events.length - 1];
    if (last) this.remember(domain!, aggregateId, last.eventSequence, last.aggregateType);
    return events;
  }

  /**
   * The stream's version: the sequence of its last event, 0 when it has none. Strongly consistent.
   * @throws AggregateTypeMismatchError when `aggregateType` is given and the stream belongs to another type
   */
  public async readVersion(aggregateId: string, options: StreamOptions = {}): Promise<number> {
    const problems = new ProblemList();
    checkId(problems, 'aggregateId', aggregateId, { maxLength: MAX_ID_BYTES, reservedPrefix: S.RESERVED_PREFIX });
    const domain = this.readDomain(problems, options);
    if (options.aggregateType !== undefined) checkName(problems, 'aggregateType', options.aggregateType, 128);
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    const head = await this.readHead(domain!, aggregateId);
    if (head.type !== undefined && options.aggregateType !== undefined && head.type !== options.aggregateType) {
      throw new AggregateTypeMismatchError(aggregateId, options.aggregateType, head.type);
    }
    return head.version;
  }

  /**
   * Saves a snapshot of an aggregate's state at `version`, for `reducerVersion`, in this client's domain. The
   * event at `version` must exist and belong to the snapshot's aggregate type. Saving again at the same version
   * replaces it.
   * @throws AggregateTypeMismatchError when the stream belongs to another aggregate type
   */
  public async saveSnapshot(snapshot: Omit<Snapshot, 'createdAt'>): Promise<Snapshot> {
    const problems = new ProblemList();
    if (this.domain === undefined) problems.add('domain', 'this EventStore was created without a domain; snapshots need one');
    checkId(problems, 'aggregateId', snapshot.aggregateId, { maxLength: MAX_ID_BYTES, reservedPrefix: S.RESERVED_PREFIX });
    checkName(problems, 'aggregateType', snapshot.aggregateType, 128);
    checkReducerVersion(problems, snapshot.reducerVersion);
    checkPositiveInteger(problems, 'version', snapshot.version);
    checkJson(problems, 'state', snapshot.state);
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    const full: Snapshot = { ...snapshot, createdAt: this.clock().toISOString() };
    // The partition key holds the reserved snapshot key; the aggregate's own id travels as snapshotOf.
    const item = {
      aggregateType: full.aggregateType,
      reducerVersion: full.reducerVersion,
      state: full.state,
      createdAt: full.createdAt,
      snapshotOf: full.aggregateId,
      [S.PARTITION_KEY]: snapshotPartition(this.domain!, snapshot.reducerVersion, snapshot.aggregateId),
      [S.SORT_KEY]: snapshot.version,
      [S.ITEM_TYPE_ATTRIBUTE]: S.ITEM_TYPE_SNAPSHOT,
    };
    const size = itemSize(item);
    if (size > MAX_ITEM_BYTES) {
      throw new EventStoreValidationError([
        { path: 'state', message: `the snapshot item is ${size} bytes, over DynamoDB's ${MAX_ITEM_BYTES}-byte item limit` },
      ]);
    }
    const atVersion = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [S.PARTITION_KEY]: streamKey(this.domain!, snapshot.aggregateId), [S.SORT_KEY]: snapshot.version },
        ConsistentRead: true,
        ProjectionExpression: '#seq, #type',
        ExpressionAttributeNames: { '#seq': S.SORT_KEY, '#type': 'aggregateType' },
      }),
    );
    if (!atVersion.Item) {
      throw new EventStoreValidationError([
        { path: 'version', message: `aggregate '${snapshot.aggregateId}' has no event ${snapshot.version} to snapshot` },
      ]);
    }
    if (atVersion.Item.aggregateType !== snapshot.aggregateType) {
      throw new AggregateTypeMismatchError(snapshot.aggregateId, snapshot.aggregateType, String(atVersion.Item.aggregateType));
    }
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
    return full;
  }

  /**
   * The newest snapshot of an aggregate made by `reducerVersion`, if any. Snapshots of other versions are ignored.
   * @throws AggregateTypeMismatchError when `aggregateType` is given and the snapshot is of another type
   */
  public async loadSnapshot<TState extends JsonObject = JsonObject>(
    aggregateId: string,
    reducerVersion: string,
    options: StreamOptions = {},
  ): Promise<Snapshot<TState> | undefined> {
    const problems = new ProblemList();
    checkId(problems, 'aggregateId', aggregateId, { maxLength: MAX_ID_BYTES, reservedPrefix: S.RESERVED_PREFIX });
    checkReducerVersion(problems, reducerVersion);
    const domain = this.readDomain(problems, options);
    if (options.aggregateType !== undefined) checkName(problems, 'aggregateType', options.aggregateType, 128);
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        ConsistentRead: true,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': S.PARTITION_KEY },
        ExpressionAttributeValues: { ':pk': snapshotPartition(domain!, reducerVersion, aggregateId) },
        ScanIndexForward: false,
        Limit: 1,
      }),
    );
    const item = out.Items?.[0];
    if (!item) return undefined;
    if (options.aggregateType !== undefined && item.aggregateType !== options.aggregateType) {
      throw new AggregateTypeMismatchError(aggregateId, options.aggregateType, String(item.aggregateType));
    }
    return {
      aggregateId: item.snapshotOf as string,
      aggregateType: item.aggregateType as string,
      version: item[S.SORT_KEY] as number,
      reducerVersion: item.reducerVersion as string,
      state: item.state as TState,
      createdAt: item.createdAt as string,
    };
  }

  /**
   * Lists the aggregates of a type, oldest first (or newest first), a page at a time, from the sparse
   * aggregate index. Eventually consistent: an aggregate created a moment ago may be missing.
   */
  public async listAggregates(options: ListAggregatesOptions): Promise<ListAggregatesResult> {
    const problems = new ProblemList();
    checkName(problems, 'aggregateType', options.aggregateType, 128);
    const domain = this.readDomain(problems, options);
    const listKey = aggregateListKey(domain ?? '', options.aggregateType);
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) problems.add('limit', 'must be an integer from 1 to 1000');
    let startKey: Record<string, unknown> | undefined;
    if (options.nextToken !== undefined) {
      startKey = decodeToken(options.nextToken);
      if (!startKey || startKey[S.AGGREGATE_INDEX_PARTITION_KEY] !== listKey) {
        problems.add('nextToken', 'is not a token this listing returned');
      }
    }
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: S.AGGREGATE_INDEX_NAME,
        KeyConditionExpression: '#type = :type',
        ExpressionAttributeNames: { '#type': S.AGGREGATE_INDEX_PARTITION_KEY },
        ExpressionAttributeValues: { ':type': listKey },
        ScanIndexForward: !options.newestFirst,
        Limit: limit,
        ExclusiveStartKey: startKey,
      }),
    );
    return {
      // Only the domain's own streams: an index entry under another domain's key was written outside the store.
      aggregates: (out.Items ?? []).filter((item) => isDomainKey(item[S.PARTITION_KEY], domain!)).map((item) => {
        const sortKey = String(item[S.AGGREGATE_INDEX_SORT_KEY]);
        const cut = sortKey.indexOf('#'); // timestamps hold no '#'; the id after it may
        return {
          aggregateId: sortKey.slice(cut + 1),
          aggregateType: options.aggregateType,
          domain: domain!,
          streamId: item[S.PARTITION_KEY] as string,
          createdAt: sortKey.slice(0, cut),
        };
      }),
      nextToken: out.LastEvaluatedKey ? encodeToken(out.LastEvaluatedKey) : undefined,
    };
  }

  // ---------------------------------------------------------------------------------------------------------

  private validateAppend(aggregateId: string, events: ReadonlyArray<NewEvent>, options: AppendOptions): void {
    const problems = new ProblemList();
    if (this.source === undefined) problems.add('domain', 'this EventStore was created without a domain; appends need one');
    checkId(problems, 'aggregateId', aggregateId, { maxLength: MAX_ID_BYTES, reservedPrefix: S.RESERVED_PREFIX });
    if (!isPlainObject(options)) {
      throw new EventStoreValidationError([{ path: 'options', message: 'append needs options with expectedVersion and aggregateType' }]);
    }
    checkName(problems, 'aggregateType', options.aggregateType, 128);
    const ev = options.expectedVersion;
    if (!(ev === NO_STREAM || ev === ANY || (typeof ev === 'number' && Number.isSafeInteger(ev) && ev >= 0))) {
      problems.add('expectedVersion', `must be an integer >= 0, '${NO_STREAM}' or '${ANY}', got ${describe(ev)}`);
    }
    if (options.idempotencyKey !== undefined) checkId(problems, 'idempotencyKey', options.idempotencyKey, { maxLength: 256 });
    for (const key of ['correlationId', 'causationId'] as const) {
      if (options[key] !== undefined) checkId(problems, key, options[key], { maxLength: 256 });
    }
    if (options.metadata !== undefined) checkJson(problems, 'metadata', options.metadata);

    const limit = options.idempotencyKey === undefined ? MAX_TRANSACTION_ACTIONS : MAX_TRANSACTION_ACTIONS - 1;
    if (!Array.isArray(events) || events.length === 0) {
      problems.add('events', 'must be a non-empty array');
    } else if (events.length > limit) {
      problems.add(
        'events',
        `${events.length} events in one commit; at most ${limit} commit atomically` +
          (options.idempotencyKey === undefined ? '' : ' with an idempotency key (one transaction action holds the key)'),
      );
    } else {
      const eventIds = new Set<string>();
      events.forEach((event, i) => {
        const p = `events[${i}]`;
        if (!isPlainObject(event)) {
          problems.add(p, `must be an object, got ${describe(event)}`);
          return;
        }
        checkName(problems, `${p}.eventType`, event.eventType, MAX_EVENT_TYPE_LENGTH);
        if (event.eventVersion !== undefined) checkPositiveInteger(problems, `${p}.eventVersion`, event.eventVersion);
        if (event.eventId !== undefined) {
          const eventId = event.eventId as string;
          checkId(problems, `${p}.eventId`, eventId, { maxLength: 128 });
          if (eventIds.has(eventId)) problems.add(`${p}.eventId`, 'is used twice in this commit');
          eventIds.add(eventId);
        }
        checkJson(problems, `${p}.data`, event.data);
        if (event.metadata !== undefined) checkJson(problems, `${p}.metadata`, event.metadata);
        if (event.eventSequence !== undefined) {
          checkPositiveInteger(problems, `${p}.eventSequence`, event.eventSequence);
          const first = events[0].eventSequence;
          if (typeof first === 'number' && event.eventSequence !== first + i) {
            problems.add(`${p}.eventSequence`, `sequence gap: expected ${first + i} after ${first + i - 1}, got ${event.eventSequence}`);
          }
          if (typeof ev === 'number' && event.eventSequence !== ev + i + 1) {
            problems.add(
              `${p}.eventSequence`,
              `sequence gap: expectedVersion ${ev} puts this event at ${ev + i + 1}, got ${event.eventSequence}`,
            );
          }
        } else if (events.some((e) => isPlainObject(e) && e.eventSequence !== undefined)) {
          problems.add(`${p}.eventSequence`, 'give every event of the commit a sequence, or none');
        }
      });
    }
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
  }

  /**
   * The version to append after, checking numeric expectations and the stream's type against the store.
   * Events are immutable and never deleted, and every event of a stream has the type of its first one, so what
   * these reads see still holds at write time (the write's own condition catches a newer event).
   */
  private async resolveBaseVersion(domain: string, aggregateId: string, aggregateType: string, expected: ExpectedVersion): Promise<number> {
    if (expected === NO_STREAM || expected === 0) return 0; // the write's condition refuses an existing stream
    if (expected === ANY) {
      const head = await this.readHead(domain, aggregateId);
      if (head.type !== undefined && head.type !== aggregateType) throw new AggregateTypeMismatchError(aggregateId, aggregateType, head.type);
      return head.version;
    }
    // Without this read an append at N+1 onto a shorter stream would leave a gap. (Used only when the check does
    // not fit into the write's transaction, or the version is known to this client.)
    if (this.isKnown(domain, aggregateId, expected, aggregateType)) return expected;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [S.PARTITION_KEY]: streamKey(domain, aggregateId), [S.SORT_KEY]: expected },
        ConsistentRead: true,
        ProjectionExpression: '#seq, #type',
        ExpressionAttributeNames: { '#seq': S.SORT_KEY, '#type': 'aggregateType' },
      }),
    );
    if (!out.Item) throw await this.conflict(domain, aggregateId, aggregateType, expected);
    if (out.Item.aggregateType !== aggregateType) throw new AggregateTypeMismatchError(aggregateId, aggregateType, String(out.Item.aggregateType));
    return expected;
  }

  /** The error for a refused append: a type mismatch when the stream is another type's, else a conflict. */
  private async conflict(domain: string, aggregateId: string, aggregateType: string, expected: ExpectedVersion): Promise<Error> {
    const head = await this.readHead(domain, aggregateId);
    if (head.type !== undefined && head.type !== aggregateType) return new AggregateTypeMismatchError(aggregateId, aggregateType, head.type);
    return new ConcurrencyError(aggregateId, expected, head.version);
  }

  /** True when this client has read or written event `version` (or a later one) of the stream, of `aggregateType`. */
  private isKnown(domain: string, aggregateId: string, version: number, aggregateType: string): boolean {
    const seen = this.known.get(streamKey(domain, aggregateId));
    return seen !== undefined && seen.aggregateType === aggregateType && version <= seen.version;
  }

  /** Remembers that event `version` of the stream exists (read or written by this client), with its type. */
  private remember(domain: string, aggregateId: string, version: number, aggregateType: string): void {
    if (this.knownLimit === 0) return;
    const key = streamKey(domain, aggregateId);
    const seen = this.known.get(key);
    if (seen && seen.version >= version) return;
    this.known.delete(key); // re-inserted last: the Map's order is the forgetting order
    this.known.set(key, { version, aggregateType });
    if (this.known.size > this.knownLimit) this.known.delete(this.known.keys().next().value!);
  }

  /** The last event's sequence and the stream's type (undefined when the stream has no event). */
  private async readHead(domain: string, aggregateId: string): Promise<{ version: number; type?: string }> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        ConsistentRead: true,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': S.PARTITION_KEY, '#seq': S.SORT_KEY, '#type': 'aggregateType' },
        ExpressionAttributeValues: { ':pk': streamKey(domain, aggregateId) },
        ProjectionExpression: '#seq, #type',
        ScanIndexForward: false,
        Limit: 1,
      }),
    );
    const last = out.Items?.[0];
    if (!last || typeof last[S.SORT_KEY] !== 'number') return { version: 0 };
    this.remember(domain, aggregateId, last[S.SORT_KEY] as number, String(last.aggregateType));
    return { version: last[S.SORT_KEY] as number, type: String(last.aggregateType) };
  }

  /** The domain a read names: the client's own, or (for a client without one) the `domain` option. */
  private readDomain(problems: ProblemList, options: { readonly domain?: string }): string | undefined {
    if (options.domain !== undefined) {
      checkName(problems, 'domain', options.domain, 64);
      if (this.domain !== undefined && options.domain !== this.domain) {
        problems.add('domain', `this client reads only its own domain '${this.domain}', not '${String(options.domain)}'`);
      }
      return options.domain;
    }
    if (this.domain === undefined) problems.add('domain', 'this EventStore was created without a domain: name the domain to read');
    return this.domain;
  }

  private buildEnvelopes(
    aggregateId: string,
    events: ReadonlyArray<NewEvent>,
    options: AppendOptions,
    current: number,
  ): EventEnvelope[] {
    const first = events[0].eventSequence;
    if (first !== undefined && first !== current + 1) {
      if (first > current + 1) {
        throw new EventStoreValidationError([
          { path: 'events[0].eventSequence', message: `sequence gap: the stream is at ${current}, so the next event is ${current + 1}, got ${first}` },
        ]);
      }
      throw new ConcurrencyError(aggregateId, first - 1, current);
    }
    const timestamp = this.clock().toISOString();
    const correlationId = options.correlationId ?? randomUUID();
    const causationId = options.causationId ?? correlationId;
    return events.map((event, i) => ({
      eventId: event.eventId ?? randomUUID(),
      eventType: event.eventType,
      eventVersion: event.eventVersion ?? 1,
      aggregateId,
      aggregateType: options.aggregateType,
      eventSequence: current + 1 + i,
      timestamp,
      correlationId,
      causationId,
      source: this.source!,
      data: event.data,
      metadata: { ...(options.metadata ?? {}), ...(event.metadata ?? {}) },
    }));
  }

  private eventItem(domain: string, envelope: EventEnvelope): Record<string, unknown> {
    const item: Record<string, unknown> = {
      [S.PARTITION_KEY]: streamKey(domain, envelope.aggregateId),
      ...envelope,
      [S.ITEM_TYPE_ATTRIBUTE]: S.ITEM_TYPE_EVENT,
    };
    if (envelope.eventSequence === 1) {
      item[S.AGGREGATE_INDEX_PARTITION_KEY] = aggregateListKey(domain, envelope.aggregateType);
      item[S.AGGREGATE_INDEX_SORT_KEY] = `${envelope.timestamp}#${envelope.aggregateId}`;
    }
    return item;
  }

  private idempotencyItem(domain: string, key: string, record: IdempotencyRecord): Record<string, unknown> {
    const now = this.clock();
    return {
      [S.PARTITION_KEY]: idempotencyPartition(domain, key),
      [S.SORT_KEY]: 0,
      [S.ITEM_TYPE_ATTRIBUTE]: S.ITEM_TYPE_IDEMPOTENCY,
      [S.TTL_ATTRIBUTE]: Math.floor(now.getTime() / 1000) + this.idempotencyTtlSeconds,
      createdAt: now.toISOString(),
      record,
    };
  }

  private checkSizes(items: Record<string, unknown>[], idempotencyItem?: Record<string, unknown>): void {
    const problems = new ProblemList();
    let total = idempotencyItem ? itemSize(idempotencyItem) : 0;
    items.forEach((item, i) => {
      const size = itemSize(item);
      total += size;
      if (size > MAX_ITEM_BYTES) {
        problems.add(`events[${i}]`, `the stored event is ${size} bytes, over DynamoDB's ${MAX_ITEM_BYTES}-byte item limit`);
      }
    });
    if (items.length + (idempotencyItem ? 1 : 0) > 1 && total > MAX_TRANSACTION_BYTES) {
      problems.add('events', `the commit is ${total} bytes, over DynamoDB's ${MAX_TRANSACTION_BYTES}-byte transaction limit`);
    }
    if (!problems.empty) throw new EventStoreValidationError(problems.problems);
  }

  private async write(
    items: Record<string, unknown>[],
    idempotencyItem?: Record<string, unknown>,
    check?: ExpectedEventCheck,
  ): Promise<WriteOutcome> {
    const names = { '#seq': S.SORT_KEY };
    // The check is the transaction's last action, so CancellationReasons keep their indexes for the items.
    const checkIndex = items.length + (idempotencyItem ? 1 : 0);
    try {
      if (items.length === 1 && !idempotencyItem && !check) {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: items[0],
            ConditionExpression: CONDITION_NEW_EVENT,
            ExpressionAttributeNames: names,
          }),
        );
        return 'written';
      }
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            ...items.map((Item) => ({
              Put: { TableName: this.tableName, Item, ConditionExpression: CONDITION_NEW_EVENT, ExpressionAttributeNames: names },
            })),
            ...(idempotencyItem
              ? [
                {
                  Put: {
                    TableName: this.tableName,
                    Item: idempotencyItem,
                    // A record past its TTL may not have been deleted yet: it no longer counts.
                    ConditionExpression: `${CONDITION_NEW_EVENT} OR #exp < :now`,
                    ExpressionAttributeNames: { ...names, '#exp': S.TTL_ATTRIBUTE },
                    ExpressionAttributeValues: { ':now': Math.floor(this.clock().getTime() / 1000) },
                  },
                },
              ]
              : []),
            ...(check
              ? [
                {
                  ConditionCheck: {
                    TableName: this.tableName,
                    Key: { [S.PARTITION_KEY]: check.streamId, [S.SORT_KEY]: check.version },
                    ConditionExpression: 'attribute_exists(#seq) AND #type = :type',
                    ExpressionAttributeNames: { '#seq': S.SORT_KEY, '#type': 'aggregateType' },
                    ExpressionAttributeValues: { ':type': check.aggregateType },
                  },
                },
              ]
              : []),
          ],
        }),
      );
      return 'written';
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'ConditionalCheckFailedException') return 'exists';
      if (name === 'TransactionConflictException') return 'contended';
      if (name === 'TransactionCanceledException') {
        const reasons = ((err as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? []).map((r) => r.Code);
        const onlyRetryable = reasons.every((c) => c === 'None' || c === 'ConditionalCheckFailed' || c === 'TransactionConflict');
        if (!onlyRetryable) throw err;
        // The stream never reached the expected event, or it is another type's: refused, whatever else failed.
        if (check && reasons[checkIndex] === 'ConditionalCheckFailed') return 'unreached';
        if (idempotencyItem && reasons[items.length] === 'ConditionalCheckFailed') return 'idempotent';
        // A TransactionConflict may hide a concurrent twin with the same key: the caller re-checks the record.
        if (idempotencyItem && reasons.includes('TransactionConflict')) return 'idempotent';
        return reasons.slice(0, items.length).includes('ConditionalCheckFailed') ? 'exists' : 'contended';
      }
      throw err;
    }
  }

  private fingerprint(aggregateType: string, events: ReadonlyArray<NewEvent>): string {
    // The aggregate id is left out on purpose: a retried create may generate a new one.
    return sha256(
      canonicalJson([aggregateType, events.map((e) => [e.eventType, e.eventVersion ?? 1, e.data, e.eventSequence ?? null])]),
    );
  }

  private async replayIdempotent(key: string, fingerprint: string): Promise<AppendResult | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [S.PARTITION_KEY]: idempotencyPartition(this.domain!, key), [S.SORT_KEY]: 0 },
        ConsistentRead: true,
      }),
    );
    const item = out.Item;
    if (!item || (item[S.TTL_ATTRIBUTE] as number) < Math.floor(this.clock().getTime() / 1000)) return undefined;
    const record = item.record as IdempotencyRecord;
    if (record.fingerprint !== fingerprint) throw new IdempotencyKeyReuseError(key);
    const events = await this.load(record.aggregateId, { fromSequence: record.firstSequence, toSequence: record.lastSequence });
    return {
      aggregateId: record.aggregateId,
      aggregateType: record.aggregateType,
      events,
      firstSequence: record.firstSequence,
      lastSequence: record.lastSequence,
      nextExpectedVersion: record.lastSequence,
      idempotentReplay: true,
    };
  }

  private async queryAll(input: QueryCommandInput): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey }));
      items.push(...(out.Items ?? []));
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return items;
  }
}

function checkReducerVersion(problems: ProblemList, value: unknown): void {
  if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(value)) {
    problems.add('reducerVersion', `must be 1-64 letters, digits or _ . : - (no '#'), got ${describe(value)}`);
  }
}

function snapshotPartition(domain: string, reducerVersion: string, aggregateId: string): string {
  return `${domainKeyPrefix(domain)}${S.RESERVED_PREFIX}snapshot#${reducerVersion}#${aggregateId}`;
}

/** Hashed: any key the API accepts fits DynamoDB's 2048-byte partition key, and no key can forge another's. */
function idempotencyPartition(domain: string, key: string): string {
  return `${domainKeyPrefix(domain)}${S.RESERVED_PREFIX}idempotency#${sha256(key)}`;
}

function encodeToken(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function decodeToken(token: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a ConditionCheck still fits into the append's transaction: DynamoDB allows 100 actions and 4 MB, and
 * the checked event (up to 400 KB) may count toward the size.
 */
function fitsWithCheck(items: Record<string, unknown>[], idempotencyItem?: Record<string, unknown>): boolean {
  const actions = items.length + (idempotencyItem ? 1 : 0) + 1;
  if (actions > MAX_TRANSACTION_ACTIONS) return false;
  const bytes = items.reduce((sum, item) => sum + itemSize(item), idempotencyItem ? itemSize(idempotencyItem) : 0);
  return bytes + MAX_ITEM_BYTES <= MAX_TRANSACTION_BYTES;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
