/**
 * Issue 16's change publisher (found by a hostile review, fixed: the record is parked alone). One record AppSync can never accept (a GraphQL validation error:
 * an item whose attribute no longer fits the generated type, e.g. an item written before a read model's attribute
 * changed type) is retried from itself on every attempt, so every later change in the batch (other items, up to
 * batchSize - 1 = 99) is retried with it and, after publishRetryAttempts, dead-lettered with it: live updates of
 * healthy items are lost because of one item. A permanent (non-retryable) refusal should park that record alone
 * (its keys and sequence number on the failed-changes queue) and go on; a transient one (HTTP 5xx, throttling,
 * network) keeps the retry-from-here behaviour.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DynamoDBRecord } from 'aws-lambda';
import { createChangePublisher, permanentRefusal, signedSqsSend } from '../../src/graphql/change-publisher.lambda';

const record = (seq: string, id: string, threshold: unknown): DynamoDBRecord => ({
  eventName: 'MODIFY',
  eventSourceARN: 'arn:aws:dynamodb:eu-west-1:111111111111:table/alerts/stream/2026-01-01T00:00:00.000',
  dynamodb: {
    SequenceNumber: seq,
    Keys: { alertId: { S: id } },
    NewImage: { alertId: { S: id }, threshold: typeof threshold === 'number' ? { N: String(threshold) } : { S: String(threshold) } },
  },
});

const refusal = { status: 200, body: { data: { publishAlertsChange: null }, errors: [{ errorType: 'ValidationError', message: "Can't serialize value (/publishAlertsChange/item/threshold) : Unable to serialize `abc` as a valid Float." }] } };

test('a record AppSync refuses for good (ValidationError) does not take the healthy changes after it down with it', async () => {
  const published: string[] = [];
  const parked: Array<Record<string, unknown>> = [];
  const publish = createChangePublisher({
    park: async (message) => {
      parked.push(message);
    },
    models: [{ table: 'alerts', keys: ['alertId'], document: 'mutation PublishAlertsChange { x }' }],
    post: async (body) => {
      const { variables } = JSON.parse(body);
      const item = JSON.parse(variables.item);
      if (typeof item.threshold !== 'number') {
        // A permanent refusal, shaped as AppSync answers field errors (HTTP 200 with errors; exact wording not verified).
        return { status: 200, body: { data: { publishAlertsChange: null }, errors: [{ errorType: 'ValidationError', message: "Can't serialize value (/publishAlertsChange/item/threshold) : Unable to serialize `abc` as a valid Float." }] } };
      }
      published.push(variables.alertId);
      return { status: 200, body: { data: { publishAlertsChange: { alertId: variables.alertId } } } };
    },
  });
  const batch = { Records: [record('1', 'legacy', 'abc'), record('2', 'a1', 1), record('3', 'a2', 2)] };
  // Lambda: the first attempt and publishRetryAttempts (3) retries, each from the first reported failure.
  let records = batch.Records;
  for (let attempt = 0; attempt < 4 && records.length > 0; attempt++) {
    const out = await publish({ Records: records });
    const first = out.batchItemFailures[0]?.itemIdentifier;
    records = first === undefined ? [] : records.slice(records.findIndex((r) => r.dynamodb?.SequenceNumber === first));
  }
  // Before the fix: [] (a1 and a2 were never published and went to the failed-changes queue with the legacy record).
  expect(published).toEqual(['a1', 'a2']);
  expect(parked).toEqual([expect.objectContaining({ reason: 'RefusedByAppSync', table: 'alerts', sequenceNumber: '1', keys: { alertId: { S: 'legacy' } } })]);
});

test('a transient failure (5xx, throttling) still retries from its record, and so does a refusal whose parking fails', async () => {
  for (const [answer, parkFails] of [[{ status: 503, body: 'unavailable' }, false], [{ status: 429, body: {} }, false], [refusal, true]] as const) {
    const published: string[] = [];
    const publish = createChangePublisher({
      models: [{ table: 'alerts', keys: ['alertId'], document: 'mutation PublishAlertsChange { x }' }],
      park: async () => {
        if (parkFails) throw new Error('SQS SendMessage answered HTTP 500');
      },
      post: async (body) => {
        const { variables } = JSON.parse(body);
        if (variables.alertId === 'bad') return answer;
        published.push(variables.alertId);
        return { status: 200, body: { data: {} } };
      },
    });
    const out = await publish({ Records: [record('1', 'a0', 1), record('2', 'bad', 2), record('3', 'a3', 3)] });
    expect(published).toEqual(['a0']);
    expect(out.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(['2', '3']);
  }
});

test('what counts as a refusal for good', () => {
  expect(permanentRefusal(400, { errors: [] })).toBe(true);
  expect(permanentRefusal(200, refusal.body)).toBe(true);
  expect(permanentRefusal(200, { errors: [{ message: "Variable 'item' has an invalid value" }] })).toBe(true);
  // One error that may pass on a retry makes the whole answer retryable.
  expect(permanentRefusal(200, { errors: [refusal.body.errors[0], { errorType: 'ExecutionTimeout', message: 'timed out' }] })).toBe(false);
  for (const status of [401, 403, 429, 500, 502, 503]) expect(permanentRefusal(status, { errors: [refusal.body.errors[0]] })).toBe(false);
  expect(permanentRefusal(200, { data: {} })).toBe(false);
  expect(permanentRefusal(200, { errors: 'not a list' })).toBe(false);
  expect(permanentRefusal(200, { errors: [{ errorType: '__proto__' }] })).toBe(false);
});

test('parking sends one SQS SendMessage in the AWS JSON 1.0 protocol, signed for sqs, to the queue endpoint (a model of the SQS API, no SQS engine here)', async () => {
  const seen: Array<{ url?: string; headers: IncomingHttpHeaders; body: string }> = [];
  let status = 200;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ url: req.url, headers: req.headers, body });
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(status === 200 ? { MessageId: 'm-1', MD5OfMessageBody: 'x' } : { __type: 'com.amazonaws.sqs#InternalError' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const queueUrl = `http://127.0.0.1:${port}/111111111111/FailedChanges`;
  try {
    const send = signedSqsSend(queueUrl, { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' });
    await send({ reason: 'RefusedByAppSync', sequenceNumber: '7' });
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toBe('/');
    expect(seen[0].headers['x-amz-target']).toBe('AmazonSQS.SendMessage');
    expect(seen[0].headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(String(seen[0].headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/sqs\/aws4_request, SignedHeaders=[^,]*x-amz-target/);
    const body = JSON.parse(seen[0].body);
    expect(body.QueueUrl).toBe(queueUrl);
    expect(JSON.parse(body.MessageBody)).toEqual({ reason: 'RefusedByAppSync', sequenceNumber: '7' });
    status = 500;
    await expect(send({ reason: 'again' })).rejects.toThrow(/HTTP 500/);
    // An endpoint override (AWS_ENDPOINT_URL_SQS, as Skafu Local gives its functions) is where the request goes.
    status = 200;
    const viaOverride = signedSqsSend('https://sqs.eu-west-1.amazonaws.com/111111111111/FailedChanges', {
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${port}/secret/sqs`,
    });
    await viaOverride({ reason: 'local' });
    expect(seen[2].url).toBe('/secret/sqs');
    expect(JSON.parse(seen[2].body).QueueUrl).toBe('https://sqs.eu-west-1.amazonaws.com/111111111111/FailedChanges');
  } finally {
    server.close();
  }
});
