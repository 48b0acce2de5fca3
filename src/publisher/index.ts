import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DeadLetterFunction } from './dead-letter-function';
import { PublisherFunction } from './publisher-function';
import { RepublishFunction } from './republish-function';
import type { IErrorBus } from '../error-bus';
import type { IEventStoreTable } from '../event-store';
import { queueNotEmptyAlarm, thresholdAlarm } from '../internal/alarms';
import { acknowledgeHandlerRole, handlerOptions } from '../internal/handler';
import { acknowledgeNag } from '../internal/nag';
import { skafuQueue } from '../internal/queues';
import { EventStoreSchema } from '../runtime/event-store-schema';
import { HOLD_TABLE_PARTITION_KEY } from '../runtime/holds';

/** Properties of an EventStorePublisher. */
export interface EventStorePublisherProps {
  /** The event store whose stream is published. */
  readonly eventStore: IEventStoreTable;
  /** The domain event bus. */
  readonly eventBus: events.IEventBus;
  /** Where publication failures are reported. */
  readonly errorBus: IErrorBus;
  /**
   * Stream records per invocation.
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * How long to gather records before invoking.
   * @default - no batching window
   */
  readonly maxBatchingWindow?: Duration;
  /**
   * How many times the event source mapping retries a failed batch (from its first unpublished event) before it
   * sends the batch's pointer to the on-failure queue.
   * @default 10
   */
  readonly retryAttempts?: number;
  /**
   * Oldest record the mapping still tries; older ones go to the on-failure queue.
   * @default - the stream's retention (24 hours)
   */
  readonly maxRecordAge?: Duration;
  /**
   * Where in the stream a new mapping starts. TRIM_HORIZON publishes everything the stream still holds.
   * @default lambda.StartingPosition.TRIM_HORIZON
   */
  readonly startingPosition?: lambda.StartingPosition;
  /**
   * The iterator-age alarm fires above this.
   * @default Duration.minutes(1)
   */
  readonly iteratorAgeThreshold?: Duration;
  /**
   * Retention of the handlers' log groups.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Powertools log level of the handlers.
   * @default 'INFO'
   */
  readonly logLevel?: string;
}

/**
 * The outbox: publishes every event committed to the event store to the domain bus, from the table's stream.
 * Nothing committed is lost: failed entries are retried in place, then the batch is retried from its first
 * unpublished event (order kept), then the batch's pointer goes to `failedBatchQueue`, where the dead-letter
 * handler names every event in it (aggregate, sequence) on `deadLetterQueue` and on the error bus. Events are
 * republished from the store with `republishFunction`.
 */
export class EventStorePublisher extends Construct {
  /** Publishes the stream to the bus. */
  public readonly publisherFunction: lambda.IFunction;
  /** Names the events of batches the mapping gave up on, and dead-letters them. */
  public readonly deadLetterFunction: lambda.IFunction;
  /** Republishes events from the store: invoke with `{ aggregateId, fromSequence }` or a dead-letter message. */
  public readonly republishFunction: lambda.IFunction;
  /** The event source mapping's on-failure destination: pointers to failed stream batches. */
  public readonly failedBatchQueue: sqs.Queue;
  /** Messages naming every committed event that did not reach the bus (`UndeliveredEventsMessage`). */
  public readonly deadLetterQueue: sqs.Queue;
  /**
   * Aggregates the publisher holds: one of their events was not delivered, so their later events wait (in the
   * stream's order) until the republish function has published them in order. Usually empty.
   */
  public readonly heldAggregatesTable: dynamodb.Table;
  /**
   * Fires when the publisher falls behind the stream: its iterator age (maximum per minute) stays above
   * `iteratorAgeThreshold` for 3 consecutive minutes.
   */
  public readonly iteratorAgeAlarm: cloudwatch.Alarm;
  /** Fires when `deadLetterQueue` holds messages: committed events that did not reach the bus and need republishing. */
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  /**
   * Fires when the oldest message on `failedBatchQueue` is older than 10 minutes (600 seconds): batch pointers
   * the dead-letter handler has not yet turned into dead-letter messages.
   */
  public readonly failedBatchAlarm: cloudwatch.Alarm;
  /** A committed event was modified or deleted in the event store (see the `EventTampered` error events). */
  public readonly tamperAlarm: cloudwatch.Alarm;

