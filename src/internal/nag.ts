import { CfnResource } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** An acknowledged cdk-nag finding: the rule, the narrowest finding it covers, and why it is acceptable. */
export interface NagAcknowledgement {
  readonly id: string;
  readonly reason: string;
  readonly appliesTo?: string[];
}

/**
 * Records acknowledgements of cdk-nag findings that a construct itself creates, as `cdk_nag` resource metadata
 * (the format cdk-nag 2 reads), without depending on cdk-nag. Applies to the construct's own CloudFormation
 * resources and those below it.
 */
export function acknowledgeNag(scope: IConstruct, acknowledgements: NagAcknowledgement[]): void {
  for (const child of scope.node.findAll()) {
    const resource = child.node.defaultChild ?? child;
    if (!CfnResource.isCfnResource(resource)) continue;
    const existing = (resource.getMetadata('cdk_nag') as { rules_to_suppress?: unknown[] } | undefined)?.rules_to_suppress ?? [];
    const serialized = new Set(existing.map((r) => JSON.stringify(r)));
    for (const ack of acknowledgements) {
      serialized.add(JSON.stringify({ reason: ack.reason, id: ack.id, ...(ack.appliesTo ? { applies_to: ack.appliesTo } : {}) }));
    }
    resource.addMetadata('cdk_nag', { rules_to_suppress: [...serialized].map((r) => JSON.parse(r)) });
  }
}
