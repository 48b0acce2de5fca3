/**
 * The outbox end to end on real stream records: events are written through the runtime client into DynamoDB
 * Local, the table's stream is read with the DynamoDB Streams API (DynamoDB Local), and the records are fed to
 * the bundled publisher handler the way Lambda's event source mapping does. EventBridge has no local engine:
 * PutEvents is mocked with aws-sdk-client-mock (with fault injection); so is SQS SendMessage.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput, type PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { powertools } from '../../src/internal/powertools';
import { createDeadLetterHandler } from '../../src/publisher/dead-letter.lambda';
import { createPublisherHandler } from '../../src/publisher/publisher.lambda';
import {
  ErrorReporter,
  EventBusPublisher,
  EventStore,
  NO_STREAM,
  type ErrorEventDetail,
  type EventEnvelope,
  type UndeliveredEventsMessage,
} from '../../src/runtime';
import { driveStream, localStreamsClient, readStream, seededRandom, type OnFailureRecord } from '../support/streams';
import { createEventStoreTable, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
const sqsMock = mockClient(SQSClient);

let client: DynamoDBClient;
let streams: DynamoDBStreamsClient;

beforeAll(() => {
  client = localClient();
  streams = localStreamsClient();
});
afterAll(() => {
  client.destroy();
  streams.destroy();
});

interface Bus {
  /** Accepted domain events, in acceptance order (duplicates included). */
  readonly accepted: EventEnvelope[];
  /** Error events put on the error bus. */
  readonly errors: ErrorEventDetail[];
  calls: number;
}

/**
 * Installs a PutEvents fake: `fail(entry, call)` decides each domain-event entry's fate. Error-bus entries always
 * succeed (they are recorded separately).
 */
function fakeEventBridge(fail: (entryIndex: number, call: number) => 'ok' | { code: string } | 'throw-call'): Bus {
  const bus: Bus = { accepted: [], errors: [], calls: 0 };
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    const entries = input.Entries ?? [];
    if (entries.every((e) => e.EventBusName === 'errors')) {
      bus.errors.push(...entries.map((e) => JSON.parse(e.Detail!) as ErrorEventDetail));
      return { FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `err-${bus.errors.length}-${i}` })) };
    }
    const call = ++bus.calls;
    expect(entries.length).toBeLessThanOrEqual(10);
    const size = entries.reduce((n, e) => n + 14 + Buffer.byteLength(e.Source!) + Buffer.byteLength(e.DetailType!) + Buffer.byteLength(e.Detail!), 0);
    expect(size).toBeLessThanOrEqual(256 * 1024);
    const fates = entries.map((_, i) => fail(i, call));
    if (fates.includes('throw-call')) {
      throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $retryable: { throttling: true } });
    }
    const results: PutEventsResultEntry[] = entries.map((entry, i) => {
      const fate = fates[i];
      if (fate === 'ok') {
        bus.accepted.push(JSON.parse(entry.Detail!) as EventEnvelope);
        return { EventId: `ev-${call}-${i}` };
      }
      return { ErrorCode: (fate as { code: string }).code, ErrorMessage: 'injected' };
    });
    return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
  });
  return bus;
}

function deadLetters(): UndeliveredEventsMessage[] {
  return sqsMock.commandCalls(SendMessageCommand).map((c) => JSON.parse(c.args[0].input.MessageBody!) as UndeliveredEventsMessage);
}

