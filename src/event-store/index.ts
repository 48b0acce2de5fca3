import { Duration, IResource, RemovalPolicy, Resource, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { EventStoreSchema, domainKeyPrefix } from '../runtime/event-store-schema';

/** What the runtime accepts as a domain name (no `#`, and no IAM wildcard `*` or `?`). */
const DOMAIN_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** How the event store is encrypted at rest. */
export enum EventStoreEncryption {
  /** A key owned and managed by DynamoDB, at no charge. */
  AWS_OWNED = 'AWS_OWNED',
  /** The AWS managed key `aws/dynamodb` in your account. */
  AWS_MANAGED = 'AWS_MANAGED',
  /** A customer managed KMS key: `encryptionKey`, or one created with rotation on. */
  CUSTOMER_MANAGED = 'CUSTOMER_MANAGED',
}

/** An event store table, created here or imported. */
export interface IEventStoreTable extends IResource {
  /** The underlying table. */
  readonly table: dynamodb.ITable;
  /**
   * The table's name.
   * @attribute
   */
  readonly tableName: string;
  /**
   * The table's ARN.
   * @attribute
   */
  readonly tableArn: string;
  /** The stream ARN, if known (the outbox publisher needs it). */
  readonly tableStreamArn?: string;
  /** The customer managed key, if the table uses one. */
  readonly encryptionKey?: kms.IKey;
  /** Whether the table has the sparse aggregate index. */
  readonly hasAggregateIndex: boolean;

  /**
   * Append events of one domain: conditional PutItem (alone or in a transaction), GetItem and Query on the
   * table, confined by IAM to the items whose partition key starts with `<domain>#` (the domain's streams,
   * snapshots and idempotency records) with a `dynamodb:LeadingKeys` condition.
   *
   * @param domain the domain whose items the grantee may read and write
   */
  grantAppendEvents(grantee: iam.IGrantable, domain: string): iam.Grant;
  /**
   * Read events and snapshots: GetItem and Query on the table.
   *
   * @param domain confine the grant to this domain's items (`dynamodb:LeadingKeys`); without it the grantee reads
   * every domain's items (what a platform-wide republisher needs)
   */
  grantReadEvents(grantee: iam.IGrantable, domain?: string): iam.Grant;
  /**
   * List aggregates: Query on the aggregate index only.
   *
   * @param domain confine the grant to this domain's listings (`dynamodb:LeadingKeys` on the index key
   * `<domain>#<aggregateType>`); without it the grantee lists every domain's aggregates
   */
  grantListAggregates(grantee: iam.IGrantable, domain?: string): iam.Grant;
  /** Read the table's stream (what an outbox publisher needs). */
  grantStreamRead(grantee: iam.IGrantable): iam.Grant;
  /** Conditional check failures and transaction conflicts: lost optimistic-concurrency races. */
  metricConflicts(props?: cloudwatch.MetricOptions): cloudwatch.IMetric;
  /** Read and write throttle events on the table and its index. */
  metricThrottles(props?: cloudwatch.MetricOptions): cloudwatch.IMetric;
  /** Any AWS/DynamoDB metric of this table. */
  metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric;
}

/** Attributes of an existing event store table. */
export interface EventStoreTableAttributes {
  /** One of `tableName` and `tableArn` is required. @default - derived from tableArn */
  readonly tableName?: string;
  /**
   * The table's ARN. One of `tableName` and `tableArn` is required.
   * @default - derived from tableName
   */
  readonly tableArn?: string;
  /**
   * The ARN of the table's stream: needed by `grantStreamRead` and so by an EventStorePublisher.
   * @default - no stream: grantStreamRead throws
   */
  readonly tableStreamArn?: string;
  /**
   * The customer managed KMS key the table is encrypted with; the grant methods then also grant use of the key.
   * @default - none: the table uses AWS owned or AWS managed encryption and no key is granted
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * Whether the table has the aggregate index.
   * @default true
   */
  readonly aggregateIndex?: boolean;
}

/** Properties of an EventStoreTable. */
export interface EventStoreTableProps {
  /**
   * The table's name. Leave it unset unless something outside CDK needs a fixed name: a fixed name blocks
   * replacement and clashes between stacks.
   * @default - a name CloudFormation generates
   */
  readonly tableName?: string;
  /**
   * What happens to the table when it leaves the stack. The event store is the system of record.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Refuse DeleteTable while on.
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * Point-in-time recovery (35 days of continuous backups).
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;
  /**
   * Encryption at rest.
   * @default - EventStoreEncryption.CUSTOMER_MANAGED when `encryptionKey` is given, else AWS_OWNED
   */
  readonly encryption?: EventStoreEncryption;
  /**
   * The customer managed key. Only with `encryption` CUSTOMER_MANAGED (or unset).
   * @default - with CUSTOMER_MANAGED, a new key with rotation on
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * Keep the sparse aggregate index, which lists aggregates by type (for replay and rebuilds). Only each
   * aggregate's first event is written to it.
   * @default true
   */
  readonly aggregateIndex?: boolean;
}

abstract class EventStoreTableBase extends Resource implements IEventStoreTable {
  public abstract readonly table: dynamodb.ITable;
  public abstract readonly tableName: string;
  public abstract readonly tableArn: string;
  public abstract readonly tableStreamArn?: string;
  public abstract readonly encryptionKey?: kms.IKey;
  public abstract readonly hasAggregateIndex: boolean;

  public grantAppendEvents(grantee: iam.IGrantable, domain: string): iam.Grant {
    const conditions = this.domainConditions('grantAppendEvents', domain);
    this.encryptionKey?.grantEncryptDecrypt(grantee);
    return iam.Grant.addToPrincipal({
      grantee,
      // ConditionCheckItem: an append at a version the client has not seen checks the expected event inside its
      // TransactWriteItems (a ConditionCheck is authorized as dynamodb:ConditionCheckItem, on that item's key).
      actions: ['dynamodb:PutItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:Query'],
      resourceArns: [this.tableArn],
      conditions,
    });
  }

  public grantReadEvents(grantee: iam.IGrantable, domain?: string): iam.Grant {
    const conditions = domain === undefined ? undefined : this.domainConditions('grantReadEvents', domain);
    this.encryptionKey?.grantDecrypt(grantee);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:Query'],
      resourceArns: [this.tableArn],
      conditions,
    });
  }

  public grantListAggregates(grantee: iam.IGrantable, domain?: string): iam.Grant {
    if (!this.hasAggregateIndex) {
      throw new Error(`EventStoreTable ${this.node.path}: grantListAggregates needs the aggregate index (aggregateIndex is false)`);
    }
    const conditions = domain === undefined ? undefined : this.domainConditions('grantListAggregates', domain);
    this.encryptionKey?.grantDecrypt(grantee);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:Query'],
      resourceArns: [`${this.tableArn}/index/${EventStoreSchema.AGGREGATE_INDEX_NAME}`],
      conditions,
    });
  }

  /**
   * The IAM condition that confines a grant to one domain's items: every partition key the request names (for a
   * Query on the aggregate index, the index's partition key) must start with `<domain>#`. Domain names never
   * hold `#`, `*` or `?`, so the pattern matches no other domain's keys. GetItem, PutItem and Query always name a
   * partition key; no action that names none (Scan) is ever granted with it, since ForAllValues holds for an
   * empty set of keys.
   */
  private domainConditions(method: string, domain: string): Record<string, Record<string, unknown>> {
    if (Token.isUnresolved(domain) || typeof domain !== 'string' || !DOMAIN_NAME.test(domain)) {
      throw new Error(`EventStoreTable ${this.node.path}: ${method}: domain '${String(domain)}' must be 1-64 letters, digits or _ . : -, starting with a letter (a literal, not a token)`);
    }
    return { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${domainKeyPrefix(domain)}*`] } };
  }

  public grantStreamRead(grantee: iam.IGrantable): iam.Grant {
    if (!this.tableStreamArn) {
      throw new Error(`EventStoreTable ${this.node.path}: grantStreamRead needs the table's stream ARN (tableStreamArn)`);
    }
    this.encryptionKey?.grantDecrypt(grantee);
    // DescribeStream, GetRecords and GetShardIterator on the stream, ListStreams on '*' (it has no resource).
    return this.table.grantStreamRead(grantee);
  }

  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/DynamoDB',
      metricName,
      dimensionsMap: { TableName: this.tableName },
      ...props,
    }).attachTo(this);
  }

  public metricConflicts(props?: cloudwatch.MetricOptions): cloudwatch.IMetric {
    return this.sumOf(
      'conflicts',
      'Conflicts',
      ['ConditionalCheckFailedRequests', 'TransactionConflict'],
      props,
    );
  }

  public metricThrottles(props?: cloudwatch.MetricOptions): cloudwatch.IMetric {
    return this.sumOf('throttles', 'Throttled events', ['ReadThrottleEvents', 'WriteThrottleEvents'], props);
  }

  private sumOf(idPrefix: string, label: string, metricNames: string[], props?: cloudwatch.MetricOptions): cloudwatch.IMetric {
    const usingMetrics: Record<string, cloudwatch.IMetric> = {};
    metricNames.forEach((name, i) => {
      usingMetrics[`${idPrefix}${i}`] = this.metric(name, { statistic: 'Sum', ...props });
    });
    return new cloudwatch.MathExpression({
      expression: Object.keys(usingMetrics)
        .map((k) => `FILL(${k}, 0)`)
        .join(' + '),
      usingMetrics,
      label: props?.label ?? label,
      period: props?.period ?? Duration.minutes(5),
      color: props?.color,
    });
  }
}

