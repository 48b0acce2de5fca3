import type { EventEnvelope } from './envelope';
import type { EventBusPublisher, UndeliveredEvent } from './event-publisher';
import type { EventStore } from './event-store';
import { streamKey } from './event-store-schema';
import { ownsKey } from './stream-records';
import { isPlainObject } from './validation';

/** Republish an aggregate's events from the store, from a sequence (inclusive) to an optional end. */
export interface RepublishRequest {
  /** The aggregate's domain (its events' source is `skafu.<domain>`). */
  readonly domain: string;
  readonly aggregateId: string;
  /** @default 1 */
  readonly fromSequence?: number;
  /** @default the end of the stream */
  readonly toSequence?: number;
}

/** A pointer to a committed event that did not reach the bus. */
export interface EventPointer {
  readonly domain: string;
  readonly aggregateId: string;
  readonly eventSequence: number;
  readonly eventId?: string;
  readonly eventType?: string;
  readonly errorCode?: string;
}

/**
 * The message the outbox puts on its dead-letter queue for events that did not reach the bus. It always names
 * the events (aggregate and sequence) when they can still be known, and carries `republish`: the requests to
 * pass to the republish function (or `republishFromStore`) to publish them again from the event store.
 */
export interface UndeliveredEventsMessage {
  readonly kind: 'skafu.undelivered-events';
  readonly version: 1;
  readonly reason: string;
  readonly events: EventPointer[];
  /** True when the stream no longer held the failed batch's records (past its 24 h retention). */
  readonly recordsUnavailable?: boolean;
  /** The failed stream batch, as the event source mapping reported it. */
  readonly streamBatch?: Record<string, unknown>;
  readonly republish: RepublishRequest[];
  readonly timestamp: string;
}

export const UNDELIVERED_EVENTS_KIND = 'skafu.undelivered-events';

export interface RepublishResult {
  readonly requests: RepublishRequest[];
  /**
   * The last sequence loaded for each request, in request order (0 when none was loaded); every genuine event up
   * to it was published, an item listed in `refused` was not.
   */
  readonly lastSequences: number[];
  readonly published: number;
  readonly claimChecked: number;
  readonly undelivered: UndeliveredEvent[];
  /**
   * Items stored under a requested aggregate's key whose envelope names another domain or aggregate (written by
   * someone other than the event store): not published.
   */
  readonly refused: Array<{ readonly domain: string; readonly aggregateId: string; readonly eventSequence: number; readonly claims: string }>;
}

/** The smallest set of requests that republishes every pointed-to event, in order, per aggregate. */
export function republishRequestsFor(pointers: ReadonlyArray<EventPointer>): RepublishRequest[] {
  const from = new Map<string, RepublishRequest>();
  for (const p of pointers) {
    const key = JSON.stringify([p.domain, p.aggregateId]);
    const known = from.get(key);
    if (!known || p.eventSequence < (known.fromSequence ?? 1)) {
      from.set(key, { domain: p.domain, aggregateId: p.aggregateId, fromSequence: p.eventSequence });
    }
  }
  // From the first undelivered event to the end: later events may have been published out of order, and a
  // consumer that deduplicates by sequence handles the repeats.
  return [...from.values()];
}

/**
 * Reads what to republish from a republish function payload: a list of requests, one request, a dead-letter
 * message (`UndeliveredEventsMessage`), or an SQS message body holding one.
 */
export function parseRepublishInput(input: unknown): RepublishRequest[] {
  const value = typeof input === 'string' ? safeParse(input) : input;
  if (Array.isArray(value)) return value.flatMap(parseRepublishInput);
  if (!isPlainObject(value)) throw new Error('republish input must be a request, a list of requests or a dead-letter message');
  if (value.kind === UNDELIVERED_EVENTS_KIND) {
    const message = value as unknown as UndeliveredEventsMessage;
    if (message.republish.length === 0 && message.recordsUnavailable) {
      throw new Error(
        'this dead-letter message names no events (the stream had expired); republish by aggregate: { domain, aggregateId, fromSequence }',
      );
    }
    return message.republish;
  }
  if (Array.isArray(value.Records)) return value.Records.flatMap(parseRepublishInput); // an SQS event
  if (typeof value.body === 'string') return parseRepublishInput(value.body); // an SQS record
  if (Array.isArray(value.requests)) return value.requests.flatMap(parseRepublishInput);
  const { domain, aggregateId, fromSequence, toSequence } = value;
  if (typeof aggregateId !== 'string' || aggregateId.length === 0) throw new Error('a republish request needs aggregateId');
  if (typeof domain !== 'string' || domain.length === 0) throw new Error('a republish request needs domain (aggregate ids are unique within a domain only)');
  for (const [name, n] of [['fromSequence', fromSequence], ['toSequence', toSequence]] as const) {
    if (n !== undefined && (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)) {
      throw new Error(`a republish request's ${name} must be an integer >= 1`);
    }
  }
  return [{ domain, aggregateId, fromSequence: fromSequence as number | undefined, toSequence: toSequence as number | undefined }];
}

/**
 * Publishes events again from the event store (the source of truth), in order, with `metadata.replay: true`.
 */
export async function republishFromStore(
  store: EventStore,
  publisher: EventBusPublisher,
  requests: ReadonlyArray<RepublishRequest>,
): Promise<RepublishResult> {
  const events: EventEnvelope[] = [];
  const lastSequences: number[] = [];
  const refused: RepublishResult['refused'][number][] = [];
  for (const request of requests) {
    const key = streamKey(request.domain, request.aggregateId);
    const loaded = await store.load(request.aggregateId, {
      domain: request.domain,
      fromSequence: request.fromSequence ?? 1,
      toSequence: request.toSequence,
    });
    for (const e of loaded) {
      // The key was the request's; the envelope must name it, or it would speak for another domain or aggregate.
      if (ownsKey(key, e.source, e.aggregateId)) events.push({ ...e, metadata: { ...e.metadata, replay: true } });
      else refused.push({ domain: request.domain, aggregateId: request.aggregateId, eventSequence: e.eventSequence, claims: `${String(e.source)} ${String(e.aggregateId)}` });
    }
    lastSequences.push(loaded.length > 0 ? loaded[loaded.length - 1].eventSequence : 0);
  }
  const report = await publisher.publish(events);
  return {
    requests: [...requests],
    lastSequences,
    published: report.published.length,
    claimChecked: report.claimChecked.length,
    undelivered: report.undelivered,
    refused,
  };
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error('republish input is not JSON');
  }
}
