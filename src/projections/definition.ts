import { BACKFILLING, backfillStatusKey } from './keys';
import { buildUpcastStates } from './upcast-states';
import { ValueType, type ProjectionAction } from './values';
import type { UpcasterSpec } from '../runtime/state-fold';

export interface DefinitionInput {
  readonly domain: string;
  readonly eventTypes: string[];
  /** The read models' names, in order: one branch each, with its own checkpoints and parking keys. */
  readonly readModels: string[];
  readonly projections: Array<{ eventType: string; readModel: string; action: ProjectionAction; tableName: string; ttlAttribute?: string }>;
  readonly checkpointTableName: string;
  /** Where events that cannot be applied are parked (`aggregateId` S, `eventSequence` N). */
  readonly parkingTableName: string;
  readonly errorBusName: string;
  readonly gapWaits: number[];
  /**
   * How many times an apply refused for a conflict with another transaction (a transaction cancelled by a
   * `TransactionConflict`, a checkpoint-only UpdateItem refused with `TransactionConflictException`) is tried
   * again before the event is parked.
   */
  readonly conflictRetries: number;
  /** Upgrades of stored events of older schema versions, applied before any projection reads them (upcast-states.ts). */
  readonly upcasters?: readonly UpcasterSpec[];
}

/** Errors of a transaction that the cancellation reasons must explain (an order problem, a conflict, a bad value). */
const CANCELLED = ['TransactionCanceledException', 'ConditionalCheckFailedException'].flatMap((e) => [`DynamoDb.${e}`, `DynamoDB.${e}`]);
/**
 * Errors of a checkpoint-only advance (a standard UpdateItem) that its error name explains: its condition failed
 * (an order problem), or another transaction on the checkpoint item refused it ("A PutItem, UpdateItem, or
 * DeleteItem request for an item conflicts with an ongoing TransactWriteItems request that includes the same
 * item": `TransactionConflictException`, "Transaction conflict handling in DynamoDB", DynamoDB developer guide).
 * The optimized integration prefixes them `DynamoDB.` ("Call DynamoDB APIs with Step Functions", exception prefix
 * differences); the SDK integration's spelling is listed too, as above.
 */
const REFUSED = ['ConditionalCheckFailedException', 'TransactionConflictException'].flatMap((e) => [`DynamoDB.${e}`, `DynamoDb.${e}`]);
const TASK_RETRY = { ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 };

/**
 * An `Apply <type>` task: the errors in `refused` are never retried blindly (States.TaskFailed in TASK_RETRY would
 * match them) and go to WhyCancelled; anything else after TASK_RETRY is NotApplied.
 */
function applyTask(comment: string, resource: string, parameters: unknown, refused: string[]): Record<string, unknown> {
  return {
    Type: 'Task',
    Comment: comment,
    Resource: resource,
    Parameters: parameters,
    ResultPath: null,
    Retry: [{ ErrorEquals: refused, MaxAttempts: 0 }, TASK_RETRY],
    Catch: [
      { ErrorEquals: refused, ResultPath: '$.failure', Next: 'WhyCancelled' },
      { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'NotApplied' },
    ],
    Next: 'Applied',
  };
}

/** What the checks before an apply require of a value: the Choice rule that holds when it is NOT satisfied. */
const TYPE_TEST: Record<ValueType, string | undefined> = {
  [ValueType.STRING]: 'IsString',
  [ValueType.NUMBER]: 'IsNumeric',
  [ValueType.BOOLEAN]: 'IsBoolean',
  [ValueType.JSON]: undefined,
};

/** The paths (and the type each must have) that the projections of one event type read. */
export function fieldsRead(
  actions: ProjectionAction[],
  ttlAttribute: (a: ProjectionAction) => string | undefined,
): Array<{ path: string; type: ValueType }> {
  const seen = new Map<string, ValueType>();
  for (const action of actions) {
    for (const value of action._values()) {
      const path = value._path();
      if (path && !seen.has(path)) seen.set(path, value.type);
    }
    if (action.ttl && ttlAttribute(action)) seen.set('$.detail.timestampEpochSeconds', ValueType.NUMBER);
  }
  return [...seen].map(([path, type]) => ({ path, type }));
}

