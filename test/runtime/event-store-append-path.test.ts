/**
 * The checked append in one round trip (issue 14), against DynamoDB Local: an append at a numeric expected
 * version writes a TransactWriteItems of the events' conditional Puts and a ConditionCheck on the expected event
 * (it must exist and be of the stream's type), unless this client has itself read or written that event, in which
 * case one conditional PutItem is enough (events are immutable, never deleted, gap-free). Every request this
 * client sends is recorded, so the tests see the round trips and not only the outcome.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  AggregateTypeMismatchError,
  ConcurrencyError,
  EventStore,
  NO_STREAM,
  type NewEvent,
} from '../../src/runtime';
import { createEventStoreTable, localClient } from '../support/tables';

let client: DynamoDBClient;
let tableName: string;
/** The writer that builds streams; the clients under test are separate, so they start knowing nothing. */
let writer: EventStore;

beforeAll(async () => {
  client = localClient();
  tableName = await createEventStoreTable(client);
  writer = new EventStore({ tableName, domain: 'projects', client });
});
afterAll(() => client.destroy());

let counter = 0;
const newId = (prefix = 'path') => `${prefix}-${Date.now()}-${++counter}`;
const ev = (name: string, type = 'Renamed'): NewEvent => ({ eventType: type, data: { name } });

/** A fresh client (nothing known) whose every request's command name is recorded. */
interface Recording {
  readonly store: EventStore;
  readonly sent: string[];
  readonly doc: DynamoDBDocumentClient;
}

function recordingStore(options: { knownPositions?: number; domain?: string } = {}): Recording {
  const doc = DynamoDBDocumentClient.from(localClient(), { marshallOptions: { removeUndefinedValues: true } });
  const sent: string[] = [];
  doc.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'record-commands' },
  );
  const store = new EventStore({ tableName, domain: options.domain ?? 'projects', client: doc, knownPositions: options.knownPositions });
  return { store, sent, doc };
}

async function stream(length: number, type = 'Project'): Promise<string> {
  const id = newId();
  await writer.append(id, Array.from({ length }, (_, i) => ev(`e${i + 1}`)), { expectedVersion: NO_STREAM, aggregateType: type });
  return id;
}

