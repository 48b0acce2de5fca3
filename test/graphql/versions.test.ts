/**
 * Read models kept in two versions (issue 12), executed: the synthesized pipeline resolvers run by the AppSync
 * emulation (local/src/appsync.ts: before template, functions, `#return`, `$ctx.stash`, after template) against
 * the tables created in DynamoDB Local from the same template: the previous version, the current (half-built)
 * one and the checkpoint table holding the active-version pointer. Before the switch every answer comes from the
 * previous version and the current one is never read; after the pointer names the current version, from it, with
 * the same answers, rules and page tokens; a token of the other version is refused. The change publisher drops
 * the rebuild's writes until the switch and publishes the current version's changes after it.
 */
import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { graphqlFixture, VERSIONED, type GraphqlFixture } from './support';
import { AppSync, type AppSyncIdentity, type GraphqlResponse } from '../../local/src/appsync';
import { createChangePublisher, decodeModels, pointerReader } from '../../src/graphql/change-publisher.lambda';
import { INVALID_NEXT_TOKEN, STALE_NEXT_TOKEN } from '../../src/graphql/schema';
import { ISSUER } from '../support/jwt';
import { localStreamsClient, readStream } from '../support/streams';
import { localClient } from '../support/tables';

let client: DynamoDBClient;
let fx: GraphqlFixture;
let appsync: AppSync;
/** Every DynamoDB request the emulated data sources sent: operation, table, consistency, key. */
const calls: Array<{ op: string; table: string; consistent: boolean; key?: unknown }> = [];
const T: Record<string, string> = {};

const user = (sub: string, groups: string[]): AppSyncIdentity => ({ kind: 'cognito', sub, username: sub, groups, claims: {}, issuer: ISSUER });
const IAM: AppSyncIdentity = { kind: 'iam', accessKeyId: 'local' };
const admin = user('boss', ['Admin']);
const put = (table: string, item: Record<string, unknown>) => client.send(new PutItemCommand({ TableName: table, Item: marshall(item) }));
const setPointer = (table: string, key: string, version: unknown, switchedAt = new Date().toISOString()) =>
  put(table, { aggregateId: key, version, readModel: 'x', tableName: 'x', rebuildId: 'r-1', switchedAt });
const clearPointer = (table: string, key: string) => client.send(new DeleteItemCommand({ TableName: table, Key: marshall({ aggregateId: key }) }));
const run = async (query: string, identity: AppSyncIdentity = admin, variables?: Record<string, unknown>) => {
  calls.length = 0;
  return appsync.execute({ query, variables }, identity);
};
const tablesRead = () => calls.map((c) => c.table);
const secretIds = (r: GraphqlResponse) => ((r.data as any).listSecrets.items as any[]).map((i) => i.secretId).sort();
const decode = (token: string) => Buffer.from(token, 'base64').toString('utf8');
const encode = (text: string) => Buffer.from(text, 'utf8').toString('base64');

beforeAll(async () => {
  client = localClient();
  fx = await graphqlFixture(client, VERSIONED);
  const table = (pattern: RegExp) => {
    const found = Object.entries(fx.tablesById).filter(([id]) => pattern.test(id));
    expect(found).toHaveLength(1);
    return found[0][1];
  };
  T.secretsV1 = table(/vaultReadModelSecretsTable[0-9A-F]{8}$/);
  T.secretsV2 = table(/vaultReadModelSecretsTableV2/);
  T.vaultCheckpoints = table(/vaultProjectionsCheckpoints/);
  T.alertsV2 = table(/observabilityReadModelAlertsTableV2/);
  T.alertsV3 = table(/observabilityReadModelAlertsTableV3/);
  T.observabilityCheckpoints = table(/observabilityProjectionsCheckpoints/);
  // The emulator as Skafu Local builds it, on a client that records what each data source sends.
  const recording = {
    send: (command: any) => {
      calls.push({ op: command.constructor.name.replace(/Command$/, ''), table: command.input.TableName, consistent: command.input.ConsistentRead === true, key: command.input.Key });
      return client.send(command);
    },
  } as unknown as DynamoDBClient;
  appsync = new AppSync({ sdl: fx.config.sdl, resolvers: fx.config.resolvers, client: recording });
  // Version 1: complete. Version 2: half-built by the rebuild (other items, one of them also in version 1, changed).
  for (const [id, owner] of [['s1', 'dev-1'], ['s2', 'dev-2'], ['s3', 'dev-1'], ['s4', 'viewer-1'], ['s5', 'dev-1']]) await put(T.secretsV1, { secretId: id, label: `v1-${id}`, ownerId: owner });
  for (const [id, owner] of [['s1', 'dev-1'], ['n1', 'dev-1'], ['n2', 'dev-2']]) await put(T.secretsV2, { secretId: id, label: `v2-${id}`, ownerId: owner });
  for (let i = 0; i < 3; i++) await put(T.alertsV2, { alertId: `old-${i}`, name: `old ${i}`, severity: 'high', threshold: i, triggerCount: 0 });
  for (let i = 0; i < 2; i++) await put(T.alertsV3, { alertId: `new-${i}`, name: `new ${i}`, severity: 'low', threshold: i, triggerCount: 0 });
});

