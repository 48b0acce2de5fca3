import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { AggregateIdSource, DataSource, Precondition, QueryInput, QueryInputType } from './declarations';
import type { AdditionalEvent, CommandGuard, CommandOwnership, DomainRules, QueryOwnership } from './rules';
import { commandRulesSpec, domainRulesSpec, validateRules } from './rules-synth';
import type { SkafuApi } from '../api';
import type { IErrorBus } from '../error-bus';
import type { IEventStoreTable } from '../event-store';
import { thresholdAlarm } from '../internal/alarms';
import { acknowledgeHandlerRole, handlerOptions } from '../internal/handler';
import { acknowledgeNag } from '../internal/nag';
import { skafuQueue } from '../internal/queues';
import { DOMAIN_SPEC_FILE, VALIDATORS_FILE } from '../internal/shipped-files';
import { bundledHandlerWithFiles, compileValidators } from '../internal/spec-asset';
import { ProjectionAction, ProjectionStateMachine, ReadModelTable, warnIfNested, type ReadModelTableProps } from '../projections';
import { activeVersionKey } from '../projections/keys';
import { upcastProjectionProblems } from '../projections/upcast-states';
import { activeVersionEnvName, encodeDomainSpec, readModelEnvName, type CommandSpec, type DomainSpec, type QuerySpec } from '../runtime/domain-spec';
import { FORBIDDEN_KEYS } from '../runtime/validation';

export * from './declarations';
export * from './rules';

/** A command of a domain: a route that appends one event. */
export interface CommandDefinition {
  /** The command's name (`CreateAlert`). */
  readonly name: string;
  /**
   * The HTTP method of the command's route: POST, PUT, PATCH or DELETE.
   * @default 'POST'
   */
  readonly method?: string;
  /** The path under `/api/v1/<domain>/` (`alerts/{alertId}/trigger`). */
  readonly path: string;
  /** The groups allowed to call it. */
  readonly allowedGroups: string[];
  /** The aggregate's type (`Alert`). */
  readonly aggregateType: string;
  /** Where the aggregate id comes from. */
  readonly aggregateId: AggregateIdSource;
  /**
   * What must be true of the aggregate before the command appends. The default follows where the id comes
   * from: a generated or body id names a new aggregate (a create: it never appends to an existing stream), a
   * path id names an existing one (an update: 404 when it does not exist). Choose ANY explicitly for an upsert.
   * Whatever the precondition, an id that belongs to an aggregate of another type is never appended to.
   * @default MUST_NOT_EXIST for generated and body ids, MUST_EXIST for path ids
   */
  readonly precondition?: Precondition;
  /** The event type it emits (`AlertCreated`). */
  readonly eventType: string;
  /**
   * The schema version of the event's data, written into every event (`eventVersion`); raise it when the data's
   * shape changes so that consumers can tell old events from new ones.
   * @default 1
   */
  readonly eventVersion?: number;
  /**
   * JSON Schema (draft 2019-09/2020-12 as Ajv reads it) of the body; the body becomes the event's data.
   * It must describe an object. It is compiled to validation code at synth and shipped in the command handler's
   * code asset (a schema that does not compile, or that needs `$async`, fails the synth naming the command).
   * @default { type: 'object', additionalProperties: false } (an empty body)
   */
  readonly bodySchema?: { [key: string]: any };
  /**
   * Values added to the event's data, besides the body (path parameters, the user id, the request time, ...).
   * @default - none
   */
  readonly extraData?: { [field: string]: DataSource };
  /**
   * The largest request body accepted, in bytes; a larger one answers 413 `PayloadTooLarge` before it is parsed.
   * @default 102400 (100 KB)
   */
  readonly maxBodyBytes?: number;
  /**
   * A Lambda of your own that handles the command instead of the bundled handler (use `@skafu/constructs/runtime`
   * in it). The domain wires its environment and grants.
   * @default - the bundled command handler
   */
  readonly handler?: lambda.IFunction;
  /**
   * Secrets the handler may read: granted, and their ARNs in `SKAFU_SECRET_<NAME>` variables.
   * @default - none
   */
  readonly secrets?: secretsmanager.ISecret[];
  /**
   * Conditions over the aggregate's declared state, the body and the user that must hold before the command
   * appends; a failed guard answers 409 with the guard's name and writes nothing (bundled handler only).
   * @default - none
   */
  readonly guards?: CommandGuard[];
  /**
   * Only the aggregate's creator (the user id recorded on its first event), or a member of an override group,
   * may run the command; others get 403 NotOwner (bundled handler only).
   * @default - any caller the route's groups allow
   */
  readonly ownership?: CommandOwnership;
  /**
   * More events appended with the first, in one atomic commit (bundled handler only).
   * @default - only `eventType`
   */
  readonly additionalEvents?: AdditionalEvent[];
}

/** A sort key range read from two query-string parameters. */
export interface SortKeyRange {
  /** The sort key attribute (of the table, or of the index the query reads). */
  readonly attribute: string;
  /**
   * The query-string parameter holding the lower bound (inclusive); it must not be after the upper bound.
   * @default - no lower bound
   */
  readonly fromParameter?: string;
  /**
   * The query-string parameter holding the upper bound (inclusive).
   * @default - no upper bound
   */
  readonly toParameter?: string;
  /**
   * The type of the sort key: strings compare by their UTF-8 bytes, numbers by value.
   * @default QueryInputType.STRING
   */
  readonly type?: QueryInputType;
}

