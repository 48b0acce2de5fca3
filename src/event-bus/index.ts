import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** Properties of a DomainEventBus. */
export interface DomainEventBusProps {
  /**
   * The environment, used in the default name.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * The bus name.
   * @default `skafu-events-<environment>`
   */
  readonly eventBusName?: string;
  /**
   * How long the archive keeps events, for replay. `Duration.days(0)` keeps them indefinitely.
   * @default Duration.days(365)
   */
  readonly archiveRetention?: Duration;
}

/**
 * The domain event bus `skafu-events-<environment>`: every committed event, published by the outbox with
 * `source: skafu.<domain>` and `detail-type: <eventType>`. Its resource policy admits only the account, and an
 * archive keeps the events so that they can be replayed into new or rebuilt consumers.
 *
 * The event store remains the source of truth: the archive is a convenience for replay, not the record.
 */
export class DomainEventBus extends Construct {
  /** The EventBridge bus (`skafu-events`). */
  public readonly eventBus: events.EventBus;
  /** The bus's name. */
  public readonly eventBusName: string;
  /** The bus's ARN. */
  public readonly eventBusArn: string;
  /** The archive of every event on the bus (for replays). */
  public readonly archive: events.Archive;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (DomainEventBusProps)
   */
  constructor(scope: Construct, id: string, props: DomainEventBusProps = {}) {
    super(scope, id);
    const environment = props.environment ?? 'development';
    this.eventBus = new events.EventBus(this, 'Bus', {
      eventBusName: props.eventBusName ?? `skafu-events-${environment}`,
      description: `Skafu domain events (${environment})`,
    });
    this.eventBusName = this.eventBus.eventBusName;
    this.eventBusArn = this.eventBus.eventBusArn;
    this.eventBus.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AccountMayPublish',
        principals: [new iam.AccountPrincipal(Stack.of(this).account)],
        actions: ['events:PutEvents'],
        resources: [this.eventBus.eventBusArn],
      }),
    );
    this.archive = this.eventBus.archive('Archive', {
      description: `Every Skafu domain event (${environment})`,
      eventPattern: { account: [Stack.of(this).account] },
      retention: props.archiveRetention ?? Duration.days(365),
    });
  }

  /** Lets a principal publish events to the bus. */
  public grantPublish(grantee: iam.IGrantable): iam.Grant {
    return this.eventBus.grantPutEventsTo(grantee);
  }

  /** Environment variables the Skafu runtime's EventBusPublisher reads. */
  public environmentVariables(): Record<string, string> {
    return { SKAFU_EVENT_BUS_NAME: this.eventBusName };
  }
}
