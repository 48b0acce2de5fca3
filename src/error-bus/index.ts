import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { queueNotEmptyAlarm, thresholdAlarm } from '../internal/alarms';
import { LogGroupTarget } from '../internal/log-group-target';
import { acknowledgeNag } from '../internal/nag';
import { skafuQueue } from '../internal/queues';

/** A bus that takes Skafu error events. */
export interface IErrorBus {
  /** The underlying EventBridge bus. */
  readonly eventBus: events.IEventBus;
  /** Lets a principal put error events on the bus. */
  grantPutErrors(grantee: iam.IGrantable): iam.Grant;
  /** Environment variables the Skafu runtime's ErrorReporter reads. */
  environmentVariables(): Record<string, string>;
}

/** Properties of an ErrorBus. */
export interface ErrorBusProps {
  /**
   * The environment, used in default names.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * The bus name.
   * @default `skafu-errors-<environment>`
   */
  readonly eventBusName?: string;
  /**
   * Keep an archive of every error event, for replay and forensics.
   * @default true
   */
  readonly archive?: boolean;
  /**
   * How long the archive keeps events. Only with `archive`.
   * @default Duration.days(90)
   */
  readonly archiveRetention?: Duration;
  /**
   * Retention of the log group that receives every error event.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The log group name. EventBridge requires log groups it writes to to be named `/aws/events/...`.
   * @default `/aws/events/skafu-errors-<environment>`
   */
  readonly logGroupName?: string;
  /**
   * What happens to the error log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * A topic that receives every CRITICAL error event. It must let events.amazonaws.com publish (and use its
   * key, if encrypted). Conflicts with `createCriticalTopic`.
   * @default - no topic, unless `createCriticalTopic`
   */
  readonly criticalTopic?: sns.ITopic;
  /**
   * Create an encrypted topic for CRITICAL error events (subscribe to it yourself).
   * @default false
   */
  readonly createCriticalTopic?: boolean;
  /**
   * The error-rate alarm fires when more than this many errors arrive in `errorRatePeriod`.
   * @default 10
   */
  readonly errorRateThreshold?: number;
  /**
   * The period over which `errorRateThreshold` errors raise the error-rate alarm.
   * @default Duration.minutes(5)
   */
  readonly errorRatePeriod?: Duration;
  /**
   * How many times EventBridge retries a delivery to a target before dead-lettering it.
   * @default 20
   */
  readonly targetRetryAttempts?: number;
}

/**
 * The dedicated error bus (`skafu-errors-<environment>`) where every failure of the platform becomes one
 * `Application Error` event: a resource policy limited to the account, an archive, a catch-all rule that
 * delivers every event to a CloudWatch log group (retries, then an SQS dead-letter queue), an optional SNS topic
 * for CRITICAL errors, and an error-rate alarm.
 */
export class ErrorBus extends Construct implements IErrorBus {
  /** The detail-type of every Skafu error event. */
  public static readonly DETAIL_TYPE = 'Application Error';

