/**
 * Skafu Local as a user runs it: a consumer-shaped CDK app in a temporary directory (two stacks, two
 * stream-enabled tables, the app's own handlers), synthesized to a relative `cdk.out`, and the command the README
 * gives, `npx skafu-local cdk.out --port N`, run in that directory (the installed bin is linked into the app's
 * node_modules/.bin). DynamoDB is the jest run's DynamoDB Local (--dynamodb-endpoint), to save a second JVM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildConsumerApp } from './support/consumer-app';
import { until as waitUntil } from './support/until';
import { freePort } from '../../local/src/dynamodb-local';

const REPO = path.join(__dirname, '..', '..');
const CLI = path.join(REPO, 'local', 'lib', 'cli.js');
let dir: string;
let child: ChildProcess;
let output = '';
let base = '';
let tokens: Record<string, string>;

/** Compiles @skafu/local (local/lib) when it is missing or older than its sources (CI compiles it before the tests). */
function compileLocal(): void {
  const newest = Math.max(...fs.readdirSync(path.join(REPO, 'local', 'src')).map((f) => fs.statSync(path.join(REPO, 'local', 'src', f)).mtimeMs));
  if (fs.existsSync(CLI) && fs.statSync(CLI).mtimeMs >= newest) return;
  const out = spawnSync('npx', ['tsc', '-p', 'local/tsconfig.json'], { cwd: REPO, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`tsc -p local/tsconfig.json failed:\n${out.stdout}${out.stderr}`);
}

async function call(method: string, url: string, options: { as?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(options.as ? { Authorization: `Bearer ${tokens[options.as]}` } : {}), ...(options.headers ?? {}) },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body, headers: response.headers };
}


