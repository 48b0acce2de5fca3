/**
 * Runs a state machine exactly as our constructs synthesize it: the DefinitionString is taken from the template,
 * its CloudFormation intrinsics resolved to local names, checked with asl-validator, and executed with
 * aws-local-stepfunctions. Task states run through local handlers that send exactly the task's parameters to
 * DynamoDB Local through the SDK (errors renamed the way Step Functions names them); events:putEvents tasks are
 * captured (EventBridge has no local engine).
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, GetItemCommand, TransactWriteItemsCommand, PutItemCommand, UpdateItemCommand, DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { StateMachine } from 'aws-local-stepfunctions';

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

export interface ParsedDefinition {
  readonly definition: Record<string, any>;
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

function rename(err: unknown, prefix: string): Error {
  const e = err as Error & { CancellationReasons?: unknown };
  const renamed = new Error(e.message);
  renamed.name = `${prefix}.${e.name}`;
  return renamed;
}

const SDK: Record<string, { prefix: string; command: (input: any) => any }> = {
  'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems': { prefix: 'DynamoDb', command: (i) => new TransactWriteItemsCommand(i) },
  'arn:aws:states:::dynamodb:getItem': { prefix: 'DynamoDB', command: (i) => new GetItemCommand(i) },
  'arn:aws:states:::dynamodb:putItem': { prefix: 'DynamoDB', command: (i) => new PutItemCommand(i) },
  'arn:aws:states:::dynamodb:updateItem': { prefix: 'DynamoDB', command: (i) => new UpdateItemCommand(i) },
  'arn:aws:states:::dynamodb:deleteItem': { prefix: 'DynamoDB', command: (i) => new DeleteItemCommand(i) },
};

/** Runs one execution; resolves with the output or rejects with the execution error (its name is the ASL error). */
export async function runLocal(definition: Record<string, any>, input: unknown, options: LocalRunOptions): Promise<unknown> {
  const handlers: Record<string, (input: any) => Promise<any>> = {};
  const waits: Record<string, number> = {};
  const retries: Record<string, number> = {};
  for (const [name, state] of Object.entries(definition.States as Record<string, any>)) {
    if (state.Type === 'Wait') waits[name] = options.waitMs ?? 20;
    if (state.Type !== 'Task') continue;
    retries[name] = 0;
    handlers[name] = async (taskInput: any) => {
      const overridden = await options.taskOverride?.(name, taskInput);
      if (overridden !== undefined) return overridden;
      if (state.Resource === 'arn:aws:states:::events:putEvents') {
        options.onPutEvents?.(taskInput.Entries);
        return { FailedEntryCount: 0, Entries: taskInput.Entries.map(() => ({ EventId: 'local' })) };
      }
      const sdk = SDK[state.Resource];
      if (!sdk) throw new Error(`no local handler for ${state.Resource}`);
      try {
        const out = await options.client.send(sdk.command(taskInput));
        const { $metadata: _, ...result } = out as Record<string, unknown>;
        return JSON.parse(JSON.stringify(result));
      } catch (err) {
        throw rename(err, sdk.prefix);
      }
    };
  }
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides: waits, retryIntervalOverrides: retries },
    // aws-local-stepfunctions takes the context object as given: provide what AWS would.
    context: {
      StateMachine: { Id: 'arn:aws:states:us-east-1:111111111111:stateMachine:local', Name: 'local' },
      Execution: { Id: `arn:aws:states:us-east-1:111111111111:express:local:${randomUUID()}`, Name: 'local', StartTime: new Date().toISOString() },
      State: { EnteredTime: new Date().toISOString(), Name: 'state', RetryCount: 0 },
    } as never,
  });
  return execution.result;
}
