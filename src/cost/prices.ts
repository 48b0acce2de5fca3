/**
 * The price table the cost model uses: us-east-1, on-demand, list prices in USD, without free tiers or volume
 * discounts (the first pricing tier of each item). Override it with `skafu-cost <cdk.out> --prices <file.json>`: a
 * JSON file with any of these fields replaces them (the rest keep these values).
 *
 * Sources, read on the date below (each price was checked against AWS's own page or whitepaper where one says so):
 * - API Gateway REST: $3.50 per million requests for the first 333 million a month (AWS whitepaper "Best Practices
 *   for Designing Amazon API Gateway Private APIs", table 4; aws.amazon.com/api-gateway/pricing).
 * - Lambda: $0.20 per million requests; $0.0000166667 per GB-second (x86_64), $0.0000133334 (arm64), billed per ms.
 * - DynamoDB on-demand (after the November 2024 price cut): $0.625 per million write request units, $0.125 per
 *   million read request units. Reads of a table's stream by a Lambda event source mapping are free.
 * - EventBridge: $1.00 per million custom events put (each 64 KB chunk is one event); delivery to targets in the
 *   same account is free. Archive: $0.10 per GB of events processed (storage not counted here).
 * - Step Functions: Express $1.00 per million requests plus $0.00001667 per GB-second (memory in 64 MB steps,
 *   duration in 100 ms steps); Standard $0.025 per 1,000 state transitions (aws.amazon.com/step-functions/pricing).
 * - CloudWatch Logs: $0.50 per GB ingested (standard class; storage not counted here).
 * - X-Ray: $5.00 per million traces recorded (aws.amazon.com/xray/pricing).
 */
export interface PriceTable {
  /** When the prices were read (ISO date). */
  readonly takenOn: string;
  readonly region: string;
  readonly apiGatewayRestPerMillionRequests: number;
  readonly lambdaPerMillionRequests: number;
  readonly lambdaPerGbSecondX86: number;
  readonly lambdaPerGbSecondArm: number;
  readonly dynamoDbPerMillionWriteUnits: number;
  readonly dynamoDbPerMillionReadUnits: number;
  readonly eventBridgePerMillionEvents: number;
  readonly eventBridgeArchivePerGb: number;
  readonly stepFunctionsExpressPerMillionRequests: number;
  readonly stepFunctionsExpressPerGbSecond: number;
  readonly stepFunctionsStandardPerThousandTransitions: number;
  readonly cloudWatchLogsPerGbIngested: number;
  readonly xRayPerMillionTracesRecorded: number;
}

export const US_EAST_1_ON_DEMAND: PriceTable = {
  takenOn: '2026-11-30',
  region: 'us-east-1',
  apiGatewayRestPerMillionRequests: 3.5,
  lambdaPerMillionRequests: 0.2,
  lambdaPerGbSecondX86: 0.0000166667,
  lambdaPerGbSecondArm: 0.0000133334,
  dynamoDbPerMillionWriteUnits: 0.625,
  dynamoDbPerMillionReadUnits: 0.125,
  eventBridgePerMillionEvents: 1.0,
  eventBridgeArchivePerGb: 0.1,
  stepFunctionsExpressPerMillionRequests: 1.0,
  stepFunctionsExpressPerGbSecond: 0.00001667,
  stepFunctionsStandardPerThousandTransitions: 0.025,
  cloudWatchLogsPerGbIngested: 0.5,
  xRayPerMillionTracesRecorded: 5.0,
};