  /** The EventBridge bus (`skafu-errors`). */
  public readonly eventBus: events.IEventBus;
  /** The bus's name. */
  public readonly eventBusName: string;
  /** The bus's ARN. */
  public readonly eventBusArn: string;
  /** The archive of every error event, when `archive` is on. */
  public readonly archive?: events.Archive;
  /** Receives every event on the bus. */
  public readonly logGroup: logs.LogGroup;
  /** The catch-all rule (its MatchedEvents count every error). */
  public readonly catchAllRule: events.Rule;
  /** Where deliveries that failed after their retries go. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Receives CRITICAL errors, when configured. */
  public readonly criticalTopic?: sns.ITopic;
  /** The rule sending CRITICAL errors to the critical topic, when there is one. */
  public readonly criticalRule?: events.Rule;
  /** Alarms when more than `errorRateThreshold` errors arrive in `errorRatePeriod`. */
  public readonly errorRateAlarm: cloudwatch.Alarm;
  /** Alarms when an error event could not be delivered (the dead-letter queue is not empty). */
  public readonly deadLetterAlarm: cloudwatch.Alarm;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (ErrorBusProps)
   */
  constructor(scope: Construct, id: string, props: ErrorBusProps = {}) {
    super(scope, id);
    validate(this.node.path, props);
    const environment = props.environment ?? 'development';

    const bus = new events.EventBus(this, 'Bus', {
      eventBusName: props.eventBusName ?? `skafu-errors-${environment}`,
      description: `Skafu error events (${environment})`,
    });
    this.eventBus = bus;
    this.eventBusName = bus.eventBusName;
    this.eventBusArn = bus.eventBusArn;
    bus.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AccountMayPutErrors',
        principals: [new iam.AccountPrincipal(Stack.of(this).account)],
        actions: ['events:PutEvents'],
        resources: [bus.eventBusArn],
      }),
    );

    if (props.archive ?? true) {
      this.archive = bus.archive('Archive', {
        description: `Every Skafu error event (${environment})`,
        eventPattern: { account: [Stack.of(this).account] },
        retention: props.archiveRetention ?? Duration.days(90),
      });
    }

    this.deadLetterQueue = skafuQueue(this, 'DeliveryDeadLetterQueue');

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: props.logGroupName ?? `/aws/events/skafu-errors-${environment}`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    const retry = { retryAttempts: props.targetRetryAttempts ?? 20, maxEventAge: Duration.hours(24) };
    this.catchAllRule = new events.Rule(this, 'CatchAll', {
      eventBus: this.eventBus,
      description: 'Every event on the error bus, to the error log group',
      eventPattern: { source: events.Match.prefix('') },
    });
    this.catchAllRule.addTarget(new LogGroupTarget(this.logGroup, { deadLetterQueue: this.deadLetterQueue, ...retry }));

    if (props.criticalTopic || props.createCriticalTopic) {
      this.criticalTopic = props.criticalTopic ?? this.createTopic(environment);
      this.criticalRule = new events.Rule(this, 'Critical', {
        eventBus: this.eventBus,
        description: 'CRITICAL error events, to the critical topic',
        eventPattern: { detailType: [ErrorBus.DETAIL_TYPE], detail: { severity: ['CRITICAL'] } },
      });
      this.criticalRule.addTarget(
        new targets.SnsTopic(this.criticalTopic, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: retry.retryAttempts,
          maxEventAge: retry.maxEventAge,
        }),
      );
    }

    const errorRatePeriod = props.errorRatePeriod ?? Duration.minutes(5);
    this.errorRateAlarm = thresholdAlarm(this, 'ErrorRateAlarm', {
      description: `More than ${props.errorRateThreshold ?? 10} Skafu error events in ${errorRatePeriod.toHumanString()} (${environment})`,
      metric: this.metricErrors({ period: errorRatePeriod }),
      threshold: props.errorRateThreshold ?? 10,
    });
    this.deadLetterAlarm = queueNotEmptyAlarm(this, 'DeadLetterAlarm', this.deadLetterQueue, `Error events that could not be delivered to their targets (${environment})`);

    acknowledgeNag(this.deadLetterQueue, [
      {
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself the dead-letter queue of the error bus rule targets (EventBridge DeadLetterConfig).',
      },
    ]);
  }

  public grantPutErrors(grantee: iam.IGrantable): iam.Grant {
    return this.eventBus.grantPutEventsTo(grantee);
  }

  /** The number of error events (every event on the bus), summed per period. */
  public metricErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Events',
      metricName: 'MatchedEvents',
      dimensionsMap: { EventBusName: this.eventBus.eventBusName, RuleName: this.catchAllRule.ruleName },
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...props,
    }).attachTo(this);
  }

  public environmentVariables(): Record<string, string> {
    return { SKAFU_ERROR_BUS_NAME: this.eventBusName };
  }

  private createTopic(environment: string): sns.Topic {
    const key = new kms.Key(this, 'CriticalTopicKey', {
      description: `Skafu critical error topic (${environment})`,
      enableKeyRotation: true,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    return new sns.Topic(this, 'CriticalTopic', {
      displayName: `Skafu critical errors (${environment})`,
      masterKey: key,
      enforceSSL: true,
    });
  }
}

function validate(path: string, props: ErrorBusProps): void {
  const errors: string[] = [];
  if (props.criticalTopic && props.createCriticalTopic === true) {
    errors.push("'criticalTopic' and 'createCriticalTopic' both given: pass your topic, or let the bus create one");
  }
  if (props.archive === false && props.archiveRetention) {
    errors.push("'archiveRetention' is set but 'archive' is false");
  }
  if (props.logGroupName !== undefined && !props.logGroupName.startsWith('/aws/events/')) {
    errors.push(`'logGroupName' '${props.logGroupName}' must start with /aws/events/ (EventBridge only writes to such log groups)`);
  }
  if (props.errorRateThreshold !== undefined && !(props.errorRateThreshold >= 0)) {
    errors.push("'errorRateThreshold' must be 0 or more");
  }
  const retries = props.targetRetryAttempts;
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 185)) {
    errors.push("'targetRetryAttempts' must be an integer from 0 to 185");
  }
  if (errors.length > 0) throw new Error(`ErrorBus ${path}: ${errors.join('; ')}`);
}
