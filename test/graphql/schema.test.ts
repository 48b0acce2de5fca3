/**
 * The GraphQL schema generated from the declarations: a deliberate snapshot of the example platform's schema
 * (updated only on purpose: `npx projen test:update`), its validity as AppSync reads it, and what the generator
 * refuses.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildSchema, GraphQLNonNull, GraphQLObjectType, isListType } from 'graphql';
import { observability, projectManagement } from '../../examples/platform/domains';
import { APPSYNC_DEFINITIONS } from '../../local/src/appsync-schema';
import { ProjectionAction, ProjectionValue, QueryInput, QueryInputType, ValueType, type DomainDeclaration } from '../../src';
import { generateGraphqlSchema } from '../../src/graphql/schema';

const example = generateGraphqlSchema([observability, projectManagement]);

test('the example platform schema (snapshot, updated only on purpose)', () => {
  expect(example.sdl).toMatchSnapshot();
});

test('the schema is valid GraphQL with the AppSync scalars and directives', () => {
  const schema = buildSchema(`${APPSYNC_DEFINITIONS}\n${example.sdl}`);
  const alerts = schema.getType('Alerts') as GraphQLObjectType;
  expect(Object.keys(alerts.getFields()).sort()).toEqual(['alertId', 'condition', 'createdAt', 'lastTriggeredAt', 'lastValue', 'metricName', 'name', 'severity', 'threshold', 'triggerCount', 'version']);
  expect(String(alerts.getFields().alertId.type)).toBe('String!');
  expect(String(alerts.getFields().threshold.type)).toBe('Float');
  const query = schema.getQueryType()!.getFields();
  expect(Object.keys(query)).toEqual(['queryMetrics', 'listAlerts', 'getAlert', 'listProjects', 'getProject', 'listMyProjects']);
  expect(query.queryMetrics.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['name: String!', 'from: String', 'to: String', 'limit: Int', 'nextToken: String']);
  expect(query.getAlert.type).not.toBeInstanceOf(GraphQLNonNull);
  const subscription = schema.getSubscriptionType()!.getFields();
  expect(subscription.onAlertsChange.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['alertId: String']);
  expect(subscription.onMetricsChange.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['name: String', 'collectedAt: String']);
});

test('every field carries the REST route\'s groups; the change mutations are IAM only', () => {
  const schema = buildSchema(`${APPSYNC_DEFINITIONS}\n${example.sdl}`);
  const values = (d: any) => (d.arguments ?? []).flatMap((a: any) => (a.value.values ?? []).map((v: any) => v.value));
  const directives = (node: any) => Object.fromEntries((node?.directives ?? []).map((d: any) => [d.name.value, values(d)]));
  const query = schema.getQueryType()!.getFields();
  for (const d of [observability, projectManagement]) {
    for (const q of d.queries ?? []) {
      const field = query[q.name.charAt(0).toLowerCase() + q.name.slice(1)];
      const expected = { field: field.name, directives: { aws_cognito_user_pools: q.allowedGroups } };
      expect({ field: field.name, directives: directives(field.astNode) }).toEqual(expected);
    }
  }
  for (const field of Object.values(schema.getMutationType()!.getFields())) expect(directives(field.astNode)).toEqual({ aws_iam: [] });
  for (const field of Object.values(schema.getSubscriptionType()!.getFields())) expect(Object.keys(directives(field.astNode)).sort()).toEqual(['aws_cognito_user_pools', 'aws_subscribe']);
  // ListMyProjects is Admin and Developer only, as its REST route.
  expect(directives(query.listMyProjects.astNode)).toEqual({ aws_cognito_user_pools: ['Admin', 'Developer'] });
});

test('types follow the declarations: keys non-null, numbers Float, appended values lists, number keys Float', () => {
  const domain: DomainDeclaration = {
    name: 'ledger',
    commands: [],
    readModels: [
      {
        name: 'entries',
        partitionKey: { name: 'account' },
        sortKey: { name: 'seq', type: 'N' as any },
        projections: [
          {
            eventType: 'Posted',
            action: ProjectionAction.updateItem({
              key: { account: ProjectionValue.fromData('account'), seq: ProjectionValue.fromEnvelope('eventSequence') },
              set: { flag: ProjectionValue.fromData('flag', ValueType.BOOLEAN), raw: ProjectionValue.dataAsJson() },
              add: { total: ProjectionValue.fromData('amount', ValueType.NUMBER) },
              append: { notes: ProjectionValue.fromData('note') },
            }),
          },
        ],
      },
    ],
    queries: [
      { name: 'ListEntries', path: 'entries/{account}', allowedGroups: ['Auditor'], readModel: 'entries', partitionKey: { attribute: 'account', input: QueryInput.pathParameter('account') }, sortKeyRange: { attribute: 'seq', fromParameter: 'fromSeq', type: QueryInputType.NUMBER }, pageSize: 5, maxPageSize: 7 },
    ],
  };
  const g = generateGraphqlSchema([domain]);
  const schema = buildSchema(`${APPSYNC_DEFINITIONS}\n${g.sdl}`);
  const fields = (schema.getType('Entries') as GraphQLObjectType).getFields();
  expect(Object.fromEntries(Object.entries(fields).map(([n, f]) => [n, String(f.type)]))).toEqual({ account: 'String!', flag: 'Boolean', notes: '[String]', raw: 'String', seq: 'Float!', total: 'Float' });
  expect(isListType(fields.notes.type)).toBe(true);
  expect(String(schema.getQueryType()!.getFields().listEntries.args.find((a) => a.name === 'fromSeq')!.type)).toBe('Float');
  expect(g.sdl).toContain('Items in the page (1 to 7; default 5)');
  expect(g.resolvers.find((r) => r.fieldName === 'listEntries')!.requestTemplate).toContain('$limit > 7');
});

test('refused: the same type or field from two domains, one attribute with two types, a non-GraphQL attribute name', () => {
  const copy = (name: string): DomainDeclaration => ({ ...observability, name });
  expect(() => generateGraphqlSchema([observability, copy('observability-two')])).toThrow(/'getAlert' would be generated for both query observability\.GetAlert and query observability-two\.GetAlert/);
  const clash: DomainDeclaration = {
    name: 'clash',
    readModels: [
      {
        name: 'things',
        partitionKey: { name: 'id' },
        projections: [
          { eventType: 'A', action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromData('id') }, attributes: { 'size': ProjectionValue.fromData('size', ValueType.NUMBER), 'bad-name': ProjectionValue.string('x') } }) },
          { eventType: 'B', action: ProjectionAction.updateItem({ key: { id: ProjectionValue.fromData('id') }, set: { size: ProjectionValue.fromData('size') } }) },
        ],
      },
    ],
    queries: [{ name: 'GetThing', path: 'things/{id}', allowedGroups: ['Admin'], readModel: 'things', key: { id: QueryInput.pathParameter('id') } }],
  };
  expect(() => generateGraphqlSchema([clash])).toThrow(/attribute 'bad-name' \(projection of A\) is not a GraphQL field name.*attribute 'size' is Float \(projection of A\) and String \(projection of B\)/);
});

test('a read model no bundled query reads is not served; a custom handler\'s query is not served', () => {
  const g = generateGraphqlSchema([{ ...observability, queries: (observability.queries ?? []).filter((q) => q.readModel !== 'metrics') }]);
  expect(g.models.map((m) => m.readModel)).toEqual(['alerts']);
  expect(g.sdl).not.toContain('Metrics');
});

test('owner-only readers: the change type carries the owner, the subscription filters on it for them', () => {
  const domain: DomainDeclaration = {
    ...projectManagement,
    name: 'private-projects',
    queries: [{ name: 'MyProjects', path: 'mine', allowedGroups: ['Admin', 'Developer'], readModel: 'projects', ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] } }],
  };
  const g = generateGraphqlSchema([domain]);
  const model = g.models[0];
  expect(model.ownerAttribute).toBe('ownerId');
  expect(g.sdl).toMatch(/type ProjectsChange[^}]*ownerId: String/);
  const sub = g.resolvers.find((r) => r.fieldName === 'onProjectsChange')!;
  expect(sub.responseTemplate).toContain("$util.qr($filter.put('ownerId', {\"eq\": $ctx.identity.sub}))");
});

test('the README shows the schema generated for the example platform, as generated', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const shown = /<summary>examples\/platform \(observability, projects\): the SDL<\/summary>\n\n```graphql\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(shown).toBe(example.sdl);
});
