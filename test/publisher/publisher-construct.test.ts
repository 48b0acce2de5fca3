import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DomainEventBus, ErrorBus, EventStorePublisher, EventStoreTable } from '../../src';

function build(props: Partial<ConstructorParameters<typeof EventStorePublisher>[2]> = {}) {
  const stack = new Stack(new App(), 'Outbox', { env: { account: '111111111111', region: 'eu-west-1' } });
  const eventStore = new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errors = new ErrorBus(stack, 'Errors');
  const outbox = new EventStorePublisher(stack, 'Outbox', { eventStore, eventBus: bus.eventBus, errorBus: errors, ...props });
  return { stack, outbox, template: Template.fromStack(stack) };
}

describe('EventStorePublisher', () => {
  const { stack, outbox, template } = build();

  test('three bundled Node 22 handlers, traced, with their own log groups', () => {
    const fns = template.findResources('AWS::Lambda::Function');
    expect(Object.keys(fns)).toHaveLength(3);
    for (const fn of Object.values(fns)) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/Logs/) } },
        Environment: { Variables: expect.objectContaining({ POWERTOOLS_SERVICE_NAME: expect.stringMatching(/^skafu-outbox-/) }) },
      });
    }
    template.allResourcesProperties('AWS::Logs::LogGroup', Match.anyValue());
    template.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 30 }, 3);
  });

  test('the stream mapping: TRIM_HORIZON, batch item failures, bounded retries, on-failure queue, events only', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('StoreTable'), 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      MaximumRetryAttempts: 10,
      BisectBatchOnFunctionError: false,
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('FailedBatchQueue'), 'Arn'] } } },
      FilterCriteria: {
        Filters: [
          { Pattern: JSON.stringify({ eventName: ['INSERT'], dynamodb: { NewImage: { itemType: { S: ['event'] } } } }) },
          // Changes to events are delivered too, to be reported as tampering.
          { Pattern: JSON.stringify({ eventName: ['MODIFY', 'REMOVE'], dynamodb: { OldImage: { itemType: { S: ['event'] } } } }) },
        ],
      },
    });
  });

  test('the failed-batch queue feeds the dead-letter handler and redrives to the dead-letter queue', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('FailedBatchQueue'), 'Arn'] },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('OutboxDeadLetterQueue'), 'Arn'] }, maxReceiveCount: 5 },
    });
  });

  test('least privilege: publisher may put on the domain bus and the error bus only', () => {
    const policies = Object.entries(template.findResources('AWS::IAM::Policy'));
    const [, publisherPolicy] = policies.find(([id]) => /OutboxPublisherRole/.test(id))!;
    const statements = publisherPolicy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>;
    const actions = statements.flatMap((s) => [s.Action].flat());
    expect(actions).toEqual(
      expect.arrayContaining(['events:PutEvents', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream', 'sqs:SendMessage', 'logs:PutLogEvents']),
    );
    // It writes only its held-aggregates table, never the event store.
    const writes = statements.filter((st) => [st.Action].flat().some((a) => /dynamodb:(PutItem|UpdateItem|DeleteItem)/.test(a)));
    expect(writes.map((st) => st.Resource)).toEqual([[{ 'Fn::GetAtt': [expect.stringMatching(/OutboxHeldAggregates/), 'Arn'] }, { Ref: 'AWS::NoValue' }]]);
    expect(JSON.stringify(statements)).not.toMatch(/"events:\*"|"dynamodb:\*"/);
    const [, republishPolicy] = policies.find(([id]) => /OutboxRepublishRole/.test(id))!;
    const republishStatements = republishPolicy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>;
    const republishActions = republishStatements.flatMap((s) => [s.Action].flat());
    expect(republishActions).toEqual(expect.arrayContaining(['dynamodb:Query', 'dynamodb:GetItem', 'events:PutEvents']));
    expect(republishActions).not.toContain('dynamodb:PutItem');
  });

  test('environment wiring', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('outbox publisher'),
      Environment: { Variables: Match.objectLike({ SKAFU_EVENT_BUS_NAME: { Ref: Match.stringLikeRegexp('EventsBus') }, SKAFU_ERROR_BUS_NAME: { Ref: Match.stringLikeRegexp('ErrorsBus') } }) },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('republisher'),
      Environment: { Variables: Match.objectLike({ SKAFU_EVENT_STORE_TABLE: { Ref: Match.stringLikeRegexp('StoreTable') } }) },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('dead-letter'),
      Environment: { Variables: Match.objectLike({ SKAFU_DEAD_LETTER_QUEUE_URL: { Ref: Match.stringLikeRegexp('OutboxDeadLetterQueue') } }) },
    });
  });

  test('alarms on iterator age and dead-letter depth', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'IteratorAge', Namespace: 'AWS/Lambda', Threshold: 60000, Statistic: 'Maximum' });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('OutboxDeadLetterQueue'), 'QueueName'] } }],
      Threshold: 0,
    });
    expect(stack.resolve(outbox.metricIteratorAge().dimensions)).toEqual({ FunctionName: { Ref: expect.stringMatching(/OutboxPublisher/) } });
    expect(outbox.metricUndeliveredEvents().metricName).toBe('EventsUndelivered');
  });

  test('the assets are the bundled handlers', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function'));
    expect(fns.every((fn) => typeof fn.Properties.Code.S3Key === 'string')).toBe(true);
  });
});

test('options reach the mapping', () => {
  const { template } = build({
    batchSize: 25,
    retryAttempts: 3,
    maxRecordAge: Duration.hours(6),
    startingPosition: lambda.StartingPosition.LATEST,
    maxBatchingWindow: Duration.seconds(2),
  });
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    BatchSize: 25,
    MaximumRetryAttempts: 3,
    MaximumRecordAgeInSeconds: 21600,
    StartingPosition: 'LATEST',
    MaximumBatchingWindowInSeconds: 2,
  });
});

test.each<[string, object, RegExp]>([
  ['batch size', { batchSize: 0 }, /'batchSize' must be an integer from 1 to 10000/],
  ['retries', { retryAttempts: -1 }, /'retryAttempts' must be an integer from 0 to 10000/],
  ['starting position', { startingPosition: lambda.StartingPosition.AT_TIMESTAMP }, /AT_TIMESTAMP is not supported/],
  ['record age', { maxRecordAge: Duration.seconds(10) }, /'maxRecordAge' must be between 1 minute and 7 days/],
])('bad props throw at synth: %s', (_n, props, message) => {
  expect(() => build(props)).toThrow(message);
});

test('an imported store without a stream is refused', () => {
  const stack = new Stack(new App(), 'S');
  const store = EventStoreTable.fromTableAttributes(stack, 'Store', { tableName: 'x' });
  expect(() => new EventStorePublisher(stack, 'O', { eventStore: store, eventBus: new DomainEventBus(stack, 'B').eventBus, errorBus: new ErrorBus(stack, 'E') })).toThrow(
    /'eventStore' has no stream ARN/,
  );
});
