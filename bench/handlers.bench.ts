/**
 * Cold start against the physical floor (`npx projen bench handlers`).
 *
 * For every bundled handler, run from the code asset a synthesized app ships (examples/platform: the shared
 * bundle plus, for the command, query and authorizer handlers, their declaration files), a fresh Node.js process
 * measures the module load plus the first invocation. Its floor is a handler bundled with the same esbuild
 * command (.projen/tasks.json) that imports the same AWS SDK clients (the bundle's external `@aws-sdk/*`
 * imports, read from its metafile) and the same Powertools utilities (logger, tracer, metrics), and on its first
 * invocation makes what every handler must make (the three utilities, one traced client per SDK client
 * package) and returns: what the platform mandates, with none of Skafu's own code. Ratio = handler / floor,
 * medians of alternating fresh processes measured in the same run; target: at most 1.3.
 *
 * The first invocation does no I/O (no network here: the figures would measure DynamoDB Local, not the
 * handler): the command handler refuses a body its compiled schema rejects (400: spec, validators, parse,
 * validation, answer), the query handler a get without its key (400), the authorizer a request without a token
 * (401 "Unauthorized", after reading its route table), the stream publisher and the outbox dead-letter handler
 * an empty batch, the republish handler an input it refuses. The parked-events handler loads the Step Functions
 * client on its first call (`@aws-sdk/client-sfn`, which the Lambda runtime provides and this repository does
 * not install): it is measured on module load only, against its floor's module load.
 *
 * Not measured: Node.js start itself (the same for both), the Lambda runtime's init, X-Ray (outside Lambda
 * neither a handler nor its floor loads the tracer: the floor makes its Powertools with the handlers' own
 * powertools(), src/internal/powertools.ts), network calls.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fmt, median, printSection } from './harness';
import { buildExampleApp } from '../examples/platform/app';
import { LocalAssembly } from '../local/src/assembly';
import { DOMAIN_SPEC_FILE } from '../src/internal/shipped-files';
import type { DomainSpec } from '../src/runtime/domain-spec';

const ROOT = path.join(__dirname, '..');
const WORK = path.join(__dirname, 'results', 'handlers');
const ROUNDS = Number(process.env.BENCH_HANDLER_ROUNDS ?? 11);
const TARGET = 1.3;

interface Subject {
  readonly bundle: string;
  readonly directory: string;
  readonly environment: Record<string, string>;
  /** The first invocation's event, or undefined: module load only. */
  readonly event?: unknown;
  /** What the first invocation is expected to do (checked on every sample). */
  readonly expect: (outcome: string) => boolean;
}

/** Runs in each fresh process: load, then first invocation; prints the timings and what the handler answered. */
const MEASURE = `
const { performance } = require('node:perf_hooks');
const [file, eventJson] = process.argv.slice(1);
const c0 = process.cpuUsage();
const t0 = performance.now();
const mod = require(file);
const t1 = performance.now();
const c1 = process.cpuUsage(c0);
const event = eventJson === '-' ? undefined : JSON.parse(eventJson);
const run = event === undefined ? Promise.resolve('loaded') : Promise.resolve().then(() => mod.handler(event, { functionName: 'bench', getRemainingTimeInMillis: () => 10000 }));
run.then(
  (r) => r === 'loaded' ? 'loaded' : r && r.statusCode ? 'status ' + r.statusCode : 'returned ' + JSON.stringify(r).slice(0, 60),
  (e) => 'threw ' + String(e && e.message || e).slice(0, 80),
).then((outcome) => {
  const t2 = performance.now();
  const c2 = process.cpuUsage(c0);
  const ms = (c) => (c.user + c.system) / 1000;
  process.stdout.write(JSON.stringify({ load: t1 - t0, invoke: t2 - t1, cpuLoad: ms(c1), cpu: ms(c2), outcome }));
});
`;

function bundleCommand(bundle: string): string[] {
  const tasks = JSON.parse(fs.readFileSync(path.join(ROOT, '.projen', 'tasks.json'), 'utf8')).tasks;
  const exec = tasks[`bundle:${bundle}`]?.steps?.[0]?.exec as string | undefined;
  if (!exec) throw new Error(`no bundle task for ${bundle}`);
  return exec.split(' ').filter(Boolean).slice(1);
}

/** Builds with the bundle task's own command (entry and outfile replaced), with a metafile. */
function esbuild(bundle: string, entry: string | undefined, outfile: string): { bytes: number; sdk: string[] } {
  const args = bundleCommand(bundle).map((a) => (a.startsWith('--outfile=') ? `--outfile=${outfile}` : a === `src/${bundle}.ts` && entry ? entry : a));
  const metafile = `${outfile}.meta.json`;
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'esbuild'), [...args, `--metafile=${metafile}`, '--log-level=error'], { cwd: ROOT });
  const meta = JSON.parse(fs.readFileSync(metafile, 'utf8'));
  const output = Object.values(meta.outputs as Record<string, { imports: Array<{ path: string; external?: boolean }> }>)[0];
  const sdk = [...new Set(output.imports.filter((i) => i.external && i.path.startsWith('@aws-sdk/')).map((i) => i.path))].sort();
  return { bytes: fs.statSync(outfile).size, sdk };
}

