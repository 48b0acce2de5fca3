/**
 * The Lambda service: runs the functions of an assembly, each in a worker thread with the environment from its
 * template and the exact bundled asset. Handlers are loaded at start (like a Lambda init), so that an asset that
 * is missing or throws while loading is reported then, by resource and reason, not at the first request.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export interface LocalFunction {
  /** The local physical name. */
  readonly name: string;
  readonly arn: string;
  /** Where it is in the assembly: `Stack/LogicalId`. */
  readonly resource: string;
  /** The code asset directory (absolute). */
  readonly directory: string;
  /** `index.handler` */
  readonly handler: string;
  readonly environment: Record<string, string>;
  readonly timeoutSeconds: number;
  readonly memorySize: number;
  readonly description: string;
}

/** A handler's error, as Lambda reports it to its caller (`errorType`, `errorMessage`, `trace`). */
export class LambdaInvocationError extends Error {
  constructor(
    public readonly errorName: string,
    message: string,
    public readonly trace: string[] = [],
    public readonly functionName = '',
  ) {
    super(message);
    this.name = errorName;
  }
}

/** A function that could not be loaded at start. */
export interface LoadFailure {
  readonly function: LocalFunction;
  readonly reason: string;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface WorkerMessage {
  readonly id?: string;
  readonly type?: 'ready' | 'load-error' | 'wrote';
  /** For `wrote`: the tables a DynamoDB write of the handler wrote, `null` when they cannot be told. */
  readonly tables?: string[] | null;
  /** The handler's result as JSON text (what Lambda returns to its caller). */
  readonly result?: string;
  readonly error?: { name: string; message: string; stack?: string };
}

export class LambdaHost {
  private readonly functions = new Map<string, LocalFunction>();
  private readonly workers = new Map<string, { worker: Worker; ready: Promise<void>; pending: Map<string, Pending> }>();
  private readonly broken = new Map<string, string>();

  constructor(
    private readonly baseEnvironment: Record<string, string>,
    private readonly logDirectory: string,
    /**
     * Told, while a handler runs, each time DynamoDB has answered one of its writes with success: the tables it
     * wrote, or undefined when they cannot be told (a PartiQL statement naming none Skafu Local can read).
     */
    private readonly onWrite: (tables: readonly string[] | undefined) => void = () => undefined,
  ) {
    fs.mkdirSync(logDirectory, { recursive: true });
  }

  public register(fn: LocalFunction): void {
    this.functions.set(fn.name, fn);
    this.functions.set(fn.arn, fn);
  }

  /** Every registered function, once. */
  public all(): LocalFunction[] {
    return [...new Set(this.functions.values())];
  }

  public get(nameOrArn: string): LocalFunction | undefined {
    return this.functions.get(nameOrArn) ?? this.all().find((f) => nameOrArn.endsWith(`:function:${f.name}`) || nameOrArn.includes(`:function:${f.name}:`));
  }

  /** Loads every function's handler in its worker; returns those that failed, with the reason. */
  public async loadAll(): Promise<LoadFailure[]> {
    const failures: LoadFailure[] = [];
    await Promise.all(
      this.all().map(async (fn) => {
        try {
          await this.worker(fn).ready;
        } catch (err) {
          this.broken.set(fn.name, (err as Error).message);
          failures.push({ function: fn, reason: (err as Error).message });
        }
      }),
    );
    return failures;
  }

  /** Invokes a function; rejects with LambdaInvocationError when the handler throws (as Lambda reports it). */
  public async invoke(nameOrArn: string, event: unknown): Promise<unknown> {
    const fn = this.get(nameOrArn);
    if (!fn) throw new LambdaInvocationError('ResourceNotFoundException', `no local function ${nameOrArn}`);
    const broken = this.broken.get(fn.name);
    if (broken) throw new LambdaInvocationError('Runtime.ImportModuleError', `${fn.name} could not be loaded: ${broken}`, [], fn.name);
    const slot = this.worker(fn);
    await slot.ready.catch((err: Error) => {
      throw new LambdaInvocationError('Runtime.ImportModuleError', `${fn.name} could not be loaded: ${err.message}`, [], fn.name);
    });
    const id = randomUUID();
    // Lambda hands the handler JSON: what cannot be serialized does not reach it. The text goes to the worker,
    // which parses it (cheaper for this thread than copying an object graph across threads).
    const payload = JSON.stringify(event ?? null) ?? 'null';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new LambdaInvocationError('Sandbox.Timedout', `${fn.name} timed out after ${fn.timeoutSeconds} s`, [], fn.name));
      }, fn.timeoutSeconds * 1000);
      slot.pending.set(id, { resolve, reject, timer });
      slot.worker.postMessage({ id, event: payload, timeoutMs: fn.timeoutSeconds * 1000 });
    });
  }

  public async stop(): Promise<void> {
    const slots = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private worker(fn: LocalFunction) {
    const existing = this.workers.get(fn.name);
    if (existing) return existing;
    const [moduleName, handlerName] = fn.handler.split(/\.(?=[^.]+$)/);
    const log = fs.createWriteStream(path.join(this.logDirectory, `${fn.name}.log`), { flags: 'a' });
    const worker = new Worker(path.join(__dirname, 'lambda-worker.js'), {
      workerData: {
        file: path.join(fn.directory, `${moduleName}.js`),
        handlerName,
        functionName: fn.name,
        functionArn: fn.arn,
        memorySize: fn.memorySize,
      },
      env: { ...this.baseEnvironment, ...fn.environment, AWS_LAMBDA_FUNCTION_NAME: fn.name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize) },
      stdout: true,
      stderr: true,
      // A handler is plain JavaScript: no loader of the parent (ts-node under jest or the bench) in its thread.
      execArgv: [],
    });
    worker.stdout.pipe(log);
    worker.stderr.pipe(log);
    const pending = new Map<string, Pending>();
    let markReady!: () => void;
    let failLoad!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failLoad = reject;
    });
    ready.catch(() => undefined); // observed by loadAll / invoke
    const slot = { worker, ready, pending };
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'wrote') return this.onWrite(msg.tables ?? undefined);
      if (msg.type === 'ready') return markReady();
      if (msg.type === 'load-error') return failLoad(new Error(`${msg.error?.name}: ${msg.error?.message}`));
      const p = msg.id ? pending.get(msg.id) : undefined;
      if (!p) return;
      pending.delete(msg.id!);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new LambdaInvocationError(msg.error.name, msg.error.message, (msg.error.stack ?? '').split('\n'), fn.name));
      else p.resolve(msg.result === undefined ? null : JSON.parse(msg.result));
    });
    // An uncaught error in the handler's environment ends it, like a Lambda runtime exit: every invocation in
    // flight fails, and the next one starts a new environment.
    const fail = (err: Error) => {
      failLoad(err);
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new LambdaInvocationError('Runtime.ExitError', `${fn.name}: ${err.message}`, (err.stack ?? '').split('\n'), fn.name));
        pending.delete(id);
      }
      if (this.workers.get(fn.name) === slot) this.workers.delete(fn.name);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the runtime exited with code ${code}`)));
    worker.unref();
    this.workers.set(fn.name, slot);
    return slot;
  }
}
