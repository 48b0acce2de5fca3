/**
 * A platform with read models kept in two versions (issue 12) under Skafu Local: the GraphQL API as Skafu Local
 * loads it from the assembly (pipeline resolvers and their functions, the checkpoint table's pointer data
 * source), queried over HTTP with the local issuer's tokens, and the bundled change publisher fed by the current
 * version's stream. Before the pointer names the new version, queries answer from the previous one and the new
 * version's writes reach no subscriber; after it, both follow the new version. The backfill is off: the tables
 * are written here as the rebuild and the live projection would write them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import type { GraphqlResponse } from '../../local/src/appsync';
import { SkafuLocal } from '../../local/src/skafu-local';
import { SkafuPlatform } from '../../src';
import { VERSIONED } from '../graphql/support';

let local: SkafuLocal;
const lines: string[] = [];
const table = (pattern: RegExp) => {
  const found = Object.entries(local.tables).filter(([p]) => pattern.test(p));
  expect(found.map(([p]) => p)).toHaveLength(1);
  return found[0][1];
};
const put = (name: string, item: Record<string, unknown>) => local.client.send(new PutItemCommand({ TableName: name, Item: marshall(item) }));
const graphql = async (query: string): Promise<GraphqlResponse> => {
  const response = await fetch(local.graphqlUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Authorization': local.tokens.Admin }, body: JSON.stringify({ query }) });
  expect(response.status).toBe(200);
  return (await response.json()) as GraphqlResponse;
};
const ids = (r: GraphqlResponse) => ((r.data as any).listSecrets.items as any[]).map((i) => i.secretId).sort();
const until = async (check: () => boolean, ms = 10_000) => {
  for (const end = Date.now() + ms; !check() && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
};

beforeAll(async () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-gql-versions-'));
  const app = new App({ outdir });
  const stack = new Stack(app, 'Skafu-versions', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  for (const d of VERSIONED) platform.addDomain(d);
  platform.addGraphqlApi();
  app.synth();
  local = new SkafuLocal({ assembly: outdir, dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, workDirectory: path.join(outdir, '.skafu-local'), log: (l) => lines.push(l), backfill: false });
  await local.start();
}, 120_000);
afterAll(() => local?.stop());

test('Skafu Local serves the pipelines: the previous version until the pointer names the new one, then the new one; live updates follow', async () => {
  expect(local.unsupported.map((u) => u.type)).not.toContain('AWS::AppSync::FunctionConfiguration');
  expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/VTL resolvers \(4 pipelines reading a rebuilt read model's active version\)/)]));
  const v1 = table(/vaultReadModelSecretsTable[0-9A-F]{8}$/);
  const v2 = table(/vaultReadModelSecretsTableV2/);
  const checkpoints = table(/vaultProjectionsCheckpoints/);
  await put(v1, { secretId: 'old-1', label: 'v1', ownerId: 'someone' });
  await put(v2, { secretId: 'new-1', label: 'v2', ownerId: 'someone' });

  const inbox: GraphqlResponse[] = [];
  const sub = await local.appsync!.subscribe({ query: 'subscription { onSecretsChange { secretId change } }' }, { kind: 'cognito', sub: 'a', username: 'a', groups: ['Admin'], claims: {}, issuer: 'local' }, (m) => inbox.push(m));
  expect(sub).toEqual({ id: expect.any(String) });

  expect(ids(await graphql('{ listSecrets { items { secretId } } }'))).toEqual(['old-1']);
  expect((await graphql('{ getSecret(secretId: "new-1") { secretId } }')).data).toEqual({ getSecret: null });
  // The rebuild writes version 2: no subscriber hears of it.
  await put(v2, { secretId: 'new-2', label: 'v2', ownerId: 'someone' });
  await local.settle();
  await new Promise((r) => setTimeout(r, 500));
  expect(inbox).toEqual([]);

  // The switch.
  await put(checkpoints, { aggregateId: '#active#secrets', version: 2, switchedAt: new Date(Date.now() - 60_000).toISOString() });
  expect(ids(await graphql('{ listSecrets { items { secretId } } }'))).toEqual(['new-1', 'new-2']);
  expect((await graphql('{ getSecret(secretId: "new-1") { label } }')).data).toEqual({ getSecret: { label: 'v2' } });
  await local.client.send(new DeleteItemCommand({ TableName: v2, Key: marshall({ secretId: 'new-1' }) }));
  await until(() => inbox.length > 0);
  expect(inbox.map((m) => (m.data as any).onSecretsChange)).toEqual([{ secretId: 'new-1', change: 'DELETE' }]);
  local.appsync!.unsubscribe((sub as { id: string }).id);
});
