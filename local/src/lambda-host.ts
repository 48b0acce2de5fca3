/** Runs the functions of an assembly, each in a worker thread with the environment from its template. */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export interface LocalFunction {
  /** The local physical name. */
  readonly name: string;
  readonly arn: string;
  /** The code asset directory. */
  readonly directory: string;
  /** `index.handler` */
  readonly handler: string;
  readonly environment: Record<string, string>;
  readonly timeoutSeconds: number;
  readonly memorySize: number;
  readonly description: string;
}

export class LambdaInvocationError extends Error {
  constructor(
    public readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = errorName;
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class LambdaHost {
  private readonly functions = new Map<string, LocalFunction>();
  private readonly workers = new Map<string, Worker>();
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly baseEnvironment: Record<string, string>,
    private readonly logDirectory: string,
  ) {
    fs.mkdirSync(logDirectory, { recursive: true });
  }

  public register(fn: LocalFunction): void {
    this.functions.set(fn.name, fn);
    this.functions.set(fn.arn, fn);
  }

  public get(nameOrArn: string): LocalFunction | undefined {
    return this.functions.get(nameOrArn) ?? [...this.functions.values()].find((f) => nameOrArn.includes(`function:${f.name}`));
  }

  /** Invokes a function; rejects with LambdaInvocationError when the handler throws (as Lambda reports it). */
  public async invoke(nameOrArn: string, event: unknown): Promise<unknown> {
    const fn = this.get(nameOrArn);
    if (!fn) throw new Error(`no local function ${nameOrArn}`);
    const worker = this.worker(fn);
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LambdaInvocationError('Sandbox.Timedout', `${fn.name} timed out after ${fn.timeoutSeconds} s`));
      }, fn.timeoutSeconds * 1000);
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, event: JSON.parse(JSON.stringify(event ?? null)), timeoutMs: fn.timeoutSeconds * 1000 });
    });
  }

  public async stop(): Promise<void> {
    await Promise.all([...new Set(this.workers.values())].map((w) => w.terminate()));
    this.workers.clear();
  }

  private worker(fn: LocalFunction): Worker {
    let worker = this.workers.get(fn.name);
    if (worker) return worker;
    const [moduleName, handlerName] = fn.handler.split(/\.(?=[^.]+$)/);
    const log = fs.createWriteStream(path.join(this.logDirectory, `${fn.name}.log`), { flags: 'a' });
    worker = new Worker(path.join(__dirname, 'lambda-worker.js'), {
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
    });
    worker.stdout.pipe(log);
    worker.stderr.pipe(log);
    worker.on('message', (msg: { id: string; result?: unknown; error?: { name: string; message: string } }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new LambdaInvocationError(msg.error.name, msg.error.message));
      else p.resolve(msg.result);
    });
    worker.on('error', (err) => {
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(err);
        this.pending.delete(id);
      }
      this.workers.delete(fn.name);
    });
    worker.unref();
    this.workers.set(fn.name, worker);
    return worker;
  }
}
