import { CfnDeletionPolicy, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { versionedReadModel } from './keys';

/** A key attribute of a read model. */
export interface ReadModelKey {
  /** The attribute's name. */
  readonly name: string;
  /**
   * The attribute's DynamoDB type.
   * @default dynamodb.AttributeType.STRING
   */
  readonly type?: dynamodb.AttributeType;
}

/** A secondary index of a read model. */
export interface ReadModelIndex {
  /** The index's name (unique among the table's indexes). */
  readonly indexName: string;
  /** The index's partition key. */
  readonly partitionKey: ReadModelKey;
  /**
   * The index's sort key.
   * @default - none
   */
  readonly sortKey?: ReadModelKey;
}

/** Properties of a ReadModelTable. */
export interface ReadModelTableProps {
  /** The partition key. */
  readonly partitionKey: ReadModelKey;
  /**
   * The sort key.
   * @default - none
   */
  readonly sortKey?: ReadModelKey;
  /**
   * Global secondary indexes (all attributes projected), for queries by other keys.
   * @default - none
   */
  readonly indexes?: ReadModelIndex[];
  /**
   * Turn DynamoDB TTL on for this attribute; projections with a `ttl` write it (epoch seconds).
   * @default - no TTL
   */
  readonly timeToLiveAttribute?: string;
  /**
   * The table's name.
   * @default - generated
   */
  readonly tableName?: string;
  /**
   * The read model's name in its projection state machine: its checkpoints are kept per read model and
   * aggregate under `<readModelName>#<aggregateId>`, and its parked events under the same key. Changing it
   * starts the read model's checkpoints over (rebuild it). Letters, digits, `_` and `-`, at most 64.
   * @default - the construct id
   */
  readonly readModelName?: string;
  /**
   * Kept by default: a read model can be rebuilt from the event store, but the rebuild takes time during which
   * its queries answer from an empty table. EventSourcedDomain passes DESTROY in the development environment.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Point-in-time recovery of the table.
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;
  /**
   * A customer managed key; without one, DynamoDB encrypts with an AWS-owned key.
   * @default - AWS-owned key
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * The read model's version. Raise it (by one) to rebuild the read model from the event store into a fresh
   * table, for example after fixing a projection: the deployment creates the new version's table, the backfill
   * fills it from the store (its checkpoints and parking keys are `<readModelName>@v<version>#<aggregateId>`),
   * and when it has caught up, queries switch to it at once (the active-version pointer in the checkpoint
   * table). Until then queries answer from the previous version, complete but no longer updated. The previous
   * version's table is kept (`retainPreviousVersion`). A new version must keep the keys and indexes of the
   * previous one (give the read model another name to change them).
   * @default 1
   */
  readonly version?: number;
  /**
   * Keep the previous version's table (version - 1) in the stack, for queries until the switch and as a fallback
   * after it. Set it to false to remove that table: the deployment fails, and removes nothing, unless queries
   * switched to this version at least `previousVersionRetention` ago.
   * @default true (only meaningful from version 2 on)
   */
  readonly retainPreviousVersion?: boolean;
  /**
   * The least time between the switch to this version and a deployment that removes the previous version's
   * table (`retainPreviousVersion: false`).
   * @default Duration.days(3)
   */
  readonly previousVersionRetention?: Duration;
}

/**
 * A DynamoDB table holding a read model: keys of your choosing, optional indexes, TTL when asked, on-demand,
 * point-in-time recovery and encryption at rest.
 */
export class ReadModelTable extends Construct {
  /** The underlying DynamoDB table. */
  public readonly table: dynamodb.Table;
  /** The table's name. */
  public readonly tableName: string;
  /** The table's ARN. */
  public readonly tableArn: string;
  /** The partition key, with its type filled in (STRING when not given). */
  public readonly partitionKey: ReadModelKey;
  /** The sort key, with its type filled in (STRING when not given); undefined when the table has none. */
  public readonly sortKey?: ReadModelKey;
  /** The TTL attribute; undefined when TTL is off. */
  public readonly timeToLiveAttribute?: string;
  /** The names of the global secondary indexes, in the order given (empty when there are none). */
  public readonly indexNames: string[];
  /** The read model's name (all versions); the prefix of its version 1 checkpoint and parking keys. */
  public readonly readModelName: string;
  /** The read model's version (1 unless raised). */
  public readonly version: number;
  /**
   * This version's identity in its projection state machine: the branch, the checkpoint and parking keys
   * (`<versionedName>#<aggregateId>`) and the backfill. `readModelName` for version 1, `<readModelName>@v<N>` after.
   */
  public readonly versionedName: string;
  /** The previous version's table (version - 1), kept until `retainPreviousVersion` is false; undefined otherwise. */
  public readonly previousVersionTable?: dynamodb.Table;
  /** The least time between the switch and the removal of the previous version's table. */
  public readonly previousVersionRetention: Duration;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (ReadModelTableProps)
   */
  constructor(scope: Construct, id: string, props: ReadModelTableProps) {
    super(scope, id);
    const problems: string[] = [];
    const name = /^[A-Za-z_][A-Za-z0-9_.-]{0,254}$/;
    for (const key of [props.partitionKey, props.sortKey, ...(props.indexes ?? []).flatMap((i) => [i.partitionKey, i.sortKey])]) {
      if (key && !name.test(key.name)) problems.push(`key attribute '${key.name}' is not a valid attribute name`);
    }
    if (props.sortKey && props.sortKey.name === props.partitionKey.name) problems.push("'sortKey' and 'partitionKey' have the same name");
    if (props.timeToLiveAttribute && [props.partitionKey.name, props.sortKey?.name].includes(props.timeToLiveAttribute)) {
      problems.push(`'timeToLiveAttribute' ${props.timeToLiveAttribute} is a key attribute`);
    }
    const readModelName = props.readModelName ?? id;
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(readModelName)) {
      problems.push(`'readModelName' '${readModelName}' must be a letter then letters, digits, '_' or '-' (at most 64)${props.readModelName ? '' : ' (it defaults to the construct id: give one)'}`);
    }
    const indexNames = (props.indexes ?? []).map((i) => i.indexName);
    if (new Set(indexNames).size !== indexNames.length) problems.push('index names must be unique');
    const version = props.version ?? 1;
    if (!Number.isInteger(version) || version < 1 || version > 9999) problems.push(`'version' must be an integer from 1 to 9999, got ${props.version}`);
    if (props.retainPreviousVersion === false && version === 1) problems.push("'retainPreviousVersion' is false but 'version' is 1: there is no previous version");
    const retention = props.previousVersionRetention ?? Duration.days(3);
    if (retention.toSeconds() > 366 * 86400) problems.push("'previousVersionRetention' must be at most 366 days");
    if (problems.length > 0) throw new Error(`ReadModelTable ${this.node.path}: ${problems.join('; ')}`);

    const attr = (k: ReadModelKey): dynamodb.Attribute => ({ name: k.name, type: k.type ?? dynamodb.AttributeType.STRING });
    // Version 1 keeps the construct id 'Table' (its physical identity never changes when versions are added);
    // version N is 'TableV<N>', named `<tableName>-v<N>` when a name is given.
    const tableOf = (v: number, removalPolicy: RemovalPolicy): dynamodb.Table => {
      const table = this.versionTable(v, props, attr, removalPolicy);
      for (const index of props.indexes ?? []) {
        table.addGlobalSecondaryIndex({
          indexName: index.indexName,
          partitionKey: attr(index.partitionKey),
          sortKey: index.sortKey ? attr(index.sortKey) : undefined,
          projectionType: dynamodb.ProjectionType.ALL,
        });
      }
      return table;
    };
    // The previous version is removed only by a deployment a guard lets through (after the switch and the
    // retention), so it may be destroyed then; the current one keeps the removal policy asked for.
    if (version > 1 && props.retainPreviousVersion !== false) {
      this.previousVersionTable = tableOf(version - 1, RemovalPolicy.DESTROY);
      // The previous table is synthesized from this version's keys: a version that changes them would make
      // CloudFormation replace the previous table, and a replaced table is deleted in the cleanup unless its
      // UpdateReplacePolicy is Retain. Retain keeps its items in the account (orphaned) if that happens; the keys
      // must stay the same across versions (see `version`).
      (this.previousVersionTable.node.defaultChild as dynamodb.CfnTable).cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    }
    this.table = tableOf(version, props.removalPolicy ?? RemovalPolicy.RETAIN);
    this.tableName = this.table.tableName;
    this.tableArn = this.table.tableArn;
    this.partitionKey = { name: props.partitionKey.name, type: props.partitionKey.type ?? dynamodb.AttributeType.STRING };
    this.sortKey = props.sortKey ? { name: props.sortKey.name, type: props.sortKey.type ?? dynamodb.AttributeType.STRING } : undefined;
    this.timeToLiveAttribute = props.timeToLiveAttribute;
    this.indexNames = indexNames;
    this.readModelName = readModelName;
    this.version = version;
    this.versionedName = versionedReadModel(readModelName, version);
    this.previousVersionRetention = retention;
  }

  private versionTable(
    version: number,
    props: ReadModelTableProps,
    attr: (k: ReadModelKey) => dynamodb.Attribute,
    removalPolicy: RemovalPolicy,
  ): dynamodb.Table {
    return new dynamodb.Table(this, version === 1 ? 'Table' : `TableV${version}`, {
      tableName: props.tableName && version > 1 ? `${props.tableName}-v${version}` : props.tableName,
      partitionKey: attr(props.partitionKey),
      sortKey: props.sortKey ? attr(props.sortKey) : undefined,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      encryption: props.encryptionKey ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.DEFAULT,
      encryptionKey: props.encryptionKey,
      timeToLiveAttribute: props.timeToLiveAttribute,
      removalPolicy,
    });
  }
}
