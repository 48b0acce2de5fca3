/** Writes a minimal cloud assembly (manifest and templates) into a temporary directory, for the service tests. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalAssembly } from '../../../local/src/assembly';
import { ErrorLog } from '../../../local/src/error-log';

export function writeAssembly(templates: Record<string, Record<string, unknown>>, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-local-unit-'));
  const artifacts: Record<string, unknown> = {};
  for (const [name, resources] of Object.entries(templates)) {
    fs.writeFileSync(path.join(dir, `${name}.template.json`), JSON.stringify({ Resources: resources }));
    artifacts[name] = { type: 'aws:cloudformation:stack', properties: { templateFile: `${name}.template.json` } };
  }
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ version: '40.0.0', artifacts }));
  return dir;
}

export function loadAssembly(templates: Record<string, Record<string, unknown>>, files: Record<string, string> = {}) {
  const dir = writeAssembly(templates, files);
  const assembly = new LocalAssembly(dir);
  const lines: string[] = [];
  const errors = new ErrorLog(path.join(dir, '.work'), (line) => lines.push(line));
  return { dir, assembly, resources: assembly.allResources(), errors, lines };
}

export function errorEntries(errors: ErrorLog): Array<Record<string, any>> {
  return fs.existsSync(errors.file) ? fs.readFileSync(errors.file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}
