/**
 * The runtime event store client against AWS's DynamoDB Local (started by the jest global setup), on a table
 * created from the EventStoreTable construct's own synthesized definition.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import {
  ANY,
  ConcurrencyError,
  EventStore,
  EventStoreValidationError,
  IdempotencyKeyReuseError,
  NO_STREAM,
  type NewEvent,
} from '../../src/runtime';
import { createEventStoreTable, localClient } from '../support/tables';

let client: DynamoDBClient;
let tableName: string;
let store: EventStore;

beforeAll(async () => {
  client = localClient();
  tableName = await createEventStoreTable(client);
  store = new EventStore({ tableName, domain: 'projects', client });
});

afterAll(() => client.destroy());

let counter = 0;
const newId = (prefix = 'agg') => `${prefix}-${Date.now()}-${++counter}`;
const created = (name: string): NewEvent => ({ eventType: 'ProjectCreated', data: { name } });
const renamed = (name: string): NewEvent => ({ eventType: 'ProjectRenamed', data: { name } });

async function rawItemCount(): Promise<number> {
  let count = 0;
  let start: Record<string, any> | undefined;
  do {
    const out = await client.send(new ScanCommand({ TableName: tableName, Select: 'COUNT', ExclusiveStartKey: start }));
    count += out.Count ?? 0;
    start = out.LastEvaluatedKey;
  } while (start);
  return count;
}

async function expectRejected(promise: Promise<unknown>, ...messages: RegExp[]): Promise<EventStoreValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EventStoreValidationError);
  for (const m of messages) expect((err as Error).message).toMatch(m);
  return err as EventStoreValidationError;
}

describe('append and load', () => {
  test('appends events with a complete envelope and loads them back in order', async () => {
    const id = newId();
    const result = await store.append(id, [created('a'), renamed('b')], {
      expectedVersion: NO_STREAM,
      aggregateType: 'Project',
      correlationId: 'corr-1',
      metadata: { userId: 'user-1', requestId: 'req-1' },
    });
    expect(result).toMatchObject({ aggregateId: id, firstSequence: 1, lastSequence: 2, nextExpectedVersion: 2, idempotentReplay: false });

    const events = await store.load(id);
    expect(events).toEqual(result.events);
    expect(events.map((e) => e.eventSequence)).toEqual([1, 2]);
    const [first] = events;
    expect(first.eventId).toMatch(/^[0-9a-f-]{36}$/);
    expect(first).toMatchObject({
      eventType: 'ProjectCreated',
      eventVersion: 1,
      aggregateId: id,
      aggregateType: 'Project',
      correlationId: 'corr-1',
      causationId: 'corr-1',
      source: 'skafu.projects',
      data: { name: 'a' },
      metadata: { userId: 'user-1', requestId: 'req-1' },
    });
    expect(first.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // Storage-only attributes never leak into the envelope.
    expect(Object.keys(first).sort()).toEqual(
      ['aggregateId', 'aggregateType', 'causationId', 'correlationId', 'data', 'eventId', 'eventSequence', 'eventType', 'eventVersion', 'metadata', 'source', 'timestamp'],
    );
  });

  test('expected version: numbers, no-stream and any', async () => {
    const id = newId();
    await store.append(id, [created('a')], { expectedVersion: 0, aggregateType: 'Project' });
    await store.append(id, [renamed('b')], { expectedVersion: 1, aggregateType: 'Project' });
    const r = await store.append(id, [renamed('c')], { expectedVersion: ANY, aggregateType: 'Project' });
    expect(r.firstSequence).toBe(3);
    await expect(store.append(id, [created('again')], { expectedVersion: NO_STREAM, aggregateType: 'Project' })).rejects.toMatchObject({
      name: 'ConcurrencyError',
      aggregateId: id,
      expectedVersion: 'no-stream',
      actualVersion: 3,
    });
    // Stale version.
    await expect(store.append(id, [renamed('d')], { expectedVersion: 1, aggregateType: 'Project' })).rejects.toMatchObject({
      expectedVersion: 1,
      actualVersion: 3,
    });
    // A version the stream has not reached: refused, never a gap.
    await expect(store.append(id, [renamed('e')], { expectedVersion: 7, aggregateType: 'Project' })).rejects.toMatchObject({
      name: 'ConcurrencyError',
      expectedVersion: 7,
      actualVersion: 3,
    });
    expect((await store.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3]);
    expect(await store.readVersion(id)).toBe(3);
    expect(await store.readVersion(newId('missing'))).toBe(0);
  });

  test('load from a sequence and up to a sequence', async () => {
    const id = newId();
    await store.append(id, Array.from({ length: 10 }, (_, i) => renamed(`n${i}`)), { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    expect((await store.load(id, { fromSequence: 4 })).map((e) => e.eventSequence)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect((await store.load(id, { fromSequence: 4, toSequence: 6 })).map((e) => e.eventSequence)).toEqual([4, 5, 6]);
    expect(await store.load(newId('none'))).toEqual([]);
  });

  test('a stream bigger than 1 MB comes back whole (pagination)', async () => {
    const id = newId('big');
    const payload = 'x'.repeat(60_000);
    let version = 0;
    // 40 events of ~60 KB = ~2.4 MB: a DynamoDB Query page stops at 1 MB.
    for (let batch = 0; batch < 4; batch++) {
      const events = Array.from({ length: 10 }, (_, i) => ({ eventType: 'Blob', data: { i: batch * 10 + i, payload } }));
      version = (await store.append(id, events, { expectedVersion: version, aggregateType: 'Blob' })).nextExpectedVersion;
    }
    const events = await store.load(id);
    expect(events).toHaveLength(40);
    expect(events.map((e) => e.data.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(events.every((e) => e.data.payload === payload)).toBe(true);
  });

  test('100 events commit in one transaction; 101 are rejected before any write', async () => {
    const id = newId();
    const events = (n: number) => Array.from({ length: n }, (_, i) => renamed(`n${i}`));
    const before = await rawItemCount();
    await expectRejected(store.append(id, events(101), { expectedVersion: NO_STREAM, aggregateType: 'Project' }), /101 events in one commit; at most 100/);
    expect(await rawItemCount()).toBe(before);
    const r = await store.append(id, events(100), { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    expect(r.lastSequence).toBe(100);
    // With an idempotency key one action holds the key record.
    await expectRejected(
      store.append(newId(), events(100), { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: 'k-100' }),
      /at most 99 commit atomically with an idempotency key/,
    );
  });
});

describe('multi-event atomicity', () => {
  test('a conflict on any event of the batch writes none of it', async () => {
    const id = newId();
    await store.append(id, [created('a'), renamed('b')], { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    // A competing writer takes position 5 directly, in the middle of the batch's range 3..7.
    const doc = DynamoDBDocumentClient.from(client);
    await doc.send(new PutCommand({ TableName: tableName, Item: { streamId: `projects#${id}`, aggregateId: id, aggregateType: 'Project', eventSequence: 5, itemType: 'event', eventType: 'Planted', data: {} } }));
    const before = await rawItemCount();
    await expect(
      store.append(id, [renamed('c'), renamed('d'), renamed('e'), renamed('f'), renamed('g')], { expectedVersion: 2, aggregateType: 'Project' }),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await rawItemCount()).toBe(before);
    expect((await store.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 5]);
  });
});

describe('optimistic concurrency under contention', () => {
  test.each([1, 2, 3, 4, 5])('round %i: 20 appenders race on one aggregate; one wins, the rest get ConcurrencyError', async () => {
    const id = newId('race');
    await store.append(id, [created('start')], { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        store.append(id, [renamed(`w${i}`), renamed(`w${i}-bis`)], { expectedVersion: 1, aggregateType: 'Project' }),
      ),
    );
    const winners = outcomes.filter((o) => o.status === 'fulfilled');
    const losers = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(19);
    for (const loser of losers) {
      expect(loser.reason).toBeInstanceOf(ConcurrencyError);
      expect(loser.reason).toMatchObject({ aggregateId: id, expectedVersion: 1, actualVersion: 3 });
    }
    const events = await store.load(id);
    expect(events.map((e) => e.eventSequence)).toEqual([1, 2, 3]);
    // The winner's two events, both of them, and nobody else's.
    const winnerName = (events[1].data.name as string).replace(/-bis$/, '');
    expect(events[2].data.name).toBe(`${winnerName}-bis`);
  });

  test("20 'any' appenders all land, without gap or duplicate", async () => {
    const id = newId('any');
    const store2 = new EventStore({ tableName, domain: 'projects', client, anyVersionTimeBudgetMs: 20_000 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store2.append(id, [renamed(`a${i}`)], { expectedVersion: ANY, aggregateType: 'Project' })),
    );
    expect(new Set(results.map((r) => r.firstSequence)).size).toBe(20);
    const events = await store.load(id);
    expect(events.map((e) => e.eventSequence)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.data.name)).size).toBe(20);
  });
});

describe('idempotency', () => {
  test('a retried append with the same key writes nothing and returns the first result', async () => {
    const id = newId();
    const first = await store.append(id, [created('a'), renamed('b')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: `cmd-${id}` });
    const before = await rawItemCount();
    const again = await store.append(id, [created('a'), renamed('b')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: `cmd-${id}` });
    expect(await rawItemCount()).toBe(before);
    expect(again.idempotentReplay).toBe(true);
    expect(again.events).toEqual(first.events);
    expect(again).toMatchObject({ aggregateId: id, firstSequence: 1, lastSequence: 2 });
    expect(await store.readVersion(id)).toBe(2);
  });

  test('a retried create that generated a new aggregate id returns the first aggregate', async () => {
    const key = `create-${newId()}`;
    const first = await store.append(newId('gen'), [created('x')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key });
    const secondId = newId('gen');
    const retry = await store.append(secondId, [created('x')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key });
    expect(retry.aggregateId).toBe(first.aggregateId);
    expect(retry.idempotentReplay).toBe(true);
    expect(await store.readVersion(secondId)).toBe(0);
  });

  test('concurrent duplicates with one key: exactly one write, every caller gets the same result', async () => {
    const id = newId('dup');
    const key = `dup-${id}`;
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        store.append(id, [created('once')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key }),
      ),
    );
    expect(results.filter((r) => !r.idempotentReplay)).toHaveLength(1);
    expect(new Set(results.map((r) => r.events[0].eventId)).size).toBe(1);
    expect(await store.load(id)).toHaveLength(1);
  });

  test('the same key with different events is refused', async () => {
    const id = newId();
    const key = `reuse-${id}`;
    await store.append(id, [created('a')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key });
    await expect(store.append(id, [renamed('other')], { expectedVersion: 1, aggregateType: 'Project', idempotencyKey: key })).rejects.toBeInstanceOf(
      IdempotencyKeyReuseError,
    );
    expect(await store.readVersion(id)).toBe(1);
  });

  test('a key is remembered for 24 hours, then forgotten', async () => {
    let now = new Date('2026-01-01T00:00:00.000Z');
    const timed = new EventStore({ tableName, domain: 'projects', client, clock: () => now });
    const id = newId();
    const key = `ttl-${id}`;
    await timed.append(id, [renamed('a')], { expectedVersion: ANY, aggregateType: 'Project', idempotencyKey: key });
    now = new Date('2026-01-01T23:59:00.000Z');
    expect((await timed.append(id, [renamed('a')], { expectedVersion: ANY, aggregateType: 'Project', idempotencyKey: key })).idempotentReplay).toBe(true);
    now = new Date('2026-01-02T00:00:01.000Z');
    const late = await timed.append(id, [renamed('a')], { expectedVersion: ANY, aggregateType: 'Project', idempotencyKey: key });
    expect(late.idempotentReplay).toBe(false);
    expect(late.firstSequence).toBe(2);
  });
});

describe('snapshots', () => {
  test('newest snapshot of the requested reducer version wins; other versions are ignored', async () => {
    const id = newId('snap');
    await store.append(id, Array.from({ length: 5 }, (_, i) => renamed(`n${i}`)), { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    await store.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 2, reducerVersion: 'v1', state: { n: 2 } });
    await store.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 4, reducerVersion: 'v1', state: { n: 4 } });
    await store.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 5, reducerVersion: 'v0', state: { stale: true } });
    expect(await store.loadSnapshot(id, 'v1')).toMatchObject({ aggregateId: id, version: 4, reducerVersion: 'v1', state: { n: 4 } });
    expect(await store.loadSnapshot(id, 'v0')).toMatchObject({ version: 5, state: { stale: true } });
    expect(await store.loadSnapshot(id, 'v2')).toBeUndefined();
    // Snapshots live outside the aggregate's stream.
    expect(await store.readVersion(id)).toBe(5);
    expect((await store.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3, 4, 5]);
  });

  test('a snapshot of a version the stream does not have is refused', async () => {
    const id = newId('snap');
    await store.append(id, [created('a')], { expectedVersion: NO_STREAM, aggregateType: 'Project' });
    await expectRejected(
      store.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 3, reducerVersion: 'v1', state: {} }),
      /version: aggregate '.*' has no event 3 to snapshot/,
    );
    await expectRejected(
      store.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 1, reducerVersion: 'v#1', state: {} }),
      /reducerVersion/,
    );
  });
});

describe('listing aggregates (sparse index)', () => {
  test('lists each aggregate once, by type, page by page', async () => {
    const type = `Listed${Date.now()}`;
    const ids = [newId('l'), newId('l'), newId('l')];
    for (const id of ids) {
      await store.append(id, [created(id), renamed('x'), renamed('y')], { expectedVersion: NO_STREAM, aggregateType: type });
    }
    const page1 = await store.listAggregates({ aggregateType: type, limit: 2 });
    expect(page1.aggregates).toHaveLength(2);
    expect(page1.nextToken).toBeDefined();
    const page2 = await store.listAggregates({ aggregateType: type, limit: 2, nextToken: page1.nextToken });
    const listed = [...page1.aggregates, ...page2.aggregates].map((a) => a.aggregateId);
    expect(listed.sort()).toEqual([...ids].sort());
    expect(page2.nextToken).toBeUndefined();
    expect(page1.aggregates[0]).toMatchObject({ aggregateType: type });
    expect(page1.aggregates[0].createdAt).toMatch(/Z$/);
    await expectRejected(store.listAggregates({ aggregateType: type, nextToken: 'garbage' }), /nextToken/);
  });
});

describe('bad input is rejected before any write, saying what is wrong', () => {
  const opts = { expectedVersion: NO_STREAM, aggregateType: 'Project' } as const;

  test.each<[string, () => Promise<unknown>, RegExp]>([
    ['empty aggregate id', () => store.append('', [created('a')], opts), /aggregateId: must not be empty/],
    ['blank aggregate id', () => store.append('   ', [created('a')], opts), /aggregateId: must not be empty/],
    ['reserved aggregate id', () => store.append('$idempotency#x', [created('a')], opts), /aggregateId: must not start with '\$'/],
    ['non-string aggregate id', () => store.append(42 as unknown as string, [created('a')], opts), /aggregateId: must be a string/],
    ['no events', () => store.append(newId(), [], opts), /events: must be a non-empty array/],
    ['empty event type', () => store.append(newId(), [{ eventType: '', data: {} }], opts), /events\[0\]\.eventType/],
    ['event type too long for EventBridge', () => store.append(newId(), [{ eventType: `A${'b'.repeat(128)}`, data: {} }], opts), /at most 128/],
    ['bad aggregate type', () => store.append(newId(), [created('a')], { ...opts, aggregateType: '' }), /aggregateType/],
    ['bad expected version', () => store.append(newId(), [created('a')], { ...opts, expectedVersion: -1 }), /expectedVersion: must be an integer >= 0/],
    ['function in data', () => store.append(newId(), [{ eventType: 'X', data: { f: (() => 1) as unknown as string } }], opts), /events\[0\]\.data\.f: a function is not JSON-serialisable/],
    ['Date in data', () => store.append(newId(), [{ eventType: 'X', data: { at: new Date() as unknown as string } }], opts), /data\.at: a Date is not plain JSON/],
    ['undefined in data', () => store.append(newId(), [{ eventType: 'X', data: { u: undefined as unknown as string } }], opts), /data\.u: undefined is not JSON-serialisable/],
    ['NaN in data', () => store.append(newId(), [{ eventType: 'X', data: { n: NaN } }], opts), /data\.n: NaN is not a JSON number/],
    ['Infinity in data', () => store.append(newId(), [{ eventType: 'X', data: { n: Infinity } }], opts), /Infinity is not a JSON number/],
    ['unsafe integer in data', () => store.append(newId(), [{ eventType: 'X', data: { n: 2 ** 60 } }], opts), /would lose precision; store it as a string/],
    ['bigint in data', () => store.append(newId(), [{ eventType: 'X', data: { n: BigInt(1) as unknown as number } }], opts), /bigint 1 is not JSON-serialisable/],
    ['array as data', () => store.append(newId(), [{ eventType: 'X', data: [1] as unknown as Record<string, never> }], opts), /data: must be a JSON object, got an array/],
    ['circular data', () => {
      const data: Record<string, unknown> = {};
      data.self = data;
      return store.append(newId(), [{ eventType: 'X', data: data as never }], opts);
    }, /data\.self: is a circular reference/],
    ['too deeply nested data', () => {
      let data: Record<string, unknown> = {};
      for (let i = 0; i < 40; i++) data = { d: data };
      return store.append(newId(), [{ eventType: 'X', data: data as never }], opts);
    }, /nests deeper than 30 levels/],
    ['event over 400 KB', () => store.append(newId(), [{ eventType: 'X', data: { big: 'é'.repeat(210 * 1024) } }], opts), /events\[0\]: the stored event is \d+ bytes, over DynamoDB's 409600-byte item limit/],
    ['commit over 4 MB', () => store.append(newId(), Array.from({ length: 12 }, () => ({ eventType: 'X', data: { big: 'x'.repeat(380 * 1024) } })), opts), /over DynamoDB's 4194304-byte transaction limit/],
    ['sequence gap inside the batch', () => store.append(newId(), [{ ...created('a'), eventSequence: 1 }, { ...renamed('b'), eventSequence: 3 }], opts), /events\[1\]\.eventSequence: sequence gap: expected 2 after 1, got 3/],
    ['sequence gap after the expected version', () => store.append(newId(), [{ ...created('a'), eventSequence: 2 }], { ...opts, expectedVersion: 0 }), /sequence gap: expectedVersion 0 puts this event at 1, got 2/],
    ['sequence on some events only', () => store.append(newId(), [{ ...created('a'), eventSequence: 1 }, renamed('b')], opts), /give every event of the commit a sequence, or none/],
    ['duplicate event id', () => store.append(newId(), [{ ...created('a'), eventId: 'e1' }, { ...renamed('b'), eventId: 'e1' }], opts), /eventId: is used twice/],
  ])('%s', async (_name, run, message) => {
    const before = await rawItemCount();
    await expectRejected(run(), message);
    expect(await rawItemCount()).toBe(before);
  });

  test('a sequence gap against the stored stream is rejected', async () => {
    const id = newId();
    await store.append(id, [created('a')], opts);
    const before = await rawItemCount();
    await expectRejected(
      store.append(id, [{ ...renamed('b'), eventSequence: 4 }], { expectedVersion: ANY, aggregateType: 'Project' }),
      /sequence gap: the stream is at 1, so the next event is 2, got 4/,
    );
    expect(await rawItemCount()).toBe(before);
  });

  test('every problem is reported at once', async () => {
    const err = await expectRejected(store.append('', [{ eventType: '1bad', data: { n: NaN } }], { expectedVersion: 'nope' as never, aggregateType: '' }));
    expect(err.problems.map((p) => p.path).sort()).toEqual(['aggregateId', 'aggregateType', 'events[0].data.n', 'events[0].eventType', 'expectedVersion']);
  });

  test('the client refuses a bad configuration', () => {
    expect(() => new EventStore({ tableName: '', domain: 'x', client })).toThrow(/tableName: must not be empty/);
    expect(() => new EventStore({ tableName: 't', domain: 'has space', client })).toThrow(/domain/);
  });
});
