/**
 * The RBAC authorizer with real signatures: an RS256 key pair made here, its JWKS loaded into aws-jwt-verify,
 * Cognito-shaped access tokens minted for users in each group. The route table is the one the SkafuApi
 * construct synthesizes (decoded from the authorizer's environment in the template).
 */
import { createServer, type Server } from 'node:http';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { RbacUserPool, SkafuApi } from '../../src';
import { createAuthorizer, authorizerConfigFromEnvironment } from '../../src/api/authorizer.lambda';
import { powertools } from '../../src/internal/powertools';
import { decodeRouteGroups } from '../../src/runtime';
import { CLIENT_ID, createIssuer, ISSUER, USER_POOL_ID, userClaims, type TestIssuer } from '../support/jwt';

const GROUPS = ['Admin', 'Developer', 'Viewer'];
const ROUTES: Array<[string, string, string[]]> = [
  ['POST', 'observability/metrics', ['Admin', 'Developer']],
  ['GET', 'observability/metrics', ['Admin', 'Developer', 'Viewer']],
  ['POST', 'observability/alerts/{alertId}/trigger', ['Admin', 'Developer']],
  ['DELETE', 'projects/{projectId}', ['Admin']],
  ['GET', 'projects', ['Admin', 'Developer', 'Viewer']],
];

/** The synthesized template's authorizer: its environment (route table) and identity sources. */
function synthesizedAuthorizer() {
  const stack = new Stack(new App(), 'Api', { env: { account: '111111111111', region: 'us-east-1' } });
  const users = new RbacUserPool(stack, 'Users');
  const api = new SkafuApi(stack, 'Api', { userPool: users.userPool, userPoolClient: users.userPoolClient, groupNames: users.groupNames });
  for (const [method, path, groups] of ROUTES) api.addRoute(method, path, new apigw.MockIntegration(), { allowedGroups: groups });
  const template = Template.fromStack(stack);
  const [fn] = Object.values(template.findResources('AWS::Lambda::Function')).filter((f) => f.Properties.Environment?.Variables?.SKAFU_ROUTES);
  const [authorizer] = Object.values(template.findResources('AWS::ApiGateway::Authorizer'));
  return { env: fn.Properties.Environment.Variables as Record<string, unknown>, identitySource: authorizer.Properties.IdentitySource as string };
}

const { env, identitySource } = synthesizedAuthorizer();
const routes = decodeRouteGroups(env.SKAFU_ROUTES as string);
let issuer: TestIssuer;
let authorize: (event: APIGatewayRequestAuthorizerEvent) => Promise<APIGatewayAuthorizerResult>;

beforeAll(async () => {
  issuer = await createIssuer();
  authorize = createAuthorizer({
    config: { userPoolId: USER_POOL_ID, clientId: CLIENT_ID, tokenUse: 'access', routes },
    tools: powertools('test'),
    jwks: issuer.jwks,
  });
});

function event(method: string, resource: string, headers: Record<string, string>): APIGatewayRequestAuthorizerEvent {
  const path = resource.replace(/\{[^}]+\}/g, 'x1');
  return {
    type: 'REQUEST',
    methodArn: `arn:aws:execute-api:us-east-1:111111111111:abc123/development/${method}${path}`,
    resource,
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: {},
    pathParameters: {},
    queryStringParameters: {},
    multiValueQueryStringParameters: {},
    stageVariables: {},
    requestContext: { httpMethod: method, resourcePath: resource, requestId: 'req-1' } as never,
  };
}

/** What API Gateway answers: 401 when the authorizer throws Unauthorized, 403 on Deny, 200 (passed on) on Allow. */
type Outcome = { status: number; result?: APIGatewayAuthorizerResult };
async function status(method: string, resource: string, headers: Record<string, string>): Promise<Outcome> {
  try {
    const result = await authorize(event(method, resource, headers));
    const effect = (result.policyDocument.Statement[0] as { Effect: string }).Effect;
    return { status: effect === 'Allow' ? 200 : 403, result };
  } catch (err) {
    expect((err as Error).message).toBe('Unauthorized');
    return { status: 401 };
  }
}

