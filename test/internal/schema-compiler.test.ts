/**
 * Issue 14's validators compiled at synth (Ajv standalone code) give the verdict Ajv gives at runtime with the same
 * options (schema-compiler.ts promises "the same verdict and the same error objects"); a schema the standalone code
 * cannot keep (a "__proto__" key) is refused at synth.
 *
 * Both verdicts are computed in a fresh Node process (one realm, as in Lambda and Skafu Local's worker thread):
 * jest's sandbox realm differs from the realm runInThisContext uses, and fast-deep-equal compares constructors,
 * so comparing inside jest would show false differences for any object const/enum.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileValidators } from '../../src/internal/schema-compiler';

const ROOT = path.join(__dirname, '..', '..');

function verdicts(schemaJson: string, bodies: string[]): { runtime: boolean[]; compiled: boolean[] } {
  // The schema as the domain spec carries it: JSON text parsed (an own "__proto__" key stays a key).
  const source = compileValidators([{ name: 'Cmd', schema: JSON.parse(schemaJson) }]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-review-'));
  fs.writeFileSync(path.join(dir, 'skafu-validators.js'), source);
  const script = `
    const Ajv = require('ajv').default; const addFormats = require('ajv-formats').default;
    const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false }); addFormats(ajv);
    const [schemaJson, bodiesJson, file] = process.argv.slice(1);
    const runtimeValidate = ajv.compile(JSON.parse(schemaJson));
    const compiled = require(file).Cmd;
    const bodies = JSON.parse(bodiesJson);
    process.stdout.write(JSON.stringify({ runtime: bodies.map((b) => runtimeValidate(JSON.parse(b))), compiled: bodies.map((b) => compiled(JSON.parse(b))) }));`;
  try {
    const out = execFileSync(process.execPath, ['-e', script, schemaJson, JSON.stringify(bodies), path.join(dir, 'skafu-validators.js')], {
      env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') },
      cwd: ROOT,
    });
    return JSON.parse(String(out));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('an enum value holding a "__proto__" key is refused at synth, naming the command and the JSON pointer (the standalone code would turn it into a prototype)', () => {
  // Ajv runtime: only {"__proto__":{"role":"admin"}} (an own key) matches; {} does not. Compiled as a JS object
  // literal, the enum value would become {} with a prototype and the verdicts would differ: refused instead.
  expect(() => compileValidators([{ name: 'Cmd', schema: JSON.parse('{"type":"object","enum":[{"__proto__":{"role":"admin"}}]}') }])).toThrow(
    /Cmd.*"__proto__".*\/enum\/0\/__proto__/,
  );
});

test('a const object holding a "__proto__" key is refused at synth, naming the command and the JSON pointer', () => {
  expect(() => compileValidators([{ name: 'SetFlags', schema: JSON.parse('{"type":"object","properties":{"flags":{"const":{"__proto__":{"x":1}}}}}') }])).toThrow(
    /SetFlags.*\/properties\/flags\/const\/__proto__/,
  );
});

test('a property named "__proto__" is refused too; a property named "constructor" compiles to Ajv\'s verdicts', () => {
  expect(() => compileValidators([{ name: 'Cmd', schema: JSON.parse('{"type":"object","properties":{"__proto__":{"type":"string"}}}') }])).toThrow(/\/properties\/__proto__/);
  const out = verdicts('{"type":"object","properties":{"constructor":{"type":"string"}}}', ['{"constructor":"x"}', '{"constructor":1}', '{}']);
  // Same verdicts (Ajv reads the inherited `constructor` of {} too: both refuse {}; not changed here).
  expect(out.compiled).toEqual(out.runtime);
});

test('control: ordinary object const/enum agree', () => {
  const out = verdicts('{"type":"object","properties":{"o":{"const":{"a":1}},"e":{"enum":[{"b":[1,2]},"x"]}}}', ['{"o":{"a":1},"e":{"b":[1,2]}}', '{"o":{"a":2}}', '{"e":{"b":[2,1]}}', '{"e":"x"}']);
  expect(out.compiled).toEqual(out.runtime);
  expect(out.runtime).toEqual([true, false, false, true]);
});
