/**
 * The outbox's dead-letter handler. A DynamoDB stream's on-failure destination receives only a pointer to the
 * failed batch (shard and sequence range), not its records. This handler reads that range back from the stream,
 * names each committed event in it (aggregate and sequence), puts an `UndeliveredEventsMessage` on the outbox's
 * dead-letter queue (with the requests that republish them from the store) and a CRITICAL error event on the
 * error bus. If the stream no longer holds the records, it says so in both. If it fails itself, SQS retries it
 * and finally moves the raw pointer to the dead-letter queue: nothing is dropped.
 */
import { DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { ErrorReporter } from '../runtime/error-reporter';
import { type EventPointer, UNDELIVERED_EVENTS_KIND, type UndeliveredEventsMessage, republishRequestsFor } from '../runtime/republish';
import { domainOf, eventsFromStreamRecords, type StreamRecordLike } from '../runtime/stream-records';

export interface StreamBatchInfo {
  readonly streamArn: string;
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly batchSize?: number;
  readonly [key: string]: unknown;
}

/** What a stream event source mapping sends to its on-failure destination. */
interface OnFailureRecord {
  readonly DDBStreamBatchInfo?: StreamBatchInfo;
  readonly requestContext?: { readonly condition?: string };
  readonly responseContext?: { readonly functionError?: string };
}

export interface DeadLetterHandlerDeps {
  readonly streams: DynamoDBStreamsClient;
  readonly sqs: SQSClient;
  readonly deadLetterQueueUrl: string;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
  /** GetRecords calls at most per failed batch. @default 200 */
  readonly maxPolls?: number;
  readonly clock?: () => Date;
}

const UNAVAILABLE = new Set(['TrimmedDataAccessException', 'ExpiredIteratorException', 'ResourceNotFoundException']);
/** Keep each dead-letter message well under SQS's 256 KB. */
const POINTERS_PER_MESSAGE = 1000;

export function createDeadLetterHandler(deps: DeadLetterHandlerDeps) {
  const clock = deps.clock ?? (() => new Date());

  async function readRange(info: StreamBatchInfo): Promise<EventPointer[] | undefined> {
    const end = BigInt(info.endSequenceNumber);
    const pointers: EventPointer[] = [];
    try {
      let iterator = (
        await deps.streams.send(
          new GetShardIteratorCommand({
            StreamArn: info.streamArn,
            ShardId: info.shardId,
            ShardIteratorType: 'AT_SEQUENCE_NUMBER',
            SequenceNumber: info.startSequenceNumber,
          }),
        )
      ).ShardIterator;
      let emptyPolls = 0;
      for (let poll = 0; iterator && poll < (deps.maxPolls ?? 200); poll++) {
        const out = await deps.streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
        const records = (out.Records ?? []) as StreamRecordLike[];
        const inRange = records.filter((r) => BigInt(r.dynamodb?.SequenceNumber ?? '0') <= end);
        for (const e of eventsFromStreamRecords(inRange)) {
          pointers.push({
            domain: domainOf(e.envelope),
            aggregateId: e.envelope.aggregateId,
            eventSequence: e.envelope.eventSequence,
            eventId: e.envelope.eventId,
            eventType: e.envelope.eventType,
          });
        }
        if (inRange.length < records.length) break; // read past the end of the failed batch
        emptyPolls = records.length === 0 ? emptyPolls + 1 : 0;
        if (emptyPolls >= 3) break; // an open shard with nothing more in range
        iterator = out.NextShardIterator;
      }
      return pointers;
    } catch (err) {
      if (UNAVAILABLE.has((err as Error).name)) return undefined;
      throw err;
    }
  }

  async function deadLetter(message: UndeliveredEventsMessage): Promise<void> {
    const chunks: EventPointer[][] = [];
    for (let i = 0; i < message.events.length; i += POINTERS_PER_MESSAGE) chunks.push(message.events.slice(i, i + POINTERS_PER_MESSAGE));
    if (chunks.length === 0) chunks.push([]);
    for (const events of chunks) {
      const part: UndeliveredEventsMessage = { ...message, events, republish: republishRequestsFor(events) };
      await deps.sqs.send(new SendMessageCommand({ QueueUrl: deps.deadLetterQueueUrl, MessageBody: JSON.stringify(part) }));
    }
  }

  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> => {
    const failures: { itemIdentifier: string }[] = [];
    const functionName = context?.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'outbox-dead-letter';
    for (const record of event.Records ?? []) {
      try {
        const body = JSON.parse(record.body) as OnFailureRecord;
        const info = body.DDBStreamBatchInfo;
        if (!info) throw new Error('not a DynamoDB stream on-failure record (no DDBStreamBatchInfo)');
        const pointers = await readRange(info);
        const why = [body.requestContext?.condition, body.responseContext?.functionError].filter(Boolean).join(', ') || 'unknown';
        const message: UndeliveredEventsMessage = {
          kind: UNDELIVERED_EVENTS_KIND,
          version: 1,
          reason: pointers
            ? `the outbox publisher gave up on a stream batch (${why}); these committed events may not have reached the bus`
            : `the outbox publisher gave up on a stream batch (${why}) and the stream no longer holds its records; republish by aggregate from the event store`,
          events: pointers ?? [],
          ...(pointers ? {} : { recordsUnavailable: true }),
          streamBatch: info,
          republish: republishRequestsFor(pointers ?? []),
          timestamp: clock().toISOString(),
        };
        await deadLetter(message);
        deps.tools.logger.error('stream batch dead-lettered', { events: message.events.slice(0, 100), streamBatch: info });
        await deps.reporter.report(new Error(message.reason), {
          errorType: 'EventsDeadLettered',
          severity: 'CRITICAL',
          retryable: true,
          context: { functionName },
          metadata: {
            deadLetteredCount: message.events.length,
            events: message.events.slice(0, 100) as unknown as never,
            recordsUnavailable: message.recordsUnavailable ?? false,
            streamBatch: info as never,
          },
        });
      } catch (err) {
        deps.tools.logger.error('could not process an on-failure record; SQS will retry it', { messageId: record.messageId, error: String(err) });
        failures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures: failures };
  };
}

let instance: ReturnType<typeof createDeadLetterHandler> | undefined;

export const handler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
  if (!instance) {
    const tools = powertools('skafu-outbox-dead-letter');
    const queueUrl = process.env.SKAFU_DEAD_LETTER_QUEUE_URL;
    if (!queueUrl) throw new Error('SKAFU_DEAD_LETTER_QUEUE_URL is not set');
    instance = createDeadLetterHandler({
      tools,
      streams: traced(tools, new DynamoDBStreamsClient({})),
      sqs: traced(tools, new SQSClient({})),
      deadLetterQueueUrl: queueUrl,
      reporter: new ErrorReporter({ component: 'outbox-publisher' }),
    });
  }
  return instance(event, context);
};
