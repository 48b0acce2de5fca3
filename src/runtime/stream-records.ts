import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { envelopeFromItem, type EventEnvelope } from './envelope';
import { EventStoreSchema as S, streamKey } from './event-store-schema';

/** The part of a DynamoDB stream record (Lambda event or Streams API) that the publisher reads. */
export interface StreamRecordLike {
  readonly eventName?: string;
  readonly dynamodb?: {
    readonly NewImage?: Record<string, unknown>;
    readonly OldImage?: Record<string, unknown>;
    readonly Keys?: Record<string, unknown>;
    readonly SequenceNumber?: string;
  };
}

export interface StreamEvent {
  readonly envelope: EventEnvelope;
  /** The stream record's sequence number (for batch item failures). */
  readonly sequenceNumber: string;
}

/**
 * Whether an envelope's `source` (`skafu.<domain>`) and `aggregateId` make exactly the partition key `key`
 * (`<domain>#<aggregateId>`, a domain without `#`). The event store never writes an event item that fails this; a
 * principal confined to its own domain's partition keys (LeadingKeys) can, and such an envelope must not speak for
 * another domain or aggregate.
 */
export function ownsKey(key: unknown, source: unknown, aggregateId: unknown): boolean {
  const domain = typeof source === 'string' && source.startsWith('skafu.') ? domainOf({ source }) : undefined;
  // A domain is a name without the separator (`skafu.billing#x` with id `y` would otherwise match `billing#x#y`).
  return domain !== undefined && !domain.includes(S.DOMAIN_SEPARATOR) && typeof aggregateId === 'string' && key === streamKey(domain, aggregateId);
}

/** Whether an event item's envelope names the stream its partition key is (see ownsKey). */
const ownsItsKey = (item: Record<string, unknown>) => ownsKey(item[S.PARTITION_KEY], item.source, item.aggregateId);

/**
 * The committed events in a batch of stream records: INSERTs of items whose `itemType` is `event`, turned from
 * DynamoDB JSON into clean envelopes. Snapshots, idempotency records, modifications and removals are skipped, and
 * so are event items whose key contradicts their envelope (reported by tamperedEventsFromStreamRecords).
 */
