/**
 * SkafuGraphqlApi as SkafuPlatform.addGraphqlApi synthesizes it for the example domains: the generated schema and
 * resolvers in the template, least-privilege roles, logs with retention, X-Ray, WAF, the change publisher's
 * stream mappings; cdk-nag AwsSolutions (0 unacknowledged) and cfn-lint clean.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { observability, projectManagement } from '../../examples/platform/domains';
import { SkafuEnvironment, SkafuGraphqlApi, SkafuPlatform } from '../../src';
import { generateGraphqlSchema } from '../../src/graphql/schema';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, nagErrors, nagWarnings } from '../support/nag';

function platformStack(options: { webAclArn?: string; environment?: SkafuEnvironment; nag?: boolean } = {}) {
  const stack = new Stack(new App(), 'Gql', { env: { account: '111111111111', region: 'eu-west-1' } });
  if (options.nag) applyAwsSolutions(stack);
  const platform = new SkafuPlatform(stack, 'Platform', { environment: options.environment, webAclArn: options.webAclArn });
  platform.addDomain(observability);
  platform.addDomain(projectManagement);
  const graphql = platform.addGraphqlApi();
  return { stack, platform, graphql, template: Template.fromStack(stack) };
}

const { template, graphql, platform } = platformStack();

test('the API: Cognito user pool (this client only) by default, IAM as the additional mode, X-Ray, field logs with a scoped role', () => {
  template.hasResourceProperties('AWS::AppSync::GraphQLApi', {
    AuthenticationType: 'AMAZON_COGNITO_USER_POOLS',
    UserPoolConfig: Match.objectLike({ DefaultAction: 'ALLOW', AppIdClientRegex: Match.anyValue() }),
    AdditionalAuthenticationProviders: [{ AuthenticationType: 'AWS_IAM' }],
    XrayEnabled: true,
    LogConfig: Match.objectLike({ FieldLogLevel: 'ERROR', ExcludeVerboseContent: true, CloudWatchLogsRoleArn: Match.anyValue() }),
  });
  template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['/aws/appsync/apis/'])]) }), RetentionInDays: 30 });
  // No LogRetention custom resource (the API's log group is a resource of its own), no managed policy in its roles.
  expect(Object.keys(template.findResources('Custom::LogRetention'))).toEqual([]);
  for (const role of Object.values(template.findResources('AWS::IAM::Role')) as any[]) {
    if (JSON.stringify(role.Properties.AssumeRolePolicyDocument).includes('appsync.amazonaws.com')) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  }
});

test('the schema in the template is the generated one, with a resolver per query, change mutation and subscription', () => {
  const generated = generateGraphqlSchema([observability, projectManagement]);
  template.hasResourceProperties('AWS::AppSync::GraphQLSchema', { Definition: generated.sdl });
  expect(graphql.schema).toBe(generated.sdl);
  const resolvers = Object.values(template.findResources('AWS::AppSync::Resolver')).map((r: any) => `${r.Properties.TypeName}.${r.Properties.FieldName}`).sort();
  expect(resolvers).toEqual(generated.resolvers.map((r) => `${r.typeName}.${r.fieldName}`).sort());
  expect(resolvers).toEqual(expect.arrayContaining(['Query.getAlert', 'Query.listMyProjects', 'Mutation.publishAlertsChange', 'Subscription.onAlertsChange']));
  for (const r of Object.values(template.findResources('AWS::AppSync::Resolver')) as any[]) {
    expect(r.Properties.Kind).toBe('UNIT');
    expect(r.Properties.RequestMappingTemplate).toEqual(expect.any(String));
    expect(r.Properties.Code).toBeUndefined(); // VTL: no Lambda, no JS runtime
  }
});

test('each read model data source reads only its own table (and declared indexes): GetItem, Query, Scan', () => {
  const sources = Object.values(template.findResources('AWS::AppSync::DataSource')) as any[];
  expect(sources.filter((s) => s.Properties.Type === 'AMAZON_DYNAMODB')).toHaveLength(3);
  expect(sources.filter((s) => s.Properties.Type === 'NONE')).toHaveLength(1);
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as any[];
  const readPolicies = policies.filter((p) => JSON.stringify(p).includes('ReadModel') && JSON.stringify(p.Properties.PolicyDocument).includes('dynamodb:GetItem') && JSON.stringify(p.Properties.Roles).includes('Graphql'));
  expect(readPolicies).toHaveLength(3);
  for (const p of readPolicies) {
    expect(p.Properties.PolicyDocument.Statement).toEqual([expect.objectContaining({ Action: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan'], Effect: 'Allow' })]);
    expect(JSON.stringify(p.Properties.PolicyDocument)).not.toContain('index/*');
  }
  const projectsPolicy = readPolicies.find((p) => JSON.stringify(p).includes('byStatus'));
  expect(projectsPolicy).toBeDefined();
});

test('live updates: streams on the served tables (new and old images), mappings from LATEST with bounded retries and a failure queue', () => {
  const tables = Object.values(template.findResources('AWS::DynamoDB::Table')) as any[];
  const streamed = tables.filter((t) => t.Properties.StreamSpecification?.StreamViewType === 'NEW_AND_OLD_IMAGES');
  // metrics, alerts, projects (the event store has its own stream)
  expect(streamed.length).toBeGreaterThanOrEqual(3);
  const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).filter((m: any) => JSON.stringify(m).includes('ChangePublisher')) as any[];
  expect(mappings).toHaveLength(3);
  for (const m of mappings) {
    expect(m.Properties).toMatchObject({ StartingPosition: 'LATEST', MaximumRetryAttempts: 3, MaximumRecordAgeInSeconds: 3600, FunctionResponseTypes: ['ReportBatchItemFailures'], BisectBatchOnFunctionError: false });
    expect(m.Properties.DestinationConfig.OnFailure.Destination).toBeDefined();
  }
  expect(graphql.failedChangesQueue).toBeDefined();
});

test('the change publisher may call the change mutations and nothing else of the API', () => {
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as any[];
  const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement).filter((s: any) => JSON.stringify(s.Action).includes('appsync:GraphQL'));
  expect(statements).toHaveLength(1);
  const resources = JSON.stringify(statements[0].Resource);
  for (const field of ['publishMetricsChange', 'publishAlertsChange', 'publishProjectsChange']) expect(resources).toContain(`/types/Mutation/fields/${field}`);
  expect(resources).not.toContain('/types/Query');
  expect(resources).not.toMatch(/fields\/\*/);
});