async function seedStore(aggregates: number, eventsEach: number, options: { bigEvent?: boolean } = {}) {
  const tableName = await createEventStoreTable(client);
  const store = new EventStore({ tableName, domain: 'observability', client });
  const expected: Array<{ aggregateId: string; eventSequence: number }> = [];
  // Interleave aggregates so that a stream batch mixes them; some commits hold several events (transactions).
  for (let round = 0; round < eventsEach; round += 2) {
    for (let a = 0; a < aggregates; a++) {
      const aggregateId = `metric-${a}`;
      const count = Math.min(2, eventsEach - round);
      const events = Array.from({ length: count }, (_, i) => ({
        eventType: round + i === 0 ? 'AlertCreated' : 'AlertTriggered',
        data: { n: round + i, ...(options.bigEvent && a === 0 && round === 2 && i === 0 ? { blob: 'x'.repeat(300 * 1024) } : {}) },
      }));
      await store.append(aggregateId, events, { expectedVersion: round === 0 ? NO_STREAM : round, aggregateType: 'Alert', correlationId: `corr-${a}` });
      for (let i = 0; i < count; i++) expected.push({ aggregateId, eventSequence: round + i + 1 });
    }
  }
  // Non-event items in the same table: their stream records must be ignored.
  await store.saveSnapshot({ aggregateId: 'metric-0', aggregateType: 'Alert', version: 2, reducerVersion: 'v1', state: { ok: true } });
  await store.append('metric-idem', [{ eventType: 'AlertCreated', data: {} }], { expectedVersion: NO_STREAM, aggregateType: 'Alert', idempotencyKey: 'k1' });
  expected.push({ aggregateId: 'metric-idem', eventSequence: 1 });
  return { tableName, store, expected };
}

function handlers() {
  const tools = powertools('test');
  const ebClient = new EventBridgeClient({ region: 'us-east-1' });
  const reporter = new ErrorReporter({ component: 'outbox-publisher', busName: 'errors', client: ebClient, log: () => undefined });
  const publisher = createPublisherHandler({
    tools,
    reporter,
    publisher: new EventBusPublisher({ busName: 'domain', client: ebClient, maxAttempts: 4, sleep: async () => undefined }),
  });
  const deadLetter = createDeadLetterHandler({
    tools,
    reporter,
    streams,
    sqs: new SQSClient({ region: 'us-east-1' }),
    deadLetterQueueUrl: 'https://sqs.local/dlq',
  });
  const onFailure = async (record: OnFailureRecord) => {
    const response = await deadLetter({ Records: [{ messageId: `m-${Math.random()}`, body: JSON.stringify(record) }] } as unknown as SQSEvent);
    expect(response.batchItemFailures).toEqual([]);
  };
  return { publisher, onFailure };
}

/** Checks the ordering rule on everything the bus accepted, and returns each event's first acceptance. */
function assertPerAggregateOrder(accepted: EventEnvelope[]): Set<string> {
  const seen = new Set<string>();
  for (const event of accepted) {
    for (let s = 1; s < event.eventSequence; s++) {
      expect({ event: `${event.aggregateId}#${event.eventSequence}`, earlierPublished: seen.has(`${event.aggregateId}#${s}`) }).toEqual({
        event: `${event.aggregateId}#${event.eventSequence}`,
        earlierPublished: true,
      });
    }
    seen.add(`${event.aggregateId}#${event.eventSequence}`);
  }
  return seen;
}

beforeEach(() => {
  sqsMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'x' });
});

test('[mocked EventBridge + SQS] clean run: every committed event published once, in order, as a clean envelope', async () => {
  const { tableName, store, expected } = await seedStore(4, 6);
  const bus = fakeEventBridge(() => 'ok');
  const { publisher, onFailure } = handlers();
  for (const shard of await readStream(client, streams, tableName)) {
    await driveStream(shard, publisher, { batchSize: 7, retryAttempts: 3, onFailure });
  }
  const published = assertPerAggregateOrder(bus.accepted);
  expect([...published].sort()).toEqual(expected.map((e) => `${e.aggregateId}#${e.eventSequence}`).sort());
  expect(bus.accepted).toHaveLength(expected.length); // no duplicates when nothing fails
  // The detail is exactly the stored envelope (not DynamoDB JSON), and nothing but events was published.
  const stored = await store.load('metric-1');
  const epoch = (e: EventEnvelope) => Math.floor(Date.parse(e.timestamp) / 1000);
  expect(bus.accepted.filter((e) => e.aggregateId === 'metric-1')).toEqual(stored.map((e) => ({ ...e, timestampEpochSeconds: epoch(e) })));
  const firstCall = eventBridge.commandCalls(PutEventsCommand).find((c) => c.args[0].input.Entries![0].EventBusName === 'domain')!;
  expect(firstCall.args[0].input.Entries![0]).toMatchObject({ EventBusName: 'domain', Source: 'skafu.observability', DetailType: 'AlertCreated' });
  expect(bus.errors).toEqual([]);
  expect(deadLetters()).toEqual([]);
});