  private readonly publisher: PublisherFunction;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (EventStorePublisherProps)
   */
  constructor(scope: Construct, id: string, props: EventStorePublisherProps) {
    super(scope, id);
    validate(this.node.path, props);
    if (!props.eventStore.tableStreamArn) {
      throw new Error(`EventStorePublisher ${this.node.path}: 'eventStore' has no stream ARN (import it with tableStreamArn)`);
    }
    const settings = { logRetention: props.logRetention, logLevel: props.logLevel };

    this.deadLetterQueue = skafuQueue(this, 'DeadLetterQueue');
    this.failedBatchQueue = skafuQueue(this, 'FailedBatchQueue', {
      visibilityTimeout: Duration.minutes(6),
      // If the dead-letter handler cannot name a batch's events, the raw pointer still ends in the DLQ.
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
    });

    this.heldAggregatesTable = new dynamodb.Table(this, 'HeldAggregates', {
      partitionKey: { name: HOLD_TABLE_PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Operational state, not the record: losing it only loses holds (events stay in the store).
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // --- publisher: stream -> bus -------------------------------------------------------------------------
    const publisherOptions = handlerOptions(this, 'Publisher', {
      ...settings,
      description: 'Skafu outbox publisher: event store stream to the domain bus',
      serviceName: 'skafu-outbox-publisher',
      timeout: Duration.minutes(2),
      environment: {
        SKAFU_EVENT_BUS_NAME: props.eventBus.eventBusName,
        SKAFU_HOLD_TABLE: this.heldAggregatesTable.tableName,
        SKAFU_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
        ...props.errorBus.environmentVariables(),
      },
    });
    this.publisher = new PublisherFunction(this, 'Publisher', publisherOptions);
    this.heldAggregatesTable.grant(this.publisher, 'dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    this.deadLetterQueue.grantSendMessages(this.publisher);
    this.publisherFunction = this.publisher;
    props.eventBus.grantPutEventsTo(this.publisher);
    props.errorBus.grantPutErrors(this.publisher);
    this.publisher.addEventSource(
      new sources.DynamoEventSource(props.eventStore.table, {
        startingPosition: props.startingPosition ?? lambda.StartingPosition.TRIM_HORIZON,
        batchSize: props.batchSize ?? 100,
        maxBatchingWindow: props.maxBatchingWindow,
        retryAttempts: props.retryAttempts ?? 10,
        maxRecordAge: props.maxRecordAge,
        bisectBatchOnError: false,
        reportBatchItemFailures: true,
        parallelizationFactor: 1,
        onFailure: new sources.SqsDlq(this.failedBatchQueue),
        // Committed events (not snapshots, not idempotency records), and any change to one: events are immutable,
        // so a MODIFY or REMOVE of an event item is tampering, reported rather than filtered away.
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { [EventStoreSchema.ITEM_TYPE_ATTRIBUTE]: { S: lambda.FilterRule.isEqual(EventStoreSchema.ITEM_TYPE_EVENT) } } },
          }),
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.or('MODIFY', 'REMOVE'),
            dynamodb: { OldImage: { [EventStoreSchema.ITEM_TYPE_ATTRIBUTE]: { S: lambda.FilterRule.isEqual(EventStoreSchema.ITEM_TYPE_EVENT) } } },
          }),
        ],
      }),
    );
    props.eventStore.encryptionKey?.grantDecrypt(this.publisher);

    // --- dead-letter handler: failed batch pointers -> named events --------------------------------------
    const deadLetterOptions = handlerOptions(this, 'DeadLetter', {
      ...settings,
      description: 'Skafu outbox dead-letter handler: names the events of failed stream batches',
      serviceName: 'skafu-outbox-dead-letter',
      timeout: Duration.minutes(1),
      environment: {
        SKAFU_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
        ...props.errorBus.environmentVariables(),
      },
    });
    const deadLetter = new DeadLetterFunction(this, 'DeadLetter', deadLetterOptions);
    this.deadLetterFunction = deadLetter;
    deadLetter.addEventSource(new sources.SqsEventSource(this.failedBatchQueue, { batchSize: 10, reportBatchItemFailures: true }));
    this.deadLetterQueue.grantSendMessages(deadLetter);
    props.eventStore.grantStreamRead(deadLetter);
    props.errorBus.grantPutErrors(deadLetter);

    // --- republish: store -> bus, on demand ---------------------------------------------------------------
    const republishOptions = handlerOptions(this, 'Republish', {
      ...settings,
      description: 'Skafu outbox republisher: events from the event store to the domain bus, on demand',
      serviceName: 'skafu-outbox-republish',
      timeout: Duration.minutes(5),
      memorySize: 512,
      environment: {
        SKAFU_EVENT_STORE_TABLE: props.eventStore.tableName,
        SKAFU_EVENT_BUS_NAME: props.eventBus.eventBusName,
        SKAFU_HOLD_TABLE: this.heldAggregatesTable.tableName,
      },
    });
    const republish = new RepublishFunction(this, 'Republish', republishOptions);
    this.heldAggregatesTable.grant(republish, 'dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:DeleteItem');
    this.republishFunction = republish;
    props.eventStore.grantReadEvents(republish);
    props.eventBus.grantPutEventsTo(republish);

    // --- alarms ---------------------------------------------------------------------------------------------
    this.iteratorAgeAlarm = thresholdAlarm(this, 'IteratorAgeAlarm', {
      description: 'The outbox publisher is falling behind the event store stream (committed events wait to be published)',
      metric: this.metricIteratorAge(),
      threshold: (props.iteratorAgeThreshold ?? Duration.minutes(1)).toMilliseconds(),
      evaluationPeriods: 3,
    });
    this.deadLetterAlarm = queueNotEmptyAlarm(
      this,
      'DeadLetterAlarm',
      this.deadLetterQueue,
      'Committed events did not reach the domain bus: see the outbox dead-letter queue and republish them',
    );
    this.failedBatchAlarm = thresholdAlarm(this, 'FailedBatchAlarm', {
      description: 'Stream batches the outbox gave up on are waiting to be named and dead-lettered',
      metric: this.failedBatchQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 600,
    });

    this.tamperAlarm = thresholdAlarm(this, 'TamperAlarm', {
      description: 'A committed event was modified or deleted in the event store: see the EventTampered error events (CRITICAL)',
      metric: this.metricTamperedEvents({ period: Duration.minutes(1) }),
      threshold: 0,
    });

    for (const role of [publisherOptions.role, deadLetterOptions.role, republishOptions.role]) acknowledgeHandlerRole(role);
    for (const role of [publisherOptions.role, deadLetterOptions.role]) {
      acknowledgeNag(role, [
        {
          id: 'AwsSolutions-IAM5',
          reason: 'dynamodb:ListStreams has no resource type in IAM: it can only be granted on "*" (reading the event store stream needs it).',
          appliesTo: ['Resource::*'],
        },
      ]);
    }
  }

  /** Age of the newest record the publisher has processed, in milliseconds (how far behind it is). */
  public metricIteratorAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.publisher.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1), ...props });
  }

  /** Events the publisher could not publish in an invocation (retried afterwards). */
  public metricUndeliveredEvents(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return outboxMetric('EventsUndelivered', props);
  }

  /** Changes (MODIFY or REMOVE) to committed events seen on the stream: anything above zero is tampering. */
  public metricTamperedEvents(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return outboxMetric('EventsTampered', props);
  }

  /** Events published. */
  public metricPublishedEvents(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return outboxMetric('EventsPublished', props);
  }
}

