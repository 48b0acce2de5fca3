import type { JsonObject, JsonValue } from './json';

/**
 * Who and what caused an event. Free-form beyond the named fields, but JSON only.
 */
export interface EventMetadata {
  /** The authenticated user (Cognito `sub`) behind the command. */
  readonly userId?: string;
  /** The request (API Gateway or Lambda request id) that carried the command. */
  readonly requestId?: string;
  readonly userAgent?: string;
  readonly sessionId?: string;
  /** Set on events republished from the store rather than first published. */
  readonly replay?: boolean;
  readonly [key: string]: JsonValue | undefined;
}

/**
 * The one event envelope used across Skafu: in the event store, on the `skafu-events` bus (as the EventBridge
 * `detail`), in projections and in error reports.
 *
 * - `eventId`: a UUID, unique per event.
 * - `eventType`: PascalCase past tense (`ProjectCreated`); also the EventBridge `detail-type`.
 * - `eventVersion`: the schema version of `data` (an integer from 1), for upcasting.
 * - `aggregateId` / `aggregateType`: the stream the event belongs to.
 * - `eventSequence`: the event's position in its aggregate's stream, from 1, with no gap.
 * - `timestamp`: ISO-8601 UTC with milliseconds (`2026-01-31T12:00:00.000Z`).
 * - `correlationId`: the id of the whole interaction (HTTP `X-Correlation-Id` or generated).
 * - `causationId`: the id of the message (command or event) that caused this one; the correlation id when
 *   the cause was the original request.
 * - `source`: `skafu.<domain>`; also the EventBridge `source`.
 * - `data`: the domain payload. `metadata`: who and how (user, request, ...).
 */
export interface EventEnvelope<TData extends JsonObject = JsonObject, TType extends string = string> {
  readonly eventId: string;
  readonly eventType: TType;
  readonly eventVersion: number;
  readonly aggregateId: string;
  readonly aggregateType: string;
  readonly eventSequence: number;
  readonly timestamp: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly source: string;
  readonly data: TData;
  readonly metadata: EventMetadata;
}

/** An event to append: the store fills in the rest of the envelope. */
export interface NewEvent<TData extends JsonObject = JsonObject, TType extends string = string> {
  readonly eventType: TType;
  readonly data: TData;
  /** @default 1 */
  readonly eventVersion?: number;
  /** @default a random UUID */
  readonly eventId?: string;
  /** Merged over the append's metadata. */
  readonly metadata?: EventMetadata;
  /**
   * The position the caller believes this event takes. Optional; when given it must be exactly the next
   * position, or the append is rejected before any write as a sequence gap.
   */
  readonly eventSequence?: number;
}

/** The envelope fields, in a fixed order (used to strip storage-only attributes from items). */
export const ENVELOPE_FIELDS: ReadonlyArray<keyof EventEnvelope> = [
  'eventId',
  'eventType',
  'eventVersion',
  'aggregateId',
  'aggregateType',
  'eventSequence',
  'timestamp',
  'correlationId',
  'causationId',
  'source',
  'data',
  'metadata',
];

/** Picks the envelope out of a stored item (drops index keys and the item type). */
export function envelopeFromItem(item: Record<string, unknown>): EventEnvelope {
  const envelope: Record<string, unknown> = {};
  for (const field of ENVELOPE_FIELDS) {
    envelope[field] = item[field];
  }
  envelope.metadata = envelope.metadata ?? {};
  envelope.data = envelope.data ?? {};
  return envelope as unknown as EventEnvelope;
}