test('the construct synthesizes the route table and a cache key of (token, method, route)', () => {
  expect(routes).toEqual(Object.fromEntries(ROUTES.map(([m, p, g]) => [`${m} /api/v1/${p}`, g])));
  expect(identitySource).toBe('method.request.header.Authorization,context.httpMethod,context.resourcePath');
  expect(env).toMatchObject({ SKAFU_TOKEN_USE: 'access' });
});

describe('RBAC matrix: every route x every group x every token case', () => {
  const userSets: Array<[string, string[]]> = [
    ['Admin', ['Admin']],
    ['Developer', ['Developer']],
    ['Viewer', ['Viewer']],
    ['no group', []],
    ['Viewer+Developer', ['Viewer', 'Developer']],
    ['unknown group', ['Intern']],
  ];
  const badTokens: Array<[string, () => Promise<Record<string, string>>]> = [
    ['missing', async () => ({})],
    ['not bearer', async () => ({ Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })],
    ['malformed', async () => ({ Authorization: 'Bearer not.a-jwt' })],
    ['expired', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { expiresInSeconds: -60 })}` })],
    ['not yet valid', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { notBeforeSeconds: 600 })}` })],
    ['wrong issuer', async () => ({ Authorization: `Bearer ${await issuer.mint({ ...userClaims('u', ['Admin']), iss: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other' })}` })],
    ['wrong audience (client)', async () => ({ Authorization: `Bearer ${await issuer.mint({ ...userClaims('u', ['Admin']), client_id: 'someoneelse' })}` })],
    ['id token where access is required', async () => ({ Authorization: `Bearer ${await issuer.mint({ ...userClaims('u', ['Admin']), token_use: 'id', aud: CLIENT_ID })}` })],
    ['forged (signed by another key, same kid)', async () => {
      const forger = await createIssuer('test-key-1');
      return { Authorization: `Bearer ${await forger.mint(userClaims('u', ['Admin']))}` };
    }],
    ['tampered payload', async () => {
      const token = await issuer.mint(userClaims('u', ['Viewer']));
      const [h, , s] = token.split('.');
      const payload = Buffer.from(JSON.stringify({ ...userClaims('u', ['Admin']), iss: ISSUER, client_id: CLIENT_ID, token_use: 'access', exp: 9999999999 })).toString('base64url');
      return { Authorization: `Bearer ${h}.${payload}.${s}` };
    }],
    ['unknown key id', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { kid: 'nope' })}` })],
  ];

  for (const [method, path, allowed] of ROUTES) {
    const resource = `/api/v1/${path}`;
    describe(`${method} ${resource} (allowed: ${allowed.join(', ')})`, () => {
      test.each(userSets)('valid token, %s', async (_name, groups) => {
        const token = await issuer.mint(userClaims(`user-${groups.join('-') || 'none'}`, groups));
        const { status: code, result } = await status(method, resource, { 'authorization': `Bearer ${token}`, 'X-Correlation-Id': 'corr-42' });
        const expected = groups.some((g) => allowed.includes(g)) ? 200 : 403;
        expect(code).toBe(expected);
        expect(result!.policyDocument.Statement).toEqual([
          { Action: 'execute-api:Invoke', Effect: expected === 200 ? 'Allow' : 'Deny', Resource: event(method, resource, {}).methodArn },
        ]);
        expect(result!.context).toMatchObject({ userId: `user-${groups.join('-') || 'none'}`, groups: groups.join(','), correlationId: 'corr-42' });
      });
      test.each(badTokens)('refused with 401: %s token', async (_name, headers) => {
        expect((await status(method, resource, await headers())).status).toBe(401);
      });
    });
  }

  test('a route that is not declared is denied (403), even to Admin', async () => {
    const token = await issuer.mint(userClaims('admin', ['Admin']));
    const { status: code, result } = await status('PATCH', '/api/v1/projects', { Authorization: `Bearer ${token}` });
    expect(code).toBe(403);
    expect(result!.context!.reason).toBe('route not declared');
  });

  test('the correlation id is generated when absent or malformed', async () => {
    const token = await issuer.mint(userClaims('u', ['Admin']));
    const generated = await status('GET', '/api/v1/projects', { 'Authorization': `Bearer ${token}`, 'x-correlation-id': 'bad id with spaces' });
    expect(generated.result!.context!.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('authorizer caching never leaks a decision to another route', () => {
  /** API Gateway's cache, keyed by the values of the authorizer's identity sources (taken from the template). */
  function cachingGateway(sources: string) {
    const cache = new Map<string, APIGatewayAuthorizerResult>();
    const keyOf = (e: APIGatewayRequestAuthorizerEvent) =>
      sources
        .split(',')
        .map((s) => {
          if (s.startsWith('method.request.header.')) return e.headers?.[s.slice('method.request.header.'.length)];
          if (s === 'context.httpMethod') return e.httpMethod;
          if (s === 'context.resourcePath') return e.resource;
          throw new Error(`unknown identity source ${s}`);
        })
        .join('|');
    return async (method: string, resource: string, headers: Record<string, string>) => {
      const e = event(method, resource, headers);
      const key = keyOf(e);
      const result = cache.get(key) ?? (await authorize(e));
      cache.set(key, result);
      // API Gateway then evaluates the (possibly cached) policy against the ARN actually called.
      const statement = result.policyDocument.Statement[0] as { Effect: string; Resource: string };
      const matches = statement.Resource === e.methodArn;
      return statement.Effect === 'Allow' && matches ? 200 : 403;
    };
  }

  test('with the synthesized identity sources: Viewer reads, then is refused a write on another route', async () => {
    const gateway = cachingGateway(identitySource);
    const viewer = { Authorization: `Bearer ${await issuer.mint(userClaims('v', ['Viewer']))}` };
    expect(await gateway('GET', '/api/v1/observability/metrics', viewer)).toBe(200);
    expect(await gateway('POST', '/api/v1/observability/metrics', viewer)).toBe(403);
    expect(await gateway('GET', '/api/v1/projects', viewer)).toBe(200);
    expect(await gateway('DELETE', '/api/v1/projects/{projectId}', viewer)).toBe(403);
  });

  test('the policy names exactly the called method ARN, so even a token-only cache key could not widen access', async () => {
    const tokenOnly = cachingGateway('method.request.header.Authorization');
    const viewer = { Authorization: `Bearer ${await issuer.mint(userClaims('v2', ['Viewer']))}` };
    expect(await tokenOnly('GET', '/api/v1/observability/metrics', viewer)).toBe(200);
    expect(await tokenOnly('POST', '/api/v1/observability/metrics', viewer)).toBe(403);
  });
});

describe('configuration from the environment, and JWKS fetched over HTTP (the local-emulation override)', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(issuer.jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address() as { port: number };
    url = `http://127.0.0.1:${address.port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('verifies against the served JWKS', async () => {
    const config = authorizerConfigFromEnvironment({
      SKAFU_USER_POOL_ID: USER_POOL_ID,
      SKAFU_USER_POOL_CLIENT_ID: CLIENT_ID,
      SKAFU_ROUTES: env.SKAFU_ROUTES as string,
      SKAFU_JWKS_URI_OVERRIDE: url,
    });
    const fromEnv = createAuthorizer({ config, tools: powertools('test') });
    const token = await issuer.mint(userClaims('d', ['Developer']));
    const result = await fromEnv(event('POST', '/api/v1/observability/metrics', { Authorization: `Bearer ${token}` }));
    expect((result.policyDocument.Statement[0] as { Effect: string }).Effect).toBe('Allow');
  });

  test('refuses to start without its configuration', () => {
    expect(() => authorizerConfigFromEnvironment({})).toThrow(/SKAFU_USER_POOL_ID, SKAFU_USER_POOL_CLIENT_ID, SKAFU_ROUTES not set/);
  });
});
