/**
 * Read models kept in two versions (issue 12), as SkafuGraphqlApi synthesizes them: pipeline resolvers that read
 * the active-version pointer then exactly one version, a pointer data source whose role may read the pointer items
 * and nothing else (dynamodb:LeadingKeys), the change publisher streamed from the current version only and allowed
 * to read the pointers; cdk-nag AwsSolutions (0 unacknowledged) and cfn-lint clean. A read model without versions
 * synthesizes exactly as before (the snapshot was recorded from the code before versions existed).
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { vault, VERSIONED } from './support';
import { observability, projectManagement } from '../../examples/platform/domains';
import { SkafuPlatform, type DomainDeclaration } from '../../src';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, nagErrors, nagWarnings } from '../support/nag';

/** The GraphQL API's resources and what it changes elsewhere (streams on the tables), asset hashes left out. */
export function graphqlResources(template: Record<string, any>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [id, r] of Object.entries<any>(template.Resources)) {
    if (r.Type === 'AWS::DynamoDB::Table') {
      out[id] = { Type: r.Type, StreamSpecification: r.Properties.StreamSpecification ?? null };
    } else if (id.includes('Graphql')) {
      out[id] = JSON.parse(JSON.stringify(r).replace(/"S3Key":"[0-9a-f]{64}\.zip"/g, '"S3Key":"<asset>.zip"'));
    }
  }
  return out;
}

export function platformTemplate(domains: DomainDeclaration[], stackName = 'GqlVersions', nag = false): { stack: Stack; template: Record<string, any> } {
  const stack = new Stack(new App(), stackName, { env: { account: '111111111111', region: 'eu-west-1' } });
  if (nag) applyAwsSolutions(stack);
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  for (const d of domains) platform.addDomain(d);
  platform.addGraphqlApi();
  return { stack, template: Template.fromStack(stack).toJSON() };
}

test('read models without versions synthesize exactly as before versions existed (GraphQL resources and table streams)', () => {
  expect(graphqlResources(platformTemplate([observability, projectManagement, vault]).template)).toMatchSnapshot();
});

