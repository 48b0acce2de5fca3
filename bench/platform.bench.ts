/**
 * Platform benchmarks:
 *  1. synth time of a platform with 5 and with 50 generated domains (each in its nested stack), as a ratio;
 *  2. the bundled command handler's size and cold module-load time versus an empty handler's, as ratios.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { fmt, median, printSection } from './harness';
import { observability } from '../examples/platform/domains';
import { SkafuPlatform } from '../src';

const SYNTH_ROUNDS = Number(process.env.BENCH_SYNTH_ROUNDS ?? 3);
const LOAD_ROUNDS = Number(process.env.BENCH_LOAD_ROUNDS ?? 15);

function synthPlatform(domains: number): { ms: number; stacks: number; resources: number } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-bench-synth-'));
  const start = performance.now();
  const app = new App({ outdir });
  const stack = new Stack(app, 'Bench', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform');
  for (let i = 0; i < domains; i++) platform.addDomain({ ...observability, name: `domain${i}` });
  const assembly = app.synth();
  const ms = performance.now() - start;
  const templates = fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json'));
  const resources = templates.reduce((n, f) => n + Object.keys(JSON.parse(fs.readFileSync(path.join(outdir, f), 'utf8')).Resources ?? {}).length, 0);
  fs.rmSync(outdir, { recursive: true, force: true });
  void assembly;
  return { ms, stacks: templates.length, resources };
}

/** Milliseconds to load a module in a fresh Node.js process (what a Lambda cold start pays for the module). */
function coldLoad(file: string): number {
  const out = spawnSync(
    process.execPath,
    ['-e', `const t=process.hrtime.bigint();require(${JSON.stringify(file)});console.log(Number(process.hrtime.bigint()-t)/1e6)`],
    { encoding: 'utf8', env: { ...process.env, NODE_PATH: path.join(__dirname, '..', 'node_modules'), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } },
  );
  if (out.status !== 0) throw new Error(`loading ${file} failed: ${out.stderr}`);
  return Number(out.stdout.trim());
}

export async function runPlatformBench(): Promise<void> {
  synthPlatform(1); // warm the module cache
  const small: number[] = [];
  const large: number[] = [];
  let smallInfo = { stacks: 0, resources: 0 };
  let largeInfo = { stacks: 0, resources: 0 };
  for (let i = 0; i < SYNTH_ROUNDS; i++) {
    const s = synthPlatform(5);
    const l = synthPlatform(50);
    small.push(s.ms);
    large.push(l.ms);
    smallInfo = s;
    largeInfo = l;
  }
  printSection(`Synth time of SkafuPlatform with generated domains (median of ${SYNTH_ROUNDS})`, [
    { name: '5 domains', value: `${fmt(median(small))} ms (${smallInfo.stacks} templates, ${smallInfo.resources} resources)` },
    { name: '50 domains', value: `${fmt(median(large))} ms (${largeInfo.stacks} templates, ${largeInfo.resources} resources)` },
    { name: 'ratio 50 / 5 domains', value: fmt(median(large) / median(small), 2) },
  ]);

  const bundle = path.join(__dirname, '..', 'assets', 'domain', 'command.lambda', 'index.js');
  if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run 'npx projen bundle' first`);
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-empty-handler-'));
  const empty = path.join(emptyDir, 'index.js');
  fs.writeFileSync(empty, 'exports.handler = async () => ({ statusCode: 200, body: "{}" });\n');
  const bundleLoads: number[] = [];
  const emptyLoads: number[] = [];
  for (let i = 0; i < LOAD_ROUNDS; i++) {
    bundleLoads.push(coldLoad(bundle));
    emptyLoads.push(coldLoad(empty));
  }
  const bundleBytes = fs.statSync(bundle).size;
  const emptyBytes = fs.statSync(empty).size;
  printSection(`Command handler bundle versus an empty handler (cold module load in a fresh process, median of ${LOAD_ROUNDS})`, [
    { name: 'command handler bundle', value: `${bundleBytes} bytes, loads in ${fmt(median(bundleLoads), 2)} ms` },
    { name: 'empty handler', value: `${emptyBytes} bytes, loads in ${fmt(median(emptyLoads), 2)} ms` },
    { name: 'size ratio', value: fmt(bundleBytes / emptyBytes, 0) },
    { name: 'cold module-load ratio', value: fmt(median(bundleLoads) / median(emptyLoads), 2) },
  ]);
}
