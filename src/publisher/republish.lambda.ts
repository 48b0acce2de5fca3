/**
 * Republishes committed events from the event store to the domain bus, in order, marked `metadata.replay`.
 * Invoke it with `{ "aggregateId": "...", "fromSequence": 5 }`, a list of such requests, a dead-letter message
 * from the outbox's dead-letter queue, or an SQS event of them:
 *
 *   aws lambda invoke --function-name <republishFunction> --cli-binary-format raw-in-base64-out \
 *     --payload '{"aggregateId":"project-42","fromSequence":5}' out.json
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { EventBusPublisher } from '../runtime/event-publisher';
import { EventStore } from '../runtime/event-store';
import { parseRepublishInput, republishFromStore, type RepublishResult } from '../runtime/republish';

export interface RepublishHandlerDeps {
  readonly store: EventStore;
  readonly publisher: EventBusPublisher;
  readonly tools: Powertools;
}

export function createRepublishHandler(deps: RepublishHandlerDeps) {
  return async (input: unknown): Promise<RepublishResult> => {
    const requests = parseRepublishInput(input);
    const result = await republishFromStore(deps.store, deps.publisher, requests);
    deps.tools.logger.info('republished', { requests, published: result.published, undelivered: result.undelivered.length });
    if (result.undelivered.length > 0) {
      // Surface it to the caller (and to a Lambda destination / SQS retry) rather than report success.
      throw new Error(
        `republish left ${result.undelivered.length} event(s) undelivered: ${result.undelivered
          .slice(0, 10)
          .map((u) => `${u.event.aggregateId}#${u.event.eventSequence} (${u.errorCode})`)
          .join(', ')}`,
      );
    }
    return result;
  };
}

let instance: ReturnType<typeof createRepublishHandler> | undefined;

export const handler = async (input: unknown): Promise<RepublishResult> => {
  if (!instance) {
    const tools = powertools('skafu-outbox-republish');
    instance = createRepublishHandler({
      tools,
      store: EventStore.fromEnvironment({ client: traced(tools, new DynamoDBClient({})) }),
      publisher: new EventBusPublisher({ client: traced(tools, new EventBridgeClient({})) }),
    });
  }
  return instance(input);
};
