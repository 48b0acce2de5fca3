import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import type { EventEnvelope } from './envelope';

/** EventBridge's limit on one entry and on one PutEvents request, in bytes. */
export const MAX_PUT_EVENTS_BYTES = 256 * 1024;
/** EventBridge's limit on entries per PutEvents request. */
export const MAX_PUT_EVENTS_ENTRIES = 10;

/** Entry error codes worth retrying in place; anything else will not get better by itself. */
const RETRYABLE_CODES = new Set([
  'ThrottlingException',
  'InternalFailure',
  'InternalException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'NetworkingError',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
]);

export interface EventBusPublisherOptions {
  /**
   * The domain event bus name or ARN.
   * @default process.env.SKAFU_EVENT_BUS_NAME
   */
  readonly busName?: string;
  /** @default a new EventBridgeClient */
  readonly client?: EventBridgeClient;
  /**
   * How many times one event is tried (first try included) before it is reported undelivered.
   * @default 5
   */
  readonly maxAttempts?: number;
  /** First backoff after a failed wave; doubles each wave, with full jitter. @default 100 */
  readonly baseDelayMs?: number;
  /** @default 3000 */
  readonly maxDelayMs?: number;
  /** @default 4 PutEvents calls in flight (each holds distinct aggregates) */
  readonly concurrency?: number;
  /** @internal for tests */
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface UndeliveredEvent {
  readonly event: EventEnvelope;
  readonly errorCode: string;
  readonly errorMessage: string;
  readonly retryable: boolean;
  readonly attempts: number;
  /** Set when the event was held back because an earlier event of its aggregate could not be delivered. */
  readonly blockedBy?: { readonly aggregateId: string; readonly eventSequence: number };
}

/** The queue of an event's aggregate in one publish: its source (`skafu.<domain>`) and its id. */
function queueOf(event: EventEnvelope): string {
  return `${event.source}\u0000${event.aggregateId}`;
}

export interface PublishReport {
  /** Published, in the order they were accepted. */
  readonly published: EventEnvelope[];
  /** Published as a claim check (envelope without data and metadata) because the full event exceeds 256 KB. */
  readonly claimChecked: EventEnvelope[];
  readonly undelivered: UndeliveredEvent[];
  /** PutEvents calls made. */
  readonly calls: number;
}

/**
 * What the outbox puts in an EventBridge event's `detail`: the envelope, plus `timestampEpochSeconds`, the same
 * instant as `timestamp` in whole seconds since 1970 (Step Functions' JSONPath has no date functions, and
 * projections need it for TTL arithmetic).
 */
export interface PublishedEvent extends EventEnvelope {
  readonly timestampEpochSeconds: number;
}

/** What is published in place of an event too large for EventBridge: the envelope without data and metadata. */
export interface ClaimCheck {
  readonly dataOmitted: true;
  readonly reason: string;
  /** Where the full event lives: load it from the event store. */
  readonly aggregateId: string;
  readonly eventSequence: number;
}

/**
 * Publishes event envelopes to an EventBridge bus with PutEvents' semantics handled in full: at most 10 entries
 * and 256 KB per call, FailedEntryCount checked entry by entry, only failed entries retried (with exponential
 * backoff and jitter), and per-aggregate order kept across retries: each call holds at most one event per
 * aggregate, and an aggregate's next event is sent only after the previous one was accepted. An event that
 * cannot be delivered blocks the rest of its aggregate, which are reported undelivered too.
 *
 * Events over 256 KB are published as a claim check: the envelope with `data: {}`, `metadata: {}` and
 * `claimCheck` saying where the full event is (its aggregate and sequence in the event store).
 */
export class EventBusPublisher {
  private readonly client: EventBridgeClient;
  private readonly busName: string;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly concurrency: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: EventBusPublisherOptions = {}) {
    const busName = options.busName ?? process.env.SKAFU_EVENT_BUS_NAME;
    if (!busName) throw new Error('EventBusPublisher needs busName (or SKAFU_EVENT_BUS_NAME)');
    this.busName = busName;
    this.client = options.client ?? new EventBridgeClient({});
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 3000;
    this.concurrency = options.concurrency ?? 4;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** The PutEvents entry for an event (a claim check when the full event is over 256 KB). */
  public entryFor(event: EventEnvelope): { entry: PutEventsRequestEntry; size: number; claimChecked: boolean } {
    const published: PublishedEvent = { ...event, timestampEpochSeconds: Math.floor(Date.parse(event.timestamp) / 1000) };
    const full = this.entry(event, JSON.stringify(published));
    if (full.size <= MAX_PUT_EVENTS_BYTES) return { ...full, claimChecked: false };
    const claimCheck: ClaimCheck = {
      dataOmitted: true,
      reason: `the event is ${full.size} bytes, over EventBridge's ${MAX_PUT_EVENTS_BYTES}-byte limit; load it from the event store`,
      aggregateId: event.aggregateId,
      eventSequence: event.eventSequence,
    };
    const slim = this.entry(event, JSON.stringify({ ...published, data: {}, metadata: {}, claimCheck }));
    return { ...slim, claimChecked: true };
  }

  /** Publishes events in per-aggregate order; never throws for delivery failures (see the report). */
  public async publish(events: ReadonlyArray<EventEnvelope>): Promise<PublishReport> {
    // One queue per aggregate, in sequence order, duplicates dropped; aggregates keep first-seen order. An
    // aggregate is its source (the domain) and its id: two domains may use the same id in one batch.
    const queues = new Map<string, EventEnvelope[]>();
    for (const event of events) {
      const queue = queues.get(queueOf(event)) ?? [];
      if (!queue.some((e) => e.eventSequence === event.eventSequence)) queue.push(event);
      queues.set(queueOf(event), queue);
    }
    for (const queue of queues.values()) queue.sort((a, b) => a.eventSequence - b.eventSequence);

    const attempts = new Map<EventEnvelope, number>();
    const published: EventEnvelope[] = [];
    const claimChecked: EventEnvelope[] = [];
    const undelivered: UndeliveredEvent[] = [];
    let calls = 0;

    const giveUp = (first: UndeliveredEvent) => {
      const { aggregateId } = first.event;
      const queue = queues.get(queueOf(first.event)) ?? [];
      undelivered.push(first);
      for (const blocked of queue.slice(1)) {
        undelivered.push({
          event: blocked,
          errorCode: 'BlockedByEarlierEvent',
          errorMessage: `not published: event ${first.event.eventSequence} of the same aggregate could not be delivered`,
          retryable: true,
          attempts: 0,
          blockedBy: { aggregateId, eventSequence: first.event.eventSequence },
        });
      }
      queues.delete(queueOf(first.event));
    };

    for (let wave = 0; queues.size > 0; wave++) {
      if (wave > 0) await this.sleep(this.backoff(wave));
      const heads = [...queues.values()].map((q) => q[0]);
      const batches = this.pack(heads);
      calls += batches.length;
      const results = await mapLimit(batches, this.concurrency, (batch) => this.send(batch.map((b) => b.entry)));
      batches.forEach((batch, b) => {
        const outcome = results[b];
        batch.forEach((item, i) => {
          const failure = outcome.kind === 'call-failed' ? outcome : outcome.entries[i];
          const { event } = item;
          if (!failure) {
            published.push(event);
            if (item.claimChecked) claimChecked.push(event);
            const queue = queues.get(queueOf(event))!;
            queue.shift();
            if (queue.length === 0) queues.delete(queueOf(event));
            return;
          }
          const tries = (attempts.get(event) ?? 0) + 1;
          attempts.set(event, tries);
          const retryable = failure.retryable ?? RETRYABLE_CODES.has(failure.errorCode);
          if (!retryable || tries >= this.maxAttempts) {
            giveUp({ event, errorCode: failure.errorCode, errorMessage: failure.errorMessage, retryable, attempts: tries });
          }
        });
      });
    }
    return { published, claimChecked, undelivered, calls };
  }

  private entry(event: EventEnvelope, detail: string): { entry: PutEventsRequestEntry; size: number } {
    const entry: PutEventsRequestEntry = {
      EventBusName: this.busName,
      Source: event.source,
      DetailType: event.eventType,
      Detail: detail,
      Time: new Date(event.timestamp),
      Resources: [],
    };
    // EventBridge's documented size: 14 bytes for Time, plus Source, DetailType and Detail in UTF-8.
    const size = 14 + utf8(entry.Source!) + utf8(entry.DetailType!) + utf8(detail);
    return { entry, size };
  }

  /** Packs entries into calls of at most 10 entries and 256 KB. */
  private pack(heads: EventEnvelope[]) {
    type Item = { event: EventEnvelope; entry: PutEventsRequestEntry; size: number; claimChecked: boolean };
    const batches: Item[][] = [];
    let current: Item[] = [];
    let bytes = 0;
    for (const event of heads) {
      const item = { event, ...this.entryFor(event) };
      if (current.length === MAX_PUT_EVENTS_ENTRIES || (current.length > 0 && bytes + item.size > MAX_PUT_EVENTS_BYTES)) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(item);
      bytes += item.size;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  }

  private async send(entries: PutEventsRequestEntry[]): Promise<
    | { kind: 'call-failed'; errorCode: string; errorMessage: string; retryable: boolean }
    | { kind: 'sent'; entries: Array<{ errorCode: string; errorMessage: string; retryable?: boolean } | undefined> }
  > {
    try {
      const out = await this.client.send(new PutEventsCommand({ Entries: entries }));
      const results = out.Entries ?? [];
      if ((out.FailedEntryCount ?? 0) === 0 && results.length === entries.length) {
        return { kind: 'sent', entries: entries.map(() => undefined) };
      }
      return {
        kind: 'sent',
        entries: entries.map((_, i) => {
          const r = results[i];
          if (r && !r.ErrorCode && r.EventId) return undefined;
          return { errorCode: r?.ErrorCode ?? 'MissingEntryResult', errorMessage: r?.ErrorMessage ?? 'PutEvents returned no result for this entry' };
        }),
      };
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string; $retryable?: unknown };
      const code = e.name && e.name !== 'Error' ? e.name : e.code ?? 'PutEventsCallFailed';
      // The SDK has already retried the call itself; `$retryable` marks errors it considers transient.
      return { kind: 'call-failed', errorCode: code, errorMessage: e.message ?? String(err), retryable: Boolean(e.$retryable) || RETRYABLE_CODES.has(code) };
    }
  }

  private backoff(wave: number): number {
    const cap = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (wave - 1));
    return Math.random() * cap;
  }
}

function utf8(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
