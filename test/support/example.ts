/** The example platform, synthesized once per test file, and what its templates hold. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { buildExampleApp } from '../../examples/platform/app';
import { decodeDomainSpec, type DomainSpec } from '../../src/runtime';

export interface ExampleAssembly {
  readonly assembly: CloudAssembly;
  /** Every template of the assembly (nested ones included), by file name. */
  readonly templates: Record<string, any>;
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
  cached = { assembly, templates };
  return cached;
}

/** The domain spec the bundled handlers of a domain get (decoded from their environment in the template). */
export function exampleDomainSpec(domain: string): DomainSpec {
  for (const template of Object.values(synthExample().templates)) {
    for (const resource of Object.values(template.Resources ?? {}) as any[]) {
      const encoded = resource.Type === 'AWS::Lambda::Function' ? resource.Properties?.Environment?.Variables?.SKAFU_DOMAIN_SPEC : undefined;
      if (typeof encoded === 'string') {
        const spec = decodeDomainSpec(encoded);
        if (spec.domain === domain) return spec;
      }
    }
  }
  throw new Error(`no handler of domain ${domain} in the example templates`);
}
