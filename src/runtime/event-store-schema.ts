/**
 * The event store's physical layout, shared by the EventStoreTable construct (jsii side) and the runtime client.
 * Keep this file free of imports: the construct library loads it at synth time.
 */
export const EventStoreSchema = {
  /** Partition key (S): the aggregate's id. */
  PARTITION_KEY: 'aggregateId',
  /** Sort key (N): the event's position in its aggregate's stream, from 1 with no gap. */
  SORT_KEY: 'eventSequence',
  /** Sparse index listing aggregates: only the first event of each aggregate carries its keys. */
  AGGREGATE_INDEX_NAME: 'aggregates',
  /** Index partition key (S): the aggregate type. */
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
