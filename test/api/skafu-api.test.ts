import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { renderGatewayResponse, gatewayResponseFromCfn, type GatewayResponseDefinition } from '../../local/src/gateway-responses';
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

/** The synthesized gateway responses, by type. */
function gatewayResponses(template: Template): Map<string, GatewayResponseDefinition> {
  const responses = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse'));
  return new Map(responses.map((r) => [r.Properties.ResponseType as string, gatewayResponseFromCfn(r.Properties)]));
}

describe('SkafuApi', () => {
  const { api, template: t } = build();
  const template = t();

  test('REST API named after the environment, REGIONAL, stage = environment, X-Ray, logging, throttling', () => {
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { Name: 'skafu-api-development', EndpointConfiguration: { Types: ['REGIONAL'] } });
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'development',
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('AccessLogs'), 'Arn'] }, Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
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
          // The route table ships in the authorizer's code asset (test/api/authorizer.test.ts), not here.
          SKAFU_ROUTES: Match.absent(),
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

  test('gateway responses: valid JSON whatever the error strings hold, the caller\'s correlation id, CORS, nosniff', () => {
    const definitions = gatewayResponses(template);
    expect([...definitions.keys()].sort()).toEqual([
      'ACCESS_DENIED', 'BAD_REQUEST_BODY', 'BAD_REQUEST_PARAMETERS', 'DEFAULT_4XX', 'DEFAULT_5XX', 'MISSING_AUTHENTICATION_TOKEN', 'THROTTLED', 'UNAUTHORIZED',
    ]);
    const hostile = 'He said "hi"\nthen \\left\t{"x":1}';
    // Rendered as API Gateway substitutes (local/src/gateway-responses.ts): messageString quoted, the rest raw.
    for (const [type, status] of [['UNAUTHORIZED', 401], ['ACCESS_DENIED', 403], ['MISSING_AUTHENTICATION_TOKEN', 403], ['BAD_REQUEST_BODY', 400],
      ['BAD_REQUEST_PARAMETERS', 400], ['THROTTLED', 429], ['REQUEST_TOO_LARGE', 413], ['AUTHORIZER_FAILURE', 500], ['INTEGRATION_TIMEOUT', 504]] as const) {
      const rendered = renderGatewayResponse(definitions, {
        responseType: type,
        defaultStatus: status,
        message: hostile,
        validationErrorString: `[object has missing required properties (["name"])]\n${hostile}`,
        requestId: 'b5f7c0de-0000-4000-8000-000000000001',
        // The authorizer escapes its reason (test/api/authorizer.test.ts proves it for hostile group names).
        authorizer: { reason: JSON.stringify(`requires one of: ${hostile}`).slice(1, -1) },
        request: { headers: { 'x-correlation-id': 'caller-42', 'origin': 'http://localhost:3000' } },
      });
      const body = JSON.parse(rendered.body);
      expect(body).toMatchObject({ error: expect.any(String), message: expect.any(String), correlationId: 'b5f7c0de-0000-4000-8000-000000000001' });
      expect(rendered.headers).toMatchObject({
        'X-Correlation-Id': 'caller-42',
        'Access-Control-Allow-Origin': 'http://localhost:3000',
        'Access-Control-Allow-Credentials': 'true',
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-store',
      });
      if (type === 'ACCESS_DENIED') expect(body).toMatchObject({ error: 'Forbidden', reason: `requires one of: ${hostile}` });
    }
    const notFound = renderGatewayResponse(definitions, { responseType: 'MISSING_AUTHENTICATION_TOKEN', defaultStatus: 403, message: 'Missing Authentication Token', requestId: 'r', request: { headers: {} } });
    expect(notFound.statusCode).toBe(404);
    expect(JSON.parse(notFound.body)).toMatchObject({ error: 'NotFound' });
    // No caller id, no header: the body's request id is then the only id.
    expect(notFound.headers['X-Correlation-Id']).toBeUndefined();
    for (const d of definitions.values()) expect(d.templates['application/json']).not.toContain('validationErrorString');
  });

  test('methods added outside addRoute get the authorizer by default; CORS preflight stays open', () => {
    const { api: custom, integration, template: synth } = build();
    custom.apiV1.addResource('custom').addMethod('GET', integration);
    custom.restApi.root.addResource('health').addMethod('GET', integration);
    const methods = Object.values(synth().findResources('AWS::ApiGateway::Method'));
    const guarded = methods.filter((m) => m.Properties.HttpMethod !== 'OPTIONS');
    expect(guarded).toHaveLength(5);
    for (const m of guarded) expect(m.Properties).toMatchObject({ AuthorizationType: 'CUSTOM', AuthorizerId: { Ref: expect.stringMatching(/RbacAuthorizer/) } });
    const preflights = methods.filter((m) => m.Properties.HttpMethod === 'OPTIONS');
    expect(preflights.length).toBeGreaterThan(3);
    expect(preflights.every((m) => m.Properties.AuthorizationType === 'NONE')).toBe(true);
    // Not in the route table: the authorizer denies them until they are declared with addRoute.
    expect(custom.routes().map((r) => r.path)).not.toContain('/api/v1/custom');
  });

  test('synth refuses a method that opts out of authorization, naming it', () => {
    const { api: open, integration, template: synth } = build();
    open.apiV1.addResource('public').addMethod('POST', integration, { authorizationType: apigw.AuthorizationType.NONE });
    expect(() => synth()).toThrow(/POST \/api\/v1\/public has no authorization \(AuthorizationType.NONE\)/);
  });

  test('an open OPTIONS method is allowed only as a MOCK preflight: one with a Lambda or HTTP integration is refused', () => {
    // Every resource of the API already has CDK's preflight (a MOCK OPTIONS); a consumer's own Method for OPTIONS
    // (made directly, as addMethod refuses a second one) must not open a backend to callers without a token.
    const rawOptions = (owner: SkafuApi, resource: apigw.IResource, integration: apigw.Integration, id: string) =>
      new apigw.Method(owner, id, { resource, httpMethod: 'OPTIONS', integration, options: { authorizationType: apigw.AuthorizationType.NONE } });
    for (const where of ['apiV1', 'root'] as const) {
      const { api: open, integration, template: synth } = build();
      rawOptions(open, where === 'apiV1' ? open.apiV1 : open.restApi.root, integration, 'RawOptions');
      const path = where === 'apiV1' ? '\\/api\\/v1' : '\\/';
      expect(() => synth()).toThrow(new RegExp(`OPTIONS ${path} has no authorization and a AWS_PROXY integration`));
    }
    const { api: http, template: synthHttp } = build();
    rawOptions(http, http.apiV1, new apigw.HttpIntegration('https://example.com'), 'RawHttpOptions');
    expect(() => synthHttp()).toThrow(/OPTIONS \/api\/v1 has no authorization and a HTTP_PROXY integration/);
    // A MOCK OPTIONS stays open, and an OPTIONS with the authorizer is fine.
    const { api: ok, integration, template: synthOk } = build();
    rawOptions(ok, ok.apiV1, new apigw.MockIntegration(), 'RawMockOptions');
    new apigw.Method(ok, 'GuardedOptions', { resource: ok.restApi.root, httpMethod: 'OPTIONS', integration });
    expect(() => synthOk()).not.toThrow();
  });

  test('IAM over the default authorizer is refused (by CDK); a Cognito authorizer chosen on purpose is accepted, outside the route table', () => {
    const { api: mine, integration } = build();
    expect(() => mine.apiV1.addResource('machine').addMethod('POST', integration, { authorizationType: apigw.AuthorizationType.IAM })).toThrow(/machine\/POST - Authorization type is set to AWS_IAM which is different from what is required by the authorizer \[CUSTOM\]/);
    const { stack: other, api: theirs, integration: theirIntegration, template: synthOther } = build();
    const pool = new RbacUserPool(other, 'OtherUsers');
    const cognitoAuthorizer = new apigw.CognitoUserPoolsAuthorizer(other, 'Cognito', { cognitoUserPools: [pool.userPool] });
    theirs.apiV1.addResource('me').addMethod('GET', theirIntegration, { authorizer: cognitoAuthorizer, authorizationType: apigw.AuthorizationType.COGNITO });
    const methods = Object.values(synthOther().findResources('AWS::ApiGateway::Method'));
    expect(methods.filter((m) => m.Properties.HttpMethod !== 'OPTIONS').map((m) => m.Properties.AuthorizationType).sort()).toEqual(['COGNITO_USER_POOLS', 'CUSTOM', 'CUSTOM', 'CUSTOM']);
    expect(theirs.routes().map((r) => r.path)).not.toContain('/api/v1/me');
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
  // Production: a short authorizer cache (a revoked user's window is the token's validity plus this).
  build({ environment: 'production' }).template().hasResourceProperties('AWS::ApiGateway::Authorizer', { AuthorizerResultTtlInSeconds: 60 });
  build({ maxTokenLifetime: Duration.minutes(30) }).template().hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SKAFU_MAX_TOKEN_LIFETIME: '1800' }) },
  });
  const staging = build({ environment: 'staging' }).template();
  staging.hasResourceProperties('AWS::ApiGateway::Stage', { MethodSettings: [Match.objectLike({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 })] });
});

