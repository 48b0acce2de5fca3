import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { EventStoreEncryption, EventStoreTable } from '../../src';

function stack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
}

function statementsOf(template: Template): Array<Record<string, any>> {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('EventStoreTable defaults', () => {
  const s = stack();
  const store = new EventStoreTable(s, 'Events');
  const template = Template.fromStack(s);

  test('keys, billing, stream, PITR, deletion protection, TTL for idempotency records only', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'streamId', KeyType: 'HASH' },
        { AttributeName: 'eventSequence', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: 'streamId', AttributeType: 'S' },
        { AttributeName: 'eventSequence', AttributeType: 'N' },
      ]),
      BillingMode: 'PAY_PER_REQUEST',
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      DeletionProtectionEnabled: true,
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  test('AWS-owned encryption by default (SSE disabled means the DynamoDB-owned key; no KMS key)', () => {
    const [table] = Object.values(template.findResources('AWS::DynamoDB::Table'));
    expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: false });
    template.resourceCountIs('AWS::KMS::Key', 0);
    expect(store.encryptionKey).toBeUndefined();
  });

  test('retained on stack deletion and replacement', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  test('sparse KEYS_ONLY aggregate index', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: [
        {
          IndexName: 'aggregates',
          KeySchema: [
            { AttributeName: 'aggregateListType', KeyType: 'HASH' },
            { AttributeName: 'aggregateListCreatedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    });
    expect(store.hasAggregateIndex).toBe(true);
    expect(EventStoreTable.AGGREGATE_INDEX_NAME).toBe('aggregates');
  });

  test('exposes name, ARN and stream ARN', () => {
    const tableRef = { Ref: expect.stringMatching(/^EventsTable/) };
    expect(s.resolve(store.tableName)).toEqual(tableRef);
    expect(s.resolve(store.tableArn)).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EventsTable/), 'Arn'] });
    expect(s.resolve(store.tableStreamArn)).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EventsTable/), 'StreamArn'] });
    expect(s.resolve(store.environmentVariables())).toEqual({ SKAFU_EVENT_STORE_TABLE: tableRef });
  });
});

describe('EventStoreTable options', () => {
  test('a customer managed key: given, or created with rotation', () => {
    const s = stack();
    const key = new kms.Key(s, 'Key');
    new EventStoreTable(s, 'Given', { encryptionKey: key });
    new EventStoreTable(s, 'Created', { encryption: EventStoreEncryption.CUSTOMER_MANAGED });
    const t = Template.fromStack(s);
    t.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] } },
    });
    t.resourceCountIs('AWS::KMS::Key', 2);
    t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('AWS managed key (aws/dynamodb): SSE enabled without a key id', () => {
    const s = stack();
    new EventStoreTable(s, 'Events', { encryption: EventStoreEncryption.AWS_MANAGED });
    Template.fromStack(s).hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, KMSMasterKeyId: Match.absent() } });
    Template.fromStack(s).resourceCountIs('AWS::KMS::Key', 0);
  });

  test('everything overridable: name, PITR, deletion protection, removal policy, index', () => {
    const s = stack();
    const store = new EventStoreTable(s, 'Events', {
      tableName: 'skafu-events-development',
      pointInTimeRecovery: false,
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
      aggregateIndex: false,
    });
    const t = Template.fromStack(s);
    t.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({
        TableName: 'skafu-events-development',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: false },
        DeletionProtectionEnabled: false,
        GlobalSecondaryIndexes: Match.absent(),
      }),
    });
    expect(s.resolve(store.tableName)).toEqual({ Ref: expect.stringMatching(/^EventsTable/) });
    expect(() => store.grantListAggregates(new iam.User(s, 'U'))).toThrow(/grantListAggregates needs the aggregate index \(aggregateIndex is false\)/);
  });
});

