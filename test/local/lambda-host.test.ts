/**
 * The Lambda host: real worker threads running handler files. Handlers that cannot load are reported at start
 * with the reason; a handler's error reaches the caller as Lambda reports it (type, message, trace); a runtime
 * that dies fails its invocations in flight and the next invocation gets a new one; a timeout is a timeout; each
 * DynamoDB write a handler makes is reported with its tables as soon as DynamoDB Local answered it.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaHost, LambdaInvocationError, type LocalFunction } from '../../local/src/lambda-host';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-lambda-host-'));
const write = (name: string, code: string) => {
  fs.mkdirSync(path.join(dir, name), { recursive: true });
  fs.writeFileSync(path.join(dir, name, 'index.js'), code);
};
write('ok', 'let calls = 0; exports.handler = async (event, context) => ({ echo: event, calls: ++calls, env: process.env.GREETING, name: context.functionName });');
write('throws', 'exports.handler = async () => { const e = new RangeError(\'the order is too large\'); throw e; };');
write('bad-load', 'throw new Error(\'cannot read the configuration\');');
write('no-export', 'exports.other = () => 1;');
write('dies', 'exports.handler = async (event) => { if (event.die) setImmediate(() => { throw new Error(\'boom outside the handler\'); }); await new Promise((r) => setTimeout(r, 200)); return \'alive\'; };');
write('slow', 'exports.handler = () => new Promise((r) => setTimeout(r, 5000));');
// A handler with the AWS SDK (as a bundle that leaves @aws-sdk/* to the runtime gets it), against DynamoDB Local.
const sdk = JSON.stringify(require.resolve('@aws-sdk/client-dynamodb'));
write('writer', `
const { DynamoDBClient, PutItemCommand, GetItemCommand, TransactWriteItemsCommand, BatchWriteItemCommand, ExecuteStatementCommand } = require(${sdk});
const client = new DynamoDBClient({ endpoint: process.env.ENDPOINT, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
const item = (id) => ({ id: { S: id } });
exports.handler = async ({ step, a, b }) => {
  if (step === 'put') await client.send(new PutItemCommand({ TableName: a, Item: item('p') }));
  if (step === 'get') await client.send(new GetItemCommand({ TableName: a, Key: item('p') }));
  if (step === 'refused') await client.send(new PutItemCommand({ TableName: a, Item: item('p'), ConditionExpression: 'attribute_not_exists(id)' })).catch(() => undefined);
  if (step === 'transact') await client.send(new TransactWriteItemsCommand({ TransactItems: [{ Put: { TableName: a, Item: item('t') } }, { ConditionCheck: { TableName: b, Key: item('none'), ConditionExpression: 'attribute_not_exists(id)' } }] }));
  if (step === 'batch') await client.send(new BatchWriteItemCommand({ RequestItems: { [a]: [{ PutRequest: { Item: item('b') } }], [b]: [{ DeleteRequest: { Key: item('b') } }] } }));
  if (step === 'partiql') await client.send(new ExecuteStatementCommand({ Statement: \`INSERT INTO "\${b}" VALUE {'id': 'q'}\` }));
  if (step === 'select') await client.send(new ExecuteStatementCommand({ Statement: \`SELECT * FROM "\${b}"\` }));
  if (step === 'slow-after-put') {
    await client.send(new PutItemCommand({ TableName: a, Item: item('s') }));
    await new Promise((r) => setTimeout(r, 300));
  }
  return step;
};`);
const fn = (name: string, extra: Partial<LocalFunction> = {}): LocalFunction => ({
  name: `fn-${name}`,
  arn: `arn:aws:lambda:us-east-1:000000000000:function:fn-${name}`,
  resource: `Stack/${name}`,
  directory: path.join(dir, name),
  handler: 'index.handler',
  environment: { GREETING: 'hello' },
  timeoutSeconds: 3,
  memorySize: 128,
  description: name,
  ...extra,
});

let host: LambdaHost;
const writes: Array<{ tables: readonly string[] | undefined; at: number }> = [];
beforeAll(() => {
  host = new LambdaHost({ ENDPOINT: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT! }, path.join(dir, 'logs'), (tables) => writes.push({ tables, at: Date.now() }));
  for (const name of ['ok', 'throws', 'bad-load', 'no-export', 'dies', 'writer']) host.register(fn(name));
  host.register(fn('missing', { directory: path.join(dir, 'not-there') }));
  host.register(fn('slow', { timeoutSeconds: 1 }));
});
afterAll(() => host.stop());

test('every handler is loaded at start; those that cannot load are named with the reason', async () => {
  const failures = await host.loadAll();
  expect(Object.fromEntries(failures.map((f) => [f.function.resource, f.reason]))).toEqual({
    'Stack/bad-load': 'Error: cannot read the configuration',
    'Stack/no-export': expect.stringMatching(/^Runtime\.HandlerNotFound: .*no-export\/index\.js exports no function 'handler'/),
    'Stack/missing': expect.stringMatching(/^Runtime\.ImportModuleError: Cannot find module '.*not-there\/index\.js'/),
  });
  await expect(host.invoke('fn-bad-load', {})).rejects.toThrow(/fn-bad-load could not be loaded: Error: cannot read the configuration/);
});

test('invocations by name or ARN, with the template environment and a Lambda context; JSON in, JSON out', async () => {
  const out = (await host.invoke('arn:aws:lambda:us-east-1:000000000000:function:fn-ok', { a: 1, when: new Date(0), skip: undefined })) as Record<string, unknown>;
  expect(out).toEqual({ echo: { a: 1, when: '1970-01-01T00:00:00.000Z' }, calls: expect.any(Number), env: 'hello', name: 'fn-ok' });
  await expect(host.invoke('fn-unknown', {})).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
});

test('a handler error reaches the caller with its type, message and trace', async () => {
  const err = (await host.invoke('fn-throws', {}).catch((e: unknown) => e)) as LambdaInvocationError;
  expect(err).toBeInstanceOf(LambdaInvocationError);
  expect(err).toMatchObject({ name: 'RangeError', message: 'the order is too large', functionName: 'fn-throws' });
  expect(err.trace.join('\n')).toContain(path.join(dir, 'throws', 'index.js'));
});

test('a runtime that dies fails the invocations in flight; the next invocation gets a new runtime', async () => {
  const dying = host.invoke('fn-dies', { die: true });
  await expect(dying).rejects.toMatchObject({ name: 'Runtime.ExitError', message: expect.stringContaining('boom outside the handler') });
  await expect(host.invoke('fn-dies', {})).resolves.toBe('alive');
});

test('a handler that runs past its timeout is a Sandbox.Timedout error', async () => {
  await expect(host.invoke('fn-slow', {})).rejects.toMatchObject({ name: 'Sandbox.Timedout', message: 'fn-slow timed out after 1 s' });
});

test('a handler\'s DynamoDB writes are reported with their tables as soon as DynamoDB answered, reads and refused writes not', async () => {
  const [a, b] = [`host-writes-a-${randomUUID()}`, `host-writes-b-${randomUUID()}`];
  const ddb = new DynamoDBClient({ endpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  try {
    for (const name of [a, b]) {
      await ddb.send(new CreateTableCommand({ TableName: name, BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }] }));
    }
    const run = async (step: string) => {
      writes.length = 0;
      await host.invoke('fn-writer', { step, a, b });
      return writes.map((w) => (w.tables ? [...w.tables].sort() : w.tables));
    };
    expect(await run('put')).toEqual([[a]]);
    expect(await run('get')).toEqual([]);
    expect(await run('refused')).toEqual([]); // ConditionalCheckFailed: nothing was written
    expect(await run('transact')).toEqual([[a]]); // a ConditionCheck writes nothing
    expect(await run('batch')).toEqual([[a, b].sort()]);
    expect(await run('partiql')).toEqual([[b]]);
    expect(await run('select')).toEqual([]);
    // Reported while the handler still runs: the stream can be read before the invocation ends.
    writes.length = 0;
    const started = Date.now();
    await host.invoke('fn-writer', { step: 'slow-after-put', a, b });
    const ended = Date.now();
    expect(writes.map((w) => w.tables)).toEqual([[a]]);
    expect(ended - writes[0].at).toBeGreaterThanOrEqual(250);
    expect(writes[0].at).toBeGreaterThanOrEqual(started);
  } finally {
    ddb.destroy();
  }
});

test('writtenTables: every write operation and how it names its tables (names or ARNs), PartiQL included', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { writtenTables } = require('../../local/src/dynamodb-writes.js') as { writtenTables: (op: string, input: unknown) => string[] | null };
  const arn = 'arn:aws:dynamodb:us-east-1:000000000000:table/Orders';
  expect(writtenTables('PutItem', { TableName: 'T' })).toEqual(['T']);
  expect(writtenTables('UpdateItem', { TableName: arn })).toEqual(['Orders']);
  expect(writtenTables('DeleteItem', {})).toBeNull(); // cannot tell: every stream is read
  expect(writtenTables('GetItem', { TableName: 'T' })).toEqual([]);
  expect(writtenTables('Query', { TableName: 'T' })).toEqual([]);
  expect(writtenTables('BatchWriteItem', { RequestItems: { A: [], [arn]: [] } })).toEqual(['A', 'Orders']);
  expect(writtenTables('TransactWriteItems', { TransactItems: [{ Update: { TableName: 'A' } }, { ConditionCheck: { TableName: 'B' } }, { Delete: { TableName: 'A' } }] })).toEqual(['A']);
  expect(writtenTables('ExecuteStatement', { Statement: 'UPDATE "My""Table" SET a = 1 WHERE id = \'x\'' })).toEqual(['My"Table']);
  expect(writtenTables('ExecuteStatement', { Statement: '  select * from T' })).toEqual([]);
  expect(writtenTables('ExecuteStatement', { Statement: 'EXISTS(SELECT 1 FROM T)' })).toBeNull();
  expect(writtenTables('BatchExecuteStatement', { Statements: [{ Statement: 'DELETE FROM Events WHERE id = 1' }, { Statement: 'SELECT * FROM X' }] })).toEqual(['Events']);
  expect(writtenTables('ExecuteTransaction', { TransactStatements: [{ Statement: 'INSERT INTO "a.b-c" VALUE {}' }] })).toEqual(['a.b-c']);
  expect(writtenTables('PutItem', null)).toBeNull();
});
