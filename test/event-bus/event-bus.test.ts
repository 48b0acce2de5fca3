import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { DomainEventBus } from '../../src';

test('skafu-events-<environment> with an archive for replay and an account-only policy', () => {
  const s = new Stack(new App(), 'T', { env: { account: '111111111111', region: 'eu-west-1' } });
  const bus = new DomainEventBus(s, 'Events', { environment: 'staging' });
  const role = new iam.Role(s, 'R', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  bus.grantPublish(role);
  const t = Template.fromStack(s);
  t.hasResourceProperties('AWS::Events::EventBus', { Name: 'skafu-events-staging' });
  t.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 365, EventPattern: { account: ['111111111111'] } });
  t.hasResourceProperties('AWS::Events::EventBusPolicy', { Statement: Match.objectLike({ Action: 'events:PutEvents', Sid: 'cdk-AccountMayPublish' }) });
  t.hasResourceProperties('AWS::IAM::Policy', { PolicyDocument: { Statement: [Match.objectLike({ Action: 'events:PutEvents' })] } });
  expect(s.resolve(bus.environmentVariables())).toEqual({ SKAFU_EVENT_BUS_NAME: { Ref: expect.stringMatching(/EventsBus/) } });
});

test('name and archive retention are overridable', () => {
  const s = new Stack(new App(), 'T');
  new DomainEventBus(s, 'Events', { eventBusName: 'custom', archiveRetention: Duration.days(30) });
  Template.fromStack(s).hasResourceProperties('AWS::Events::EventBus', { Name: 'custom' });
  Template.fromStack(s).hasResourceProperties('AWS::Events::Archive', { RetentionDays: 30 });
});