/** An equality filter from a query-string parameter, applied when the parameter is given. */
export interface QueryFilter {
  /** The item attribute compared. */
  readonly attribute: string;
  /** The query-string parameter holding the value it must equal. */
  readonly parameter: string;
  /**
   * The type of the value.
   * @default QueryInputType.STRING
   */
  readonly type?: QueryInputType;
}

/** The partition key condition of a list query. */
export interface PartitionKeyCondition {
  /** The partition key attribute (of the table, or of the index the query reads). */
  readonly attribute: string;
  /** Where its value comes from (a path or query-string parameter, or a constant). */
  readonly input: QueryInput;
}

/** A query of a domain: a GET route that reads a read model. */
export interface QueryDefinition {
  /** The query's name (`GetAlert`), unique in the domain. */
  readonly name: string;
  /** The path under `/api/v1/<domain>/`. */
  readonly path: string;
  /** The groups allowed to call it. */
  readonly allowedGroups: string[];
  /** The read model's name (one of the domain's `readModels`). */
  readonly readModel: string;
  /**
   * Get one item by its key; without it, the query lists.
   * @default - a list query
   */
  readonly key?: { [attribute: string]: QueryInput };
  /**
   * List by a partition key (a Query); without it, the list scans.
   * @default - scan
   */
  readonly partitionKey?: PartitionKeyCondition;
  /**
   * A list's sort-key range, read from two query-string parameters.
   * @default - none
   */
  readonly sortKeyRange?: SortKeyRange;
  /**
   * The read model's index the list reads (one of its `indexes`).
   * @default - the table
   */
  readonly index?: string;
  /**
   * A list's equality filters, each applied when its query-string parameter is given (after the read: a page
   * can hold fewer items than `limit`).
   * @default - none
   */
  readonly filters?: QueryFilter[];
  /**
   * The items a list page holds when the request gives no `limit`.
   * @default 25
   */
  readonly pageSize?: number;
  /**
   * The largest `limit` a list request may ask for (400 above it).
   * @default 100
   */
  readonly maxPageSize?: number;
  /**
   * List in descending sort-key order.
   * @default false
   */
  readonly newestFirst?: boolean;
  /**
   * A Lambda of your own that answers the query instead of the bundled handler; the domain grants it read on the
   * read model and passes the table name in `SKAFU_READ_MODEL_<NAME>`. From version 2 on, while the previous
   * version is kept, it also gets `SKAFU_ACTIVE_VERSION_<NAME>` and read on both versions and on the pointer: call
   * `activeReadModelTable('<name>')` from `@skafu/constructs/runtime` for every request to read the version
   * queries answer from (the previous one until the new one has caught up).
   * @default - the bundled query handler
   */
  readonly handler?: lambda.IFunction;
  /**
   * Secrets the custom handler may read: granted, and their ARNs in `SKAFU_SECRET_<NAME>` variables.
   * @default - none
   */
  readonly secrets?: secretsmanager.ISecret[];
  /**
   * Object-level authorization (bundled handler only): a get answers 403 NotOwner for another user's item, and a
   * list returns only the caller's items, unless the caller is in an override group.
   * @default - every item is visible to the route's groups
   */
  readonly ownership?: QueryOwnership;
}

/** A projection of a read model: an event type and what it does. */
export interface ReadModelProjection {
  /** The event type (of this domain) that triggers it. */
  readonly eventType: string;
  /** What it does to the read model (put, update or delete an item). */
  readonly action: ProjectionAction;
}

/** A read model of a domain, with its projections. */
export interface ReadModelDefinition extends ReadModelTableProps {
  /** Its name in the domain (used by queries). */
  readonly name: string;
  /** The projections that keep it up to date, one per event type. */
  readonly projections: ReadModelProjection[];
}

/** The shared pieces a domain plugs into (SkafuPlatform provides them). */
export interface DomainPlatformRefs {
  /** The event store the commands append to (and whose events the projections read). */
  readonly eventStore: IEventStoreTable;
  /** The bus the events are published on (`skafu-events`); projections' rules live on it. */
  readonly eventBus: events.IEventBus;
  /** The bus every failure is reported on (`skafu-errors`). */
  readonly errorBus: IErrorBus;
  /** The API the domain's routes are added to. */
  readonly api: SkafuApi;
  /**
   * The environment, used in names and presets.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * The handlers' Powertools log level (`POWERTOOLS_LOG_LEVEL`).
   * @default 'INFO'
   */
  readonly logLevel?: string;
  /**
   * Retention of the handlers' and state machines' logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Whether projection state machine logs include execution data (event data, possibly personal data).
   * @default true
   */
  readonly logExecutionData?: boolean;
  /** Where alarms send their actions. @default - no action */
  readonly alarmTopic?: sns.ITopic;
  /** Platform metrics shown on every domain dashboard. @default - none */
  readonly sharedWidgets?: cloudwatch.IWidget[];
  /**
   * Where the domain creates its projection-owned tables (read models, checkpoints, parked events), under a
   * construct named after the domain. Give a scope that does not move when the domain does (SkafuPlatform gives
   * one in its own stack) so that their physical identity survives rearranging the tree, for example turning
   * nested stacks on or off.
   * @default - the domain itself (synth warns when that is inside a nested stack)
   */
  readonly tableScope?: IConstruct;
}

/** Properties of an EventSourcedDomain. */
export interface EventSourcedDomainProps {
  /** The shared pieces the domain plugs into (`SkafuPlatform.platformRefs`). */
  readonly platform: DomainPlatformRefs;
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
   * @default - the commands' event types only
   */
  readonly eventTypes?: string[];
  /**
   * Business rules: declared aggregate states, event schema upcasters, and reactions to other domains' events.
   * @default - none
   */
  readonly rules?: DomainRules;
}

