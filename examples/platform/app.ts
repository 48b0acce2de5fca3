/**
 * The example Skafu platform as a CDK app. `npm run example:synth` synthesizes it to examples/platform/cdk.out.
 * It grows with the library: for now the event store, the buses and the outbox publisher.
 */
import * as path from 'node:path';
import { App, Stack, Tags } from 'aws-cdk-lib';
import { DomainEventBus, ErrorBus, EventStorePublisher, EventStoreTable } from '../../src';

const environment = process.env.SKAFU_ENVIRONMENT ?? 'development';
const app = new App({ outdir: path.join(__dirname, 'cdk.out') });
const stack = new Stack(app, `Skafu-${environment}`, {
  description: `Skafu example platform (${environment})`,
});
Tags.of(stack).add('Project', 'Skafu');
Tags.of(stack).add('Environment', environment);

const eventStore = new EventStoreTable(stack, 'EventStore', {
  // A development stack may be torn down; production keeps its events.
  ...(environment === 'production' ? {} : { deletionProtection: false }),
});
const events = new DomainEventBus(stack, 'DomainEvents', { environment });
const errors = new ErrorBus(stack, 'Errors', { environment, createCriticalTopic: environment === 'production' });
new EventStorePublisher(stack, 'Outbox', { eventStore, eventBus: events.eventBus, errorBus: errors });

const assembly = app.synth();
for (const artifact of assembly.stacks) {
  const resources = Object.keys(artifact.template.Resources ?? {}).length;
  console.log(`synthesized ${artifact.stackName}: ${resources} resources -> ${path.relative(process.cwd(), artifact.templateFullPath)}`);
}
