/**
 * The handlers load the Powertools tracer (and the X-Ray SDK under it, whose continuation-local storage puts an
 * async hook on every promise) only where tracing may be on; where Powertools would trace, they still trace.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { powertools, traced, tracingMayBeOn } from '../../src/internal/powertools';

const LAMBDA = { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x' };

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

describe('powertools with tracing off', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  test('has no tracer, and traced() hands the client back untouched', () => {
    process.env = { ...saved, ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' };
    const tools = powertools('test');
    expect(tools.tracer).toBeUndefined();
    const client = { send: () => undefined };
    expect(traced(tools, client)).toBe(client);
  });
});

// The shipped bundle (assets/, built by `npx projen bundle`), loaded and invoked once in a process of its own:
// how many async hooks it creates. The X-Ray SDK creates its namespace's hook when it is loaded.
describe('the shipped query handler', () => {
  const bundle = path.join(__dirname, '..', '..', 'assets', 'domain', 'query.lambda', 'index.js');
  const hooksAfterFirstInvocation = (env: Record<string, string>): number => {
    const script = `
      const hooks = require('node:async_hooks');
      const create = hooks.createHook;
      let created = 0;
      hooks.createHook = (...args) => { created++; return create(...args); };
      const { handler } = require(${JSON.stringify(bundle)});
      handler({ httpMethod: 'GET', path: '/', headers: {}, requestContext: {} }, { awsRequestId: 'r', getRemainingTimeInMillis: () => 1000 })
        .catch(() => undefined)
        .finally(() => process.stdout.write(String(created)));`;
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(POWERTOOLS_|AWS_EXECUTION_ENV|_X_AMZN)/.test(k)));
    const out = execFileSync(process.execPath, ['-e', script], {
      env: { ...clean, AWS_REGION: 'us-east-1', AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR', ...env },
      cwd: path.join(__dirname, '..', '..'),
      encoding: 'utf8',
    });
    return Number(out.trim().split('\n').pop());
  };

  beforeAll(() => {
    if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npx projen bundle\` first`);
  });

  test('creates no async hook with tracing off', () => {
    expect(hooksAfterFirstInvocation({ ...LAMBDA, POWERTOOLS_TRACE_ENABLED: 'false' })).toBe(0);
    expect(hooksAfterFirstInvocation({})).toBe(0);
  });

  test('loads the tracer, and its hook, where tracing may be on', () => {
    expect(hooksAfterFirstInvocation({ ...LAMBDA })).toBeGreaterThan(0);
  });
});
