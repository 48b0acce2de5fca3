/**
 * The Step Functions service: every AWS::StepFunctions::StateMachine of the assembly, run from its exact
 * definition by aws-local-stepfunctions (JSONPath). A definition is validated once at start; StartExecution
 * starts an execution and returns (like the asynchronous API an EventBridge rule target calls), the execution
 * runs on, and a failed execution is reported on the console (it is not a delivery failure: EventBridge's
 * retries and dead-letter queue only cover starting it).
 *
 * Executions start in the order StartExecution was called, at most `maxConcurrentExecutions` at a time (the
 * rest wait their turn). AWS runs them concurrently with no order guarantee, so a definition that is correct
 * on AWS (Skafu's projections wait for an earlier event of the same aggregate) is correct here; the bound only
 * keeps one machine from interpreting thousands of executions at once, which starved everything else.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Unsupported } from './api-gateway';
import type { LocalResource } from './assembly';
import type { DynamoDbJsonClient } from './dynamodb-json';
import { allStates, EMULATED_TASKS, PreparedDefinition } from './state-machines';

export interface StepFunctionsOptions {
  readonly client: DynamoDBClient;
  /** DynamoDB's JSON API, which the DynamoDB tasks go through when given (see state-machines.ts). */
  readonly dynamodb?: DynamoDbJsonClient;
  readonly putEvents: (input: { Entries: Array<Record<string, unknown>> }) => unknown;
  /** Milliseconds every Wait state lasts (instead of its seconds). */
  readonly waitMs: number;
  /** Milliseconds between a task's retries (their number is kept). */
  readonly retryMs: number;
  readonly log: (line: string) => void;
  /** Keeps track of work in flight (for settle). */
  readonly track: (work: Promise<unknown>) => void;
  /** @default 16 */
  readonly maxConcurrentExecutions?: number;
  /** Told the tables a DynamoDB write task wrote (their streams may have records to read now). */
  readonly afterWrite?: (tableNames: string[]) => void;
  /** Told after each execution has ended (counted in finishedExecutions). */
  readonly onFinished?: () => void;
}

export interface LocalStateMachine {
  readonly arn: string;
  readonly name: string;
  readonly resource: string;
  readonly prepared: PreparedDefinition;
}

export class StepFunctions {
  public readonly unsupported: Unsupported[] = [];
  public executions = 0;
  public failedExecutions = 0;
  /** Executions that have ended (succeeded or failed). */
  public finishedExecutions = 0;
  private readonly machines = new Map<string, LocalStateMachine>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;

  constructor(private readonly options: StepFunctionsOptions) {}

  public configure(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::StepFunctions::StateMachine')) {
      const definition = JSON.parse(String(r.stack.resolve(r.properties.DefinitionString))) as Record<string, any>;
      const arn = r.stack.arn(r.logicalId);
      const name = r.stack.physicalId(r.logicalId);
      const type = r.properties.StateMachineType === 'EXPRESS' ? 'EXPRESS' : 'STANDARD';
      const prepared = new PreparedDefinition(definition, {
        client: this.options.client,
        dynamodb: this.options.dynamodb,
        putEvents: this.options.putEvents,
        stateMachine: { id: arn, name, type },
        waitMs: this.options.waitMs,
        retryMs: this.options.retryMs,
        afterWrite: this.options.afterWrite,
      });
      this.machines.set(arn, { arn, name, resource: r.path, prepared });
      for (const [stateName, state] of allStates(definition)) {
        if (state.Type === 'Task' && !EMULATED_TASKS.has(state.Resource)) {
          this.unsupported.push({ type: `Task ${state.Resource}`, count: 1, why: `${r.path} state '${stateName}' fails locally: only DynamoDB and events:putEvents tasks are emulated` });
        }
      }
    }
  }

  public has(arn: string): boolean {
    return this.machines.has(arn);
  }

  /** StartExecution: throws if there is no such machine; the execution runs on. */
  public startExecution(arn: string, input: unknown): void {
    const machine = this.machines.get(arn);
    if (!machine) throw new Error(`StateMachineDoesNotExist: ${arn}`);
    this.executions++;
    this.options.track(this.whenFree().then(() => this.run(machine, input)).finally(() => this.release()));
  }

  /** Executions started and not finished, and those waiting for their turn. */
  public get pending(): number {
    return this.running + this.waiting.length;
  }

  private whenFree(): Promise<void> {
    if (this.running < (this.options.maxConcurrentExecutions ?? 16)) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => resolve()));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes to the next execution
    else this.running--;
  }

  /** Runs an execution to its end; resolves with its output, or undefined if it failed (reported). */
  public async run(machine: LocalStateMachine, input: unknown): Promise<unknown> {
    try {
      return await machine.prepared.run(input);
    } catch (err) {
      this.failedExecutions++;
      const cause = (err as { cause?: Error }).cause;
      const reason = `${cause?.name ?? (err as Error).name}: ${(err as Error).message.replace(/^Execution has failed with the following error: /, '')}`;
      this.options.log(`[state machine ${machine.name}] execution failed: ${reason}`);
      return undefined;
    } finally {
      this.finishedExecutions++;
      this.options.onFinished?.();
    }
  }
}
