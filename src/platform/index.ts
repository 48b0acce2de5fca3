import { Duration, NestedStack, RemovalPolicy, Tags } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { SkafuApi, type ThrottleSettings } from '../api';
import { EventSourcedDomain, type CommandDefinition, type DomainPlatformRefs, type DomainRules, type QueryDefinition, type ReadModelDefinition } from '../domain';
import { ErrorBus } from '../error-bus';
import { DomainEventBus } from '../event-bus';
import { EventStoreTable } from '../event-store';
import { SkafuGraphqlApi } from '../graphql';
import { thresholdAlarm } from '../internal/alarms';
import { EventStorePublisher } from '../publisher';
import { RbacUserPool } from '../rbac-user-pool';

/** The environments the platform knows presets for. */
export enum SkafuEnvironment {
  /** A month of log retention, no deletion protection, DEBUG logs, optional MFA. */
  DEVELOPMENT = 'development',
  /** Three months of log retention, deletion protection, INFO logs, optional MFA. */
  STAGING = 'staging',
  /**
   * A year of retention, deletion protection, required MFA, 12-character passwords, 10-minute access tokens and a
   * 1-minute authorizer cache.
   */
  PRODUCTION = 'production',
}

/** Properties of a SkafuPlatform. */
export interface SkafuPlatformProps {
  /**
   * The environment preset: retention, deletion protection, throttling, log level and password policy.
   * @default SkafuEnvironment.DEVELOPMENT
   */
  readonly environment?: SkafuEnvironment;
  /**
   * Log retention of every log group.
   * @default development 30 days, staging 90 days, production 365 days
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Deletion protection of the event store and the user pool.
   * @default true in staging and production, false in development
   */
  readonly deletionProtection?: boolean;
  /**
   * Powertools log level of the handlers.
   * @default DEBUG in development, INFO otherwise
   */
  readonly logLevel?: string;
  /**
   * Whether the projection state machines' execution logs include execution data (the events' data, which may
   * be personal data).
   * @default false in production, true otherwise
   */
  readonly logExecutionData?: boolean;
  /**
   * API stage throttling.
   * @default development 100/200, staging 500/1000, production 2000/5000
   */
  readonly throttle?: ThrottleSettings;
  /**
   * The user pool's password policy.
   * @default 12 characters in production, 8 otherwise; always lower, upper, digits and symbols
   */
  readonly passwordPolicy?: cognito.PasswordPolicy;
  /**
   * Multi-factor authentication of the user pool (TOTP).
   * @default REQUIRED in production, OPTIONAL otherwise
   */
  readonly mfa?: cognito.Mfa;
  /**
   * Browser origins the API allows (CORS, with credentials; `*` is refused).
   * @default ['http://localhost:3000']
   */
  readonly corsOrigins?: string[];
  /**
   * OAuth callback URLs of the web client (turns on the code flow with PKCE).
   * @default - none
   */
  readonly callbackUrls?: string[];
  /**
   * Where every alarm of the platform and its domains sends its actions.
   * @default - alarms without actions
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * A WAFv2 web ACL for the API stage.
   * @default - none
   */
  readonly webAclArn?: string;
  /**
   * Put each domain in its own nested stack, so that a platform with many domains stays inside CloudFormation's
   * per-stack limits.
   * @default true
   */
  readonly nestedDomainStacks?: boolean;
}

/** Options of `SkafuPlatform.addGraphqlApi`. */
export interface SkafuGraphqlOptions {
  /**
   * The domains served (added with `addDomain` before this call).
   * @default - every domain added so far
   */
  readonly domainNames?: string[];
  /**
   * A WAFv2 web ACL (REGIONAL) for the GraphQL API.
   * @default - the platform's `webAclArn`, if any
   */
  readonly webAclArn?: string;
  /**
   * Live updates (subscriptions fed by the read-model tables' streams).
   * @default true
   */
  readonly liveUpdates?: boolean;
}

/** A domain declaration for `SkafuPlatform.addDomain`. */
export interface DomainDeclaration {
  /** The domain's name: lower-case, used in routes (`/api/v1/<name>`), sources (`skafu.<name>`) and names. */
  readonly name: string;
  /**
   * The commands: routes that validate a request and append one event.
   * @default - none
   */
  readonly commands?: CommandDefinition[];
  /**
   * The queries: GET routes that read a read model.
   * @default - none
   */
  readonly queries?: QueryDefinition[];
  /**
   * The read models, each a table kept up to date by its projections.
   * @default - none
   */
  readonly readModels?: ReadModelDefinition[];
  /**
   * Event types of the domain emitted by custom handlers (so that projections see every event of an aggregate).
   * @default - the commands' event types
   */
  readonly eventTypes?: string[];
  /** Business rules (declared states, upcasters, reactions). @default - none */
  readonly rules?: DomainRules;
}

