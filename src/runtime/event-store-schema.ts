/**
 * The event store's physical layout, shared by the EventStoreTable construct (jsii side) and the runtime client.
 * Keep this file free of imports: the construct library loads it at synth time.
 *
 * Every item's partition key starts with its domain and `#` (`projects#project-42`), so that IAM can confine a
 * domain's roles to its own items with a `dynamodb:LeadingKeys` condition on `<domain>#*`. Domain names never
 * hold `#`, so one domain's prefix never matches another's. The public aggregate id (in the envelope, the API
 * and on the bus) is unchanged; it is stored in the item's `aggregateId` attribute.
 *
 * | item                 | partition key `streamId`                      | sort key `eventSequence` |
 * |----------------------|-----------------------------------------------|--------------------------|
 * | event                | `<domain>#<aggregateId>`                      | 1, 2, 3, ...             |
 * | snapshot             | `<domain>#$snapshot#<reducerVersion>#<id>`     | the version it reflects  |
 * | idempotency record   | `<domain>#$idempotency#<sha256 of the key>`   | 0                        |
 */
export const EventStoreSchema = {
  /** Partition key (S): `<domain>#<aggregateId>` for events (see the table above). */
  PARTITION_KEY: 'streamId',
  /** Sort key (N): the event's position in its aggregate's stream, from 1 with no gap. */
  SORT_KEY: 'eventSequence',
  /** Separates the domain from the rest of the partition key. Never part of a domain name. */
  DOMAIN_SEPARATOR: '#',
  /** Sparse index listing aggregates: only the first event of each aggregate carries its keys. */
  AGGREGATE_INDEX_NAME: 'aggregates',
  /** Index partition key (S): `<domain>#<aggregateType>` (the domain prefix again, for LeadingKeys). */
  AGGREGATE_INDEX_PARTITION_KEY: 'aggregateListType',
  /** Index sort key (S): `<timestamp of the first event>#<aggregateId>`. */
  AGGREGATE_INDEX_SORT_KEY: 'aggregateListCreatedAt',
  /** TTL attribute (N, epoch seconds): set only on idempotency records, never on events. */
  TTL_ATTRIBUTE: 'expiresAt',
  /** Every item says what it is, so that stream consumers can keep only events. */
  ITEM_TYPE_ATTRIBUTE: 'itemType',
  ITEM_TYPE_EVENT: 'event',
  ITEM_TYPE_SNAPSHOT: 'snapshot',
  ITEM_TYPE_IDEMPOTENCY: 'idempotency',
  /** Aggregate ids starting with this character are reserved for the store's own records. */
  RESERVED_PREFIX: '$',
} as const;

/** The partition key prefix of every item of a domain: `<domain>#`. */
export function domainKeyPrefix(domain: string): string {
  return `${domain}${EventStoreSchema.DOMAIN_SEPARATOR}`;
}

/**
 * Whether a partition key is one of the domain's (`<domain>#...`). An aggregates-index entry whose stream fails
 * this was written outside the event store (a writer confined to another domain's keys set the index attributes).
 */
export function isDomainKey(key: unknown, domain: string): boolean {
  return typeof key === 'string' && key.startsWith(domainKeyPrefix(domain));
}

/** The aggregates index's partition key for a domain's aggregates of one type: `<domain>#<aggregateType>`. */
export function aggregateListKey(domain: string, aggregateType: string): string {
  return `${domainKeyPrefix(domain)}${aggregateType}`;
}

/** The partition key of an aggregate's stream: `<domain>#<aggregateId>`. */
export function streamKey(domain: string, aggregateId: string): string {
  return `${domainKeyPrefix(domain)}${aggregateId}`;
}
