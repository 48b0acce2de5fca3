/**
 * The RBAC authorizer with real signatures: an RS256 key pair made here, its JWKS loaded into aws-jwt-verify,
 * Cognito-shaped access tokens minted for users in each group. The route table is the one the SkafuApi
 * construct synthesizes (read from the authorizer's code asset in the assembly), and every request goes
 * through a model of API Gateway's authorizer cache (test/support/api-gateway.ts) with the synthesized identity
 * sources and TTL: concrete method ARNs, a different path value on each request.
 */
import { createServer, type Server } from 'node:http';
import * as os from 'node:os';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { exportSPKI, importJWK, SignJWT, UnsecuredJWT } from 'jose';
import { RbacUserPool, SkafuApi } from '../../src';
import { createAuthorizer, authorizerConfigFromEnvironment } from '../../src/api/authorizer.lambda';
import { powertools } from '../../src/internal/powertools';
import { loadRouteTable } from '../../src/internal/spec-loader';
import { ApiGatewayModel, concretePath, MODEL_ARN } from '../support/api-gateway';
import { CLIENT_ID, createIssuer, ISSUER, USER_POOL_ID, userClaims, type TestIssuer } from '../support/jwt';
import { assetDirectory, outdirOf, shippedRoutes } from '../support/shipped';

const ROUTES: Array<[string, string, string[]]> = [
  ['POST', 'observability/metrics', ['Admin', 'Developer']],
  ['GET', 'observability/metrics', ['Admin', 'Developer', 'Viewer']],
  ['POST', 'observability/alerts/{alertId}/trigger', ['Admin', 'Developer']],
  ['GET', 'projects/{projectId}', ['Admin', 'Developer', 'Viewer']],
  ['PUT', 'projects/{projectId}', ['Admin', 'Developer']],
  ['DELETE', 'projects/{projectId}', ['Admin']],
  ['GET', 'projects/{projectId}/history', ['Admin']],
  ['GET', 'projects/search', ['Admin']],
  ['GET', 'projects/{projectId}/members/{memberId}', ['Admin', 'Developer']],
  ['GET', 'projects', ['Admin', 'Developer', 'Viewer']],
];

/** The synthesized template's authorizer: its environment (route table) and identity sources. */
function synthesizedAuthorizer() {
  const stack = new Stack(new App(), 'Api', { env: { account: '111111111111', region: 'us-east-1' } });
  const users = new RbacUserPool(stack, 'Users');
  const api = new SkafuApi(stack, 'Api', { userPool: users.userPool, userPoolClient: users.userPoolClient, groupNames: users.groupNames });
  for (const [method, path, groups] of ROUTES) api.addRoute(method, path, new apigw.MockIntegration(), { allowedGroups: groups });
  const template = Template.fromStack(stack);
  const [fn] = Object.values(template.findResources('AWS::Lambda::Function')).filter((f) => f.Properties.Environment?.Variables?.SKAFU_USER_POOL_ID);
  const [authorizer] = Object.values(template.findResources('AWS::ApiGateway::Authorizer'));
  return {
    env: fn.Properties.Environment.Variables as Record<string, unknown>,
    // The route table ships in the authorizer's code asset, not in its environment.
    routes: shippedRoutes(outdirOf(stack), fn),
    directory: assetDirectory(outdirOf(stack), fn),
    identitySource: authorizer.Properties.IdentitySource as string,
    ttlSeconds: authorizer.Properties.AuthorizerResultTtlInSeconds as number,
  };
}

const { env, routes, directory, identitySource, ttlSeconds } = synthesizedAuthorizer();
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

/** Values for every path parameter of a template. */
function valuesFor(resource: string, value: string): Record<string, string> {
  return Object.fromEntries([...resource.matchAll(/\{([^}]+)\}/g)].map(([, name], i) => [name, `${value}${i === 0 ? '' : `-${i}`}`]));
}

function event(method: string, resource: string, headers: Record<string, string>, value = 'x1'): APIGatewayRequestAuthorizerEvent {
  const path = concretePath(resource, valuesFor(resource, value));
  return {
    type: 'REQUEST',
    methodArn: `arn:aws:execute-api:us-east-1:111111111111:abc123/development/${method}${path}`,
    resource,
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: {},
    pathParameters: valuesFor(resource, value),
    queryStringParameters: {},
    multiValueQueryStringParameters: {},
    stageVariables: {},
    requestContext: { httpMethod: method, resourcePath: resource, requestId: 'req-1' } as never,
  };
}

