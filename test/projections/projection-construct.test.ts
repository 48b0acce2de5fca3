import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { DomainEventBus, ErrorBus, EventStoreTable, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../../src';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, nagErrors, nagWarnings } from '../support/nag';

type Props = Partial<ConstructorParameters<typeof ProjectionStateMachine>[2]>;
type Extra = (s: Stack, rm: { alerts: ReadModelTable; metrics: ReadModelTable }) => Props;

function build(extra: Extra = () => ({}), nag = false) {
  const stack = new Stack(new App(), 'Proj', { env: { account: '111111111111', region: 'eu-west-1' } });
  if (nag) applyAwsSolutions(stack);
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const alerts = new ReadModelTable(stack, 'Alerts', { partitionKey: { name: 'alertId' } });
  const metrics = new ReadModelTable(stack, 'Metrics', { partitionKey: { name: 'name' }, sortKey: { name: 'at' }, timeToLiveAttribute: 'ttl', indexes: [{ indexName: 'bySource', partitionKey: { name: 'source' } }] });
  const projections = new ProjectionStateMachine(stack, 'Observability', {
    domain: 'observability',
    eventBus: bus.eventBus,
    errorBus,
    projections: [
      { eventType: 'AlertCreated', readModel: alerts, action: ProjectionAction.putItem({ key: { alertId: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { name: ProjectionValue.fromData('name') } }) },
      { eventType: 'AlertTriggered', readModel: alerts, action: ProjectionAction.updateItem({ key: { alertId: ProjectionValue.fromEnvelope('aggregateId') }, add: { triggers: ProjectionValue.number(1) } }) },
      {
        eventType: 'MetricCollected',
        readModel: metrics,
        action: ProjectionAction.putItem({ key: { name: ProjectionValue.fromData('name'), at: ProjectionValue.fromEnvelope('timestamp') }, attributes: { value: ProjectionValue.fromData('value', ValueType.NUMBER) }, ttl: Duration.days(30) }),
      },
    ],
    ...extra(stack, { alerts, metrics }),
  });
  return { stack, projections, template: () => Template.fromStack(stack) };
}

describe('ProjectionStateMachine', () => {
  const { projections, template: t } = build();
  const template = t();

  test('EXPRESS, X-Ray, logging ALL with execution data to a log group with retention', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'EXPRESS',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true, Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ObservabilityLogs'), 'Arn'] } } }] },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.stringLikeRegexp('^/aws/vendedlogs/states/skafu-projections-observability-'), RetentionInDays: 30 });
  });

  test('the rule matches exactly the declared event types of the domain, with retries and a dead-letter queue', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: Match.stringLikeRegexp('EventsBus') },
      EventPattern: { 'source': ['skafu.observability'], 'detail-type': ['AlertCreated', 'AlertTriggered', 'MetricCollected'] },
      Targets: [
        Match.objectLike({ RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 86400 }, DeadLetterConfig: { Arn: Match.anyValue() } }),
      ],
    });
    expect(projections.eventTypes).toEqual(['AlertCreated', 'AlertTriggered', 'MetricCollected']);
  });

  test('no Lambda for plain writes: direct DynamoDB and EventBridge integrations only; one operator function', () => {
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('list, retry and skip parked events') });
    const definition = JSON.stringify(Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0].Properties.DefinitionString);
    expect(definition).toContain('arn:aws:states:::aws-sdk:dynamodb:transactWriteItems');
    expect(definition).toContain('arn:aws:states:::events:putEvents');
    expect(definition).not.toContain('lambda:invoke');
    expect(definition).toContain('\\"IntervalSeconds\\":2,\\"MaxAttempts\\":3,\\"BackoffRate\\":2');
  });

  test('least privilege: each read model gets only the write it needs', () => {
    const byRole = { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('StateMachineRole') }] } };
    const [policy] = Object.values(template.findResources('AWS::IAM::Policy', byRole));
    const statements = policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>;
    const on = (id: RegExp) => statements.filter((s) => JSON.stringify(s.Resource).match(id)).flatMap((s) => [s.Action].flat()).sort();
    expect(on(/AlertsTable/)).toEqual(['dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(on(/MetricsTable/)).toEqual(['dynamodb:PutItem']);
    expect(on(/Checkpoints/)).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    expect(on(/ParkedEvents/)).toEqual(['dynamodb:PutItem']);
    expect(statements.flatMap((s) => [s.Action].flat())).toContain('events:PutEvents');
  });

  test('metrics', () => {
    expect(projections.metricFailedExecutions().metricName).toBe('ExecutionsFailed');
    expect(projections.metricDuration().metricName).toBe('ExecutionTime');
  });
});