/**
 * The state machine definition (Amazon States Language, JSONPath).
 *
 * Each read model has its own branch (a Parallel state), its own checkpoint per aggregate
 * (`<readModel>#<aggregateId>` in the checkpoint table) and its own parking keys. Outcomes of one event, per read
 * model: applied (its writes and that read model's checkpoint in one transaction; for an event type the read
 * model does not project, the checkpoint alone in one conditional UpdateItem); already applied (a duplicate); or
 * parked. It is parked, and reported once on the error bus, when a field a projection reads is
 * missing or has the wrong type (checked before the write: in AWS a missing path fails the execution with
 * `States.Runtime`, which no Catch sees), when DynamoDB refuses the write after retries, when an earlier event
 * of the aggregate does not arrive in time (`ProjectionGap`), or when conflicts with other transactions outlast
 * their retries. An event behind a parked event of its aggregate is parked at once, without waiting and without a
 * second report. A replay (input with `skafuReplay`, from the parked-events function) is applied even though
 * the aggregate has parked events.
 */
export function buildDefinition(input: DefinitionInput): Record<string, unknown> {
  const states: Record<string, unknown> = {};
  states.Start = {
    Type: 'Choice',
    Comment: 'A replay of a parked event (from the parked-events function) carries skafuReplay.',
    Choices: [{ Variable: '$.skafuReplay', IsPresent: true, Next: 'StartReplay' }],
    Default: 'StartLive',
  };
  states.StartLive = { Type: 'Pass', Result: { count: 0, conflicts: 0, seconds: 0, replay: false }, ResultPath: '$.attempt', Next: 'CheckEnvelope' };
  states.StartReplay = { Type: 'Pass', Result: { count: 0, conflicts: 0, seconds: 0, replay: true }, ResultPath: '$.attempt', Next: 'CheckEnvelope' };
  // The envelope fields the checkpoint, the parking place and the reports read. Presence first, types second:
  // AWS evaluates a type test on a missing path as a runtime error.
  const envelope = [
    { path: '$.detail.aggregateId', type: ValueType.STRING },
    { path: '$.detail.eventSequence', type: ValueType.NUMBER },
    { path: '$.detail.eventId', type: ValueType.STRING },
    { path: '$.detail.eventType', type: ValueType.STRING },
    { path: '$.detail.correlationId', type: ValueType.STRING },
  ];
  states.CheckEnvelope = {
    Type: 'Choice',
    Choices: [{ Or: envelope.map((f) => ({ Not: { Variable: f.path, IsPresent: true } })), Next: 'InvalidEnvelope' }],
    Default: 'CheckEnvelopeTypes',
  };
  // Events of older schema versions are upgraded to the current one first (see upcast-states.ts).
  const upcast = buildUpcastStates({
    eventTypes: input.eventTypes,
    upcasters: input.upcasters ?? [],
    projections: input.projections.map((p) => ({ eventType: p.eventType, template: p.action._render(p.tableName, p.ttlAttribute) })),
    next: 'ApplyPerReadModel',
    // The upcast runs once for all read models, before the branches; an event it cannot upgrade enters the
    // branches with `$.outcome` set, and each read model's branch parks it under its own key (StartAt below).
    // Coarser than a missing field found by a branch's own checks: a field the upgrade lost parks the event in
    // every read model, also in one whose projections do not read that field.
    park: 'ApplyPerReadModel',
  });
  Object.assign(states, upcast?.states);
  states.CheckEnvelopeTypes = {
    Type: 'Choice',
    Choices: [{ Or: envelope.map((f) => ({ Not: { Variable: f.path, [TYPE_TEST[f.type]!]: true } })), Next: 'InvalidEnvelope' }],
    Default: upcast?.startAt ?? 'ApplyPerReadModel',
  };
  states.InvalidEnvelope = {
    Type: 'Task',
    Comment: 'Not a Skafu event envelope: it has no aggregate to park it under; reported with the whole input.',
    Resource: 'arn:aws:states:::events:putEvents',
    Parameters: {
      Entries: [
        {
          EventBusName: input.errorBusName,
          Source: `skafu.${input.domain}`,
          DetailType: 'Application Error',
          Detail: {
            'errorId.$': 'States.UUID()',
            'correlationId.$': '$$.Execution.Name',
            'errorType': 'ProjectionFailed',
            'severity': 'HIGH',
            'message': `an event for the ${input.domain} projections lacks an envelope field (${envelope.map((f) => f.path.slice(9)).join(', ')}) or has one of the wrong type`,
            'context': { 'domain': input.domain, 'stateMachine.$': '$$.StateMachine.Name', 'executionId.$': '$$.Execution.Id' },
            'metadata': { 'retryable': false, 'original.$': '$' },
            'timestamp.$': '$$.State.EnteredTime',
          },
        },
      ],
    },
    ResultPath: null,
    Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 }],
    Next: 'ProjectionFailed',
  };
  // One branch per read model: each has its own checkpoints (`<readModel>#<aggregateId>`) and parking keys, so
  // that a read model added later starts at 0 and is backfilled on its own, and one read model's parked event
  // or gap never holds back another's.
  states.ApplyPerReadModel = {
    Type: 'Parallel',
    Comment: 'Each read model applies the event with its own checkpoint: its writes and the checkpoint in one transaction, or the checkpoint alone',
    Branches: input.readModels.map((rm) => branchOf(input, rm, upcast !== undefined)),
    ResultPath: '$.readModels',
    Next: 'Outcome',
  };
  const anyIs = (value: string) => {
    const rules = input.readModels.map((_, i) => ({ Variable: `$.readModels[${i}]`, StringEquals: value }));
    return rules.length === 1 ? rules[0] : { Or: rules };
  };
  states.Outcome = {
    Type: 'Choice',
    Choices: [
      { ...anyIs(BRANCH_FAILED), Next: 'ProjectionFailed' },
      { ...anyIs(BRANCH_PARKED), Next: 'EventParked' },
    ],
    Default: 'Applied',
  };
  states.Applied = { Type: 'Succeed', Comment: 'Every read model applied the event, already had it, or had parked it before.' };
  states.EventParked = { Type: 'Fail', Error: 'ProjectionEventParked', Cause: 'The event was parked and reported on the error bus; retry or skip it with the parked-events function' };
  states.ProjectionFailed = { Type: 'Fail', Error: 'ProjectionFailed', Cause: 'The event could not be projected nor parked; reported on the error bus with the whole event' };

  return {
    Comment: `Skafu projections of ${input.domain}: each event applied once per read model, in aggregate order, or parked`,
    StartAt: 'Start',
    TimeoutSeconds: 300,
    States: states,
  };
}

