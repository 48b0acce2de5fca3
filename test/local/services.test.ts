/**
 * The small services, each on its own: EventBridge (PutEvents validated like EventBridge, rules routing to
 * targets, a failed target to its dead-letter queue), SQS (the API the handlers call, redrive), Step Functions
 * (executions start in order, a bounded number at once), the service endpoints (only with the secret; garbage is
 * a 400, not a 500), and the issuer (tokens its JWKS verifies).
 */
import { createPublicKey, createVerify } from 'node:crypto';
import { errorEntries, loadAssembly } from './support/assembly';
import { EventBridge, ValidationException } from '../../local/src/eventbridge';
import { LocalIssuer } from '../../local/src/issuer';
import { ServiceEndpoints } from '../../local/src/service-endpoints';
import { Sqs } from '../../local/src/sqs';
import { StepFunctions } from '../../local/src/step-functions';

const queueArn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const template = {
  Bus: { Type: 'AWS::Events::EventBus', Properties: { Name: 'orders' } },
  Orders: { Type: 'AWS::SQS::Queue', Properties: { RedrivePolicy: { deadLetterTargetArn: queueArn('Dlq'), maxReceiveCount: 2 } } },
  Dlq: { Type: 'AWS::SQS::Queue', Properties: {} },
  ToQueue: {
    Type: 'AWS::Events::Rule',
    Properties: { EventBusName: { Ref: 'Bus' }, EventPattern: { 'source': ['shop'], 'detail-type': ['OrderPlaced'] }, Targets: [{ Id: 'q', Arn: queueArn('Orders') }] },
  },
  ToNowhere: {
    Type: 'AWS::Events::Rule',
    Properties: { EventBusName: { Ref: 'Bus' }, EventPattern: { 'detail-type': ['OrderCancelled'] }, Targets: [{ Id: 'x', Arn: 'arn:aws:states:us-east-1:000000000000:stateMachine:gone', DeadLetterConfig: { Arn: queueArn('Dlq') } }] },
  },
  Nightly: { Type: 'AWS::Events::Rule', Properties: { ScheduleExpression: 'rate(1 day)', Targets: [] } },
};

function services() {
  const { assembly, resources, errors, lines } = loadAssembly({ Shop: template });
  const work: Array<Promise<unknown>> = [];
  const track = (p: Promise<unknown>) => void work.push(p);
  const sqs = new Sqs(assembly, (l) => lines.push(l), track);
  sqs.configure(resources);
  const started: Array<{ arn: string; input: any }> = [];
  const bus = new EventBridge(errors.file.replace(/errors\.log$/, ''), errors, (l) => lines.push(l), track);
  bus.configure(resources, {
    startExecution: (arn, input) => {
      if (arn.endsWith(':gone')) throw new Error(`StateMachineDoesNotExist: ${arn}`);
      started.push({ arn, input });
    },
    sendMessage: (arn, body) => void sqs.sendMessage(arn, body),
    invokeFunction: async () => null,
  });
  return { assembly, resources, errors, lines, sqs, bus, started, settle: () => Promise.all(work) };
}

test('PutEvents: validated like EventBridge, entry by entry; matching events reach the rule targets', async () => {
  const { bus, sqs, settle } = services();
  expect(() => bus.putEvents({})).toThrow(ValidationException);
  expect(() => bus.putEvents({ Entries: Array.from({ length: 11 }, () => ({})) })).toThrow(/1 to 10 entries/);
  const out = bus.putEvents({
    Entries: [
      { Source: 'shop', DetailType: 'OrderPlaced', Detail: '{"orderId":"o-1"}', EventBusName: 'orders' },
      { Source: 'shop', DetailType: 'OrderPlaced', Detail: 'not json', EventBusName: 'orders' },
      { Source: 'shop', DetailType: 'OrderPlaced', Detail: '[1]', EventBusName: 'orders' },
      { Source: 'shop', DetailType: 'OrderPlaced', Detail: '{}', EventBusName: 'no-such-bus' },
      { DetailType: 'OrderPlaced', Detail: '{}' },
    ],
  });
  expect(out.FailedEntryCount).toBe(4);
  expect(out.Entries.map((e) => e.ErrorCode ?? 'ok')).toEqual(['ok', 'MalformedDetail', 'MalformedDetail', 'NotFound', 'InvalidArgument']);
  await settle();
  expect(sqs.messages('Orders').map((m) => JSON.parse(m))).toEqual([
    expect.objectContaining({ 'source': 'shop', 'detail-type': 'OrderPlaced', 'detail': { orderId: 'o-1' }, 'account': '000000000000', 'time': expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) }),
  ]);
});

