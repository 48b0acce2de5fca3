/**
 * DynamoDB Streams into event source mappings, against DynamoDB Local: a stream first read while its shard is
 * empty still delivers the records written later (the iterator is asked for again); two tables are both read; a
 * table deleted and created again is read from its new stream's start; a stream that cannot be read is reported
 * on the console and in errors.log; a failing batch is retried, then its metadata goes to the on-failure
 * destination; an idle mapping's periodic look-up does not describe the table every second.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { errorEntries, loadAssembly } from './support/assembly';
import { DynamoDbJsonClient } from '../../local/src/dynamodb-json';
import { DynamoDbStreams } from '../../local/src/dynamodb-streams';

const endpoint = process.env.SKAFU_TEST_DYNAMODB_ENDPOINT!;
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials });
const api = new DynamoDbJsonClient({ endpoint, region: 'us-east-1' });
afterAll(() => {
  client.destroy();
  api.destroy();
});

const createTable = (name: string, stream = true) =>
  client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      StreamSpecification: stream ? { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' } : undefined,
    }),
  );
const put = (table: string, id: string) => client.send(new PutItemCommand({ TableName: table, Item: { id: { S: id } } }));
const mapping = (table: string, fn: string, extra: Record<string, unknown> = {}) => ({
  Type: 'AWS::Lambda::EventSourceMapping',
  Properties: { EventSourceArn: `arn:aws:dynamodb:us-east-1:000000000000:table/${table}/stream/local`, FunctionName: fn, StartingPosition: 'TRIM_HORIZON', BatchSize: 10, ...extra },
});

async function waitFor(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

function start(templates: Record<string, Record<string, unknown>>, invoke: (fn: string, event: any) => Promise<unknown>, pollIntervalMs = 30) {
  const { resources, errors, lines } = loadAssembly(templates);
  const destinations: Array<{ arn: string; body: any }> = [];
  const streams = new DynamoDbStreams({
    api,
    errors,
    log: (line) => lines.push(line),
    invoke,
    sendToDestination: (arn, body) => destinations.push({ arn, body: JSON.parse(body) }),
    pollIntervalMs,
  });
  streams.configure(resources);
  streams.start();
  return { streams, errors, lines, destinations };
}

test('an empty shard first, records later, in two tables of two stacks: every record delivered once, in order', async () => {
  const [a, b] = [`streams-a-${randomUUID()}`, `streams-b-${randomUUID()}`];
  await createTable(a);
  await createTable(b);
  const seen: Record<string, string[]> = { fnA: [], fnB: [] };
  const { streams } = start({ StackA: { MapA: mapping(a, 'fnA') }, StackB: { MapB: mapping(b, 'fnB') } }, async (fn, event) => {
    seen[fn].push(...event.Records.map((r: any) => r.dynamodb.NewImage.id.S));
    return null;
  });
  try {
    await new Promise((r) => setTimeout(r, 400)); // both streams polled while empty
    for (let i = 0; i < 25; i++) await put(a, `a${i}`);
    await put(b, 'b0');
    await new Promise((r) => setTimeout(r, 300)); // idle again, then more
    await put(b, 'b1');
    await waitFor(() => seen.fnA.length >= 25 && seen.fnB.length >= 2);
    expect(seen.fnA).toEqual(Array.from({ length: 25 }, (_, i) => `a${i}`));
    expect(seen.fnB).toEqual(['b0', 'b1']);
  } finally {
    await streams.stop();
  }
});

test('a table deleted and created again: its new stream is read from the start', async () => {
  const table = `streams-recreated-${randomUUID()}`;
  await createTable(table);
  const seen: string[] = [];
  const { streams, lines } = start({ Stack: { Map: mapping(table, 'fn') } }, async (_fn, event) => {
    seen.push(...event.Records.map((r: any) => r.dynamodb.NewImage.id.S));
    return null;
  });
  try {
    await put(table, 'before');
    await waitFor(() => seen.length === 1);
    await client.send(new DeleteTableCommand({ TableName: table }));
    await new Promise((r) => setTimeout(r, 1200));
    await createTable(table);
    await put(table, 'after');
    const recreated = Date.now();
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual(['before', 'after']);
    // Within seconds: on DynamoDB Local the deleted table's shard closes, and the table is looked up until it is back.
    expect(Date.now() - recreated).toBeLessThan(4000);
    expect(lines.join('\n')).toMatch(/new stream \(recreated\)/);
  } finally {
    await streams.stop();
  }
});

test('a stream that cannot be read is reported on the console and in errors.log, once a minute at most', async () => {
  const table = `streams-off-${randomUUID()}`;
  await createTable(table, false);
  const { streams, errors, lines } = start({ Stack: { Map: mapping(table, 'fn') } }, async () => null);
  try {
    await waitFor(() => errorEntries(errors).length > 0);
    await new Promise((r) => setTimeout(r, 300));
    const entries = errorEntries(errors);
    expect(entries).toEqual([expect.objectContaining({ kind: 'StreamReadFailed', resource: 'Stack/Map', message: expect.stringContaining(`table ${table} has no stream enabled`) })]);
    expect(lines.filter((l) => l.startsWith('[StreamReadFailed]'))).toHaveLength(1);
  } finally {
    await streams.stop();
  }
});

test('a failing batch is retried from the failed item, then its metadata goes to the on-failure destination', async () => {
  const table = `streams-failing-${randomUUID()}`;
  await createTable(table);
  const attempts: string[][] = [];
  for (const id of ['ok', 'bad', 'after']) await put(table, id); // one batch, read from the trim horizon
  const { streams, errors, destinations } = start(
    { Stack: { Map: mapping(table, 'fn', { MaximumRetryAttempts: 2, DestinationConfig: { OnFailure: { Destination: 'arn:aws:sqs:us-east-1:000000000000:failed' } } }) } },
    async (_fn, event) => {
      const ids = event.Records.map((r: any) => r.dynamodb.NewImage.id.S);
      attempts.push(ids);
      const bad = event.Records.find((r: any) => r.dynamodb.NewImage.id.S === 'bad');
      return bad ? { batchItemFailures: [{ itemIdentifier: bad.dynamodb.SequenceNumber }] } : null;
    },
  );
  try {
    await waitFor(() => destinations.length === 1);
    expect(attempts[0]).toEqual(['ok', 'bad', 'after']);
    expect(attempts.slice(1, 3)).toEqual([['bad', 'after'], ['bad', 'after']]);
    expect(destinations[0]).toMatchObject({
      arn: 'arn:aws:sqs:us-east-1:000000000000:failed',
      body: { requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 }, DDBStreamBatchInfo: { batchSize: 2 } },
    });
    expect(errorEntries(errors).map((e) => e.kind)).toContain('StreamBatchFailed');
  } finally {
    await streams.stop();
  }
});

test('an idle mapping reads its table at once when nudged for it, not for another table; a full batch is followed by the next at once', async () => {
  const [table, other] = [`streams-nudged-${randomUUID()}`, `streams-other-${randomUUID()}`];
  await createTable(table);
  await createTable(other);
  const batches: string[][] = [];
  // An idle interval of a minute: within the test, only a nudge (or a full batch) makes the mapping read.
  const { streams } = start({ Stack: { Map: mapping(table, 'fn') } }, async (_fn, event) => {
    batches.push(event.Records.map((r: any) => r.dynamodb.NewImage.id.S));
    return null;
  }, 60_000);
  try {
    await new Promise((r) => setTimeout(r, 500)); // the first poll, on the empty shard
    await put(table, 'x0');
    await new Promise((r) => setTimeout(r, 400));
    expect(batches).toEqual([]); // a write from outside waits for the idle interval
    streams.nudge([other]);
    await new Promise((r) => setTimeout(r, 400));
    expect(batches).toEqual([]);
    streams.nudge([table]);
    await waitFor(() => batches.length === 1);
    expect(batches).toEqual([['x0']]);
    for (let i = 1; i <= 25; i++) await put(table, `x${i}`);
    streams.nudge();
    await waitFor(() => batches.flat().length === 26);
    expect(batches.slice(1).map((b) => b.length)).toEqual([10, 10, 5]); // batch size 10, read back to back
    expect(batches.flat()).toEqual(Array.from({ length: 26 }, (_, i) => `x${i}`));
  } finally {
    await streams.stop();
  }
});

test('records reach the handler in Lambda\'s shape: whole epoch seconds, binary as base64 text, empty maps as maps, the stream named', async () => {
  const table = `streams-shape-${randomUUID()}`;
  await createTable(table);
  const records: any[] = [];
  const { streams } = start({ Stack: { Map: mapping(table, 'fn') } }, async (_fn, event) => {
    records.push(...event.Records);
    return null;
  });
  try {
    const before = Math.floor(Date.now() / 1000) - 1;
    await client.send(new PutItemCommand({ TableName: table, Item: { id: { S: 'shape' }, bin: { B: new Uint8Array([1, 2, 255]) }, empty: { M: {} }, nested: { M: { inner: { M: {} }, list: { L: [{ N: '1' }] } } } } }));
    streams.nudge([table]);
    await waitFor(() => records.length === 1);
    const [r] = records;
    expect(r).toMatchObject({ eventName: 'INSERT', eventSource: 'aws:dynamodb', awsRegion: 'us-east-1', eventSourceARN: expect.stringContaining(`table/${table}/stream/`) });
    expect(Number.isInteger(r.dynamodb.ApproximateCreationDateTime)).toBe(true);
    // The Streams API rounds it down to the minute (DynamoDB Streams API reference, StreamRecord).
    expect(r.dynamodb.ApproximateCreationDateTime).toBeGreaterThanOrEqual(before - 60);
    expect(r.dynamodb.ApproximateCreationDateTime).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(r.dynamodb.NewImage).toEqual({
      id: { S: 'shape' },
      bin: { B: Buffer.from([1, 2, 255]).toString('base64') },
      empty: { M: {} },
      nested: { M: { inner: { M: {} }, list: { L: [{ N: '1' }] } } },
    });
    expect(r.dynamodb.Keys).toEqual({ id: { S: 'shape' } });
  } finally {
    await streams.stop();
  }
});

test('an idle mapping looks its stream up with ListStreams every second; DescribeTable, whose cost grows with the table, every 10 s', async () => {
  const table = `streams-lookup-${randomUUID()}`;
  await createTable(table);
  const calls: string[] = [];
  const counting = {
    dynamodb: (operation: string, input: unknown) => (calls.push(operation), api.dynamodb(operation, input)),
    streams: (operation: string, input: unknown) => (calls.push(operation), api.streams(operation, input)),
  } as unknown as DynamoDbJsonClient;
  const { resources, errors, lines } = loadAssembly({ Stack: { Map: mapping(table, 'fn') } });
  const log = (line: string) => lines.push(line);
  const streams = new DynamoDbStreams({ api: counting, errors, log, invoke: async () => null, sendToDestination: () => {}, pollIntervalMs: 30 });
  streams.configure(resources);
  streams.start();
  try {
    await new Promise((r) => setTimeout(r, 3500));
    const count = (operation: string) => calls.filter((c) => c === operation).length;
    expect(count('DescribeTable')).toBe(1); // the first look-up
    expect(count('ListStreams')).toBeGreaterThanOrEqual(2);
    expect(count('GetRecords')).toBeGreaterThan(20);
  } finally {
    await streams.stop();
  }
});
