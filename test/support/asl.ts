/**
 * Runs a state machine exactly as our constructs synthesize it: the DefinitionString is taken from the template,
 * its CloudFormation intrinsics resolved to local names, checked with asl-validator, and executed with
 * aws-local-stepfunctions through Skafu Local's runner: task states send exactly the task's parameters to
 * DynamoDB Local through the SDK (errors renamed the way Step Functions names them); events:putEvents tasks are
 * captured (EventBridge has no local engine).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { runDefinition } from '../../local/src/state-machines';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

export type CfnRefs = Record<string, string>;

/** Resolves Ref, Fn::GetAtt, Fn::Join and the pseudo parameters in a template fragment. */
export function resolveCfn(value: unknown, refs: CfnRefs): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveCfn(v, refs));
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  if ('Ref' in obj) {
    const name = obj.Ref as string;
    const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': 'us-east-1', 'AWS::AccountId': '111111111111', 'AWS::URLSuffix': 'amazonaws.com' };
    const resolved = pseudo[name] ?? refs[name];
    if (resolved === undefined) throw new Error(`unresolved Ref ${name}`);
    return resolved;
  }
  if ('Fn::GetAtt' in obj) {
    const [id, attr] = obj['Fn::GetAtt'] as [string, string];
    const resolved = refs[`${id}.${attr}`] ?? (attr === 'Arn' && refs[id] ? `arn:aws:local:us-east-1:111111111111:${id}/${refs[id]}` : undefined);
    if (resolved === undefined) throw new Error(`unresolved GetAtt ${id}.${attr}`);
    return resolved;
  }
  if ('Fn::Join' in obj) {
    const [sep, parts] = obj['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveCfn(p, refs)).join(sep);
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, resolveCfn(v, refs)]));
}

/** The state machine's ASL from its AWS::StepFunctions::StateMachine resource, resolved. */
export function definitionFrom(stateMachineResource: { Properties: Record<string, unknown> }, refs: CfnRefs): Record<string, any> {
  const text = resolveCfn(stateMachineResource.Properties.DefinitionString, refs) as string;
  return JSON.parse(text);
}

export function validateAsl(definition: unknown): void {
  const result = aslValidator(definition);
  if (!result.isValid) throw new Error(`invalid ASL: ${result.errorsText('; ')}`);
}

export interface LocalRunOptions {
  readonly client: DynamoDBClient;
  /** Receives every putEvents entry. */
  readonly onPutEvents?: (entries: Array<Record<string, unknown>>) => void;
  /** Milliseconds for every Wait state. @default 20 */
  readonly waitMs?: number;
  /** Replace a task's behaviour (e.g. inject a failure). */
  readonly taskOverride?: (stateName: string, input: any) => Promise<unknown> | undefined;
}

/** Runs one execution with Skafu Local's runner; putEvents entries are captured; retries do not pause. */
export async function runLocal(definition: Record<string, any>, input: unknown, options: LocalRunOptions): Promise<unknown> {
  return runDefinition(definition, input, {
    client: options.client,
    putEvents: ({ Entries }) => {
      options.onPutEvents?.(Entries);
      return { FailedEntryCount: 0, Entries: Entries.map(() => ({ EventId: 'local' })) };
    },
    stateMachine: { id: 'arn:aws:states:us-east-1:111111111111:stateMachine:local', name: 'local' },
    waitMs: options.waitMs ?? 20,
    retryMs: 0,
    taskOverride: options.taskOverride,
  });
}