afterAll(() => client.destroy());

describe('queries follow the active-version pointer', () => {
  test('before the switch (no pointer): get and list answer from the previous version; the half-built one is never read', async () => {
    const list = await run('{ listSecrets { items { secretId label } count nextToken } }');
    expect(list.errors).toBeUndefined();
    expect(secretIds(list)).toEqual(['s1', 's2', 's3', 's4', 's5']);
    expect(((list.data as any).listSecrets.items as any[]).find((i) => i.secretId === 's1').label).toBe('v1-s1');
    // The pointer first (strongly consistent, exactly its key), then the previous version only.
    expect(calls).toEqual([
      { op: 'GetItem', table: T.vaultCheckpoints, consistent: true, key: { aggregateId: { S: '#active#secrets' } } },
      expect.objectContaining({ op: 'Scan', table: T.secretsV1 }),
    ]);
    expect(await run('{ getSecret(secretId: "s1") { secretId label ownerId } }')).toEqual({ data: { getSecret: { secretId: 's1', label: 'v1-s1', ownerId: 'dev-1' } } });
    expect(tablesRead()).toEqual([T.vaultCheckpoints, T.secretsV1]);
    expect(await run('{ getSecret(secretId: "n1") { secretId } }')).toEqual({ data: { getSecret: null } });
    expect(tablesRead()).not.toContain(T.secretsV2);
  });

  test('a pointer naming an older version, or one that is not a number, keeps the previous version', async () => {
    for (const version of [1, 0, '2', true]) {
      await setPointer(T.vaultCheckpoints, '#active#secrets', version);
      expect({ version, ids: secretIds(await run('{ listSecrets { items { secretId } } }')) }).toEqual({ version, ids: ['s1', 's2', 's3', 's4', 's5'] });
      expect(tablesRead()).toEqual([T.vaultCheckpoints, T.secretsV1]);
    }
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
  });

  test('the object-level rules hold on either version', async () => {
    const mine = async (sub: string) => secretIds(await run('{ listSecrets { items { secretId } } }', user(sub, ['Developer'])));
    expect(await mine('dev-1')).toEqual(['s1', 's3', 's5']);
    const refused = await run('{ getSecret(secretId: "s2") { secretId } }', user('dev-1', ['Developer']));
    expect(refused.errors).toEqual([expect.objectContaining({ errorType: 'NotOwner', path: ['getSecret'] })]);
    expect((refused.data as any).getSecret).toBeNull();
    await setPointer(T.vaultCheckpoints, '#active#secrets', 2);
    expect(await mine('dev-1')).toEqual(['n1', 's1']);
    expect((await run('{ getSecret(secretId: "n2") { secretId } }', user('dev-1', ['Developer']))).errors).toEqual([expect.objectContaining({ errorType: 'NotOwner' })]);
    expect((await run('{ getSecret(secretId: "n2") { secretId } }', user('dev-2', ['Developer']))).data).toEqual({ getSecret: { secretId: 'n2' } });
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
  });

  test('a page token names its version; after the switch a token of the previous version is refused, never answered from the other table', async () => {
    // Before the switch: pages of version 1, every item exactly once.
    const seen: string[] = [];
    let token: string | null = null;
    const tokens: string[] = [];
    do {
      const r: GraphqlResponse = await run('query($t: String) { listSecrets(limit: 2, nextToken: $t) { items { secretId } nextToken } }', admin, { t: token });
      expect(r.errors).toBeUndefined();
      seen.push(...(r.data as any).listSecrets.items.map((i: any) => i.secretId));
      token = (r.data as any).listSecrets.nextToken;
      if (token) tokens.push(token);
    } while (token && seen.length < 20);
    expect(seen.sort()).toEqual(['s1', 's2', 's3', 's4', 's5']);
    expect(decode(tokens[0])).toMatch(/^listSecrets:v1:./);
    const v1Token = tokens[0];

    // A token claiming version 2 while version 1 answers: refused before any read of a table.
    const claimsV2 = encode(decode(v1Token).replace('listSecrets:v1:', 'listSecrets:v2:'));
    const early = await run('query($t: String) { listSecrets(nextToken: $t) { items { secretId } } }', admin, { t: claimsV2 });
    expect(early.errors).toEqual([expect.objectContaining({ errorType: 'InvalidNextToken', message: STALE_NEXT_TOKEN })]);
    expect(tablesRead()).toEqual([T.vaultCheckpoints]);

    // The switch.
    await setPointer(T.vaultCheckpoints, '#active#secrets', 2);
    const stale = await run('query($t: String) { listSecrets(limit: 2, nextToken: $t) { items { secretId } nextToken } }', admin, { t: v1Token });
    expect(stale).toEqual({ data: { listSecrets: null }, errors: [expect.objectContaining({ errorType: 'InvalidNextToken', message: STALE_NEXT_TOKEN, path: ['listSecrets'] })] });
    expect(tablesRead()).toEqual([T.vaultCheckpoints]);

    // Version 2's own pages work, and their tokens say so.
    const first = await run('{ listSecrets(limit: 2) { items { secretId } nextToken } }');
    const v2Token = (first.data as any).listSecrets.nextToken as string;
    expect(decode(v2Token)).toMatch(/^listSecrets:v2:./);
    const second = await run('query($t: String) { listSecrets(limit: 2, nextToken: $t) { items { secretId } nextToken } }', admin, { t: v2Token });
    expect(second.errors).toBeUndefined();
    expect([...(first.data as any).listSecrets.items, ...(second.data as any).listSecrets.items].map((i: any) => i.secretId).sort()).toEqual(['n1', 'n2', 's1']);
    expect(tablesRead()).toEqual([T.vaultCheckpoints, T.secretsV2]);

    // Forged, unversioned, foreign and altered tokens: InvalidNextToken, never an item, never a server error.
    const inner = decode(v2Token).slice('listSecrets:v2:'.length);
    const forged: Array<[string, string]> = [
      [encode(`listSecrets:${inner}`), STALE_NEXT_TOKEN], // the form of a read model without versions
      [encode('listSecrets:v2:'), STALE_NEXT_TOKEN],
      [encode(`listSecrets:v0:${inner}`), STALE_NEXT_TOKEN],
      [encode(`listSecrets:v12345:${inner}`), STALE_NEXT_TOKEN],
      [encode(`listSecrets:v3:${inner}`), STALE_NEXT_TOKEN],
      [encode(`listSecrets:v2:${inner.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))}`), INVALID_NEXT_TOKEN],
      [encode('listSecrets:v2:__proto__'), INVALID_NEXT_TOKEN],
      [encode(`listAlerts:v2:${inner}`), INVALID_NEXT_TOKEN],
      [encode(`listSecrets:v2:${inner}\nx`), STALE_NEXT_TOKEN], // `.` matches no line break, in Java as here
      ['not a token', INVALID_NEXT_TOKEN],
    ];
    for (const [t, message] of forged) {
      const r = await run('query($t: String) { listSecrets(nextToken: $t) { items { secretId } } }', admin, { t });
      expect({ t: decode(t), errors: r.errors, data: r.data }).toEqual({ t: decode(t), errors: [expect.objectContaining({ errorType: 'InvalidNextToken', message })], data: { listSecrets: null } });
    }
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
  });

  test('after the switch, answers come from the current version; a later version in the pointer keeps it (the pointer never goes back)', async () => {
    for (const version of [2, 7]) {
      await setPointer(T.vaultCheckpoints, '#active#secrets', version);
      expect(secretIds(await run('{ listSecrets { items { secretId } } }'))).toEqual(['n1', 'n2', 's1']);
      expect(tablesRead()).toEqual([T.vaultCheckpoints, T.secretsV2]);
      expect(await run('{ getSecret(secretId: "s1") { label } }')).toEqual({ data: { getSecret: { label: 'v2-s1' } } });
      expect(await run('{ getSecret(secretId: "s5") { label } }')).toEqual({ data: { getSecret: null } });
      expect(tablesRead()).toEqual([T.vaultCheckpoints, T.secretsV2]);
    }
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
  });

  test('another read model at version 3: version 2 answers until the pointer names 3; each read model has its own pointer', async () => {
    const alerts = async () => ((await run('{ listAlerts { items { alertId } } }')).data as any).listAlerts.items.map((i: any) => i.alertId).sort();
    await setPointer(T.vaultCheckpoints, '#active#secrets', 2);
    expect(await alerts()).toEqual(['old-0', 'old-1', 'old-2']);
    await setPointer(T.observabilityCheckpoints, '#active#alerts', 2);
    expect(await alerts()).toEqual(['old-0', 'old-1', 'old-2']);
    expect(tablesRead()).toEqual([T.observabilityCheckpoints, T.alertsV2]);
    await setPointer(T.observabilityCheckpoints, '#active#alerts', 3);
    expect(await alerts()).toEqual(['new-0', 'new-1']);
    expect(await run('{ getAlert(alertId: "new-1") { alertId severity } }')).toEqual({ data: { getAlert: { alertId: 'new-1', severity: 'low' } } });
    expect(tablesRead()).toEqual([T.observabilityCheckpoints, T.alertsV3]);
    // The read models without versions answer as before: one call, their own table.
    expect((await run('{ queryMetrics(name: "cpu") { count } }')).errors).toBeUndefined();
    expect(calls).toHaveLength(1);
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
    await clearPointer(T.observabilityCheckpoints, '#active#alerts');
  });

  test('the pipeline functions Skafu Local reads from the template: pointer, previous, current, in that order', () => {
    const pipeline = fx.config.resolvers.find((r) => r.fieldName === 'listSecrets')!;
    expect(pipeline.functions!.map((f) => [f.name, f.tableName])).toEqual([
      ['Vault_Secrets_ActiveVersion', T.vaultCheckpoints],
      ['Vault_Secrets_ReadPrevious', T.secretsV1],
      ['Vault_Secrets_ReadCurrent', T.secretsV2],
    ]);
    expect(fx.config.resolvers.find((r) => r.fieldName === 'listProjects')!.functions).toBeUndefined();
  });
});