beforeAll(async () => {
  compileLocal();
  fs.chmodSync(CLI, 0o755);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-consumer-'));
  buildConsumerApp(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'inventory-app', private: true }));
  fs.mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
  fs.symlinkSync(CLI, path.join(dir, 'node_modules', '.bin', 'skafu-local'));
  const port = await freePort();
  child = spawn('npx', ['--no-install', 'skafu-local', 'cdk.out', '--port', String(port), '--dynamodb-endpoint', process.env.SKAFU_TEST_DYNAMODB_ENDPOINT!], {
    cwd: dir,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: npx and the node process it starts are stopped together
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 120_000;
  while (!output.includes('Skafu Local is running')) {
    if (child.exitCode !== null) throw new Error(`skafu-local exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`skafu-local did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  base = /API: (http:\/\/127\.0\.0\.1:\d+\/[^/\s]+)\/api\/v1/.exec(output)![1];
  tokens = JSON.parse(fs.readFileSync(path.join(dir, '.skafu-local', 'tokens.json'), 'utf8'));
}, 240_000);

afterAll(async () => {
  if (child?.pid && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(-child.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
  }
  child?.stdout?.destroy();
  child?.stderr?.destroy();
});

test('start-up: both stacks and both streams, every handler loaded, what is not emulated named', () => {
  expect(output).toMatch(/Assembly: .*cdk\.out \(2 stack\(s\)/);
  expect(output).toMatch(/stream of Inventory-dev-PlatformEventStoreTable\S* -> /);
  expect(output).toMatch(/stream of Edge-dev-Notes\S* -> /);
  expect(output).toMatch(/\d+ function\(s\) loaded\n/);
  expect(output).not.toMatch(/FAILED|Cannot find module|SkafuLocalDefect/);
  expect(output).toMatch(/Not emulated[^\n]*\n(  .*\n)*  AWS::ApiGateway::Stage x2: only its name is used/);
  expect(output).toMatch(/POST   \/api\/v1\/inventory\/items\s+Admin, Developer/);
});

test('a command is accepted and the query converges (stream -> publisher -> bus -> projection)', async () => {
  const added = await call('POST', '/api/v1/inventory/items', { as: 'Developer', body: { sku: 'SKU-1', quantity: 7 } });
  expect(added.status).toBe(201);
  const view = await until(() => call('GET', `/api/v1/inventory/items/${added.body.aggregateId}`, { as: 'Viewer' }), (r) => r.status === 200 && r.body.item?.quantity === 7);
  expect(view.body.item).toMatchObject({ itemId: added.body.aggregateId, sku: 'SKU-1', quantity: 7 });
});

test('the second stack\'s stream table is read too (its own stage, its own handlers)', async () => {
  const edge = base.replace(/\/[^/]+$/, '/edge');
  const written = await fetch(`${edge}/notes`, { method: 'POST', body: JSON.stringify({ id: 'n-1', text: 'hello' }) });
  expect(written.status).toBe(201);
  const read = await until(() => fetch(`${edge}/notes/n-1`).then(async (r) => ({ status: r.status, body: await r.json() })), (r) => r.status === 200);
  expect(read).toEqual({ status: 200, body: { id: 'n-1', text: 'hello' } });
});

test('CORS preflights are answered from the templates\' MOCK integrations', async () => {
  const platform = await call('OPTIONS', '/api/v1/inventory/items', { headers: { 'Origin': 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' } });
  expect(platform.status).toBe(204);
  expect(platform.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
  expect(platform.headers.get('access-control-allow-methods')).toContain('POST');
  const edge = await fetch(`${base.replace(/\/[^/]+$/, '/edge')}/notes`, { method: 'OPTIONS', headers: { 'Origin': 'http://localhost:5173', 'Access-Control-Request-Method': 'POST' } });
  expect(edge.status).toBe(204);
  expect(edge.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
});

test('a handler crash is a 502 and is reported on the console and in errors.log with the correlation id', async () => {
  const crashed = await fetch(`${base.replace(/\/[^/]+$/, '/edge')}/crash`, { method: 'POST', headers: { 'X-Correlation-Id': 'consumer-crash-1' }, body: '{}' });
  expect(crashed.status).toBe(502);
  expect(await crashed.json()).toEqual({ message: 'Internal server error' });
  await until(async () => output, (o) => o.includes('consumer-crash-1'), 5000);
  expect(output).toMatch(/\[HandlerCrash\] POST \/crash -> Edge-dev-Crasher\S*: TypeError: injected crash: cannot read the order \[correlationId consumer-crash-1\]/);
  const logged = fs.readFileSync(path.join(dir, '.skafu-local', 'errors.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(logged).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'HandlerCrash', correlationId: 'consumer-crash-1', message: 'TypeError: injected crash: cannot read the order' })]));
});

test('a careless or hostile client: wrong stage, malformed path, the service endpoints are not on the API port', async () => {
  const wrongStage = await fetch(`${base.replace(/\/[^/]+$/, '/not-a-stage')}/api/v1/inventory/items/x`, { headers: { Authorization: `Bearer ${tokens.Viewer}` } });
  // Not a stage: API Gateway's MISSING_AUTHENTICATION_TOKEN, which SkafuApi's gateway response makes a 404 NotFound.
  expect([wrongStage.status, ((await wrongStage.json()) as { error?: string }).error]).toEqual([404, 'NotFound']);
  const malformed = await call('GET', '/api/v1/inventory/items/%E0%A4%A', { as: 'Viewer' });
  expect(malformed.status).toBe(400);
  expect(malformed.body.message).toMatch(/Malformed percent-encoding/);
  const origin = base.replace(/\/[^/]+$/, '');
  for (const p of ['/aws/events', '/aws/sqs', '/events', '/.well-known/jwks.json']) {
    const forged = await fetch(`${origin}${p}`, { method: 'POST', headers: { 'X-Amz-Target': 'AWSEvents.PutEvents' }, body: JSON.stringify({ Entries: [{ Source: 'skafu.inventory', DetailType: 'ItemAdded', Detail: '{}' }] }) });
    // Not a route of the API (the service endpoints are on another port): the API's 404 NotFound.
    expect([forged.status, ((await forged.json()) as { error?: string }).error]).toEqual([404, 'NotFound']);
  }
});

test('a recorded scenario runs against any base URL with the tokens supplied (here: the running Skafu Local)', async () => {
  const scenario = {
    name: 'inventory',
    steps: [
      { name: 'add', request: { method: 'POST', path: '/api/v1/inventory/items', as: 'Admin', body: { sku: 'SKU-${run}', quantity: 3 } }, expect: { status: 201 }, save: { id: 'body.aggregateId' } },
      { name: 'visible', request: { method: 'GET', path: '/api/v1/inventory/items/${id}', as: 'Viewer' }, until: { 'body.item.quantity': 3, 'body.item.sku': { matches: '^SKU-' } } },
      { name: 'refused', request: { method: 'POST', path: '/api/v1/inventory/items', as: 'Viewer', body: { sku: 'x', quantity: 1 } }, expect: { status: 403 } },
      { name: 'a step that must fail', request: { method: 'GET', path: '/api/v1/inventory/items/${id}', as: 'Viewer' }, expect: { status: 200, body: { 'item.quantity': 4 } } },
    ],
  };
  fs.writeFileSync(path.join(dir, 'inventory.json'), JSON.stringify(scenario));
  const run = spawnSync('npx', ['--no-install', 'skafu-local', '--scenario', 'inventory.json', '--base-url', base, '--tokens', '.skafu-local/tokens.json'], { cwd: dir, encoding: 'utf8' });
  expect(run.stdout).toMatch(/^ok {3}add: 201/m);
  expect(run.stdout).toMatch(/^ok {3}visible: 200/m);
  expect(run.stdout).toMatch(/^ok {3}refused: 403/m);
  expect(run.stdout).toMatch(/^FAIL a step that must fail: body\.item\.quantity is 3, expected 4/m);
  expect(run.stdout).toMatch(/scenario: 3 passed, 1 failed/);
  expect(run.status).toBe(1);
});

test('--help documents every option the command accepts', () => {
  const help = spawnSync('npx', ['--no-install', 'skafu-local', '--help'], { cwd: dir, encoding: 'utf8' });
  expect(help.status).toBe(0);
  const source = fs.readFileSync(path.join(REPO, 'local', 'src', 'cli.ts'), 'utf8');
  const accepted = [...source.matchAll(/'(--[a-z-]+)'/g)].map((m) => m[1]);
  expect(accepted.length).toBeGreaterThan(8);
  for (const option of new Set(accepted)) expect(help.stdout).toContain(option);
  expect(help.stdout).toMatch(/Node\.js 22 or later/);
  const unknown = spawnSync('npx', ['--no-install', 'skafu-local', '--prot', '3000'], { cwd: dir, encoding: 'utf8' });
  expect(unknown.status).toBe(1);
  expect(unknown.stderr).toContain('unknown option --prot (see --help)');
});

/** Its own pace: 30 s at most, every 150 ms. */
function until<T>(probe: () => Promise<T>, ready: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  return waitUntil(probe, ready, timeoutMs, 150);
}
