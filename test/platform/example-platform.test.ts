/**
 * The full example platform (SkafuPlatform + observability + project management, declared without code):
 * template assertions, cdk-nag AwsSolutions over every stack (nested ones included), cfn-lint over every template.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Aspects, NestedStack, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks, NagSuppressions } from 'cdk-nag';
import { buildExampleApp } from '../../examples/platform/app';
import { observability, projectManagement } from '../../examples/platform/domains';
import { ProjectionAction, ProjectionValue, SkafuEnvironment, SkafuPlatform } from '../../src';
import { cfnLint } from '../support/cfn-lint';
import { synthExample } from '../support/example';
import { shippedRoutes } from '../support/shipped';

const { templates } = synthExample();
const parentName = Object.keys(templates).find((f) => !f.includes('.nested.'))!;
const parent = templates[parentName];
const nested = Object.entries(templates).filter(([f]) => f.includes('.nested.'));
const resourcesOf = (t: any, type: string) => Object.values(t.Resources as Record<string, any>).filter((r) => r.Type === type);

test('the platform: one event store, two buses, a user pool with groups, one API with a stage, the outbox', () => {
  // The event store and the outbox's (usually empty) held-aggregates table, and every domain's projection-owned
  // tables (kept in the parent: they do not move when the domains are nested or not).
  const tables = Object.entries(parent.Resources as Record<string, any>).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  expect(tables.filter(([id]) => !id.includes('ProjectionTables')).map(([, t]) => t.Properties.KeySchema[0].AttributeName)).toEqual(['streamId', 'streamId']);
  // Streams: the event store's (the outbox), and each read model's the GraphQL API serves (its live updates).
  expect(tables.filter(([, t]) => t.Properties.StreamSpecification).map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
    'PlatformEventStoreTable',
    'PlatformProjectionTablesobservabilityReadModelAlertsTable',
    'PlatformProjectionTablesobservabilityReadModelMetricsTable',
    'PlatformProjectionTablesprojectsReadModelProjectsTable',
  ]);
  expect(tables.map(([id]) => id).filter((id) => /ProjectionTables(observability|projects)Projections(Checkpoints|ParkedEvents)/.test(id))).toHaveLength(4);
  expect(resourcesOf(parent, 'AWS::Events::EventBus').map((b) => b.Properties.Name).sort()).toEqual(['skafu-errors-development', 'skafu-events-development']);
  expect(resourcesOf(parent, 'AWS::Cognito::UserPoolGroup').map((g) => g.Properties.GroupName).sort()).toEqual(['Admin', 'Developer', 'Viewer']);
  expect(resourcesOf(parent, 'AWS::ApiGateway::Stage').map((s) => s.Properties.StageName)).toEqual(['development']);
  expect(resourcesOf(parent, 'AWS::Lambda::EventSourceMapping').some((m) => m.Properties.StartingPosition === 'TRIM_HORIZON')).toBe(true);
  // Tags on everything taggable, nested stacks included.
  for (const t of Object.values(templates)) {
    for (const table of resourcesOf(t, 'AWS::DynamoDB::Table')) {
      expect(table.Properties.Tags).toEqual(expect.arrayContaining([{ Key: 'Project', Value: 'Skafu' }, { Key: 'Environment', Value: 'development' }]));
    }
  }
});

test('each domain lives in its own nested stack with its handlers, read models, projections, routes and dashboard', () => {
  expect(nested).toHaveLength(2);
  for (const [, t] of nested) {
    expect(resourcesOf(t, 'AWS::Lambda::Function').length).toBe(4); // commands, queries, parked-events operator, backfill
    expect(resourcesOf(t, 'AWS::DynamoDB::Table')).toEqual([]); // in the parent (see above)
    expect(resourcesOf(t, 'AWS::StepFunctions::StateMachine').length).toBe(2); // projections, backfill
    expect(resourcesOf(t, 'Custom::SkafuReadModelBackfill').length).toBeGreaterThanOrEqual(1); // one per read model
    expect(resourcesOf(t, 'AWS::CloudWatch::Dashboard').length).toBe(1);
    expect(resourcesOf(t, 'AWS::ApiGateway::Method').filter((m) => m.Properties.HttpMethod !== 'OPTIONS').every((m) => m.Properties.AuthorizationType === 'CUSTOM')).toBe(true);
  }
  const obs = nested.find(([, t]) => resourcesOf(t, 'AWS::CloudWatch::Dashboard')[0].Properties.DashboardName.includes('observability'))![1];
  expect(resourcesOf(obs, 'AWS::ApiGateway::Method').filter((m) => m.Properties.HttpMethod !== 'OPTIONS')).toHaveLength(7);
  expect(resourcesOf(obs, 'AWS::Events::Rule').find((r) => r.Properties.EventPattern?.source?.[0] === 'skafu.observability').Properties.EventPattern).toEqual({
    'source': ['skafu.observability'],
    'detail-type': ['MetricCollected', 'AlertCreated', 'AlertTriggered', 'ProjectAlertsDisabled'],
  });
  expect(resourcesOf(parent, 'AWS::DynamoDB::Table').find((t) => t.Properties.TimeToLiveSpecification)?.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  // The parent stays small: the API's deployment depends on the domains' stacks.
  const [deployment] = Object.entries(parent.Resources as Record<string, any>).filter(([, r]) => r.Type === 'AWS::ApiGateway::Deployment');
  expect(deployment[1].DependsOn).toEqual(expect.arrayContaining(nested.map(([f]) => expect.stringContaining(f.split('.')[0].replace(/^Skafudevelopment/, '').slice(0, 20)))));
});

test('observability reacts to ProjectArchived: a rule in its own stack, on the platform bus, with retries and a dead-letter queue', () => {
  const obs = nested.find(([, t]) => resourcesOf(t, 'AWS::CloudWatch::Dashboard')[0].Properties.DashboardName.includes('observability'))![1];
  const pm = nested.find(([, t]) => resourcesOf(t, 'AWS::CloudWatch::Dashboard')[0].Properties.DashboardName.includes('projects'))![1];
  const reaction = resourcesOf(obs, 'AWS::Events::Rule').find((r) => r.Properties.EventPattern?.source?.[0] === 'skafu.projects');
  expect(reaction.Properties.EventPattern).toEqual({ 'source': ['skafu.projects'], 'detail-type': ['ProjectArchived'] });
  expect(resourcesOf(pm, 'AWS::Events::Rule').some((r) => r.Properties.EventPattern?.source?.[0] === 'skafu.projects' && r.Properties.EventPattern['detail-type'].length === 1)).toBe(false);
  const [target] = reaction.Properties.Targets;
  const [commands] = Object.entries(obs.Resources as Record<string, any>).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('DomainCommands'))!;
  expect(target.Arn).toEqual({ 'Fn::GetAtt': [commands, 'Arn'] });
  expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 });
  const [dlq] = Object.entries(obs.Resources as Record<string, any>).find(([id, r]) => r.Type === 'AWS::SQS::Queue' && id.startsWith('DomainReactionDeadLetters'))!;
  expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [dlq, 'Arn'] } });
  const [invokeConfig] = resourcesOf(obs, 'AWS::Lambda::EventInvokeConfig');
  expect(invokeConfig.Properties).toMatchObject({ MaximumRetryAttempts: 2, DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [dlq, 'Arn'] } } } });
  expect(resourcesOf(obs, 'AWS::Lambda::Permission').some((p) => p.Properties.Principal === 'events.amazonaws.com' && p.Properties.FunctionName['Fn::GetAtt'][0] === commands)).toBe(true);
});

test('the authorizer knows every route with its groups', () => {
  const [authorizer] = resourcesOf(parent, 'AWS::Lambda::Function').filter((f) => f.Properties.Environment?.Variables?.SKAFU_USER_POOL_ID);
  // The route table ships in the authorizer's code asset (no environment ceiling).
  expect(authorizer.Properties.Environment.Variables.SKAFU_ROUTES).toBeUndefined();
  const routes = shippedRoutes(synthExample().outdir, authorizer);
  expect(routes).toEqual({
    'POST /api/v1/observability/metrics': ['Admin', 'Developer'],
    'POST /api/v1/observability/alerts': ['Admin', 'Developer'],
    'POST /api/v1/observability/alerts/{alertId}/trigger': ['Admin', 'Developer'],
    'GET /api/v1/observability/metrics': ['Admin', 'Developer', 'Viewer'],
    'GET /api/v1/observability/alerts': ['Admin', 'Developer', 'Viewer'],
    'GET /api/v1/observability/alerts/{alertId}': ['Admin', 'Developer', 'Viewer'],
    'POST /api/v1/observability/project-alerts/{projectAlertsId}/disable': ['Admin'],
    'POST /api/v1/projects/projects': ['Admin', 'Developer'],
    'PUT /api/v1/projects/projects/{projectId}': ['Admin', 'Developer'],
    'POST /api/v1/projects/projects/{projectId}/archive': ['Admin', 'Developer'],
    'GET /api/v1/projects/projects': ['Admin', 'Developer', 'Viewer'],
    'GET /api/v1/projects/projects/{projectId}': ['Admin', 'Developer', 'Viewer'],
    'GET /api/v1/projects/my-projects': ['Admin', 'Developer'],
  });
});

test('cdk-nag AwsSolutions: zero unacknowledged errors in every stack, nested ones included', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-nag-'));
  const app: App = buildExampleApp(outdir);
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  // The two findings that are the consumer's choices in development (MFA optional, no WAF), acknowledged here.
  const [stack] = app.node.children.filter((c): c is Stack => Stack.isStack(c));
  const platform = stack.node.findChild('Platform') as SkafuPlatform;
  NagSuppressions.addResourceSuppressions(platform.users.userPool, [{ id: 'AwsSolutions-COG2', reason: 'MFA is optional in development; production requires it.' }]);
  NagSuppressions.addResourceSuppressions(platform.api.stage, [{ id: 'AwsSolutions-APIG3', reason: 'No WAF in development; production passes webAclArn.' }]);
  app.synth();
  const findings = app.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => (m.type === 'aws:cdk:error' || m.type === 'aws:cdk:warning') && String(m.data).startsWith('AwsSolutions-')).map((m) => `${c.node.path}: ${String(m.data).split('\n')[0]}`));
  expect(findings).toEqual([]);
  expect(app.node.findAll().some((c) => NestedStack.isNestedStack(c))).toBe(true);
});

test('cfn-lint: zero findings on every template of the cloud assembly', () => {
  expect(Object.keys(templates).length).toBe(3);
  expect(cfnLint(Object.fromEntries(Object.entries(templates).map(([f, t]) => [f.replace(/\.template\.json$/, ''), t])))).toEqual([]);
});

describe('SkafuPlatform presets and options', () => {
  function platform(props: ConstructorParameters<typeof SkafuPlatform>[2] = {}) {
    const stack = new Stack(new App(), 'P', { env: { account: '111111111111', region: 'eu-west-1' } });
    const p = new SkafuPlatform(stack, 'Platform', props);
    p.addDomain(projectManagement);
    return { stack, p, template: () => Template.fromStack(stack) };
  }

  test('production: deletion protection, 12-character passwords, MFA required, 1-year logs, 2000/5000 throttling, critical topic', () => {
    const { template } = platform({ environment: SkafuEnvironment.PRODUCTION });
    const t = template();
    t.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: true });
    t.hasResourceProperties('AWS::Cognito::UserPool', { Policies: { PasswordPolicy: { MinimumLength: 12 } }, MfaConfiguration: 'ON', DeletionProtection: 'ACTIVE' });
    t.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'production', MethodSettings: [{ ThrottlingRateLimit: 2000, ThrottlingBurstLimit: 5000, DataTraceEnabled: false, HttpMethod: '*', LoggingLevel: 'INFO', MetricsEnabled: true, ResourcePath: '/*' }] });
    t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
    t.resourceCountIs('AWS::SNS::Topic', 1);
  });

  test('development: no deletion protection, 8-character passwords, MFA optional, DEBUG handlers; every preset overridable', () => {
    const { template } = platform({ environment: SkafuEnvironment.DEVELOPMENT, logLevel: 'WARN', mfa: cognito.Mfa.OFF, deletionProtection: true, throttle: { rateLimit: 10, burstLimit: 20 } });
    const t = template();
    t.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: true });
    t.hasResourceProperties('AWS::Cognito::UserPool', { Policies: { PasswordPolicy: { MinimumLength: 8 } }, MfaConfiguration: 'OFF' });
    t.hasResourceProperties('AWS::ApiGateway::Stage', { MethodSettings: [{ ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20, DataTraceEnabled: false, HttpMethod: '*', LoggingLevel: 'INFO', MetricsEnabled: true, ResourcePath: '/*' }] });
    const plain = platform().template();
    plain.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: false });
  });

  test('alarm actions go to the alarm topic, in the platform and in every domain', () => {
    const stack = new Stack(new App(), 'A', { env: { account: '111111111111', region: 'eu-west-1' } });
    const topic = new sns.Topic(stack, 'Ops');
    const p = new SkafuPlatform(stack, 'Platform', { alarmTopic: topic, nestedDomainStacks: false });
    const domain = p.addDomain(observability);
    const alarms = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThanOrEqual(p.alarms.length + domain.alarms.length);
    expect(alarms.every((a) => JSON.stringify(a.Properties.AlarmActions ?? []).includes('Ops'))).toBe(true);
    // "Throttled" means more than zero throttle events (the metric is filled with 0 when there are none).
    const byId = (id: string) => Object.entries(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')).find(([k]) => k.includes(id))![1];
    expect(byId('EventStoreThrottlesAlarm').Properties).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', Threshold: 0 });
    expect(domain.alarms.map((a) => a.node.id).sort()).toEqual(['Api5xxAlarm', 'ApiLatencyAlarm', 'CommandsErrorsAlarm', 'CommandsThrottlesAlarm', 'LagAlarm', 'ProjectionFailuresAlarm', 'QueriesErrorsAlarm', 'QueriesThrottlesAlarm', 'ReactionDeadLettersAlarm']);
  });

  test('declarations that cannot work throw at synth, naming the problem', () => {
    const { p } = platform();
    expect(() => p.addDomain(projectManagement)).toThrow(/domain 'projects' is already added/);
    expect(() => p.addDomain({ ...observability, name: 'Bad Name' })).toThrow(/'name' 'Bad Name' must be/);
    expect(() => p.addDomain({ ...observability, name: 'obs2', queries: [{ name: 'Q', path: 'q', allowedGroups: ['Admin'], readModel: 'nope' }] })).toThrow(/read model 'nope' is not declared/);
    expect(() => p.addDomain({ name: 'empty' })).toThrow(/at least one command or query/);
    // Two read model names that one query environment variable would hold ('alerts' and 'Alerts', 'a-b' and 'a_b').
    const twin = (name: string) => ({ ...observability.readModels![0], name });
    const first = observability.readModels![0].name;
    expect(() => p.addDomain({ ...observability, name: 'obs6', readModels: [...observability.readModels!, twin(first.toUpperCase())] })).toThrow(
      new RegExp(`read models '${first}' and '${first.toUpperCase()}' have the same environment variable SKAFU_READ_MODEL_${first.toUpperCase()}`),
    );
    expect(() => p.addDomain({ ...observability, name: 'obs7', readModels: [...observability.readModels!, twin('a-b'), twin('a_b')] })).toThrow(/read models 'a-b' and 'a_b' have the same environment variable SKAFU_READ_MODEL_A_B/);
    expect(() => p.addDomain({ ...observability, name: 'obs3', commands: [{ ...observability.commands![2], path: 'alerts/trigger' }], readModels: [], queries: [] })).toThrow(
      /aggregateId comes from path parameter 'alertId', which 'alerts\/trigger' does not have/,
    );
    expect(() => p.addDomain({ ...observability, name: 'obs4', commands: [{ ...observability.commands![0], allowedGroups: ['Operators'] }], readModels: [], queries: [], rules: undefined })).toThrow(/unknown group\(s\) Operators/);
    const optionalRead = {
      ...observability,
      name: 'obs5',
      queries: [],
      readModels: [
        {
          name: 'alerts',
          partitionKey: { name: 'alertId' },
          projections: [{ eventType: 'AlertCreated', action: ProjectionAction.putItem({ key: { alertId: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { d: ProjectionValue.fromData('description') } }) }],
        },
      ],
    };
    expect(() => p.addDomain(optionalRead)).toThrow(/the projection of AlertCreated reads data.description, which CreateAlert does not always provide/);
    expect(() => new SkafuPlatform(new Stack(new App(), 'X'), 'P', { environment: 'qa' as SkafuEnvironment })).toThrow(/'environment' must be one of development, staging, production/);
  });
});
