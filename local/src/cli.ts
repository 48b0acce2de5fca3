#!/usr/bin/env node
/**
 * The `skafu-local` command: runs a synthesized cloud assembly on this machine, or plays a recorded scenario
 * against it or against any deployed stage. `skafu-local --help` documents every option.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runScenario, validateScenario } from './scenario';
import { SkafuLocal, type SkafuLocalOptions } from './skafu-local';

const HELP = `usage: skafu-local [ASSEMBLY] [options]
       skafu-local --scenario FILE --base-url URL --tokens FILE

Runs the resources of a synthesized CDK app (its cloud assembly, cdk.out) on this machine: tables in DynamoDB
Local (Java 17 or later on the PATH), the REST APIs with their Lambda authorizers, the bundled Lambda handlers,
the table streams, buses, queues and state machines. Prints the routes, what is not emulated and why, and
writes a token per demo user (one per Cognito group, and NoGroup) to WORK_DIR/tokens.json.

ASSEMBLY                    the cloud assembly directory: relative, absolute or a symlink (default: cdk.out)

options:
  --port N                  the API's loopback port (default: 3000; 0 picks a free port)
  --work-dir DIR            logs, errors.log and tokens.json (default: .skafu-local next to ASSEMBLY)
  --dynamodb-endpoint URL   use a running DynamoDB Local instead of starting one
  --poll-interval MS        how often an idle stream or queue is polled (default: 250)
  --wait-ms MS              how long every state machine Wait state lasts, instead of its seconds (default: 200)
  --retry-ms MS             the interval between a state machine task's retries; their number is kept (default: 100)
  --max-executions N        state machine executions interpreted at once, the others wait in order (default: 16)
  --no-backfill             do not backfill read models from the event store at start (by default a read model
                            added to a domain that already has events, or raised to a new version, is filled
                            before the API answers, and queries switch to a new version once it is filled)
  --scenario FILE           play a recorded scenario (JSON, see the README) and exit 0 if every step behaved
                            as expected, 1 otherwise; with ASSEMBLY (or without --base-url) against Skafu Local
                            started for the run, with --base-url against that URL instead
  --base-url URL            the API to play the scenario against, stage included (https://.../prod)
  --tokens FILE             JSON object of a token per user name the scenario uses (default with Skafu Local:
                            its own tokens.json)
  -h, --help                this help
  -v, --version             the version

environment:
  SKAFU_DYNAMODB_JAVA_OPTIONS  JVM options of the DynamoDB Local it starts (default: -XX:TieredStopAtLevel=1
                            -XX:+UseSerialGC, about half the JVM CPU per request at test-run scale; empty: the
                            JVM's defaults)

Requests: http://127.0.0.1:PORT/<stage>/api/... (the API's real stage name) or http://127.0.0.1:PORT/api/...
Errors (error events, handler crashes with their correlation id, handlers that cannot load, streams that
cannot be read): the console and WORK_DIR/errors.log.
Node.js 22 or later (20 runs, unsupported); Java 17 or later for DynamoDB Local. Ctrl-C stops it.`;

interface Parsed {
  readonly positional: string[];
  readonly options: Map<string, string | true>;
}

const VALUED = new Set(['--port', '--work-dir', '--dynamodb-endpoint', '--poll-interval', '--wait-ms', '--retry-ms', '--max-executions', '--scenario', '--base-url', '--tokens']);
const FLAGS = new Set(['--help', '-h', '--version', '-v', '--no-backfill']);

export function parseArgs(argv: string[]): Parsed {
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (FLAGS.has(name)) {options.set(name, true);} else if (VALUED.has(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new Error(`${name} needs a value (see --help)`);
      options.set(name, value);
    } else if (arg.startsWith('-')) {throw new Error(`unknown option ${arg} (see --help)`);} else {positional.push(arg);}
  }
  if (positional.length > 1) throw new Error(`one assembly directory, not ${positional.length}: ${positional.join(' ')}`);
  return { positional, options };
}

function number(options: Parsed['options'], name: string): number | undefined {
  const value = options.get(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number >= 0, not ${JSON.stringify(value)}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const { positional, options } = parseArgs(argv);
  if (options.has('--help') || options.has('-h')) {
    console.log(HELP);
    return 0;
  }
  if (options.has('--version') || options.has('-v')) {
    console.log(JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version);
    return 0;
  }
  const scenarioFile = options.get('--scenario') as string | undefined;
  const baseUrl = options.get('--base-url') as string | undefined;
  const tokensFile = options.get('--tokens') as string | undefined;
  if (baseUrl && !scenarioFile) throw new Error('--base-url is for --scenario');
  const scenario = scenarioFile ? validateScenario(JSON.parse(fs.readFileSync(scenarioFile, 'utf8')), scenarioFile) : undefined;
  const tokens = tokensFile ? (JSON.parse(fs.readFileSync(tokensFile, 'utf8')) as Record<string, string>) : undefined;

  if (scenario && baseUrl) {
    if (positional.length > 0) throw new Error('give an assembly or --base-url, not both');
    const results = await runScenario(scenario, { baseUrl, tokens: tokens ?? {} });
    return summarize(results);
  }

  const localOptions: SkafuLocalOptions = {
    assembly: positional[0] ?? 'cdk.out',
    port: number(options, '--port') ?? (scenario ? 0 : 3000),
    workDirectory: options.get('--work-dir') as string | undefined,
    dynamoDbEndpoint: options.get('--dynamodb-endpoint') as string | undefined,
    pollIntervalMs: number(options, '--poll-interval'),
    waitMs: number(options, '--wait-ms'),
    backfill: !options.has('--no-backfill'),
    retryMs: number(options, '--retry-ms'),
    maxConcurrentExecutions: number(options, '--max-executions'),
  };
  const local = new SkafuLocal(localOptions);
  if (scenario) {
    try {
      await local.start();
      const results = await runScenario(scenario, { baseUrl: local.url, tokens: tokens ?? local.tokens });
      return summarize(results);
    } finally {
      await local.stop();
    }
  }
  try {
    await local.start();
  } catch (err) {
    await local.stop().catch(() => undefined); // DynamoDB Local and the workers do not outlive a failed start
    throw err;
  }
  console.log('Skafu Local is running; Ctrl-C stops it.');
  const stop = () => {
    console.log('stopping...');
    void local.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return -1; // keeps serving
}

function summarize(results: Array<{ ok: boolean }>): number {
  const failed = results.filter((r) => !r.ok).length;
  console.log(`scenario: ${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exit(code);
    },
    (err) => {
      console.error(`skafu-local: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
