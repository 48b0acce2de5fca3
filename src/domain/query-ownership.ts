/**
 * Object-level authorization of the bundled query handler (`QueryDefinition.ownership`): a get of another
 * user's item answers 403 NotOwner, and a list only returns the caller's items (a filter on the owner
 * attribute; DynamoDB filters after `Limit`, so a page may hold fewer items than the limit, and `nextToken`
 * goes on). Members of an override group see every item.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { QuerySpec } from '../runtime/domain-spec';

export class OwnershipRefusal extends Error {}

function caller(event: APIGatewayProxyEvent): { id?: string; groups: string[] } {
  const authorizer = (event.requestContext?.authorizer ?? {}) as Record<string, unknown>;
  const id = typeof authorizer.userId === 'string' && authorizer.userId !== '' ? authorizer.userId : undefined;
  const groups = typeof authorizer.groups === 'string' ? authorizer.groups.split(',').map((g) => g.trim()) : [];
  return { id, groups };
}

/** The owner condition of a list, or undefined when the query has no ownership or the caller overrides it. */
export function ownerCondition(query: QuerySpec, event: APIGatewayProxyEvent): { attribute: string; userId: string } | undefined {
  if (!query.ownerAttribute) return undefined;
  const user = caller(event);
  if ((query.ownerOverrideGroups ?? []).some((g) => user.groups.includes(g))) return undefined;
  if (!user.id) throw new OwnershipRefusal(`${query.name} lists the caller's items, and the caller has no user id`);
  return { attribute: query.ownerAttribute, userId: user.id };
}

/** Throws OwnershipRefusal when the caller may not read the item. */
export function checkItemOwner(query: QuerySpec, event: APIGatewayProxyEvent, item: Record<string, unknown>): void {
  const owner = ownerCondition(query, event);
  if (owner && item[owner.attribute] !== owner.userId) {
    throw new OwnershipRefusal(`only the owner${(query.ownerOverrideGroups ?? []).length > 0 ? ` or a member of ${query.ownerOverrideGroups!.join(', ')}` : ''} may read this item`);
  }
}
