import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ErrorBus } from '../../src';

const env = { account: '111111111111', region: 'eu-west-1' };
const stack = () => new Stack(new App(), 'Test', { env });

describe('ErrorBus defaults', () => {
  const s = stack();
  const bus = new ErrorBus(s, 'Errors');
  const t = Template.fromStack(s);

  test('a dedicated bus named skafu-errors-<environment>, policy limited to the account', () => {
    t.hasResourceProperties('AWS::Events::EventBus', { Name: 'skafu-errors-development' });
    t.hasResourceProperties('AWS::Events::EventBusPolicy', {
      Statement: Match.objectLike({
        Effect: 'Allow',
        Action: 'events:PutEvents',
        Principal: { AWS: { 'Fn::Join': ['', Match.arrayWith([':iam::111111111111:root'])] } },
      }),
    });
  });

  test('an archive of every error, 90 days', () => {
    t.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 90, EventPattern: { account: ['111111111111'] } });
  });

  test('a catch-all rule to a /aws/events log group with retention, retries and an SQS dead-letter queue', () => {
    t.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: '/aws/events/skafu-errors-development', RetentionInDays: 90 });
    t.hasResource('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: [{ prefix: '' }] },
      Targets: [
        Match.objectLike({
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeliveryDeadLetterQueue'), 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 20, MaximumEventAgeInSeconds: 86400 },
        }),
      ],
    });
    // A native resource policy lets EventBridge write the log group (no custom resource Lambda).
    t.resourceCountIs('AWS::Logs::ResourcePolicy', 1);
    t.resourceCountIs('AWS::Lambda::Function', 0);
    t.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    t.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'sqs:SendMessage', Principal: { Service: 'events.amazonaws.com' } })]) },
    });
  });

  test('alarms: error rate and undeliverable errors', () => {
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'MatchedEvents',
      Namespace: 'AWS/Events',
      Threshold: 10,
      Period: 300,
      Statistic: 'Sum',
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 0 });
    expect(bus.criticalTopic).toBeUndefined();
    t.resourceCountIs('AWS::SNS::Topic', 0);
  });

  test('grantPutErrors and the runtime environment', () => {
    const s2 = stack();
    const bus2 = new ErrorBus(s2, 'Errors');
    const role = new iam.Role(s2, 'R', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    bus2.grantPutErrors(role);
    Template.fromStack(s2).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [{ Action: 'events:PutEvents', Effect: 'Allow', Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('ErrorsBus'), 'Arn'] } }] },
    });
    expect(s.resolve(bus.environmentVariables())).toEqual({ SKAFU_ERROR_BUS_NAME: { Ref: expect.stringMatching(/ErrorsBus/) } });
    expect(ErrorBus.DETAIL_TYPE).toBe('Application Error');
  });
});

test('CRITICAL errors to a created, encrypted topic; everything configurable', () => {
  const s = stack();
  const bus = new ErrorBus(s, 'Errors', {
    environment: 'production',
    createCriticalTopic: true,
    archiveRetention: Duration.days(365),
    errorRateThreshold: 3,
    errorRatePeriod: Duration.minutes(1),
    targetRetryAttempts: 5,
  });
  const t = Template.fromStack(s);
  t.hasResourceProperties('AWS::Events::EventBus', { Name: 'skafu-errors-production' });
  t.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 365 });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { 'detail-type': ['Application Error'], 'detail': { severity: ['CRITICAL'] } },
    Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('CriticalTopic') }, RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 5 }) })],
  });
  t.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
  t.hasResourceProperties('AWS::KMS::Key', {
    EnableKeyRotation: true,
    KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'events.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] })]) },
  });
  t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'MatchedEvents', Threshold: 3, Period: 60 });
  expect(bus.criticalTopic).toBeDefined();
});

test('a topic of your own', () => {
  const s = stack();
  const topic = new sns.Topic(s, 'Pager');
  const bus = new ErrorBus(s, 'Errors', { criticalTopic: topic, archive: false });
  expect(bus.criticalTopic).toBe(topic);
  Template.fromStack(s).resourceCountIs('AWS::Events::Archive', 0);
  Template.fromStack(s).resourceCountIs('AWS::KMS::Key', 0);
});

test.each<[string, () => void, RegExp]>([
  ['topic given and asked for', () => {
    const s = stack();
    new ErrorBus(s, 'E', { criticalTopic: new sns.Topic(s, 'T'), createCriticalTopic: true });
  }, /'criticalTopic' and 'createCriticalTopic' both given/],
  ['retention without archive', () => new ErrorBus(stack(), 'E', { archive: false, archiveRetention: Duration.days(1) }), /'archiveRetention' is set but 'archive' is false/],
  ['a log group EventBridge cannot write', () => new ErrorBus(stack(), 'E', { logGroupName: '/skafu/errors' }), /must start with \/aws\/events\//],
  ['retry attempts out of range', () => new ErrorBus(stack(), 'E', { targetRetryAttempts: 500 }), /'targetRetryAttempts' must be an integer from 0 to 185/],
])('conflicting props throw at synth: %s', (_n, build, message) => {
  expect(build).toThrow(message);
});
