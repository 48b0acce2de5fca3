/** EventBusPublisher's PutEvents handling. EventBridge has no local engine: PutEvents is mocked. */
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBusPublisher, type EventEnvelope } from '../../src/runtime';

const eventBridge = mockClient(EventBridgeClient);
beforeEach(() => eventBridge.reset());

function event(aggregateId: string, eventSequence: number, data: Record<string, string> = {}): EventEnvelope {
  return {
    eventId: `${aggregateId}-${eventSequence}`,
    eventType: 'Thing',
    eventVersion: 1,
    aggregateId,
    aggregateType: 'T',
    eventSequence,
    timestamp: '2026-01-01T00:00:00.000Z',
    correlationId: 'c',
    causationId: 'c',
    source: 'skafu.things',
    data,
    metadata: {},
  };
}

const publisher = (maxAttempts = 5) =>
  new EventBusPublisher({ busName: 'domain', client: new EventBridgeClient({ region: 'us-east-1' }), maxAttempts, sleep: async () => undefined });

function acceptAll() {
  const calls: PutEventsCommandInput[] = [];
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    calls.push(input);
    return { FailedEntryCount: 0, Entries: input.Entries!.map((_, i) => ({ EventId: String(i) })) };
  });
  return calls;
}

test('[mocked EventBridge] at most 10 entries per call, one event per aggregate per call', async () => {
  const calls = acceptAll();
  const events = [...Array.from({ length: 25 }, (_, i) => event(`a${i}`, 1)), event('a0', 2), event('a0', 3)];
  const report = await publisher().publish(events);
  expect(report.published).toHaveLength(27);
  for (const call of calls) {
    expect(call.Entries!.length).toBeLessThanOrEqual(10);
    const ids = call.Entries!.map((e) => JSON.parse(e.Detail!).aggregateId);
    expect(new Set(ids).size).toBe(ids.length);
  }
  // a0's three events go in three successive waves.
  const waveOf = (seq: number) => calls.findIndex((c) => c.Entries!.some((e) => JSON.parse(e.Detail!).aggregateId === 'a0' && JSON.parse(e.Detail!).eventSequence === seq));
  expect(waveOf(1)).toBeLessThan(waveOf(2));
  expect(waveOf(2)).toBeLessThan(waveOf(3));
});

test('[mocked EventBridge] at most 256 KB per call', async () => {
  const calls = acceptAll();
  const events = Array.from({ length: 6 }, (_, i) => event(`big${i}`, 1, { blob: 'x'.repeat(100 * 1024) }));
  await publisher().publish(events);
  expect(calls.length).toBe(3);
  for (const call of calls) {
    const size = call.Entries!.reduce((n, e) => n + 14 + e.Source!.length + e.DetailType!.length + Buffer.byteLength(e.Detail!), 0);
    expect(size).toBeLessThanOrEqual(256 * 1024);
  }
});

test('[mocked EventBridge] only the failed entries are retried', async () => {
  const sent: string[][] = [];
  let first = true;
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    const ids = input.Entries!.map((e) => JSON.parse(e.Detail!).eventId as string);
    sent.push(ids);
    const results = ids.map((id) => (first && (id === 'a1-1' || id === 'a3-1') ? { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' } : { EventId: id }));
    first = false;
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  });
  const report = await publisher().publish(['a0', 'a1', 'a2', 'a3'].map((a) => event(a, 1)));
  expect(sent).toEqual([['a0-1', 'a1-1', 'a2-1', 'a3-1'], ['a1-1', 'a3-1']]);
  expect(report.published.map((e) => e.eventId)).toEqual(['a0-1', 'a2-1', 'a1-1', 'a3-1']);
  expect(report.undelivered).toEqual([]);
});

test('[mocked EventBridge] retries are bounded; the rest of the aggregate is held back, not published out of order', async () => {
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    const results = input.Entries!.map((e) => (JSON.parse(e.Detail!).eventId === 'a-2' ? { ErrorCode: 'InternalFailure', ErrorMessage: 'x' } : { EventId: '1' }));
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  });
  const report = await publisher(3).publish([event('a', 1), event('a', 2), event('a', 3), event('b', 1)]);
  expect(report.published.map((e) => e.eventId).sort()).toEqual(['a-1', 'b-1']);
  expect(report.undelivered.map((u) => [u.event.eventId, u.errorCode, u.attempts])).toEqual([
    ['a-2', 'InternalFailure', 3],
    ['a-3', 'BlockedByEarlierEvent', 0],
  ]);
  expect(report.undelivered[1].blockedBy).toEqual({ aggregateId: 'a', eventSequence: 2 });
});

test('[mocked EventBridge] input out of order and duplicated is sent in sequence order, once', async () => {
  const calls = acceptAll();
  await publisher().publish([event('a', 3), event('a', 1), event('a', 2), event('a', 1)]);
  expect(calls.map((c) => JSON.parse(c.Entries![0].Detail!).eventSequence)).toEqual([1, 2, 3]);
});

test('entries carry source, detail-type, the envelope and the event time; claim check over 256 KB', () => {
  const p = publisher();
  const small = p.entryFor(event('a', 1, { k: 'v' }));
  expect(small.claimChecked).toBe(false);
  expect(small.entry).toMatchObject({ EventBusName: 'domain', Source: 'skafu.things', DetailType: 'Thing', Time: new Date('2026-01-01T00:00:00.000Z') });
  expect(JSON.parse(small.entry.Detail!)).toEqual({ ...event('a', 1, { k: 'v' }), timestampEpochSeconds: 1767225600 });
  const big = p.entryFor(event('a', 2, { blob: 'x'.repeat(256 * 1024) }));
  expect(big.claimChecked).toBe(true);
  expect(big.size).toBeLessThan(2048);
  expect(JSON.parse(big.entry.Detail!)).toMatchObject({ data: {}, metadata: {}, claimCheck: { dataOmitted: true, aggregateId: 'a', eventSequence: 2 } });
});

test('a publisher needs a bus', () => {
  delete process.env.SKAFU_EVENT_BUS_NAME;
  expect(() => new EventBusPublisher({})).toThrow(/needs busName/);
});
