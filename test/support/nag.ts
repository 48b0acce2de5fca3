/** Runs cdk-nag's AwsSolutions pack over a stack and returns the unacknowledged findings. */
import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
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