describe('EventStoreTable props that conflict throw at synth, naming them', () => {
  test.each<[string, () => void, RegExp]>([
    [
      'encryptionKey with a non-customer encryption',
      () => {
        const s = stack();
        new EventStoreTable(s, 'E', { encryption: EventStoreEncryption.AWS_OWNED, encryptionKey: new kms.Key(s, 'K') });
      },
      /'encryptionKey' is set but 'encryption' is AWS_OWNED/,
    ],
    ['DESTROY with deletion protection on', () => new EventStoreTable(stack(), 'E', { removalPolicy: RemovalPolicy.DESTROY, deletionProtection: true }), /'deletionProtection' is true but 'removalPolicy' is DESTROY/],
    ['DESTROY with deletion protection left at its default', () => new EventStoreTable(stack(), 'E', { removalPolicy: RemovalPolicy.DESTROY }), /'removalPolicy' is DESTROY while 'deletionProtection' defaults to true/],
    ['an invalid table name', () => new EventStoreTable(stack(), 'E', { tableName: 'no spaces allowed' }), /'tableName' 'no spaces allowed' must be 3-255 characters/],
  ])('%s', (_name, build, message) => {
    expect(build).toThrow(message);
  });

  test('every conflict at once, with the construct path', () => {
    const s = stack();
    expect(
      () =>
        new EventStoreTable(s, 'E', {
          encryption: EventStoreEncryption.AWS_MANAGED,
          encryptionKey: new kms.Key(s, 'K'),
          removalPolicy: RemovalPolicy.DESTROY,
        }),
    ).toThrow(/^EventStoreTable Test\/E: 'encryptionKey'.*; 'removalPolicy' is DESTROY/);
  });
});

describe('intent grants name only the actions needed, and no index wildcard', () => {
  function grantsFor(grant: (store: EventStoreTable, role: iam.Role) => void, props = {}) {
    const s = stack();
    const store = new EventStoreTable(s, 'Events', props);
    const role = new iam.Role(s, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    grant(store, role);
    return { s, statements: statementsOf(Template.fromStack(s)) };
  }
  const tableArn = { 'Fn::GetAtt': [Match.stringLikeRegexp('EventsTable'), 'Arn'] };

  test('grantAppendEvents', () => {
    const { statements } = grantsFor((store, role) => store.grantAppendEvents(role, 'billing'));
    expect(statements).toEqual([
      {
        Action: ['dynamodb:PutItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:Query'],
        Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['billing#*'] } },
        Effect: 'Allow',
        Resource: expect.objectContaining({ 'Fn::GetAtt': expect.any(Array) }),
      },
    ]);
    expect(JSON.stringify(statements)).not.toContain('/index/');
    Template.fromStack(grantsFor((store, role) => store.grantAppendEvents(role, 'billing')).s).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [Match.objectLike({ Resource: tableArn })] },
    });
  });

  test('grantReadEvents', () => {
    const { statements } = grantsFor((store, role) => store.grantReadEvents(role));
    expect(statements.map((st) => st.Action)).toEqual([['dynamodb:GetItem', 'dynamodb:Query']]);
    expect(JSON.stringify(statements)).not.toMatch(/PutItem|index/);
  });

  test('grantListAggregates: Query on that one index', () => {
    const { statements } = grantsFor((store, role) => store.grantListAggregates(role));
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toBe('dynamodb:Query');
    expect(statements[0].Resource).toEqual({ 'Fn::Join': ['', [expect.objectContaining({ 'Fn::GetAtt': expect.any(Array) }), '/index/aggregates']] });
  });

  test('grantStreamRead: the stream actions on the stream ARN', () => {
    const { statements } = grantsFor((store, role) => store.grantStreamRead(role));
    const onStream = statements.find((st) => JSON.stringify(st.Action).includes('GetRecords'));
    expect(onStream?.Action).toEqual(['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator']);
    expect(onStream?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/EventsTable/), 'StreamArn'] });
  });

  test('with a customer managed key, grants include the key', () => {
    const { statements } = grantsFor((store, role) => {
      store.grantAppendEvents(role, 'billing');
      store.grantReadEvents(role);
    }, { encryption: EventStoreEncryption.CUSTOMER_MANAGED });
    const kmsActions = statements.filter((st) => JSON.stringify(st.Action).includes('kms:')).flatMap((st) => st.Action);
    expect(kmsActions).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']));
  });
});