/** A Powertools (EMF) metric of the publisher handler, summed over 5 minutes. */
function outboxMetric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: 'Skafu',
    metricName,
    dimensionsMap: { service: 'skafu-outbox-publisher' },
    statistic: 'Sum',
    period: Duration.minutes(5),
    ...props,
  });
}

function validate(path: string, props: EventStorePublisherProps): void {
  const errors: string[] = [];
  if (props.batchSize !== undefined && !(Number.isInteger(props.batchSize) && props.batchSize >= 1 && props.batchSize <= 10000)) {
    errors.push("'batchSize' must be an integer from 1 to 10000");
  }
  if (props.retryAttempts !== undefined && !(Number.isInteger(props.retryAttempts) && props.retryAttempts >= 0 && props.retryAttempts <= 10000)) {
    errors.push("'retryAttempts' must be an integer from 0 to 10000");
  }
  if (props.startingPosition === lambda.StartingPosition.AT_TIMESTAMP) {
    errors.push("'startingPosition' AT_TIMESTAMP is not supported by DynamoDB streams");
  }
  if (props.maxRecordAge && (props.maxRecordAge.toSeconds() < 60 || props.maxRecordAge.toSeconds() > 604800)) {
    errors.push("'maxRecordAge' must be between 1 minute and 7 days");
  }
  if (errors.length > 0) throw new Error(`EventStorePublisher ${path}: ${errors.join('; ')}`);
}
