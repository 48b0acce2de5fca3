/**
 * Bundle budgets: every handler bundle, built with exactly the esbuild command projen's bundle task runs
 * (.projen/tasks.json, with a metafile), stays within its budget, keeps `@aws-sdk/*` external (the Lambda runtime
 * provides it), carries the Powertools logger, tracer and metrics, and carries no JSON Schema compiler (schemas are
 * compiled at synth; see src/internal/schema-compiler.ts). The shipped assets/ bundles are held to the same budgets.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');
const KB = 1024;
/** The command handler carries the compiled validators' runtime and the rules engine; the others less. */
const BUDGETS: Record<string, number> = { 'domain/command.lambda': 200 * KB };
const DEFAULT_BUDGET = 175 * KB;

interface Metafile {
  inputs: Record<string, { bytes: number }>;
  outputs: Record<string, {
    bytes: number;
    inputs: Record<string, { bytesInOutput: number }>;
    imports: Array<{ path: string; kind: string; external?: boolean }>;
  }>;
}

const tasks = JSON.parse(fs.readFileSync(path.join(ROOT, '.projen', 'tasks.json'), 'utf8')).tasks as Record<string, { steps?: Array<{ exec?: string }> }>;
const bundleTasks = Object.entries(tasks)
  .filter(([name]) => /^bundle:.*\.lambda$/.test(name))
  .map(([name, task]) => ({ bundle: name.slice('bundle:'.length), command: task.steps?.[0]?.exec ?? '' }));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-budget-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Runs the task's own esbuild command, writing to a scratch file with a metafile. */
function build(bundle: string, command: string): { bytes: number; meta: Metafile } {
  const args = command.split(' ').filter(Boolean);
  expect(args[0]).toBe('esbuild');
  const outfile = path.join(work, bundle, 'index.js');
  const metafile = path.join(work, bundle, 'meta.json');
  const rewritten = args.slice(1).map((a) => (a.startsWith('--outfile=') ? `--outfile=${outfile}` : a));
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'esbuild'), [...rewritten, `--metafile=${metafile}`, '--log-level=error'], { cwd: ROOT });
  return { bytes: fs.statSync(outfile).size, meta: JSON.parse(fs.readFileSync(metafile, 'utf8')) as Metafile };
}

test('every handler has a bundle task that minifies with @aws-sdk/* external', () => {
  expect(bundleTasks.map((b) => b.bundle).sort()).toEqual([
    'api/authorizer.lambda',
    'domain/command.lambda',
    'domain/query.lambda',
    'graphql/change-publisher.lambda',
    'projections/backfill.lambda',
    'projections/parked-events.lambda',
    'publisher/dead-letter.lambda',
    'publisher/publisher.lambda',
    'publisher/republish.lambda',
  ]);
  for (const { command } of bundleTasks) {
    expect(command).toContain('--minify');
    expect(command).toContain('--external:@aws-sdk/*');
  }
});

describe.each(bundleTasks)('$bundle', ({ bundle, command }) => {
  const budget = BUDGETS[bundle] ?? DEFAULT_BUDGET;
  let built: { bytes: number; meta: Metafile };
  beforeAll(() => {
    built = build(bundle, command);
  });
  const inputs = () => Object.keys(built.meta.inputs);
  const packages = () => new Set(inputs().map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1]).filter((p): p is string => !!p));

  test(`is at most ${budget / KB} KB minified (and so is the shipped asset)`, () => {
    expect(built.bytes).toBeLessThanOrEqual(budget);
    const shipped = path.join(ROOT, 'assets', bundle, 'index.js');
    if (fs.existsSync(shipped)) expect(fs.statSync(shipped).size).toBeLessThanOrEqual(budget);
  });

  test('keeps the AWS SDK external and bundles the Powertools logger, tracer and metrics', () => {
    expect([...packages()].filter((p) => p.startsWith('@aws-sdk/'))).toEqual([]);
    const output = Object.values(built.meta.outputs)[0];
    expect(output.imports.filter((i) => i.path.startsWith('@aws-sdk/')).every((i) => i.external)).toBe(true);
    for (const p of ['@aws-lambda-powertools/logger', '@aws-lambda-powertools/tracer', '@aws-lambda-powertools/metrics']) expect(packages()).toContain(p);
  });

  test('carries no JSON Schema compiler, and semver only as its 1 KB stand-in', () => {
    const ajv = inputs().filter((f) => f.includes('node_modules/ajv/') || f.includes('node_modules/ajv-formats/'));
    // Only the runtime helpers compiled validators require (command handler only).
    const allowed = /node_modules\/(ajv\/dist\/runtime\/(equal|ucs2length)\.js|ajv-formats\/dist\/formats\.js)$/;
    expect(ajv.filter((f) => !allowed.test(f))).toEqual([]);
    if (bundle !== 'domain/command.lambda') expect(ajv).toEqual([]);
    expect(packages()).not.toContain('fast-uri');
    expect(packages()).not.toContain('semver');
  });
});