const DOMAIN = /^[a-z][a-z0-9-]{0,30}$/;
/** Lambda allows 4 KB of environment variables in all; the declared fold's share for a custom handler. */
const MAX_ENCODED_FOLD_SPEC = 2800;
/** The most metrics a CloudWatch alarm on metric math may read. */
const ALARM_METRICS = 10;
const COMMAND = /^[A-Z][A-Za-z0-9]{0,63}$/;

/**
 * A declared event-sourced domain: commands (routes that validate and append events), queries (routes that read
 * read models), read models with their projections, monitoring (a dashboard and alarms), wired to the platform's
 * event store, buses and API with least-privilege grants.
 */
export class EventSourcedDomain extends Construct {
  /** The domain's name (`/api/v1/<name>`, `skafu.<name>`). */
  public readonly domainName: string;
  /** The bundled command handler (all bundled commands of the domain). */
  public readonly commandFunction?: lambda.IFunction;
  /** The bundled query handler (all bundled queries of the domain). */
  public readonly queryFunction?: lambda.IFunction;
  /** The read model tables, by name. */
  public readonly readModels: Record<string, ReadModelTable> = {};
  /** The state machine running the read models' projections (absent without read models). */
  public readonly projections?: ProjectionStateMachine;
  /** The domain's CloudWatch dashboard (`skafu-<env>-<domain>`). */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The domain's alarms (handler errors and throttles, projection failures). */
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** The domain's event types (what its commands emit, plus `eventTypes`). */
  public readonly eventTypes: string[];
  /** The rules of the domain's reactions, by reaction name. */
  public readonly reactionRules: Record<string, events.Rule> = {};
  /** Reaction deliveries that failed every retry (EventBridge delivery and Lambda's asynchronous retries). */
  public readonly reactionDeadLetterQueue?: sqs.Queue;
  /** The queries as declared (the GraphQL API is generated from them). */
  public readonly declaredQueries: QueryDefinition[];
  /** The read models as declared, with their projections (the GraphQL API is generated from them). */
  public readonly declaredReadModels: ReadModelDefinition[];

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (EventSourcedDomainProps)
   */
  constructor(scope: Construct, id: string, props: EventSourcedDomainProps) {
    super(scope, id);
    const commands = props.commands ?? [];
    const queries = props.queries ?? [];
    const readModels = props.readModels ?? [];
    validate(this.node.path, props);
    this.domainName = props.name;
    this.declaredQueries = [...queries];
    this.declaredReadModels = [...readModels];
    const platform = props.platform;
    const environment = platform.environment ?? 'development';
    const emitted = commands.flatMap((c) => [c.eventType, ...(c.additionalEvents ?? []).map((e) => e.eventType)]);
    this.eventTypes = [...new Set([...emitted, ...(props.eventTypes ?? [])])];
    const settings = { logRetention: platform.logRetention, logLevel: platform.logLevel };
    const baseEnv = {
      SKAFU_DOMAIN: props.name,
      SKAFU_ENVIRONMENT: environment,
      ...platform.errorBus.environmentVariables(),
    };

    // Read models and their projections. Kept in staging and production; development may destroy them.
    const removalPolicy = environment === 'development' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const tableScope = platform.tableScope ? new Construct(platform.tableScope, props.name) : undefined;
    for (const rm of readModels) {
      const { name, projections: _, ...tableProps } = rm;
      const table = new ReadModelTable(tableScope ?? this, `ReadModel${pascal(name)}`, { removalPolicy, ...tableProps, readModelName: tableProps.readModelName ?? name });
      if (!tableScope) warnIfNested(table, `read model '${name}'`);
      this.readModels[name] = table;
    }
    const projectionList = readModels.flatMap((rm) =>
      rm.projections.map((p) => ({ eventType: p.eventType, readModel: this.readModels[rm.name], action: p.action })),
    );
    if (projectionList.length > 0) {
      this.projections = new ProjectionStateMachine(this, 'Projections', {
        domain: props.name,
        eventBus: platform.eventBus,
        errorBus: platform.errorBus,
        projections: projectionList,
        eventTypes: this.eventTypes,
        logRetention: platform.logRetention,
        logExecutionData: platform.logExecutionData,
        removalPolicy,
        tableScope,
        eventStore: platform.eventStore.hasAggregateIndex ? platform.eventStore : undefined,
        aggregateTypes: [...new Set(commands.map((c) => c.aggregateType))],
        // Stored events of older versions are projected upgraded, as the declared state folds them.
        upcasters: props.rules?.upcasters,
      });
    }

    // The domain's spec, for the bundled handlers.
    const resource = (path: string) => `/api/v1/${props.name}/${trimSlashes(path)}`;
    const commandSpecs: CommandSpec[] = commands.filter((c) => !c.handler).map((c) => commandSpec(c, resource(c.path)));
    const readModelOf = (q: QueryDefinition) => readModels.find((r) => r.name === q.readModel);
    const querySpecs: QuerySpec[] = queries.filter((q) => !q.handler).map((q) => querySpec(q, resource(q.path), readModelOf(q)));
    const rulesSpec = domainRulesSpec(commands.filter((c) => !c.handler), props.rules);
    const spec: DomainSpec = { domain: props.name, commands: commandSpecs, queries: querySpecs, ...rulesSpec };
    // The bundled handlers get the spec as files in their own code asset (no size ceiling), the commands' schemas
    // compiled to validation code here, at synth; the environment keeps names and ARNs.
    const specFile = JSON.stringify(spec);
    const cors = platform.api.corsOrigins.join(',');

    if (commandSpecs.length > 0) {
      const options = handlerOptions(this, 'Commands', {
        ...settings,
        description: `Skafu ${props.name} command handler`,
        serviceName: `skafu-${props.name}-commands`,
        memorySize: 512,
        timeout: Duration.seconds(15),
        environment: { ...baseEnv, SKAFU_EVENT_STORE_TABLE: platform.eventStore.tableName, SKAFU_CORS_ORIGINS: cors },
      });
      let validators: string;
      try {
        validators = compileValidators(commandSpecs.map((c) => ({ name: c.name, schema: c.schema })));
      } catch (err) {
        throw new Error(`EventSourcedDomain ${this.node.path}: ${(err as Error).message}`);
      }
      const fn = bundledHandlerWithFiles(this, 'Commands', 'domain/command.lambda', { [DOMAIN_SPEC_FILE]: specFile, [VALIDATORS_FILE]: validators }, options);
      platform.eventStore.grantAppendEvents(fn, props.name);
      platform.errorBus.grantPutErrors(fn);
      acknowledgeHandlerRole(options.role);
      this.commandFunction = fn;
      this.reactionDeadLetterQueue = this.addReactions(props, fn, spec);
    }
    if (querySpecs.length > 0) {
      const tableEnv = Object.assign({}, ...[...new Set(querySpecs.map((q) => q.readModel))].map((name) => this.readModelQueryEnvironment(name)));
      const options = handlerOptions(this, 'Queries', {
        ...settings,
        description: `Skafu ${props.name} query handler`,
        serviceName: `skafu-${props.name}-queries`,
        memorySize: 512,
        timeout: Duration.seconds(10),
        environment: { ...baseEnv, ...tableEnv, SKAFU_CORS_ORIGINS: cors },
      });
      const fn = bundledHandlerWithFiles(this, 'Queries', 'domain/query.lambda', { [DOMAIN_SPEC_FILE]: specFile }, options);
      for (const name of new Set(querySpecs.map((q) => q.readModel))) this.grantReadModelRead(fn, this.readModels[name]);
      platform.errorBus.grantPutErrors(fn);
      acknowledgeHandlerRole(options.role);
      this.queryFunction = fn;
    }

    // Routes.
    for (const command of commands) {
      const fn = command.handler ?? this.commandFunction!;
      // The declared states let a custom handler use the declared fold (DeclaredStateFold.fromEnvironment).
      if (command.handler) this.wireCustomHandler(command.handler, { ...baseEnv, SKAFU_DOMAIN_SPEC: this.foldSpecForEnvironment(spec) }, platform, 'command');
      this.grantSecrets(fn, command.secrets);
      platform.api.addRoute(command.method ?? 'POST', `${props.name}/${trimSlashes(command.path)}`, integration(fn), {
        allowedGroups: command.allowedGroups,
        scope: this,
        operationName: command.name,
      });
    }
    for (const query of queries) {
      const fn = query.handler ?? this.queryFunction!;
      if (query.handler) {
        this.wireCustomHandler(query.handler, baseEnv, platform, 'query');
        this.grantReadModelRead(query.handler, this.readModels[query.readModel]);
        // The same as the bundled handler's: read it with activeReadModelTable(name) from the runtime.
        for (const [k, v] of Object.entries(this.readModelQueryEnvironment(query.readModel))) (query.handler as lambda.Function).addEnvironment(k, v);
      }
      this.grantSecrets(fn, query.secrets);
      platform.api.addRoute('GET', `${props.name}/${trimSlashes(query.path)}`, integration(fn), {
        allowedGroups: query.allowedGroups,
        scope: this,
        operationName: query.name,
        requestParameters: Object.fromEntries(
          [query.partitionKey?.input, ...Object.values(query.key ?? {})]
            .map((i) => i?._spec())
            .filter((s): s is Extract<NonNullable<typeof s>, { kind: 'query' }> => s?.kind === 'query')
            .map((s) => [`method.request.querystring.${s.name}`, s.required]),
        ),
      });
    }

    // One invoke permission per function, for the domain's routes only, on any stage.
    const invokers = new Set<lambda.IFunction>([
      ...commands.map((c) => c.handler ?? this.commandFunction!),
      ...queries.map((q) => q.handler ?? this.queryFunction!),
    ]);
    let n = 0;
    for (const fn of invokers) {
      fn.addPermission(`ApiInvoke${n++}${props.name.replace(/[^A-Za-z0-9]/g, '')}`, {
        principal: new iam.ServicePrincipal('apigateway.amazonaws.com'),
        action: 'lambda:InvokeFunction',
        sourceArn: platform.api.restApi.arnForExecuteApi('*', `/api/v1/${props.name}/*`, '*'),
      });
    }

    // Monitoring.
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `skafu-${environment}-${props.name}`,
      defaultInterval: Duration.hours(3),
    });
    this.addMonitoring(props, commands, queries);
  }

  /**
   * What a custom command handler's environment carries of the spec: the declared states, upcasters and event
   * versions that DeclaredStateFold.fromEnvironment reads (a custom handler's code asset is the user's, so this
   * part travels in the environment; the commands and queries, schemas included, never do).
   */
  private foldSpecForEnvironment(spec: DomainSpec): string {
    const encoded = encodeDomainSpec({
      domain: spec.domain,
      commands: [],
      queries: [],
      ...(spec.aggregates ? { aggregates: spec.aggregates } : {}),
      ...(spec.upcasters ? { upcasters: spec.upcasters } : {}),
      ...(spec.eventVersions ? { eventVersions: spec.eventVersions } : {}),
    });
    if (encoded.length > MAX_ENCODED_FOLD_SPEC) {
      throw new Error(
        `EventSourcedDomain ${this.node.path}: the declared states and upcasters encode to ${encoded.length} bytes, over the ${MAX_ENCODED_FOLD_SPEC} a custom command handler's environment allows (Lambda: 4 KB in all)`,
      );
    }
    return encoded;
  }

  /**
   * Lets a function read a read model (GetItem, Query, Scan on the table and its declared indexes). While the
   * previous version is kept, on its table and indexes too, and GetItem on exactly the read model's
   * active-version pointer in the projections' checkpoint table (dynamodb:LeadingKeys), to know which answers.
   */
  public grantReadModelRead(grantee: iam.IGrantable, readModel: ReadModelTable): iam.Grant {
    const tables = [readModel.table, ...(readModel.previousVersionTable ? [readModel.previousVersionTable] : [])];
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan'],
      resourceArns: tables.flatMap((t) => [t.tableArn, ...readModel.indexNames.map((i) => `${t.tableArn}/index/${i}`)]),
    });
    if (readModel.previousVersionTable && this.projections) {
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['dynamodb:GetItem'],
        resourceArns: [this.projections.checkpointTable.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [activeVersionKey(readModel.readModelName)] } },
      });
    }
    return grant;
  }

  /**
   * The environment a query handler reads a read model with: `SKAFU_READ_MODEL_<NAME>` (the table of the version
   * this deployment built) and, while the previous version is kept, `SKAFU_ACTIVE_VERSION_<NAME>` (the previous
   * table, the version and the pointer's place), which the runtime's `activeReadModelTable(name)` follows.
   */
  private readModelQueryEnvironment(name: string): Record<string, string> {
    const table = this.readModels[name];
    const env: Record<string, string> = { [readModelEnvName(name)]: table.tableName };
    if (table.previousVersionTable && this.projections) {
      env[activeVersionEnvName(name)] = Stack.of(this).toJsonString({
        version: table.version,
        previousTable: table.previousVersionTable.tableName,
        checkpointTable: this.projections.checkpointTable.tableName,
        pointerKey: activeVersionKey(table.readModelName),
      });
    }
    return env;
  }

  /**
   * One EventBridge rule per declared reaction, on the platform bus, invoking the command handler. Delivery:
   * EventBridge retries for up to 24 hours and then dead-letters; the handler's asynchronous invocations are
   * retried twice by Lambda and then sent to the same queue. Business refusals are reported on the error bus.
   */
  private addReactions(props: EventSourcedDomainProps, fn: lambda.Function, spec: DomainSpec): sqs.Queue | undefined {
    const reactions = props.rules?.reactions ?? [];
    if (reactions.length === 0) return undefined;
    const dlq = skafuQueue(this, 'ReactionDeadLetters');
    acknowledgeNag(dlq, [{ id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the reaction rules and of the command handler\'s asynchronous invocations.' }]);
    fn.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(6), onFailure: new destinations.SqsDestination(dlq) });
    for (const r of reactions) {
      const command = spec.commands.find((c) => c.name === r.command)!;
      this.reactionRules[r.name] = new events.Rule(this, `Reaction${r.name}`, {
        eventBus: props.platform.eventBus,
        description: `Skafu ${props.name}: ${r.sourceDomain} ${r.eventType} issues ${command.name}`,
        eventPattern: {
          source: [`skafu.${r.sourceDomain}`],
          detailType: [r.eventType],
          ...(r.dataPattern ? { detail: { data: r.dataPattern } } : {}),
        },
        targets: [new targets.LambdaFunction(fn, { retryAttempts: 185, maxEventAge: Duration.hours(24), deadLetterQueue: dlq })],
      });
    }
    return dlq;
  }

  private wireCustomHandler(fn: lambda.IFunction, env: Record<string, string>, platform: DomainPlatformRefs, kind: 'command' | 'query'): void {
    if (!(fn instanceof lambda.Function)) {
      throw new Error(`EventSourcedDomain ${this.node.path}: a custom ${kind} handler must be a lambda.Function defined in this app (its environment is wired)`);
    }
    const wired = { ...env, SKAFU_EVENT_STORE_TABLE: platform.eventStore.tableName, SKAFU_EVENT_BUS_NAME: platform.eventBus.eventBusName };
    for (const [k, v] of Object.entries(wired)) fn.addEnvironment(k, v);
    platform.errorBus.grantPutErrors(fn);
    // Confined to this domain's items by IAM (dynamodb:LeadingKeys on `<domain>#*`), like the bundled handlers.
    if (kind === 'command') platform.eventStore.grantAppendEvents(fn, this.domainName);
    else platform.eventStore.grantReadEvents(fn, this.domainName);
  }

  private grantSecrets(fn: lambda.IFunction, secrets: secretsmanager.ISecret[] | undefined): void {
    for (const secret of secrets ?? []) {
      secret.grantRead(fn);
      if (fn instanceof lambda.Function) {
        const name = secret.node.id.toUpperCase().replace(/[^A-Z0-9]/g, '_');
        fn.addEnvironment(`SKAFU_SECRET_${name}`, secret.secretArn);
      }
    }
  }

  private addMonitoring(props: EventSourcedDomainProps, commands: CommandDefinition[], queries: QueryDefinition[]): void {
    const platform = props.platform;
    const api = platform.api;
    const alarm = (id: string, description: string, metric: cloudwatch.IMetric, threshold: number, periods = 1) => {
      const a = thresholdAlarm(this, id, { description: `${props.name}: ${description}`, metric, threshold, evaluationPeriods: periods });
      if (platform.alarmTopic) a.addAlarmAction(new cwActions.SnsAction(platform.alarmTopic));
      this.alarms.push(a);
      return a;
    };
    const handlerWidgets: cloudwatch.IWidget[] = [];
    for (const [name, fn] of [['Commands', this.commandFunction], ['Queries', this.queryFunction]] as const) {
      if (!fn) continue;
      alarm(`${name}ErrorsAlarm`, `${name.toLowerCase()} handler errors`, fn.metricErrors({ period: Duration.minutes(5) }), 5);
      alarm(`${name}ThrottlesAlarm`, `${name.toLowerCase()} handler throttles`, fn.metricThrottles({ period: Duration.minutes(5) }), 0);
      handlerWidgets.push(
        new cloudwatch.GraphWidget({
          title: `${name} handler`,
          left: [fn.metricInvocations(), fn.metricErrors(), fn.metricThrottles()],
          right: [fn.metricDuration({ statistic: 'p90' })],
          width: 12,
        }),
      );
    }
    const routes = [
      ...commands.map((c) => ({ method: (c.method ?? 'POST').toUpperCase(), path: `/api/v1/${props.name}/${trimSlashes(c.path)}` })),
      ...queries.map((q) => ({ method: 'GET', path: `/api/v1/${props.name}/${trimSlashes(q.path)}` })),
    ];
    const routeMetric = (metricName: string, statistic: string, label: string, some = routes.slice(0, 50)) => {
      const using: Record<string, cloudwatch.IMetric> = {};
      some.forEach((r, i) => {
        using[`m${metricName.replace(/[^A-Za-z0-9]/g, '').toLowerCase()}${i}`] = new cloudwatch.Metric({
          namespace: 'AWS/ApiGateway',
          metricName,
          dimensionsMap: { ApiName: api.restApi.restApiName, Stage: api.stageName, Resource: r.path, Method: r.method },
          statistic,
          period: Duration.minutes(5),
        });
      });
      const keys = Object.keys(using);
      return new cloudwatch.MathExpression({
        expression: statistic === 'Sum' ? keys.map((k) => `FILL(${k}, 0)`).join(' + ') : `MAX([${keys.join(', ')}])`,
        usingMetrics: using,
        label,
        period: Duration.minutes(5),
      });
    };
    // A CloudWatch alarm on metric math reads at most 10 metrics: every route is alarmed, 10 routes per alarm.
    for (let i = 0; i < routes.length; i += ALARM_METRICS) {
      const part = routes.slice(i, i + ALARM_METRICS);
      const n = i === 0 ? '' : String(i / ALARM_METRICS + 1);
      const which = routes.length > ALARM_METRICS ? ` (routes ${i + 1}-${i + part.length})` : '';
      alarm(`Api5xxAlarm${n}`, `API 5XX answers${which}`, routeMetric('5XXError', 'Sum', '5XX', part), 0);
      alarm(`ApiLatencyAlarm${n}`, `API p90 latency over 2 s${which}`, routeMetric('Latency', 'p90', 'latency p90 (worst route)', part), 2000, 3);
    }
    if (this.reactionDeadLetterQueue) {
      alarm('ReactionDeadLettersAlarm', 'reactions dead-lettered (redrive them from the queue)', this.reactionDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }), 0);
    }
    if (this.projections) {
      alarm('ProjectionFailuresAlarm', 'failed projections (reported on the error bus)', this.projections.metricFailedExecutions(), 0);
      const lag = this.projections.lagAlarm;
      if (lag) {
        if (platform.alarmTopic) lag.addAlarmAction(new cwActions.SnsAction(platform.alarmTopic));
        this.alarms.push(lag);
      }
    }
    this.dashboard.addWidgets(new cloudwatch.TextWidget({ markdown: `# Skafu domain \`${props.name}\` (${platform.environment ?? 'development'})`, width: 24, height: 1 }));
    if (routes.length > 0) {
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({ title: 'API 4XX / 5XX', left: [routeMetric('4XXError', 'Sum', '4XX'), routeMetric('5XXError', 'Sum', '5XX')], width: 12 }),
        new cloudwatch.GraphWidget({ title: 'API latency (p90, worst route)', left: [routeMetric('Latency', 'p90', 'latency p90')], width: 12 }),
      );
    }
    if (handlerWidgets.length > 0) this.dashboard.addWidgets(...handlerWidgets);
    if (this.projections) {
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: 'Projections',
          left: [this.projections.metricStartedExecutions(), this.projections.metricFailedExecutions()],
          right: [this.projections.metricDuration(), ...(this.projections.lagAlarm ? [this.projections.metricLagSeconds()] : [])],
          width: 24,
        }),
      );
    }
    if (platform.sharedWidgets && platform.sharedWidgets.length > 0) this.dashboard.addWidgets(...platform.sharedWidgets);
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 }));
  }
}

