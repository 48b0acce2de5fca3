/**
 * The synthesized VTL resolvers, executed: the template's schema, resolvers and data sources run by the AppSync
 * emulation (local/src/appsync.ts) against the read-model tables created in DynamoDB Local from the same
 * template. Get, list, pagination (forged and misplaced tokens refused), validation, object-level rules, the RBAC
 * matrix over GraphQL with the REST matrix's users and tokens, and subscriptions fed by the change publisher
 * from the tables' real streams.
 */
import { DeleteItemCommand, PutItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { DOMAINS, graphqlFixture, type GraphqlFixture } from './support';
import type { AppSyncIdentity, GraphqlResponse } from '../../local/src/appsync';
import { AuthError, authenticate, type AppSyncAuthConfig } from '../../local/src/appsync-auth';
import { createChangePublisher, decodeModels } from '../../src/graphql/change-publisher.lambda';
import { CLIENT_ID, createIssuer, ISSUER, userClaims, type TestIssuer } from '../support/jwt';
import { readStream, localStreamsClient } from '../support/streams';
import { localClient } from '../support/tables';

let client: DynamoDBClient;
let fx: GraphqlFixture;
let issuer: TestIssuer;
let auth: AppSyncAuthConfig;

const user = (sub: string, groups: string[]): AppSyncIdentity => ({ kind: 'cognito', sub, username: sub, groups, claims: {}, issuer: ISSUER });
const IAM: AppSyncIdentity = { kind: 'iam', accessKeyId: 'local' };
const put = (table: string, item: Record<string, unknown>) => client.send(new PutItemCommand({ TableName: table, Item: marshall(item) }));
const run = (query: string, identity: AppSyncIdentity, variables?: Record<string, unknown>) => fx.appsync.execute({ query, variables }, identity);
const errorTypes = (r: GraphqlResponse) => (r.errors ?? []).map((e) => e.errorType);

beforeAll(async () => {
  client = localClient();
  fx = await graphqlFixture(client);
  issuer = await createIssuer();
  auth = { issuer: ISSUER, jwks: () => issuer.jwks as any, appIdClientRegex: `^${CLIENT_ID}$` };
  for (let i = 0; i < 7; i++) await put(fx.tables.alerts, { alertId: `alert-${i}`, name: `a${i}`, severity: i % 2 === 0 ? 'high' : 'low', threshold: i, triggerCount: 0 });
  for (let i = 0; i < 5; i++) await put(fx.tables.metrics, { name: 'cpu', collectedAt: `2026-01-0${i + 1}T00:00:00Z`, value: i * 10, unit: '%' });
  await put(fx.tables.metrics, { name: 'mem', collectedAt: '2026-01-01T00:00:00Z', value: 1, unit: 'MB' });
  for (const [id, owner] of [['s1', 'dev-1'], ['s2', 'dev-2'], ['s3', 'dev-1'], ['s4', 'viewer-1']]) await put(fx.tables.secrets, { secretId: id, label: `label-${id}`, ownerId: owner });
});

afterAll(() => client.destroy());

describe('get and list', () => {
  const admin = user('admin-1', ['Admin']);

  test('get answers the item with its typed fields, null when absent', async () => {
    const r = await run('{ getAlert(alertId: "alert-3") { alertId name severity threshold triggerCount lastValue } }', admin);
    expect(r).toEqual({ data: { getAlert: { alertId: 'alert-3', name: 'a3', severity: 'low', threshold: 3, triggerCount: 0, lastValue: null } } });
    expect(await run('query($id: String!) { getAlert(alertId: $id) { alertId } }', admin, { id: 'nope' })).toEqual({ data: { getAlert: null } });
  });

  test('an empty key answers ValidationError naming it; a missing one is a GraphQL validation error', async () => {
    const r = await run('{ getAlert(alertId: "") { alertId } }', admin);
    expect(r.errors).toEqual([expect.objectContaining({ errorType: 'ValidationError', message: "'alertId' is required", path: ['getAlert'] })]);
    expect(errorTypes(await run('{ getAlert { alertId } }', admin))).toEqual(['ValidationError']);
  });

  test('list pages through every item exactly once with nextToken; filters apply; the default page is the REST one', async () => {
    const seen: string[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const r: GraphqlResponse = await run('query($t: String) { listAlerts(limit: 3, nextToken: $t) { items { alertId } count nextToken } }', admin, { t: token });
      expect(r.errors).toBeUndefined();
      const page = (r.data as any).listAlerts;
      expect(page.count).toBe(page.items.length);
      expect(page.count).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((i: any) => i.alertId));
      token = page.nextToken;
      pages++;
    } while (token && pages < 10);
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `alert-${i}`));
    const high = await run('{ listAlerts(severity: "high") { items { alertId severity } count nextToken } }', admin);
    expect((high.data as any).listAlerts.items.map((i: any) => i.severity)).toEqual(['high', 'high', 'high', 'high']);
    expect((high.data as any).listAlerts.nextToken).toBeNull();
  });

  test('a partition with a sort-key range, newest first, paginated', async () => {
    const first = await run('{ queryMetrics(name: "cpu", from: "2026-01-02", to: "2026-01-05", limit: 2) { items { collectedAt value } nextToken } }', admin);
    const page1 = (first.data as any).queryMetrics;
    expect(page1.items.map((i: any) => i.collectedAt)).toEqual(['2026-01-04T00:00:00Z', '2026-01-03T00:00:00Z']);
    const second = await run('query($t: String) { queryMetrics(name: "cpu", from: "2026-01-02", to: "2026-01-05", limit: 2, nextToken: $t) { items { collectedAt } nextToken } }', admin, { t: page1.nextToken });
    expect((second.data as any).queryMetrics.items.map((i: any) => i.collectedAt)).toEqual(['2026-01-02T00:00:00Z']);
    const mem = await run('{ queryMetrics(name: "mem") { items { name value unit } } }', admin);
    expect((mem.data as any).queryMetrics.items).toEqual([{ name: 'mem', value: 1, unit: 'MB' }]);
  });

  test('limit outside 1..maxPageSize answers ValidationError, as REST answers 400', async () => {
    for (const limit of [0, -1, 101, 100000]) {
      const r = await run(`{ listAlerts(limit: ${limit}) { count } }`, admin);
      expect(r.errors).toEqual([expect.objectContaining({ errorType: 'ValidationError', message: 'limit must be an integer from 1 to 100' })]);
    }
    expect((await run('{ listAlerts(limit: 100) { count } }', admin)).errors).toBeUndefined();
  });

  test('forged, altered, misplaced and foreign nextTokens answer InvalidNextToken, never an item', async () => {
    const page = (await run('{ listAlerts(limit: 2) { nextToken } }', admin)).data as any;
    const token: string = page.listAlerts.nextToken;
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const projectsToken = ((await run('{ listSecrets(limit: 1) { nextToken } }', admin)).data as any).listSecrets.nextToken as string;
    const metricsToken = ((await run('{ queryMetrics(name: "cpu", limit: 1) { nextToken } }', admin)).data as any).queryMetrics.nextToken as string;
    const forged = [
      'not a token',
      '!!!!',
      Buffer.from('listAlerts:').toString('base64'),
      Buffer.from('listAlerts:{"alertId":{"S":"alert-5"}}').toString('base64'),
      Buffer.from(decoded.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))).toString('base64'),
      Buffer.from(decoded.replace('listAlerts:', 'listSecrets:')).toString('base64'),
      projectsToken,
      Buffer.from(`listAlerts:${Buffer.from(projectsToken, 'base64').toString('utf8').slice('listSecrets:'.length)}`).toString('base64'),
      Buffer.from('__proto__:x').toString('base64'),
      'A'.repeat(9000),
    ];
    for (const t of forged) {
      const r = await run('query($t: String) { listAlerts(nextToken: $t) { items { alertId } } }', admin, { t });
      expect({ t, errors: r.errors }).toEqual({ t, errors: [expect.objectContaining({ errorType: 'InvalidNextToken', message: 'nextToken is not a token this query returned' })] });
      expect((r.data as any)?.listAlerts ?? null).toBeNull();
    }
    // A metrics token on another partition of the same field: DynamoDB refuses the start key.
    const other = await run('query($t: String) { queryMetrics(name: "mem", nextToken: $t) { items { name } } }', admin, { t: metricsToken });
    expect(errorTypes(other)).toEqual(['InvalidNextToken']);
  });
});

