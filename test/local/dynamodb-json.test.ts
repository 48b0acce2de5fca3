/**
 * DynamoDB's JSON API spoken directly (Skafu Local's own calls: state machine tasks, stream reads), against
 * DynamoDB Local: a state machine's DynamoDB tasks answer exactly what they answer through the SDK client, and
 * fail with the same Step Functions error names; service errors keep their details; a connection the server
 * closed is retried, DynamoDB's own errors are not.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbJsonClient, DynamoDbServiceError } from '../../local/src/dynamodb-json';
import { runDefinition } from '../../local/src/state-machines';

const endpoint = process.env.SKAFU_TEST_DYNAMODB_ENDPOINT!;
const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
const api = new DynamoDbJsonClient({ endpoint, region: 'us-east-1' });
afterAll(() => {
  client.destroy();
  api.destroy();
});

/** A definition with every DynamoDB task Skafu emulates; each task's result or error is kept in the output. */
function definition(table: string, id: string) {
  const key = { id: { S: id } };
  const task = (name: string, resource: string, parameters: Record<string, unknown>, next: string) => ({
    Type: 'Task',
    Resource: resource,
    Parameters: parameters,
    ResultPath: `$.results.${name}`,
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: `$.errors.${name}`, Next: next }],
    Next: next,
  });
  return {
    StartAt: 'Put',
    States: {
      Put: task('Put', 'arn:aws:states:::dynamodb:putItem', { TableName: table, Item: { ...key, n: { N: '1' }, bin: { B: 'AQL/' }, m: { M: {} } } }, 'PutAgain'),
      PutAgain: task('PutAgain', 'arn:aws:states:::dynamodb:putItem', { TableName: table, Item: key, ConditionExpression: 'attribute_not_exists(id)' }, 'Update'),
      Update: task('Update', 'arn:aws:states:::dynamodb:updateItem', { TableName: table, Key: key, UpdateExpression: 'SET n = n + :one', ExpressionAttributeValues: { ':one': { N: '1' } }, ReturnValues: 'ALL_NEW' }, 'UpdateIf'),
      // A conditional UpdateItem refused (a projection's checkpoint-only advance delivered twice).
      UpdateIf: task('UpdateIf', 'arn:aws:states:::dynamodb:updateItem', { TableName: table, Key: key, UpdateExpression: 'SET n = :one', ConditionExpression: 'attribute_not_exists(id)', ExpressionAttributeValues: { ':one': { N: '1' } } }, 'Get'),
      Get: task('Get', 'arn:aws:states:::dynamodb:getItem', { TableName: table, Key: key, ConsistentRead: true }, 'GetMissing'),
      GetMissing: task('GetMissing', 'arn:aws:states:::dynamodb:getItem', { TableName: table, Key: { id: { S: `${id}-missing` } } }, 'Transact'),
      Transact: task('Transact', 'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems', { TransactItems: [{ Put: { TableName: table, Item: key, ConditionExpression: 'attribute_not_exists(id)' } }] }, 'NoTable'),
      NoTable: task('NoTable', 'arn:aws:states:::dynamodb:getItem', { TableName: `${table}-gone`, Key: key }, 'Delete'),
      Delete: task('Delete', 'arn:aws:states:::dynamodb:deleteItem', { TableName: table, Key: key, ReturnValues: 'ALL_OLD' }, 'Done'),
      Done: { Type: 'Succeed' },
    },
  };
}

test('state machine DynamoDB tasks answer and fail through the JSON API exactly as through the SDK client', async () => {
  const table = `json-api-${randomUUID()}`;
  await client.send(new CreateTableCommand({ TableName: table, BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }] }));
  const options = (dynamodb?: DynamoDbJsonClient) => ({
    client,
    dynamodb,
    putEvents: () => ({}),
    stateMachine: { id: 'arn:aws:states:us-east-1:000000000000:stateMachine:json', name: 'json' },
    waitMs: 0,
    retryMs: 0,
  });
  const viaSdk = (await runDefinition(definition(table, 'sdk'), {}, options())) as Record<string, any>;
  const viaJson = (await runDefinition(definition(table, 'json'), {}, options(api))) as Record<string, any>;
  const normalize = (out: Record<string, any>, id: string) => JSON.parse(JSON.stringify(out).split(`"${id}`).join('"ID'));
  // The SDK turns a binary attribute into bytes (JSON-copied as an object of indexes); the JSON API keeps the
  // base64 text Step Functions receives. Every other answer and error is the same.
  expect(viaJson.results.Update.Attributes.bin).toEqual({ B: 'AQL/' });
  expect(viaJson.results.Get.Item.bin).toEqual({ B: 'AQL/' });
  for (const out of [viaSdk, viaJson]) {
    delete out.results.Update.Attributes.bin;
    delete out.results.Get.Item.bin;
    delete out.results.Delete.Attributes.bin;
  }
  expect(normalize(viaJson, 'json')).toEqual(normalize(viaSdk, 'sdk'));
  expect(viaJson.results.Get.Item).toEqual({ id: { S: 'json' }, n: { N: '2' }, m: { M: {} } });
  expect(viaJson.results.GetMissing).toEqual({});
  expect(Object.fromEntries(Object.entries(viaJson.errors).map(([k, v]: [string, any]) => [k, v.Error]))).toEqual({
    PutAgain: 'DynamoDB.ConditionalCheckFailedException',
    UpdateIf: 'DynamoDB.ConditionalCheckFailedException',
    Transact: 'DynamoDb.TransactionCanceledException',
    NoTable: 'DynamoDB.ResourceNotFoundException',
  });
});

test('a service error keeps its name, message, status and details, and is not retried', async () => {
  const err = (await api.dynamodb('TransactWriteItems', { TransactItems: [{ ConditionCheck: { TableName: `json-none-${randomUUID()}`, Key: { id: { S: 'x' } }, ConditionExpression: 'attribute_exists(id)' } }] }).catch((e: unknown) => e)) as DynamoDbServiceError;
  expect(err).toBeInstanceOf(DynamoDbServiceError);
  expect(err).toMatchObject({ name: 'ResourceNotFoundException', statusCode: 400 });
  const invalid = (await api.streams('GetRecords', { ShardIterator: 'not-an-iterator' }).catch((e: unknown) => e)) as DynamoDbServiceError;
  expect(invalid).toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/ShardIterator/i) });

  // A server that closes the first two connections without answering, then answers: the call succeeds on the
  // third; a server that keeps answering a 400 is asked once.
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    if (req.url === '/flaky' && requests <= 2) return void req.socket.destroy();
    res.writeHead(req.url === '/flaky' ? 200 : 400, { 'content-type': 'application/x-amz-json-1.0' });
    res.end(req.url === '/flaky' ? '{"Table":{}}' : '{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const flaky = new DynamoDbJsonClient({ endpoint: `${base}/flaky`, region: 'us-east-1' });
  const refusing = new DynamoDbJsonClient({ endpoint: `${base}/refusing`, region: 'us-east-1' });
  try {
    await expect(flaky.dynamodb('DescribeTable', { TableName: 't' })).resolves.toEqual({ Table: {} });
    expect(requests).toBe(3);
    requests = 0;
    await expect(refusing.dynamodb('DescribeTable', { TableName: 't' })).rejects.toMatchObject({ name: 'ThrottlingException', message: 'slow down', statusCode: 400 });
    expect(requests).toBe(1);
  } finally {
    flaky.destroy();
    refusing.destroy();
    await new Promise((r) => server.close(r));
  }
});
