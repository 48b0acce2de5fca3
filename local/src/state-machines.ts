/**
 * Executes a state machine definition (Amazon States Language, JSONPath) with aws-local-stepfunctions, with the
 * task integrations Skafu's constructs use emulated: DynamoDB tasks send exactly the task's parameters to
 * DynamoDB's JSON API (Skafu Local) or through an SDK client (tests that meter it), errors renamed the way Step
 * Functions names them, and `events:putEvents` goes to a callback. Used by Skafu Local and by the tests that run
 * the constructs' synthesized definitions.
 */
import './polyfills';
import './jsonpath-fast';
import { randomUUID } from 'node:crypto';
import {
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { StateMachine } from 'aws-local-stepfunctions';
import type { DynamoDbJsonClient } from './dynamodb-json';

export const PUT_EVENTS_TASK = 'arn:aws:states:::events:putEvents';

/** DynamoDB task resources: the API operation, and the prefix Step Functions puts on their errors. */
const DYNAMODB_TASKS: Record<string, { prefix: string; operation: string; command: (input: any) => unknown }> = {
  'arn:aws:states:::aws-sdk:dynamodb:transactWriteItems': { prefix: 'DynamoDb', operation: 'TransactWriteItems', command: (i) => new TransactWriteItemsCommand(i) },
  'arn:aws:states:::dynamodb:getItem': { prefix: 'DynamoDB', operation: 'GetItem', command: (i) => new GetItemCommand(i) },
  'arn:aws:states:::dynamodb:putItem': { prefix: 'DynamoDB', operation: 'PutItem', command: (i) => new PutItemCommand(i) },
  'arn:aws:states:::dynamodb:updateItem': { prefix: 'DynamoDB', operation: 'UpdateItem', command: (i) => new UpdateItemCommand(i) },
  'arn:aws:states:::dynamodb:deleteItem': { prefix: 'DynamoDB', operation: 'DeleteItem', command: (i) => new DeleteItemCommand(i) },
};

/** Every task resource this runner emulates. */
export const EMULATED_TASKS: ReadonlySet<string> = new Set([PUT_EVENTS_TASK, ...Object.keys(DYNAMODB_TASKS)]);

export interface RunDefinitionOptions {
  /** The DynamoDB client the tasks go through (unless `dynamodb` is given). */
  readonly client: DynamoDBClient;
  /**
   * When given, DynamoDB tasks send their parameters as they are to DynamoDB's JSON API through it, as Step
   * Functions does, instead of through the SDK client (whose per-call CPU is several times the request's; see
   * dynamodb-json.ts). Skafu Local gives it; tests that meter the SDK client's requests do not.
   */
  readonly dynamodb?: DynamoDbJsonClient;
  /** Handles an `events:putEvents` task's parameters and returns its result. */
  readonly putEvents: (input: { Entries: Array<Record<string, unknown>> }) => unknown;
  /** The state machine's ARN and name, for the context object. */
  readonly stateMachine: { readonly id: string; readonly name: string; readonly type?: 'STANDARD' | 'EXPRESS' };
  /** Milliseconds every Wait state lasts (instead of its seconds). */
  readonly waitMs: number;
  /** Milliseconds between a task's retries (their number is kept). */
  readonly retryMs: number;
  /** Replaces a task's behaviour when it returns something other than undefined (e.g. to inject a failure). */
  readonly taskOverride?: (stateName: string, input: any) => Promise<unknown> | undefined;
  /** Told the tables a DynamoDB write task wrote (or tried to), once it has answered: their streams may have records. */
  readonly afterWrite?: (tableNames: string[]) => void;
}

/**
 * One parsed and validated StateMachine per definition object: constructing one validates the whole definition
 * (about a second under load), running it takes milliseconds. Callers that prepare a definition per execution
 * (the tests' runner) share it; the handlers and overrides stay per PreparedDefinition.
 */
const machines = new WeakMap<object, StateMachine>();
function machineFor(definition: Record<string, any>): StateMachine {
  let machine = machines.get(definition);
  if (!machine) {
    machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
    machines.set(definition, machine);
  }
  return machine;
}

/**
 * Every state of a definition with its name, the states of Parallel branches and Map processors included
 * (aws-local-stepfunctions applies its per-state-name overrides inside them too).
 */
export function allStates(definition: Record<string, any>): Array<[string, Record<string, any>]> {
  const out: Array<[string, Record<string, any>]> = [];
  for (const [name, state] of Object.entries((definition.States ?? {}) as Record<string, any>)) {
    out.push([name, state]);
    for (const branch of state.Branches ?? []) out.push(...allStates(branch));
    const processor = state.ItemProcessor ?? state.Iterator;
    if (processor) out.push(...allStates(processor));
  }
  return out;
}

/** A definition validated and prepared once, to run many executions (validation is the costly part). */
export class PreparedDefinition {
  private readonly machine: StateMachine;
  private readonly handlers: Record<string, (taskInput: any) => Promise<unknown>> = {};
  private readonly waits: Record<string, number> = {};
  private readonly retries: Record<string, number> = {};

  constructor(
    definition: Record<string, any>,
    private readonly options: RunDefinitionOptions,
  ) {
    for (const [name, state] of allStates(definition)) {
      if (state.Type === 'Wait') this.waits[name] = options.waitMs;
      if (state.Type !== 'Task') continue;
      this.retries[name] = options.retryMs;
      this.handlers[name] = async (taskInput: any) => {
        const overridden = await options.taskOverride?.(name, taskInput);
        if (overridden !== undefined) return overridden;
        return task(String(state.Resource), taskInput, options);
      };
    }
    this.machine = machineFor(definition);
  }

  /** Runs one execution; resolves with its output or rejects with the execution error (`cause.name` is the ASL error). */
  public run(input: unknown, executionName: string = randomUUID()): Promise<unknown> {
    const { stateMachine } = this.options;
    const execution = this.machine.run(input as never, {
      overrides: { taskResourceLocalHandlers: this.handlers as never, waitTimeOverrides: this.waits, retryIntervalOverrides: this.retries },
      // aws-local-stepfunctions takes the context object as given: provide what AWS would.
      context: {
        StateMachine: { Id: stateMachine.id, Name: stateMachine.name },
        Execution: { Id: `${stateMachine.id.replace(':stateMachine:', stateMachine.type === 'STANDARD' ? ':execution:' : ':express:')}:${executionName}`, Name: executionName, StartTime: new Date().toISOString() },
        State: { EnteredTime: new Date().toISOString(), Name: 'local', RetryCount: 0 },
      } as never,
    });
    return execution.result;
  }
}

/** Runs one execution; resolves with its output or rejects with the execution error (`cause.name` is the ASL error). */
export async function runDefinition(definition: Record<string, any>, input: unknown, options: RunDefinitionOptions): Promise<unknown> {
  return new PreparedDefinition(definition, options).run(input);
}

async function task(resource: string, input: any, options: RunDefinitionOptions): Promise<unknown> {
  if (resource === PUT_EVENTS_TASK) return options.putEvents(input);
  const dynamodb = DYNAMODB_TASKS[resource];
  if (!dynamodb) throw Object.assign(new Error(`task ${resource} is not emulated`), { name: 'States.TaskFailed' });
  try {
    // The JSON API's answer is fresh JSON already; the SDK's output is copied to plain JSON (no Dates, no $metadata).
    if (options.dynamodb) return await options.dynamodb.dynamodb(dynamodb.operation, input);
    const { $metadata: _, ...out } = (await options.client.send(dynamodb.command(input) as never)) as unknown as Record<string, unknown>;
    return JSON.parse(JSON.stringify(out));
  } catch (err) {
    const renamed = new Error((err as Error).message);
    renamed.name = `${dynamodb.prefix}.${(err as Error).name}`;
    throw renamed;
  } finally {
    if (options.afterWrite && resource !== 'arn:aws:states:::dynamodb:getItem') options.afterWrite(writtenTables(input));
  }
}

/** The tables a write task's parameters name (TransactWriteItems names one per item). */
function writtenTables(input: any): string[] {
  if (typeof input?.TableName === 'string') return [input.TableName];
  const items = Array.isArray(input?.TransactItems) ? (input.TransactItems as Array<Record<string, any>>) : [];
  return [...new Set(items.flatMap((item) => Object.entries(item ?? {}).filter(([kind]) => kind !== 'ConditionCheck').map(([, op]) => op?.TableName)).filter((t): t is string => typeof t === 'string'))];
}
