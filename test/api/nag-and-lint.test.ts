/**
 * RbacUserPool + SkafuApi with routes under cdk-nag AwsSolutions and cfn-lint. The consumer-side acknowledgements
 * (WAF and MFA choices, which are props) are made here with reasons; the constructs carry COG4 (Lambda
 * authorizer) and COG8 (ESSENTIALS plan) themselves.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { NagSuppressions } from 'cdk-nag';
import { RbacUserPool, SkafuApi } from '../../src';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, consumerFunction, nagErrors, nagWarnings } from '../support/nag';

function apiStack(options: { mfa?: cognito.Mfa; webAclArn?: string } = {}) {
  const stack = new Stack(new App(), 'ApiNag', { env: { account: '111111111111', region: 'eu-west-1' } });
  applyAwsSolutions(stack);
  const users = new RbacUserPool(stack, 'Users', { mfa: options.mfa });
  const api = new SkafuApi(stack, 'Api', { userPool: users.userPool, userPoolClient: users.userPoolClient, groupNames: users.groupNames, webAclArn: options.webAclArn });
  const { fn } = consumerFunction(stack);
  const integration = new apigw.LambdaIntegration(fn);
  api.addRoute('POST', 'projects', integration, { allowedGroups: ['Admin', 'Developer'] });
  api.addRoute('GET', 'projects/{projectId}', integration, { allowedGroups: ['Admin', 'Developer', 'Viewer'] });
  return { stack, users, api };
}

test('zero unacknowledged AwsSolutions errors; the only warnings are the WAF and MFA choices', () => {
  const { stack } = apiStack();
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack).map((w) => w.message.split(':')[0]).sort()).toEqual(['AwsSolutions-APIG3', 'AwsSolutions-COG2']);
});

test('with MFA required and a WAF ACL, and the consumer acknowledging nothing: zero errors, zero warnings', () => {
  const { stack } = apiStack({ mfa: cognito.Mfa.REQUIRED, webAclArn: 'arn:aws:wafv2:eu-west-1:111111111111:regional/webacl/skafu/abc' });
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack)).toEqual([]);
});

test('a consumer can acknowledge the two choices with reasons', () => {
  const { stack, users, api } = apiStack();
  NagSuppressions.addResourceSuppressions(users.userPool, [{ id: 'AwsSolutions-COG2', reason: 'MFA is optional in development; production sets mfa REQUIRED.' }]);
  NagSuppressions.addResourceSuppressions(api.restApi.deploymentStage, [{ id: 'AwsSolutions-APIG3', reason: 'No WAF in development; production passes webAclArn.' }]);
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack)).toEqual([]);
});

test('cfn-lint finds nothing', () => {
  const { stack } = apiStack({ webAclArn: 'arn:aws:wafv2:eu-west-1:111111111111:regional/webacl/skafu/abc' });
  expect(cfnLint({ Api: Template.fromStack(stack).toJSON() })).toEqual([]);
});