/**
 * The DynamoDB table of an event-sourced system: one item per event, keyed by `streamId` (S,
 * `<domain>#<aggregateId>`) and `eventSequence` (N), appended with conditional writes, published through its
 * stream. The domain prefix lets IAM confine each domain's roles to its own items (see `grantAppendEvents`).
 *
 * Defaults suit a system of record: on-demand billing, point-in-time recovery, deletion protection,
 * RemovalPolicy.RETAIN, a NEW_AND_OLD_IMAGES stream (the outbox reports any change to an event), and a sparse
 * index listing aggregates.
 */
export class EventStoreTable extends EventStoreTableBase {
  /** The name of the sparse index that lists aggregates. */
  public static readonly AGGREGATE_INDEX_NAME = EventStoreSchema.AGGREGATE_INDEX_NAME;

  /** Imports an existing event store table. */
  public static fromTableAttributes(scope: Construct, id: string, attrs: EventStoreTableAttributes): IEventStoreTable {
    if (!attrs.tableName && !attrs.tableArn) {
      throw new Error('EventStoreTable.fromTableAttributes: give tableName or tableArn');
    }
    const table = dynamodb.Table.fromTableAttributes(scope, `${id}Table`, {
      tableName: attrs.tableName,
      tableArn: attrs.tableArn,
      tableStreamArn: attrs.tableStreamArn,
      encryptionKey: attrs.encryptionKey,
      globalIndexes: attrs.aggregateIndex === false ? undefined : [EventStoreSchema.AGGREGATE_INDEX_NAME],
    });
    class Import extends EventStoreTableBase {
      public readonly table = table;
      public readonly tableName = table.tableName;
      public readonly tableArn = table.tableArn;
      public readonly tableStreamArn = attrs.tableStreamArn;
      public readonly encryptionKey = attrs.encryptionKey;
      public readonly hasAggregateIndex = attrs.aggregateIndex !== false;
    }
    return new Import(scope, id);
  }