/** What a read model's branch ends with (the Parallel state's output, one per read model). */
const BRANCH_PARKED = 'PARKED';
const BRANCH_FAILED = 'FAILED';


/** The branch of one read model: route, check, apply with its checkpoint, or park under its own key. */
function branchOf(input: DefinitionInput, readModel: string, upcasts: boolean): Record<string, unknown> {
  const states: Record<string, unknown> = {};
  const aggregateKey = { aggregateId: { 'S.$': `States.Format('${readModel}#{}', $.detail.aggregateId)` } };
  const checkpoint = {
    Update: {
      TableName: input.checkpointTableName,
      Key: aggregateKey,
      UpdateExpression: 'SET #seq = :seq, #eventId = :eventId, #eventType = :eventType, #appliedAt = :appliedAt, #readModel = :readModel',
      // Applied exactly once, in order: the aggregate's previous event must be the last one applied.
      ConditionExpression: '(attribute_not_exists(#seq) AND :seq = :one) OR #seq = :prev',
      ExpressionAttributeNames: { '#seq': 'lastEventSequence', '#eventId': 'lastEventId', '#eventType': 'lastEventType', '#appliedAt': 'appliedAt', '#readModel': 'readModel' },
      ExpressionAttributeValues: {
        ':seq': { 'N.$': "States.Format('{}', $.detail.eventSequence)" },
        ':prev': { 'N.$': "States.Format('{}', States.MathAdd($.detail.eventSequence, -1))" },
        ':one': { N: '1' },
        ':eventId': { 'S.$': '$.detail.eventId' },
        ':eventType': { 'S.$': '$.detail.eventType' },
        ':appliedAt': { 'S.$': '$$.State.EnteredTime' },
        ':readModel': { S: readModel },
      },
    },
  };
  const attempt = (count: string, conflicts: string, seconds: string) => ({
    'count.$': count,
    'conflicts.$': conflicts,
    'seconds.$': seconds,
    'replay.$': '$.attempt.replay',
  });
  const firstState = new Map<string, string>();
  states.NotProjected = { Type: 'Pass', Comment: 'An event type this state machine does not handle: nothing is written.', Result: 'NOT_PROJECTED', End: true };

  for (const eventType of input.eventTypes) {
    const projections = input.projections.filter((p) => p.eventType === eventType && p.readModel === readModel);
    const fields = [...fieldsRead(projections.map((p) => p.action), (a) => projections.find((p) => p.action === a)?.ttlAttribute)].filter(
      (f, i, all) => all.findIndex((g) => g.path === f.path) === i,
    );
    const typed = fields.filter((f) => TYPE_TEST[f.type]);
    const rule = (list: Array<Record<string, unknown>>) => (list.length === 1 ? list[0] : { Or: list });
    const described = fields.map((f) => `${f.path.replace(/^\$\.detail\./, '')} (${f.type})`).join(', ');
    // Presence first, types second: AWS evaluates a type test on a missing path as a runtime error.
    firstState.set(eventType, fields.length > 0 ? `Check ${eventType}` : `Apply ${eventType}`);
    if (fields.length > 0) {
      states[`Check ${eventType}`] = {
        Type: 'Choice',
        Comment: `${eventType}: every field the projections read must be present and of its type`,
        Choices: [{ ...rule(fields.map((f) => ({ Not: { Variable: f.path, IsPresent: true } }))), Next: `Invalid ${eventType}` }],
        Default: typed.length > 0 ? `Check types ${eventType}` : `Apply ${eventType}`,
      };
    }
    if (typed.length > 0) {
      states[`Check types ${eventType}`] = {
        Type: 'Choice',
        Choices: [{ ...rule(typed.map((f) => ({ Not: { Variable: f.path, [TYPE_TEST[f.type]!]: true } }))), Next: `Invalid ${eventType}` }],
        Default: `Apply ${eventType}`,
      };
    }
    if (fields.length > 0) {
      states[`Invalid ${eventType}`] = {
        Type: 'Pass',
        Parameters: {
          failure: { Error: 'Skafu.InvalidEvent', Cause: `a field the projections of ${eventType} read is missing or has the wrong type; they read: ${described}`.slice(0, 1000) },
          park: { errorType: 'ProjectionFailed', reason: 'InvalidEvent' },
        },
        ResultPath: '$.outcome',
        Next: 'Park',
      };
    }
    const actions = projections.map((p) => p.action._render(p.tableName, p.ttlAttribute));
    // The state keeps its name whatever it holds: the rebuild (rebuild.runtime.ts writesFor) finds the writes of
    // an event type in the `Apply <type>` states, and a checkpoint-only one has none. One item needs no
    // transaction: a standard write costs 1 write unit per KB, a transactional one 2 (prepare and commit:
    // "Capacity management for transactions", DynamoDB developer guide). Neither is retried blindly when refused:
    // WhyCancelled decides, from a standard write's error name or a transaction's cancellation reasons.
    states[`Apply ${eventType}`] =
      actions.length === 0
        ? applyTask(`${eventType}: advances the checkpoint only, in one conditional write`, 'arn:aws:states:::dynamodb:updateItem', checkpoint.Update, REFUSED)
        : applyTask(
          `${eventType}: ${actions.length} read-model write(s) and the checkpoint, atomically`,
          'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems',
          { TransactItems: [checkpoint, ...actions] },
          CANCELLED,
        );
  }
  states.RouteByDetailType = {
    Type: 'Choice',
    Choices: input.eventTypes.map((t) => ({ Variable: '$.detail-type', StringEquals: t, Next: firstState.get(t) })),
    Default: 'NotProjected',
  };
  states.Applied = { Type: 'Pass', Result: 'APPLIED', End: true };

  // Why an apply was refused. A checkpoint-only advance (a standard UpdateItem) says it in its error's name:
  // `ConditionalCheckFailedException` (an order problem) or `TransactionConflictException` (another transaction
  // holds the checkpoint item). The error message of a cancelled transaction lists one reason per item, in order
  // ("... specific reasons [ConditionalCheckFailed, None]"; see TransactWriteItems, "TransactionCanceledException",
  // in the DynamoDB API reference). Only the checkpoint has a condition; a conflict with another transaction on
  // any item is "TransactionConflict"; anything else (ValidationError, ...) cannot be fixed by waiting.
  states.WhyCancelled = {
    Type: 'Choice',
    Choices: [
      { Variable: '$.failure.Error', StringMatches: '*.TransactionConflictException', Next: 'MayRetryConflict' },
      { Variable: '$.failure.Error', StringMatches: '*.ConditionalCheckFailedException', Next: 'ReadCheckpoint' },
      { Not: { Variable: '$.failure.Cause', IsPresent: true }, Next: 'ReadCheckpoint' },
      { Variable: '$.failure.Cause', StringMatches: '*TransactionConflict*', Next: 'MayRetryConflict' },
      { Variable: '$.failure.Cause', StringMatches: '*ConditionalCheckFailed*', Next: 'ReadCheckpoint' },
    ],
    Default: 'NotApplied',
  };
  states.MayRetryConflict = {
    Type: 'Choice',
    Choices: [{ Variable: '$.attempt.conflicts', NumericGreaterThanEquals: input.conflictRetries, Next: 'ConflictsExhausted' }],
    Default: 'NextConflictWait',
  };
  states.NextConflictWait = {
    Type: 'Pass',
    Comment: 'Full jitter: a random 1 to (conflicts + 1) seconds, so that writers of a shared item spread out.',
    Parameters: attempt('$.attempt.count', 'States.MathAdd($.attempt.conflicts, 1)', 'States.MathRandom(1, States.MathAdd($.attempt.conflicts, 2))'),
    ResultPath: '$.attempt',
    Next: 'WaitAfterConflict',
  };
  states.WaitAfterConflict = { Type: 'Wait', SecondsPath: '$.attempt.seconds', Next: 'RouteByDetailType' };
  states.ConflictsExhausted = {
    Type: 'Pass',
    Parameters: { 'failure.$': '$.failure', 'park': { errorType: 'ProjectionConflict', reason: 'TransactionConflict' } },
    ResultPath: '$.outcome',
    Next: 'Park',
  };
  states.NotApplied = {
    Type: 'Pass',
    Parameters: { 'failure.$': '$.failure', 'park': { errorType: 'ProjectionFailed', reason: 'WriteFailed' } },
    ResultPath: '$.outcome',
    Next: 'Park',
  };

  states.ReadCheckpoint = {
    Type: 'Task',
    Resource: 'arn:aws:states:::dynamodb:getItem',
    Parameters: { TableName: input.checkpointTableName, Key: aggregateKey, ConsistentRead: true },
    ResultPath: '$.checkpoint',
    Retry: [TASK_RETRY],
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'NotApplied' }],
    Next: 'HasCheckpoint',
  };
  states.HasCheckpoint = {
    Type: 'Choice',
    Choices: [{ Variable: '$.checkpoint.Item.lastEventSequence.N', IsPresent: true, Next: 'ReadLastApplied' }],
    Default: 'HasParkedEvent',
  };
  states.ReadLastApplied = {
    Type: 'Pass',
    Parameters: { 'value.$': 'States.StringToJson($.checkpoint.Item.lastEventSequence.N)' },
    ResultPath: '$.lastApplied',
    Next: 'IsDuplicate',
  };
  states.IsDuplicate = {
    Type: 'Choice',
    Choices: [{ Variable: '$.lastApplied.value', NumericGreaterThanEqualsPath: '$.detail.eventSequence', Next: 'AlreadyApplied' }],
    Default: 'HasParkedEvent',
  };
  states.AlreadyApplied = { Type: 'Pass', Result: 'DUPLICATE', End: true, Comment: 'A duplicate delivery: the event was applied before; nothing is written.' };
  states.HasParkedEvent = {
    Type: 'Choice',
    Comment: 'A live event behind a parked event of its aggregate waits for the operator, not for a gap to fill.',
    Choices: [
      {
        And: [
          { Variable: '$.checkpoint.Item.parkedSequence.N', IsPresent: true },
          { Variable: '$.attempt.replay', BooleanEquals: false },
        ],
        Next: 'ReadParkedSequence',
      },
    ],
    Default: 'ReadBackfill',
  };
  states.ReadParkedSequence = {
    Type: 'Pass',
    Parameters: { 'value.$': 'States.StringToJson($.checkpoint.Item.parkedSequence.N)' },
    ResultPath: '$.parkedSequence',
    Next: 'IsBehindParkedEvent',
  };
  states.IsBehindParkedEvent = {
    Type: 'Choice',
    Choices: [{ Variable: '$.detail.eventSequence', NumericGreaterThanPath: '$.parkedSequence.value', Next: 'BehindParkedEvent' }],
    Default: 'ReadBackfill',
  };
  states.BehindParkedEvent = {
    Type: 'Pass',
    Parameters: {
      failure: { 'Error': 'Skafu.BehindParkedEvent', 'Cause.$': "States.Format('event {} of the aggregate is parked', $.parkedSequence.value)" },
      park: { errorType: 'ProjectionBlocked', reason: 'BehindParkedEvent' },
    },
    ResultPath: '$.outcome',
    Next: 'Park',
  };
  // A read model being backfilled (added to a domain that already has events, see rebuild.runtime.ts) leaves
  // the events it cannot apply yet to the backfill, which reads them from the store: no gap waits, no parked
  // gaps. Read on every attempt, so that a backfill that starts (or ends) while an event waits is seen.
  states.ReadBackfill = {
    Type: 'Task',
    Resource: 'arn:aws:states:::dynamodb:getItem',
    Parameters: { TableName: input.checkpointTableName, Key: { aggregateId: { S: backfillStatusKey(readModel) } }, ConsistentRead: true },
    ResultPath: '$.backfill',
    Retry: [TASK_RETRY],
    // Unreadable: the gap path decides, as without a backfill.
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: 'MayWaitForEarlierEvent' }],
    Next: 'IsBackfilling',
  };
  states.IsBackfilling = {
    Type: 'Choice',
    // Presence first: AWS evaluates a comparison on a missing path as a runtime error.
    Choices: [
      { Not: { Variable: '$.backfill.Item.status.S', IsPresent: true }, Next: 'MayWaitForEarlierEvent' },
      { Variable: '$.backfill.Item.status.S', StringEquals: BACKFILLING, Next: 'LeftToBackfill' },
    ],
    Default: 'MayWaitForEarlierEvent',
  };
  states.LeftToBackfill = {
    Type: 'Pass',
    Comment: 'The backfill applies this event from the store, in order, with this read model\'s checkpoint.',
    Result: 'LEFT_TO_BACKFILL',
    End: true,
  };
  states.MayWaitForEarlierEvent = {
    Type: 'Choice',
    Choices: [{ Variable: '$.attempt.count', NumericGreaterThanEquals: input.gapWaits.length, Next: 'GapNotFilled' }],
    Default: 'NextWait',
  };
  states.NextWait = {
    Type: 'Pass',
    Parameters: attempt(
      'States.MathAdd($.attempt.count, 1)',
      '$.attempt.conflicts',
      `States.ArrayGetItem(States.Array(${(input.gapWaits.length > 0 ? input.gapWaits : [0]).join(', ')}), $.attempt.count)`,
    ),
    ResultPath: '$.attempt',
    Next: 'WaitForEarlierEvent',
  };
  states.WaitForEarlierEvent = { Type: 'Wait', SecondsPath: '$.attempt.seconds', Next: 'RouteByDetailType' };
  states.GapNotFilled = {
    Type: 'Pass',
    Parameters: {
      failure: { 'Error': 'Skafu.ProjectionGap', 'Cause.$': "States.Format('an earlier event of the aggregate was not applied in time (waited {} times)', $.attempt.count)" },
      park: { errorType: 'ProjectionGap', reason: 'Gap' },
    },
    ResultPath: '$.outcome',
    Next: 'Park',
  };

  // Parking: the event, the error and the aggregate, in the parking table; reported once.
  states.Park = {
    Type: 'Task',
    Comment: 'Once per event: a second delivery of a parked event finds it parked and ends here. A replay replaces it.',
    Resource: 'arn:aws:states:::dynamodb:putItem',
    Parameters: {
      TableName: input.parkingTableName,
      Item: {
        aggregateId: aggregateKey.aggregateId,
        readModel: { S: readModel },
        eventAggregateId: { 'S.$': '$.detail.aggregateId' },
        eventSequence: { 'N.$': "States.Format('{}', $.detail.eventSequence)" },
        eventId: { 'S.$': '$.detail.eventId' },
        eventType: { 'S.$': '$.detail.eventType' },
        detailType: { 'S.$': '$.detail-type' },
        event: { 'S.$': 'States.JsonToString($.detail)' },
        reason: { 'S.$': '$.outcome.park.reason' },
        errorType: { 'S.$': '$.outcome.park.errorType' },
        error: { 'S.$': 'States.JsonToString($.outcome.failure)' },
        status: { S: 'PARKED' },
        parkedAt: { 'S.$': '$$.State.EnteredTime' },
        executionId: { 'S.$': '$$.Execution.Id' },
      },
      ConditionExpression: 'attribute_not_exists(#agg) OR #status <> :parked OR :replay = :true',
      ExpressionAttributeNames: { '#agg': 'aggregateId', '#status': 'status' },
      ExpressionAttributeValues: { ':parked': { S: 'PARKED' }, ':replay': { 'BOOL.$': '$.attempt.replay' }, ':true': { BOOL: true } },
    },
    ResultPath: null,
    Retry: [{ ErrorEquals: ['DynamoDB.ConditionalCheckFailedException', 'DynamoDb.ConditionalCheckFailedException'], MaxAttempts: 0 }, TASK_RETRY],
    Catch: [
      { ErrorEquals: ['DynamoDB.ConditionalCheckFailedException', 'DynamoDb.ConditionalCheckFailedException'], ResultPath: null, Next: 'AlreadyParked' },
      { ErrorEquals: ['States.ALL'], ResultPath: '$.parkFailure', Next: 'ReportUnparked' },
    ],
    Next: 'IsRootCause',
  };
  states.AlreadyParked = { Type: 'Pass', Result: 'PARKED_BEFORE', End: true, Comment: 'A second delivery of a parked event: already parked and reported.' };
  states.IsRootCause = {
    Type: 'Choice',
    Choices: [{ Variable: '$.outcome.park.reason', StringEquals: 'BehindParkedEvent', Next: 'ParkedBehindEarlierEvent' }],
    Default: 'MarkAggregateParked',
  };
  states.ParkedBehindEarlierEvent = {
    Type: 'Pass',
    Result: 'PARKED_BEHIND',
    End: true,
    Comment: 'Parked without a report: the parked event before it was reported; retrying the aggregate replays both.',
  };
  states.MarkAggregateParked = {
    Type: 'Task',
    Comment: "The checkpoint remembers the aggregate's earliest parked event, so that later events park at once.",
    Resource: 'arn:aws:states:::dynamodb:updateItem',
    Parameters: {
      TableName: input.checkpointTableName,
      Key: aggregateKey,
      UpdateExpression: 'SET #parked = :seq',
      ConditionExpression: 'attribute_not_exists(#parked) OR #parked > :seq',
      ExpressionAttributeNames: { '#parked': 'parkedSequence' },
      ExpressionAttributeValues: { ':seq': { 'N.$': "States.Format('{}', $.detail.eventSequence)" } },
    },
    ResultPath: null,
    Retry: [{ ErrorEquals: ['DynamoDB.ConditionalCheckFailedException', 'DynamoDb.ConditionalCheckFailedException'], MaxAttempts: 0 }, TASK_RETRY],
    // An earlier event is already the marker; a marker that cannot be written leaves later events to the gap
    // path (they park as ProjectionGap, reported): either way the report below goes out.
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: 'ReportParked' }],
    Next: 'ReportParked',
  };

  const report = (errorType: string | null, message: string, next: string) => ({
    Type: 'Task',
    Resource: 'arn:aws:states:::events:putEvents',
    Parameters: {
      Entries: [
        {
          EventBusName: input.errorBusName,
          Source: `skafu.${input.domain}`,
          DetailType: 'Application Error',
          Detail: {
            'errorId.$': 'States.UUID()',
            'correlationId.$': '$.detail.correlationId',
            ...(errorType ? { errorType } : { 'errorType.$': '$.outcome.park.errorType' }),
            'severity': 'HIGH',
            'message.$': message,
            'context': { 'domain': input.domain, readModel, 'stateMachine.$': '$$.StateMachine.Name', 'executionId.$': '$$.Execution.Id' },
            'metadata': {
              'retryCount.$': '$.attempt.count',
              'conflicts.$': '$.attempt.conflicts',
              'retryable': true,
              // The whole event, so that it can be replayed.
              'original.$': '$.detail',
              'failure.$': '$.outcome.failure',
              'parked': errorType === null,
              ...(errorType === null ? { parking: { 'table': input.parkingTableName, readModel, 'aggregateId.$': '$.detail.aggregateId', 'eventSequence.$': '$.detail.eventSequence' } } : {}),
            },
            'timestamp.$': '$$.State.EnteredTime',
          },
        },
      ],
    },
    ResultPath: '$.report',
    Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 }],
    Next: next,
  });
  states.ReportParked = report(
    null,
    `States.Format('{} {} of aggregate {} was parked for read model ${readModel} ({}): {}. Retry it after a fix, or skip it, with the parked-events function', $.detail.eventType, $.detail.eventSequence, $.detail.aggregateId, $.outcome.park.reason, $.outcome.failure.Error)`,
    'EventParked',
  );
  states.ReportUnparked = report(
    'ProjectionFailed',
    `States.Format('{} {} of aggregate {} was not projected into read model ${readModel} ({}: {}) and could not be parked', $.detail.eventType, $.detail.eventSequence, $.detail.aggregateId, $.outcome.park.reason, $.outcome.failure.Error)`,
    'ProjectionFailed',
  );
  // A branch never fails (a failed branch would stop the other read models' branches): it says how it ended.
  states.EventParked = { Type: 'Pass', Result: BRANCH_PARKED, End: true };
  states.ProjectionFailed = { Type: 'Pass', Result: BRANCH_FAILED, End: true };
  // An event the upcast states could not upgrade arrives with `$.outcome` set (upcast-states.ts): parked here.
  states.UpcastOutcome = {
    Type: 'Choice',
    Choices: [{ Variable: '$.outcome.park', IsPresent: true, Next: 'Park' }],
    Default: 'RouteByDetailType',
  };
  const name = (state: string) => `${state} (${readModel})`;
  const start = upcasts ? 'UpcastOutcome' : 'RouteByDetailType';
  if (!upcasts) delete states.UpcastOutcome;
  return { StartAt: name(start), States: renameStates(states, name) };
}

/** Renames every state of a flat `States` object and every transition to one. */
function renameStates(states: Record<string, unknown>, name: (state: string) => string): Record<string, unknown> {
  const rename = (value: unknown, key?: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => rename(v));
    if (value === null || typeof value !== 'object') return (key === 'Next' || key === 'Default') && typeof value === 'string' ? name(value) : value;
    // Parameters, Result and the like are data, not transitions.
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, ['Parameters', 'Result', 'ResultSelector'].includes(k) ? v : rename(v, k)]),
    );
  };
  return Object.fromEntries(Object.entries(states).map(([k, v]) => [name(k), rename(v)]));
}
