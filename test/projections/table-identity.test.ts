/**
 * Nothing projection-owned is destroyed by accident: read models, checkpoints and parked events are kept in
 * staging and production, and their physical identity (stack and logical id) does not change when nested
 * domain stacks are turned on or off; where it could, synth warns.
 */
import { App, NestedStack, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import {
  DomainEventBus,
  ErrorBus,
  ProjectionAction,
  ProjectionStateMachine,
  ProjectionValue,
  ReadModelTable,
  SkafuEnvironment,
  SkafuPlatform,
} from '../../src';
import { ordersDomain } from '../support/orders-domain';

const orders = ordersDomain();

function platformTables(nestedDomainStacks: boolean, environment: SkafuEnvironment) {
  const app = new App();
  const stack = new Stack(app, 'Skafu', { env: { account: '111111111111', region: 'us-east-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { environment, nestedDomainStacks });
  const domain = platform.addDomain(orders);
  const template = Template.fromStack(stack);
  const tables = Object.entries(template.findResources('AWS::DynamoDB::Table'))
    .filter(([id]) => /ProjectionTables/.test(id))
    .map(([id, r]) => ({ id, deletion: r.DeletionPolicy, replace: r.UpdateReplacePolicy }))
    .sort((a, b) => a.id.localeCompare(b.id));
  return { tables, domain, stack };
}

test('the projection tables keep their stack and logical id whether domains are nested or not', () => {
  const nested = platformTables(true, SkafuEnvironment.PRODUCTION);
  const flat = platformTables(false, SkafuEnvironment.PRODUCTION);
  // Read model, checkpoints, parked events: all three in the platform's own stack, under the same ids.
  expect(nested.tables.map((t) => t.id)).toHaveLength(4);
  expect(nested.tables.map((t) => t.id)).toEqual(flat.tables.map((t) => t.id));
  expect(Stack.of(nested.domain.readModels.orders).stackName).toBe('Skafu');
  expect(Stack.of(nested.domain.projections!.checkpointTable)).toBe(nested.stack);
  expect(Stack.of(nested.domain.projections!.stateMachine)).not.toBe(nested.stack); // the machine itself is nested
  // No warning: nothing projection-owned sits in a nested stack.
  Annotations.fromStack(nested.stack).hasNoWarning('*', Match.stringLikeRegexp('nested stack'));
});

test.each([
  [SkafuEnvironment.STAGING, 'Retain'],
  [SkafuEnvironment.PRODUCTION, 'Retain'],
  [SkafuEnvironment.DEVELOPMENT, 'Delete'],
])('in %s the read model, checkpoints and parked events are %s', (environment, policy) => {
  const { tables } = platformTables(true, environment);
  expect(tables.map((t) => [t.deletion, t.replace])).toEqual(tables.map(() => [policy, policy]));
  expect(tables).toHaveLength(4); // read model, checkpoints, parked events, rebuild state
});

test('standalone constructs keep their tables by default; a table left in a nested stack makes synth warn', () => {
  const app = new App();
  const stack = new Stack(app, 'Standalone');
  const nested = new NestedStack(stack, 'Nested');
  const bus = new DomainEventBus(stack, 'Bus');
  const errors = new ErrorBus(stack, 'Errors');
  const table = new ReadModelTable(nested, 'Model', { partitionKey: { name: 'id' } });
  new ProjectionStateMachine(nested, 'Projections', {
    domain: 'x',
    eventBus: bus.eventBus,
    errorBus: errors,
    projections: [{ eventType: 'Made', readModel: table, action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } }) }],
  });
  const t = Template.fromStack(nested);
  for (const resource of Object.values(t.findResources('AWS::DynamoDB::Table'))) expect(resource.DeletionPolicy).toBe('Retain');
  expect(Object.keys(t.findResources('AWS::DynamoDB::Table'))).toHaveLength(4);
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('is in nested stack .*Nested.*replaces it with an empty table'));
  expect(warnings.length).toBeGreaterThanOrEqual(1);
});
