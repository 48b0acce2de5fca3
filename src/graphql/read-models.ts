/**
 * Where the GraphQL side finds a domain's read models: the one place that knows how a declared read model maps to
 * its table (and the table's stream), and, for a read model being rebuilt into a new version (issue 12), to the
 * previous version's table and the active-version pointer that chooses between them.
 */
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { EventSourcedDomain } from '../domain';
import type { ReadModelTable } from '../projections';
import { activeVersionKey } from '../projections/keys';

/**
 * A read model kept in two versions: queries read `previous` until the active-version pointer (`pointerKey` in
 * `checkpointTable`, attribute `version`) names `current` or a later version, then `current`, for good.
 */
export interface GraphqlReadModelVersions {
  /** The version the read model is declared at (its `table`). */
  readonly current: number;
  /** The version before it, complete but no longer updated while `current` is built. */
  readonly previous: number;
  readonly previousTable: dynamodb.ITable;
  /** The domain's projection checkpoint table, which holds the pointer. */
  readonly checkpointTable: dynamodb.ITable;
  /** The pointer's partition key (`aggregateId`): `#active#<readModelName>`. */
  readonly pointerKey: string;
}

/** A read model of a domain, as the GraphQL API reads it. */
export interface GraphqlReadModel {
  readonly domain: string;
  readonly name: string;
  readonly table: ReadModelTable;
  /** Present while the previous version is kept (from version 2 on, `retainPreviousVersion`); absent otherwise. */
  readonly versions?: GraphqlReadModelVersions;
}

/** The read models of a domain that the GraphQL API may read, by name. */
export function graphqlReadModel(domain: EventSourcedDomain, name: string): GraphqlReadModel {
  const table = domain.readModels[name];
  if (!table) throw new Error(`GraphQL: domain '${domain.domainName}' has no read model '${name}'`);
  if (!table.previousVersionTable) return { domain: domain.domainName, name, table };
  const checkpointTable = domain.projections?.checkpointTable;
  if (!checkpointTable) {
    throw new Error(
      `GraphQL: read model ${domain.domainName}.${name} is at version ${table.version} with its previous version kept, but the domain has no projections: ` +
        'nothing would build the new version or switch queries to it; declare its projections or set retainPreviousVersion to false',
    );
  }
  return {
    domain: domain.domainName,
    name,
    table,
    versions: {
      current: table.version,
      previous: table.version - 1,
      previousTable: table.previousVersionTable,
      checkpointTable,
      pointerKey: activeVersionKey(table.readModelName),
    },
  };
}

/**
 * Turns the read model's table stream on (new and old images) and returns its ARN: the current version's table
 * (the previous version is not written to any more while the current one is built, and is not streamed). The
 * stream feeds the live updates; it does not change what projections write.
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