  /** The underlying DynamoDB table. */
  public readonly table: dynamodb.ITable;
  /** The table's name. */
  public readonly tableName: string;
  /** The table's ARN. */
  public readonly tableArn: string;
  /** The stream ARN (always present: the table has a NEW_AND_OLD_IMAGES stream). */
  public readonly tableStreamArn?: string;
  /** The customer managed key, if the table uses one (undefined with AWS owned or AWS managed encryption). */
  public readonly encryptionKey?: kms.IKey;
  /** Whether the table has the sparse aggregate index. */
  public readonly hasAggregateIndex: boolean;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (EventStoreTableProps)
   */
  constructor(scope: Construct, id: string, props: EventStoreTableProps = {}) {
    super(scope, id, { physicalName: props.tableName });
    validateProps(this.node.path, props);

    const encryption = props.encryption ?? (props.encryptionKey ? EventStoreEncryption.CUSTOMER_MANAGED : EventStoreEncryption.AWS_OWNED);
    const tableEncryption = {
      [EventStoreEncryption.AWS_OWNED]: dynamodb.TableEncryption.DEFAULT,
      [EventStoreEncryption.AWS_MANAGED]: dynamodb.TableEncryption.AWS_MANAGED,
      [EventStoreEncryption.CUSTOMER_MANAGED]: dynamodb.TableEncryption.CUSTOMER_MANAGED,
    }[encryption];

    const table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: { name: EventStoreSchema.PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: EventStoreSchema.SORT_KEY, type: dynamodb.AttributeType.NUMBER },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      encryption: tableEncryption,
      encryptionKey: encryption === EventStoreEncryption.CUSTOMER_MANAGED ? props.encryptionKey : undefined,
      // Old images too: a MODIFY or REMOVE of an event is reported as tampering, with what changed.
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      // Only the store's idempotency records carry this attribute: events never expire.
      timeToLiveAttribute: EventStoreSchema.TTL_ATTRIBUTE,
    });

    this.hasAggregateIndex = props.aggregateIndex ?? true;
    if (this.hasAggregateIndex) {
      table.addGlobalSecondaryIndex({
        indexName: EventStoreSchema.AGGREGATE_INDEX_NAME,
        partitionKey: { name: EventStoreSchema.AGGREGATE_INDEX_PARTITION_KEY, type: dynamodb.AttributeType.STRING },
        sortKey: { name: EventStoreSchema.AGGREGATE_INDEX_SORT_KEY, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.KEYS_ONLY,
      });
    }

    this.table = table;
    this.tableName = this.getResourceNameAttribute(table.tableName);
    this.tableArn = this.getResourceArnAttribute(table.tableArn, {
      service: 'dynamodb',
      resource: 'table',
      resourceName: this.physicalName,
    });
    this.tableStreamArn = table.tableStreamArn;
    this.encryptionKey = table.encryptionKey;
  }

  /** The environment variables the Skafu runtime reads (`EventStore.fromEnvironment`). */
  public environmentVariables(): Record<string, string> {
    return { SKAFU_EVENT_STORE_TABLE: this.tableName };
  }
}

