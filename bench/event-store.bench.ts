/**
 * Event store benchmarks, all against one DynamoDB Local started here:
 *  1. append throughput of our client versus castore's DynamoDB adapter on the same workload (ratio), with the
 *     capacity units each append consumes (so that speed is not bought with capacity);
 *  2. load time of a 10,000-event aggregate versus a 100-event one, with snapshots on (ratio).
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EventStorageAdapter } from '@castore/core';
import { DynamoDBSingleTableEventStorageAdapter } from '@castore/event-storage-adapter-dynamodb';
import { CapacityMeter, fmtUnits, type Units } from './capacity';
import { fmt, median, pool, printSection, timed, type Row } from './harness';
import { AggregateRepository, AggregateRoot, type AppliedEvent, EventStore, NO_STREAM } from '../src/runtime';
import { startDynamoDbLocal } from '../test/support/dynamodb-local';
import { createEventStoreTable } from '../test/support/tables';

const AGGREGATES = Number(process.env.BENCH_AGGREGATES ?? 40);
const EVENTS_PER_AGGREGATE = Number(process.env.BENCH_EVENTS ?? 25);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LOADS = Number(process.env.BENCH_LOADS ?? 20);
const WARMUP_ROUNDS = Number(process.env.BENCH_WARMUP ?? 2);

const payload = (a: number, v: number) => ({ name: `aggregate-${a}`, version: v, tags: ['x', 'y'], amount: v * 1.5 });

async function createCastoreTable(client: DynamoDBClient): Promise<string> {
  const TableName = `castore-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  await client.send(
    new CreateTableCommand({
      TableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'aggregateId', AttributeType: 'S' },
        { AttributeName: 'version', AttributeType: 'N' },
        { AttributeName: 'eventStoreId', AttributeType: 'S' },
        { AttributeName: 'timestamp', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'aggregateId', KeyType: 'HASH' },
        { AttributeName: 'version', KeyType: 'RANGE' },
      ],
      // Same engine work as ours: a stream (the outbox) and a sparse KEYS_ONLY index of first events.
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' },
      GlobalSecondaryIndexes: [
        {
          IndexName: 'initialEvents',
          KeySchema: [
            { AttributeName: 'eventStoreId', KeyType: 'HASH' },
            { AttributeName: 'timestamp', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    }),
  );
  return TableName;
}

/** The workload: AGGREGATES streams of EVENTS_PER_AGGREGATE single-event appends, each at its expected version. */
async function workload(append: (aggregate: number, version: number) => Promise<void>): Promise<number> {
  const { ms } = await timed(() =>
    pool(AGGREGATES, CONCURRENCY, async (a) => {
      for (let v = 1; v <= EVENTS_PER_AGGREGATE; v++) await append(a, v);
    }),
  );
  return (AGGREGATES * EVENTS_PER_AGGREGATE) / (ms / 1000);
}

class Ledger extends AggregateRoot<{ total: number }> {
  protected initialState() {
    return { total: 0 };
  }
  protected evolve(state: { total: number }, event: AppliedEvent) {
    return { total: state.total + (event.data.amount as number) };
  }
}

