/**
 * Republishes committed events from the event store to the domain bus, in order, marked `metadata.replay`.
 * Invoke it with `{ "aggregateId": "...", "fromSequence": 5 }`, a list of such requests, a dead-letter message
 * from the outbox's dead-letter queue, or an SQS event of them:
 *
 *   aws lambda invoke --function-name <republishFunction> --cli-binary-format raw-in-base64-out \
 *     --payload '{"domain":"projects","aggregateId":"project-42","fromSequence":5}' out.json
 *
 * An aggregate the outbox holds (an event of it was not delivered) is released once its events were published
 * in order from the hold's first undelivered event; events held meanwhile are republished first.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { EventBusPublisher } from '../runtime/event-publisher';
import { EventStore } from '../runtime/event-store';
import { streamKey } from '../runtime/event-store-schema';
import { HoldStore } from '../runtime/holds';
import { parseRepublishInput, republishFromStore, type RepublishResult } from '../runtime/republish';

export interface RepublishHandlerDeps {
  readonly store: EventStore;
  readonly publisher: EventBusPublisher;
  readonly tools: Powertools;
  readonly holds?: HoldStore;
}

export interface RepublishOutcome extends RepublishResult {
  /**
   * Per request, what happened to the aggregate's hold. 'refused': an item in the range was not the aggregate's
   * own (see `refused`), so not everything was republished and the hold is kept for an operator to decide.
   */
  readonly holds: Array<'released' | 'not-held' | 'not-covered' | 'behind' | 'refused'>;
}

export function createRepublishHandler(deps: RepublishHandlerDeps) {
  return async (input: unknown): Promise<RepublishOutcome> => {
    const requests = parseRepublishInput(input);
    const result = await republishFromStore(deps.store, deps.publisher, requests);
    const fail = (r: RepublishResult) =>
      new Error(
        `republish left ${r.undelivered.length} event(s) undelivered: ${r.undelivered
          .slice(0, 10)
          .map((u) => `${u.event.aggregateId}#${u.event.eventSequence} (${u.errorCode})`)
          .join(', ')}`,
      );
    if (result.undelivered.length > 0) throw fail(result);
    const refused = [...result.refused];
    let published = result.published;
    const outcomes: RepublishOutcome['holds'] = [];
    for (const [i, request] of requests.entries()) {
      if (!deps.holds) break;
      const streamId = streamKey(request.domain, request.aggregateId);
      const own = (r: RepublishResult['refused'][number]) => r.domain === request.domain && r.aggregateId === request.aggregateId;
      let last = result.lastSequences[i];
      let outcome: RepublishOutcome['holds'][number] = refused.some(own) ? 'refused' : await deps.holds.release(streamId, request.fromSequence ?? 1, last);
      // Events held while this ran: publish them too (in order), then release.
      for (let round = 0; outcome === 'behind' && round < 10; round++) {
        const next = { domain: request.domain, aggregateId: request.aggregateId, fromSequence: last + 1 };
        const more = await republishFromStore(deps.store, deps.publisher, [next]);
        if (more.undelivered.length > 0) throw fail(more);
        refused.push(...more.refused);
        published += more.published;
        last = Math.max(last, more.lastSequences[0]);
        outcome = more.refused.length > 0 ? 'refused' : await deps.holds.release(streamId, request.fromSequence ?? 1, last);
      }
      if (outcome === 'not-covered' || outcome === 'behind' || outcome === 'refused') {
        deps.tools.logger.warn('aggregate still held', { request, outcome });
      }
      outcomes.push(outcome);
    }
    if (refused.length > 0) {
      deps.tools.logger.critical('items under a republished aggregate name another domain or aggregate: not published', { refused: refused.slice(0, 100) });
    }
    deps.tools.logger.info('republished', { requests, published, holds: outcomes });
    return { ...result, published, refused, holds: outcomes };
  };
}

let instance: ReturnType<typeof createRepublishHandler> | undefined;

export const handler = async (input: unknown): Promise<RepublishOutcome> => {
  if (!instance) {
    const tools = powertools('skafu-outbox-republish');
    const holdTable = process.env.SKAFU_HOLD_TABLE;
    instance = createRepublishHandler({
      tools,
      holds: holdTable ? new HoldStore(holdTable, traced(tools, new DynamoDBClient({}))) : undefined,
      store: EventStore.fromEnvironment({ client: traced(tools, new DynamoDBClient({})) }),
      publisher: new EventBusPublisher({ client: traced(tools, new EventBridgeClient({})) }),
    });
  }
  return instance(input);
};
