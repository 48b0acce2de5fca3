import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeNag } from './nag';

/** Settings every bundled handler shares. */
export interface HandlerSettings {
  /** @default 30 days */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.DESTROY (logs, not data) */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** @default INFO */
  readonly logLevel?: string;
}

export interface HandlerPropsInput extends HandlerSettings {
  readonly description: string;
  readonly serviceName: string;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default 30 seconds */
  readonly timeout?: Duration;
  readonly environment?: Record<string, string>;
}

/**
 * The common FunctionOptions of a bundled handler: its own role (logs scoped to its own log group, no managed
 * policy), a log group with retention, X-Ray tracing, Powertools settings.
 */
export function handlerOptions(scope: Construct, id: string, input: HandlerPropsInput): lambda.FunctionOptions & { role: iam.Role } {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: input.logRetention ?? logs.RetentionDays.ONE_MONTH,
    removalPolicy: input.logRemovalPolicy ?? RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `${input.description} (${Stack.of(scope).stackName})`.slice(0, 1000),
  });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  return {
    description: input.description,
    role,
    logGroup,
    tracing: lambda.Tracing.ACTIVE,
    memorySize: input.memorySize ?? 256,
    timeout: input.timeout ?? Duration.seconds(30),
    architecture: lambda.Architecture.ARM_64,
    environment: {
      POWERTOOLS_SERVICE_NAME: input.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: 'Skafu',
      POWERTOOLS_LOG_LEVEL: input.logLevel ?? 'INFO',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...(input.environment ?? {}),
    },
  };
}

/** The acknowledgements every bundled handler's role needs, with their reasons. */
export function acknowledgeHandlerRole(role: iam.IRole): void {
  acknowledgeNag(role, [
    {
      id: 'AwsSolutions-IAM5',
      reason: 'X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions; Lambda active tracing needs them on "*".',
      appliesTo: ['Resource::*'],
    },
  ]);
}
