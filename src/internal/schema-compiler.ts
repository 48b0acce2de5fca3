/**
 * Synth side: compiles the commands' JSON Schemas to validation code (Ajv standalone code), so that no handler
 * compiles a schema at cold start and no handler bundle carries Ajv's compiler. Bundled by esbuild into
 * assets/internal/schema-compiler (Ajv stays a devDependency, like every handler-only library) and loaded by
 * spec-asset.ts when a domain synthesizes; never imported by the jsii entry point.
 *
 * The options are the ones the handler used when it compiled at start (draft-07 Ajv with ajv-formats, all errors,
 * no coercion, no defaults, strict off), so a body gets the same verdict and the same error objects as before.
 */
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone';
import addFormats from 'ajv-formats';
import { refusePrototypeKeys } from './prototype-keys';
import { VALIDATOR_RUNTIME_MODULES } from './shipped-files';

/** One schema to compile, exported under `name`. */
export interface NamedSchema {
  readonly name: string;
  readonly schema: Record<string, unknown>;
}

/**
 * A CommonJS module exporting one validate function per name. Throws, naming the schema, when a schema does not
 * compile, holds a `__proto__` key anywhere (the standalone code would turn it into a prototype), or when its code
 * would need a runtime module the handlers do not bundle ($async schemas, $dynamicRef).
 */
export function compileValidators(schemas: readonly NamedSchema[]): string {
  const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false, code: { source: true } });
  addFormats(ajv);
  const refs: Record<string, string> = {};
  for (const { name, schema } of schemas) {
    refusePrototypeKeys(name, schema);
    const key = `skafu:${name}`;
    try {
      ajv.addSchema(schema, key);
      ajv.getSchema(key); // compiles now, so that an error names this schema
    } catch (err) {
      throw new Error(`the JSON Schema of ${name} does not compile: ${(err as Error).message}`);
    }
    refs[name] = key;
  }
  const code = standaloneCode(ajv, refs);
  const allowed = new Set<string>(VALIDATOR_RUNTIME_MODULES);
  for (const m of code.matchAll(/require\(("(?:[^"\\]|\\.)*")\)/g)) {
    const module = JSON.parse(m[1]) as string;
    if (!allowed.has(module)) {
      throw new Error(`a JSON Schema needs the validation runtime module '${module}', which the command handler does not ship ($async schemas and $dynamicRef are not supported)`);
    }
  }
  return code;
}