describe('object-level rules, as the bundled query handler applies them', () => {
  test('a list shows the caller\'s own items; the override group sees all', async () => {
    const list = async (identity: AppSyncIdentity) => (((await run('{ listSecrets { items { secretId } } }', identity)).data as any).listSecrets.items as any[]).map((i) => i.secretId).sort();
    expect(await list(user('dev-1', ['Developer']))).toEqual(['s1', 's3']);
    expect(await list(user('dev-2', ['Developer']))).toEqual(['s2']);
    expect(await list(user('dev-3', ['Developer']))).toEqual([]);
    expect(await list(user('boss', ['Admin']))).toEqual(['s1', 's2', 's3', 's4']);
  });

  test('a get of another user\'s item answers NotOwner; the owner and the override group read it', async () => {
    const get = (identity: AppSyncIdentity) => run('{ getSecret(secretId: "s1") { secretId ownerId } }', identity);
    expect(await get(user('dev-1', ['Developer']))).toEqual({ data: { getSecret: { secretId: 's1', ownerId: 'dev-1' } } });
    const refused = await get(user('dev-2', ['Developer']));
    expect(refused.errors).toEqual([expect.objectContaining({ errorType: 'NotOwner', message: 'only the owner or a member of Admin may read this item' })]);
    expect((refused.data as any).getSecret).toBeNull();
    expect((await get(user('viewer-1', ['Viewer']))).errors?.[0].errorType).toBe('NotOwner');
    expect((await get(user('boss', ['Admin']))).data).toEqual({ getSecret: { secretId: 's1', ownerId: 'dev-1' } });
  });
});

