import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AggregateIdSource, EventSourcedDomain, QueryInput, SkafuPlatform } from '../../src';

test('a custom command handler and secrets: environment wired, least-privilege grants, routes guarded', () => {
  const stack = new Stack(new App(), 'Custom', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  const code = lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 200, body: "{}" })');
  const custom = new lambda.Function(stack, 'Deploy', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code });
  const reader = new lambda.Function(stack, 'Report', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code });
  const githubToken = new secretsmanager.Secret(stack, 'GithubToken');
  const domain = new EventSourcedDomain(stack, 'Deployments', {
    platform: platform.platformRefs,
    name: 'deployments',
    commands: [
      {
        name: 'StartDeployment',
        path: 'deployments',
        allowedGroups: ['Admin'],
        aggregateType: 'Deployment',
        aggregateId: AggregateIdSource.generated('dep-'),
        eventType: 'DeploymentStarted',
        handler: custom,
        secrets: [githubToken],
      },
    ],
    readModels: [{ name: 'deployments', partitionKey: { name: 'id' }, projections: [] }],
    queries: [
      {
        name: 'GetDeployment',
        path: 'deployments/{id}',
        allowedGroups: ['Admin', 'Viewer'],
        readModel: 'deployments',
        key: { id: QueryInput.pathParameter('id') },
        handler: reader,
      },
    ],
  });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        SKAFU_DOMAIN: 'deployments',
        SKAFU_EVENT_STORE_TABLE: { Ref: Match.stringLikeRegexp('PlatformEventStoreTable') },
        SKAFU_EVENT_BUS_NAME: { Ref: Match.stringLikeRegexp('PlatformDomainEventsBus') },
        SKAFU_ERROR_BUS_NAME: { Ref: Match.stringLikeRegexp('PlatformErrorsBus') },
        SKAFU_SECRET_GITHUBTOKEN: { Ref: Match.stringLikeRegexp('GithubToken') },
      }),
    },
  });
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SKAFU_READ_MODEL_DEPLOYMENTS: { Ref: Match.stringLikeRegexp('ProjectionTables.*ReadModelDeployments') } }) },
  });
  const policies = Object.entries(t.findResources('AWS::IAM::Policy'));
  type Statement = { Action: string | string[] };
  const actionsOf = (id: RegExp) =>
    policies.filter(([k]) => id.test(k)).flatMap(([, p]) => (p.Properties.PolicyDocument.Statement as Statement[]).flatMap((s) => [s.Action].flat()));
  expect(actionsOf(/^DeployServiceRole/)).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'events:PutEvents', 'secretsmanager:GetSecretValue']));
  expect(actionsOf(/^ReportServiceRole/)).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:Query']));
  expect(actionsOf(/^ReportServiceRole/)).not.toContain('dynamodb:PutItem');
  expect(domain.commandFunction).toBeUndefined(); // nothing bundled when every command is custom
  expect(platform.api.routes()).toEqual(expect.arrayContaining([{ method: 'POST', path: '/api/v1/deployments/deployments', allowedGroups: ['Admin'] }]));
  t.hasResourceProperties('AWS::Lambda::Permission', { FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Deploy'), 'Arn'] }, Principal: 'apigateway.amazonaws.com' });
});
