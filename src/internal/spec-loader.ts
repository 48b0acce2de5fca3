/**
 * Handler side: reads the declarations shipped in the function's own code asset (next to its `index.js`, see
 * shipped-files.ts): the domain spec, the commands' validators compiled at synth, the authorizer's route table.
 * Read once per cold start; a missing or broken file throws, so the function fails to initialise (Lambda reports
 * Runtime.ImportModuleError / an init error, Skafu Local refuses to load it) instead of answering wrongly.
 */
import * as fs from 'node:fs';
import { wrap } from 'node:module';
import * as path from 'node:path';
import { runInThisContext } from 'node:vm';
import { DOMAIN_SPEC_FILE, ROUTES_FILE, VALIDATORS_FILE, type VALIDATOR_RUNTIME_MODULES } from './shipped-files';
import type { DomainSpec } from '../runtime/domain-spec';
import type { RouteGroups } from '../runtime/routes';

/** One Ajv error, as compiled validators report them. */
export interface SchemaError {
  readonly instancePath: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

/** A compiled validator: true when the data matches; otherwise `errors` holds why. */
export interface CompiledValidator {
  (data: unknown): boolean;
  errors?: SchemaError[] | null;
}

/** The directory of the bundled handler (its code asset: `/var/task` on Lambda, `cdk.out/asset.*` locally). */
export const HANDLER_DIRECTORY = __dirname;

export function loadDomainSpec(directory: string = HANDLER_DIRECTORY): DomainSpec {
  return JSON.parse(readShipped(directory, DOMAIN_SPEC_FILE)) as DomainSpec;
}

export function loadRouteTable(directory: string = HANDLER_DIRECTORY): RouteGroups {
  return JSON.parse(readShipped(directory, ROUTES_FILE)) as RouteGroups;
}

/**
 * The modules compiled validators require (Ajv's runtime helpers), as the command handler bundles them
 * (validator-runtime.ts): passed in, so that handlers without validators do not bundle them.
 */
export type ValidatorRuntime = Record<(typeof VALIDATOR_RUNTIME_MODULES)[number], unknown>;

/** The validators compiled at synth, by command name. */
export function loadValidators(runtime: ValidatorRuntime, directory: string = HANDLER_DIRECTORY): Record<string, CompiledValidator> {
  const file = path.join(directory, VALIDATORS_FILE);
  return validatorsFromSource(readShipped(directory, VALIDATORS_FILE), file, runtime);
}

/**
 * Runs the compiled validators' module (CommonJS, as Ajv's standalone code writes it) with a `require` that
 * resolves only the given runtime helpers: the asset has no node_modules.
 */
export function validatorsFromSource(source: string, filename: string, runtime: ValidatorRuntime): Record<string, CompiledValidator> {
  const module = { exports: {} as Record<string, CompiledValidator> };
  const require = (id: string): unknown => {
    if (!Object.prototype.hasOwnProperty.call(runtime, id)) throw new Error(`${filename} requires '${id}', which the handler does not bundle`);
    return runtime[id as keyof ValidatorRuntime];
  };
  const fn = runInThisContext(wrap(source), { filename }) as (e: unknown, r: unknown, m: unknown, f: string, d: string) => void;
  fn(module.exports, require, module, filename, path.dirname(filename));
  return module.exports;
}

function readShipped(directory: string, name: string): string {
  const file = path.join(directory, name);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`the handler's declarations are missing: ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the function's code asset must be the one EventSourcedDomain or SkafuApi synthesized`);
  }
}
