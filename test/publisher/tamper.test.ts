/**
 * Events are immutable, and tampering is loud (issue 10): a MODIFY or REMOVE of an event item on the event
 * store's stream raises a CRITICAL EventTampered error event (aggregate, sequence, what changed) and the
 * EventsTampered metric, and the changed event is never published. Real stream records from DynamoDB Local
 * (NEW_AND_OLD_IMAGES, as the construct deploys it), selected by the publisher's synthesized event source filters
 * (applied with Skafu Local's EventBridge-pattern matcher, the syntax Lambda filters use), fed to the bundled
 * publisher handler. EventBridge has no local engine: PutEvents is mocked.
 */
import { DeleteItemCommand, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { matchesPattern } from '../../local/src/event-pattern';
import { DomainEventBus, ErrorBus, EventStorePublisher, EventStoreTable } from '../../src';
import { powertools } from '../../src/internal/powertools';
import { createPublisherHandler } from '../../src/publisher/publisher.lambda';
import { ErrorReporter, EventBusPublisher, EventStore, NO_STREAM, type ErrorEventDetail, type EventEnvelope } from '../../src/runtime';
import { localStreamsClient, readStream } from '../support/streams';
import { createEventStoreTable, localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);
let client: DynamoDBClient;
let streams: DynamoDBStreamsClient;
beforeAll(() => {
  client = localClient();
  streams = localStreamsClient();
});
afterAll(() => {
  client.destroy();
  streams.destroy();
});

/** The publisher's event source filters, as synthesized. */
function synthesizedFilters(): Array<Record<string, unknown>> {
  const stack = new Stack(new App(), 'Outbox');
  new EventStorePublisher(stack, 'Outbox', { eventStore: new EventStoreTable(stack, 'Store'), eventBus: new DomainEventBus(stack, 'Bus').eventBus, errorBus: new ErrorBus(stack, 'Errors') });
  const [mapping] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::EventSourceMapping')) as any[];
  return (mapping.Properties.FilterCriteria.Filters as Array<{ Pattern: string }>).map((f) => JSON.parse(f.Pattern) as Record<string, unknown>);
}

/** The records of the table's stream that Lambda delivers to the publisher (the synthesized filters). */
async function deliveredRecords(tableName: string): Promise<DynamoDBRecord[]> {
  const filters = synthesizedFilters();
  const records = (await readStream(client, streams, tableName)).flatMap((s) => s.records);
  return records.filter((r) => filters.some((f) => matchesPattern(f, r as never))) as DynamoDBRecord[];
}

/** The publisher's handler on a mocked EventBridge (no local engine): what it put on the domain bus and the error bus. */
function publisherOnMockedBus(tools = powertools('test')) {
  const accepted: EventEnvelope[] = [];
  const errors: ErrorEventDetail[] = [];
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
    for (const e of input.Entries ?? []) (e.EventBusName === 'errors' ? errors : accepted).push(JSON.parse(e.Detail!));
    return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `x${i}` })) };
  });
  const ebClient = new EventBridgeClient({ region: 'us-east-1' });
  const handler = createPublisherHandler({
    tools,
    reporter: new ErrorReporter({ component: 'outbox-publisher', busName: 'errors', client: ebClient, log: () => undefined }),
    publisher: new EventBusPublisher({ busName: 'domain', client: ebClient, sleep: async () => undefined }),
  });
  return { handler, accepted, errors };
}

test('a stream MODIFY or REMOVE of an event raises a CRITICAL EventTampered error event and is never published', async () => {
  const tableName = await createEventStoreTable(client);
  const store = new EventStore({ tableName, domain: 'billing', client });
  await store.append('invoice-1', [{ eventType: 'InvoiceIssued', data: { amount: 100, customer: { name: 'Ada' } } }, { eventType: 'InvoicePaid', data: { amount: 100 } }], {
    expectedVersion: NO_STREAM,
    aggregateType: 'Invoice',
  });
  await store.append('invoice-2', [{ eventType: 'InvoiceIssued', data: { amount: 7 } }], { expectedVersion: NO_STREAM, aggregateType: 'Invoice', idempotencyKey: 'k' });
  await store.saveSnapshot({ aggregateId: 'invoice-1', aggregateType: 'Invoice', version: 2, reducerVersion: 'v1', state: {} });
  const [stored] = await store.load('invoice-1');

  // A compromised or buggy writer rewrites history three ways; non-event items change too (not tampering).
  const doc = DynamoDBDocumentClient.from(client);
  await doc.send(new PutCommand({ TableName: tableName, Item: { streamId: 'billing#invoice-1', ...stored, itemType: 'event', data: { amount: 1, customer: { name: 'Ada' } } } }));
  await client.send(new UpdateItemCommand({ TableName: tableName, Key: { streamId: { S: 'billing#invoice-1' }, eventSequence: { N: '2' } }, UpdateExpression: 'SET eventType = :t', ExpressionAttributeValues: { ':t': { S: 'InvoiceVoided' } } }));
  await client.send(new DeleteItemCommand({ TableName: tableName, Key: { streamId: { S: 'billing#invoice-2' }, eventSequence: { N: '1' } } }));
  await store.saveSnapshot({ aggregateId: 'invoice-1', aggregateType: 'Invoice', version: 2, reducerVersion: 'v1', state: { again: true } });

  const delivered = await deliveredRecords(tableName);
  // Lambda delivers the three inserts and the three changes to events, not the snapshot or idempotency items.
  expect(delivered.map((r) => r.eventName)).toEqual(['INSERT', 'INSERT', 'INSERT', 'MODIFY', 'MODIFY', 'REMOVE']);

  const tools = powertools('test');
  const metrics = jest.spyOn(tools.metrics, 'addMetric');
  const { handler, accepted, errors } = publisherOnMockedBus(tools);
  const response = await handler({ Records: delivered });
  expect(response.batchItemFailures).toEqual([]);

  // The originals were published once; nothing of the changes reached the bus.
  expect(accepted.map((e) => `${e.aggregateId}#${e.eventSequence}:${e.eventType}:${JSON.stringify(e.data.amount)}`).sort()).toEqual([
    'invoice-1#1:InvoiceIssued:100',
    'invoice-1#2:InvoicePaid:100',
    'invoice-2#1:InvoiceIssued:7',
  ]);
  expect(errors).toHaveLength(3);
  for (const e of errors) expect(e).toMatchObject({ errorType: 'EventTampered', severity: 'CRITICAL', context: { domain: 'billing' } });
  expect(errors.map((e) => e.metadata)).toEqual([
    // The overwrite also lost the first event's aggregate-index keys: every difference is named.
    expect.objectContaining({
      change: 'MODIFY',
      aggregateId: 'invoice-1',
      aggregateType: 'Invoice',
      eventSequence: 1,
      eventType: 'InvoiceIssued',
      changedPaths: ['aggregateListCreatedAt', 'aggregateListType', 'data.amount'],
    }),
    expect.objectContaining({ change: 'MODIFY', aggregateId: 'invoice-1', eventSequence: 2, eventType: 'InvoicePaid', changedPaths: ['eventType'] }),
    expect.objectContaining({ change: 'REMOVE', aggregateId: 'invoice-2', eventSequence: 1, streamId: 'billing#invoice-2', changedPaths: ['*'] }),
  ]);
  // What changed, never the values (they may be personal data).
  expect(JSON.stringify(errors)).not.toContain('Ada');
  expect(metrics).toHaveBeenCalledWith('EventsTampered', 'Count', 3);
  doc.destroy();
});

