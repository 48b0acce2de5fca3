/**
 * review (hostile): issue 14's validators compiled at synth (Ajv standalone code) must give the verdict Ajv gives
 * at runtime with the same options (schema-compiler.ts promises "the same verdict and the same error objects").
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

test('an enum value holding a "__proto__" key keeps its meaning (the standalone code must not turn it into a prototype)', () => {
  // Ajv runtime: only {"__proto__":{"role":"admin"}} (an own key) matches; {} does not.
  // Compiled: `const schema11 = {"enum":[{"__proto__":{...}}]}` is a JS object literal, so the enum value becomes
  // {} with a prototype: the compiled validator accepts {} and refuses the body the schema names.
  const out = verdicts('{"type":"object","enum":[{"__proto__":{"role":"admin"}}]}', ['{}', '{"__proto__":{"role":"admin"}}']);
  expect(out.compiled).toEqual(out.runtime);
});

test('a const object holding a "__proto__" key keeps its meaning', () => {
  const out = verdicts('{"type":"object","properties":{"flags":{"const":{"__proto__":{"x":1}}}}}', ['{"flags":{}}', '{"flags":{"__proto__":{"x":1}}}']);
  expect(out.compiled).toEqual(out.runtime);
});

test('control: ordinary object const/enum agree', () => {
  const out = verdicts('{"type":"object","properties":{"o":{"const":{"a":1}},"e":{"enum":[{"b":[1,2]},"x"]}}}', ['{"o":{"a":1},"e":{"b":[1,2]}}', '{"o":{"a":2}}', '{"e":{"b":[2,1]}}', '{"e":"x"}']);
  expect(out.compiled).toEqual(out.runtime);
  expect(out.runtime).toEqual([true, false, false, true]);
});
