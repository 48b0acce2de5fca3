/**
 * The declaration files shipped next to a bundled handler's `index.js` in its own code asset (see spec-asset.ts,
 * which writes them at synth, and spec-loader.ts, which reads them at cold start). Files, not environment
 * variables: Lambda allows 4 KB of environment in all, and a code asset 250 MB.
 */
/** The domain spec (commands, queries, rules), JSON. */
export const DOMAIN_SPEC_FILE = 'skafu-domain-spec.json';
/** The commands' body validators, compiled from their JSON Schemas at synth (Ajv standalone code, CommonJS). */
export const VALIDATORS_FILE = 'skafu-validators.js';
/** The authorizer's route table (`METHOD /api/v1/path` -> groups), JSON. */
export const ROUTES_FILE = 'skafu-routes.json';
/**
 * The only modules compiled validators may require: Ajv's and ajv-formats' runtime helpers, bundled into the
 * handler (the compiler refuses at synth a schema whose code would need any other).
 */
export const VALIDATOR_RUNTIME_MODULES = ['ajv/dist/runtime/equal', 'ajv/dist/runtime/ucs2length', 'ajv-formats/dist/formats'] as const;