test('an event item whose partition key contradicts its envelope (another domain or aggregate) is reported, never published', async () => {
  const tableName = await createEventStoreTable(client);
  const billing = new EventStore({ tableName, domain: 'billing', client });
  await billing.append('c1', [{ eventType: 'InvoiceIssued', data: { amount: 5 } }], { expectedVersion: NO_STREAM, aggregateType: 'Invoice' });
  const [genuine] = await billing.load('c1');
  // A principal confined to billing's partition keys writes items that claim to be someone else's events.
  const doc = DynamoDBDocumentClient.from(client);
  const forge = (eventSequence: number, claims: Record<string, unknown>) =>
    doc.send(
      new PutCommand({ TableName: tableName, Item: { ...genuine, streamId: 'billing#c1', eventSequence, itemType: 'event', eventId: `forged-${eventSequence}`, ...claims } }),
    );
  await forge(2, { source: 'skafu.shop', eventType: 'OrderRefunded' }); // speaks for shop's c1
  await forge(3, { aggregateId: 'c9' }); // speaks for billing's c9
  await forge(4, { source: 'shop' }); // not a Skafu source at all
  // Under billing#x#y: a genuine event of billing's aggregate 'x#y' is published; 'skafu.billing#x' with id 'y' is not.
  await billing.append('x#y', [{ eventType: 'InvoiceIssued', data: { amount: 1 } }], { expectedVersion: NO_STREAM, aggregateType: 'Invoice' });
  const [genuineWithSeparator] = await billing.load('x#y');
  await doc.send(new PutCommand({ TableName: tableName, Item: { ...genuineWithSeparator, streamId: 'billing#x#y', eventSequence: 2, itemType: 'event', source: 'skafu.billing#x', aggregateId: 'y' } }));

  const { handler, accepted, errors } = publisherOnMockedBus();
  expect((await handler({ Records: await deliveredRecords(tableName) })).batchItemFailures).toEqual([]);
  expect(accepted.map((e) => `${e.source}/${e.aggregateId}#${e.eventSequence}`)).toEqual(['skafu.billing/c1#1', 'skafu.billing/x#y#1']);
  expect(errors.map((e) => [e.errorType, e.severity, e.context.domain, e.metadata])).toEqual(
    [
      ...[2, 3, 4].map((seq) => ['billing#c1', 'c1', seq]),
      ['billing#x#y', 'x#y', 2],
    ].map(([streamId, aggregateId, seq]) => [
      'EventTampered',
      'CRITICAL',
      'billing', // the domain the key belongs to, not the one claimed
      expect.objectContaining({ change: 'INSERT', streamId, aggregateId, eventSequence: seq, changedPaths: ['source', 'aggregateId'] }),
    ]),
  );
  expect(errors[0].message).toMatch(/contradicts \(source, aggregateId\); not published/);
  doc.destroy();
});

test('the outbox has a tamper alarm on the EventsTampered metric, and the platform lists it', () => {
  const stack = new Stack(new App(), 'Alarm');
  const outbox = new EventStorePublisher(stack, 'Outbox', { eventStore: new EventStoreTable(stack, 'Store'), eventBus: new DomainEventBus(stack, 'Bus').eventBus, errorBus: new ErrorBus(stack, 'Errors') });
  Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'EventsTampered',
    Namespace: 'Skafu',
    Dimensions: [{ Name: 'service', Value: 'skafu-outbox-publisher' }],
    Threshold: 0,
    ComparisonOperator: 'GreaterThanThreshold',
  });
  expect(outbox.tamperAlarm).toBeDefined();
  Template.fromStack(stack).hasResourceProperties('AWS::DynamoDB::Table', { StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' } });
});
