/**
 * The event delivery stack (event store, domain bus, error bus with critical topic, outbox) under cdk-nag
 * AwsSolutions and cfn-lint. The acknowledgements the constructs carry are listed here, with their reasons.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DomainEventBus, ErrorBus, EventStoreEncryption, EventStorePublisher, EventStoreTable } from '../../src';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, nagErrors, nagWarnings } from '../support/nag';

function deliveryStack(encryption?: EventStoreEncryption): Stack {
  const stack = new Stack(new App(), `Delivery${encryption ? 'Cmk' : ''}`, { env: { account: '111111111111', region: 'eu-west-1' } });
  applyAwsSolutions(stack);
  const eventStore = new EventStoreTable(stack, 'Store', { encryption });
  const events = new DomainEventBus(stack, 'Events');
  const errors = new ErrorBus(stack, 'Errors', { createCriticalTopic: true });
  new EventStorePublisher(stack, 'Outbox', { eventStore, eventBus: events.eventBus, errorBus: errors });
  return stack;
}

test.each([undefined, EventStoreEncryption.CUSTOMER_MANAGED])('zero unacknowledged AwsSolutions errors and warnings (store encryption %s)', (encryption) => {
  const stack = deliveryStack(encryption);
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack)).toEqual([]);
});

test('every acknowledgement the constructs carry has a reason, and they are exactly these', () => {
  type Ack = { id: string; reason: string; applies_to?: unknown[] };
  type Resource = { Metadata?: { cdk_nag?: { rules_to_suppress: Ack[] } } };
  const template = Template.fromStack(deliveryStack()).toJSON() as { Resources: Record<string, Resource> };
  const acks = new Map<string, string>();
  for (const resource of Object.values(template.Resources)) {
    for (const rule of resource.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
      expect(rule.reason.length).toBeGreaterThan(30);
      acks.set(`${rule.id} ${JSON.stringify(rule.applies_to ?? [])}`, rule.reason);
    }
  }
  expect([...acks.keys()].sort()).toEqual([
    'AwsSolutions-IAM5 ["Resource::*"]',
    'AwsSolutions-SQS3 []',
  ]);
});

test('cfn-lint finds nothing in the delivery stack', () => {
  expect(cfnLint({ Delivery: Template.fromStack(deliveryStack()).toJSON() })).toEqual([]);
});