/**
 * A Lambda proxy integration without the per-method permission LambdaIntegration adds: that permission names the
 * stage, and the stage depends on the deployment, which depends on every route (in nested stacks too). The
 * domain grants each function one permission for its own routes instead (any stage).
 */
function integration(fn: lambda.IFunction): apigw.Integration {
  return new apigw.Integration({
    type: apigw.IntegrationType.AWS_PROXY,
    integrationHttpMethod: 'POST',
    uri: `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:lambda:path/2015-03-31/functions/${fn.functionArn}/invocations`,
  });
}

function trimSlashes(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}

function pascal(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([a-z0-9])/g, (_m, _s, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '');
}

function commandSpec(c: CommandDefinition, resource: string): CommandSpec {
  const aggregateId = c.aggregateId._spec();
  return {
    name: c.name,
    method: (c.method ?? 'POST').toUpperCase(),
    resource,
    aggregateType: c.aggregateType,
    eventType: c.eventType,
    eventVersion: c.eventVersion ?? 1,
    aggregateId,
    precondition: (c.precondition ?? defaultPrecondition(aggregateId.kind)) as CommandSpec['precondition'],
    schema: c.bodySchema ?? { type: 'object', additionalProperties: false },
    extraData: Object.fromEntries(Object.entries(c.extraData ?? {}).map(([k, v]) => [k, v._spec()])),
    maxBodyBytes: c.maxBodyBytes ?? 100 * 1024,
    ...commandRulesSpec(c),
  };
}

