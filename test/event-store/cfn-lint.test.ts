import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { EventStoreEncryption, EventStoreTable } from '../../src';
import { cfnLint } from '../support/cfn-lint';

test('cfn-lint finds nothing in EventStoreTable templates (defaults, customer key, no index, with grants)', () => {
  const templates: Record<string, unknown> = {};
  const variants = {
    Defaults: {},
    CustomerKey: { encryption: EventStoreEncryption.CUSTOMER_MANAGED },
    NoIndex: { aggregateIndex: false, pointInTimeRecovery: false },
  };
  for (const [name, props] of Object.entries(variants)) {
    const stack = new Stack(new App(), name, { env: { account: '111111111111', region: 'eu-west-1' } });
    const store = new EventStoreTable(stack, 'Events', props);
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    store.grantAppendEvents(role, 'billing');
    store.grantStreamRead(role);
    templates[name] = Template.fromStack(stack).toJSON();
  }
  expect(cfnLint(templates)).toEqual([]);
});

test('cfn-lint does report a broken template (the check can fail)', () => {
  const stack = new Stack(new App(), 'Broken');
  new EventStoreTable(stack, 'Events');
  const template = Template.fromStack(stack).toJSON();
  const [table] = Object.values(template.Resources as Record<string, { Properties: Record<string, unknown> }>);
  table.Properties.StreamSpecification = { StreamViewType: 'NEW_IMAGE', Sideways: true };
  expect(cfnLint({ Broken: template })).toEqual([expect.objectContaining({ rule: 'E3002', level: 'Error' })]);
});
