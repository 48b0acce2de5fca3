/** Runs cdk-nag's AwsSolutions pack over a stack and returns the unacknowledged findings. */
import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';

export interface NagFinding {
  readonly path: string;
  readonly message: string;
}

export function applyAwsSolutions(stack: Stack): void {
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
}

function render(entries: ReturnType<Annotations['findError']>): NagFinding[] {
  return entries.map((e) => ({ path: e.id, message: String(e.entry.data).split('\n')[0] }));
}

export function nagErrors(stack: Stack): NagFinding[] {
  return render(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')));
}

export function nagWarnings(stack: Stack): NagFinding[] {
  return render(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')));
}

/** A consumer's handler written the nag-clean way: its own role, logs only to its own log group with retention. */
export function consumerFunction(stack: Stack): { fn: lambda.Function; role: iam.Role } {
  const logGroup = new logs.LogGroup(stack, 'HandlerLogs', { retention: logs.RetentionDays.ONE_MONTH });
  const role = new iam.Role(stack, 'HandlerRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  logGroup.grantWrite(role);
  const fn = new lambda.Function(stack, 'Handler', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler=async()=>({statusCode:200,body:"{}"})'),
    role,
    logGroup,
  });
  return { fn, role };
}
