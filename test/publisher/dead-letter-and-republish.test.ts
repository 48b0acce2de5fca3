/**
 * The dead-letter handler's edge cases and the republish path, against DynamoDB Local (store and stream).
 * EventBridge and SQS have no local engine: PutEvents and SendMessage are mocked (aws-sdk-client-mock).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { powertools } from '../../src/internal/powertools';
import { createDeadLetterHandler } from '../../src/publisher/dead-letter.lambda';
import { createRepublishHandler } from '../../src/publisher/republish.lambda';
import { ErrorReporter, EventBusPublisher, EventStore, NO_STREAM, parseRepublishInput, type EventEnvelope, type UndeliveredEventsMessage } from '../../src/runtime';
import { localStreamsClient, readStream } from '../support/streams';
import { createEventStoreTable, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
const sqsMock = mockClient(SQSClient);
let client: DynamoDBClient;
let streams: DynamoDBStreamsClient;
let store: EventStore;
let tableName: string;
const published: EventEnvelope[] = [];
const errors: Array<Record<string, any>> = [];

beforeAll(async () => {
  client = localClient();
  streams = localStreamsClient();
  tableName = await createEventStoreTable(client);
  store = new EventStore({ tableName, domain: 'projects', client });
  for (const id of ['p1', 'p2']) {
    await store.append(id, [1, 2, 3].map((n) => ({ eventType: 'ProjectUpdated', data: { n } })), { expectedVersion: NO_STREAM, aggregateType: 'Project' });
  }
});
afterAll(() => {
  client.destroy();
  streams.destroy();
});
beforeEach(() => {
  published.length = 0;
  errors.length = 0;
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    for (const e of input.Entries!) (e.EventBusName === 'errors' ? errors : published).push(JSON.parse(e.Detail!));
    return { FailedEntryCount: 0, Entries: input.Entries!.map(() => ({ EventId: 'x' })) };
  });
  sqsMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm' });
});

const tools = powertools('test');
const reporter = () => new ErrorReporter({ component: 'outbox-publisher', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined });
const deadLetterHandler = (streamsClient: DynamoDBStreamsClient = streams) =>
  createDeadLetterHandler({ tools, reporter: reporter(), streams: streamsClient, sqs: new SQSClient({ region: 'us-east-1' }), deadLetterQueueUrl: 'https://sqs/dlq' });
const sqsEvent = (...bodies: string[]) => ({ Records: bodies.map((body, i) => ({ messageId: `m${i}`, body })) }) as unknown as SQSEvent;

async function pointerFor(from: number, to: number) {
  const [shard] = await readStream(client, streams, tableName);
  return {
    requestContext: { condition: 'RetryAttemptsExhausted' },
    responseContext: { functionError: 'Unhandled' },
    DDBStreamBatchInfo: {
      shardId: shard.shardId,
      streamArn: shard.streamArn,
      startSequenceNumber: shard.records[from].dynamodb!.SequenceNumber!,
      endSequenceNumber: shard.records[to].dynamodb!.SequenceNumber!,
      batchSize: to - from + 1,
    },
  };
}

test('[mocked EventBridge + SQS] a failed batch pointer is resolved to exactly the events in its range', async () => {
  const response = await deadLetterHandler()(sqsEvent(JSON.stringify(await pointerFor(1, 4))));
  expect(response.batchItemFailures).toEqual([]);
  const [message] = sqsMock.commandCalls(SendMessageCommand).map((c) => JSON.parse(c.args[0].input.MessageBody!) as UndeliveredEventsMessage);
  expect(message.events.map((e) => `${e.aggregateId}#${e.eventSequence}`)).toEqual(['p1#2', 'p1#3', 'p2#1', 'p2#2']);
  expect(message.republish).toEqual([
    { domain: 'projects', aggregateId: 'p1', fromSequence: 2 },
    { domain: 'projects', aggregateId: 'p2', fromSequence: 1 },
  ]);
  expect(errors).toEqual([expect.objectContaining({ errorType: 'EventsDeadLettered', severity: 'CRITICAL', metadata: expect.objectContaining({ deadLetteredCount: 4 }) })]);
});

test('[mocked EventBridge + SQS + mocked Streams] records gone from the stream: still dead-lettered, saying so', async () => {
  const expired = new DynamoDBStreamsClient({ region: 'us-east-1' });
  const streamsMock = mockClient(expired);
  streamsMock.on(GetShardIteratorCommand).rejects(Object.assign(new Error('trimmed'), { name: 'TrimmedDataAccessException' }));
  const response = await deadLetterHandler(expired)(sqsEvent(JSON.stringify(await pointerFor(0, 2))));
  expect(response.batchItemFailures).toEqual([]);
  const [message] = sqsMock.commandCalls(SendMessageCommand).map((c) => JSON.parse(c.args[0].input.MessageBody!) as UndeliveredEventsMessage);
  expect(message).toMatchObject({ recordsUnavailable: true, events: [], streamBatch: expect.objectContaining({ batchSize: 3 }) });
  expect(message.reason).toMatch(/no longer holds its records; republish by aggregate/);
  expect(errors[0]).toMatchObject({ severity: 'CRITICAL', metadata: expect.objectContaining({ recordsUnavailable: true }) });
  streamsMock.restore();
});

test('[mocked EventBridge + SQS] a message it cannot handle, or a failed send, is left for SQS to retry and redrive', async () => {
  sqsMock.on(SendMessageCommand).rejects(new Error('sqs down'));
  const response = await deadLetterHandler()(sqsEvent('not json', JSON.stringify({ hello: 'world' }), JSON.stringify(await pointerFor(0, 0))));
  expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm0' }, { itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }]);
});

test('[mocked EventBridge] republish from the store: in order, marked replay, from a request or a dead-letter message', async () => {
  const republish = createRepublishHandler({
    tools,
    store: new EventStore({ tableName, client }), // a read-only client
    publisher: new EventBusPublisher({ busName: 'domain', client: new EventBridgeClient({ region: 'us-east-1' }), sleep: async () => undefined }),
  });
  const result = await republish({ domain: 'projects', aggregateId: 'p1', fromSequence: 2 });
  expect(result).toMatchObject({ published: 2, undelivered: [] });
  expect(published.map((e) => [e.aggregateId, e.eventSequence, e.metadata.replay])).toEqual([
    ['p1', 2, true],
    ['p1', 3, true],
  ]);
  const [stored] = await store.load('p1', { fromSequence: 2, toSequence: 2 });
  expect(published[0]).toEqual({ ...stored, metadata: { replay: true }, timestampEpochSeconds: Math.floor(Date.parse(stored.timestamp) / 1000) });

  published.length = 0;
  const dlqMessage: UndeliveredEventsMessage = {
    kind: 'skafu.undelivered-events',
    version: 1,
    reason: 'test',
    events: [{ domain: 'projects', aggregateId: 'p2', eventSequence: 3 }],
    republish: [{ domain: 'projects', aggregateId: 'p2', fromSequence: 3 }],
    timestamp: new Date().toISOString(),
  };
  await republish({ Records: [{ body: JSON.stringify(dlqMessage) }] });
  expect(published.map((e) => `${e.aggregateId}#${e.eventSequence}`)).toEqual(['p2#3']);
});

test('[mocked EventBridge] a republish that cannot deliver fails loudly', async () => {
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'AccessDeniedException', ErrorMessage: 'no' }] });
  const republish = createRepublishHandler({
    tools,
    store: new EventStore({ tableName, client }),
    publisher: new EventBusPublisher({ busName: 'domain', client: new EventBridgeClient({ region: 'us-east-1' }), sleep: async () => undefined }),
  });
  await expect(republish({ domain: 'projects', aggregateId: 'p1' })).rejects.toThrow(/republish left 3 event\(s\) undelivered: p1#1 \(AccessDeniedException\)/);
});

test('republish input parsing: clear errors', () => {
  expect(parseRepublishInput([{ domain: 'd', aggregateId: 'a' }, { domain: 'e', aggregateId: 'b', fromSequence: 2, toSequence: 3 }])).toEqual([
    { domain: 'd', aggregateId: 'a', fromSequence: undefined, toSequence: undefined },
    { domain: 'e', aggregateId: 'b', fromSequence: 2, toSequence: 3 },
  ]);
  expect(() => parseRepublishInput({})).toThrow(/needs aggregateId/);
  expect(() => parseRepublishInput({ aggregateId: 'a' })).toThrow(/needs domain/);
  expect(() => parseRepublishInput({ domain: 'd', aggregateId: 'a', fromSequence: 0 })).toThrow(/fromSequence must be an integer >= 1/);
  expect(() => parseRepublishInput('{')).toThrow(/not JSON/);
  expect(() => parseRepublishInput(42)).toThrow(/must be a request/);
  expect(() =>
    parseRepublishInput({ kind: 'skafu.undelivered-events', version: 1, reason: '', events: [], recordsUnavailable: true, republish: [], timestamp: '' }),
  ).toThrow(/names no events/);
});
