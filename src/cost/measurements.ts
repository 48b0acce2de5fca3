/**
 * What the cost model needs beyond the assembly and the prices: capacity units and durations measured by
 * `npx projen bench capacity` (bench/operations.bench.ts, recorded in bench/baseline.json), and the assumptions
 * about traffic that no measurement can give. `skafu-cost --measurements bench/baseline.json` uses a newer run.
 */
export interface OperationUnits {
  /** Read request units (on-demand), as DynamoDB bills them. */
  readonly read: number;
  /** Write request units (on-demand), as DynamoDB bills them. */
  readonly write: number;
}

export interface Measurements {
  /** When and how the measured figures were taken. */
  readonly measuredOn: string;
  readonly source: string;
  /** DynamoDB units of one command (load, checks, append), one query, and one projected event. */
  readonly units: {
    readonly command: OperationUnits;
    readonly commandWithIdempotencyKey: OperationUnits;
    readonly query: OperationUnits;
    readonly projectedEvent: OperationUnits;
  };
  /** Warm handler durations in ms (billed duration per invocation). */
  readonly durationsMs: {
    readonly command: number;
    readonly query: number;
    readonly authorizer: number;
    /** One publisher invocation (one batch of stream records to PutEvents). */
    readonly publisherBatch: number;
    /** For the seed design's Lambda per projection: one invocation that writes one read model. */
    readonly projectionLambda: number;
  };
  /** One projection execution: states entered (Standard bills each as a transition) and its billed duration. */
  readonly projection: {
    readonly statesPerExecution: number;
    readonly expressDurationMs: number;
    readonly expressMemoryMb: number;
  };
  /** Traffic assumptions (not measurable here). */
  readonly assumptions: {
    /** Events one command appends. */
    readonly eventsPerCommand: number;
    /** Bytes of one event as put on the bus (for the archive). */
    readonly eventBytes: number;
    /** Stream records per publisher invocation (the mapping's batch size caps it; low traffic makes it smaller). */
    readonly publisherEventsPerInvocation: number;
    /** Requests one caller makes per second on one route: with the authorizer cache TTL, how often it runs. */
    readonly requestsPerSecondPerCallerRoute: number;
    /** Share of requests X-Ray records (the default rule: 1 a second, then 5%). */
    readonly xRaySampleRate: number;
    /** Bytes of logs per request: the API access log line, Lambda's START/END/REPORT lines, the handler's own. */
    readonly apiAccessLogBytes: number;
    readonly lambdaPlatformLogBytes: number;
    readonly handlerLogBytes: number;
    /** Bytes of execution history logged per state entered when a state machine logs ALL. */
    readonly stepFunctionsLogBytesPerState: number;
  };
}

/** The figures of the last recorded bench run (bench/baseline.json), and the assumptions documented above. */
export const DEFAULT_MEASUREMENTS: Measurements = {
  measuredOn: '2026-11-30',
  source: 'npx projen bench capacity (DynamoDB Local; transactions counted as AWS bills them)',
  units: {
    command: { read: 2, write: 1 },
    commandWithIdempotencyKey: { read: 3, write: 4 },
    query: { read: 0.5, write: 0 },
    projectedEvent: { read: 0, write: 6 },
  },
  // command and query: measured (warm, against DynamoDB Local on a loaded machine: upper bounds); the rest assumed.
  durationsMs: { command: 330, query: 63, authorizer: 20, publisherBatch: 60, projectionLambda: 40 },
  // statesPerExecution: measured (a ProjectUpdated event); the Express duration assumed (about 25 ms per state).
  projection: { statesPerExecution: 9, expressDurationMs: 200, expressMemoryMb: 64 },
  assumptions: {
    eventsPerCommand: 1,
    eventBytes: 1500,
    publisherEventsPerInvocation: 10,
    requestsPerSecondPerCallerRoute: 0.02,
    xRaySampleRate: 0.05,
    apiAccessLogBytes: 450,
    lambdaPlatformLogBytes: 350,
    handlerLogBytes: 400,
    stepFunctionsLogBytesPerState: 700,
  },
};