function validateProps(path: string, props: EventStoreTableProps): void {
  const errors: string[] = [];
  if (props.encryptionKey && props.encryption && props.encryption !== EventStoreEncryption.CUSTOMER_MANAGED) {
    errors.push(`'encryptionKey' is set but 'encryption' is ${props.encryption}; a key needs encryption CUSTOMER_MANAGED (or leave 'encryption' unset)`);
  }
  if (props.deletionProtection === true && props.removalPolicy === RemovalPolicy.DESTROY) {
    errors.push("'deletionProtection' is true but 'removalPolicy' is DESTROY: the stack could never delete the table; set deletionProtection: false to allow DESTROY");
  }
  if (props.deletionProtection === undefined && props.removalPolicy === RemovalPolicy.DESTROY) {
    errors.push("'removalPolicy' is DESTROY while 'deletionProtection' defaults to true; set deletionProtection: false as well");
  }
  if (props.tableName !== undefined && !Token.isUnresolved(props.tableName)) {
    if (!/^[A-Za-z0-9_.-]{3,255}$/.test(props.tableName)) {
      errors.push(`'tableName' '${props.tableName}' must be 3-255 characters of letters, digits, _ . -`);
    }
  }
  if (errors.length > 0) {
    throw new Error(`EventStoreTable ${path}: ${errors.join('; ')}`);
  }
}