test('a target that cannot be reached: the event goes to the rule\'s dead-letter queue and is reported', async () => {
  const { bus, sqs, errors, settle } = services();
  bus.putEvents({ Entries: [{ Source: 'shop', DetailType: 'OrderCancelled', Detail: '{"orderId":"o-2"}', EventBusName: 'orders' }] });
  await settle();
  expect(sqs.messages('Dlq').map((m) => JSON.parse(m).detail)).toEqual([{ orderId: 'o-2' }]);
  expect(errorEntries(errors)).toEqual([expect.objectContaining({ kind: 'TargetDeliveryFailed', resource: 'Shop/ToNowhere', message: expect.stringContaining('sent to its dead-letter queue') })]);
});

test('a scheduled rule is named as not emulated', () => {
  const { bus } = services();
  expect(bus.unsupported).toEqual([expect.objectContaining({ type: 'AWS::Events::Rule (schedule)', why: expect.stringContaining('Shop/Nightly') })]);
});

test('SQS: the handlers\' API is validated; a message failing maxReceiveCount times goes to the dead-letter queue', async () => {
  const { sqs, resources } = services();
  expect(() => sqs.action('AmazonSQS.SendMessage', { QueueUrl: 'x' })).toThrow(ValidationException);
  expect(() => sqs.action('AmazonSQS.SendMessage', 'garbage')).toThrow(ValidationException);
  expect(() => sqs.action('AmazonSQS.PurgeQueue', {})).toThrow(/not emulated/);
  expect(() => sqs.action('AmazonSQS.SendMessage', { QueueUrl: 'https://sqs/000000000000/none', MessageBody: 'x' })).toThrow(/does not exist/);
  expect(sqs.action('AmazonSQS.SendMessage', { QueueUrl: sqs.queue('/Shop-Orders')!.arn, MessageBody: 'poison' })).toEqual({ MessageId: expect.any(String) });
  const received: string[] = [];
  const mapping = { Type: 'AWS::Lambda::EventSourceMapping', logicalId: 'M', path: 'Shop/M', stack: resources[0].stack, properties: { EventSourceArn: sqs.queue('/Shop-Orders')!.arn, FunctionName: 'fn', BatchSize: 1 } };
  sqs.startMappings([{ ...mapping, type: 'AWS::Lambda::EventSourceMapping' }], async (_fn, event: any) => {
    received.push(event.Records[0].attributes.ApproximateReceiveCount);
    throw new Error('cannot process');
  }, 20);
  const deadline = Date.now() + 5000;
  while (sqs.messages('Dlq').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  sqs.stop();
  expect(received).toEqual(['1', '2']);
  expect(sqs.messages('Dlq')).toEqual(['poison']);
});

test('Step Functions: executions start in arrival order, at most the bound at once; a failed one is reported', async () => {
  const definition = {
    StartAt: 'Started',
    States: {
      Started: { Type: 'Task', Resource: 'arn:aws:states:::events:putEvents', Parameters: { Entries: [{ 'Detail.$': '$' }] }, ResultPath: null, Next: 'Wait' },
      Wait: { Type: 'Wait', Seconds: 1, Next: 'Done' },
      Done: { Type: 'Pass', End: true },
    },
  };
  const starts: Array<{ i: number; at: number }> = [];
  const failing = { StartAt: 'Fail', States: { Fail: { Type: 'Fail', Error: 'Boom', Cause: 'on purpose' } } };
  const { resources } = loadAssembly({
    S: {
      M: { Type: 'AWS::StepFunctions::StateMachine', Properties: { DefinitionString: JSON.stringify(definition), StateMachineType: 'EXPRESS' } },
      F: { Type: 'AWS::StepFunctions::StateMachine', Properties: { DefinitionString: JSON.stringify(failing) } },
      T: { Type: 'AWS::StepFunctions::StateMachine', Properties: { DefinitionString: JSON.stringify({ StartAt: 'Call', States: { Call: { Type: 'Task', Resource: 'arn:aws:states:::sqs:sendMessage', End: true } } }) } },
    },
  });
  const lines: string[] = [];
  const work: Array<Promise<unknown>> = [];
  const sfn = new StepFunctions({
    client: {} as never, // no task of these definitions calls DynamoDB
    putEvents: (input) => {
      starts.push({ i: (input.Entries[0].Detail as { i: number }).i, at: Date.now() });
      return { FailedEntryCount: 0, Entries: [{ EventId: 'e' }] };
    },
    waitMs: 100,
    retryMs: 10,
    log: (l) => lines.push(l),
    track: (p) => void work.push(p),
    maxConcurrentExecutions: 2,
  });
  sfn.configure(resources);
  expect(sfn.unsupported).toEqual([expect.objectContaining({ type: 'Task arn:aws:states:::sqs:sendMessage', why: expect.stringContaining("S/T state 'Call'") })]);
  expect(() => sfn.startExecution('arn:nope', {})).toThrow(/StateMachineDoesNotExist/);
  for (let i = 0; i < 5; i++) sfn.startExecution('arn:aws:states:us-east-1:000000000000:stateMachine:S-M', { i });
  expect(sfn.pending).toBe(5);
  await new Promise((r) => setTimeout(r, 20));
  sfn.startExecution('arn:aws:states:us-east-1:000000000000:stateMachine:S-F', {});
  await Promise.all(work);
  expect(sfn.pending).toBe(0);
  expect(sfn.failedExecutions).toBe(1);
  expect(starts.map((s) => s.i)).toEqual([0, 1, 2, 3, 4]);
  // Two at a time: the third starts only when one of the first two has waited its 100 ms.
  expect(starts[2].at - starts[0].at).toBeGreaterThanOrEqual(90);
  expect(lines.join('\n')).toMatch(/\[state machine S-F\] execution failed: .*Boom/);
});

test('the service endpoints: nothing without the secret; garbage is a 400; PutEvents and SQS with it', async () => {
  const { bus, sqs, errors } = services();
  const endpoints = new ServiceEndpoints({ putEvents: (i) => bus.putEvents(i), sqs: (t, i) => sqs.action(t, i), jwks: () => ({ keys: [] }) }, errors);
  await endpoints.listen();
  try {
    const post = (url: string, body: string, target: string) => fetch(url, { method: 'POST', headers: { 'X-Amz-Target': target, 'Content-Type': 'application/x-amz-json-1.1' }, body });
    const good = JSON.stringify({ Entries: [{ Source: 'shop', DetailType: 'OrderPlaced', Detail: '{}', EventBusName: 'orders' }] });
    expect((await post(`${endpoints.base}/events`, good, 'AWSEvents.PutEvents')).status).toBe(403);
    expect((await post(`${endpoints.base}/${'x'.repeat(endpoints.secret.length)}/events`, good, 'AWSEvents.PutEvents')).status).toBe(403);
    const garbage = await post(endpoints.eventsUrl, '{not json', 'AWSEvents.PutEvents');
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toEqual({ __type: 'SerializationException', message: 'The request body is not JSON' });
    expect((await post(endpoints.eventsUrl, '{"Entries":"x"}', 'AWSEvents.PutEvents')).status).toBe(400);
    expect((await post(endpoints.eventsUrl, good, 'AWSEvents.ListRules')).status).toBe(400);
    expect((await post(endpoints.sqsUrl, '[]', 'AmazonSQS.SendMessage')).status).toBe(400);
    const ok = await post(endpoints.eventsUrl, good, 'AWSEvents.PutEvents');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ FailedEntryCount: 0, Entries: [{ EventId: expect.any(String) }] });
    expect((await fetch(endpoints.jwksUrl)).status).toBe(200);
  } finally {
    await endpoints.close();
  }
});

test('the issuer: Cognito-shaped access tokens that its JWKS verifies', () => {
  const issuer = new LocalIssuer('us-east-1_Pool', 'client-1');
  const token = issuer.token('u-1', ['Admin']);
  const [header, payload, signature] = token.split('.');
  const key = createPublicKey({ key: issuer.jwks.keys[0] as never, format: 'jwk' });
  expect(createVerify('RSA-SHA256').update(`${header}.${payload}`).verify(key, Buffer.from(signature, 'base64url'))).toBe(true);
  expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toMatchObject({ 'sub': 'u-1', 'cognito:groups': ['Admin'], 'iss': 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool', 'client_id': 'client-1', 'token_use': 'access' });
  expect(Object.keys(issuer.demoTokens(['Admin', 'Viewer']))).toEqual(['Admin', 'Viewer', 'NoGroup']);
});
