/**
 * Where the GraphQL side finds a domain's read models: the one place that knows how a declared read model maps to
 * its table (and the table's stream). Read-model versioning (issue 12) changes this mapping here only.
 */
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { EventSourcedDomain } from '../domain';
import type { ReadModelTable } from '../projections';

/** A read model of a domain, as the GraphQL API reads it. */
export interface GraphqlReadModel {
  readonly domain: string;
  readonly name: string;
  readonly table: ReadModelTable;
}

/** The read models of a domain that the GraphQL API may read, by name. */
export function graphqlReadModel(domain: EventSourcedDomain, name: string): GraphqlReadModel {
  const table = domain.readModels[name];
  if (!table) throw new Error(`GraphQL: domain '${domain.domainName}' has no read model '${name}'`);
  return { domain: domain.domainName, name, table };
}

/**
 * Turns the read model's table stream on (new and old images) and returns its ARN. The stream feeds the live
 * updates; it does not change what projections write.
 */
export function readModelStreamArn(model: GraphqlReadModel): string {
  const cfn = model.table.table.node.defaultChild as dynamodb.CfnTable;
  const existing = cfn.streamSpecification as dynamodb.CfnTable.StreamSpecificationProperty | undefined;
  if (existing && existing.streamViewType !== dynamodb.StreamViewType.NEW_AND_OLD_IMAGES) {
    throw new Error(`GraphQL: the table of read model ${model.domain}.${model.name} already has a ${existing.streamViewType} stream; live updates need NEW_AND_OLD_IMAGES`);
  }
  cfn.streamSpecification = { streamViewType: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES };
  return cfn.attrStreamArn;
}
