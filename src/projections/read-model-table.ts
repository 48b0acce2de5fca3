import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

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
  /** The read model's name: the prefix of its checkpoint and parking keys (`<readModelName>#<aggregateId>`). */
  public readonly readModelName: string;

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
    this.readModelName = readModelName;
  }
}