/**
 * The floor of a handler: the same SDK clients and Powertools utilities, made once, nothing else. The utilities
 * come from the handlers' own powertools() and traced(), so that both load (or skip) the tracer alike.
 */
function floorSource(sdk: string[]): string {
  const imports = sdk.map((m, i) => `import * as sdk${i} from '${m}';`).join('\n');
  return `${imports}
import { powertools, traced } from ${JSON.stringify(path.join(ROOT, 'src', 'internal', 'powertools'))};

const modules: Array<Record<string, unknown>> = [${sdk.map((_, i) => `sdk${i}`).join(', ')}];
let made: unknown[] | undefined;

export const handler = async (): Promise<unknown> => {
  if (!made) {
    const tools = powertools('floor');
    made = [tools];
    for (const m of modules) {
      for (const [name, value] of Object.entries(m)) {
        // One client per client package (DynamoDBClient, EventBridgeClient, ...), traced as the handlers trace theirs.
        if (/^[A-Z][A-Za-z]*Client$/.test(name) && !/Document/.test(name) && typeof value === 'function') {
          made.push(traced(tools, new (value as new (c: object) => never)({})));
        }
      }
    }
  }
  return { statusCode: 200 };
};
`;
}

interface Sample {
  /** Wall-clock milliseconds: load + first invocation. */
  readonly total: number;
  readonly load: number;
  /** CPU milliseconds (user + system) of the process over the same span: less sensitive to a busy machine. */
  readonly cpu: number;
  readonly cpuLoad: number;
  readonly outcome: string;
}

function sample(file: string, subject: Subject): Sample {
  const out = spawnSync(process.execPath, ['-e', MEASURE, file, subject.event === undefined ? '-' : JSON.stringify(subject.event)], {
    encoding: 'utf8',
    cwd: subject.directory,
    env: {
      PATH: process.env.PATH,
      NODE_PATH: path.join(ROOT, 'node_modules'),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      ...subject.environment,
    },
  });
  if (out.status !== 0) throw new Error(`${file}: ${out.stderr}`);
  const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as { load: number; invoke: number; cpuLoad: number; cpu: number; outcome: string };
  return { total: r.load + r.invoke, load: r.load, cpu: r.cpu, cpuLoad: r.cpuLoad, outcome: r.outcome };
}

/** The bundled handlers of the example platform, from its synthesized assembly, with a first event each. */
function subjects(outdir: string): Subject[] {
  const assembly = new LocalAssembly(outdir);
  const byBundle = new Map<string, { directory: string; environment: Record<string, string> }>();
  for (const r of assembly.allResources().filter((x) => x.type === 'AWS::Lambda::Function' && x.properties.Code?.S3Key)) {
    const directory = assembly.assetDirectory(r.properties.Code, r.stack.directory);
    const index = fs.readFileSync(path.join(directory, 'index.js'));
    for (const bundle of fs.readdirSync(path.join(ROOT, 'assets')).flatMap((d) => fs.readdirSync(path.join(ROOT, 'assets', d)).map((b) => `${d}/${b}`))) {
      if (!bundle.endsWith('.lambda') || byBundle.has(bundle)) continue;
      if (!index.equals(fs.readFileSync(path.join(ROOT, 'assets', bundle, 'index.js')))) continue;
      // The command and query handlers of the first domain that has both (observability).
      if (bundle.startsWith('domain/') && JSON.parse(fs.readFileSync(path.join(directory, DOMAIN_SPEC_FILE), 'utf8')).domain !== 'observability') continue;
      const variables = r.stack.resolve(r.properties.Environment?.Variables ?? {}) as Record<string, unknown>;
      const environment = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)]));
      byBundle.set(bundle, { directory, environment });
    }
  }
  const spec = (bundle: string) => JSON.parse(fs.readFileSync(path.join(byBundle.get(bundle)!.directory, DOMAIN_SPEC_FILE), 'utf8')) as DomainSpec;
  const command = spec('domain/command.lambda').commands.find((c) => Array.isArray(c.schema.required) && c.schema.required.length > 0)!;
  const query = spec('domain/query.lambda').queries.find((q) => q.kind === 'get')!;
  const api = (method: string, resource: string, body?: unknown) => ({
    httpMethod: method,
    resource,
    path: resource,
    pathParameters: null,
    queryStringParameters: null,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: { requestId: 'bench-1', httpMethod: method, resourcePath: resource, authorizer: { userId: 'u-1', groups: 'Admin' } },
  });
  const events: Record<string, Pick<Subject, 'event' | 'expect'>> = {
    'domain/command.lambda': { event: api(command.method, command.resource, {}), expect: (o) => o === 'status 400' },
    'domain/query.lambda': { event: api('GET', query.resource), expect: (o) => o === 'status 400' },
    'api/authorizer.lambda': {
      event: { type: 'REQUEST', methodArn: 'arn:aws:execute-api:us-east-1:000000000000:a/development/GET/x', resource: '/x', path: '/x', httpMethod: 'GET', headers: {}, requestContext: { httpMethod: 'GET', resourcePath: '/x' } },
      expect: (o) => o === 'threw Unauthorized',
    },
    'publisher/publisher.lambda': { event: { Records: [] }, expect: (o) => o.startsWith('returned ') },
    'publisher/dead-letter.lambda': { event: { Records: [] }, expect: (o) => o.startsWith('returned ') },
    'publisher/republish.lambda': { event: { bench: true }, expect: (o) => o.startsWith('threw ') && !/Cannot find|ENOENT|declarations are missing/.test(o) },
    'projections/parked-events.lambda': { event: undefined, expect: (o) => o === 'loaded' },
    // Its endpoint, the GraphQL API's URL, is a CloudFormation attribute: not a URL in a synthesized template.
    'graphql/change-publisher.lambda': { event: undefined, expect: (o) => o === 'loaded' },
    // Its input is a custom resource's request: a first call would reach CloudFormation's response URL.
    'projections/backfill.lambda': { event: undefined, expect: (o) => o === 'loaded' },
  };
  return [...byBundle.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([bundle, found]) => {
    // A handler added without a first invocation here fails the bench by name, not with a TypeError.
    if (!events[bundle]) throw new Error(`bench handlers: no first invocation declared for ${bundle}`);
    return { bundle, ...found, ...events[bundle] };
  });
}