test('ReadModelTable: keys of your choosing, indexes, TTL when asked, on-demand, PITR, kept by default', () => {
  const { template } = build();
  const t = template();
  t.hasResourceProperties('AWS::DynamoDB::Table', {
    KeySchema: [{ AttributeName: 'name', KeyType: 'HASH' }, { AttributeName: 'at', KeyType: 'RANGE' }],
    TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    GlobalSecondaryIndexes: [Match.objectLike({ IndexName: 'bySource' })],
    BillingMode: 'PAY_PER_REQUEST',
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
  });
  t.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ KeySchema: [{ AttributeName: 'alertId', KeyType: 'HASH' }] }) });
  const s = new Stack(new App(), 'X');
  new ReadModelTable(s, 'Gone', { partitionKey: { name: 'id', type: dynamodb.AttributeType.NUMBER }, removalPolicy: RemovalPolicy.DESTROY });
  Template.fromStack(s).hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', Properties: Match.objectLike({ AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'N' }] }) });
  expect(() => new ReadModelTable(s, 'Bad', { partitionKey: { name: 'id' }, sortKey: { name: 'id' } })).toThrow(/same name/);
  expect(() => new ReadModelTable(s, 'Bad2', { partitionKey: { name: 'id' }, timeToLiveAttribute: 'id' })).toThrow(/is a key attribute/);
});

describe('declarations that cannot work throw at synth, naming the problem', () => {
  test.each<[string, Parameters<typeof build>[0], RegExp]>([
    ['key not the read model key', (_s, { alerts }) => ({ projections: [{ eventType: 'X', readModel: alerts, action: ProjectionAction.deleteItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } }) }] }), /key must be exactly the read model's keys \(alertId\), got \(id\)/],
    ['key type mismatch', (_s, { alerts }) => ({ projections: [{ eventType: 'X', readModel: alerts, action: ProjectionAction.deleteItem({ key: { alertId: ProjectionValue.fromEnvelope('eventSequence') } }) }] }), /key 'alertId' is S but the value is NUMBER/],
    ['ttl without TTL attribute', (_s, { alerts }) => ({ projections: [{ eventType: 'X', readModel: alerts, action: ProjectionAction.putItem({ key: { alertId: ProjectionValue.fromEnvelope('aggregateId') }, ttl: Duration.days(1) }) }] }), /a ttl is set but read model .* has no timeToLiveAttribute/],
    ['bad domain', () => ({ domain: 'Observability!' }), /'domain' 'Observability!' must be lower-case/],
    ['no projections', () => ({ projections: [] }), /'projections' is empty/],
    ['gap retry too long', () => ({ gapRetry: { maxAttempts: 9, initialInterval: Duration.seconds(1) } }), /waits 511 s in all; it must stay within 240 s/],
    ['gap and conflict waits too long together', () => ({ gapRetry: { maxAttempts: 6, initialInterval: Duration.seconds(3) }, conflictRetries: 12 }), /may wait 279 s in all; keep it within 270 s/],
    ['conflict retries out of range', () => ({ conflictRetries: 13 }), /'conflictRetries' must be 0-12/],
    ['bad event type', () => ({ eventTypes: ['has space'] }), /event type 'has space' is not a valid EventBridge detail-type/],
  ])('%s', (_n, extra, message) => {
    expect(() => build(extra)).toThrow(message);
  });

  test('value and action builders refuse nonsense', () => {
    expect(() => ProjectionValue.fromEnvelope('nope')).toThrow(/'nope' is not an envelope field/);
    expect(() => ProjectionValue.fromData('a..b')).toThrow(/not a dotted path/);
    expect(() => ProjectionAction.updateItem({ key: {} })).toThrow(/at least one of/);
    expect(() => ProjectionAction.updateItem({ key: {}, add: { n: ProjectionValue.string('x') } })).toThrow(/add 'n' must be a NUMBER/);
    expect(() => ProjectionAction.updateItem({ key: {}, set: { a: ProjectionValue.string('x') }, remove: ['a'] })).toThrow(/'a' is changed twice/);
  });
});

test('cdk-nag AwsSolutions: zero unacknowledged errors and warnings (SF1, SF2 satisfied)', () => {
  const { stack } = build(undefined, true);
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack)).toEqual([]);
});

test('cfn-lint finds nothing', () => {
  expect(cfnLint({ Projections: build().template().toJSON() })).toEqual([]);
});

test('with the event store: a scheduled drift run feeds the lag metrics, an alarm watches them; without aggregate types it throws', () => {
  const stack = new Stack(new App(), 'Lag');
  const store = new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Bus');
  const errorBus = new ErrorBus(stack, 'Errors');
  const model = new ReadModelTable(stack, 'Model', { partitionKey: { name: 'id' } });
  const projections = [{ eventType: 'Made', readModel: model, action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } }) }];
  const machine = new ProjectionStateMachine(stack, 'P', {
    domain: 'lag', eventBus: bus.eventBus, errorBus, projections, eventStore: store, aggregateTypes: ['Thing'], lagAlarmThreshold: Duration.minutes(5),
  });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)', Targets: [Match.objectLike({ Input: '{"action":"drift","limit":20}' })] });
  t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ProjectionLagSeconds', Namespace: 'Skafu', Threshold: 300, Statistic: 'Maximum', Dimensions: Match.arrayWith([{ Name: 'Domain', Value: 'lag' }]) });
  t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ SKAFU_AGGREGATE_TYPES: 'Thing' }) } });
  expect(machine.lagAlarm).toBeDefined();
  expect(() => new ProjectionStateMachine(stack, 'Q', { domain: 'lag', eventBus: bus.eventBus, errorBus, projections, eventStore: store })).toThrow(/'eventStore' is given without 'aggregateTypes'/);
});