const PRESETS = {
  development: { logRetention: logs.RetentionDays.ONE_MONTH, deletionProtection: false, logLevel: 'DEBUG', passwordLength: 8, mfa: cognito.Mfa.OPTIONAL, archive: 30 },
  staging: { logRetention: logs.RetentionDays.THREE_MONTHS, deletionProtection: true, logLevel: 'INFO', passwordLength: 8, mfa: cognito.Mfa.OPTIONAL, archive: 90 },
  production: { logRetention: logs.RetentionDays.ONE_YEAR, deletionProtection: true, logLevel: 'INFO', passwordLength: 12, mfa: cognito.Mfa.REQUIRED, archive: 365 },
};

/**
 * The shared Skafu platform: event store, domain bus, error bus, user pool with groups, the `/api/v1` API with
 * RBAC at the edge, and the outbox publisher, configured by an environment preset (each setting overridable),
 * tagged `Project=Skafu` and `Environment=<env>`. Domains are added with `addDomain`.
 */
export class SkafuPlatform extends Construct {
  /** The environment preset in use. */
  public readonly environment: string;
  /** The event store (the system of record). */
  public readonly eventStore: EventStoreTable;
  /** The domain event bus (`skafu-events`). */
  public readonly eventBus: DomainEventBus;
  /** The error bus (`skafu-errors`). */
  public readonly errorBus: ErrorBus;
  /** The user pool with its groups. */
  public readonly users: RbacUserPool;
  /** The REST API with RBAC at the edge. */
  public readonly api: SkafuApi;
  /** The outbox publisher (event store stream to the event bus). */
  public readonly publisher: EventStorePublisher;
  /** The domains added with `addDomain`, by name. */
  public readonly domains: Record<string, EventSourcedDomain> = {};
  /** The platform's alarms (event store, outbox, errors). */
  public readonly alarms: cloudwatch.Alarm[] = [];

  /** The GraphQL API, once `addGraphqlApi` made it. */
  public graphqlApi?: SkafuGraphqlApi;

