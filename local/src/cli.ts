#!/usr/bin/env node
/**
 * skafu-local [cdk.out] [--port N] [--work-dir DIR]
 *
 * Runs the Skafu resources of a synthesized cloud assembly on this machine (see the README), prints the routes
 * and writes a token per demo user, and serves until interrupted.
 */
import { SkafuLocal } from './skafu-local';

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  const option = (name: string) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const [, value] = args.splice(i, 2);
    if (value === undefined) throw new Error(`${name} needs a value`);
    return value;
  };
  if (args.includes('--help') || args.includes('-h')) {
    console.log('usage: skafu-local [cdk.out] [--port N] [--work-dir DIR]');
    return;
  }
  const port = option('--port');
  const workDirectory = option('--work-dir');
  const assembly = args[0] ?? 'cdk.out';
  const local = new SkafuLocal({ assembly, port: port ? Number(port) : 3000, workDirectory });
  await local.start();
  console.log('Skafu Local is running; Ctrl-C stops it.');
  const stop = () => {
    console.log('stopping...');
    void local.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`skafu-local: ${(err as Error).message}`);
  process.exit(1);
});
