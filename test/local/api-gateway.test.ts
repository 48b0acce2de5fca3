/**
 * The API Gateway module against a template written like CDK writes it (a REST API with a stage, a REQUEST
 * authorizer, Lambda proxy methods, a CORS MOCK method, a literal resource next to a {param} one), with real
 * handler files in worker threads: the stage prefix, resource matching, malformed paths, the authorizer's
 * methodArn and policy, MOCK integrations, crashes reported with the correlation id, aborted uploads.
 */
import { request } from 'node:http';
import * as path from 'node:path';
import { errorEntries, loadAssembly } from './support/assembly';
import { ApiGateway, matchRoute } from '../../local/src/api-gateway';
import { policyAllows } from '../../local/src/authorizer-cache';
import { LambdaHost } from '../../local/src/lambda-host';

const api = 'Api';
const resource = (id: string, parent: unknown, part: string) => ({ [id]: { Type: 'AWS::ApiGateway::Resource', Properties: { RestApiId: { Ref: api }, ParentId: parent, PathPart: part } } });
const uri = (fn: string) => ({ 'Fn::Join': ['', ['arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/', { 'Fn::GetAtt': [fn, 'Arn'] }, '/invocations']] });
const method = (id: string, res: string, verb: string, fn: string, auth = true) => ({
  [id]: {
    Type: 'AWS::ApiGateway::Method',
    Properties: { RestApiId: { Ref: api }, ResourceId: { Ref: res }, HttpMethod: verb, AuthorizationType: auth ? 'CUSTOM' : 'NONE', AuthorizerId: auth ? { Ref: 'Auth' } : undefined, Integration: { Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST', Uri: uri(fn) } },
  },
});
const fn = (id: string, handler: string) => ({ [id]: { Type: 'AWS::Lambda::Function', Properties: { Code: { S3Key: 'abc.zip' }, Handler: `index.${handler}`, Timeout: 5 } } });

const HANDLERS = `
exports.authorize = async (event) => {
  const token = event.headers.authorization;
  if (token === 'crash') throw new TypeError('authorizer bug');
  if (token !== 'good' && token !== 'narrow') throw new Error('Unauthorized');
  const resource = token === 'narrow' ? event.methodArn.replace(/\\/[^/]+$/, '/other') : event.methodArn;
  return { principalId: 'u1', policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: resource }] }, context: { userId: 'u1', seenArn: event.methodArn } };
};
exports.echo = async (event) => ({ statusCode: 200, headers: { 'x-handler': 'echo' }, body: JSON.stringify({ resource: event.resource, path: event.path, params: event.pathParameters, stage: event.requestContext.stage, authorizer: event.requestContext.authorizer, body: event.body }) });
exports.crash = async (event) => {
  if (event.queryStringParameters && event.queryStringParameters.malformed) return { statusCode: 200, body: { not: 'a string' } };
  throw new RangeError('order total overflow');
};
`;

const template = {
  [api]: { Type: 'AWS::ApiGateway::RestApi', Properties: { Name: 'shop' } },
  Stage: { Type: 'AWS::ApiGateway::Stage', Properties: { RestApiId: { Ref: api }, StageName: 'prod', DeploymentId: 'x' } },
  ...resource('Items', { 'Fn::GetAtt': [api, 'RootResourceId'] }, 'items'),
  ...resource('Item', { Ref: 'Items' }, '{itemId}'),
  ...resource('Special', { Ref: 'Items' }, 'special'),
  ...resource('Files', { 'Fn::GetAtt': [api, 'RootResourceId'] }, 'files'),
  ...resource('Proxy', { Ref: 'Files' }, '{proxy+}'),
  ...resource('Crash', { 'Fn::GetAtt': [api, 'RootResourceId'] }, 'crash'),
  ...fn('AuthFn', 'authorize'),
  ...fn('EchoFn', 'echo'),
  ...fn('CrashFn', 'crash'),
  // TTL 0: caching off (valid on AWS), so that each request here reaches the authorizer with its own methodArn; the
  // cache itself is tested in authorizer-cache.test.ts and end to end in skafu-local.e2e.test.ts.
  Auth: { Type: 'AWS::ApiGateway::Authorizer', Properties: { RestApiId: { Ref: api }, Type: 'REQUEST', IdentitySource: 'method.request.header.Authorization', AuthorizerResultTtlInSeconds: 0, AuthorizerUri: uri('AuthFn') } },
  ...method('GetItem', 'Item', 'GET', 'EchoFn'),
  ...method('GetSpecial', 'Special', 'GET', 'EchoFn'),
  ...method('PostItems', 'Items', 'POST', 'EchoFn'),
  ...method('GetFile', 'Proxy', 'GET', 'EchoFn', false),
  ...method('PostCrash', 'Crash', 'POST', 'CrashFn', false),
  ItemsOptions: {
    Type: 'AWS::ApiGateway::Method',
    Properties: {
      RestApiId: { Ref: api },
      ResourceId: { Ref: 'Items' },
      HttpMethod: 'OPTIONS',
      AuthorizationType: 'NONE',
      Integration: {
        Type: 'MOCK',
        RequestTemplates: { 'application/json': '{ statusCode: 200 }' },
        IntegrationResponses: [{ StatusCode: '204', ResponseParameters: { 'method.response.header.Access-Control-Allow-Origin': "'https://shop.example'", 'method.response.header.Access-Control-Allow-Methods': "'GET,POST,OPTIONS'" } }],
      },
    },
  },
  Http: { Type: 'AWS::ApiGateway::Method', Properties: { RestApiId: { Ref: api }, ResourceId: { Ref: 'Special' }, HttpMethod: 'DELETE', AuthorizationType: 'NONE', Integration: { Type: 'HTTP_PROXY', Uri: 'https://example.com' } } },
};

const { assembly, resources, errors, dir } = loadAssembly({ Shop: template }, { 'asset.abc/index.js': HANDLERS });
const host = new LambdaHost({}, path.join(dir, 'logs'));
const gateway = new ApiGateway(host, errors);
beforeAll(async () => {
  for (const r of resources.filter((x) => x.type === 'AWS::Lambda::Function')) {
    host.register({ name: r.stack.physicalId(r.logicalId), arn: r.stack.arn(r.logicalId), resource: r.path, directory: assembly.assetDirectory(r.properties.Code), handler: r.properties.Handler, environment: {}, timeoutSeconds: 5, memorySize: 128, description: '' });
  }
  expect(await host.loadAll()).toEqual([]);
  gateway.configure(resources);
  await gateway.listen(0);
});
afterAll(async () => {
  await gateway.close();
  await host.stop();
});

const get = (url: string, headers: Record<string, string> = { authorization: 'good' }) => gateway.handle('GET', url, headers, '');
const json = (reply: { body: string }) => JSON.parse(reply.body);

test('the real stage name, or none, is accepted as a prefix; any other first segment is a missing resource', async () => {
  expect((await get('/prod/items/i-1')).statusCode).toBe(200);
  expect(json(await get('/prod/items/i-1'))).toMatchObject({ resource: '/items/{itemId}', path: '/items/i-1', params: { itemId: 'i-1' }, stage: 'prod' });
  expect((await get('/items/i-1')).statusCode).toBe(200);
  const wrong = await get('/not-a-stage/items/i-1');
  expect(wrong.statusCode).toBe(403);
  expect(json(wrong)).toEqual({ message: 'Missing Authentication Token' });
  expect(gateway.stages).toEqual(['prod']);
});

test('literal resources win over {param}, {proxy+} takes the rest; a method the resource lacks is a 403', async () => {
  expect(json(await get('/prod/items/special'))).toMatchObject({ resource: '/items/special', params: null });
  expect(json(await get('/prod/files/a/b%2Fc/d.txt', {}))).toMatchObject({ resource: '/files/{proxy+}', params: { proxy: 'a/b/c/d.txt' } });
  expect((await gateway.handle('PUT', '/prod/items/i-1', { authorization: 'good' }, '')).statusCode).toBe(403);
  expect(matchRoute(['items', '{id}'], ['items'])).toBeUndefined();
  expect(matchRoute(['items', '{id}'], ['items', '__proto__'])).toEqual({ id: '__proto__' });
});

test('a malformed percent-encoding is a 400 naming the problem, never a 500', async () => {
  const reply = await get('/prod/items/%E0%A4%A');
  expect(reply.statusCode).toBe(400);
  expect(json(reply).message).toBe('Malformed percent-encoding in the path "/prod/items/%E0%A4%A"');
});

test('the authorizer gets the concrete methodArn, its policy decides, its failures are 401 or 500 (reported)', async () => {
  const ok = json(await get('/prod/items/i-7?x=1'));
  expect(ok.authorizer).toEqual({ userId: 'u1', principalId: 'u1', seenArn: 'arn:aws:execute-api:us-east-1:000000000000:Shop-Api/prod/GET/items/i-7' });
  expect((await get('/prod/items/i-7', { authorization: 'narrow' })).statusCode).toBe(403);
  expect((await get('/prod/items/i-7', { authorization: 'forged' })).statusCode).toBe(401);
  expect((await get('/prod/items/i-7', {})).statusCode).toBe(401);
  const crashed = await get('/prod/items/i-7', { 'authorization': 'crash', 'x-correlation-id': 'auth-crash-1' });
  expect(crashed.statusCode).toBe(500);
  expect(errorEntries(errors)).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'AuthorizerCrash', correlationId: 'auth-crash-1', message: 'TypeError: authorizer bug', resource: 'Shop/AuthFn' })]));
});

