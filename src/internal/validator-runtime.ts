/**
 * The runtime helpers that validators compiled at synth (Ajv standalone code) require, bundled into the command
 * handler only (a few KB; Ajv's compiler is not among them). The list is shipped-files.ts's
 * VALIDATOR_RUNTIME_MODULES; the schema compiler refuses code that needs any other module.
 */
import equal from 'ajv/dist/runtime/equal';
import ucs2length from 'ajv/dist/runtime/ucs2length';
import * as formats from 'ajv-formats/dist/formats';
import type { ValidatorRuntime } from './spec-loader';

export const VALIDATOR_RUNTIME: ValidatorRuntime = {
  'ajv/dist/runtime/equal': { default: equal },
  'ajv/dist/runtime/ucs2length': { default: ucs2length },
  'ajv-formats/dist/formats': formats,
};
