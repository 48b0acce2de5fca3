import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/**
 * An EventBridge rule target that delivers to a CloudWatch log group, with a native AWS::Logs::ResourcePolicy
 * (no custom resource, unlike aws-events-targets' CloudWatchLogGroup), retries and an SQS dead-letter queue.
 */
export class LogGroupTarget implements events.IRuleTarget {
  constructor(
    private readonly logGroup: logs.ILogGroup,
    private readonly options: { deadLetterQueue: sqs.IQueue; retryAttempts: number; maxEventAge: Duration },
  ) {}

  public bind(rule: events.IRule, _id?: string): events.RuleTargetConfig {
    const scope = rule as unknown as Construct;
    const policyId = 'LogGroupDeliveryPolicy';
    if (!scope.node.tryFindChild(policyId)) {
      new logs.ResourcePolicy(scope, policyId, {
        resourcePolicyName: `skafu-events-to-logs-${Stack.of(scope).stackName}-${scope.node.addr}`.slice(0, 255),
        policyStatements: [
          new iam.PolicyStatement({
            principals: [new iam.ServicePrincipal('events.amazonaws.com'), new iam.ServicePrincipal('delivery.logs.amazonaws.com')],
            actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            resources: [this.logGroup.logGroupArn],
          }),
        ],
      });
    }
    this.options.deadLetterQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sqs:SendMessage'],
        resources: [this.options.deadLetterQueue.queueArn],
        conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
      }),
    );
    return {
      arn: Stack.of(scope).formatArn({
        service: 'logs',
        resource: 'log-group',
        resourceName: this.logGroup.logGroupName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
      deadLetterConfig: { arn: this.options.deadLetterQueue.queueArn },
      retryPolicy: {
        maximumRetryAttempts: this.options.retryAttempts,
        maximumEventAgeInSeconds: this.options.maxEventAge.toSeconds(),
      },
      targetResource: this.logGroup,
    };
  }
}