export function eventsFromStreamRecords(records: ReadonlyArray<StreamRecordLike>): StreamEvent[] {
  const events: StreamEvent[] = [];
  for (const record of records) {
    const image = record.dynamodb?.NewImage;
    if (record.eventName !== 'INSERT' || !image) continue;
    const item = unmarshall(normalizeImage(image));
    if (item[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT || !ownsItsKey(item)) continue;
    events.push({ envelope: envelopeFromItem(item), sequenceNumber: record.dynamodb?.SequenceNumber ?? '' });
  }
  return events;
}

/** A change to a committed event: events are immutable, so every one of these is tampering. */
export interface TamperedEvent {
  /**
   * MODIFY (the item was overwritten or updated), REMOVE (deleted), or INSERT (written under a partition key its
   * envelope contradicts: the `source` or `aggregateId` of another domain or aggregate; `streamId`, `domain` and
   * `aggregateId` then come from the key, and `changedPaths` is `['source', 'aggregateId']`, the pair the key
   * must be made of).
   */
  readonly change: 'MODIFY' | 'REMOVE' | 'INSERT';
  /** The stored partition key, as is (`<domain>#<aggregateId>`). */
  readonly streamId: string;
  readonly domain: string;
  readonly aggregateId: string;
  readonly aggregateType: string;
  readonly eventSequence: number;
  readonly eventId: string;
  readonly eventType: string;
  /**
   * What changed, by attribute path (`data.amount`, `eventType`, `itemType`), without the values (they may be
   * personal data); for a REMOVE, `['*']`.
   */
  readonly changedPaths: string[];
  /** The stream record's sequence number. */
  readonly sequenceNumber: string;
}

/**
 * The MODIFY and REMOVE records of event items in a batch (needs a NEW_AND_OLD_IMAGES stream), and the INSERTs of
 * event items whose key contradicts their envelope. Idempotency records expiring by TTL, snapshots being replaced
 * and other items are not events and are skipped.
 */
export function tamperedEventsFromStreamRecords(records: ReadonlyArray<StreamRecordLike>): TamperedEvent[] {
  const tampered: TamperedEvent[] = [];
  for (const record of records) {
    const change = record.eventName;
    const inserted = change === 'INSERT' && record.dynamodb?.NewImage ? unmarshall(normalizeImage(record.dynamodb.NewImage)) : undefined;
    if (inserted && inserted[S.ITEM_TYPE_ATTRIBUTE] === S.ITEM_TYPE_EVENT && !ownsItsKey(inserted)) {
      const streamId = String(inserted[S.PARTITION_KEY]);
      const at = streamId.indexOf(S.DOMAIN_SEPARATOR);
      tampered.push({
        change: 'INSERT',
        streamId,
        domain: at < 0 ? '' : streamId.slice(0, at),
        aggregateId: at < 0 ? streamId : streamId.slice(at + 1),
        aggregateType: String(inserted.aggregateType),
        eventSequence: Number(inserted[S.SORT_KEY]),
        eventId: String(inserted.eventId),
        eventType: String(inserted.eventType),
        changedPaths: ['source', 'aggregateId'],
        sequenceNumber: record.dynamodb?.SequenceNumber ?? '',
      });
      continue;
    }
    const oldImage = record.dynamodb?.OldImage;
    if ((change !== 'MODIFY' && change !== 'REMOVE') || !oldImage) continue;
    const before = unmarshall(normalizeImage(oldImage));
    if (before[S.ITEM_TYPE_ATTRIBUTE] !== S.ITEM_TYPE_EVENT) continue;
    const after = change === 'MODIFY' && record.dynamodb?.NewImage ? unmarshall(normalizeImage(record.dynamodb.NewImage)) : undefined;
    tampered.push({
      change,
      streamId: String(before[S.PARTITION_KEY]),
      domain: String(before.source ?? '').replace(/^skafu\./, ''),
      aggregateId: String(before.aggregateId),
      aggregateType: String(before.aggregateType),
      eventSequence: Number(before[S.SORT_KEY]),
      eventId: String(before.eventId),
      eventType: String(before.eventType),
      changedPaths: after ? changedPaths(before, after) : ['*'],
      sequenceNumber: record.dynamodb?.SequenceNumber ?? '',
    });
  }
  return tampered;
}

/** The paths at which two JSON values differ (at most 50), without their values. */
function changedPaths(before: unknown, after: unknown, path = '', out: string[] = []): string[] {
  if (out.length >= 50) return out;
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      const has = (o: Record<string, unknown>) => Object.prototype.hasOwnProperty.call(o, key);
      const child = path ? `${path}.${key}` : key;
      if (!has(before) || !has(after)) out.push(child);
      else changedPaths(before[key], after[key], child, out);
    }
    return out;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push(path || '*');
  return out;
}

/** The stored partition key (`streamId`) and sequence of a stream record's item, from its keys (any record type). */
export function pointerFromStreamRecord(record: StreamRecordLike): { streamId: string; eventSequence: number } | undefined {
  const keys = record.dynamodb?.Keys;
  if (!keys) return undefined;
  const item = unmarshall(keys as Record<string, AttributeValue>);
  const streamId = item[S.PARTITION_KEY];
  const eventSequence = item[S.SORT_KEY];
  if (typeof streamId !== 'string' || typeof eventSequence !== 'number') return undefined;
  return { streamId, eventSequence };
}

/** The domain of an event, from its source `skafu.<domain>`. */
export function domainOf(event: { readonly source: string }): string {
  return event.source.replace(/^skafu\./, '');
}

/**
 * An attribute value always has exactly one type key. Records read through the DynamoDB Streams API (seen with
 * DynamoDB Local) give an empty map as `{}` instead of `{ M: {} }`; this restores it, at any depth.
 */
function normalizeImage(image: Record<string, unknown>): Record<string, AttributeValue> {
  const fix = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const v = value as Record<string, unknown>;
    const keys = Object.keys(v);
    if (keys.length === 0) return { M: {} };
    if (keys.length === 1 && keys[0] === 'M' && v.M && typeof v.M === 'object') {
      return { M: Object.fromEntries(Object.entries(v.M as Record<string, unknown>).map(([k, x]) => [k, fix(x)])) };
    }
    if (keys.length === 1 && keys[0] === 'L' && Array.isArray(v.L)) return { L: v.L.map(fix) };
    return v;
  };
  return Object.fromEntries(Object.entries(image).map(([k, v]) => [k, fix(v)])) as Record<string, AttributeValue>;
}
