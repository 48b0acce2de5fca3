import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/** A key attribute of a read model. */
export interface ReadModelKey {
  readonly name: string;
  /** @default dynamodb.AttributeType.STRING */
  readonly type?: dynamodb.AttributeType;
}

/** A secondary index of a read model. */
export interface ReadModelIndex {
  readonly indexName: string;
  readonly partitionKey: ReadModelKey;
  /** @default - none */
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
}

/**
 * A DynamoDB table holding a read model: keys of your choosing, optional indexes, TTL when asked, on-demand,
 * point-in-time recovery and encryption at rest.
 */
export class ReadModelTable extends Construct {
  public readonly table: dynamodb.Table;
  public readonly tableName: string;
  public readonly tableArn: string;
  public readonly partitionKey: ReadModelKey;
  public readonly sortKey?: ReadModelKey;
  public readonly timeToLiveAttribute?: string;
  public readonly indexNames: string[];

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
    const indexNames = (props.indexes ?? []).map((i) => i.indexName);
    if (new Set(indexNames).size !== indexNames.length) problems.push('index names must be unique');
    if (problems.length > 0) throw new Error(`ReadModelTable ${this.node.path}: ${problems.join('; ')}`);

    const attr = (k: ReadModelKey): dynamodb.Attribute => ({ name: k.name, type: k.type ?? dynamodb.AttributeType.STRING });
    this.table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: attr(props.partitionKey),
      sortKey: props.sortKey ? attr(props.sortKey) : undefined,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      encryption: props.encryptionKey ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.DEFAULT,
      encryptionKey: props.encryptionKey,
      timeToLiveAttribute: props.timeToLiveAttribute,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    for (const index of props.indexes ?? []) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: attr(index.partitionKey),
        sortKey: index.sortKey ? attr(index.sortKey) : undefined,
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    this.tableName = this.table.tableName;
    this.tableArn = this.table.tableArn;
    this.partitionKey = { name: props.partitionKey.name, type: props.partitionKey.type ?? dynamodb.AttributeType.STRING };
    this.sortKey = props.sortKey ? { name: props.sortKey.name, type: props.sortKey.type ?? dynamodb.AttributeType.STRING } : undefined;
    this.timeToLiveAttribute = props.timeToLiveAttribute;
    this.indexNames = indexNames;
  }
}