/** Creates say they create: generated and body ids name a new aggregate, path ids an existing one. */
function defaultPrecondition(kind: CommandSpec['aggregateId']['kind']): Precondition {
  return kind === 'path' ? Precondition.MUST_EXIST : Precondition.MUST_NOT_EXIST;
}

function querySpec(q: QueryDefinition, resource: string, readModel?: ReadModelDefinition): QuerySpec {
  const index = q.index ? (readModel?.indexes ?? []).find((i) => i.indexName === q.index) : undefined;
  const keys = readModel ? [readModel.partitionKey, readModel.sortKey, index?.partitionKey, index?.sortKey] : [];
  const startKey = [...new Map(keys.filter((k) => k !== undefined).map((k) => [k!.name, { name: k!.name, type: (k!.type ?? 'S') as 'S' | 'N' | 'B' }])).values()];
  return {
    name: q.name,
    resource,
    readModel: q.readModel,
    kind: q.key ? 'get' : 'list',
    key: q.key ? Object.fromEntries(Object.entries(q.key).map(([k, v]) => [k, v._spec()])) : undefined,
    partitionKey: q.partitionKey ? { attribute: q.partitionKey.attribute, input: q.partitionKey.input._spec() } : undefined,
    sortKeyRange: q.sortKeyRange
      ? { attribute: q.sortKeyRange.attribute, fromParameter: q.sortKeyRange.fromParameter, toParameter: q.sortKeyRange.toParameter, type: (q.sortKeyRange.type ?? QueryInputType.STRING) as 'S' | 'N' }
      : undefined,
    index: q.index,
    filters: (q.filters ?? []).map((f) => ({ attribute: f.attribute, parameter: f.parameter, type: (f.type ?? QueryInputType.STRING) as 'S' | 'N' })),
    pageSize: q.pageSize ?? 25,
    maxPageSize: q.maxPageSize ?? 100,
    newestFirst: q.newestFirst ?? false,
    startKey: readModel ? startKey : undefined,
    ...(q.ownership ? { ownerAttribute: q.ownership.ownerAttribute, ownerOverrideGroups: [...(q.ownership.overrideGroups ?? [])] } : {}),
  };
}