test('policy evaluation: wildcards, lists, an explicit Deny wins, a statement without Action allows nothing', () => {
  const arn = 'arn:aws:execute-api:us-east-1:1:api/prod/GET/items/i-7';
  expect(policyAllows({ policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:us-east-1:1:api/prod/*/*' }] } }, arn)).toBe(true);
  expect(policyAllows({ policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: ['x', 'arn:aws:execute-api:us-east-1:1:api/prod/GET/items/?-7'] }] } }, arn)).toBe(true);
  expect(policyAllows({ policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: '*' }, { Action: 'execute-api:*', Effect: 'Deny', Resource: 'arn:aws:execute-api:*:*:api/*/GET/items/*' }] } }, arn)).toBe(false);
  expect(policyAllows({ policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:us-east-1:1:api/prod/POST/*' }] } }, arn)).toBe(false);
  expect(policyAllows({ policyDocument: { Statement: [{ Effect: 'Allow', Resource: '*' }] } }, arn)).toBe(false);
});

test('a MOCK integration (CORS preflight) answers from the template; what is not emulated is named', async () => {
  const preflight = await gateway.handle('OPTIONS', '/prod/items', { origin: 'https://shop.example' }, '');
  expect(preflight).toEqual({ statusCode: 204, body: '', headers: { 'Access-Control-Allow-Origin': 'https://shop.example', 'Access-Control-Allow-Methods': 'GET,POST,OPTIONS' } });
  expect(gateway.unsupported).toEqual([expect.objectContaining({ type: 'AWS::ApiGateway::Method (HTTP_PROXY integration)', why: expect.stringContaining('Shop/Http (DELETE /items/special)') })]);
  expect((await gateway.handle('DELETE', '/prod/items/special', {}, '')).statusCode).toBe(500);
});

test('a handler crash is a 502 and is reported with the function, its resource and the correlation id', async () => {
  const reply = await gateway.handle('POST', '/prod/crash', { 'x-correlation-id': 'crash-42' }, '{}');
  expect(reply.statusCode).toBe(502);
  expect(json(reply)).toEqual({ message: 'Internal server error' });
  expect(errorEntries(errors)).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'HandlerCrash', resource: 'Shop/CrashFn', function: 'Shop-CrashFn', correlationId: 'crash-42', message: 'RangeError: order total overflow', request: 'POST /crash' })]));
});

test('a proxy response that is not one (a body that is not a string) is a 502, reported', async () => {
  const reply = await gateway.handle('POST', '/prod/crash?malformed=1', { 'x-correlation-id': 'malformed-1' }, '{}');
  expect(reply.statusCode).toBe(502);
  expect(errorEntries(errors)).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'MalformedProxyResponse', correlationId: 'malformed-1' })]));
});

test('a client that aborts mid-body: no unhandled rejection, the server keeps serving', async () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    const { port } = new URL(gateway.url);
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/prod/items', headers: { 'authorization': 'good', 'content-length': '100000' } });
      req.on('error', () => resolve());
      req.write('{"partial":');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    await new Promise((r) => setTimeout(r, 200));
    const after = await fetch(`${gateway.url}/prod/items`, { method: 'POST', headers: { authorization: 'good' }, body: '{"whole":true}' });
    expect(after.status).toBe(200);
    expect(await after.json()).toMatchObject({ body: '{"whole":true}' });
    expect(rejections).toEqual([]);
  } finally {
    process.off('unhandledRejection', onRejection);
  }
});