export async function runEventStoreBench(): Promise<void> {
  const local = await startDynamoDbLocal();
  const client = new DynamoDBClient({
    endpoint: local.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    process.env.SKAFU_TEST_DYNAMODB_ENDPOINT = local.endpoint;
    // ---- 1. append throughput ------------------------------------------------------------------------------
    // Tables first, outside any timing; one per variant, fresh aggregate ids per round. Each variant has its own
    // metered SDK client (same settings), so that the units it consumes are its own.
    const meters: Record<string, CapacityMeter> = {};
    const variantClients: DynamoDBClient[] = [];
    const meteredClient = (name: string) => {
      const c = new DynamoDBClient({ endpoint: local.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
      meters[name] = new CapacityMeter().attach(c);
      variantClients.push(c);
      return c;
    };
    const CHECKED = 'skafu append, version checked in the write (TransactWriteItems + ConditionCheck)';
    const KNOWN = 'skafu append, version known to the client (one conditional PutItem)';
    const CASTORE = 'castore pushEvent (no version check)';
    const eventTable = await createEventStoreTable(client);
    // knownPositions 0: the client remembers nothing, so every append checks its expected version in the write,
    // as for a version that comes from a client's If-Match header.
    const checkedStore = new EventStore({ tableName: eventTable, domain: 'bench', client: meteredClient(CHECKED), knownPositions: 0 });
    // The default client: each append follows its own previous one (as a handler that loaded the stream does).
    const knownStore = new EventStore({ tableName: eventTable, domain: 'bench', client: meteredClient(KNOWN) });
    const adapter: EventStorageAdapter = new DynamoDBSingleTableEventStorageAdapter({
      tableName: await createCastoreTable(client),
      dynamoDBClient: meteredClient(CASTORE),
    });
    const variants: Record<string, (round: number) => Promise<number>> = {
      [CHECKED]: (round) =>
        workload(async (a, v) => {
          await checkedStore.append(`checked-r${round}-a${a}`, [{ eventType: 'Changed', data: payload(a, v) }], {
            expectedVersion: v === 1 ? NO_STREAM : v - 1,
            aggregateType: 'Bench',
          });
        }),
      [KNOWN]: (round) =>
        workload(async (a, v) => {
          await knownStore.append(`known-r${round}-a${a}`, [{ eventType: 'Changed', data: payload(a, v) }], {
            expectedVersion: v === 1 ? NO_STREAM : v - 1,
            aggregateType: 'Bench',
          });
        }),
      [CASTORE]: (round) =>
        workload(async (a, v) => {
          await adapter.pushEvent(
            { aggregateId: `r${round}-a${a}`, version: v, type: 'Changed', payload: payload(a, v), timestamp: new Date().toISOString() },
            { eventStoreId: 'bench' },
          );
        }),
    };
    const names = Object.keys(variants);
    const results: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    // Warm the JVM's JIT and the SDK (DynamoDB Local runs 2-3x faster once warm), then interleave the variants
    // so that any remaining drift hits them alike.
    for (let warm = 1; warm <= WARMUP_ROUNDS; warm++) for (const name of names) await variants[name](-warm);
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first, so that no variant always runs on the warmest (or most loaded) engine.
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length];
        results[name].push(await variants[name](round));
      }
    }
    // Units: one more round per variant, after the timed ones, metered from the first append to the last.
    const perAppend: Record<string, Units> = {};
    const appends = AGGREGATES * EVENTS_PER_AGGREGATE;
    for (const name of names) {
      meters[name].reset();
      await variants[name](1000);
      const u = meters[name].snapshot();
      perAppend[name] = { read: u.read / appends, write: u.write / appends, requests: u.requests / appends };
    }
    const castore = median(results[CASTORE]);
    const rows: Row[] = names.map((name) => ({
      name,
      value: `${fmt(median(results[name]))} events/s (median of ${ROUNDS}); per append ${fmtUnits(perAppend[name])}`,
    }));
    rows.push({ name: 'ratio skafu (checked in the write) / castore', value: fmt(median(results[CHECKED]) / castore, 2) });
    rows.push({ name: 'ratio skafu (known version) / castore', value: fmt(median(results[KNOWN]) / castore, 2) });
    rows.push({
      name: 'units',
      value: 'as AWS bills them: a transaction at least 2 WRU per action, ConditionCheck included (Local reports less: bench/capacity.ts)',
    });
    printSection(
      `Append throughput: ${AGGREGATES} aggregates x ${EVENTS_PER_AGGREGATE} single-event appends, ${CONCURRENCY} in flight, one DynamoDB Local`,
      rows,
    );

    variantClients.forEach((c) => c.destroy());

    // ---- 2. load time with snapshots -----------------------------------------------------------------------
    const store = new EventStore({ tableName: await createEventStoreTable(client), domain: 'bench', client });
    const repository = new AggregateRepository(store, {
      aggregateType: 'Ledger',
      create: (id) => new Ledger(id),
      snapshots: { reducerVersion: 'v1', every: 100 },
    });
    const plain = new AggregateRepository(store, { aggregateType: 'Ledger', create: (id) => new Ledger(id) });
    const build = async (id: string, events: number) => {
      for (let v = 0; v < events; v += 99) {
        const count = Math.min(99, events - v);
        await store.append(id, Array.from({ length: count }, (_, i) => ({ eventType: 'Posted', data: { amount: v + i } })), {
          expectedVersion: v,
          aggregateType: 'Ledger',
        });
      }
      // Snapshot where the repository would have: at the last multiple of 100.
      const at = Math.floor(events / 100) * 100;
      if (at > 0) {
        const aggregate = await plain.load(id);
        const partial = new Ledger(id);
        partial.replay(await store.load(id, { toSequence: at }));
        await store.saveSnapshot({ aggregateId: id, aggregateType: 'Ledger', version: at, reducerVersion: 'v1', state: partial.state });
        if (aggregate.version !== events) throw new Error('bench setup: wrong version');
      }
    };
    const setup = await timed(async () => {
      await build('small', 100 + 37);
      await build('large', 10_000 + 37);
    });
    console.log(`  (setup: wrote 10,174 events in 99-event transactions in ${fmt(setup.ms / 1000)} s)`);
    const loadTimes = async (repo: AggregateRepository<Ledger>, id: string, count: number) => {
      const times: number[] = [];
      for (let i = 0; i < count; i++) times.push((await timed(() => repo.load(id))).ms);
      return median(times);
    };
    for (let i = 0; i < 3; i++) {
      await repository.load('small');
      await repository.load('large');
    }
    const small = await loadTimes(repository, 'small', LOADS);
    const large = await loadTimes(repository, 'large', LOADS);
    const largeNoSnapshot = await loadTimes(plain, 'large', Math.max(3, Math.floor(LOADS / 5)));
    const check = await repository.load('large');
    const expected = (10_037 * 10_036) / 2;
    if (check.state.total !== expected) throw new Error(`bench: snapshot load gave ${check.state.total}, expected ${expected}`);
    printSection('Load time with snapshots (every 100 events)', [
      { name: 'aggregate of 137 events (snapshot at 100)', value: `${fmt(small, 2)} ms (median of ${LOADS})` },
      { name: 'aggregate of 10,037 events (snapshot at 10,000)', value: `${fmt(large, 2)} ms (median of ${LOADS})` },
      { name: 'ratio 10,037 / 137 events, snapshots on', value: fmt(large / small, 2) },
      { name: 'for scale: 10,037 events without snapshot', value: `${fmt(largeNoSnapshot, 1)} ms (${fmt(largeNoSnapshot / small, 1)}x)` },
    ]);
  } finally {
    client.destroy();
    await local.stop();
  }
}