describe('read models kept in two versions', () => {
  const plain = platformTemplate([observability, projectManagement, vault]).template;
  const { template } = platformTemplate(VERSIONED);
  const resources = template.Resources as Record<string, any>;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const resolver = (field: string) => ofType('AWS::AppSync::Resolver').find(([, r]) => r.Properties.FieldName === field)!;
  const fnById = (ref: any) => resources[ref['Fn::GetAtt'][0]];
  const dsOf = (ref: any) => resources[ref['Fn::GetAtt'][0]];
  const tableOf = (ds: any) => ds.Properties.DynamoDBConfig.TableName.Ref as string;
  const roleStatements = (roleArn: any) => {
    const role = roleArn['Fn::GetAtt'][0];
    return ofType('AWS::IAM::Policy').filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: role }])).flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
  };

  test.each([
    ['getSecret', /VaultReadModelSecretsTable(?!V)/i, /VaultReadModelSecretsTableV2/i, '#active#secrets', /VaultProjectionsCheckpoints/i],
    ['listSecrets', /VaultReadModelSecretsTable(?!V)/i, /VaultReadModelSecretsTableV2/i, '#active#secrets', /VaultProjectionsCheckpoints/i],
    ['getAlert', /ObservabilityReadModelAlertsTableV2/i, /ObservabilityReadModelAlertsTableV3/i, '#active#alerts', /ObservabilityProjectionsCheckpoints/i],
    ['listAlerts', /ObservabilityReadModelAlertsTableV2/i, /ObservabilityReadModelAlertsTableV3/i, '#active#alerts', /ObservabilityProjectionsCheckpoints/i],
  ])('%s: a pipeline reading the pointer, then the previous version (%s) or the current one (%s)', (field, previous, current, key, checkpoints) => {
    const [, r] = resolver(field);
    expect(r.Properties.Kind).toBe('PIPELINE');
    expect(r.Properties.DataSourceName).toBeUndefined();
    const functions = (r.Properties.PipelineConfig.Functions as any[]).map(fnById);
    expect(functions.map((f) => f.Properties.Name.replace(/^.*_/, ''))).toEqual(['ActiveVersion', 'ReadPrevious', 'ReadCurrent']);
    for (const f of functions) expect(f.Properties).toMatchObject({ FunctionVersion: '2018-05-29', RequestMappingTemplate: expect.any(String), ResponseMappingTemplate: expect.any(String) });
    const [pointer, prev, cur] = functions.map((f) => dsOf(f.Properties.DataSourceName));
    expect(tableOf(pointer)).toMatch(checkpoints);
    expect(tableOf(prev)).toMatch(previous);
    expect(tableOf(cur)).toMatch(current);
    expect(functions[0].Properties.RequestMappingTemplate).toContain(`'${key}'`);
    // The pointer's data source: GetItem of the pointer keys, nothing else of the checkpoint table.
    expect(roleStatements(pointer.Properties.ServiceRoleArn)).toEqual([
      {
        Action: 'dynamodb:GetItem',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(checkpoints), 'Arn'] },
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [key] } },
      },
    ]);
    // Each version's data source reads only its own table.
    for (const [ds, table] of [[prev, previous], [cur, current]] as const) {
      const statements = roleStatements(ds.Properties.ServiceRoleArn);
      expect(statements).toHaveLength(1);
      expect(statements[0].Action).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan']);
      for (const res of [statements[0].Resource].flat()) expect(JSON.stringify(res)).toMatch(table);
    }
  });

  test('a read model without its previous version (retainPreviousVersion: false) and the unversioned ones keep unit resolvers, as before', () => {
    for (const field of ['getProject', 'listProjects', 'listMyProjects']) {
      const [, r] = resolver(field);
      expect(r.Properties.Kind).toBe('UNIT');
      expect(tableOf(dsOf(r.Properties.DataSourceName))).toMatch(/projectsReadModelProjectsTableV2/);
    }
    // metrics has no version: its resolvers, data source and role are those of the app without versions.
    const plainResources = plain.Resources as Record<string, any>;
    const metricsResolver = Object.entries(plainResources).find(([, r]) => r.Type === 'AWS::AppSync::Resolver' && r.Properties.FieldName === 'queryMetrics')!;
    expect(resolver('queryMetrics')).toEqual(metricsResolver);
    const ds = metricsResolver[1].Properties.DataSourceName['Fn::GetAtt'][0];
    expect(resources[ds]).toEqual(plainResources[ds]);
    expect(roleStatements(resources[ds].Properties.ServiceRoleArn)).toEqual(
      (Object.values(plainResources).filter((p: any) => p.Type === 'AWS::IAM::Policy' && JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: resources[ds].Properties.ServiceRoleArn['Fn::GetAtt'][0] }])) as any[]).flatMap((p) => p.Properties.PolicyDocument.Statement),
    );
  });

  test('live updates stream the current version only; the publisher may read the pointers and nothing else of the checkpoint tables', () => {
    const streamed = ofType('AWS::DynamoDB::Table').filter(([, t]) => t.Properties.StreamSpecification).map(([id]) => id);
    expect(streamed).toEqual(expect.arrayContaining([expect.stringMatching(/VaultReadModelSecretsTableV2/i), expect.stringMatching(/ObservabilityReadModelAlertsTableV3/i)]));
    expect(streamed.filter((id) => /VaultReadModelSecretsTable(?!V)|AlertsTableV2/i.test(id))).toEqual([]);
    const mappings = ofType('AWS::Lambda::EventSourceMapping').filter(([id]) => id.includes('ChangePublisher')).map(([, m]) => JSON.stringify(m.Properties.EventSourceArn));
    // One per served read model, on its current version's table.
    expect(mappings.map((m) => /ReadModel(\w+?)Table(V\d)?[0-9A-F]{8}/.exec(m)?.slice(1).join('')).sort()).toEqual(['AlertsV3', 'Metrics', 'ProjectsV2', 'SecretsV2']);
    const fn = ofType('AWS::Lambda::Function').find(([, f]) => f.Properties.Environment?.Variables?.SKAFU_GRAPHQL_MODELS)![1];
    const env = fn.Properties.Environment.Variables;
    expect(Object.keys(env).filter((k) => k.startsWith('SKAFU_GRAPHQL_CHECKPOINTS_')).map((k) => JSON.stringify(env[k]))).toEqual([
      expect.stringMatching(/ObservabilityProjectionsCheckpoints/i),
      expect.stringMatching(/VaultProjectionsCheckpoints/i),
    ]);
    const pointerStatements = roleStatements(fn.Properties.Role).filter((s: any) => JSON.stringify(s.Resource).includes('Checkpoints'));
    expect(pointerStatements).toEqual([
      { Action: 'dynamodb:GetItem', Effect: 'Allow', Resource: { 'Fn::GetAtt': [expect.stringMatching(/ObservabilityProjectionsCheckpoints/i), 'Arn'] }, Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['#active#alerts'] } } },
      { Action: 'dynamodb:GetItem', Effect: 'Allow', Resource: { 'Fn::GetAtt': [expect.stringMatching(/VaultProjectionsCheckpoints/i), 'Arn'] }, Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['#active#secrets'] } } },
    ]);
  });
});

describe('cdk-nag and cfn-lint with read models kept in two versions', () => {
  const nagged = platformTemplate(VERSIONED, 'GqlVersionsNag', true);
  test('zero unacknowledged AwsSolutions errors, and no warnings on the GraphQL API', () => {
    expect(nagErrors(nagged.stack)).toEqual([]);
    expect(nagWarnings(nagged.stack).filter((e) => e.path.includes('/Graphql/'))).toEqual([]);
  });
  test('cfn-lint finds nothing', () => {
    expect(cfnLint({ Platform: nagged.template })).toEqual([]);
  });
});

test('a read model kept in two versions in a domain without projections throws at synth, naming it (nothing would build or switch it)', () => {
  const noProjections: DomainDeclaration = { ...vault, name: 'frozen', commands: [], readModels: vault.readModels!.map((r) => ({ ...r, version: 2, projections: [] })) };
  // The domain refuses it first (a version above 1 is filled by its projections), whether or not the previous is kept.
  expect(() => platformTemplate([noProjections], 'GqlFrozen')).toThrow(/FrozenDomain: read model secrets: version 2 is filled by its projections from the event store, but it has none/);
  expect(() => platformTemplate([{ ...noProjections, readModels: noProjections.readModels!.map((r) => ({ ...r, retainPreviousVersion: false })) }], 'GqlFrozenToo')).toThrow(/read model secrets: version 2/);
  expect(() => platformTemplate([{ ...noProjections, readModels: noProjections.readModels!.map((r) => ({ ...r, version: 1 })) }], 'GqlFrozenV1')).not.toThrow();
});
