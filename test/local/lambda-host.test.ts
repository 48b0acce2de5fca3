/**
 * The Lambda host: real worker threads running handler files. Handlers that cannot load are reported at start
 * with the reason; a handler's error reaches the caller as Lambda reports it (type, message, trace); a runtime
 * that dies fails its invocations in flight and the next invocation gets a new one; a timeout is a timeout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LambdaHost, LambdaInvocationError, type LocalFunction } from '../../local/src/lambda-host';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-lambda-host-'));
const write = (name: string, code: string) => {
  fs.mkdirSync(path.join(dir, name), { recursive: true });
  fs.writeFileSync(path.join(dir, name, 'index.js'), code);
};
write('ok', 'let calls = 0; exports.handler = async (event, context) => ({ echo: event, calls: ++calls, env: process.env.GREETING, name: context.functionName });');
write('throws', 'exports.handler = async () => { const e = new RangeError(\'the order is too large\'); throw e; };');
write('bad-load', 'throw new Error(\'cannot read the configuration\');');
write('no-export', 'exports.other = () => 1;');
write('dies', 'exports.handler = async (event) => { if (event.die) setImmediate(() => { throw new Error(\'boom outside the handler\'); }); await new Promise((r) => setTimeout(r, 200)); return \'alive\'; };');
write('slow', 'exports.handler = () => new Promise((r) => setTimeout(r, 5000));');
const fn = (name: string, extra: Partial<LocalFunction> = {}): LocalFunction => ({
  name: `fn-${name}`,
  arn: `arn:aws:lambda:us-east-1:000000000000:function:fn-${name}`,
  resource: `Stack/${name}`,
  directory: path.join(dir, name),
  handler: 'index.handler',
  environment: { GREETING: 'hello' },
  timeoutSeconds: 3,
  memorySize: 128,
  description: name,
  ...extra,
});

let host: LambdaHost;
beforeAll(() => {
  host = new LambdaHost({}, path.join(dir, 'logs'));
  for (const name of ['ok', 'throws', 'bad-load', 'no-export', 'dies']) host.register(fn(name));
  host.register(fn('missing', { directory: path.join(dir, 'not-there') }));
  host.register(fn('slow', { timeoutSeconds: 1 }));
});
afterAll(() => host.stop());

test('every handler is loaded at start; those that cannot load are named with the reason', async () => {
  const failures = await host.loadAll();
  expect(Object.fromEntries(failures.map((f) => [f.function.resource, f.reason]))).toEqual({
    'Stack/bad-load': 'Error: cannot read the configuration',
    'Stack/no-export': expect.stringMatching(/^Runtime\.HandlerNotFound: .*no-export\/index\.js exports no function 'handler'/),
    'Stack/missing': expect.stringMatching(/^Runtime\.ImportModuleError: Cannot find module '.*not-there\/index\.js'/),
  });
  await expect(host.invoke('fn-bad-load', {})).rejects.toThrow(/fn-bad-load could not be loaded: Error: cannot read the configuration/);
});

test('invocations by name or ARN, with the template environment and a Lambda context; JSON in, JSON out', async () => {
  const out = (await host.invoke('arn:aws:lambda:us-east-1:000000000000:function:fn-ok', { a: 1, when: new Date(0), skip: undefined })) as Record<string, unknown>;
  expect(out).toEqual({ echo: { a: 1, when: '1970-01-01T00:00:00.000Z' }, calls: expect.any(Number), env: 'hello', name: 'fn-ok' });
  await expect(host.invoke('fn-unknown', {})).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
});

test('a handler error reaches the caller with its type, message and trace', async () => {
  const err = (await host.invoke('fn-throws', {}).catch((e: unknown) => e)) as LambdaInvocationError;
  expect(err).toBeInstanceOf(LambdaInvocationError);
  expect(err).toMatchObject({ name: 'RangeError', message: 'the order is too large', functionName: 'fn-throws' });
  expect(err.trace.join('\n')).toContain(path.join(dir, 'throws', 'index.js'));
});

test('a runtime that dies fails the invocations in flight; the next invocation gets a new runtime', async () => {
  const dying = host.invoke('fn-dies', { die: true });
  await expect(dying).rejects.toMatchObject({ name: 'Runtime.ExitError', message: expect.stringContaining('boom outside the handler') });
  await expect(host.invoke('fn-dies', {})).resolves.toBe('alive');
});

test('a handler that runs past its timeout is a Sandbox.Timedout error', async () => {
  await expect(host.invoke('fn-slow', {})).rejects.toMatchObject({ name: 'Sandbox.Timedout', message: 'fn-slow timed out after 1 s' });
});