/** API Gateway as the template configures it: the synthesized identity sources and TTL. */
function gateway(options: { identitySource?: string; now?: () => number; authorize?: typeof authorize } = {}) {
  return new ApiGatewayModel({
    identitySource: options.identitySource ?? identitySource,
    ttlSeconds,
    authorize: options.authorize ?? ((e) => authorize(e)),
    now: options.now,
  });
}

/** What API Gateway answers for one request (a fresh cache): 401, 403 or 200. */
type Outcome = { status: number; result?: APIGatewayAuthorizerResult };
async function status(method: string, resource: string, headers: Record<string, string>, value = 'x1'): Promise<Outcome> {
  return gateway().call(method, resource, valuesFor(resource, value), headers);
}

const ARN_PREFIX = `arn:aws:execute-api:${MODEL_ARN.region}:${MODEL_ARN.account}:${MODEL_ARN.apiId}/${MODEL_ARN.stage}`;

test('the construct synthesizes the route table and a cache key of (token, method, route)', () => {
  expect(routes).toEqual(Object.fromEntries(ROUTES.map(([m, p, g]) => [`${m} /api/v1/${p}`, g])));
  expect(identitySource).toBe('method.request.header.Authorization,context.httpMethod,context.resourcePath');
  expect(ttlSeconds).toBe(300);
  expect(env).toMatchObject({ SKAFU_TOKEN_USE: 'access' });
  expect(env.SKAFU_ROUTES).toBeUndefined();
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
    // aws-jwt-verify checks exp only when present: a validly signed token without it must not live forever.
    ['validly signed without exp', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { omitExp: true })}` })],
    ['validly signed without iat', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { omitIat: true })}` })],
    ['lifetime over a day', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { expiresInSeconds: 2 * 86400 })}` })],
    ['issued in the future', async () => ({ Authorization: `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { issuedAtSeconds: 3600, expiresInSeconds: 7200 })}` })],
  ];

  for (const [method, path, allowed] of ROUTES) {
    const resource = `/api/v1/${path}`;
    describe(`${method} ${resource} (allowed: ${allowed.join(', ')})`, () => {
      test.each(userSets)('valid token, %s: the same token on two path values, both orders, through the cache', async (_name, groups) => {
        const token = await issuer.mint(userClaims(`user-${groups.join('-') || 'none'}`, groups));
        const headers = { 'authorization': `Bearer ${token}`, 'X-Correlation-Id': 'corr-42' };
        const expected = groups.some((g) => allowed.includes(g)) ? 200 : 403;
        for (const order of [['p1', 'p2'], ['p2', 'p1']]) {
          const api = gateway();
          const first = await api.call(method, resource, valuesFor(resource, order[0]), headers);
          const second = await api.call(method, resource, valuesFor(resource, order[1]), headers);
          expect([first.status, second.status]).toEqual([expected, expected]);
          // The second request was decided by the cached policy, evaluated against its own concrete ARN.
          expect([first.invoked, second.invoked, api.invocations]).toEqual([true, false, 1]);
          expect(second.methodArn).toBe(`${ARN_PREFIX}/${method}${concretePath(resource, valuesFor(resource, order[1]))}`);
        }
        const { result } = await status(method, resource, headers);
        const statements = result!.policyDocument.Statement as Array<{ Effect: string; Resource: string }>;
        expect(statements[0]).toEqual({ Action: 'execute-api:Invoke', Effect: expected === 200 ? 'Allow' : 'Deny', Resource: `${ARN_PREFIX}/${method}${resource.replace(/\{[^}]+\}/g, '*')}` });
        expect(statements.slice(1).every((st) => st.Effect === 'Deny')).toBe(true);
        expect(result!.context).toMatchObject({ userId: `user-${groups.join('-') || 'none'}`, groups: groups.join(','), reason: expected === 200 ? '' : `requires one of: ${allowed.join(', ')}` });
        expect(result!.context).not.toHaveProperty('correlationId');
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

  test('prototype keys as routes are not declared routes', async () => {
    const token = await issuer.mint(userClaims('admin', ['Admin']));
    for (const resource of ['/__proto__', '/constructor', '/api/v1/__proto__/{x}']) {
      const { status: code, result } = await status('GET', resource, { Authorization: `Bearer ${token}` });
      expect(code).toBe(403);
      expect(result!.context!.reason).toBe('route not declared');
    }
  });
});

describe('the policy fits API Gateway\'s cache and never widens a decision to another route', () => {
  test('the model sees the defect of a policy naming the concrete ARN: p1 allowed, then p2 refused from the cache', async () => {
    const concrete = async (e: APIGatewayRequestAuthorizerEvent) => {
      const result = await authorize(e);
      return { ...result, policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow' as const, Resource: e.methodArn }] } };
    };
    const api = gateway({ authorize: concrete });
    const headers = { Authorization: `Bearer ${await issuer.mint(userClaims('v', ['Viewer']))}` };
    expect((await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, headers)).status).toBe(200);
    expect((await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p2' }, headers)).status).toBe(403);
  });

  test('hostile path values (encoded slashes, wildcards, quotes) are decided like any other value', async () => {
    const api = gateway();
    const headers = { Authorization: `Bearer ${await issuer.mint(userClaims('d', ['Developer']))}` };
    for (const value of ['p1', 'a/b', '*', '?', '"quoted"', '€'.repeat(20), '..']) {
      expect((await api.call('PUT', '/api/v1/projects/{projectId}', { projectId: value }, headers)).status).toBe(200);
      expect((await api.call('DELETE', '/api/v1/projects/{projectId}', { projectId: value }, headers)).status).toBe(403);
    }
    expect(api.invocations).toBe(2);
  });

  test('with a cache keyed by the token alone, a cached Allow still opens neither deeper, more specific nor other-method routes', async () => {
    const tokenOnly = gateway({ identitySource: 'method.request.header.Authorization' });
    const viewer = { Authorization: `Bearer ${await issuer.mint(userClaims('v2', ['Viewer']))}` };
    expect((await tokenOnly.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(200);
    // Every later request reuses that one cached policy (the key is the token alone).
    expect((await tokenOnly.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p2' }, viewer)).status).toBe(200);
    expect((await tokenOnly.call('GET', '/api/v1/projects/{projectId}/history', { projectId: 'p1' }, viewer)).status).toBe(403);
    expect((await tokenOnly.call('GET', '/api/v1/projects/search', {}, viewer)).status).toBe(403);
    expect((await tokenOnly.call('GET', '/api/v1/projects/{projectId}/members/{memberId}', { projectId: 'p1', memberId: 'm1' }, viewer)).status).toBe(403);
    expect((await tokenOnly.call('PUT', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(403);
    expect((await tokenOnly.call('DELETE', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(403);
    expect((await tokenOnly.call('POST', '/api/v1/observability/metrics', {}, viewer)).status).toBe(403);
    expect(tokenOnly.invocations).toBe(1);
  });

  test('with the synthesized key, each route gets its own decision: Viewer reads, then is refused writes', async () => {
    const api = gateway();
    const viewer = { Authorization: `Bearer ${await issuer.mint(userClaims('v', ['Viewer']))}` };
    expect((await api.call('GET', '/api/v1/observability/metrics', {}, viewer)).status).toBe(200);
    expect((await api.call('POST', '/api/v1/observability/metrics', {}, viewer)).status).toBe(403);
    expect((await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(200);
    expect((await api.call('DELETE', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(403);
    expect((await api.call('GET', '/api/v1/projects/search', {}, viewer)).status).toBe(403);
    expect(api.invocations).toBe(5);
  });

  test('a cached decision lasts the TTL, then the authorizer is asked again; a missing token never reaches it', async () => {
    let now = 1_000_000;
    const api = gateway({ now: () => now });
    const admin = { Authorization: `Bearer ${await issuer.mint(userClaims('a', ['Admin']))}` };
    await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, admin);
    now += (ttlSeconds - 1) * 1000;
    await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p2' }, admin);
    expect(api.invocations).toBe(1);
    now += 2000;
    expect((await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p3' }, admin)).status).toBe(200);
    expect(api.invocations).toBe(2);
    expect(await api.call('GET', '/api/v1/projects', {}, { Authorization: '' })).toMatchObject({ status: 401, invoked: false });
  });

  test('the 403 reason is JSON-string safe whatever the group names hold', async () => {
    const weird = 'Ad"min\\\n';
    const weirdRoutes = { 'GET /api/v1/x': [weird] };
    const config = { userPoolId: USER_POOL_ID, clientId: CLIENT_ID, tokenUse: 'access' as const, routes: weirdRoutes };
    const authorizeWeird = createAuthorizer({ config, tools: powertools('test'), jwks: issuer.jwks });
    const token = await issuer.mint(userClaims('u', ['Viewer']));
    const result = await authorizeWeird(event('GET', '/api/v1/x', { Authorization: `Bearer ${token}` }));
    expect(JSON.parse(`"${String(result.context!.reason)}"`)).toBe(`requires one of: ${weird}`);
  });
});

describe('configuration from the environment, and JWKS fetched over HTTP (the local-emulation override)', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((_req, res) => {
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
      SKAFU_JWKS_URI_OVERRIDE: url,
    }, () => loadRouteTable(directory));
    const fromEnv = createAuthorizer({ config, tools: powertools('test') });
    const token = await issuer.mint(userClaims('d', ['Developer']));
    const result = await fromEnv(event('POST', '/api/v1/observability/metrics', { Authorization: `Bearer ${token}` }));
    expect((result.policyDocument.Statement[0] as { Effect: string }).Effect).toBe('Allow');
  });

  test('refuses to start without its configuration', () => {
    expect(() => authorizerConfigFromEnvironment({})).toThrow(/SKAFU_USER_POOL_ID, SKAFU_USER_POOL_CLIENT_ID not set/);
    // Without its route table file (an asset that is not the synthesized one), it does not start either.
    const names = { SKAFU_USER_POOL_ID: USER_POOL_ID, SKAFU_USER_POOL_CLIENT_ID: CLIENT_ID };
    expect(() => authorizerConfigFromEnvironment(names, () => loadRouteTable(os.tmpdir()))).toThrow(
      /declarations are missing: .*skafu-routes\.json/,
    );
  });
});

describe('review 11: forged algorithms and odd claims', () => {
  const claims = () => ({ ...userClaims('mallory', ['Admin']), token_use: 'access', client_id: CLIENT_ID, iss: ISSUER });

  test('alg none, HS256 keyed with the public key, and a token signed for another pool answer 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const none = new UnsecuredJWT(claims()).setIssuedAt(now).setExpirationTime(now + 600).encode();
    // "Bearer x.y." has an empty signature: a token the header regex or the verifier must refuse.
    const publicPem = await exportSPKI((await importJWK(issuer.jwks.keys[0], 'RS256')) as Parameters<typeof exportSPKI>[0]);
    const hs256 = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'test-key-1' }).setIssuedAt(now).setExpirationTime(now + 600).sign(new TextEncoder().encode(publicPem));
    const otherPool = await (await createIssuer('test-key-1')).mint({ ...userClaims('mallory', ['Admin']), iss: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other' });
    for (const [name, token] of [['alg none', none], ['alg none with a fake signature', `${none}c2ln`], ['HS256 with the public key', hs256], ['another pool', otherPool]] as const) {
      const api = gateway();
      const outcome = await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, { Authorization: `Bearer ${token}` });
      expect([name, outcome.status]).toEqual([name, 401]);
    }
  });

  test('group claims named like Object\'s properties or shaped as a string grant nothing they do not name', async () => {
    for (const [groups, expected] of [
      [['__proto__', 'constructor', 'toString'], 403],
      ['Admin', 200], // a single group as a string (not what Cognito signs, but it names Admin)
      ['Viewer,Admin', 200],
      ['["Viewer"]', 403],
      [{ 0: 'Admin', length: 1 }, 403],
      [[1, null, { Admin: true }], 403],
    ] as const) {
      const token = await issuer.mint({ 'sub': 'u', 'username': 'u', 'cognito:groups': groups });
      const outcome = await gateway().call('DELETE', '/api/v1/projects/{projectId}', { projectId: 'p1' }, { Authorization: `Bearer ${token}` });
      expect([groups, outcome.status]).toEqual([groups, expected]);
    }
  });

  test('hostile path values on one route are all decided by its cached policy; the literal sibling keeps its own decision', async () => {
    const api = gateway();
    const viewer = { Authorization: `Bearer ${await issuer.mint(userClaims('v3', ['Viewer']))}` };
    expect((await api.call('GET', '/api/v1/projects/{projectId}', { projectId: 'p1' }, viewer)).status).toBe(200);
    // Same key (token, GET, the {projectId} route): every value is decided by the cached policy.
    for (const value of ['p1/history', 'p1/members/m1', 'x'.repeat(1200), 'ü', '%2F', '*', '?', '..']) {
      expect([value, (await api.call('GET', '/api/v1/projects/{projectId}', { projectId: value }, viewer)).status]).toEqual([value, 200]);
    }
    // The literal route beside it has its own key (and the Allow's explicit Deny names it anyway).
    expect((await api.call('GET', '/api/v1/projects/search', {}, viewer)).status).toBe(403);
    expect(api.invocations).toBe(2);
  });
});