describe('metrics', () => {
  test('metricConflicts sums conditional check failures and transaction conflicts', () => {
    const s = stack();
    const store = new EventStoreTable(s, 'Events');
    const conflicts = store.metricConflicts() as cloudwatch.MathExpression;
    expect(conflicts.expression).toBe('FILL(conflicts0, 0) + FILL(conflicts1, 0)');
    const used = Object.values(conflicts.usingMetrics) as cloudwatch.Metric[];
    expect(used.map((m) => m.metricName)).toEqual(['ConditionalCheckFailedRequests', 'TransactionConflict']);
    expect(used.every((m) => m.namespace === 'AWS/DynamoDB' && m.statistic === 'Sum')).toBe(true);
    expect(s.resolve(used[0].dimensions)).toEqual({ TableName: { Ref: expect.stringMatching(/EventsTable/) } });
    expect(conflicts.period.toSeconds()).toBe(300);

    new cloudwatch.Alarm(s, 'ConflictAlarm', { metric: conflicts, threshold: 10, evaluationPeriods: 1 });
    Template.fromStack(s).hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(conflicts0, 0) + FILL(conflicts1, 0)' })]),
    });
  });

  test('metricThrottles and metric(name)', () => {
    const s = stack();
    const store = new EventStoreTable(s, 'Events');
    const throttles = store.metricThrottles({ period: Duration.minutes(1) }) as cloudwatch.MathExpression;
    expect((Object.values(throttles.usingMetrics) as cloudwatch.Metric[]).map((m) => m.metricName)).toEqual(['ReadThrottleEvents', 'WriteThrottleEvents']);
    expect(throttles.period.toSeconds()).toBe(60);
    const latency = store.metric('SuccessfulRequestLatency', { statistic: 'p99' });
    expect(latency.namespace).toBe('AWS/DynamoDB');
    expect(latency.statistic).toBe('p99');
  });
});

describe('fromTableAttributes', () => {
  test('imports by name with a stream: grants work on the given ARNs', () => {
    const s = stack();
    const store = EventStoreTable.fromTableAttributes(s, 'Imported', {
      tableName: 'skafu-events-production',
      tableStreamArn: 'arn:aws:dynamodb:eu-west-1:111111111111:table/skafu-events-production/stream/2026-01-01T00:00:00.000',
    });
    const role = new iam.Role(s, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    store.grantAppendEvents(role, 'billing');
    store.grantListAggregates(role);
    store.grantStreamRead(role);
    const json = JSON.stringify(statementsOf(Template.fromStack(s)));
    expect(json).toContain('table/skafu-events-production');
    expect(json).toContain('table/skafu-events-production/index/aggregates');
    expect(json).toContain('stream/2026-01-01T00:00:00.000');
    expect(s.resolve(store.tableName)).toBe('skafu-events-production');
    expect(store.metric('ConsumedWriteCapacityUnits').dimensions).toEqual({ TableName: 'skafu-events-production' });
  });

  test('imports by ARN; refuses what it cannot do', () => {
    const s = stack();
    const store = EventStoreTable.fromTableAttributes(s, 'ByArn', {
      tableArn: 'arn:aws:dynamodb:eu-west-1:111111111111:table/legacy-events',
      aggregateIndex: false,
    });
    expect(s.resolve(store.tableName)).toBe('legacy-events');
    const role = new iam.Role(s, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    expect(() => store.grantStreamRead(role)).toThrow(/needs the table's stream ARN/);
    expect(() => store.grantListAggregates(role)).toThrow(/needs the aggregate index/);
    expect(() => EventStoreTable.fromTableAttributes(s, 'Nothing', {})).toThrow(/give tableName or tableArn/);
  });
});
