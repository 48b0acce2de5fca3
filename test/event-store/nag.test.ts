/**
 * cdk-nag AwsSolutions over a stack that uses EventStoreTable as a consumer would: a handler that appends,
 * reads, lists aggregates and reads the stream. Zero unacknowledged errors; each acknowledgement has a reason.
 */
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { EventStoreEncryption, EventStoreTable } from '../../src';
import { applyAwsSolutions, consumerFunction, nagErrors, nagWarnings } from '../support/nag';

function consumerStack(encryption?: EventStoreEncryption): Stack {
  const stack = new Stack(new App(), 'NagEventStore', { env: { account: '111111111111', region: 'eu-west-1' } });
  applyAwsSolutions(stack);
  const store = new EventStoreTable(stack, 'Events', { encryption });
  const { fn, role } = consumerFunction(stack);
  store.grantAppendEvents(fn, 'billing');
  store.grantReadEvents(fn);
  store.grantListAggregates(fn);
  store.grantStreamRead(fn);

  // The acknowledgements a consumer needs, each narrowed to the finding it explains.
  const acknowledgements = [
    {
      id: 'AwsSolutions-IAM5',
      reason: 'dynamodb:ListStreams has no resource type in IAM: it can only be granted on "*" (the Lambda event source mapping needs it).',
      appliesTo: ['Resource::*'],
    },
    ...(encryption === EventStoreEncryption.CUSTOMER_MANAGED
      ? [
        {
          id: 'AwsSolutions-IAM5',
          reason: 'KMS data-key actions are families (GenerateDataKey*, ReEncrypt*) scoped to the one table key by resource.',
          appliesTo: ['Action::kms:GenerateDataKey*', 'Action::kms:ReEncrypt*'],
        },
      ]
      : []),
  ];
  NagSuppressions.addResourceSuppressions(role, acknowledgements, true);
  return stack;
}

test.each([undefined, EventStoreEncryption.AWS_MANAGED, EventStoreEncryption.CUSTOMER_MANAGED])(
  'zero unacknowledged AwsSolutions errors and warnings (encryption %s)',
  (encryption) => {
    const stack = consumerStack(encryption);
    expect(nagErrors(stack)).toEqual([]);
    expect(nagWarnings(stack)).toEqual([]);
  },
);

test('the table itself needs no acknowledgement at all', () => {
  const stack = new Stack(new App(), 'Bare', { env: { account: '111111111111', region: 'eu-west-1' } });
  applyAwsSolutions(stack);
  new EventStoreTable(stack, 'Events');
  expect(nagErrors(stack)).toEqual([]);
  expect(nagWarnings(stack)).toEqual([]);
});

test('without the acknowledgements the checks do fire (the test can fail)', () => {
  const stack = new Stack(new App(), 'Unacknowledged', { env: { account: '111111111111', region: 'eu-west-1' } });
  applyAwsSolutions(stack);
  const store = new EventStoreTable(stack, 'Events');
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  store.grantStreamRead(role);
  expect(nagErrors(stack).map((f) => f.message)).toEqual([expect.stringMatching(/^AwsSolutions-IAM5\[Resource::\*\]/)]);
});
