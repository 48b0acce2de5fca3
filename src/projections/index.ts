import { Annotations, CustomResource, Duration, NestedStack, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { BackfillFunction } from './backfill-function';
import { buildDefinition } from './definition';
import { ParkedEventsFunction } from './parked-events-function';
import { ReadModelTable } from './read-model-table';
import { upcastProblems } from './upcast-states';
import { ProjectionAction, ValueType } from './values';
import type { EventUpcasterDefinition } from '../domain/rules';
import type { IErrorBus } from '../error-bus';
import type { IEventStoreTable } from '../event-store';
import { thresholdAlarm } from '../internal/alarms';
import { acknowledgeHandlerRole, handlerOptions } from '../internal/handler';
import { acknowledgeNag } from '../internal/nag';
import { skafuQueue } from '../internal/queues';

export * from './read-model-table';
export * from './values';

/** One projection: an event type, the read model it changes, and how. */
export interface Projection {
  /** The event type (the EventBridge detail-type) the projection applies to. */
  readonly eventType: string;
  /** The read model the projection writes to. */
  readonly readModel: ReadModelTable;
  /** What the projection does to the read model for each event of the type. */
  readonly action: ProjectionAction;
}

/** How long a projection waits for an earlier event of the same aggregate before reporting a gap. */
export interface GapRetry {
  /**
   * Waits before giving up.
   * @default 6
   */
  readonly maxAttempts?: number;
  /**
   * The first wait; each next wait doubles.
   * @default Duration.seconds(1)
   */
  readonly initialInterval?: Duration;
}

/** Properties of a ProjectionStateMachine. */
export interface ProjectionStateMachineProps {
  /** The domain: events come from `skafu.<domain>`. */
  readonly domain: string;
  /** The domain event bus. */
  readonly eventBus: events.IEventBus;
  /** Where projection failures and gaps are reported. */
  readonly errorBus: IErrorBus;
  /** The projections. */
  readonly projections: Projection[];
  /**
   * More event types of the domain to route to this state machine without a projection. Every event of a
   * projected aggregate must reach the machine for sequence checking to see no gap: list here the aggregate's
   * event types that no projection handles (they advance the aggregate's checkpoint and write nothing else).
   * @default - only the projected types
   */
  readonly eventTypes?: string[];
  /**
   * The state machine's name.
   * @default - generated
   */
  readonly stateMachineName?: string;
  /**
   * Retention of the state machine's log group and of the parked-events function's logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Whether the state machine's execution logs include execution data (the events' data, which may be personal
   * data). SkafuPlatform turns it off in its production preset.
   * @default true
   */
  readonly logExecutionData?: boolean;
  /**
   * How long an event waits for an earlier event of the same aggregate before it is reported as a gap.
   * @default - 6 waits from 1 second, doubling (63 seconds in all)
   */
  readonly gapRetry?: GapRetry;
  /**
   * How many times EventBridge retries starting an execution before dead-lettering the event.
   * @default 10
   */
  readonly ruleRetryAttempts?: number;
  /**
   * How many times a write refused for a conflict with another transaction on one of its items (a shared item,
   * or the checkpoint) is tried again, after a random wait of 1 to n+1 seconds, before the event is parked: a
   * transaction cancelled with reason `TransactionConflict`, or a checkpoint-only advance (a standard UpdateItem)
   * refused with `TransactionConflictException`.
   * @default 10
   */
  readonly conflictRetries?: number;
  /**
   * What happens to the checkpoint and parking tables when they leave the stack. Losing the checkpoints while
   * the read models stay makes every existing aggregate's next event a gap, so they are kept by default.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Where the checkpoint and parking tables are created. Their physical identity follows their construct path
   * and stack: give a scope that stays put when the state machine moves (for example a construct in the root
   * stack while the projections live in a nested stack) so that rearranging the tree does not replace them.
   * @default - this construct
   */
  readonly tableScope?: IConstruct;
  /**
   * The event store the projected events come from: enables the drift report (`{"action":"drift"}` on the
   * parked-events function), the scheduled lag metrics and the lag alarm. Needs `aggregateTypes`.
   * @default - no drift report, no lag metrics
   */
  readonly eventStore?: IEventStoreTable;
  /**
   * The aggregate types whose streams hold the projected events (the sparse index is listed per type).
   * @default - none
   */
  readonly aggregateTypes?: string[];
  /**
   * How often the lag metrics are computed (two to three reads per aggregate each time).
   * @default Duration.minutes(15)
   */
  readonly lagSchedule?: Duration;
  /**
   * The lag alarm fires when the oldest event not yet applied is older than this.
   * @default Duration.minutes(15)
   */
  readonly lagAlarmThreshold?: Duration;
  /**
   * How stored events of older schema versions are upgraded before they are projected. Every projection then
   * reads each event at its type's current version (one above its newest upcaster, and every older version needs
   * an upcaster). EventSourcedDomain passes the domain's `rules.upcasters`, the ones its declared state folds with.
   * Events of the current version, or newer, are projected as they are. A projection that stores the whole data
   * (`ProjectionValue.dataAsJson()`) of a type whose upcasting deletes a field is refused at synth: Step Functions
   * cannot delete a field from the data it stores.
   * @default - events are projected as stored
   */
  readonly upcasters?: EventUpcasterDefinition[];
}

const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;
const DOMAIN = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * Declarative read-model projections as an EXPRESS state machine (JSONPath), fed by a rule on the domain bus
 * that matches exactly the domain's declared event types.
 *
 * Every event of an aggregate is applied exactly once and in sequence order: each event's writes and the
 * aggregate's checkpoint (`lastEventSequence`, in `checkpointTable`) commit in one DynamoDB transaction that
 * requires the checkpoint to be at `eventSequence - 1`. A duplicate (already applied) succeeds without writing; a
 * gap (an earlier event not yet applied) waits with backoff and retries; what still cannot be applied is
 * reported on the error bus with the whole event inside, and the execution fails. Throttling and task failures
 * are retried (2 s, 3 times, backoff 2). Direct DynamoDB service integrations, no Lambda.
 */
export class ProjectionStateMachine extends Construct {
  /** The EXPRESS state machine that applies the projections. */
  public readonly stateMachine: sfn.StateMachine;
  /** The rule on the domain bus that starts the state machine for each of `eventTypes`. */
  public readonly rule: events.Rule;
  /**
   * Checkpoints per read model and aggregate (`aggregateId` = `<readModelName>#<aggregateId>`): the last event
   * sequence that read model applied.
   */
  public readonly checkpointTable: dynamodb.Table;
  /**
   * The read models' identities in this state machine (`versionedName`: the bare name for version 1,
   * `<readModelName>@v<N>` after), in the order of their branches.
   */
  public readonly readModelNames: string[];
  /**
   * Events that could not be applied, per read model, aggregate and sequence (`aggregateId` S =
   * `<readModelName>#<aggregateId>`, `eventSequence` N): the event, the error, the reason; `status` PARKED or
   * SKIPPED. Act on them with `parkedEventsFunction`.
   */
  public readonly parkingTable: dynamodb.Table;
  /**
   * Rebuilds' progress and per-aggregate checkpoints (`rebuildId` S, `key` S): see `rebuild.runtime.ts`.
   */
  public readonly rebuildStateTable: dynamodb.Table;
  /** Events EventBridge could not hand to the state machine. */
  public readonly deadLetterQueue: sqs.Queue;
  /** The state machine's execution log group (removed with the stack). */
  public readonly logGroup: logs.LogGroup;
  /**
   * The operator's commands on parked events: `{"action":"list"}`, `{"action":"retry","requestedBy":"..."}`
   * (optionally one `aggregateId`), `{"action":"skip","aggregateId":"...","eventSequence":7,"reason":"...","requestedBy":"..."}`.
   */
  public readonly parkedEventsFunction: lambda.IFunction;
  /** The event types the rule matches. */
  public readonly eventTypes: string[];
  /** Fires when projections trail the store (only with `eventStore`). */
  public readonly lagAlarm?: cloudwatch.Alarm;
  /**
   * The backfill of one read model (only with `eventStore`): a STANDARD state machine that runs
   * `backfillFunction` a bounded step at a time until the read model has caught up with the store, then hands
   * it to the live projection. Start it with `{"readModel":"<name>","rebuildId":"<id>"}` (`<name>@v<N>` for a
   * read model from version 2 on, whose backfill ends by switching queries to it); the same rebuildId resumes a
   * failed or stopped backfill. It starts by itself when a read model (or a new version of one) is created. A
   * backfill that ends with failures, or a step that fails after its retries, is reported on the error bus.
   */
  public readonly backfillStateMachine?: sfn.StateMachine;
  /** One backfill step (only with `eventStore`). */
  public readonly backfillFunction?: lambda.IFunction;
  private readonly domain: string;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (ProjectionStateMachineProps)
   */
  constructor(scope: Construct, id: string, props: ProjectionStateMachineProps) {
    super(scope, id);
    const eventTypes = [...new Set([...props.projections.map((p) => p.eventType), ...(props.eventTypes ?? [])])];
    this.eventTypes = eventTypes;
    this.domain = props.domain;
    const gap = { maxAttempts: props.gapRetry?.maxAttempts ?? 6, initial: props.gapRetry?.initialInterval?.toSeconds() ?? 1 };
    validate(this.node.path, props, eventTypes, gap);

    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const tableScope = props.tableScope ? new Construct(props.tableScope, this.node.id) : this;
    this.checkpointTable = new dynamodb.Table(tableScope, 'Checkpoints', {
      partitionKey: { name: 'aggregateId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
    });
    this.parkingTable = new dynamodb.Table(tableScope, 'ParkedEvents', {
      partitionKey: { name: 'aggregateId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'eventSequence', type: dynamodb.AttributeType.NUMBER },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
    });
    this.rebuildStateTable = new dynamodb.Table(tableScope, 'RebuildState', {
      partitionKey: { name: 'rebuildId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'key', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
    });
    if (!props.tableScope) warnIfNested(this.checkpointTable, 'checkpoint table');

    const readModels = [...new Set(props.projections.map((p) => p.readModel))];
    // A version's identity keys its branch, checkpoints, parking keys and backfill (version 1: the bare name).
    this.readModelNames = readModels.map((r) => r.versionedName);
    const definition = buildDefinition({
      domain: props.domain,
      eventTypes,
      readModels: this.readModelNames,
      projections: props.projections.map((p) => ({
        eventType: p.eventType,
        readModel: p.readModel.versionedName,
        action: p.action,
        tableName: p.readModel.tableName,
        ttlAttribute: p.readModel.timeToLiveAttribute,
      })),
      checkpointTableName: this.checkpointTable.tableName,
      parkingTableName: this.parkingTable.tableName,
      conflictRetries: props.conflictRetries ?? 10,
      errorBusName: props.errorBus.eventBus.eventBusName,
      gapWaits: Array.from({ length: gap.maxAttempts }, (_, i) => gap.initial * 2 ** i),
      upcasters: upcasterSpecs(props.upcasters),
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/skafu-projections-${props.domain}-${this.node.addr.slice(0, 8)}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      stateMachineType: sfn.StateMachineType.EXPRESS,
      definitionBody: sfn.DefinitionBody.fromString(Stack.of(this).toJsonString(definition)),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: props.logExecutionData ?? true },
      timeout: Duration.minutes(5),
    });

    // Least privilege: the checkpoint table, exactly the write actions each read model needs, the error bus.
    const role = this.stateMachine.role;
    this.checkpointTable.grant(role, 'dynamodb:UpdateItem', 'dynamodb:GetItem');
    this.parkingTable.grant(role, 'dynamodb:PutItem');
    const actionsByTable = new Map<ReadModelTable, Set<string>>();
    for (const p of props.projections) {
      const set = actionsByTable.get(p.readModel) ?? new Set<string>();
      set.add(actionOf(p.action));
      actionsByTable.set(p.readModel, set);
    }
    for (const [table, actions] of actionsByTable) {
      // The table only (writes never touch an index): no `/index/*` wildcard.
      iam.Grant.addToPrincipal({ grantee: role, actions: [...actions].sort(), resourceArns: [table.tableArn] });
      table.table.encryptionKey?.grantEncryptDecrypt(role);
    }
    props.errorBus.grantPutErrors(role);

    const operatorOptions = handlerOptions(this, 'Operator', {
      description: `Skafu ${props.domain} projections: list, retry and skip parked events`,
      serviceName: `skafu-${props.domain}-parked-events`,
      logRetention: props.logRetention,
      timeout: Duration.minutes(15),
      environment: {
        SKAFU_DOMAIN: props.domain,
        SKAFU_PARKING_TABLE: this.parkingTable.tableName,
        SKAFU_CHECKPOINT_TABLE: this.checkpointTable.tableName,
        SKAFU_PROJECTION_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
        SKAFU_READ_MODELS: this.readModelNames.join(','),
        ...(props.eventStore ? { SKAFU_EVENT_STORE_TABLE: props.eventStore.tableName, SKAFU_AGGREGATE_TYPES: (props.aggregateTypes ?? []).join(',') } : {}),
      },
    });
    const operator = new ParkedEventsFunction(this, 'Operator', operatorOptions);
    this.parkingTable.grant(operator, 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DeleteItem', 'dynamodb:UpdateItem');
    this.checkpointTable.grant(operator, 'dynamodb:UpdateItem');
    this.stateMachine.grant(operator, 'states:StartSyncExecution');
    acknowledgeHandlerRole(operatorOptions.role);
    this.parkedEventsFunction = operator;
    if (props.eventStore) {
      // The drift report reads this domain's streams only (dynamodb:LeadingKeys on `<domain>#*`).
      props.eventStore.grantListAggregates(operator, props.domain);
      props.eventStore.grantReadEvents(operator, props.domain);
      this.checkpointTable.grant(operator, 'dynamodb:GetItem');
      new events.Rule(this, 'LagSchedule', {
        description: `Skafu ${props.domain} projections: lag metrics and drift`,
        schedule: events.Schedule.rate(props.lagSchedule ?? Duration.minutes(15)),
        targets: [new targets.LambdaFunction(operator, { event: events.RuleTargetInput.fromObject({ action: 'drift', limit: 20 }), retryAttempts: 2 })],
      });
      this.lagAlarm = thresholdAlarm(this, 'LagAlarm', {
        description: `${props.domain}: projections trail the event store by more than ${(props.lagAlarmThreshold ?? Duration.minutes(15)).toHumanString()}`,
        metric: this.metricLagSeconds(),
        threshold: (props.lagAlarmThreshold ?? Duration.minutes(15)).toSeconds(),
      });
      const backfill = this.addBackfill(props, props.eventStore, readModels, actionsByTable);
      this.backfillFunction = backfill.fn;
      this.backfillStateMachine = backfill.machine;
    }

    this.deadLetterQueue = skafuQueue(this, 'DeadLetterQueue');
    this.rule = new events.Rule(this, 'Rule', {
      eventBus: props.eventBus,
      description: `Skafu projections of ${props.domain}`,
      eventPattern: { source: [`skafu.${props.domain}`], detailType: eventTypes },
    });
    this.rule.addTarget(
      new targets.SfnStateMachine(this.stateMachine, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: props.ruleRetryAttempts ?? 10,
        maxEventAge: Duration.hours(24),
      }),
    );

    acknowledgeNag(this.stateMachine, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Step Functions log delivery (logs:*LogDelivery*, DescribeLogGroups, ...) and X-Ray tracing actions support no resource-level permissions: they are granted on "*".',
        appliesTo: ['Resource::*'],
      },
    ]);
    acknowledgeNag(this.deadLetterQueue, [
      { id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the projection rule target.' },
    ]);
  }

  /**
   * The backfill: a bounded Lambda step (rebuild.runtime.ts in place) looped by a STANDARD state machine, and one
   * custom resource per read model that starts its backfill when the read model is created.
   */
  private addBackfill(
    props: ProjectionStateMachineProps,
    eventStore: IEventStoreTable,
    readModels: ReadModelTable[],
    actionsByTable: Map<ReadModelTable, Set<string>>,
  ): { fn: lambda.IFunction; machine: sfn.StateMachine } {
    const options = handlerOptions(this, 'Backfill', {
      description: `Skafu ${props.domain} projections: backfill read models from the event store`,
      serviceName: `skafu-${props.domain}-backfill`,
      logRetention: props.logRetention,
      memorySize: 1024,
      timeout: Duration.minutes(15),
      environment: {
        SKAFU_DOMAIN: props.domain,
        SKAFU_EVENT_STORE_TABLE: eventStore.tableName,
        SKAFU_AGGREGATE_TYPES: (props.aggregateTypes ?? []).join(','),
        SKAFU_CHECKPOINT_TABLE: this.checkpointTable.tableName,
        SKAFU_REBUILD_STATE_TABLE: this.rebuildStateTable.tableName,
        SKAFU_PROJECTION_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
        SKAFU_READ_MODEL_TABLES: Stack.of(this).toJsonString(Object.fromEntries(readModels.map((r) => [r.versionedName, r.tableName]))),
      },
    });
    const fn = new BackfillFunction(this, 'Backfill', options);
    acknowledgeHandlerRole(options.role);
    eventStore.grantListAggregates(fn, props.domain);
    eventStore.grantReadEvents(fn, props.domain);
    // Checkpoints (read, advance with the writes, copy legacy ones, the status item) and the progress item.
    this.checkpointTable.grant(fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:Scan');
    this.rebuildStateTable.grant(fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    for (const [table, actions] of actionsByTable) {
      // The same writes as the live projection's, and one Scan item to see whether the table is empty.
      iam.Grant.addToPrincipal({ grantee: fn, actions: [...actions, 'dynamodb:Scan'].sort(), resourceArns: [table.tableArn] });
      table.table.encryptionKey?.grantEncryptDecrypt(fn);
    }
    // The deployed definition, to apply exactly the live projection's writes.
    iam.Grant.addToPrincipal({ grantee: fn, actions: ['states:DescribeStateMachine'], resourceArns: [this.stateMachine.stateMachineArn] });

    // One error event per failed backfill, in the library's error event schema (runtime/error-event.ts).
    const report = (errorType: string, message: string, metadata: Record<string, unknown>, next: string) => ({
      Type: 'Task',
      Resource: 'arn:aws:states:::events:putEvents',
      Parameters: {
        Entries: [
          {
            EventBusName: props.errorBus.eventBus.eventBusName,
            Source: `skafu.${props.domain}`,
            DetailType: 'Application Error',
            Detail: {
              'errorId.$': 'States.UUID()',
              'correlationId.$': '$.rebuildId',
              errorType,
              'severity': 'HIGH',
              'message.$': message,
              'context': { 'domain': props.domain, 'readModel.$': '$.readModel', 'rebuildId.$': '$.rebuildId', 'stateMachine.$': '$$.StateMachine.Name', 'executionId.$': '$$.Execution.Id' },
              'metadata': { retryCount: 0, retryable: true, ...metadata },
              'timestamp.$': '$$.State.EnteredTime',
            },
          },
        ],
      },
      ResultPath: null,
      Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2 }],
      // A report that cannot be sent still ends the execution as failed (its own failure is in the execution history).
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: next }],
      Next: next,
    });
    const invokeErrors = ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException', 'States.TaskFailed'];
    const definition = {
      Comment: `Skafu ${props.domain}: backfill one read model from the event store, a bounded step at a time; start it again with the same rebuildId to resume`,
      StartAt: 'CheckInput',
      States: {
        CheckInput: {
          Type: 'Choice',
          Choices: [
            { Not: { Variable: '$.readModel', IsPresent: true }, Next: 'InvalidInput' },
            { Not: { Variable: '$.rebuildId', IsPresent: true }, Next: 'NameRebuild' },
          ],
          Default: 'Step',
        },
        InvalidInput: { Type: 'Fail', Error: 'Skafu.InvalidInput', Cause: `the input must be {"readModel": one of ${readModels.map((r) => r.versionedName).join(', ')}, "rebuildId": optional, to resume}` },
        NameRebuild: { Type: 'Pass', Parameters: { 'readModel.$': '$.readModel', 'rebuildId.$': '$$.Execution.Name' }, Next: 'Step' },
        Step: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: fn.functionArn, Payload: { 'readModel.$': '$.readModel', 'rebuildId.$': '$.rebuildId' } },
          ResultSelector: { 'progress.$': '$.Payload' },
          ResultPath: '$.step',
          // A step that dies resumes from the last page it saved.
          Retry: [{ ErrorEquals: invokeErrors, IntervalSeconds: 10, MaxAttempts: 6, BackoffRate: 2 }],
          // What the retries did not cure is reported once on the error bus, then the execution fails.
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'ReportStepFailed' }],
          Next: 'Progress',
        },
        Progress: {
          Type: 'Choice',
          Choices: [
            { Variable: '$.step.progress.status', StringEquals: 'RUNNING', Next: 'Step' },
            { Variable: '$.step.progress.status', StringEquals: 'CAUGHT_UP', Next: 'CaughtUp' },
          ],
          Default: 'ReportFailures',
        },
        CaughtUp: { Type: 'Succeed' },
        ReportFailures: report(
          'BackfillFailures',
          "States.Format('The backfill of read model {} (rebuild {}) caught up with {} event(s) it could not apply: their aggregates stopped there and queries did not switch to it. Fix the projection, deploy, then start the backfill again with the same rebuildId', $.readModel, $.rebuildId, $.step.progress.failures)",
          { 'firstFailures.$': '$.step.progress.firstFailures', 'eventsApplied.$': '$.step.progress.eventsApplied' },
          'CaughtUpWithFailures',
        ),
        CaughtUpWithFailures: {
          Type: 'Fail',
          Error: 'Skafu.BackfillFailures',
          Cause: 'Some events could not be applied: their aggregates stopped there (see the last step output, firstFailures; reported on the error bus); fix the projection, then start the backfill again with the same rebuildId',
        },
        ReportStepFailed: report(
          'BackfillFailed',
          "States.Format('A step of the backfill of read model {} (rebuild {}) failed after its retries: {}. Start the backfill again with the same rebuildId: it resumes from its last saved page', $.readModel, $.rebuildId, $.failure.Error)",
          { 'failure.$': '$.failure' },
          'StepFailed',
        ),
        StepFailed: { Type: 'Fail', Error: 'Skafu.BackfillStepFailed', Cause: 'A backfill step failed after its retries (reported on the error bus); start the backfill again with the same rebuildId to resume' },
      },
    };
    const logGroup = new logs.LogGroup(this, 'BackfillStateMachineLogs', {
      logGroupName: `/aws/vendedlogs/states/skafu-backfill-${props.domain}-${this.node.addr.slice(0, 8)}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const machine = new sfn.StateMachine(this, 'BackfillStateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(Stack.of(this).toJsonString(definition)),
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: props.logExecutionData ?? true },
      timeout: Duration.days(7),
    });
    fn.grantInvoke(machine);
    props.errorBus.grantPutErrors(machine);
    acknowledgeNag(machine, [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'Step Functions log delivery and X-Ray actions support no resource-level permissions ("*"); lambda:InvokeFunction is granted on the backfill function and its versions (":*").',
        appliesTo: ['Resource::*', `Resource::<${Stack.of(this).getLogicalId(fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*`],
      },
    ]);

    // Starting executions is granted in a policy of its own: in the role's default policy it would make the
    // function depend on the state machine that invokes it.
    const start = new iam.Policy(this, 'BackfillStartPolicy', {
      statements: [new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [machine.stateMachineArn] })],
      roles: [options.role],
    });
    let guarded = false;
    for (const rm of readModels) {
      // Version 1 keeps its construct id (and properties) of before versions existed: no update, no new backfill.
      const id = `Backfill${rm.readModelName.replace(/[^A-Za-z0-9]/g, '')}${rm.version === 1 ? '' : `@v${rm.version}`}`;
      const trigger = new CustomResource(this, id, {
        serviceToken: fn.functionArn,
        resourceType: 'Custom::SkafuReadModelBackfill',
        // A new table's name: a read model removed and added again is backfilled again.
        properties: { StateMachineArn: machine.stateMachineArn, ReadModel: rm.versionedName, RebuildId: `deploy-${rm.tableName}` },
      });
      // After the projection state machine carries the new read model's branch, and once the function may start it.
      trigger.node.addDependency(this.stateMachine, start);
      if (rm.version > 1) {
        // From version 2 on: refuses a deployment that would remove the previous version's table before queries
        // switched away from it and the retention passed (see onVersionGuard in backfill.lambda.ts for why a
        // FAILED answer keeps CloudFormation from deleting it). Reads the pointer with the function's GetItem and, on
        // a Create at version 3 or more with no pointer, the checkpoint table's keys with its Scan (granted above for
        // the backfill): one page in a new environment, the whole table once where other read models have
        // checkpoints (hasReadModelItems in versions.runtime.ts says what that costs). It reads its own stack's status
        // (DescribeStacks, this stack only) to tell a rollback from a version lowered by hand.
        if (!guarded) {
          // In a nested stack, the root's status too (a nested stack rolls back with its root).
          let root = Stack.of(this);
          while (root.nestedStackParent) root = root.nestedStackParent;
          const stacks = root === Stack.of(this) ? [Stack.of(this).stackId] : [Stack.of(this).stackId, root.stackId];
          iam.Grant.addToPrincipal({ grantee: fn, actions: ['cloudformation:DescribeStacks'], resourceArns: stacks });
          guarded = true;
        }
        const guard = new CustomResource(this, `VersionGuard${rm.readModelName.replace(/[^A-Za-z0-9]/g, '')}`, {
          serviceToken: fn.functionArn,
          resourceType: 'Custom::SkafuReadModelVersionGuard',
          properties: {
            ReadModelName: rm.readModelName,
            Version: rm.version,
            RetainPreviousVersion: String(rm.previousVersionTable !== undefined),
            RetentionSeconds: rm.previousVersionRetention.toSeconds(),
            CheckpointTable: this.checkpointTable.tableName,
          },
        });
        // The backfill starts only after the guard let the deployment through: a refused deployment (a version
        // raised while the one before it never became active) must not leave a backfill running that writes the
        // refused version's checkpoints and switches the pointer to it after the rollback (CloudFormation does not
        // create a resource whose dependency failed).
        trigger.node.addDependency(guard);
      }
    }
    return { fn, machine };
  }

  /** Executions that failed (each also reported on the error bus, unless reporting itself failed). */
  public metricFailedExecutions(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.stateMachine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum', ...props });
  }

  /** Execution time (p90 by default), in milliseconds. */
  public metricDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.stateMachine.metricTime({ period: Duration.minutes(5), statistic: 'p90', ...props });
  }

  /** Age of the oldest event not yet applied, in seconds (maximum; computed on the lag schedule). */
  public metricLagSeconds(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: 'Skafu', metricName: 'ProjectionLagSeconds', dimensionsMap: { Domain: this.domain, service: `skafu-${this.domain}-parked-events` }, statistic: 'Maximum', period: Duration.minutes(15), ...props });
  }

  /** Events the most lagging aggregate's checkpoint trails the store by (maximum). */
  public metricLagEvents(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: 'Skafu', metricName: 'ProjectionLagEvents', dimensionsMap: { Domain: this.domain, service: `skafu-${this.domain}-parked-events` }, statistic: 'Maximum', period: Duration.minutes(15), ...props });
  }

  /** Executions started. */
  public metricStartedExecutions(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.stateMachine.metricStarted({ period: Duration.minutes(5), statistic: 'Sum', ...props });
  }
}

/**
 * Warns at synth when a projection-owned table sits in a nested stack: its physical identity then depends on the
 * nesting, and turning nested stacks off (or on) replaces it with an empty table, after which the read models
 * must be rebuilt.
 */
export function warnIfNested(table: IConstruct, what: string): void {
  for (let scope: IConstruct | undefined = table.node.scope; scope; scope = scope.node.scope) {
    if (NestedStack.isNestedStack(scope)) {
      Annotations.of(table).addWarningV2(
        '@skafu/constructs:projection-table-in-nested-stack',
        `The ${what} ${table.node.path} is in nested stack ${scope.node.path}: moving it out of (or into) a nested stack replaces it with an empty table, and the read models must then be rebuilt. Create it in a scope that stays put (tableScope) to keep its identity.`,
      );
      return;
    }
  }
}

function actionOf(action: ProjectionAction): string {
  const rendered = action._render('t', undefined);
  if ('Put' in rendered) return 'dynamodb:PutItem';
  if ('Update' in rendered) return 'dynamodb:UpdateItem';
  return 'dynamodb:DeleteItem';
}

/** The handler-side form of upcaster declarations. */
function upcasterSpecs(upcasters: EventUpcasterDefinition[] | undefined) {
  return (upcasters ?? []).map((u) => ({ eventType: u.eventType, fromVersion: u.fromVersion, steps: u.steps.map((s) => s._spec()) }));
}

function validate(path: string, props: ProjectionStateMachineProps, eventTypes: string[], gap: { maxAttempts: number; initial: number }): void {
  const errors: string[] = [];
  errors.push(
    ...upcastProblems(
      upcasterSpecs(props.upcasters),
      props.projections.map((p) => ({ readModel: p.readModel.node.path, eventType: p.eventType, template: p.action._render('t', p.readModel.timeToLiveAttribute) })),
    ),
  );
  if (!DOMAIN.test(props.domain)) errors.push(`'domain' '${props.domain}' must be lower-case letters, digits and '-'`);
  if (props.projections.length === 0) errors.push("'projections' is empty");
  // By the bare name: two versions of one name would also share the active-version pointer (`#active#<name>`).
  const byName = new Map<string, ReadModelTable>();
  for (const p of props.projections) {
    const other = byName.get(p.readModel.readModelName);
    if (other && other !== p.readModel) {
      errors.push(`read models ${other.node.path} (${other.versionedName}) and ${p.readModel.node.path} (${p.readModel.versionedName}) have the same readModelName '${p.readModel.readModelName}' (checkpoints and the active version are kept per name)`);
    }
    byName.set(p.readModel.readModelName, p.readModel);
    if (p.readModel.version > 1 && !props.eventStore) {
      errors.push(`read model ${p.readModel.node.path} is at version ${p.readModel.version}: a new version is filled from the event store by the backfill, which needs 'eventStore' (and 'aggregateTypes')`);
    }
  }
  for (const t of eventTypes) if (!EVENT_TYPE.test(t)) errors.push(`event type '${t}' is not a valid EventBridge detail-type`);
  props.projections.forEach((p, i) => {
    const where = `projection ${i} (${p.eventType})`;
    const keys = [p.readModel.partitionKey, ...(p.readModel.sortKey ? [p.readModel.sortKey] : [])];
    const given = Object.keys(p.action.key).sort();
    const wanted = keys.map((k) => k.name).sort();
    if (given.join() !== wanted.join()) {
      errors.push(`${where}: key must be exactly the read model's keys (${wanted.join(', ')}), got (${given.join(', ')})`);
    }
    for (const k of keys) {
      const v = p.action.key[k.name];
      const expected = k.type === dynamodb.AttributeType.NUMBER ? ValueType.NUMBER : ValueType.STRING;
      if (v && v.type !== expected) errors.push(`${where}: key '${k.name}' is ${k.type === dynamodb.AttributeType.NUMBER ? 'N' : 'S'} but the value is ${v.type}`);
    }
    if (p.action.ttl && !p.readModel.timeToLiveAttribute) {
      errors.push(`${where}: a ttl is set but read model ${p.readModel.node.path} has no timeToLiveAttribute`);
    }
    if (p.action.ttl && (p.action.ttl.toSeconds() < 1 || p.action.ttl.toSeconds() > 10 * 365 * 86400)) {
      errors.push(`${where}: ttl must be 1 second to 10 years`);
    }
  });
  const perType = new Map<string, number>();
  for (const p of props.projections) perType.set(p.eventType, (perType.get(p.eventType) ?? 0) + 1);
  for (const [t, n] of perType) if (n > 99) errors.push(`event type ${t} has ${n} projections; one transaction holds at most 99 besides the checkpoint`);
  if (props.eventStore && (props.aggregateTypes ?? []).length === 0) errors.push("'eventStore' is given without 'aggregateTypes': the drift report lists aggregates per type");
  if (props.eventStore && !props.eventStore.hasAggregateIndex) errors.push("'eventStore' has no aggregate index: the drift report and rebuilds enumerate aggregates through it");
  const conflicts = props.conflictRetries ?? 10;
  if (!Number.isInteger(conflicts) || conflicts < 0 || conflicts > 12) errors.push("'conflictRetries' must be 0-12");
  if (!Number.isInteger(gap.maxAttempts) || gap.maxAttempts < 0 || gap.maxAttempts > 12) errors.push("'gapRetry.maxAttempts' must be 0-12");
  const total = Array.from({ length: Math.max(0, gap.maxAttempts) }, (_, i) => gap.initial * 2 ** i).reduce((a, b) => a + b, 0);
  if (gap.initial < 1 || total > 240) errors.push(`'gapRetry' waits ${total} s in all; it must stay within 240 s (an EXPRESS execution lasts at most 5 minutes)`);
  // Conflict waits draw 1..n+1 seconds for the n-th retry: at worst n(n+1)/2 + n in all.
  const conflictWorst = Number.isInteger(conflicts) ? (conflicts * (conflicts + 1)) / 2 + conflicts : 0;
  if (total + conflictWorst > 270) {
    errors.push(`'gapRetry' (${total} s) and 'conflictRetries' (up to ${conflictWorst} s) may wait ${total + conflictWorst} s in all; keep it within 270 s (an EXPRESS execution lasts at most 5 minutes)`);
  }
  if (errors.length > 0) throw new Error(`ProjectionStateMachine ${path}: ${errors.join('; ')}`);
}
