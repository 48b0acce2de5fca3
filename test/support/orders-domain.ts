/**
 * A small `orders` domain for synth tests: one command (PlaceOrder, a generated id, OrderPlaced with `item`) and one
 * read model `orders` (key `orderId`, a put of `item`). Tests vary the read model (a version, indexes) and the queries.
 */
import { AggregateIdSource, ProjectionAction, ProjectionValue, type DomainDeclaration, type QueryDefinition, type ReadModelDefinition } from '../../src';

export function ordersDomain(readModel: Partial<ReadModelDefinition> = {}, queries?: QueryDefinition[]): DomainDeclaration {
  return {
    name: 'orders',
    commands: [
      {
        name: 'PlaceOrder',
        path: 'orders',
        allowedGroups: ['Developer'],
        aggregateType: 'Order',
        aggregateId: AggregateIdSource.generated(),
        eventType: 'OrderPlaced',
        bodySchema: { type: 'object', properties: { item: { type: 'string' } }, required: ['item'], additionalProperties: false },
      },
    ],
    readModels: [
      {
        name: 'orders',
        partitionKey: { name: 'orderId' },
        projections: [{ eventType: 'OrderPlaced', action: ProjectionAction.putItem({ key: { orderId: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { item: ProjectionValue.fromData('item') } }) }],
        ...readModel,
      },
    ],
    ...(queries ? { queries } : {}),
  };
}