export async function runHandlersBench(): Promise<void> {
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  const outdir = path.join(WORK, 'cdk.out');
  buildExampleApp(outdir).synth();
  const rows = [];
  const failures: string[] = [];
  for (const subject of subjects(outdir)) {
    const handler = esbuild(subject.bundle, undefined, path.join(WORK, subject.bundle, 'index.js'));
    const floorEntry = path.join(WORK, `floor-${subject.bundle.replace(/\W/g, '-')}.ts`);
    fs.writeFileSync(floorEntry, floorSource(handler.sdk));
    const floorFile = path.join(WORK, 'floors', subject.bundle, 'index.js');
    const floor = esbuild(subject.bundle, path.relative(ROOT, floorEntry), floorFile);
    const shipped = path.join(subject.directory, 'index.js');
    if (fs.statSync(shipped).size !== handler.bytes) failures.push(`${subject.bundle}: the shipped bundle is not what the bundle task builds now (run npx projen bundle)`);
    const ours: number[] = [];
    const base: number[] = [];
    const oursCpu: number[] = [];
    const baseCpu: number[] = [];
    let outcome = '';
    sample(shipped, subject); // warm the file cache for both
    sample(floorFile, { ...subject, event: subject.event === undefined ? undefined : {} });
    for (let i = 0; i < ROUNDS; i++) {
      const a = sample(shipped, subject);
      const b = sample(floorFile, { ...subject, event: subject.event === undefined ? undefined : {} });
      if (!subject.expect(a.outcome)) failures.push(`${subject.bundle}: first invocation ${a.outcome}`);
      outcome = a.outcome;
      ours.push(subject.event === undefined ? a.load : a.total);
      base.push(subject.event === undefined ? b.load : b.total);
      oursCpu.push(subject.event === undefined ? a.cpuLoad : a.cpu);
      baseCpu.push(subject.event === undefined ? b.cpuLoad : b.cpu);
    }
    const ratio = median(ours) / median(base);
    const cpuRatio = median(oursCpu) / median(baseCpu);
    rows.push({
      name: subject.bundle,
      value: `${String(fs.statSync(shipped).size).padStart(7)} B (floor ${String(floor.bytes).padStart(7)} B)  ${fmt(median(ours)).padStart(6)} ms vs floor ${fmt(median(base)).padStart(6)} ms  ratio ${fmt(ratio, 2)} ${ratio <= TARGET ? '<=' : '> '} ${TARGET}; CPU ${fmt(median(oursCpu))} vs ${fmt(median(baseCpu))} ms, ratio ${fmt(cpuRatio, 2)}  [${subject.event === undefined ? 'load only' : `load + first call: ${outcome}`}; sdk: ${handler.sdk.map((s) => s.replace('@aws-sdk/', '')).join(', ') || 'none'}]`,
    });
  }
  printSection(`Bundled handlers: module load + first invocation, fresh processes (median of ${ROUNDS}), against the floor (same SDK clients and Powertools, nothing else); wall clock, then CPU time`, rows);
  if (failures.length > 0) {
    console.log(`\n  NOT COMPARABLE:\n${[...new Set(failures)].map((f) => `    ${f}`).join('\n')}`);
    process.exitCode = 1;
  }
}
