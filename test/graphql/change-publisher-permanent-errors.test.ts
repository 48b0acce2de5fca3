/**
 * Issue 16's change publisher (found by a hostile review; not fixed yet). One record AppSync can never accept (a GraphQL validation error:
 * an item whose attribute no longer fits the generated type, e.g. an item written before a read model's attribute
 * changed type) is retried from itself on every attempt, so every later change in the batch (other items, up to
 * batchSize - 1 = 99) is retried with it and, after publishRetryAttempts, dead-lettered with it: live updates of
 * healthy items are lost because of one item. A permanent (non-retryable) refusal should park that record alone
 * (its keys and sequence number on the failed-changes queue) and go on; a transient one (HTTP 5xx, throttling,
 * network) keeps the retry-from-here behaviour.
 */
import type { DynamoDBRecord } from 'aws-lambda';
import { createChangePublisher } from '../../src/graphql/change-publisher.lambda';

const record = (seq: string, id: string, threshold: unknown): DynamoDBRecord => ({
  eventName: 'MODIFY',
  eventSourceARN: 'arn:aws:dynamodb:eu-west-1:111111111111:table/alerts/stream/2026-01-01T00:00:00.000',
  dynamodb: {
    SequenceNumber: seq,
    Keys: { alertId: { S: id } },
    NewImage: { alertId: { S: id }, threshold: typeof threshold === 'number' ? { N: String(threshold) } : { S: String(threshold) } },
  },
});

// known, not fixed yet: finding 3 (publisher tail on permanent errors: one record AppSync refuses for good takes the
// rest of its stream batch to the failed-changes queue after the retries).
test.skip('a record AppSync refuses for good (ValidationError) does not take the healthy changes after it down with it', async () => {
  const published: string[] = [];
  const publish = createChangePublisher({
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
  // Today: [] (a1 and a2 were never published and go to the failed-changes queue with the legacy record).
  expect(published).toEqual(['a1', 'a2']);
});
