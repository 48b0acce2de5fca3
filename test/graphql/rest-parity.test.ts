/**
 * The GraphQL read side answers no more and no less than the REST routes of the same groups (issue 16; found by a
 * hostile review): subscription scope, argument and type names, list argument checks, Skafu Local's VTL maps.
 * No DynamoDB: the schema and resolvers come from generateGraphqlSchema and run in the AppSync emulation
 * (subscriptions and the change mutation use the NONE data source).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { buildSchema } from 'graphql';
import { AppSync, type AppSyncIdentity, type GraphqlResponse } from '../../local/src/appsync';
import { APPSYNC_DEFINITIONS } from '../../local/src/appsync-schema';
import { renderTemplate, TemplateError } from '../../local/src/appsync-vtl';
import { ProjectionAction, ProjectionValue, QueryInput, QueryInputType, type DomainDeclaration } from '../../src';
import { generateGraphqlSchema, type GraphqlDomainInput } from '../../src/graphql/schema';

const user = (sub: string, groups: string[]): AppSyncIdentity => ({ kind: 'cognito', sub, username: sub, groups, claims: {}, issuer: 'https://issuer' });
const IAM: AppSyncIdentity = { kind: 'iam', accessKeyId: 'local' };
const settle = () => new Promise((r) => setTimeout(r, 30));

/** Documents in scopes: Viewers list only the `public` scope (a constant partition); Admins list any scope. */
function docsDomain(queries: DomainDeclaration['queries']): DomainDeclaration {
  return {
    name: 'docs',
    commands: [],
    eventTypes: ['DocWritten'],
    readModels: [
      {
        name: 'docs',
        partitionKey: { name: 'scope' },
        sortKey: { name: 'docId' },
        projections: [
          {
            eventType: 'DocWritten',
            action: ProjectionAction.putItem({
              key: { scope: ProjectionValue.fromData('scope'), docId: ProjectionValue.fromEnvelope('aggregateId') },
              attributes: { title: ProjectionValue.fromData('title') },
            }),
          },
        ],
      },
    ],
    queries,
  };
}

function emulate(domains: GraphqlDomainInput[]): AppSync {
  const g = generateGraphqlSchema(domains);
  return new AppSync({
    sdl: g.sdl,
    resolvers: g.resolvers.map((r) => ({
      typeName: r.typeName,
      fieldName: r.fieldName,
      requestTemplate: r.requestTemplate,
      responseTemplate: r.responseTemplate,
    })),
    client: new DynamoDBClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' }), // never called
  });
}

type Inbox = GraphqlResponse[] | { refused: unknown };
async function received(appsync: AppSync, who: AppSyncIdentity, subscription: string, publish: Array<Record<string, unknown>>): Promise<Inbox> {
  const inbox: GraphqlResponse[] = [];
  const out = await appsync.subscribe({ query: subscription }, who, (m) => inbox.push(m));
  if ('errors' in out) return { refused: out.errors };
  for (const v of publish) {
    const r = await appsync.execute({ query: 'mutation($scope: String!, $docId: String!, $item: String) { publishDocsChange(scope: $scope, docId: $docId, change: UPSERT, item: $item) { scope docId change item { scope docId title } } }', variables: v }, IAM);
    expect(r.errors).toBeUndefined();
  }
  await settle();
  appsync.unsubscribe(out.id);
  return inbox;
}

