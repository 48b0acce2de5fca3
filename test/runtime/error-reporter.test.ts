/** ErrorReporter: the event it builds, and its fallback. EventBridge has no local engine: PutEvents is mocked. */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { ConcurrencyError, ErrorReporter, EventStoreValidationError, sanitizeForError } from '../../src/runtime';

const eventBridge = mockClient(EventBridgeClient);
beforeEach(() => eventBridge.reset());

function reporter(logs: string[] = []) {
  return new ErrorReporter({
    component: 'projects',
    busName: 'skafu-errors-test',
    client: new EventBridgeClient({ region: 'us-east-1' }),
    defaultContext: { domain: 'projects', functionName: 'create-project' },
    log: (line) => logs.push(line),
    clock: () => new Date('2026-03-01T10:00:00.000Z'),
  });
}

test('[mocked EventBridge] puts one well-formed Application Error event on the error bus', async () => {
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: '1' }] });
  const outcome = await reporter().report(new Error('table is on fire'), {
    correlationId: 'corr-9',
    context: { apiPath: '/api/v1/projects', httpMethod: 'POST', userId: 'u-1' },
    retryCount: 2,
    original: { body: { name: 'x' } },
  });
  expect(outcome.delivered).toBe(true);
  const [call] = eventBridge.commandCalls(PutEventsCommand);
  const entry = call.args[0].input.Entries![0];
  expect(entry).toMatchObject({ EventBusName: 'skafu-errors-test', Source: 'skafu.projects', DetailType: 'Application Error' });
  const detail = JSON.parse(entry.Detail!);
  expect(detail).toEqual({
    errorId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    correlationId: 'corr-9',
    errorType: 'SystemError',
    severity: 'HIGH',
    message: 'table is on fire',
    context: { domain: 'projects', functionName: 'create-project', apiPath: '/api/v1/projects', httpMethod: 'POST', userId: 'u-1' },
    metadata: { retryCount: 2, retryable: false, original: { body: { name: 'x' } } },
    timestamp: '2026-03-01T10:00:00.000Z',
  });
  expect(outcome.detail).toEqual(detail);
  // No stack trace anywhere in what is sent.
  expect(entry.Detail).not.toMatch(/\bat .*\.ts:\d+/);
});

test('error type, severity and retryability follow the error class', () => {
  const r = reporter();
  expect(r.build(new EventStoreValidationError([{ path: 'x', message: 'bad' }]))).toMatchObject({ errorType: 'EventStoreValidationError', severity: 'LOW', metadata: { retryable: false } });
  expect(r.build(new ConcurrencyError('a', 1, 2))).toMatchObject({ errorType: 'ConcurrencyError', severity: 'LOW', metadata: { retryable: true } });
  class PaymentDeclined extends Error {}
  expect(r.build(new PaymentDeclined('no'))).toMatchObject({ errorType: 'PaymentDeclined', severity: 'HIGH' });
  expect(r.build('a string was thrown')).toMatchObject({ errorType: 'SystemError', message: 'a string was thrown' });
  expect(r.build({ weird: true })).toMatchObject({ message: '{"weird":true}' });
  expect(r.build(new Error('x'), { severity: 'CRITICAL', errorType: 'Custom' })).toMatchObject({ severity: 'CRITICAL', errorType: 'Custom' });
  expect(r.build(new Error('y'.repeat(5000))).message.length).toBeLessThanOrEqual(1001);
});

test('secrets are redacted and the original is truncated to 8 KB', () => {
  const detail = reporter().build(new Error('x'), {
    original: {
      headers: { 'Authorization': 'Bearer abc.def.ghi', 'X-Api-Key': 'k', 'Cookie': 'c', 'Content-Type': 'application/json' },
      body: { password: 'hunter2', clientSecret: 's', refresh_token: 't', name: 'n', blob: 'z'.repeat(50_000) },
    },
  });
  const text = JSON.stringify(detail);
  expect(text).not.toMatch(/hunter2|Bearer abc|"k"|"c"|"s"|"t"/);
  expect(detail.metadata.original).toMatchObject({
    headers: { 'Authorization': '[REDACTED]', 'X-Api-Key': '[REDACTED]', 'Cookie': '[REDACTED]', 'Content-Type': 'application/json' },
    body: { password: '[REDACTED]', clientSecret: '[REDACTED]', refresh_token: '[REDACTED]', name: 'n' },
  });
  expect(detail.metadata.originalTruncated).toBe(true);
  expect(Buffer.byteLength(JSON.stringify(detail.metadata.original))).toBeLessThanOrEqual(8 * 1024);
});

test('sanitizeForError copes with cycles, bigints, functions and depth', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const { value } = sanitizeForError({ cyclic, big: BigInt(7), fn: () => 1, when: new Date('2026-01-01T00:00:00Z'), nan: NaN });
  expect(value).toEqual({ cyclic: { a: 1, self: '[Circular]' }, big: '7', fn: '[function]', when: '2026-01-01T00:00:00.000Z', nan: 'NaN' });
});

test('[mocked EventBridge] FailedEntryCount > 0: falls back to one structured log line, never throws', async () => {
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'boom' }] });
  const logs: string[] = [];
  const outcome = await reporter(logs).report(new Error('original failure'), { correlationId: 'c1' });
  expect(outcome.delivered).toBe(false);
  expect(logs).toHaveLength(1);
  const line = JSON.parse(logs[0]);
  expect(line).toMatchObject({
    level: 'ERROR',
    errorDeliveryFailed: 'PutEvents refused the entry: InternalFailure boom',
    source: 'skafu.projects',
    detailType: 'Application Error',
    detail: { correlationId: 'c1', message: 'original failure' },
  });
});

test('[mocked EventBridge] the bus unreachable: falls back to the log line, never throws', async () => {
  eventBridge.on(PutEventsCommand).rejects(Object.assign(new Error('connect ECONNREFUSED'), { name: 'NetworkingError' }));
  const logs: string[] = [];
  await expect(reporter(logs).report(new Error('x'))).resolves.toMatchObject({ delivered: false });
  expect(JSON.parse(logs[0]).errorDeliveryFailed).toBe('PutEvents failed: NetworkingError connect ECONNREFUSED');
});

test('no bus configured: the log line says so', async () => {
  const logs: string[] = [];
  delete process.env.SKAFU_ERROR_BUS_NAME;
  const unconfigured = new ErrorReporter({ component: 'x', client: new EventBridgeClient({ region: 'us-east-1' }), log: (line) => logs.push(line) });
  await expect(unconfigured.report(new Error('x'))).resolves.toMatchObject({ delivered: false });
  expect(JSON.parse(logs[0]).errorDeliveryFailed).toMatch(/no error bus configured/);
  expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
});

test('even a throwing logger does not reach the caller', async () => {
  eventBridge.on(PutEventsCommand).rejects(new Error('down'));
  const r = new ErrorReporter({ component: 'x', busName: 'b', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => { throw new Error('disk full'); } });
  await expect(r.report(new Error('x'))).resolves.toMatchObject({ delivered: false });
});