describe('live updates during a rebuild', () => {
  const settle = () => new Promise((r) => setTimeout(r, 50));
  /**
   * The records written to a table's stream since `from`, as Lambda hands them over: with the stream's ARN, and
   * with `ApproximateCreationDateTime` in epoch seconds as DynamoDB Streams gives it ("rounded down to the nearest
   * second", DynamoDB API reference, StreamRecord), taken from `stamps` (the wall clock just after each write):
   * DynamoDB Local rounds it to the minute.
   */
  const recordsOf = async (table: string, from: number, stamps: number[] = []): Promise<DynamoDBRecord[]> => {
    const streams = localStreamsClient();
    try {
      const shards = await readStream(client, streams, table);
      return shards
        .flatMap((s) => s.records.map((r) => ({ ...r, eventSourceARN: s.streamArn })))
        .slice(from)
        .map((r, i) => ({ ...r, dynamodb: { ...r.dynamodb, ApproximateCreationDateTime: stamps[i] } }));
    } finally {
      streams.destroy();
    }
  };
  const stamp = () => Math.floor(Date.now() / 1000);
  const streamLength = async (table: string) => (await recordsOf(table, 0)).length;
  /** The publisher as deployed: its models and environment from the template, its mutations sent with the IAM identity. */
  const publisher = (readPointer: (table: string, key: string) => Promise<any>) => {
    const fn = Object.values(fx.template.Resources as Record<string, any>).find((r) => r.Properties?.Environment?.Variables?.SKAFU_GRAPHQL_MODELS)!;
    const env = fn.Properties.Environment.Variables as Record<string, any>;
    const local = Object.fromEntries(Object.entries(env).filter(([k]) => /^SKAFU_GRAPHQL_(TABLE|CHECKPOINTS)_/.test(k)).map(([k, v]) => [k, fx.tablesById[v.Ref]]));
    const counts: Record<string, number> = {};
    const reads: string[] = [];
    const publish = createChangePublisher({
      models: decodeModels(env.SKAFU_GRAPHQL_MODELS, local),
      post: async (body) => ({ status: 200, body: await appsync.execute(JSON.parse(body), IAM) }),
      readPointer: async (table, key) => {
        reads.push(`${table}/${key}`);
        return readPointer(table, key);
      },
      count: (metric, n) => {
        counts[metric] = (counts[metric] ?? 0) + n;
      },
    });
    return { publish, counts, reads };
  };

  test('the rebuild\'s writes into the new version are not published before the switch; the new version\'s changes are, from the switch on', async () => {
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
    const inbox: GraphqlResponse[] = [];
    const sub = await appsync.subscribe({ query: 'subscription { onSecretsChange { secretId change item { label } } }' }, admin, (m) => inbox.push(m));
    expect(sub).toEqual({ id: expect.any(String) });
    const { publish, counts, reads } = publisher(pointerReader(client));

    // The rebuild writes version 2 while queries read version 1.
    let from = await streamLength(T.secretsV2);
    await put(T.secretsV2, { secretId: 'n3', label: 'rebuilt', ownerId: 'dev-1' });
    await put(T.secretsV2, { secretId: 'n4', label: 'rebuilt', ownerId: 'dev-2' });
    const rebuild = await recordsOf(T.secretsV2, from);
    expect(rebuild).toHaveLength(2);
    expect(await publish({ Records: rebuild })).toEqual({ batchItemFailures: [] });
    expect(await publish({ Records: rebuild })).toEqual({ batchItemFailures: [] }); // a second batch reads the pointer again
    await settle();
    expect(inbox).toEqual([]);
    expect(counts).toMatchObject({ ChangesDroppedDuringRebuild: 4, ChangesPublished: 0 });
    expect(reads).toEqual([`${T.vaultCheckpoints}/#active#secrets`, `${T.vaultCheckpoints}/#active#secrets`]);

    // The rebuild's last write, then the switch (from the next second on), then a live change of version 2.
    from = await streamLength(T.secretsV2);
    const stamps: number[] = [];
    await put(T.secretsV2, { secretId: 'n5', label: 'rebuilt last', ownerId: 'dev-1' });
    stamps.push(stamp());
    const switchedAt = (stamps[0] + 1) * 1000;
    await setPointer(T.vaultCheckpoints, '#active#secrets', 2, new Date(switchedAt).toISOString());
    await new Promise((r) => setTimeout(r, Math.max(0, switchedAt - Date.now() + 50)));
    await put(T.secretsV2, { secretId: 'n6', label: 'live', ownerId: 'dev-1' });
    stamps.push(stamp());
    await client.send(new DeleteItemCommand({ TableName: T.secretsV2, Key: marshall({ secretId: 'n6' }) }));
    stamps.push(stamp());
    const around = await recordsOf(T.secretsV2, from, stamps);
    expect(around.map((r) => r.eventName)).toEqual(['INSERT', 'INSERT', 'REMOVE']);
    expect(await publish({ Records: around.slice(0, 2) })).toEqual({ batchItemFailures: [] });
    expect(await publish({ Records: around.slice(2) })).toEqual({ batchItemFailures: [] });
    await settle();
    expect(inbox.map((m) => (m.data as any).onSecretsChange)).toEqual([
      { secretId: 'n6', change: 'UPSERT', item: { label: 'live' } },
      { secretId: 'n6', change: 'DELETE', item: null },
    ]);
    expect(counts).toMatchObject({ ChangesDroppedDuringRebuild: 5, ChangesPublished: 2 });
    // Read once more for the switch, never after it (the pointer never goes back).
    expect(reads).toHaveLength(3);
    appsync.unsubscribe((sub as { id: string }).id);
    await clearPointer(T.vaultCheckpoints, '#active#secrets');
  });

  test('a pointer that cannot be read fails the batch from that read model\'s first record (retried, never dropped); other read models publish without it', async () => {
    const { publish, counts, reads } = publisher(async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    });
    const arn = (table: string) => `arn:aws:dynamodb:us-east-1:000000000000:table/${table}/stream/2026-01-01T00:00:00.000`;
    const metricsTable = Object.entries(fx.tablesById).find(([id]) => /observabilityReadModelMetricsTable/.test(id))![1];
    const records: DynamoDBRecord[] = [
      { eventName: 'INSERT', eventSourceARN: arn(metricsTable), dynamodb: { SequenceNumber: '1', Keys: { name: { S: 'cpu' }, collectedAt: { S: 't' } }, NewImage: { name: { S: 'cpu' }, collectedAt: { S: 't' } } } },
      { eventName: 'INSERT', eventSourceARN: arn(T.secretsV2), dynamodb: { SequenceNumber: '2', Keys: { secretId: { S: 'x' } }, NewImage: { secretId: { S: 'x' } } } },
      { eventName: 'INSERT', eventSourceARN: arn(T.secretsV2), dynamodb: { SequenceNumber: '3', Keys: { secretId: { S: 'y' } }, NewImage: { secretId: { S: 'y' } } } },
    ];
    expect(await publish({ Records: records })).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }, { itemIdentifier: '3' }] });
    expect(counts).toMatchObject({ ChangesPublished: 1, ChangesNotPublished: 2 });
    expect(reads).toEqual([`${T.vaultCheckpoints}/#active#secrets`]);
  });
});
