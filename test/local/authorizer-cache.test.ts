/** The pure pieces of API Gateway's authorizer that Skafu Local and the tests' gateway model share. */
import { arnMatches, AuthorizerCache, identityKey, methodArn, policyAllows } from '../../local/src/authorizer-cache';

const ARN = 'arn:aws:execute-api:us-east-1:111111111111:api/dev/GET/api/v1/projects/p1';

test('IAM-style resource matching: * is any run (also / and none), ? one character, everything else literal', () => {
  expect(arnMatches('arn:aws:execute-api:us-east-1:111111111111:api/dev/GET/api/v1/projects/*', ARN)).toBe(true);
  expect(arnMatches('arn:aws:execute-api:us-east-1:111111111111:api/dev/GET/api/v1/projects/*', `${ARN}/history`)).toBe(true);
  expect(arnMatches('arn:aws:execute-api:us-east-1:111111111111:api/dev/GET/api/v1/projects/p?', ARN)).toBe(true);
  expect(arnMatches('arn:aws:execute-api:us-east-1:111111111111:api/dev/GET/api/v1/projects/p?', `${ARN}1`)).toBe(false);
  expect(arnMatches('*', ARN)).toBe(true);
  expect(arnMatches('arn:aws:execute-api:us-east-1:111111111111:api/dev/POST/*', ARN)).toBe(false);
  expect(arnMatches(ARN, ARN)).toBe(true);
  expect(arnMatches(ARN, ARN.replace('p1', 'p2'))).toBe(false);
  expect(arnMatches(`${ARN}*`, ARN)).toBe(true);
  expect(arnMatches('a*b*c', 'aXXbYYc')).toBe(true);
  expect(arnMatches('a*b*c', 'aXXbYY')).toBe(false);
  // Regex metacharacters are literal.
  expect(arnMatches('arn.+', 'arn:x')).toBe(false);
});

test('policy evaluation: an explicit Deny wins, no matching Allow is a deny, the action must cover Invoke', () => {
  const allow = { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: ARN.replace('p1', '*') };
  expect(policyAllows({ policyDocument: { Statement: [allow] } }, ARN)).toBe(true);
  expect(policyAllows({ policyDocument: { Statement: [allow, { Action: 'execute-api:Invoke', Effect: 'Deny', Resource: `${ARN}` }] } }, ARN)).toBe(false);
  expect(policyAllows({ policyDocument: { Statement: [{ ...allow, Resource: [ARN.replace('p1', 'p2')] }] } }, ARN)).toBe(false);
  expect(policyAllows({ policyDocument: { Statement: [{ ...allow, Action: 's3:GetObject' }] } }, ARN)).toBe(false);
  expect(policyAllows({ policyDocument: { Statement: [{ ...allow, Action: ['execute-api:*'] }] } }, ARN)).toBe(true);
  expect(policyAllows({ policyDocument: { Statement: [] } }, ARN)).toBe(false);
});

test('the cache key is every identity source together; a missing or empty one means 401 without a call', () => {
  const sources = 'method.request.header.Authorization,context.httpMethod,context.resourcePath';
  const request = { method: 'GET', resourcePath: '/api/v1/projects/{projectId}', headers: { authorization: 'Bearer t' } };
  const key = identityKey(sources, request);
  expect(key).toBeDefined();
  expect(identityKey(sources, { ...request, method: 'PUT' })).not.toBe(key);
  expect(identityKey(sources, { ...request, resourcePath: '/api/v1/projects' })).not.toBe(key);
  expect(identityKey(sources, { ...request, headers: { AUTHORIZATION: 'Bearer t' } })).toBe(key);
  expect(identityKey(sources, { ...request, headers: {} })).toBeUndefined();
  expect(identityKey(sources, { ...request, headers: { Authorization: '' } })).toBeUndefined();
  // A prototype key is not a header.
  expect(identityKey('method.request.header.constructor', { ...request, headers: {} })).toBeUndefined();
  expect(() => identityKey('method.request.body.x', request)).toThrow(/not one API Gateway supports/);
});

test('the result cache keeps an entry for the TTL; TTL 0 caches nothing; errors are not cached', async () => {
  let now = 0;
  const cache = new AuthorizerCache(60, () => now);
  const result = { policyDocument: { Statement: [] } };
  let calls = 0;
  const authorize = async () => (calls++, result);
  expect((await cache.resolve('k', authorize)).cached).toBe(false);
  now = 59_999;
  expect((await cache.resolve('k', authorize)).cached).toBe(true);
  now = 60_000;
  expect((await cache.resolve('k', authorize)).cached).toBe(false);
  expect(calls).toBe(2);
  const none = new AuthorizerCache(0, () => now);
  await none.resolve('k', authorize);
  expect((await none.resolve('k', authorize)).cached).toBe(false);
  await expect(cache.resolve('e', async () => { throw new Error('Unauthorized'); })).rejects.toThrow('Unauthorized');
  expect(cache.get('e')).toBeUndefined();
});

test('methodArn carries the concrete path', () => {
  expect(methodArn({ region: 'r', account: 'a', apiId: 'api', stage: 'dev', method: 'get', path: '/api/v1/projects/p1' })).toBe('arn:aws:execute-api:r:a:api/dev/GET/api/v1/projects/p1');
});
