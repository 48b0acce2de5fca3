/**
 * Streams belong to one domain and one aggregate type (issue 10), against DynamoDB Local on one shared table,
 * as every domain of a platform shares the event store: hostile appends through the runtime client are refused
 * before any write, reads refuse a stream of another type, and domains never see each other's streams or
 * reserved items.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  ANY,
  AggregateRepository,
  AggregateRoot,
  AggregateTypeMismatchError,
  ConcurrencyError,
  EventStore,
  EventStoreValidationError,
  NO_STREAM,
  idempotencyScope,
  type AppliedEvent,
  type NewEvent,
} from '../../src/runtime';
import { createEventStoreTable, localClient } from '../support/tables';

let client: DynamoDBClient;
let tableName: string;
let projects: EventStore;
let observability: EventStore;

beforeAll(async () => {
  client = localClient();
  tableName = await createEventStoreTable(client);
  projects = new EventStore({ tableName, domain: 'projects', client });
  observability = new EventStore({ tableName, domain: 'observability', client });
});
afterAll(() => client.destroy());

let n = 0;
const newId = (prefix: string) => `${prefix}-${Date.now()}-${++n}`;
const ev = (eventType: string, data: Record<string, any> = {}): NewEvent => ({ eventType, data });

async function rawItems(): Promise<Record<string, any>[]> {
  const items: Record<string, any>[] = [];
  let start: Record<string, any> | undefined;
  do {
    const out = await client.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...(out.Items ?? []).map((i) => unmarshall(i)));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
}

async function createProject(): Promise<string> {
  const id = newId('project');
  await projects.append(id, [ev('ProjectCreated', { name: 'Apollo' })], { expectedVersion: NO_STREAM, aggregateType: 'Project' });
  return id;
}

describe('a stream belongs to one aggregate type, fixed by its first event', () => {
  test.each([
    ['any version', { expectedVersion: ANY }],
    ['the current version', { expectedVersion: 1 }],
    ['the current version, as from a load', { expectedVersion: 1, expectedVersionFromLoad: true }],
    ['no stream', { expectedVersion: NO_STREAM }],
    ['version 0', { expectedVersion: 0 }],
  ] as const)('an event of another type is refused before any write (%s)', async (_label, version) => {
    const id = await createProject();
    const before = await rawItems();
    const err = await refusal(projects.append(id, [ev('AlertTriggered', { metricValue: 1 })], { ...version, aggregateType: 'Alert' }));
    expect(err).toBeInstanceOf(AggregateTypeMismatchError);
    expect(err).toMatchObject({ aggregateId: id, expectedType: 'Alert', actualType: 'Project', retryable: false });
    expect(await rawItems()).toEqual(before);
    expect((await projects.load(id)).map((e) => [e.eventSequence, e.eventType])).toEqual([[1, 'ProjectCreated']]);
  });

  test('an idempotent (transactional) append of another type is refused too, and its key stays unused', async () => {
    const id = await createProject();
    const err = await refusal(projects.append(id, [ev('AlertTriggered'), ev('AlertTriggered')], { expectedVersion: ANY, aggregateType: 'Alert', idempotencyKey: `k-${id}` }));
    expect(err).toBeInstanceOf(AggregateTypeMismatchError);
    // The key was not consumed: the same key still works for a legitimate append.
    const ok = await projects.append(id, [ev('ProjectRenamed', { name: 'B' })], { expectedVersion: ANY, aggregateType: 'Project', idempotencyKey: `k-${id}` });
    expect(ok).toMatchObject({ firstSequence: 2, idempotentReplay: false });
  });

  test('a type race on a new id: one type wins the stream, the other is refused as a mismatch', async () => {
    const id = newId('contested');
    const outcomes = await Promise.allSettled([
      projects.append(id, [ev('ProjectCreated')], { expectedVersion: ANY, aggregateType: 'Project' }),
      projects.append(id, [ev('TaskCreated')], { expectedVersion: ANY, aggregateType: 'Task' }),
      projects.append(id, [ev('ProjectCreated')], { expectedVersion: ANY, aggregateType: 'Project' }),
      projects.append(id, [ev('TaskCreated')], { expectedVersion: ANY, aggregateType: 'Task' }),
    ]);
    const events = await projects.load(id);
    const winner = events[0].aggregateType;
    expect(new Set(events.map((e) => e.aggregateType))).toEqual(new Set([winner]));
    outcomes.forEach((o, i) => {
      const type = i % 2 === 0 ? 'Project' : 'Task';
      if (type === winner) expect(o.status).toBe('fulfilled');
      else expect(o.status === 'rejected' && o.reason instanceof AggregateTypeMismatchError).toBe(true);
    });
  });

  test('load, readVersion and snapshots refuse a stream of another type with a typed error', async () => {
    const id = await createProject();
    await expect(projects.load(id, { aggregateType: 'Task' })).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    await expect(projects.readVersion(id, { aggregateType: 'Task' })).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    expect(await projects.readVersion(id, { aggregateType: 'Project' })).toBe(1);
    await expect(
      projects.saveSnapshot({ aggregateId: id, aggregateType: 'Task', version: 1, reducerVersion: 'v1', state: {} }),
    ).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    await projects.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 1, reducerVersion: 'v1', state: { n: 1 } });
    await expect(projects.loadSnapshot(id, 'v1', { aggregateType: 'Task' })).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    expect(await projects.loadSnapshot(id, 'v1', { aggregateType: 'Project' })).toMatchObject({ version: 1, state: { n: 1 } });
  });

  test('AggregateRepository refuses to load (and so to fold or save into) a stream of another type', async () => {
    class Task extends AggregateRoot<{ done: boolean }> {
      protected initialState() {
        return { done: false };
      }
      protected evolve(state: { done: boolean }, event: AppliedEvent) {
        return event.eventType === 'TaskDone' ? { done: true } : state;
      }
      public finish() {
        this.raise('TaskDone', {});
      }
    }
    const id = await createProject();
    for (const snapshots of [undefined, { reducerVersion: 'v1', every: 1 }]) {
      const tasks = new AggregateRepository(projects, { aggregateType: 'Task', create: (x) => new Task(x), snapshots });
      await expect(tasks.load(id)).rejects.toBeInstanceOf(AggregateTypeMismatchError);
      await expect(tasks.execute(id, (t) => t.finish())).rejects.toBeInstanceOf(AggregateTypeMismatchError);
    }
    expect(await projects.readVersion(id)).toBe(1);
  });
});

describe('a stream belongs to one domain', () => {
  test("another domain's client never reaches a stream: the same id is another, empty stream there", async () => {
    const id = await createProject();
    expect(await observability.readVersion(id)).toBe(0);
    expect(await observability.load(id)).toEqual([]);
    await expect(observability.append(id, [ev('AlertTriggered')], { expectedVersion: 1, aggregateType: 'Alert' })).rejects.toBeInstanceOf(ConcurrencyError);
    // An 'any' append lands in observability's own stream of that id, never in the project's.
    await observability.append(id, [ev('AlertTriggered')], { expectedVersion: ANY, aggregateType: 'Alert' });
    expect((await projects.load(id)).map((e) => e.eventType)).toEqual(['ProjectCreated']);
    expect((await observability.load(id)).map((e) => [e.eventType, e.source, e.aggregateId])).toEqual([['AlertTriggered', 'skafu.observability', id]]);
  });

  test("a domain's client cannot name another domain to read; a platform-wide reader must name one", async () => {
    const id = await createProject();
    await expect(observability.load(id, { domain: 'projects' })).rejects.toThrow(/reads only its own domain 'observability'/);
    await expect(observability.listAggregates({ aggregateType: 'Project', domain: 'projects' })).rejects.toBeInstanceOf(EventStoreValidationError);
    const reader = new EventStore({ tableName, client });
    await expect(reader.load(id)).rejects.toThrow(/name the domain to read/);
    expect((await reader.load(id, { domain: 'projects' })).map((e) => e.eventType)).toEqual(['ProjectCreated']);
  });

  test('every item of a domain is keyed under its prefix; the public id in the envelope is unchanged', async () => {
    const id = await createProject();
    await projects.append(id, [ev('ProjectRenamed')], { expectedVersion: 1, aggregateType: 'Project', idempotencyKey: `rename-${id}` });
    await projects.saveSnapshot({ aggregateId: id, aggregateType: 'Project', version: 2, reducerVersion: 'v1', state: {} });
    const mine = (await rawItems()).filter((i) => i.aggregateId === id || i.snapshotOf === id || i.record?.aggregateId === id);
    expect(mine.map((i) => i.itemType).sort()).toEqual(['event', 'event', 'idempotency', 'snapshot']);
    for (const item of mine) expect(item.streamId.startsWith('projects#')).toBe(true);
    expect(mine.filter((i) => i.itemType === 'event').map((i) => i.streamId)).toEqual([`projects#${id}`, `projects#${id}`]);
    const [first] = await projects.load(id);
    expect(first.aggregateId).toBe(id);
    expect(Object.keys(first)).not.toContain('streamId');
  });

  test('listing is per domain and type; it returns the stored stream key', async () => {
    const type = `Shared${Date.now()}`;
    const a = newId('x');
    const b = newId('x');
    await projects.append(a, [ev('Made')], { expectedVersion: NO_STREAM, aggregateType: type });
    await observability.append(b, [ev('Made')], { expectedVersion: NO_STREAM, aggregateType: type });
    const inProjects = await projects.listAggregates({ aggregateType: type });
    expect(inProjects.aggregates).toEqual([expect.objectContaining({ aggregateId: a, aggregateType: type, domain: 'projects', streamId: `projects#${a}` })]);
    const inObs = await new EventStore({ tableName, client }).listAggregates({ aggregateType: type, domain: 'observability' });
    expect(inObs.aggregates.map((x) => x.aggregateId)).toEqual([b]);
  });

  test('idempotency keys are per domain: the same key in two domains is two requests', async () => {
    const key = `same-key-${Date.now()}`;
    const p = await projects.append(newId('p'), [ev('ProjectCreated')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key });
    const o = await observability.append(newId('o'), [ev('ProjectCreated')], { expectedVersion: NO_STREAM, aggregateType: 'Project', idempotencyKey: key });
    expect(p.idempotentReplay).toBe(false);
    expect(o.idempotentReplay).toBe(false);
    expect(o.aggregateId).not.toBe(p.aggregateId);
  });
});

describe('hostile data', () => {
  test.each([
    ['__proto__ at the top', '{"__proto__":{"polluted":true}}', 'events[0].data.__proto__'],
    ['constructor, nested', '{"name":"m","tags":{"constructor":"y"}}', 'events[0].data.tags.constructor'],
    ['prototype in an array item', '{"list":[{"prototype":{"x":1}}]}', 'events[0].data.list[0].prototype'],
  ])('%s: refused with its path, nothing written, no prototype touched', async (_label, text, path) => {
    const data = JSON.parse(text) as Record<string, any>;
    const id = newId('hostile');
    const err = (await refusal(projects.append(id, [{ eventType: 'Made', data }], { expectedVersion: NO_STREAM, aggregateType: 'Thing' }))) as EventStoreValidationError;
    expect(err).toBeInstanceOf(EventStoreValidationError);
    expect(err.problems.map((p) => p.path)).toEqual([path]);
    expect(await projects.readVersion(id)).toBe(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
  });

  test('idempotencyScope is unambiguous: parts that concatenate alike give different scopes', () => {
    expect(idempotencyScope('Cmd', 'u', 'x:K1')).not.toBe(idempotencyScope('Cmd', 'u:x', 'K1'));
    expect(idempotencyScope('Cmd', null, 'K')).not.toBe(idempotencyScope('Cmd', 'null', 'K'));
    expect(idempotencyScope('Cmd', 'u'.repeat(5000), 'K')).toMatch(/^scope-[0-9a-f]{64}$/);
  });

  test('an idempotency key of any accepted length fits the partition key (hashed in the key)', async () => {
    const key = 'k'.repeat(256);
    const id = newId('long');
    const r = await projects.append(id, [ev('Made')], { expectedVersion: NO_STREAM, aggregateType: 'Thing', idempotencyKey: key });
    expect(r.idempotentReplay).toBe(false);
    const again = await projects.append(id, [ev('Made')], { expectedVersion: NO_STREAM, aggregateType: 'Thing', idempotencyKey: key });
    expect(again.idempotentReplay).toBe(true);
  });
});

describe('a failure in the middle of an unconditional append', () => {
  test('a transaction conflict (nothing known about the positions) never makes the retry skip one: no gap', async () => {
    const doc = DynamoDBDocumentClient.from(localClient());
    let injected = 0;
    // The first transaction is cancelled as DynamoDB does when another transaction touches an item at once.
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (/TransactWrite/.test(String(context.commandName)) && injected++ === 0) {
          throw Object.assign(new Error('Transaction cancelled'), { name: 'TransactionCanceledException', CancellationReasons: [{ Code: 'TransactionConflict' }, { Code: 'None' }] });
        }
        return next(args);
      },
      { step: 'initialize', name: 'inject-conflict' },
    );
    const store = new EventStore({ tableName, domain: 'projects', client: doc });
    const id = await createProject();
    const r = await store.append(id, [ev('ProjectRenamed'), ev('ProjectRenamed')], { expectedVersion: ANY, aggregateType: 'Project' });
    expect(injected).toBeGreaterThan(1);
    expect(r.firstSequence).toBe(2);
    expect((await projects.load(id)).map((e) => e.eventSequence)).toEqual([1, 2, 3]);
    doc.destroy();
  });
});
