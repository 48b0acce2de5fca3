/**
 * Per-aggregate order on the bus survives a give-up (issue 10). Real stream records from DynamoDB Local, fed in
 * several batches to the bundled publisher like Lambda's event source mapping; the held-aggregates table is
 * created from the construct's synthesized definition. EventBridge and SQS have no local engine: mocked, with
 * entries failing by aggregate.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { DomainEventBus, ErrorBus, EventStorePublisher, EventStoreTable } from '../../src';
import { powertools } from '../../src/internal/powertools';
import { createPublisherHandler } from '../../src/publisher/publisher.lambda';
import { createRepublishHandler } from '../../src/publisher/republish.lambda';
import {
  ANY,
  ErrorReporter,
  EventBusPublisher,
  EventStore,
  HoldStore,
  type ErrorEventDetail,
  type EventEnvelope,
  type UndeliveredEventsMessage,
} from '../../src/runtime';
import { driveStream, localStreamsClient, readStream } from '../support/streams';
import { createEventStoreTable, createTableInputFromCfn, localClient } from '../support/tables';

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

async function createHoldTable(): Promise<string> {
  const stack = new Stack(new App(), 'Outbox');
  new EventStorePublisher(stack, 'Outbox', { eventStore: new EventStoreTable(stack, 'Store'), eventBus: new DomainEventBus(stack, 'Bus').eventBus, errorBus: new ErrorBus(stack, 'Errors') });
  const [, table] = Object.entries(Template.fromStack(stack).findResources('AWS::DynamoDB::Table')).find(([id]) => /HeldAggregates/.test(id))!;
  const name = `holds-${randomUUID()}`;
  await client.send(new CreateTableCommand(createTableInputFromCfn((table as any).Properties, name)));
  return name;
}

test('a give-up in the middle of several batches: the aggregate is held, others are sent once, republish restores order', async () => {
  const tableName = await createEventStoreTable(client);
  const holdTable = await createHoldTable();
  const store = new EventStore({ tableName, domain: 'shop', client });
  const aggregates = ['cart-a', 'cart-b', 'cart-c'];
  // Interleaved: a1 b1 c1 a2 b2 c2 ... so that every batch of 4 mixes aggregates.
  for (let seq = 1; seq <= 4; seq++) {
    for (const id of aggregates) await store.append(id, [{ eventType: 'ItemAdded', data: { n: seq } }], { expectedVersion: ANY, aggregateType: 'Cart' });
  }

  const accepted: EventEnvelope[] = [];
  const errors: ErrorEventDetail[] = [];
  let failing = (e: EventEnvelope) => e.aggregateId === 'cart-b' && e.eventSequence === 2;
  const sends: number[] = [];
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    const entries = input.Entries ?? [];
    if (entries.every((x) => x.EventBusName === 'errors')) {
      errors.push(...entries.map((x) => JSON.parse(x.Detail!) as ErrorEventDetail));
      return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: 'err' })) };
    }
    const results = entries.map((x) => {
      const e = JSON.parse(x.Detail!) as EventEnvelope;
      if (failing(e)) return { ErrorCode: 'InternalFailure', ErrorMessage: 'injected' };
      accepted.push(e);
      return { EventId: randomUUID() };
    });
    sends.push(entries.length);
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  });
  sqsMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm' });

  const tools = powertools('test');
  const ebClient = new EventBridgeClient({ region: 'us-east-1' });
  const publisher = new EventBusPublisher({ busName: 'domain', client: ebClient, maxAttempts: 3, sleep: async () => undefined });
  const holds = new HoldStore(holdTable, client);
  const handler = createPublisherHandler({
    tools,
    holds,
    deadLetters: { sqs: new SQSClient({ region: 'us-east-1' }), queueUrl: 'https://sqs.local/dlq' },
    reporter: new ErrorReporter({ component: 'outbox-publisher', busName: 'errors', client: ebClient, log: () => undefined }),
    publisher,
  });

  // Three batches of four records; the mapping would retry a failed batch twice before giving up.
  const [shard] = await readStream(client, streams, tableName);
  const drive = await driveStream(shard, handler, { batchSize: 4, retryAttempts: 2, onFailure: async () => { throw new Error('no batch may fail'); } });
  expect(drive).toEqual({ invocations: 3, failedBatches: 0 }); // no batch retried: nothing re-sent

  const sequences = (id: string) => accepted.filter((e) => e.aggregateId === id).map((e) => e.eventSequence);
  expect(sequences('cart-a')).toEqual([1, 2, 3, 4]); // once each, in order
  expect(sequences('cart-c')).toEqual([1, 2, 3, 4]);
  expect(sequences('cart-b')).toEqual([1]); // held from 2: 3 and 4 never overtake it
  expect(await holds.get(['shop#cart-b'])).toEqual(new Map([['shop#cart-b', expect.objectContaining({ domain: 'shop', aggregateId: 'cart-b', fromSequence: 2, lastHeldSequence: 4, errorCode: 'InternalFailure' })]]));
  const [message] = sqsMock.commandCalls(SendMessageCommand).map((c) => JSON.parse(c.args[0].input.MessageBody!) as UndeliveredEventsMessage);
  expect(message.republish).toEqual([{ domain: 'shop', aggregateId: 'cart-b', fromSequence: 2 }]);
  expect(errors.filter((e) => e.errorType === 'AggregateHeld')).toEqual([expect.objectContaining({ severity: 'CRITICAL' })]);

  // The bus is fixed; the operator republishes the dead-letter message: cart-b goes out in order and is released.
  failing = () => false;
  const republish = createRepublishHandler({ tools, holds, store: new EventStore({ tableName, client }), publisher });
  const outcome = await republish({ Records: [{ body: JSON.stringify(message) }] });
  expect(outcome.holds).toEqual(['released']);
  expect(sequences('cart-b')).toEqual([1, 2, 3, 4]);
  expect(accepted.filter((e) => e.aggregateId === 'cart-b' && e.eventSequence > 1).every((e) => e.metadata.replay === true)).toBe(true);
  expect((await holds.get(['shop#cart-b'])).size).toBe(0);

  // Released: its next event flows normally, and the already-handled records are not re-sent.
  await store.append('cart-b', [{ eventType: 'ItemAdded', data: { n: 5 } }], { expectedVersion: 4, aggregateType: 'Cart' });
  const [after] = await readStream(client, streams, tableName);
  const fresh = after.records.slice(shard.records.length) as DynamoDBRecord[];
  await driveStream({ ...after, records: fresh }, handler, { batchSize: 4, retryAttempts: 0, onFailure: async () => undefined });
  expect(sequences('cart-b')).toEqual([1, 2, 3, 4, 5]);
  expect(accepted).toHaveLength(13); // every event exactly once
});

test('an event committed while its aggregate is being republished is published after it, not lost', async () => {
  const holds = new HoldStore(await createHoldTable(), client);
  await holds.hold({ streamId: 'shop#cart-x', domain: 'shop', aggregateId: 'cart-x', fromSequence: 2, lastHeldSequence: 2, errorCode: 'X', heldAt: new Date().toISOString() });
  // The publisher holds event 3 after the republisher loaded up to 2: the release is refused as 'behind'.
  expect(await holds.recordHeld('shop#cart-x', 3)).toBe(true);
  expect(await holds.release('shop#cart-x', 2, 2)).toBe('behind');
  expect(await holds.release('shop#cart-x', 3, 3)).toBe('not-covered');
  expect(await holds.release('shop#cart-x', 2, 3)).toBe('released');
  // Released: the publisher learns it when it tries to record the next event, and publishes it itself.
  expect(await holds.recordHeld('shop#cart-x', 4)).toBe(false);
});
