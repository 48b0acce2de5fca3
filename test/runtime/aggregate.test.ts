/**
 * AggregateRoot and AggregateRepository against DynamoDB Local: load, decide, save, bounded retry on conflict,
 * snapshots (including an invalidated reducer version).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AggregateRepository, AggregateRoot, type AppliedEvent, ConcurrencyError, EventStore } from '../../src/runtime';
import { createEventStoreTable, localClient } from '../support/tables';

interface CounterState {
  [key: string]: number | string[];
  count: number;
  applied: string[];
}

class Counter extends AggregateRoot<CounterState> {
  public static evolveCalls = 0;
  protected initialState(): CounterState {
    return { count: 0, applied: [] };
  }
  protected evolve(state: CounterState, event: AppliedEvent): CounterState {
    Counter.evolveCalls++;
    if (event.eventType === 'Incremented') {
      return { count: state.count + (event.data.by as number), applied: [...state.applied, event.data.commandId as string] };
    }
    return state;
  }
  public increment(by: number, commandId: string): void {
    if (by <= 0) throw new Error('by must be positive');
    this.raise('Incremented', { by, commandId });
  }
}

let client: DynamoDBClient;
let store: EventStore;

beforeAll(async () => {
  client = localClient();
  store = new EventStore({ tableName: await createEventStoreTable(client), domain: 'counters', client });
});
afterAll(() => client.destroy());

let n = 0;
const newId = () => `counter-${Date.now()}-${++n}`;

test('load, decide, save: state and version follow the stream', async () => {
  const repo = new AggregateRepository(store, { aggregateType: 'Counter', create: (id) => new Counter(id) });
  const id = newId();
  const fresh = await repo.load(id);
  expect(fresh.exists).toBe(false);
  expect(fresh.version).toBe(0);
  fresh.increment(2, 'c1');
  fresh.increment(3, 'c2');
  expect(fresh.state.count).toBe(5);
  expect(fresh.uncommittedEvents).toHaveLength(2);
  const result = await repo.save(fresh, { correlationId: 'corr' });
  expect(result.lastSequence).toBe(2);
  expect(fresh.version).toBe(2);
  expect(fresh.uncommittedEvents).toHaveLength(0);

  const loaded = await repo.load(id);
  expect(loaded.state).toEqual({ count: 5, applied: ['c1', 'c2'] });
  expect(loaded.version).toBe(2);
  expect((await store.load(id))[0]).toMatchObject({ aggregateType: 'Counter', source: 'skafu.counters', correlationId: 'corr' });
});

test('saving a stale aggregate raises ConcurrencyError', async () => {
  const repo = new AggregateRepository(store, { aggregateType: 'Counter', create: (id) => new Counter(id) });
  const id = newId();
  await repo.execute(id, (c) => c.increment(1, 'a'));
  const one = await repo.load(id);
  const two = await repo.load(id);
  one.increment(1, 'b');
  two.increment(1, 'c');
  await repo.save(one);
  await expect(repo.save(two)).rejects.toMatchObject({ name: 'ConcurrencyError', expectedVersion: 1, actualVersion: 2 });
});

test('20 concurrent commands on one aggregate are all applied exactly once by the retrying repository', async () => {
  const repo = new AggregateRepository(store, { aggregateType: 'Counter', create: (id) => new Counter(id), maxAttempts: 40 });
  const id = newId();
  const commands = Array.from({ length: 20 }, (_, i) => `cmd-${i}`);
  const results = await Promise.all(commands.map((cmd) => repo.execute(id, (c) => c.increment(1, cmd), { idempotencyKey: `${id}-${cmd}` })));
  expect(results.every((r) => !r.idempotentReplay)).toBe(true);
  const final = await repo.load(id);
  expect(final.state.count).toBe(20);
  expect([...final.state.applied].sort()).toEqual([...commands].sort());
  const events = await store.load(id);
  expect(events.map((e) => e.eventSequence)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
});

test('retries are bounded: a command that always loses gives up with the ConcurrencyError', async () => {
  const repo = new AggregateRepository(store, { aggregateType: 'Counter', create: (id) => new Counter(id), maxAttempts: 3 });
  const id = newId();
  await repo.execute(id, (c) => c.increment(1, 'seed'));
  let attempts = 0;
  const err = await repo
    .execute(id, async (c) => {
      attempts++;
      // A competing writer commits between our load and our save, every time.
      await store.append(id, [{ eventType: 'Incremented', data: { by: 1, commandId: `rival-${attempts}` } }], {
        expectedVersion: c.version,
        aggregateType: 'Counter',
      });
      c.increment(1, 'mine');
    })
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConcurrencyError);
  expect(attempts).toBe(3);
  expect((await repo.load(id)).state.applied).not.toContain('mine');
});

test('a command that raises nothing, or throws, writes nothing', async () => {
  const repo = new AggregateRepository(store, { aggregateType: 'Counter', create: (id) => new Counter(id) });
  const id = newId();
  await expect(repo.execute(id, () => undefined)).rejects.toThrow(/no uncommitted events/);
  await expect(repo.execute(id, (c) => c.increment(-1, 'x'))).rejects.toThrow(/by must be positive/);
  expect(await store.readVersion(id)).toBe(0);
});

test('snapshots: loads use the newest snapshot plus later events; a new reducer version ignores old snapshots', async () => {
  const v1 = new AggregateRepository(store, {
    aggregateType: 'Counter',
    create: (id) => new Counter(id),
    snapshots: { reducerVersion: 'v1', every: 10 },
  });
  const id = newId();
  for (let i = 0; i < 25; i++) await v1.execute(id, (c) => c.increment(1, `c${i}`));
  expect(await store.loadSnapshot(id, 'v1')).toMatchObject({ version: 20 });

  Counter.evolveCalls = 0;
  const viaSnapshot = await v1.load(id);
  expect(viaSnapshot.state.count).toBe(25);
  expect(viaSnapshot.version).toBe(25);
  expect(Counter.evolveCalls).toBe(5); // only the events after the snapshot at 20

  // Tamper with the v1 snapshot's state: a v2 reducer must not see it at all.
  await store.saveSnapshot({ aggregateId: id, aggregateType: 'Counter', version: 25, reducerVersion: 'v1', state: { count: 999, applied: [] } });
  expect((await v1.load(id)).state.count).toBe(999);
  const v2 = new AggregateRepository(store, {
    aggregateType: 'Counter',
    create: (id2) => new Counter(id2),
    snapshots: { reducerVersion: 'v2', every: 10 },
  });
  Counter.evolveCalls = 0;
  const rebuilt = await v2.load(id);
  expect(rebuilt.state.count).toBe(25);
  expect(Counter.evolveCalls).toBe(25);
});

test('repository options are validated', () => {
  expect(() => new AggregateRepository(store, { aggregateType: 'C', create: (id) => new Counter(id), maxAttempts: 0 })).toThrow(/maxAttempts/);
  expect(
    () => new AggregateRepository(store, { aggregateType: 'C', create: (id) => new Counter(id), snapshots: { reducerVersion: 'v', every: 0 } }),
  ).toThrow(/snapshots.every/);
});
