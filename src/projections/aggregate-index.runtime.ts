/**
 * The event store's sparse `aggregates` index, read by the projection handlers (drift, rebuild and backfill):
 * a domain's aggregates of one type, keyed `<domain>#<aggregateType>`, oldest first. Each entry's partition key
 * is returned exactly as stored, to read the aggregate's stream with (never rebuilt from a public id: the store's
 * key layout is its own business), and only when that key is in the domain. The index is eventually consistent: an
 * aggregate created a moment ago may be missing from it.
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { aggregateListKey, EventStoreSchema as S, isDomainKey } from '../runtime/event-store-schema';

export interface AggregateIndexQuery {
  readonly client: DynamoDBClient;
  readonly eventStoreTable: string;
  readonly domain: string;
  readonly aggregateType: string;
  /** The Query's `Limit`. @default - none: DynamoDB's 1 MB page */
  readonly limit?: number;
  /** Where the page starts: a previous page's `next`. @default - the first page */
  readonly startKey?: Record<string, AttributeValue>;
}

export interface AggregateIndexPage {
  /** The page's aggregates: each one's stream partition key, as stored. */
  readonly streamKeys: AttributeValue[];
  /** The page's `LastEvaluatedKey`: undefined on the last page. */
  readonly next?: Record<string, AttributeValue>;
}

/** One page of the index (one Query request). */
export async function aggregateIndexPage(query: AggregateIndexQuery): Promise<AggregateIndexPage> {
  const page = await query.client.send(
    new QueryCommand({
      TableName: query.eventStoreTable,
      IndexName: S.AGGREGATE_INDEX_NAME,
      KeyConditionExpression: '#type = :type',
      ExpressionAttributeNames: { '#type': S.AGGREGATE_INDEX_PARTITION_KEY },
      ExpressionAttributeValues: { ':type': { S: aggregateListKey(query.domain, query.aggregateType) } },
      ...(query.limit !== undefined ? { Limit: query.limit } : {}),
      ExclusiveStartKey: query.startKey,
    }),
  );
  // An entry whose stream is not the domain's is left out: only a writer outside the event store makes one (IAM
  // confines a domain's writers to its partition keys, not the index attributes they set), and its events are
  // not this domain's to project. A page may then hold fewer keys than `limit`; `next` is unchanged.
  const streamKeys = (page.Items ?? []).map((item) => item[S.PARTITION_KEY]).filter((key) => isDomainKey(key?.S, query.domain));
  return { streamKeys, next: page.LastEvaluatedKey };
}

/**
 * Every aggregate of the type, page after page until the index is exhausted. Lazy: the next page is requested
 * only when the caller has taken every key of the previous one (one Query a page, in order).
 */
export async function* aggregateStreamKeys(query: Omit<AggregateIndexQuery, 'startKey'>): AsyncGenerator<AttributeValue> {
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await aggregateIndexPage({ ...query, startKey });
    yield* page.streamKeys;
    startKey = page.next;
  } while (startKey);
}