describe('subscriptions show a group no more than its REST routes', () => {
  test('a group whose only list is a constant partition (`public`) receives no change of another partition', async () => {
    // REST: a Viewer can GET /api/v1/docs/public-docs (scope = 'public' only); /docs?scope=... is Admin only.
    const appsync = emulate([
      docsDomain([
        { name: 'ListPublicDocs', path: 'public-docs', allowedGroups: ['Viewer', 'Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.constant('public') } },
        { name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') } },
      ]),
    ]);
    const inbox = await received(appsync, user('v1', ['Viewer']), 'subscription { onDocsChange { scope docId item { title } } }', [
      { scope: 'public', docId: 'd1', item: JSON.stringify({ scope: 'public', docId: 'd1', title: 'hello' }) },
      { scope: 'board-only', docId: 'd2', item: JSON.stringify({ scope: 'board-only', docId: 'd2', title: 'layoffs' }) },
    ]);
    // The Viewer receives d1 only, or the subscription is refused (it is: a constant-partition list gives no subscription).
    const scopes = Array.isArray(inbox) ? inbox.map((m) => (m.data as any)?.onDocsChange?.scope) : [];
    expect(scopes).not.toContain('board-only');
  });

  test('a group that may only GET by key cannot enumerate items by subscribing without the key', async () => {
    // REST: a Viewer can GET /docs/{scope}/{docId} when it knows the key; it has no list route.
    const appsync = emulate([
      docsDomain([
        { name: 'GetDoc', path: 'docs/{scope}/{docId}', allowedGroups: ['Viewer', 'Admin'], readModel: 'docs', key: { scope: QueryInput.pathParameter('scope'), docId: QueryInput.pathParameter('docId') } },
        { name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') } },
      ]),
    ]);
    const inbox = await received(appsync, user('v1', ['Viewer']), 'subscription { onDocsChange { scope docId } }', [
      { scope: 'x', docId: 'unguessable-1', item: JSON.stringify({ scope: 'x', docId: 'unguessable-1', title: 't' }) },
    ]);
    // Refused without the full key (or nothing delivered).
    expect(Array.isArray(inbox) ? inbox.length : 0).toBe(0);
  });
});

describe('names REST accepts that GraphQL cannot hold are refused at synth', () => {
  test('a filter parameter REST accepts (`created-after`) is refused at synth naming it, not at deploy', () => {
    const domain = docsDomain([
      { name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') }, filters: [{ attribute: 'title', parameter: 'doc-title' }] },
    ]);
    let generated: ReturnType<typeof generateGraphqlSchema> | undefined;
    try {
      generated = generateGraphqlSchema([domain]);
    } catch (err) {
      expect((err as Error).message).toMatch(/doc-title/);
      return;
    }
    // Not refused: then it must at least be a schema AppSync accepts.
    expect(() => buildSchema(`${APPSYNC_DEFINITIONS}\n${generated!.sdl}`)).not.toThrow();
  });

  test('a read model named `query` (or `string`) does not collide with the root type / a built-in scalar', () => {
    for (const name of ['query', 'string']) {
      const domain = docsDomain([{ name: 'ListAll', path: 'all', allowedGroups: ['Admin'], readModel: name }]);
      (domain.readModels as any[])[0] = { ...domain.readModels![0], name };
      let generated: ReturnType<typeof generateGraphqlSchema> | undefined;
      try {
        generated = generateGraphqlSchema([domain]);
      } catch (err) {
        expect((err as Error).message).toMatch(new RegExp(name, 'i'));
        continue;
      }
      expect(() => buildSchema(`${APPSYNC_DEFINITIONS}\n${generated!.sdl}`)).not.toThrow();
    }
  });

  test('Skafu Local: a filter argument named like an Object.prototype member (`valueOf`) is absent when not given, as in AppSync (a Java map)', () => {
    const g = generateGraphqlSchema([
      docsDomain([{ name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') }, filters: [{ attribute: 'title', parameter: 'valueOf' }] }]),
    ]);
    const list = g.resolvers.find((r) => r.fieldName === 'listDocs')!;
    const args = { scope: 'public' };
    const request = JSON.parse(renderTemplate(list.requestTemplate, { args, arguments: args, identity: { sub: 'a', groups: ['Admin'] } }).text);
    expect(request.filter).toBeUndefined();
  });
});

describe('list arguments REST refuses with a 400 naming the parameter', () => {
  test('a sort-key range whose lower bound is after its upper bound is a ValidationError naming them, before DynamoDB (REST: "\'from\' must not be after \'to\'")', () => {
    const g = generateGraphqlSchema([
      docsDomain([
        { name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') }, sortKeyRange: { attribute: 'docId', fromParameter: 'from', toParameter: 'to' } },
      ]),
    ]);
    const list = g.resolvers.find((r) => r.fieldName === 'listDocs')!;
    const args = { scope: 'public', from: 'z', to: 'a' };
    let refused: unknown;
    try {
      renderTemplate(list.requestTemplate, { args, arguments: args, identity: { sub: 'a', groups: ['Admin'] } });
    } catch (err) {
      refused = err;
    }
    // Not sent as `#sk BETWEEN :from AND :to` with from > to (DynamoDB would answer ValidationException in its words).
    expect(refused).toBeInstanceOf(TemplateError);
    expect((refused as TemplateError).errorType).toBe('ValidationError');
    expect((refused as TemplateError).templateMessage).toMatch(/from.*to/);
  });
});

describe('the subscription rule, case by case', () => {
  const listAll = { name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') } };
  const change = [{ scope: 'a', docId: 'd1', item: JSON.stringify({ scope: 'a', docId: 'd1', title: 't' }) }];

  test('a group with a list over every partition receives every change without key arguments', async () => {
    const inbox = await received(emulate([docsDomain([listAll])]), user('a1', ['Admin']), 'subscription { onDocsChange { docId } }', change);
    expect(Array.isArray(inbox) ? inbox.map((m) => (m.data as any).onDocsChange.docId) : inbox).toEqual(['d1']);
  });

  test('a group whose only list reads an index (possibly sparse) is refused', async () => {
    const domain = docsDomain([{ ...listAll, name: 'ListByTitle', path: 'by-title', allowedGroups: ['Viewer'], index: 'byTitle', partitionKey: { attribute: 'title', input: QueryInput.queryParameter('title') } }, listAll]);
    (domain.readModels as any[])[0] = { ...domain.readModels![0], indexes: [{ indexName: 'byTitle', partitionKey: { name: 'title' } }] };
    const inbox = await received(emulate([domain]), user('v1', ['Viewer']), 'subscription { onDocsChange { docId } }', change);
    expect(inbox).toEqual({ refused: [expect.objectContaining({ errorType: 'Unauthorized' })] });
  });

  test('a get-only group with the whole key receives that item only; a get with a constant key part gives no subscription', async () => {
    const get = { name: 'GetDoc', path: 'docs/{scope}/{docId}', allowedGroups: ['Viewer'], readModel: 'docs', key: { scope: QueryInput.pathParameter('scope'), docId: QueryInput.pathParameter('docId') } };
    const both = [...change, { scope: 'a', docId: 'd2', item: JSON.stringify({ scope: 'a', docId: 'd2', title: 't' }) }];
    const inbox = await received(emulate([docsDomain([get, listAll])]), user('v1', ['Viewer']), 'subscription { onDocsChange(scope: "a", docId: "d2") { docId } }', both);
    expect(Array.isArray(inbox) ? inbox.map((m) => (m.data as any).onDocsChange.docId) : inbox).toEqual(['d2']);
    const constantGet = { ...get, path: 'public/{docId}', key: { scope: QueryInput.constant('public'), docId: QueryInput.pathParameter('docId') } };
    const refused = await received(emulate([docsDomain([constantGet, listAll])]), user('v1', ['Viewer']), 'subscription { onDocsChange(scope: "a", docId: "d1") { docId } }', change);
    expect(refused).toEqual({ refused: [expect.objectContaining({ errorType: 'Unauthorized' })] });
  });
});

test('an argument starting with __ is refused at synth, naming it', () => {
  const domain = docsDomain([{ name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', filters: [{ attribute: 'title', parameter: '__title' }] }]);
  expect(() => generateGraphqlSchema([domain])).toThrow(/ListDocs: parameter '__title'/);
});

test('a numeric sort-key range with reversed bounds is a ValidationError; equal bounds pass', () => {
  const g = generateGraphqlSchema([
    docsDomain([{ name: 'ListDocs', path: 'docs', allowedGroups: ['Admin'], readModel: 'docs', partitionKey: { attribute: 'scope', input: QueryInput.queryParameter('scope') }, sortKeyRange: { attribute: 'docId', type: QueryInputType.NUMBER, fromParameter: 'min', toParameter: 'max' } }]),
  ]);
  const list = g.resolvers.find((r) => r.fieldName === 'listDocs')!;
  const render = (args: Record<string, unknown>) => renderTemplate(list.requestTemplate, { args, arguments: args, identity: { sub: 'a', groups: ['Admin'] } });
  expect(() => render({ scope: 's', min: 10, max: 9 })).toThrow(/'min' must not be after 'max'/);
  expect(JSON.parse(render({ scope: 's', min: 9, max: 9 }).text).query.expression).toBe('#pk = :pk AND #sk BETWEEN :from AND :to');
});