test.each([1, 2, 3])('[mocked EventBridge + SQS] 30%% of entries fail at random on every call (seed %i): none lost, none reordered', async (seed) => {
  const { tableName, expected } = await seedStore(6, 8);
  const random = seededRandom(seed);
  const bus = fakeEventBridge(() => {
    const r = random();
    if (r < 0.2) return { code: 'InternalFailure' };
    if (r < 0.3) return { code: 'ThrottlingException' };
    return 'ok';
  });
  const { publisher, onFailure } = handlers();
  for (const shard of await readStream(client, streams, tableName)) {
    await driveStream(shard, publisher, { batchSize: 10, retryAttempts: 10, onFailure });
  }
  const published = assertPerAggregateOrder(bus.accepted);
  const deadLettered = new Set(deadLetters().flatMap((m) => m.events.map((e) => `${e.aggregateId}#${e.eventSequence}`)));
  for (const e of expected) {
    const key = `${e.aggregateId}#${e.eventSequence}`;
    expect({ key, delivered: published.has(key) || deadLettered.has(key) }).toEqual({ key, delivered: true });
  }
  expect(bus.calls).toBeGreaterThan(expected.length / 10);
  // Publication failures that were retried were reported, each naming its events.
  for (const error of bus.errors.filter((e) => e.errorType === 'EventPublicationFailed')) {
    const pointer = expect.objectContaining({ aggregateId: expect.any(String), eventSequence: expect.any(Number) });
    expect(error.metadata.undelivered).toEqual(expect.arrayContaining([pointer]));
  }
});

test('[mocked EventBridge + SQS] whole PutEvents calls throttled at random: retried, none lost, none reordered', async () => {
  const { tableName, expected } = await seedStore(5, 6);
  const random = seededRandom(42);
  const throttledCalls = new Set<number>();
  const bus = fakeEventBridge((_i, call) => {
    if (!throttledCalls.has(call) && random() < 0.4) throttledCalls.add(call);
    return throttledCalls.has(call) ? 'throw-call' : 'ok';
  });
  const { publisher, onFailure } = handlers();
  for (const shard of await readStream(client, streams, tableName)) {
    await driveStream(shard, publisher, { batchSize: 10, retryAttempts: 10, onFailure });
  }
  expect(throttledCalls.size).toBeGreaterThan(0);
  const published = assertPerAggregateOrder(bus.accepted);
  expect(expected.every((e) => published.has(`${e.aggregateId}#${e.eventSequence}`))).toBe(true);
});

test('[mocked EventBridge + SQS] the bus refuses everything: every event ends in the dead-letter path, named, with error events', async () => {
  const { tableName, expected } = await seedStore(3, 4);
  const bus = fakeEventBridge(() => 'throw-call');
  const { publisher, onFailure } = handlers();
  let failedBatches = 0;
  for (const shard of await readStream(client, streams, tableName)) {
    failedBatches += (await driveStream(shard, publisher, { batchSize: 5, retryAttempts: 2, onFailure })).failedBatches;
  }
  expect(bus.accepted).toEqual([]);
  expect(failedBatches).toBeGreaterThan(0);
  const messages = deadLetters();
  const named = messages.flatMap((m) => m.events.map((e) => `${e.aggregateId}#${e.eventSequence}`));
  expect(named.sort()).toEqual(expected.map((e) => `${e.aggregateId}#${e.eventSequence}`).sort());
  for (const m of messages) {
    expect(m).toMatchObject({ kind: 'skafu.undelivered-events', version: 1, streamBatch: expect.objectContaining({ shardId: expect.any(String) }) });
    // The message says how to republish each aggregate from its first undelivered event.
    for (const e of m.events) {
      const first = Math.min(...m.events.filter((x) => x.aggregateId === e.aggregateId).map((x) => x.eventSequence));
      expect(m.republish).toContainEqual({ domain: 'observability', aggregateId: e.aggregateId, fromSequence: first });
    }
  }
  const deadLetterErrors = bus.errors.filter((e) => e.errorType === 'EventsDeadLettered');
  expect(deadLetterErrors).toHaveLength(messages.length);
  expect(deadLetterErrors.every((e) => e.severity === 'CRITICAL')).toBe(true);
  expect(deadLetterErrors.flatMap((e) => (e.metadata.events as Array<{ aggregateId: string; eventSequence: number }>).map((p) => `${p.aggregateId}#${p.eventSequence}`)).sort()).toEqual(named.sort());
  expect(bus.errors.filter((e) => e.errorType === 'EventPublicationFailed').length).toBeGreaterThan(0);
});

