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
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
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

/**
 * The hold read a batch can skip (DeliveredUpTo in publisher.lambda.ts). Each `createPublisherHandler` is one
 * Lambda execution environment (its own memory); the records are the real stream records of DynamoDB Local,
 * handed to whichever environment the test names, as Lambda may hand a shard's batches to any of them.
 */
describe('the hold read: skipped only where no hold can stop the event', () => {
  let tableName: string;
  let holds: HoldStore;
  let store: EventStore;
  let accepted: EventEnvelope[];
  let failing: (e: EventEnvelope) => boolean;
  let reads: string[][];

  beforeEach(async () => {
    tableName = await createEventStoreTable(client);
    holds = new HoldStore(await createHoldTable(), client);
    store = new EventStore({ tableName, domain: 'shop', client });
    accepted = [];
    failing = () => false;
    reads = [];
    const get = holds.get.bind(holds);
    jest.spyOn(holds, 'get').mockImplementation(async (ids) => {
      reads.push([...ids]);
      return get(ids);
    });
    eventBridge.reset();
    eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
      const entries = input.Entries ?? [];
      if (entries.every((x) => x.EventBusName === 'errors')) return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: 'err' })) };
      const results = entries.map((x) => {
        const e = JSON.parse(x.Detail!) as EventEnvelope;
        if (failing(e)) return { ErrorCode: 'InternalFailure', ErrorMessage: 'injected' };
        accepted.push(e);
        return { EventId: randomUUID() };
      });
      return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
    });
    sqsMock.reset();
    sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm' });
  });

  const ebClient = new EventBridgeClient({ region: 'us-east-1' });
  const publisher = new EventBusPublisher({ busName: 'domain', client: ebClient, maxAttempts: 2, sleep: async () => undefined });
  /** A new execution environment of the publisher. */
  const environment = (rememberedAggregates?: number) =>
    createPublisherHandler({
      tools: powertools('test'),
      holds,
      deadLetters: { sqs: new SQSClient({ region: 'us-east-1' }), queueUrl: 'https://sqs.local/dlq' },
      reporter: new ErrorReporter({ component: 'outbox-publisher', busName: 'errors', client: ebClient, log: () => undefined }),
      publisher,
      rememberedAggregates,
    });
  /** Appends one event to each aggregate named, in that order, and returns the stream records of every event so far. */
  async function append(...ids: string[]): Promise<DynamoDBRecord[]> {
    for (const id of ids) await store.append(id, [{ eventType: 'ItemAdded', data: { id } }], { expectedVersion: ANY, aggregateType: 'Cart' });
    const [shard] = await readStream(client, streams, tableName);
    return shard.records as DynamoDBRecord[];
  }
  const record = (records: DynamoDBRecord[], id: string, seq: number) =>
    records.find((r) => r.dynamodb?.NewImage?.aggregateId?.S === id && r.dynamodb?.NewImage?.eventSequence?.N === String(seq))!;
  const sequences = (id: string) => accepted.filter((e) => e.aggregateId === id).map((e) => e.eventSequence);

  test('first events and the successors of what the same environment delivered need no read; another environment reads', async () => {
    const records = await append('cart-a', 'cart-b', 'cart-a', 'cart-b', 'cart-a', 'cart-a');
    const one = environment();
    await one({ Records: [record(records, 'cart-a', 1), record(records, 'cart-b', 1)] });
    await one({ Records: [record(records, 'cart-a', 2), record(records, 'cart-b', 2), record(records, 'cart-a', 3)] });
    expect(reads).toEqual([]);
    // Another environment (a cold start, or one that served other shards) knows nothing of cart-a: it reads.
    await environment()({ Records: [record(records, 'cart-a', 4)] });
    expect(reads).toEqual([['shop#cart-a']]);
    expect(sequences('cart-a')).toEqual([1, 2, 3, 4]);
    expect(sequences('cart-b')).toEqual([1, 2]);
  });

  test('a hold created by another environment after this one delivered an earlier event stops this one', async () => {
    const records = await append('cart-x', 'cart-x', 'cart-x', 'cart-x');
    const one = environment();
    const two = environment();
    await one({ Records: [record(records, 'cart-x', 1)] }); // one remembers cart-x up to 1
    failing = (e) => e.aggregateId === 'cart-x' && e.eventSequence === 3;
    await two({ Records: [record(records, 'cart-x', 2), record(records, 'cart-x', 3)] }); // 2 delivered, 3 held
    failing = () => false;
    await one({ Records: [record(records, 'cart-x', 4)] }); // 4 does not follow 1: one reads, and holds 4
    expect(reads).toEqual([['shop#cart-x'], ['shop#cart-x']]); // two's read of 2, one's read of 4
    expect(sequences('cart-x')).toEqual([1, 2]);
    expect((await holds.get(['shop#cart-x'])).get('shop#cart-x')).toEqual(expect.objectContaining({ fromSequence: 3, lastHeldSequence: 4 }));
  });

  test('an undelivered event is not remembered: the same environment reads for its aggregate next time', async () => {
    const records = await append('cart-y', 'cart-y', 'cart-z', 'cart-y');
    const one = environment();
    failing = (e) => e.aggregateId === 'cart-y' && e.eventSequence === 2;
    await one({ Records: [record(records, 'cart-y', 1), record(records, 'cart-y', 2), record(records, 'cart-z', 1)] });
    failing = () => false;
    await one({ Records: [record(records, 'cart-y', 3)] });
    expect(reads).toEqual([['shop#cart-y']]);
    expect(sequences('cart-y')).toEqual([1]);
    expect(sequences('cart-z')).toEqual([1]);
    expect((await holds.get(['shop#cart-y'])).get('shop#cart-y')).toEqual(expect.objectContaining({ fromSequence: 2, lastHeldSequence: 3 }));
  });

  test('what the skip does not see: a retried batch redelivers an event this environment delivered, another holds it', async () => {
    const records = await append('cart-r', 'cart-r', 'cart-r');
    const one = environment();
    const two = environment();
    await one({ Records: [record(records, 'cart-r', 1), record(records, 'cart-r', 2)] });
    // Suppose one's invocation failed after sending: Lambda retries the batch, two gets it and fails to deliver 2.
    failing = (e) => e.aggregateId === 'cart-r' && e.eventSequence === 2;
    await two({ Records: [record(records, 'cart-r', 2)] });
    failing = () => false;
    await one({ Records: [record(records, 'cart-r', 3)] }); // follows 2, which one delivered: published without a read
    expect(sequences('cart-r')).toEqual([1, 2, 3]); // nothing overtook an undelivered event
    // The republish sends 2 and 3 again (marked replay), which consumers deduplicate, and releases the aggregate.
    const [message] = sqsMock.commandCalls(SendMessageCommand).map((c) => JSON.parse(c.args[0].input.MessageBody!) as UndeliveredEventsMessage);
    const republish = createRepublishHandler({ tools: powertools('test'), holds, store: new EventStore({ tableName, client }), publisher });
    expect((await republish({ Records: [{ body: JSON.stringify(message) }] })).holds).toEqual(['released']);
    expect(sequences('cart-r')).toEqual([1, 2, 3, 2, 3]);
    expect(accepted.slice(3).every((e) => e.metadata.replay === true)).toBe(true);
  });

  test("a run starts only at sequence 1: a later event handled before an earlier one (one transaction's records) vouches for nothing", async () => {
    await append('cart-g', 'cart-g');
    await store.append('cart-g', [{ eventType: 'ItemAdded', data: {} }, { eventType: 'ItemAdded', data: {} }], { expectedVersion: 2, aggregateType: 'Cart' });
    const records = await append('cart-g');
    const one = environment();
    await one({ Records: [record(records, 'cart-g', 1), record(records, 'cart-g', 2)] });
    // The stream shows the transaction's 4 before its 3: 4 is published after a read (as before this memory)...
    await one({ Records: [record(records, 'cart-g', 4)] });
    failing = (e) => e.aggregateId === 'cart-g' && e.eventSequence === 3;
    await one({ Records: [record(records, 'cart-g', 3)] }); // ...3 (no read: it follows 2) cannot be delivered: held
    failing = () => false;
    await one({ Records: [record(records, 'cart-g', 5)] }); // 5 follows 4, which one delivered, but 3 is missing
    expect(reads).toEqual([['shop#cart-g'], ['shop#cart-g']]); // the reads for 4 and for 5
    expect(sequences('cart-g')).toEqual([1, 2, 4]);
    expect((await holds.get(['shop#cart-g'])).get('shop#cart-g')).toEqual(expect.objectContaining({ fromSequence: 3, lastHeldSequence: 5 }));
  });

  test('a gap inside a batch needs the read; an event before a hold is published, not dropped as a copy', async () => {
    await append('cart-h', 'cart-h', 'cart-h', 'cart-h', 'cart-h');
    await store.append('cart-h', [6, 7, 8].map((n) => ({ eventType: 'ItemAdded', data: { n } })), { expectedVersion: 5, aggregateType: 'Cart' });
    const records = await append();
    const one = environment();
    await one({ Records: [1, 2, 3, 4, 5].map((n) => record(records, 'cart-h', n)) });
    // One transaction's records, out of order: 7 first, and it cannot be delivered (held from 7)...
    failing = (e) => e.aggregateId === 'cart-h' && e.eventSequence === 7;
    await one({ Records: [record(records, 'cart-h', 7)] });
    failing = () => false;
    // ...then 6 and 8: 6 follows 5, but 8 comes after a gap, so the holds are read: 6 goes out, 8 waits behind 7.
    await one({ Records: [record(records, 'cart-h', 6), record(records, 'cart-h', 8)] });
    expect(reads).toEqual([['shop#cart-h'], ['shop#cart-h']]);
    expect(sequences('cart-h')).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await holds.get(['shop#cart-h'])).get('shop#cart-h')).toEqual(expect.objectContaining({ fromSequence: 7, lastHeldSequence: 8 }));
  });

  test('a hold released between its two writes is written again, not taken as held', async () => {
    const released = { streamId: 'shop#cart-w', domain: 'shop', aggregateId: 'cart-w', errorCode: 'X', heldAt: new Date().toISOString() };
    await holds.hold({ ...released, fromSequence: 2, lastHeldSequence: 2 });
    // The republisher releases the old hold right after the new hold's conditional Put found it.
    const recordHeld = holds.recordHeld.bind(holds);
    jest.spyOn(holds, 'recordHeld').mockImplementationOnce(async (id, seq) => {
      expect(await holds.release(id, 2, 2)).toBe('released');
      return recordHeld(id, seq);
    });
    await holds.hold({ ...released, fromSequence: 5, lastHeldSequence: 6 });
    expect((await holds.get(['shop#cart-w'])).get('shop#cart-w')).toEqual(expect.objectContaining({ fromSequence: 5, lastHeldSequence: 6 }));
  });

  test("an earlier event that cannot be delivered either lowers the hold's first sequence: a release from the later one is refused", async () => {
    const base = { streamId: 'shop#cart-l', domain: 'shop', aggregateId: 'cart-l', errorCode: 'X', heldAt: new Date().toISOString() };
    await holds.hold({ ...base, fromSequence: 7, lastHeldSequence: 7 });
    await holds.hold({ ...base, fromSequence: 6, lastHeldSequence: 6 }); // 6 arrived after 7 (one transaction) and failed
    expect((await holds.get(['shop#cart-l'])).get('shop#cart-l')).toEqual(expect.objectContaining({ fromSequence: 6, lastHeldSequence: 7 }));
    expect(await holds.release('shop#cart-l', 7, 7)).toBe('not-covered'); // the first message's republish, from 7
    expect(await holds.release('shop#cart-l', 6, 7)).toBe('released');
  });

  test('the republish publishes only what the requested aggregate stored as itself, and names the rest', async () => {
    const billing = new EventStore({ tableName, domain: 'billing', client });
    await billing.append('c1', [{ eventType: 'InvoiceIssued', data: {} }], { expectedVersion: ANY, aggregateType: 'Invoice' });
    const [genuine] = await billing.load('c1');
    // Written under billing's key by a writer confined to it, claiming to be shop's (no itemType: the mapping's
    // filter never shows it to the publisher).
    const { itemType: _, ...forged } = { ...genuine, streamId: 'billing#c1', eventSequence: 2, eventId: 'forged', source: 'skafu.shop', itemType: '' };
    await DynamoDBDocumentClient.from(client).send(new PutCommand({ TableName: tableName, Item: forged }));
    await holds.hold({ streamId: 'billing#c1', domain: 'billing', aggregateId: 'c1', fromSequence: 1, lastHeldSequence: 1, errorCode: 'X', heldAt: 'now' });
    const republish = createRepublishHandler({ tools: powertools('test'), holds, store: new EventStore({ tableName, client }), publisher });
    const outcome = await republish({ domain: 'billing', aggregateId: 'c1', fromSequence: 1 });
    expect(accepted.map((e) => `${e.source}/${e.aggregateId}#${e.eventSequence}`)).toEqual(['skafu.billing/c1#1']);
    expect(outcome.refused).toEqual([{ domain: 'billing', aggregateId: 'c1', eventSequence: 2, claims: 'skafu.shop c1' }]);
    // Not everything in the range went out: the hold stays for an operator to decide.
    expect(outcome.holds).toEqual(['refused']);
    expect((await holds.get(['billing#c1'])).size).toBe(1);
  });

  test('the same aggregate id in two domains, in one batch: each is its own aggregate, every event is published', async () => {
    const billing = new EventStore({ tableName, domain: 'billing', client });
    await store.append('c1', [{ eventType: 'ItemAdded', data: {} }], { expectedVersion: ANY, aggregateType: 'Cart' });
    await billing.append('c1', [{ eventType: 'InvoiceIssued', data: {} }, { eventType: 'InvoicePaid', data: {} }], { expectedVersion: ANY, aggregateType: 'Invoice' });
    const [shard] = await readStream(client, streams, tableName);
    failing = (e) => e.source === 'skafu.billing' && e.eventSequence === 2;
    await environment()({ Records: shard.records as DynamoDBRecord[] });
    expect(accepted.map((e) => `${e.source}/${e.aggregateId}#${e.eventSequence}`).sort()).toEqual(['skafu.billing/c1#1', 'skafu.shop/c1#1']);
    // Only billing's c1 is held, from its own undelivered event.
    expect([...(await holds.get(['shop#c1', 'billing#c1'])).values()]).toEqual([expect.objectContaining({ streamId: 'billing#c1', fromSequence: 2 })]);
  });

  test('the dead-letter message is sent before the hold: when it cannot be sent, nothing is held and the batch is retried', async () => {
    const records = await append('cart-d', 'cart-d');
    const one = environment();
    await one({ Records: [record(records, 'cart-d', 1)] });
    failing = (e) => e.aggregateId === 'cart-d';
    sqsMock.on(SendMessageCommand).rejects(new Error('SQS unavailable'));
    const response = await one({ Records: [record(records, 'cart-d', 2)] });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: record(records, 'cart-d', 2).dynamodb!.SequenceNumber }]);
    expect((await holds.get(['shop#cart-d'])).size).toBe(0); // no hold that no message could release
    // Lambda retries; SQS is back: the message goes out, then the hold.
    sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm' });
    expect((await one({ Records: [record(records, 'cart-d', 2)] })).batchItemFailures).toEqual([]);
    expect((await holds.get(['shop#cart-d'])).get('shop#cart-d')).toEqual(expect.objectContaining({ fromSequence: 2 }));
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(2);
  });

  test('an environment remembers a bounded number of aggregates; 0 turns the skip off', async () => {
    const records = await append('cart-p', 'cart-q', 'cart-p', 'cart-q');
    const small = environment(1);
    await small({ Records: [record(records, 'cart-p', 1), record(records, 'cart-q', 1)] }); // cart-q pushes cart-p out
    await small({ Records: [record(records, 'cart-p', 2), record(records, 'cart-q', 2)] });
    expect(reads).toEqual([['shop#cart-p']]);
    reads.length = 0;
    const off = environment(0);
    const more = await append('cart-n');
    await off({ Records: [record(more, 'cart-n', 1)] });
    expect(reads).toEqual([['shop#cart-n']]);
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => environment(bad)).toThrow(/rememberedAggregates must be a whole number/);
  });
});
