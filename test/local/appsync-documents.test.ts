/**
 * Skafu Local's AppSync keeps each document text parsed and validated (appsync.ts, checked()): the same text sent
 * again with other variables, another operation name, or after an invalid document, answers exactly as if it
 * were parsed for the first time.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AppSync, type AppSyncIdentity, type AppSyncResolverConfig } from '../../local/src/appsync';

const SDL = 'schema { query: Query, mutation: Mutation }\ntype Out { n: Int, s: String }\ntype Query { echo(x: Int): Out }\ntype Mutation { set(x: Int!): Out }\n';
const who: AppSyncIdentity = { kind: 'cognito', sub: 'u', username: 'u', groups: [], claims: {}, issuer: 'local' };
const client = { send: async () => ({}) } as unknown as DynamoDBClient;
const resolvers: AppSyncResolverConfig[] = [
  { typeName: 'Query', fieldName: 'echo', requestTemplate: '{"version": "2018-05-29", "payload": {"n": $util.toJson($ctx.args.x)}}', responseTemplate: '$util.toJson($ctx.result)' },
  { typeName: 'Mutation', fieldName: 'set', requestTemplate: '{"version": "2018-05-29", "payload": {"n": $ctx.args.x, "s": "set"}}', responseTemplate: '$util.toJson($ctx.result)' },
];

test('the same document text with new variables each time answers with each request\'s own variables', async () => {
  const appsync = new AppSync({ sdl: SDL, resolvers, client });
  const query = 'query Q($x: Int) { echo(x: $x) { n } }';
  for (const x of [1, 2, -7, 0]) expect(await appsync.execute({ query, variables: { x } }, who)).toEqual({ data: { echo: { n: x } } });
  // A variable of the wrong type is still refused, request by request (variables are not part of what is kept).
  expect((await appsync.execute({ query, variables: { x: 'nine' } }, who)).errors?.[0].message).toMatch(/Int cannot represent/);
  expect(await appsync.execute({ query, variables: { x: 3 } }, who)).toEqual({ data: { echo: { n: 3 } } });
});

test('a document with two operations: each request picks its own by operationName; none named is refused every time', async () => {
  const appsync = new AppSync({ sdl: SDL, resolvers, client });
  const query = 'query A { echo(x: 1) { n } }\nmutation B { set(x: 2) { n s } }';
  expect(await appsync.execute({ query, operationName: 'A' }, who)).toEqual({ data: { echo: { n: 1 } } });
  expect(await appsync.execute({ query, operationName: 'B' }, who)).toEqual({ data: { set: { n: 2, s: 'set' } } });
  for (let i = 0; i < 2; i++) {
    expect((await appsync.execute({ query }, who)).errors?.[0]).toMatchObject({ errorType: 'ValidationError' });
    expect((await appsync.execute({ query, operationName: 'C' }, who)).errors?.[0]).toMatchObject({ errorType: 'ValidationError' });
  }
});

test('an invalid or malformed document is refused the same way every time it is sent; a non-string query is refused', async () => {
  const appsync = new AppSync({ sdl: SDL, resolvers, client });
  for (let i = 0; i < 3; i++) {
    expect(await appsync.execute({ query: '{ nope }' }, who)).toEqual({ errors: [expect.objectContaining({ errorType: 'ValidationError', message: expect.stringMatching(/nope/) })] });
    expect(await appsync.execute({ query: '{ echo(' }, who)).toEqual({ errors: [expect.objectContaining({ errorType: 'MalformedHttpRequestException' })] });
  }
  expect(await appsync.execute({ query: 42 as unknown as string }, who)).toEqual({ errors: [expect.objectContaining({ errorType: 'MalformedHttpRequestException' })] });
  // Prototype-named texts are ordinary keys.
  for (const query of ['__proto__', 'constructor']) {
    expect((await appsync.execute({ query }, who)).errors?.[0]).toMatchObject({ errorType: 'MalformedHttpRequestException' });
  }
});

test('many distinct documents: the oldest are forgotten, and any of them still answers correctly when sent again', async () => {
  const appsync = new AppSync({ sdl: SDL, resolvers, client });
  const doc = (i: number) => `query Q${i} { echo(x: ${i}) { n } }`;
  for (let i = 0; i < 600; i++) expect(await appsync.execute({ query: doc(i) }, who)).toEqual({ data: { echo: { n: i } } });
  const kept = (appsync as unknown as { documents: Map<string, unknown> }).documents;
  expect(kept.size).toBeLessThanOrEqual(256);
  for (const i of [0, 300, 599]) expect(await appsync.execute({ query: doc(i) }, who)).toEqual({ data: { echo: { n: i } } });
  // A long text (a query padded with 100 KB of comment) is answered, and not kept.
  const long = `# ${'x'.repeat(100_000)}\nquery L { echo(x: 7) { n } }`;
  for (let i = 0; i < 2; i++) expect(await appsync.execute({ query: long }, who)).toEqual({ data: { echo: { n: 7 } } });
  expect(kept.has(long)).toBe(false);
  // What an invalid text answers is a copy: changing it does not change the next answer.
  const first = await appsync.execute({ query: '{ nope }' }, who);
  (first.errors![0] as { message: string }).message = 'changed by a caller';
  expect((await appsync.execute({ query: '{ nope }' }, who)).errors![0].message).toMatch(/nope/);
});