describe('RBAC matrix over GraphQL: every query x the REST matrix\'s users and tokens', () => {
  const userSets: Array<[string, string[]]> = [
    ['Admin', ['Admin']],
    ['Developer', ['Developer']],
    ['Viewer', ['Viewer']],
    ['no group', []],
    ['Viewer+Developer', ['Viewer', 'Developer']],
    ['unknown group', ['Intern']],
  ];
  const calls: Record<string, string> = {
    queryMetrics: '{ queryMetrics(name: "cpu") { count } }',
    listAlerts: '{ listAlerts { count } }',
    getAlert: '{ getAlert(alertId: "alert-1") { alertId } }',
    listProjects: '{ listProjects { count } }',
    getProject: '{ getProject(projectId: "p-1") { projectId } }',
    listMyProjects: '{ listMyProjects { count } }',
    getSecret: '{ getSecret(secretId: "nope") { secretId } }',
    listSecrets: '{ listSecrets { count } }',
  };
  const allowed: Record<string, string[]> = {};
  for (const d of DOMAINS) for (const q of d.queries ?? []) allowed[q.name.charAt(0).toLowerCase() + q.name.slice(1)] = q.allowedGroups;

  test('every declared query is in the matrix', () => {
    expect(Object.keys(calls).sort()).toEqual(Object.keys(allowed).sort());
  });

  for (const [field, query] of Object.entries(calls)) {
    test.each(userSets)(`${field}: a valid token of %s is allowed exactly when the REST route allows the group`, async (_name, groups) => {
      const token = await issuer.mint(userClaims(`user-${groups.join('-') || 'none'}`, groups));
      const identity = authenticate(`Bearer ${token}`, auth);
      const r = await run(query, identity);
      if (groups.some((g) => allowed[field].includes(g))) {
        expect(r.errors).toBeUndefined();
      } else {
        expect(r).toEqual({ data: { [field]: null }, errors: [{ message: `Not Authorized to access ${field} on type Query`, errorType: 'Unauthorized', path: [field] }] });
      }
    });
  }

  test('the platform (IAM) cannot query, and users cannot call the change mutations', async () => {
    expect(errorTypes(await run(calls.listAlerts, IAM))).toEqual(['Unauthorized']);
    const mutation = 'mutation { publishAlertsChange(alertId: "alert-1", change: UPSERT, item: "{\\"alertId\\":\\"alert-1\\"}") { alertId } }';
    for (const groups of [['Admin'], ['Developer'], []]) expect(errorTypes(await run(mutation, user('u', groups)))).toEqual(['Unauthorized']);
    expect((await run(mutation, IAM)).data).toEqual({ publishAlertsChange: { alertId: 'alert-1' } });
  });

  const badTokens: Array<[string, () => Promise<string | undefined>]> = [
    ['missing', async () => undefined],
    ['not bearer', async () => `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['malformed', async () => 'Bearer not.a-jwt'],
    ['expired', async () => `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { expiresInSeconds: -60 })}`],
    ['not yet valid', async () => `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { notBeforeSeconds: 600 })}`],
    ['wrong issuer', async () => `Bearer ${await issuer.mint({ ...userClaims('u', ['Admin']), iss: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other' })}`],
    ['wrong audience (client)', async () => `Bearer ${await issuer.mint({ ...userClaims('u', ['Admin']), client_id: 'someoneelse' })}`],
    ['forged (signed by another key, same kid)', async () => `Bearer ${await (await createIssuer('test-key-1')).mint(userClaims('u', ['Admin']))}`],
    ['tampered payload', async () => {
      const [h, , s] = (await issuer.mint(userClaims('u', ['Viewer']))).split('.');
      return `Bearer ${h}.${Buffer.from(JSON.stringify({ ...userClaims('u', ['Admin']), iss: ISSUER, client_id: CLIENT_ID, token_use: 'access', exp: 9999999999 })).toString('base64url')}.${s}`;
    }],
    ['unknown key id', async () => `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { kid: 'nope' })}`],
    ['validly signed without exp', async () => `Bearer ${await issuer.mint(userClaims('u', ['Admin']), { omitExp: true })}`],
    ['IAM-signed with an unknown access key', async () => 'AWS4-HMAC-SHA256 Credential=AKIAFORGED/20260101/us-east-1/appsync/aws4_request, SignedHeaders=host, Signature=00'],
  ];
  test.each(badTokens)('refused before any resolver (401 UnauthorizedException): %s token', async (_name, header) => {
    expect(() => authenticate(undefined, auth)).toThrow(AuthError);
    const value = await header();
    expect(() => authenticate(value, auth)).toThrow(AuthError);
  });

  test('AppSync accepts ID tokens of the client too (unlike the REST authorizer, which requires access tokens)', async () => {
    const id = await issuer.mint({ ...userClaims('u', ['Viewer']), token_use: 'id', aud: CLIENT_ID, client_id: undefined });
    expect(authenticate(`Bearer ${id}`, auth)).toMatchObject({ kind: 'cognito', sub: 'u', groups: ['Viewer'] });
  });
});

