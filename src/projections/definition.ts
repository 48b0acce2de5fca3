import type { ProjectionAction } from './values';

export interface DefinitionInput {
  readonly domain: string;
  readonly eventTypes: string[];
  readonly projections: Array<{ eventType: string; action: ProjectionAction; tableName: string; ttlAttribute?: string }>;
  readonly checkpointTableName: string;
  readonly errorBusName: string;
  readonly gapWaits: number[];
}

/** Errors worth a plain retry (throttling, 5xx, task failures), in both spellings Step Functions uses. */
const ORDER_ERRORS = ['TransactionCanceledException', 'ConditionalCheckFailedException'].flatMap((e) => [`DynamoDb.${e}`, `DynamoDB.${e}`]);

/** The state machine definition (Amazon States Language, JSONPath). */
export function buildDefinition(input: DefinitionInput): Record<string, unknown> {
  const states: Record<string, unknown> = {};
  const retry = [
    // Order problems are not retried blindly: the catch below tells a duplicate from a gap.
    { ErrorEquals: ORDER_ERRORS, MaxAttempts: 0 },
    { ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 },
  ];
  const checkpoint = {
    Update: {
      TableName: input.checkpointTableName,
      Key: { aggregateId: { 'S.$': '$.detail.aggregateId' } },
      UpdateExpression: 'SET #seq = :seq, #eventId = :eventId, #eventType = :eventType, #appliedAt = :appliedAt',
      // Applied exactly once, in order: the aggregate's previous event must be the last one applied.
      ConditionExpression: '(attribute_not_exists(#seq) AND :seq = :one) OR #seq = :prev',
      ExpressionAttributeNames: { '#seq': 'lastEventSequence', '#eventId': 'lastEventId', '#eventType': 'lastEventType', '#appliedAt': 'appliedAt' },
      ExpressionAttributeValues: {
        ':seq': { 'N.$': "States.Format('{}', $.detail.eventSequence)" },
        ':prev': { 'N.$': "States.Format('{}', States.MathAdd($.detail.eventSequence, -1))" },
        ':one': { N: '1' },
        ':eventId': { 'S.$': '$.detail.eventId' },
        ':eventType': { 'S.$': '$.detail.eventType' },
        ':appliedAt': { 'S.$': '$$.State.EnteredTime' },
      },
    },
  };

  states.Start = {
    Type: 'Pass',
    Comment: 'Counts the waits for an earlier event of the same aggregate.',
    Result: { count: 0, seconds: 0 },
    ResultPath: '$.attempt',
    Next: 'RouteByDetailType',
  };
  states.RouteByDetailType = {
    Type: 'Choice',
    Choices: input.eventTypes.map((t) => ({ Variable: '$.detail-type', StringEquals: t, Next: `Apply ${t}` })),
    Default: 'NotProjected',
  };
  states.NotProjected = { Type: 'Succeed', Comment: 'An event type this state machine does not handle: nothing is written.' };

  for (const eventType of input.eventTypes) {
    const actions = input.projections.filter((p) => p.eventType === eventType).map((p) => p.action._render(p.tableName, p.ttlAttribute));
    states[`Apply ${eventType}`] = {
      Type: 'Task',
      Comment: actions.length === 0 ? `${eventType}: advances the checkpoint only` : `${eventType}: ${actions.length} read-model write(s) and the checkpoint, atomically`,
      Resource: 'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems',
      Parameters: { TransactItems: [checkpoint, ...actions] },
      ResultPath: null,
      Retry: retry,
      Catch: [
        { ErrorEquals: ORDER_ERRORS, ResultPath: '$.failure', Next: 'ReadCheckpoint' },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'ReportFailure' },
      ],
      Next: 'Applied',
    };
  }
  states.Applied = { Type: 'Succeed' };

  states.ReadCheckpoint = {
    Type: 'Task',
    Resource: 'arn:aws:states:::dynamodb:getItem',
    Parameters: { TableName: input.checkpointTableName, Key: { aggregateId: { 'S.$': '$.detail.aggregateId' } }, ConsistentRead: true },
    ResultPath: '$.checkpoint',
    Retry: [{ ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 }],
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'ReportFailure' }],
    Next: 'HasCheckpoint',
  };
  states.HasCheckpoint = {
    Type: 'Choice',
    Choices: [{ Variable: '$.checkpoint.Item.lastEventSequence.N', IsPresent: true, Next: 'ReadLastApplied' }],
    Default: 'MayWaitForEarlierEvent',
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
    Default: 'MayWaitForEarlierEvent',
  };
  states.AlreadyApplied = { Type: 'Succeed', Comment: 'A duplicate delivery: the event was applied before; nothing is written.' };
  states.MayWaitForEarlierEvent = {
    Type: 'Choice',
    Choices: [{ Variable: '$.attempt.count', NumericGreaterThanEquals: input.gapWaits.length, Next: 'ReportGap' }],
    Default: 'NextWait',
  };
  states.NextWait = {
    Type: 'Pass',
    Parameters: {
      'count.$': 'States.MathAdd($.attempt.count, 1)',
      'seconds.$': `States.ArrayGetItem(States.Array(${(input.gapWaits.length > 0 ? input.gapWaits : [0]).join(', ')}), $.attempt.count)`,
    },
    ResultPath: '$.attempt',
    Next: 'WaitForEarlierEvent',
  };
  states.WaitForEarlierEvent = { Type: 'Wait', SecondsPath: '$.attempt.seconds', Next: 'RouteByDetailType' };

  const report = (errorType: string, severity: string, message: string, retryable: boolean) => ({
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
            errorType,
            severity,
            'message.$': message,
            'context': { 'domain': input.domain, 'stateMachine.$': '$$.StateMachine.Name', 'executionId.$': '$$.Execution.Id' },
            'metadata': {
              'retryCount.$': '$.attempt.count',
              retryable,
              // The whole event, so that it can be replayed.
              'original.$': '$.detail',
              'failure.$': '$.failure',
            },
            'timestamp.$': '$$.State.EnteredTime',
          },
        },
      ],
    },
    ResultPath: '$.report',
    Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2.0 }],
    Next: errorType === 'ProjectionGap' ? 'GapNotFilled' : 'ProjectionFailed',
  });
  states.ReportGap = report(
    'ProjectionGap',
    'HIGH',
    "States.Format('{} {} of aggregate {} was not projected: an earlier event of the aggregate was not applied in time (waited {} times)', $.detail.eventType, $.detail.eventSequence, $.detail.aggregateId, $.attempt.count)",
    true,
  );
  states.ReportFailure = report(
    'ProjectionFailed',
    'HIGH',
    "States.Format('{} {} of aggregate {} was not projected: {}', $.detail.eventType, $.detail.eventSequence, $.detail.aggregateId, $.failure.Error)",
    true,
  );
  states.GapNotFilled = { Type: 'Fail', Error: 'ProjectionGap', Cause: 'An earlier event of the aggregate was not applied in time; reported on the error bus' };
  states.ProjectionFailed = { Type: 'Fail', Error: 'ProjectionFailed', Cause: 'The event could not be projected; reported on the error bus' };

  return {
    Comment: `Skafu projections of ${input.domain}: each event applied once, in aggregate order`,
    StartAt: 'Start',
    TimeoutSeconds: 300,
    States: states,
  };
}
