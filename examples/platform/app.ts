/**
 * The example Skafu platform as a CDK app: SkafuPlatform with the observability and project-management domains,
 * declared without custom code, and their GraphQL API. `npm run example:synth` synthesizes it to examples/platform/cdk.out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { observability, projectManagement } from './domains';
import { SkafuEnvironment, SkafuPlatform } from '../../src';

export function buildExampleApp(outdir = path.join(__dirname, 'cdk.out'), environment = (process.env.SKAFU_ENVIRONMENT ?? 'development') as SkafuEnvironment): App {
  const app = new App({ outdir });
  const stack = new Stack(app, `Skafu-${environment}`, { description: `Skafu example platform (${environment})` });
  const platform = new SkafuPlatform(stack, 'Platform', { environment });
  platform.addDomain(observability);
  platform.addDomain(projectManagement);
  // The read side over GraphQL too: queries, and subscriptions fed by the read-model tables' streams.
  platform.addGraphqlApi();
  return app;
}

if (require.main === module) {
  const assembly = buildExampleApp().synth();
  for (const artifact of assembly.stacks) {
    const resources = Object.keys(artifact.template.Resources ?? {}).length;
    console.log(`synthesized ${artifact.stackName}: ${resources} resources -> ${path.relative(process.cwd(), artifact.templateFullPath)}`);
  }
  for (const file of fs.readdirSync(assembly.directory).filter((f: string) => f.endsWith('.nested.template.json'))) {
    console.log(`  nested template ${file}`);
  }
}