test('[mocked EventBridge + SQS] an event over 256 KB is published as a claim check, in its place, and reported', async () => {
  const { tableName, store } = await seedStore(2, 4, { bigEvent: true });
  const bus = fakeEventBridge(() => 'ok');
  const { publisher, onFailure } = handlers();
  for (const shard of await readStream(client, streams, tableName)) {
    await driveStream(shard, publisher, { batchSize: 10, retryAttempts: 2, onFailure });
  }
  assertPerAggregateOrder(bus.accepted);
  const big = bus.accepted.find((e) => e.aggregateId === 'metric-0' && e.eventSequence === 3) as EventEnvelope & { claimCheck?: unknown };
  expect(big).toMatchObject({ data: {}, metadata: {}, claimCheck: { dataOmitted: true, aggregateId: 'metric-0', eventSequence: 3 } });
  expect((await store.load('metric-0', { fromSequence: 3, toSequence: 3 }))[0].data.blob).toHaveLength(300 * 1024);
  expect(bus.errors).toEqual([expect.objectContaining({ errorType: 'EventClaimChecked', severity: 'MEDIUM', correlationId: 'corr-0' })]);
});

test('[mocked EventBridge + SQS] a non-retryable entry error holds back the rest of its aggregate, other aggregates flow', async () => {
  const { tableName } = await seedStore(3, 4);
  const bus = fakeEventBridge(() => 'ok');
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    const entries = input.Entries ?? [];
    if (entries[0].EventBusName === 'errors') {
      bus.errors.push(...entries.map((e) => JSON.parse(e.Detail!) as ErrorEventDetail));
      return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: 'e' })) };
    }
    const results = entries.map((e) => {
      const event = JSON.parse(e.Detail!) as EventEnvelope;
      if (event.aggregateId === 'metric-1' && event.eventSequence === 2) return { ErrorCode: 'MalformedDetail', ErrorMessage: 'injected' };
      bus.accepted.push(event);
      return { EventId: 'ok' };
    });
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  });
  const { publisher, onFailure } = handlers();
  for (const shard of await readStream(client, streams, tableName)) {
    await driveStream(shard, publisher, { batchSize: 20, retryAttempts: 1, onFailure });
  }
  assertPerAggregateOrder(bus.accepted);
  const metric1 = bus.accepted.filter((e) => e.aggregateId === 'metric-1').map((e) => e.eventSequence);
  expect(new Set(metric1)).toEqual(new Set([1])); // 2 refused, 3 and 4 held back
  expect(new Set(bus.accepted.filter((e) => e.aggregateId === 'metric-2').map((e) => e.eventSequence))).toEqual(new Set([1, 2, 3, 4]));
  const named = deadLetters().flatMap((m) => m.events).filter((e) => e.aggregateId === 'metric-1').map((e) => e.eventSequence);
  expect(named).toEqual(expect.arrayContaining([2, 3, 4]));
  const failure = bus.errors.find((e) => e.errorType === 'EventPublicationFailed')!;
  expect(failure.metadata.undelivered).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ aggregateId: 'metric-1', eventSequence: 2, errorCode: 'MalformedDetail' }),
      expect.objectContaining({ aggregateId: 'metric-1', eventSequence: 3, errorCode: 'BlockedByEarlierEvent' }),
    ]),
  );
});
