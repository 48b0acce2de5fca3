/**
 * What a synthesized function ships in its code asset (the domain spec, the compiled validators, the route
 * table), read from the cloud assembly the way Lambda and Skafu Local get it: the asset directory named by the
 * function's S3Key.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Stack } from 'aws-cdk-lib';
import { Stage } from 'aws-cdk-lib';
import { DOMAIN_SPEC_FILE, ROUTES_FILE } from '../../src/internal/shipped-files';
import { compileValidators } from '../../src/internal/spec-asset';
import { loadDomainSpec, loadValidators, validatorsFromSource, type CompiledValidator } from '../../src/internal/spec-loader';
import { VALIDATOR_RUNTIME } from '../../src/internal/validator-runtime';
import type { DomainSpec } from '../../src/runtime';
import type { RouteGroups } from '../../src/runtime/routes';

/** The asset directory of a function resource of a template, in the assembly at `outdir`. */
export function assetDirectory(outdir: string, fn: { Properties?: any }): string {
  const key = fn.Properties?.Code?.S3Key;
  if (typeof key !== 'string') throw new Error(`not a function with an asset: ${JSON.stringify(fn.Properties?.Code)}`);
  const dir = path.join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
  if (!fs.existsSync(dir)) throw new Error(`${dir} is not in the assembly`);
  return dir;
}

/** The assembly directory of a stack's app (synthesized). */
export function outdirOf(stack: Stack): string {
  return Stage.of(stack)!.assetOutdir;
}

export function shipsDomainSpec(outdir: string, fn: { Properties?: any }): boolean {
  const key = fn.Properties?.Code?.S3Key;
  return typeof key === 'string' && fs.existsSync(path.join(outdir, `asset.${key.replace(/\.zip$/, '')}`, DOMAIN_SPEC_FILE));
}

export function shippedDomainSpec(outdir: string, fn: { Properties?: any }): DomainSpec {
  return loadDomainSpec(assetDirectory(outdir, fn));
}

export function shippedValidators(outdir: string, fn: { Properties?: any }): Record<string, CompiledValidator> {
  return loadValidators(VALIDATOR_RUNTIME, assetDirectory(outdir, fn));
}

export function shippedRoutes(outdir: string, fn: { Properties?: any }): RouteGroups {
  return JSON.parse(fs.readFileSync(path.join(assetDirectory(outdir, fn), ROUTES_FILE), 'utf8')) as RouteGroups;
}

/** Every function of the templates (by file name) that ships a domain spec, with it. */
export function shippedDomains(outdir: string, templates: Record<string, any>): Array<{ fn: any; spec: DomainSpec; dir: string }> {
  const out: Array<{ fn: any; spec: DomainSpec; dir: string }> = [];
  for (const template of Object.values(templates)) {
    for (const resource of Object.values(template.Resources ?? {}) as any[]) {
      if (resource.Type === 'AWS::Lambda::Function' && shipsDomainSpec(outdir, resource)) {
        out.push({ fn: resource, spec: shippedDomainSpec(outdir, resource), dir: assetDirectory(outdir, resource) });
      }
    }
  }
  return out;
}

/** A hand-written spec's validators, compiled and loaded as a synth and a cold start would. */
export function validatorsFor(spec: DomainSpec): Record<string, CompiledValidator> {
  const source = compileValidators(spec.commands.map((c) => ({ name: c.name, schema: c.schema })));
  return validatorsFromSource(source, `${spec.domain}-validators.js`, VALIDATOR_RUNTIME);
}

/**
 * Lets the code assets of an assembly outside the repository resolve `@aws-sdk/*` (external to the bundles):
 * on Lambda the runtime provides the SDK; here the repository's node_modules stand in for it, linked into the
 * assembly directory (Node resolves upwards from each asset directory).
 */
export function provideRuntimeSdk(outdir: string): void {
  const link = path.join(outdir, 'node_modules');
  if (!fs.existsSync(link)) fs.symlinkSync(path.join(__dirname, '..', '..', 'node_modules'), link, 'dir');
}