describe('subscriptions: exactly the changes asked for, only to readers', () => {
  interface Inbox { readonly messages: GraphqlResponse[] }
  const open = async (query: string, identity: AppSyncIdentity, variables?: Record<string, unknown>) => {
    const inbox: Inbox = { messages: [] };
    const out = await fx.appsync.subscribe({ query, variables }, identity, (m) => inbox.messages.push(m));
    return { inbox, out };
  };
  const settle = () => new Promise((r) => setTimeout(r, 50));

  test('the change publisher turns the alerts table\'s real stream records into mutations; each subscriber gets what its filter asks', async () => {
    const streams = localStreamsClient();
    const before = (await readStream(client, streams, fx.tables.alerts)).flatMap((s) => s.records).length;
    const one = await open('subscription { onAlertsChange(alertId: "alert-1") { alertId change item { alertId triggerCount lastValue } } }', user('v', ['Viewer']));
    const all = await open('subscription { onAlertsChange { alertId change } }', user('d', ['Developer']));
    const other = await open('subscription { onAlertsChange(alertId: "alert-2") { alertId } }', user('a', ['Admin']));
    const outsider = await open('subscription { onAlertsChange { alertId } }', user('n', []));
    const intern = await open('subscription { onAlertsChange { alertId } }', user('i', ['Intern']));
    expect([one.out, all.out, other.out]).toEqual([{ id: expect.any(String) }, { id: expect.any(String) }, { id: expect.any(String) }]);
    expect(outsider.out).toEqual({ errors: [expect.objectContaining({ errorType: 'Unauthorized' })] });
    expect(intern.out).toEqual({ errors: [expect.objectContaining({ errorType: 'Unauthorized' })] });

    // Projection-like writes: an update of alert-1, an insert of alert-9, a delete of alert-9.
    await client.send(new UpdateItemCommand({ TableName: fx.tables.alerts, Key: marshall({ alertId: 'alert-1' }), UpdateExpression: 'SET lastValue = :v ADD triggerCount :one', ExpressionAttributeValues: marshall({ ':v': 42, ':one': 1 }) }));
    await put(fx.tables.alerts, { alertId: 'alert-9', name: 'new', severity: 'low', threshold: 1, triggerCount: 0 });
    await client.send(new DeleteItemCommand({ TableName: fx.tables.alerts, Key: marshall({ alertId: 'alert-9' }) }));
    // As Lambda hands them over: each record names its stream (the table's name is in its ARN).
    const shards = await readStream(client, streams, fx.tables.alerts);
    const records: DynamoDBRecord[] = shards.flatMap((s) => s.records.map((r) => ({ ...r, eventSourceARN: s.streamArn }))).slice(before);
    expect(records.map((r) => r.eventName)).toEqual(['MODIFY', 'INSERT', 'REMOVE']);

    // The publisher as deployed: its environment from the template, its mutation sent with the IAM identity.
    const fn = Object.values(fx.template.Resources as Record<string, any>).find((r) => r.Properties?.Environment?.Variables?.SKAFU_GRAPHQL_MODELS)!;
    const env = fn.Properties.Environment.Variables as Record<string, any>;
    const models = decodeModels(env.SKAFU_GRAPHQL_MODELS, Object.fromEntries(Object.keys(env).filter((k) => k.startsWith('SKAFU_GRAPHQL_TABLE_')).map((k) => [k, tableFor(env[k])])));
    const sent: string[] = [];
    const publish = createChangePublisher({
      models,
      post: async (body) => {
        sent.push(body);
        return { status: 200, body: await fx.appsync.execute(JSON.parse(body), IAM) };
      },
    });
    expect(await publish({ Records: records })).toEqual({ batchItemFailures: [] });
    await settle();
    expect(sent).toHaveLength(3);
    expect(one.inbox.messages).toEqual([{ data: { onAlertsChange: { alertId: 'alert-1', change: 'UPSERT', item: { alertId: 'alert-1', triggerCount: 1, lastValue: 42 } } } }]);
    expect(all.inbox.messages.map((m) => (m.data as any).onAlertsChange)).toEqual([
      { alertId: 'alert-1', change: 'UPSERT' },
      { alertId: 'alert-9', change: 'UPSERT' },
      { alertId: 'alert-9', change: 'DELETE' },
    ]);
    expect(other.inbox.messages).toEqual([]);
    streams.destroy();
    for (const s of [one, all, other]) fx.appsync.unsubscribe((s.out as { id: string }).id);
  });

  /** The local table name of a template table reference. */
  function tableFor(ref: unknown): string {
    const id = (ref as any)?.Ref as string;
    const model = ['Alerts', 'Metrics', 'Projects', 'Secrets'].find((m) => id.includes(`ReadModel${m}`))!;
    return fx.tables[model.toLowerCase()];
  }

  test('owner-only readers receive only their own items\' changes; a get-only group must give the key; the override group receives all', async () => {
    const dev1 = await open('subscription { onSecretsChange { secretId ownerId item { label } } }', user('dev-1', ['Developer']));
    // Viewer has only the owner-only GetSecret: without the whole key it is refused, with it only its own item.
    const viewerWithoutKey = await open('subscription { onSecretsChange { secretId } }', user('viewer-1', ['Viewer']));
    expect(viewerWithoutKey.out).toEqual({ errors: [expect.objectContaining({ errorType: 'Unauthorized' })] });
    const viewer = await open('subscription { onSecretsChange(secretId: "s12") { secretId } }', user('viewer-1', ['Viewer']));
    const viewerOther = await open('subscription { onSecretsChange(secretId: "s11") { secretId } }', user('viewer-1', ['Viewer']));
    const admin = await open('subscription { onSecretsChange { secretId } }', user('boss', ['Admin']));
    const mutation = 'mutation($id: String!, $owner: String, $item: String) { publishSecretsChange(secretId: $id, ownerId: $owner, change: UPSERT, item: $item) { secretId ownerId change item { secretId label ownerId } } }';
    for (const [id, owner] of [['s10', 'dev-1'], ['s11', 'dev-2'], ['s12', 'viewer-1']]) {
      const r = await run(mutation, IAM, { id, owner, item: JSON.stringify({ secretId: id, label: `L${id}`, ownerId: owner }) });
      expect(r.errors).toBeUndefined();
    }
    await settle();
    expect(dev1.inbox.messages).toEqual([{ data: { onSecretsChange: { secretId: 's10', ownerId: 'dev-1', item: { label: 'Ls10' } } } }]);
    expect(viewer.inbox.messages.map((m) => (m.data as any).onSecretsChange.secretId)).toEqual(['s12']);
    expect(viewerOther.inbox.messages).toEqual([]);
    expect(admin.inbox.messages.map((m) => (m.data as any).onSecretsChange.secretId)).toEqual(['s10', 's11', 's12']);
    for (const s of [dev1, viewer, viewerOther, admin]) fx.appsync.unsubscribe((s.out as { id: string }).id);
  });

  test('a failed publish is reported from the failing record on (retry keeps order)', async () => {
    const models = [{ table: 't', keys: ['alertId'], document: 'mutation { x }' }];
    let calls = 0;
    const publish = createChangePublisher({ models, post: async () => (++calls === 2 ? { status: 500, body: 'boom' } : { status: 200, body: { data: {} } }) });
    const record = (seq: string): DynamoDBRecord => ({ eventName: 'INSERT', eventSourceARN: 'arn:aws:dynamodb:eu-west-1:1:table/t/stream/x', dynamodb: { SequenceNumber: seq, Keys: { alertId: { S: seq } }, NewImage: { alertId: { S: seq } } } });
    expect(await publish({ Records: [record('1'), record('2'), record('3')] })).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }, { itemIdentifier: '3' }] });
    expect(calls).toBe(2);
  });
});