  private readonly refs: DomainPlatformRefs;
  private readonly nested: boolean;
  private readonly webAclArn?: string;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (SkafuPlatformProps)
   */
  constructor(scope: Construct, id: string, props: SkafuPlatformProps = {}) {
    super(scope, id);
    const environment = props.environment ?? SkafuEnvironment.DEVELOPMENT;
    if (!Object.values(SkafuEnvironment).includes(environment)) {
      throw new Error(`SkafuPlatform ${this.node.path}: 'environment' must be one of ${Object.values(SkafuEnvironment).join(', ')}`);
    }
    const preset = PRESETS[environment];
    this.environment = environment;
    this.nested = props.nestedDomainStacks ?? true;
    this.webAclArn = props.webAclArn;
    const logRetention = props.logRetention ?? preset.logRetention;
    const deletionProtection = props.deletionProtection ?? preset.deletionProtection;
    const logLevel = props.logLevel ?? preset.logLevel;
    Tags.of(this).add('Project', 'Skafu');
    Tags.of(this).add('Environment', environment);

    this.eventStore = new EventStoreTable(this, 'EventStore', {
      deletionProtection,
      // The system of record: retained even where deletion protection is off.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.eventBus = new DomainEventBus(this, 'DomainEvents', { environment, archiveRetention: Duration.days(preset.archive) });
    this.errorBus = new ErrorBus(this, 'Errors', { environment, logRetention, createCriticalTopic: environment === SkafuEnvironment.PRODUCTION });
    this.users = new RbacUserPool(this, 'Users', {
      environment,
      mfa: props.mfa ?? preset.mfa,
      callbackUrls: props.callbackUrls,
      passwordPolicy: props.passwordPolicy ?? {
        minLength: preset.passwordLength,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
    });
    this.users.userPool.node.defaultChild && (this.users.userPool.node.defaultChild as cognito.CfnUserPool).addPropertyOverride('DeletionProtection', deletionProtection ? 'ACTIVE' : 'INACTIVE');
    this.api = new SkafuApi(this, 'Api', {
      environment,
      userPool: this.users.userPool,
      userPoolClient: this.users.userPoolClient,
      groupNames: this.users.groupNames,
      corsOrigins: props.corsOrigins,
      throttle: props.throttle,
      accessLogRetention: logRetention,
      logRetention,
      webAclArn: props.webAclArn,
    });
    this.publisher = new EventStorePublisher(this, 'Outbox', {
      eventStore: this.eventStore,
      eventBus: this.eventBus.eventBus,
      errorBus: this.errorBus,
      logRetention,
      logLevel,
    });

    const conflicts = thresholdAlarm(this, 'EventStoreConflictsAlarm', {
      description: 'Many optimistic-concurrency conflicts on the event store (hot aggregates?)',
      metric: this.eventStore.metricConflicts(),
      threshold: 50,
    });
    const throttles = thresholdAlarm(this, 'EventStoreThrottlesAlarm', {
      description: 'The event store is throttled',
      metric: this.eventStore.metricThrottles(),
      threshold: 0,
    });
    this.alarms.push(
      conflicts,
      throttles,
      this.publisher.iteratorAgeAlarm,
      this.publisher.deadLetterAlarm,
      this.publisher.failedBatchAlarm,
      this.publisher.tamperAlarm,
      this.errorBus.errorRateAlarm,
      this.errorBus.deadLetterAlarm,
    );
    if (props.alarmTopic) for (const a of this.alarms) a.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));

    this.refs = {
      eventStore: this.eventStore,
      eventBus: this.eventBus.eventBus,
      errorBus: this.errorBus,
      api: this.api,
      environment,
      logLevel,
      logRetention,
      logExecutionData: props.logExecutionData ?? environment !== SkafuEnvironment.PRODUCTION,
      alarmTopic: props.alarmTopic,
      // Projection-owned tables live in the platform's own stack, at a path that only the domain's name decides:
      // turning nested domain stacks on or off moves the domains, never their read models and checkpoints.
      tableScope: new Construct(this, 'ProjectionTables'),
      sharedWidgets: [
        new cloudwatch.GraphWidget({ title: 'Event store', left: [this.eventStore.metricConflicts(), this.eventStore.metricThrottles()], width: 8 }),
        new cloudwatch.GraphWidget({
          title: 'Outbox',
          left: [this.publisher.metricPublishedEvents(), this.publisher.metricUndeliveredEvents()],
          right: [this.publisher.metricIteratorAge()],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: 'Errors and dead letters',
          left: [this.errorBus.metricErrors()],
          right: [this.publisher.deadLetterQueue.metricApproximateNumberOfMessagesVisible()],
          width: 8,
        }),
      ],
    };
  }

  /** Adds a declared domain, in its own nested stack unless `nestedDomainStacks` is false. */
  public addDomain(declaration: DomainDeclaration): EventSourcedDomain {
    if (this.domains[declaration.name]) throw new Error(`SkafuPlatform ${this.node.path}: domain '${declaration.name}' is already added`);
    const id = `${declaration.name.replace(/(^|-)([a-z0-9])/g, (_m, _d, c: string) => c.toUpperCase())}Domain`;
    const scope = this.nested ? new NestedStack(this, id, { description: `Skafu domain ${declaration.name} (${this.environment})` }) : this;
    const domain = new EventSourcedDomain(scope, this.nested ? 'Domain' : id, { platform: this.refs, ...declaration });
    this.domains[declaration.name] = domain;
    return domain;
  }

  /**
   * Adds the read side over GraphQL (SkafuGraphqlApi) for the domains added so far: the platform's user pool and
   * web client, its environment's log retention, its WAF web ACL. Call it after the last `addDomain`.
   */
  public addGraphqlApi(options: SkafuGraphqlOptions = {}): SkafuGraphqlApi {
    if (this.graphqlApi) throw new Error(`SkafuPlatform ${this.node.path}: the GraphQL API is already added`);
    const names = options.domainNames ?? Object.keys(this.domains);
    const unknown = names.filter((n) => !this.domains[n]);
    if (unknown.length > 0) throw new Error(`SkafuPlatform ${this.node.path}: addGraphqlApi names domains that are not added: ${unknown.join(', ')}`);
    this.graphqlApi = new SkafuGraphqlApi(this, 'Graphql', {
      domains: names.map((n) => this.domains[n]),
      userPool: this.users.userPool,
      userPoolClient: this.users.userPoolClient,
      environment: this.environment,
      logRetention: this.refs.logRetention,
      webAclArn: options.webAclArn ?? this.webAclArn,
      liveUpdates: options.liveUpdates,
    });
    return this.graphqlApi;
  }

  /** What a domain constructed outside `addDomain` plugs into. */
  public get platformRefs(): DomainPlatformRefs {
    return this.refs;
  }
}
