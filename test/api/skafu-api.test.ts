import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { RbacUserPool, SkafuApi, TokenUse } from '../../src';

function build(props: Partial<ConstructorParameters<typeof SkafuApi>[2]> = {}) {
  const stack = new Stack(new App(), 'Api', { env: { account: '111111111111', region: 'eu-west-1' } });
  const users = new RbacUserPool(stack, 'Users');
  const api = new SkafuApi(stack, 'Api', { userPool: users.userPool, userPoolClient: users.userPoolClient, groupNames: users.groupNames, ...props });
  const fn = new lambda.Function(stack, 'Handler', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler=async()=>({})') });
  const integration = new apigw.LambdaIntegration(fn);
  api.addRoute('POST', 'projects', integration, { allowedGroups: ['Admin', 'Developer'] });
  api.addRoute('GET', 'projects', integration, { allowedGroups: ['Admin', 'Developer', 'Viewer'] });
  api.addRoute('GET', 'projects/{projectId}', integration, { allowedGroups: ['Viewer', 'Admin'], requestParameters: { 'method.request.path.projectId': true } });
  return { stack, api, integration, template: () => Template.fromStack(stack) };
}

describe('SkafuApi', () => {
  const { api, template: t } = build();
  const template = t();

  test('REST API named after the environment, REGIONAL, stage = environment, X-Ray, logging, throttling', () => {
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { Name: 'skafu-api-development', EndpointConfiguration: { Types: ['REGIONAL'] } });
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'development',
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('AccessLogs'), 'Arn'] }, Format: Match.stringLikeRegexp('"correlationId":"\\$context.authorizer.correlationId"') },
      MethodSettings: [Match.objectLike({ LoggingLevel: 'INFO', DataTraceEnabled: false, MetricsEnabled: true, ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200, HttpMethod: '*', ResourcePath: '/*' })],
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('never touches the account-wide CloudWatch role', () => {
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
    expect(JSON.stringify(template.toJSON())).not.toContain('AmazonAPIGatewayPushToCloudWatchLogs');
  });

  test('routes hang under /api/v1', () => {
    expect(api.routes()).toEqual([
      { method: 'POST', path: '/api/v1/projects', allowedGroups: ['Admin', 'Developer'] },
      { method: 'GET', path: '/api/v1/projects', allowedGroups: ['Admin', 'Developer', 'Viewer'] },
      { method: 'GET', path: '/api/v1/projects/{projectId}', allowedGroups: ['Viewer', 'Admin'] },
    ]);
    template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: 'api' });
    template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: 'v1' });
    template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: '{projectId}' });
  });

  test('every non-OPTIONS method carries the RBAC authorizer and the request validator', () => {
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method'));
    const guarded = methods.filter((m) => m.Properties.HttpMethod !== 'OPTIONS');
    expect(guarded).toHaveLength(3);
    for (const m of guarded) {
      expect(m.Properties).toMatchObject({
        AuthorizationType: 'CUSTOM',
        AuthorizerId: { Ref: expect.stringMatching(/RbacAuthorizer/) },
        RequestValidatorId: { Ref: expect.stringMatching(/RequestValidator/) },
      });
    }
    // CORS preflight stays open (browsers send no token with it).
    expect(methods.filter((m) => m.Properties.HttpMethod === 'OPTIONS').every((m) => m.Properties.AuthorizationType === 'NONE')).toBe(true);
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
  });

  test('the authorizer: REQUEST type, cache keyed by token + method + route, its environment', () => {
    template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
      Type: 'REQUEST',
      IdentitySource: 'method.request.header.Authorization,context.httpMethod,context.resourcePath',
      AuthorizerResultTtlInSeconds: 300,
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: Match.objectLike({
          SKAFU_USER_POOL_ID: { Ref: Match.stringLikeRegexp('UsersUserPool') },
          SKAFU_USER_POOL_CLIENT_ID: { Ref: Match.stringLikeRegexp('WebClient') },
          SKAFU_TOKEN_USE: 'access',
          SKAFU_ROUTES: Match.anyValue(),
        }),
      },
    });
  });

  test('CORS: the configured origins, X-Correlation-Id allowed and exposed, credentials', () => {
    const options = Object.values(template.findResources('AWS::ApiGateway::Method')).find((m) => m.Properties.HttpMethod === 'OPTIONS')!;
    const headers = options.Properties.Integration.IntegrationResponses[0].ResponseParameters;
    expect(headers['method.response.header.Access-Control-Allow-Headers']).toContain('X-Correlation-Id');
    expect(headers['method.response.header.Access-Control-Allow-Headers']).toContain('Idempotency-Key');
    expect(headers['method.response.header.Access-Control-Expose-Headers']).toBe("'X-Correlation-Id,ETag'");
    expect(headers['method.response.header.Access-Control-Allow-Origin']).toBe("'http://localhost:3000'");
    expect(headers['method.response.header.Access-Control-Allow-Credentials']).toBe("'true'");
  });

  test('gateway responses: JSON bodies with the correlation id, CORS headers kept', () => {
    const responses = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse'));
    const byType = Object.fromEntries(responses.map((r) => [r.Properties.ResponseType, r.Properties]));
    expect(Object.keys(byType).sort()).toEqual(['ACCESS_DENIED', 'BAD_REQUEST_BODY', 'BAD_REQUEST_PARAMETERS', 'DEFAULT_4XX', 'DEFAULT_5XX', 'THROTTLED', 'UNAUTHORIZED']);
    expect(byType.UNAUTHORIZED.StatusCode).toBe('401');
    expect(byType.ACCESS_DENIED.StatusCode).toBe('403');
    for (const r of Object.values(byType)) {
      expect(r.ResponseParameters['gatewayresponse.header.Access-Control-Allow-Origin']).toBe("'http://localhost:3000'");
      // $context.error.messageString arrives already quoted; the other variables are substituted raw.
      const body = (r.ResponseTemplates['application/json'] as string).replace('$context.error.messageString', '"m"').replace(/\$context\.[A-Za-z.]+/g, 'x');
      expect(JSON.parse(body)).toEqual({ error: expect.any(String), message: expect.any(String), correlationId: 'x' });
    }
  });

  test('metrics', () => {
    expect(api.metricServerErrors().metricName).toBe('5XXError');
    expect(api.metricClientErrors().metricName).toBe('4XXError');
    expect(api.metricLatency().statistic).toBe('p90');
  });
});

