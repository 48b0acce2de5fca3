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

describe('the backfill (with the event store)', () => {
  function withStore(nag = false) {
    const stack = new Stack(new App(), 'Backfill', { env: { account: '111111111111', region: 'eu-west-1' } });
    if (nag) applyAwsSolutions(stack);
    const store = new EventStoreTable(stack, 'Store');
    const bus = new DomainEventBus(stack, 'Bus');
    const errorBus = new ErrorBus(stack, 'Errors');
    const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'id' } });
    const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'customer' }, readModelName: 'customer-totals' });
    const machine = new ProjectionStateMachine(stack, 'P', {
      domain: 'shop',
      eventBus: bus.eventBus,
      errorBus,
      eventStore: store,
      aggregateTypes: ['Order'],
      projections: [
        { eventType: 'Placed', readModel: orders, action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } }) },
        { eventType: 'Placed', readModel: totals, action: ProjectionAction.updateItem({ key: { customer: ProjectionValue.fromData('customer') }, add: { n: ProjectionValue.number(1) } }) },
      ],
    });
    return { stack, machine };
  }

  test('a STANDARD state machine loops the bounded Lambda step until caught up, and one custom resource per read model starts it after the projections are updated', () => {
    const { stack, machine } = withStore();
    const t = Template.fromStack(stack);
    expect(machine.readModelNames).toEqual(['Orders', 'customer-totals']);
    t.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineType: 'STANDARD', TracingConfiguration: { Enabled: true } });
    const backfillId = stack.getLogicalId(machine.backfillStateMachine!.node.defaultChild as never);
    const definition = JSON.stringify(t.toJSON().Resources[backfillId].Properties.DefinitionString);
    expect(definition).toContain('arn:aws:states:::lambda:invoke');
    expect(definition).toContain('\\"Variable\\":\\"$.step.progress.status\\",\\"StringEquals\\":\\"RUNNING\\",\\"Next\\":\\"Step\\"');
    const triggers = t.findResources('Custom::SkafuReadModelBackfill');
    expect(Object.values(triggers).map((r) => r.Properties.ReadModel).sort()).toEqual(['Orders', 'customer-totals']);
    const projectionId = stack.getLogicalId(machine.stateMachine.node.defaultChild as never);
    for (const r of Object.values(triggers)) {
      expect(r.DependsOn).toEqual(expect.arrayContaining([projectionId]));
      expect(r.Properties.RebuildId).toEqual({ 'Fn::Join': ['', ['deploy-', { Ref: expect.stringMatching(/Table/) }]] });
    }
    // The function knows its read models' tables by name; starting executions is in a policy of its own.
    t.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('backfill read models'),
      Timeout: 900,
      Environment: { Variables: Match.objectLike({ SKAFU_READ_MODEL_TABLES: Match.anyValue(), SKAFU_REBUILD_STATE_TABLE: Match.anyValue() }) },
    });
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('BackfillStartPolicy'),
      PolicyDocument: { Statement: [{ Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: backfillId } }] },
    });
  });

  test('the backfill function writes only what the live projection writes, and reads only its domain\'s streams', () => {
    const { stack } = withStore();
    const t = Template.fromStack(stack);
    const [policy] = Object.values(t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('PBackfillRole') }], PolicyName: Match.stringLikeRegexp('DefaultPolicy') } }));
    const statements = policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown; Condition?: unknown }>;
    const on = (id: RegExp) => statements.filter((s) => JSON.stringify(s.Resource).match(id)).flatMap((s) => [s.Action].flat()).sort();
    expect(on(/OrdersTable/)).toEqual(['dynamodb:PutItem', 'dynamodb:Scan']);
    expect(on(/TotalsTable/)).toEqual(['dynamodb:Scan', 'dynamodb:UpdateItem']);
    expect(JSON.stringify(statements.filter((s) => JSON.stringify(s.Resource).match(/Store/)))).toContain('dynamodb:LeadingKeys');
  });

  test('cdk-nag and cfn-lint find nothing unacknowledged', () => {
    const { stack } = withStore(true);
    expect(nagErrors(stack)).toEqual([]);
    expect(nagWarnings(stack)).toEqual([]);
    expect(cfnLint({ Backfill: Template.fromStack(withStore().stack).toJSON() })).toEqual([]);
  });

  test('two read models with one name are refused', () => {
    const stack = new Stack(new App(), 'Dup');
    const bus = new DomainEventBus(stack, 'Bus');
    const a = new ReadModelTable(stack, 'A', { partitionKey: { name: 'id' }, readModelName: 'same' });
    const b = new ReadModelTable(stack, 'B', { partitionKey: { name: 'id' }, readModelName: 'same' });
    const action = ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } });
    expect(() => new ProjectionStateMachine(stack, 'P', { domain: 'd', eventBus: bus.eventBus, errorBus: new ErrorBus(stack, 'E'), projections: [{ eventType: 'X', readModel: a, action }, { eventType: 'X', readModel: b, action }] })).toThrow(
      /have the same readModelName 'same'/,
    );
    expect(() => new ReadModelTable(stack, 'C', { partitionKey: { name: 'id' }, readModelName: 'has#hash' })).toThrow(/'readModelName' 'has#hash' must be/);
  });
});
