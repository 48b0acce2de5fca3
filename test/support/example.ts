/** The example platform, synthesized once per test file, and what its templates hold. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { shippedDomains, shippedValidators } from './shipped';
import { buildExampleApp } from '../../examples/platform/app';
import type { CompiledValidator } from '../../src/internal/spec-loader';
import type { DomainSpec } from '../../src/runtime';

export interface ExampleAssembly {
  readonly assembly: CloudAssembly;
  /** Every template of the assembly (nested ones included), by file name. */
  readonly templates: Record<string, any>;
  /** The assembly directory. */
  readonly outdir: string;
}

let cached: ExampleAssembly | undefined;

export function synthExample(): ExampleAssembly {
  if (cached) return cached;
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-example-'));
  const assembly = buildExampleApp(outdir).synth();
  const templates: Record<string, any> = {};
  for (const file of fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json'))) {
    templates[file] = JSON.parse(fs.readFileSync(path.join(outdir, file), 'utf8'));
  }
  cached = { assembly, templates, outdir };
  return cached;
}

/** The domain spec a domain's bundled command handler ships (its query handler ships the same). */
export function exampleDomainSpec(domain: string): DomainSpec {
  const { outdir, templates } = synthExample();
  const found = shippedDomains(outdir, templates).find((d) => d.spec.domain === domain);
  if (!found) throw new Error(`no handler of domain ${domain} in the example templates`);
  return found.spec;
}

/** The spec and the compiled validators a domain's bundled command handler ships in its code asset. */
export function exampleDomain(domain: string): { spec: DomainSpec; validators: Record<string, CompiledValidator> } {
  const { outdir, templates } = synthExample();
  const found = shippedDomains(outdir, templates).find((d) => d.spec.domain === domain && d.fn.Properties.Description?.includes('command handler'));
  if (!found) throw new Error(`no command handler of domain ${domain} in the example templates`);
  return { spec: found.spec, validators: shippedValidators(outdir, found.fn) };
}