function validate(path: string, props: EventSourcedDomainProps): void {
  const errors: string[] = [];
  if (!DOMAIN.test(props.name)) errors.push(`'name' '${props.name}' must be 1-31 lower-case letters, digits or '-', starting with a letter`);
  const commands = props.commands ?? [];
  const queries = props.queries ?? [];
  const readModels = props.readModels ?? [];
  if (commands.length + queries.length === 0) errors.push('a domain needs at least one command or query');
  const names = [...commands.map((c) => c.name), ...queries.map((q) => q.name)];
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(`'${dup}' is declared twice`);
  const routes = [...commands.map((c) => `${(c.method ?? 'POST').toUpperCase()} ${trimSlashes(c.path)}`), ...queries.map((q) => `GET ${trimSlashes(q.path)}`)];
  const dupRoute = routes.find((r, i) => routes.indexOf(r) !== i);
  if (dupRoute) errors.push(`route ${dupRoute} is declared twice`);
  const rmNames = readModels.map((r) => r.name);
  for (const c of commands) {
    if (!COMMAND.test(c.name)) errors.push(`command '${c.name}' must be PascalCase`);
    const spec = c.aggregateId._spec();
    if (spec.kind === 'path' && !c.path.includes(`{${spec.name}}`)) errors.push(`command ${c.name}: aggregateId comes from path parameter '${spec.name}', which '${c.path}' does not have`);
    if (c.bodySchema && c.bodySchema.type !== 'object') errors.push(`command ${c.name}: bodySchema must describe an object (type: 'object'); the body becomes the event's data`);
    if (spec.kind === 'body' && c.bodySchema && !(Array.isArray(c.bodySchema.required) && c.bodySchema.required.includes(spec.field))) {
      errors.push(`command ${c.name}: the aggregate id field '${spec.field}' must be required by bodySchema`);
    }
    if (spec.kind === 'generated' && c.precondition === Precondition.MUST_EXIST) errors.push(`command ${c.name}: a generated id cannot MUST_EXIST`);
    if (spec.kind === 'body' && FORBIDDEN_KEYS.has(spec.field)) errors.push(`command ${c.name}: the aggregate id field may not be '${spec.field}'`);
    for (const [field, source] of Object.entries(c.extraData ?? {})) {
      if (FORBIDDEN_KEYS.has(field)) errors.push(`command ${c.name}: extraData may not name the field '${field}' (it would not be stored)`);
      const s = source._spec();
      if (s.kind === 'path' && !c.path.includes(`{${s.name}}`)) errors.push(`command ${c.name}: extraData.${field} reads path parameter '${s.name}', which '${c.path}' does not have`);
    }
    if ((c.method ?? 'POST').toUpperCase() === 'GET') errors.push(`command ${c.name}: commands cannot be GET`);
  }
  for (const q of queries) {
    if (!rmNames.includes(q.readModel)) errors.push(`query ${q.name}: read model '${q.readModel}' is not declared (${rmNames.join(', ') || 'none'})`);
    const rm = readModels.find((r) => r.name === q.readModel);
    if (rm && q.key) {
      const keys = [rm.partitionKey.name, ...(rm.sortKey ? [rm.sortKey.name] : [])].sort();
      if (Object.keys(q.key).sort().join() !== keys.join()) errors.push(`query ${q.name}: key must be exactly the read model's keys (${keys.join(', ')})`);
    }
    if (q.key && (q.partitionKey || q.sortKeyRange || q.filters)) errors.push(`query ${q.name}: 'key' (get) excludes partitionKey, sortKeyRange and filters (list)`);
    if (rm && q.index && !(rm.indexes ?? []).some((i) => i.indexName === q.index)) errors.push(`query ${q.name}: index '${q.index}' is not declared on '${q.readModel}'`);
    for (const input of [...Object.values(q.key ?? {}), ...(q.partitionKey ? [q.partitionKey.input] : [])]) {
      const s = input._spec();
      if (s.kind === 'path' && !q.path.includes(`{${s.name}}`)) errors.push(`query ${q.name}: path parameter '${s.name}' is not in '${q.path}'`);
    }
    if ((q.pageSize ?? 25) > (q.maxPageSize ?? 100)) errors.push(`query ${q.name}: pageSize is over maxPageSize`);
  }
  // Query handlers find a read model's table in SKAFU_READ_MODEL_<NAME> (upper case, other characters '_'): two
  // names that map to one variable would make a query read the other read model's table.
  const byEnv = new Map<string, string>();
  for (const rm of readModels) {
    const other = byEnv.get(readModelEnvName(rm.name));
    if (other !== undefined && other !== rm.name) errors.push(`read models '${other}' and '${rm.name}' have the same environment variable ${readModelEnvName(rm.name)}: rename one`);
    byEnv.set(readModelEnvName(rm.name), rm.name);
  }
  for (const rm of readModels) {
    if ((rm.version ?? 1) > 1 && rm.projections.length === 0) errors.push(`read model ${rm.name}: version ${rm.version} is filled by its projections from the event store, but it has none`);
    for (const p of rm.projections) {
      const emits = (c: CommandDefinition) => c.eventType === p.eventType || (c.additionalEvents ?? []).some((e) => e.eventType === p.eventType);
      if (!commands.some(emits) && !(props.eventTypes ?? []).includes(p.eventType)) {
        errors.push(`read model ${rm.name}: projection of '${p.eventType}', which no command emits (declare it in eventTypes if a custom handler does)`);
      }
      // A path missing from an event fails a Step Functions execution with States.Runtime, which no Catch can
      // report: every data field a projection reads must be in every event of its type.
      const fields = [...new Set(p.action._values().map((v) => /^data\.([^.]+)/.exec(v._describe())?.[1]).filter((f): f is string => !!f))];
      for (const c of commands.filter((x) => x.eventType === p.eventType && !x.handler)) {
        const required: string[] = Array.isArray(c.bodySchema?.required) ? c.bodySchema!.required : [];
        for (const f of fields.filter((x) => !required.includes(x) && !Object.keys(c.extraData ?? {}).includes(x))) {
          errors.push(`read model ${rm.name}: the projection of ${p.eventType} reads data.${f}, which ${c.name} does not always provide (require it in bodySchema, or add it with extraData)`);
        }
      }
    }
  }
  for (const q of queries) {
    if (q.ownership && q.handler) errors.push(`query ${q.name}: ownership is enforced by the bundled handler; a custom handler enforces its own`);
    if (q.ownership && !/^[A-Za-z_][A-Za-z0-9_]{0,254}$/.test(q.ownership.ownerAttribute)) errors.push(`query ${q.name}: ownership.ownerAttribute '${q.ownership.ownerAttribute}' is not an attribute name`);
  }
  const ruleErrors = validateRules(commands, props.rules, props.eventTypes ?? [], props.name);
  errors.push(...ruleErrors);
  if (ruleErrors.length === 0) {
    // Projections read stored events upgraded to their current version (projections/upcast-states.ts).
    const upcasters = (props.rules?.upcasters ?? []).map((u) => ({
      eventType: u.eventType,
      fromVersion: u.fromVersion,
      steps: u.steps.map((s) => s._spec()),
    }));
    const projected = readModels.flatMap((rm) =>
      rm.projections.map((p) => ({ readModel: rm.name, eventType: p.eventType, template: p.action._render('t', rm.timeToLiveAttribute) })),
    );
    errors.push(...upcastProjectionProblems(upcasters, projected));
  }
  if (errors.length > 0) throw new Error(`EventSourcedDomain ${path}: ${errors.join('; ')}`);
}