test('a WAF web ACL is associated when the platform has one; none otherwise', () => {
  template.resourceCountIs('AWS::WAFv2::WebACLAssociation', 0);
  const waf = 'arn:aws:wafv2:eu-west-1:111111111111:regional/webacl/skafu/abc';
  platformStack({ webAclArn: waf }).template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', { WebACLArn: waf, ResourceArn: Match.anyValue() });
});

test('production retention follows the platform preset', () => {
  const prod = platformStack({ environment: SkafuEnvironment.PRODUCTION });
  prod.template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['/aws/appsync/apis/'])]) }), RetentionInDays: 365 });
});

test('conflicting or impossible options throw at synth, naming them', () => {
  expect(() => platform.addGraphqlApi()).toThrow(/already added/);
  const stack = new Stack(new App(), 'Bad');
  const p = new SkafuPlatform(stack, 'Platform');
  p.addDomain(observability);
  expect(() => p.addGraphqlApi({ domainNames: ['nope'] })).toThrow(/not added: nope/);
  expect(() => new SkafuGraphqlApi(stack, 'G', { domains: [p.domains.observability], userPool: p.users.userPool, liveUpdates: false, maxChangeAge: Duration.hours(2) })).toThrow(/'liveUpdates: false'/);
  expect(() => new SkafuGraphqlApi(stack, 'G2', { domains: [p.domains.observability], userPool: p.users.userPool, publishRetryAttempts: -1 })).toThrow(/publishRetryAttempts/);
});

describe('cdk-nag and cfn-lint', () => {
  const nagged = platformStack({ nag: true });
  test('zero unacknowledged AwsSolutions errors and warnings on the GraphQL API', () => {
    expect(nagErrors(nagged.stack)).toEqual([]);
    expect(nagWarnings(nagged.stack).filter((e) => e.path.includes('/Graphql/'))).toEqual([]);
  });
  test('every acknowledgement on the GraphQL API has a reason; wildcard ones name exactly what they accept', () => {
    const acks = Object.entries(nagged.template.toJSON().Resources as Record<string, any>)
      .filter(([id]) => id.includes('Graphql'))
      .flatMap(([, r]) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(a.reason.length).toBeGreaterThan(40);
      if (a.id === 'AwsSolutions-IAM5') expect(a.applies_to).toEqual(expect.any(Array));
    }
  });
  test('cfn-lint finds nothing in the platform template', () => {
    const findings = cfnLint({ Platform: nagged.template.toJSON() });
    expect(findings).toEqual([]);
  });
});
