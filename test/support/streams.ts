/**
 * Reads a table's stream from DynamoDB Local through the real DynamoDB Streams API, and replays records into a
 * handler the way a Lambda event source mapping does (batches, retry from the reported item, on-failure pointer).
 */
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';

export function localStreamsClient(): DynamoDBStreamsClient {
  return new DynamoDBStreamsClient({
    endpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

export interface ShardRecords {
  readonly streamArn: string;
  readonly shardId: string;
  readonly records: DynamoDBRecord[];
}

/** Every record currently in the table's stream, shard by shard, in stream order. */
export async function readStream(client: DynamoDBClient, streams: DynamoDBStreamsClient, tableName: string): Promise<ShardRecords[]> {
  const table = await client.send(new DescribeTableCommand({ TableName: tableName }));
  const streamArn = table.Table?.LatestStreamArn;
  if (!streamArn) throw new Error(`table ${tableName} has no stream`);
  const description = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  const result: ShardRecords[] = [];
  for (const shard of description.StreamDescription?.Shards ?? []) {
    const records: DynamoDBRecord[] = [];
    let iterator = (
      await streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }))
    ).ShardIterator;
    let empty = 0;
    while (iterator && empty < 2) {
      const out = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
      const got = (out.Records ?? []) as _Record[];
      records.push(...(got as unknown as DynamoDBRecord[]));
      empty = got.length === 0 ? empty + 1 : 0;
      iterator = out.NextShardIterator;
    }
    result.push({ streamArn, shardId: shard.ShardId!, records });
  }
  return result;
}

export interface OnFailureRecord {
  readonly requestContext: { condition: string; approximateInvokeCount: number };
  readonly responseContext: { functionError?: string };
  readonly version: '1.0';
  readonly timestamp: string;
  readonly DDBStreamBatchInfo: {
    readonly shardId: string;
    readonly startSequenceNumber: string;
    readonly endSequenceNumber: string;
    readonly batchSize: number;
    readonly streamArn: string;
  };
}

/**
 * Feeds a shard's records to a stream handler like Lambda's event source mapping with reportBatchItemFailures:
 * batches of `batchSize`; a reported failure retries the batch from that record; after `retryAttempts` retries
 * the batch's pointer goes to `onFailure` and the mapping moves on.
 */
export async function driveStream(
  shard: ShardRecords,
  handler: (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse | void>,
  options: { batchSize: number; retryAttempts: number; onFailure: (record: OnFailureRecord) => Promise<void> },
): Promise<{ invocations: number; failedBatches: number }> {
  let invocations = 0;
  let failedBatches = 0;
  for (let pos = 0; pos < shard.records.length; ) {
    const original = shard.records.slice(pos, pos + options.batchSize);
    let batch = original;
    for (let attempt = 0; ; attempt++) {
      invocations++;
      let failedAt: string | undefined;
      try {
        const response = await handler({ Records: batch });
        failedAt = response?.batchItemFailures?.[0]?.itemIdentifier;
      } catch (err) {
        if (process.env.SKAFU_TEST_DEBUG) console.error('stream handler threw', err);
        failedAt = batch[0].dynamodb!.SequenceNumber;
      }
      if (!failedAt) break;
      const index = batch.findIndex((r) => r.dynamodb?.SequenceNumber === failedAt);
      batch = batch.slice(Math.max(0, index));
      if (attempt >= options.retryAttempts) {
        failedBatches++;
        await options.onFailure({
          requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: attempt + 1 },
          responseContext: { functionError: 'Handled' },
          version: '1.0',
          timestamp: new Date().toISOString(),
          DDBStreamBatchInfo: {
            shardId: shard.shardId,
            startSequenceNumber: batch[0].dynamodb!.SequenceNumber!,
            endSequenceNumber: batch[batch.length - 1].dynamodb!.SequenceNumber!,
            batchSize: batch.length,
            streamArn: shard.streamArn,
          },
        });
        break;
      }
    }
    pos += original.length;
  }
  return { invocations, failedBatches };
}

/** A small seeded PRNG (mulberry32), so fault-injection runs are reproducible. */
/* eslint-disable no-bitwise */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/* eslint-enable no-bitwise */