test('environment presets and options', () => {
  const { template } = build({ environment: 'production', corsOrigins: ['https://app.skafu.dev'], tokenUse: TokenUse.ID, authorizerCacheTtl: Duration.seconds(0), webAclArn: 'arn:aws:wafv2:eu-west-1:111111111111:regional/webacl/skafu/abc' });
  const t = template();
  t.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'production', MethodSettings: [Match.objectLike({ ThrottlingRateLimit: 2000, ThrottlingBurstLimit: 5000 })] });
  t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
  t.hasResourceProperties('AWS::ApiGateway::Authorizer', { AuthorizerResultTtlInSeconds: 0 });
  t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ SKAFU_TOKEN_USE: 'id' }) } });
  t.hasResourceProperties('AWS::WAFv2::WebACLAssociation', { WebACLArn: 'arn:aws:wafv2:eu-west-1:111111111111:regional/webacl/skafu/abc' });
  t.hasResourceProperties('AWS::ApiGateway::GatewayResponse', { ResponseParameters: Match.objectLike({ 'gatewayresponse.header.Access-Control-Allow-Origin': "'https://app.skafu.dev'" }) });
  const staging = build({ environment: 'staging' }).template();
  staging.hasResourceProperties('AWS::ApiGateway::Stage', { MethodSettings: [Match.objectLike({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 })] });
});

describe('bad declarations throw at synth, naming the problem', () => {
  test.each<[string, (api: SkafuApi, integration: apigw.Integration) => void, RegExp]>([
    ['duplicate route', (api, i) => api.addRoute('post', '/projects/', i, { allowedGroups: ['Admin'] }), /route POST \/api\/v1\/projects is already declared/],
    ['unknown group', (api, i) => api.addRoute('PUT', 'projects/{projectId}', i, { allowedGroups: ['Admins'] }), /unknown group\(s\) Admins \(known: Admin, Developer, Viewer\)/],
    ['no groups', (api, i) => api.addRoute('PUT', 'projects/{projectId}', i, { allowedGroups: [] }), /allowedGroups is empty/],
    ['bad method', (api, i) => api.addRoute('HEAD', 'projects', i, { allowedGroups: ['Admin'] }), /method 'HEAD' is not one of/],
    ['bad path', (api, i) => api.addRoute('GET', 'Projects/../x', i, { allowedGroups: ['Admin'] }), /path 'Projects\/..\/x' must be segments/],
  ])('%s', (_n, add, message) => {
    const { api, integration } = build();
    expect(() => add(api, integration)).toThrow(message);
  });

  test.each<[string, object, RegExp]>([
    ['wildcard origin', { corsOrigins: ['*'] }, /contains '\*'/],
    ['origin with a path', { corsOrigins: ['https://app.skafu.dev/x'] }, /must be scheme:\/\/host/],
    ['burst below rate', { throttle: { rateLimit: 10, burstLimit: 5 } }, /'throttle' needs/],
    ['cache TTL too long', { authorizerCacheTtl: Duration.hours(2) }, /'authorizerCacheTtl' must be 0 to 3600/],
    ['not a WAFv2 ACL', { webAclArn: 'arn:aws:waf-regional:eu-west-1:1:webacl/x' }, /'webAclArn' must be a WAFv2/],
  ])('props: %s', (_n, props, message) => {
    expect(() => build(props)).toThrow(message);
  });
});