test('several CORS origins: preflight and gateway responses answer the request\'s origin, not always the first', () => {
  const origins = ['https://a.skafu.dev', 'https://b.skafu.dev', 'http://localhost:5173'];
  const t = build({ corsOrigins: origins }).template();
  const definitions = gatewayResponses(t);
  for (const origin of origins.slice(1)) {
    const rendered = renderGatewayResponse(definitions, { responseType: 'UNAUTHORIZED', defaultStatus: 401, message: 'Unauthorized', requestId: 'r', request: { headers: { Origin: origin } } });
    expect(rendered.headers).toMatchObject({ 'Access-Control-Allow-Origin': origin, 'Vary': 'Origin' });
  }
  // A gateway response cannot choose: any Origin is echoed (as the README says), the single-origin form never is.
  for (const origin of ['https://evil.example', 'null', 'HTTPS://A.SKAFU.DEV']) {
    const rendered = renderGatewayResponse(definitions, { responseType: 'ACCESS_DENIED', defaultStatus: 403, message: 'x', requestId: 'r', request: { headers: { origin } } });
    expect(rendered.headers['Access-Control-Allow-Origin']).toBe(origin);
  }
  const single = gatewayResponses(build({ corsOrigins: ['https://a.skafu.dev'] }).template());
  const evil = renderGatewayResponse(single, { responseType: 'UNAUTHORIZED', defaultStatus: 401, message: 'x', requestId: 'r', request: { headers: { origin: 'https://evil.example' } } });
  expect(evil.headers['Access-Control-Allow-Origin']).toBe('https://a.skafu.dev');
  // The preflight (CDK's mock integration) picks the request's origin among the configured ones.
  const options = Object.values(t.findResources('AWS::ApiGateway::Method')).find((m) => m.Properties.HttpMethod === 'OPTIONS')!;
  const vtl = options.Properties.Integration.IntegrationResponses[0].ResponseTemplates['application/json'] as string;
  for (const origin of origins.slice(1)) expect(vtl).toContain(`$origin == "${origin}"`);
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
    ['token lifetime over a day', { maxTokenLifetime: Duration.days(2) }, /'maxTokenLifetime' must be 5 minutes to 1 day/],
    ['not a WAFv2 ACL', { webAclArn: 'arn:aws:waf-regional:eu-west-1:1:webacl/x' }, /'webAclArn' must be a WAFv2/],
  ])('props: %s', (_n, props, message) => {
    expect(() => build(props)).toThrow(message);
  });
});
