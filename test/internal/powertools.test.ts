/**
 * The handlers load the Powertools tracer (and the X-Ray SDK under it, whose continuation-local storage puts an
 * async hook on every promise) only where tracing may be on, and there at load (Lambda's init phase); in Lambda
 * the tracer traces and the clients carry X-Ray's middleware.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { powertools, traced, tracingMayBeOn } from '../../src/internal/powertools';

const ROOT = path.join(__dirname, '..', '..');
const LAMBDA = { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x' };
/** This process's environment without what decides tracing, or configures a handler. */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(POWERTOOLS_|AWS_EXECUTION_ENV|_X_AMZN|SKAFU_)/.test(k)));

describe('tracingMayBeOn', () => {
  test.each([
    [{ ...LAMBDA }, true],
    [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'true' }, true],
    // Anything but "false" leaves the decision to the tracer, as its own setTracingEnabled does.
    [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'no' }, true],
    [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' }, false],
    [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'FALSE' }, false],
    [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: ' False ' }, false],
    // Not in Lambda: the tracer turns itself off.
    [{}, false],
    [{ AWS_EXECUTION_ENV: '' }, false],
    [{ AWS_EXECUTION_ENV: '  ' }, false],
  ])('%j -> %s', (env, expected) => {
    expect(tracingMayBeOn(env)).toBe(expected);
  });
});

describe('powertools', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });
  // The X-Ray SDK's middleware, which captureAWSv3Client adds to a client's stack.
  const middleware = (client: DynamoDBClient) => client.middlewareStack.identify().filter((m) => /xray/i.test(m));

  test('with tracing off: no tracer, and traced() hands the client back untouched', () => {
    process.env = { ...saved, ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' };
    const tools = powertools('test');
    expect(tools.tracer).toBeUndefined();
    const client = new DynamoDBClient({ region: 'us-east-1' });
    expect(traced(tools, client)).toBe(client);
    expect(middleware(client)).toEqual([]);
  });

  // In a process of its own: loading the X-Ray SDK leaves its async hook in the process, which would outlive this
  // file in Jest's worker. The same source, bundled by esbuild as the handlers are.
  test('in Lambda: a tracer that traces, and traced() puts X-Ray on the client', () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-powertools-'));
    try {
      const entry = path.join(work, 'entry.ts');
      fs.writeFileSync(entry, `
        import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
        import { powertools, traced } from ${JSON.stringify(path.join(ROOT, 'src', 'internal', 'powertools'))};
        const tools = powertools('test');
        const client = traced(tools, new DynamoDBClient({ region: 'us-east-1' }));
        process.stdout.write(JSON.stringify({
          tracing: tools.tracer?.isTracingEnabled() ?? null,
          xray: client.middlewareStack.identify().filter((m) => /xray/i.test(m)).length,
        }));`);
      const out = path.join(work, 'entry.js');
      const esbuild = path.join(ROOT, 'node_modules', '.bin', 'esbuild');
      const args = ['--bundle', entry, '--platform=node', '--target=node20', `--outfile=${out}`, '--external:@aws-sdk/*', '--log-level=error'];
      execFileSync(esbuild, args, { cwd: ROOT });
      // The AWS SDK is external, as in the handlers: found in this repository's node_modules.
      const base = { ...cleanEnv(), NODE_PATH: path.join(ROOT, 'node_modules'), AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR' };
      const run = (env: Record<string, string>) =>
        JSON.parse(execFileSync(process.execPath, [out], { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env } }));
      expect(run({ ...LAMBDA })).toEqual({ tracing: true, xray: expect.any(Number) });
      expect(run({ ...LAMBDA }).xray).toBeGreaterThan(0);
      expect(run({ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' })).toEqual({ tracing: null, xray: 0 });
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

// The shipped bundle (assets/, built by `npx projen bundle`), loaded and invoked once in a process of its own:
// how many async hooks it has created after loading, and after its first invocation (which makes its
// Powertools first, then stops at its missing declarations). The X-Ray SDK creates its namespace's hook when it
// is loaded.
describe('the shipped query handler', () => {
  const bundle = path.join(ROOT, 'assets', 'domain', 'query.lambda', 'index.js');
  const hooks = (env: Record<string, string>): { atLoad: number; afterInvocation: number; error: string } => {
    const script = `
      const hooks = require('node:async_hooks');
      const create = hooks.createHook;
      let created = 0;
      hooks.createHook = (...args) => { created++; return create(...args); };
      const { handler } = require(${JSON.stringify(bundle)});
      const atLoad = created;
      handler({ httpMethod: 'GET', path: '/', headers: {}, requestContext: {} }, { awsRequestId: 'r', getRemainingTimeInMillis: () => 1000 })
        .then(() => '', (err) => String(err && err.message))
        .then((error) => process.stdout.write(JSON.stringify({ atLoad, afterInvocation: created, error })));`;
    const out = execFileSync(process.execPath, ['-e', script], {
      env: { ...cleanEnv(), AWS_REGION: 'us-east-1', AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR', ...env },
      cwd: ROOT,
      encoding: 'utf8',
    });
    return JSON.parse(out.trim().split('\n').pop()!);
  };

  beforeAll(() => {
    if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npx projen bundle\` first`);
  });

  test('creates no async hook with tracing off, in Lambda or outside it', () => {
    for (const env of [{ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' }, {}]) {
      const seen = hooks(env);
      // The invocation went past making its Powertools: it stopped at the declarations it was not given.
      expect(seen.error).toMatch(/declarations/);
      expect([seen.atLoad, seen.afterInvocation]).toEqual([0, 0]);
    }
  });

  test('in Lambda, loads the tracer (and its hook) at load, i.e. during the init phase', () => {
    const seen = hooks({ ...LAMBDA });
    expect(seen.atLoad).toBeGreaterThan(0);
    expect(seen.afterInvocation).toBe(seen.atLoad);
  });
});
