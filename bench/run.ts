/**
 * `npx projen bench [name...]`: runs the benchmarks (all, or those named). Each prints its figures and its
 * ratios against a baseline measured in the same run. Not a test: nothing here passes or fails on speed.
 */
import { runEventStoreBench } from './event-store.bench';
import { runHandlersBench } from './handlers.bench';
import { runLocalBench } from './local.bench';
import { runCapacityBench } from './operations.bench';
import { runPlatformBench } from './platform.bench';
import { runRebuildBench } from './rebuild.bench';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const benches: Record<string, () => Promise<void>> = {
  'event-store': runEventStoreBench,
  'handlers': runHandlersBench,
  'platform': runPlatformBench,
  'local': runLocalBench,
  'rebuild': runRebuildBench,
  'capacity': runCapacityBench,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !(w in benches));
  if (unknown.length > 0) {
    throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  }
  console.log(`# Skafu benchmarks (${new Date().toISOString()}, node ${process.version})`);
  for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) {
    await benches[name]();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
