/** Runs the machine's cfn-lint over synthesized templates (W3005, "dependency already enforced", is a CDK pattern). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CfnLintFinding {
  readonly rule: string;
  readonly level: string;
  readonly message: string;
  readonly path: string;
}

export function cfnLint(templates: Record<string, unknown>): CfnLintFinding[] {
  const dir = mkdtempSync(join(tmpdir(), 'cfn-lint-'));
  const files = Object.entries(templates).map(([name, template]) => {
    const file = join(dir, `${name}.template.json`);
    writeFileSync(file, JSON.stringify(template, null, 1));
    return file;
  });
  const run = spawnSync('cfn-lint', ['--format', 'json', '--ignore-checks', 'W3005', '--', ...files], { encoding: 'utf8' });
  if (run.error) {
    throw new Error(`cfn-lint could not run (${run.error.message}); it is preinstalled in this machine image's Python`);
  }
  // Exit code is a bitmask: 2 errors, 4 warnings, 8 informational; anything else is a crash.
  const findingsOnly = [0, 2, 4, 6, 8, 10, 12, 14];
  if (run.status === null || !findingsOnly.includes(run.status)) {
    throw new Error(`cfn-lint failed (exit ${run.status}): ${run.stderr}`);
  }
  const raw = JSON.parse(run.stdout || '[]') as Array<{ Rule: { Id: string }; Level: string; Message: string; Filename: string; Location?: { Path?: unknown[] } }>;
  return raw.map((f) => ({
    rule: f.Rule.Id,
    level: f.Level,
    message: f.Message,
    path: `${f.Filename.split('/').pop()}:${(f.Location?.Path ?? []).join('/')}`,
  }));
}