describe('an append at a checked version is one round trip', () => {
  test('a version this client never saw: one TransactWriteItems (the events and a check of the expected event), no read', async () => {
    const id = await stream(3);
    const { store, sent, doc } = recordingStore();
    const r = await store.append(id, [ev('four')], { expectedVersion: 3, aggregateType: 'Project' });
    expect(r.firstSequence).toBe(4);
    expect(sent).toEqual(['TransactWriteItemsCommand']);
    expect((await writer.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3, 4]);
    doc.destroy();
  });

  test('a version the stream never reached is refused, nothing is written (no gap), and the error says where the stream is', async () => {
    const id = await stream(2);
    const { store, doc } = recordingStore();
    for (const expectedVersion of [3, 5, 1000]) {
      const err = await store.append(id, [ev('ahead')], { expectedVersion, aggregateType: 'Project' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConcurrencyError);
      expect(err).toMatchObject({ expectedVersion, actualVersion: 2 });
    }
    expect((await writer.load(id)).map((e) => e.eventSequence)).toEqual([1, 2]);
    doc.destroy();
  });

  test('a stream of another type is refused with AggregateTypeMismatchError, whatever the version, nothing written', async () => {
    const id = await stream(2, 'Alert');
    const { store, doc } = recordingStore();
    for (const expectedVersion of [1, 2, 7]) {
      await expect(store.append(id, [ev('x')], { expectedVersion, aggregateType: 'Project' })).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    }
    expect(await writer.load(id)).toHaveLength(2);
    doc.destroy();
  });

  test('another domain\'s stream of the same id is not this domain\'s: the check fails, nothing is written there', async () => {
    const id = await stream(2);
    const { store, doc } = recordingStore({ domain: 'observability' });
    await expect(store.append(id, [ev('x')], { expectedVersion: 2, aggregateType: 'Project' })).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await writer.load(id)).toHaveLength(2);
    doc.destroy();
  });

  test('a stale version loses to the event already there: ConcurrencyError with the actual version', async () => {
    const id = await stream(4);
    const { store, doc } = recordingStore();
    await expect(store.append(id, [ev('late')], { expectedVersion: 2, aggregateType: 'Project' })).rejects.toMatchObject({
      name: 'ConcurrencyError',
      actualVersion: 4,
    });
    expect(await writer.load(id)).toHaveLength(4);
    doc.destroy();
  });

  test('20 writers at the same checked version, each with its own fresh client: exactly one wins, no gap', async () => {
    const id = await stream(1);
    const clients = Array.from({ length: 20 }, () => recordingStore());
    const outcomes = await Promise.allSettled(clients.map((c, i) => c.store.append(id, [ev(`w${i}`), ev(`w${i}-bis`)], { expectedVersion: 1, aggregateType: 'Project' })));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(ConcurrencyError);
    expect((await writer.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3]);
    clients.forEach((c) => c.doc.destroy());
  });

  test('with an idempotency key: one transaction; a retry replays the first result and writes nothing', async () => {
    const id = await stream(2);
    const { store, sent, doc } = recordingStore({ knownPositions: 0 });
    const options = { expectedVersion: 2, aggregateType: 'Project', idempotencyKey: `k-${id}` };
    const first = await store.append(id, [ev('three')], options);
    expect(sent.filter((c) => c !== 'GetItemCommand')).toEqual(['TransactWriteItemsCommand']);
    const again = await store.append(id, [ev('three')], options);
    expect(again).toMatchObject({ idempotentReplay: true, firstSequence: first.firstSequence, lastSequence: first.lastSequence });
    expect(await writer.load(id)).toHaveLength(3);
    doc.destroy();
  });

  test('a commit too large to hold the check too (99 events with an idempotency key) reads the expected event first, and still refuses a gap', async () => {
    const id = await stream(1);
    const { store, sent, doc } = recordingStore({ knownPositions: 0 });
    const events = Array.from({ length: 99 }, (_, i) => ev(`bulk${i}`));
    await expect(store.append(id, events, { expectedVersion: 5, aggregateType: 'Project', idempotencyKey: `bulk-gap-${id}` })).rejects.toBeInstanceOf(ConcurrencyError);
    const r = await store.append(id, events, { expectedVersion: 1, aggregateType: 'Project', idempotencyKey: `bulk-${id}` });
    expect(r.lastSequence).toBe(100);
    expect(sent).toContain('GetItemCommand');
    expect((await writer.load(id)).map((e) => e.eventSequence)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    doc.destroy();
  });
});

describe('events this client has read or written need no check: one PutItem', () => {
  test('after a load, the append at the loaded version is one conditional PutItem', async () => {
    const id = await stream(3);
    const { store, sent, doc } = recordingStore();
    await store.load(id, { aggregateType: 'Project' });
    sent.length = 0;
    await store.append(id, [ev('four')], { expectedVersion: 3, aggregateType: 'Project' });
    expect(sent).toEqual(['PutItemCommand']);
    doc.destroy();
  });

  test('after its own append, the next append at the returned version is one PutItem; a version beyond it is checked', async () => {
    const id = await stream(1);
    const { store, sent, doc } = recordingStore();
    const r = await store.append(id, [ev('two')], { expectedVersion: 1, aggregateType: 'Project' });
    sent.length = 0;
    await store.append(id, [ev('three')], { expectedVersion: r.nextExpectedVersion, aggregateType: 'Project' });
    expect(sent).toEqual(['PutItemCommand']);
    sent.length = 0;
    await expect(store.append(id, [ev('gap')], { expectedVersion: 9, aggregateType: 'Project' })).rejects.toBeInstanceOf(ConcurrencyError);
    expect(sent[0]).toBe('TransactWriteItemsCommand');
    expect((await writer.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3]);
    doc.destroy();
  });

  test('a known stream at an older version still loses the race to the event there (the Put\'s own condition)', async () => {
    const id = await stream(2);
    const { store, doc } = recordingStore();
    await store.load(id);
    await writer.append(id, [ev('other writer')], { expectedVersion: 2, aggregateType: 'Project' });
    await expect(store.append(id, [ev('mine')], { expectedVersion: 2, aggregateType: 'Project' })).rejects.toMatchObject({ name: 'ConcurrencyError', actualVersion: 3 });
    expect((await writer.load(id)).map((e) => e.data.name)).toEqual(['e1', 'e2', 'other writer']);
    doc.destroy();
  });

  test('what a client knows is per type: a load of an Alert stream does not let a Project append skip the check', async () => {
    const id = await stream(2, 'Alert');
    const { store, doc } = recordingStore();
    await store.load(id); // no type given: the client learns the stream is an Alert stream
    await expect(store.append(id, [ev('x')], { expectedVersion: 2, aggregateType: 'Project' })).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    expect(await writer.load(id)).toHaveLength(2);
    doc.destroy();
  });

  test('the memory is bounded: with knownPositions 1, a second stream makes the first one checked again; 0 turns it off', async () => {
    const a = await stream(1);
    const b = await stream(1);
    const one = recordingStore({ knownPositions: 1 });
    await one.store.load(a);
    await one.store.load(b);
    one.sent.length = 0;
    await one.store.append(a, [ev('a2')], { expectedVersion: 1, aggregateType: 'Project' });
    expect(one.sent).toEqual(['TransactWriteItemsCommand']);
    const off = recordingStore({ knownPositions: 0 });
    await off.store.load(b);
    off.sent.length = 0;
    await off.store.append(b, [ev('b2')], { expectedVersion: 1, aggregateType: 'Project' });
    expect(off.sent).toEqual(['TransactWriteItemsCommand']);
    one.doc.destroy();
    off.doc.destroy();
  });
});
