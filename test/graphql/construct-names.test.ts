/**
 * SkafuGraphqlApi with domains shaped like a user's, where names that are distinct as declared become equal once the
 * generator strips their dashes, or collide with the schema's reserved names (issue 16; found by a hostile review).
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildSchema } from 'graphql';
import { APPSYNC_DEFINITIONS } from '../../local/src/appsync-schema';
import { AggregateIdSource, ProjectionAction, ProjectionValue, QueryInput, SkafuPlatform, type DomainDeclaration } from '../../src';

function invoices(domain: string, readModel: string): DomainDeclaration {
  return {
    name: domain,
    commands: [
      {
        name: 'IssueInvoice',
        path: 'invoices',
        allowedGroups: ['Admin'],
        aggregateType: 'Invoice',
        aggregateId: AggregateIdSource.generated('inv-'),
        eventType: 'InvoiceIssued',
        bodySchema: { type: 'object', additionalProperties: false, required: ['total'], properties: { total: { type: 'number' } } },
      },
    ],
    readModels: [
      {
        name: readModel,
        partitionKey: { name: 'invoiceId' },
        projections: [
          { eventType: 'InvoiceIssued', action: ProjectionAction.putItem({ key: { invoiceId: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { total: ProjectionValue.fromData('total') } }) },
        ],
      },
    ],
    queries: [{ name: `Get${readModel.replace(/[^A-Za-z0-9]/g, '')}Of${domain.replace(/[^A-Za-z0-9]/g, '')}`, path: 'invoices/{invoiceId}', allowedGroups: ['Admin'], readModel, key: { invoiceId: QueryInput.pathParameter('invoiceId') } }],
  };
}

test('two domains (`billing` with `v2-invoices`, `billing-v2` with `invoices`) either synthesize with distinct AppSync data source names or are refused at synth naming them', () => {
  const stack = new Stack(new App(), 'Gql', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  platform.addDomain(invoices('billing', 'v2-invoices'));
  platform.addDomain(invoices('billing-v2', 'invoices'));
  let template: Template;
  try {
    platform.addGraphqlApi();
    template = Template.fromStack(stack);
  } catch (err) {
    // A refusal at synth is acceptable if it names the clash, not a construct-id collision deep in the tree.
    expect((err as Error).message).toMatch(/billing/);
    expect((err as Error).message).not.toMatch(/There is already a Construct with name/);
    return;
  }
  // AppSync data source names are unique per API: a clash passes synth and fails the deployment.
  const names = Object.values(template.findResources('AWS::AppSync::DataSource')).map((r: any) => r.Properties.Name);
  expect(new Set(names).size).toBe(names.length);
});

test('a read model named `query` (which EventSourcedDomain accepts) is refused at synth, not by AppSync at deploy ("There can be only one type named Query")', () => {
  const stack = new Stack(new App(), 'Gql', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  platform.addDomain(invoices('billing', 'query'));
  let sdl: string;
  try {
    sdl = platform.addGraphqlApi().schema;
    Template.fromStack(stack);
  } catch (err) {
    expect((err as Error).message).toMatch(/query/i);
    return;
  }
  expect(() => buildSchema(`${APPSYNC_DEFINITIONS}\n${sdl}`)).not.toThrow();
});
