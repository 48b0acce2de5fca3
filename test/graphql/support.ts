/**
 * A platform shaped like a user's, with the GraphQL API, its synthesized resolvers run by the AppSync emulation
 * (local/src/appsync.ts) against its read-model tables created in DynamoDB Local from the synthesized template.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { observability, projectManagement } from '../../examples/platform/domains';
import { AppSync, appSyncFromTemplate } from '../../local/src/appsync';
import { createTableInputFromCfn } from '../../local/src/tables';
import { AggregateIdSource, DataSource, ProjectionAction, ProjectionValue, QueryInput, SkafuPlatform, type DomainDeclaration } from '../../src';

/** A domain whose items belong to their creator: Developers and Viewers read their own, Admins read all. */
export const vault: DomainDeclaration = {
  name: 'vault',
  commands: [
    {
      name: 'StoreSecret',
      path: 'secrets',
      allowedGroups: ['Admin', 'Developer', 'Viewer'],
      aggregateType: 'Secret',
      aggregateId: AggregateIdSource.generated('secret-'),
      eventType: 'SecretStored',
      bodySchema: { type: 'object', additionalProperties: false, required: ['label'], properties: { label: { type: 'string', maxLength: 100 } } },
      extraData: { ownerId: DataSource.userId() },
    },
  ],
  readModels: [
    {
      name: 'secrets',
      partitionKey: { name: 'secretId' },
      projections: [
        {
          eventType: 'SecretStored',
          action: ProjectionAction.putItem({
            key: { secretId: ProjectionValue.fromEnvelope('aggregateId') },
            attributes: { label: ProjectionValue.fromData('label'), ownerId: ProjectionValue.fromData('ownerId') },
          }),
        },
      ],
    },
  ],
  queries: [
    { name: 'GetSecret', path: 'secrets/{secretId}', allowedGroups: ['Admin', 'Developer', 'Viewer'], readModel: 'secrets', key: { secretId: QueryInput.pathParameter('secretId') }, ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] } },
    { name: 'ListSecrets', path: 'secrets', allowedGroups: ['Admin', 'Developer'], readModel: 'secrets', ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] } },
  ],
};

export const DOMAINS = [observability, projectManagement, vault];

/** The same domains with read models at other versions: secrets v2, alerts v3 (both keep their previous), projects v2 without its previous. */
export const VERSIONED: DomainDeclaration[] = [
  { ...observability, readModels: observability.readModels!.map((r) => (r.name === 'alerts' ? { ...r, version: 3 } : r)) },
  { ...projectManagement, readModels: projectManagement.readModels!.map((r) => (r.name === 'projects' ? { ...r, version: 2, retainPreviousVersion: false } : r)) },
  { ...vault, readModels: vault.readModels!.map((r) => ({ ...r, version: 2 })) },
];

export interface GraphqlFixture {
  readonly appsync: AppSync;
  /** Local table name of each read model (`alerts`, `metrics`, `projects`, `secrets`). */
  readonly tables: Record<string, string>;
  /** Local table name of every table a data source reads, by the template's logical id. */
  readonly tablesById: Record<string, string>;
  /** The schema and resolvers as Skafu Local reads them from the template. */
  readonly config: ReturnType<typeof appSyncFromTemplate>;
  readonly template: Record<string, any>;
}

export async function graphqlFixture(client: DynamoDBClient, domains: DomainDeclaration[] = DOMAINS): Promise<GraphqlFixture> {
  const stack = new Stack(new App(), 'GqlRun', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  for (const d of domains) platform.addDomain(d);
  platform.addGraphqlApi();
  const template = Template.fromStack(stack).toJSON();
  const resources = template.Resources as Record<string, any>;
  const created = new Map<string, string>();
  const refs: string[] = [];
  appSyncFromTemplate(resources, (value) => {
    refs.push((value as any).Ref);
    return '';
  });
  for (const ref of new Set(refs)) {
    const name = `rm-${ref.slice(0, 40)}-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resources[ref].Properties, name)));
    created.set(ref, name);
  }
  const config = appSyncFromTemplate(resources, (value) => created.get((value as any).Ref)!);
  const tables: Record<string, string> = {};
  for (const [ref, name] of created) {
    const model = ['Alerts', 'Metrics', 'Projects', 'Secrets'].find((m) => ref.includes(`ReadModel${m}`));
    if (model) tables[model.toLowerCase()] = name;
  }
  const appsync = new AppSync({ sdl: config.sdl, resolvers: config.resolvers, client });
  return { appsync, tables, tablesById: Object.fromEntries(created), config, template };
}
