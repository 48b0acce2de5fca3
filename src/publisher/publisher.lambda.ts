/**
 * The outbox publisher: fed by the event store's stream, it publishes every committed event to the domain bus
 * (source `skafu.<domain>`, detail-type = eventType, detail = the clean envelope), in per-aggregate order.
 *
 * Failure paths, none of which loses an event:
 * - entries that fail are retried in place with backoff (only the failed ones);
 * - with the held-aggregates table (the construct always sets one): an aggregate whose event is still
 *   undelivered is HELD: its later events (in this batch and in every later one) are not published ahead of it,
 *   a message naming its events and the republish request goes to the dead-letter queue, and a CRITICAL
 *   `AggregateHeld` error event is raised. The batch succeeds, so other aggregates' events are never sent twice.
 *   The republish function publishes the held aggregate in order and releases it;
 * - without it (or when the hold cannot be written), the handler reports the undelivered events on the error
 *   bus and returns a batch item failure at the earliest of them, so Lambda retries from there, in order;
 * - when the event source mapping runs out of retries it sends the batch's pointer to its on-failure queue,
 *   where the dead-letter handler names the events and dead-letters them (see dead-letter.lambda.ts);
 * - an event over 256 KB is published as a claim check (the envelope without data) and reported.
 *
 * Events are immutable: a MODIFY or REMOVE of an event item (an unconditional PutItem over it, an UpdateItem, a
 * DeleteItem, from any principal) is never published; it raises a CRITICAL `EventTampered` error event naming
 * the aggregate, the sequence and the changed paths (not the values), and the `EventsTampered` metric, which
 * the outbox's tamper alarm watches.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { powertools, traced, type Powertools } from '../internal/powertools';
import type { EventEnvelope } from '../runtime/envelope';
import { ErrorReporter } from '../runtime/error-reporter';
import { EventBusPublisher, type PublishReport } from '../runtime/event-publisher';
import { streamKey } from '../runtime/event-store-schema';
import { HoldStore } from '../runtime/holds';
import { UNDELIVERED_EVENTS_KIND, republishRequestsFor, type EventPointer, type UndeliveredEventsMessage } from '../runtime/republish';
import { domainOf, eventsFromStreamRecords, tamperedEventsFromStreamRecords } from '../runtime/stream-records';

export interface PublisherHandlerDeps {
  readonly publisher: EventBusPublisher;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
  /** Held aggregates: with it, a give-up holds the aggregate instead of retrying the batch. */
  readonly holds?: HoldStore;
  /** Where a hold's `UndeliveredEventsMessage` goes (the outbox's dead-letter queue). */
  readonly deadLetters?: { readonly sqs: SQSClient; readonly queueUrl: string };
  readonly clock?: () => Date;
  /**
   * How many aggregates this execution environment remembers as delivered in order up to a sequence, so that
   * their next event skips the hold read (see `DeliveredUpTo`); 0 turns the skip off (the holds are read for every
   * batch).
   * @default 10000
   */
  readonly rememberedAggregates?: number;
}

/**
 * Aggregates this execution environment published itself, each with the sequence up to which every event of the
 * aggregate is known to have reached the bus at least once. The hold read of a batch is skipped for an aggregate
 * whose first event in the batch is its first event (sequence 1: nothing can be undelivered before it) or
 * directly follows the sequence remembered here.
 *
 * Why that is safe: a hold only keeps an event from overtaking an undelivered earlier event of its aggregate, and
 * only a publisher that failed to deliver one of the aggregate's events creates a hold. Events of one aggregate
 * reach the publisher in order (one partition key, and `parallelizationFactor: 1`: "Lambda processes ... in-order
 * processing at the partition-key level", Lambda developer guide, "Using Lambda with DynamoDB"), so when event n
 * follows an n-1 this environment delivered, every earlier event was delivered before n is published, whichever
 * environment handled the batches in between. What the skip can miss is a hold created by a redelivery of an
 * event this environment had already delivered (a batch retried after its invocation failed): that event is then
 * on the bus twice, once now and once from the republish, as EventBridge's at-least-once delivery allows, and the
 * projections' checkpoints ignore the second copy. A different environment, or one that forgot the aggregate,
 * reads the holds as before. Lambda does not promise to reuse an environment for a shard's next batch: reuse only
 * decides how often the read is skipped, not whether skipping is right.
 */
export class DeliveredUpTo {
  private readonly upTo = new Map<string, number>();
  constructor(private readonly capacity: number) {}

  /** True when event `sequence` of the stream needs no hold read. */
  public follows(streamId: string, sequence: number): boolean {
    return this.capacity > 0 && (sequence === 1 || this.upTo.get(streamId) === sequence - 1);
  }

  /** Every event of the stream up to `sequence` reached the bus at least once. */
  public record(streamId: string, sequence: number): void {
    if (this.capacity <= 0) return;
    this.upTo.delete(streamId); // the most recently published last, the first to be forgotten first
    this.upTo.set(streamId, sequence);
    if (this.upTo.size > this.capacity) this.upTo.delete(this.upTo.keys().next().value!);
  }
}

const MAX_LISTED = 100;

export function createPublisherHandler(deps: PublisherHandlerDeps) {
  const { publisher, reporter, tools, holds } = deps;
  const clock = deps.clock ?? (() => new Date());
  const keyOf = (e: EventEnvelope) => streamKey(domainOf(e), e.aggregateId);
  const delivered = new DeliveredUpTo(deps.rememberedAggregates ?? 10_000);

  /** The lowest sequence of each aggregate in these events. */
  function firstOfEach(events: EventEnvelope[]): Map<string, number> {
    const first = new Map<string, number>();
    for (const e of events) {
      const seen = first.get(keyOf(e));
      if (seen === undefined || e.eventSequence < seen) first.set(keyOf(e), e.eventSequence);
    }
    return first;
  }

  /**
   * Leaves out the events of held aggregates (recording them on the hold); returns what may be published. The
   * holds are read for the aggregates `delivered` cannot vouch for, and not at all when it vouches for every one.
   */
  async function withoutHeld(all: EventEnvelope[]): Promise<{ publishable: EventEnvelope[]; held: EventEnvelope[] }> {
    if (!holds) return { publishable: all, held: [] };
    const unsure = [...firstOfEach(all)].filter(([streamId, first]) => !delivered.follows(streamId, first)).map(([streamId]) => streamId);
    if (unsure.length === 0) return { publishable: all, held: [] };
    const current = await holds.get(unsure);
    if (current.size === 0) return { publishable: all, held: [] };
    const publishable: EventEnvelope[] = [];
    const held: EventEnvelope[] = [];
    for (const e of [...all].sort((a, b) => a.eventSequence - b.eventSequence)) {
      const hold = current.get(keyOf(e));
      if (!hold) {
        publishable.push(e);
      } else if (e.eventSequence < hold.fromSequence) {
        // Delivered before the hold: a redelivered record; not sent again.
      } else if (e.eventSequence <= hold.lastHeldSequence || (await holds.recordHeld(hold.streamId, e.eventSequence))) {
        held.push(e);
      } else {
        current.delete(hold.streamId); // released meanwhile: the republisher published up to before this one
        publishable.push(e);
      }
    }
    const order = new Map(all.map((e, i) => [e, i]));
    publishable.sort((a, b) => order.get(a)! - order.get(b)!);
    return { publishable, held };
  }

  /** Holds every aggregate with an undelivered event, dead-letters their pointers and reports them. */
  async function holdUndelivered(report: PublishReport, functionName: string): Promise<void> {
    const byStream = new Map<string, PublishReport['undelivered']>();
    for (const u of report.undelivered) byStream.set(keyOf(u.event), [...(byStream.get(keyOf(u.event)) ?? []), u]);
    const pointers: EventPointer[] = [];
    for (const [streamId, list] of byStream) {
      const sequences = list.map((u) => u.event.eventSequence);
      const first = list.find((u) => u.event.eventSequence === Math.min(...sequences))!;
      await holds!.hold({
        streamId,
        domain: domainOf(first.event),
        aggregateId: first.event.aggregateId,
        fromSequence: Math.min(...sequences),
        lastHeldSequence: Math.max(...sequences),
        errorCode: first.errorCode,
        heldAt: clock().toISOString(),
      });
      for (const u of list) {
        const { aggregateId, eventSequence, eventId, eventType } = u.event;
        pointers.push({ domain: domainOf(u.event), aggregateId, eventSequence, eventId, eventType, errorCode: u.errorCode });
      }
    }
    const message: UndeliveredEventsMessage = {
      kind: UNDELIVERED_EVENTS_KIND,
      version: 1,
      reason: 'the outbox could not deliver these events and holds their aggregates: no later event of them is published until they are republished in order',
      events: pointers.slice(0, 1000),
      republish: republishRequestsFor(pointers),
      timestamp: clock().toISOString(),
    };
    if (deps.deadLetters) {
      await deps.deadLetters.sqs.send(new SendMessageCommand({ QueueUrl: deps.deadLetters.queueUrl, MessageBody: JSON.stringify(message) }));
    }
    tools.logger.error('aggregates held: events not delivered', { held: message.republish, undelivered: pointers.slice(0, MAX_LISTED) });
    const codes = [...new Set(report.undelivered.filter((u) => !u.blockedBy).map((u) => u.errorCode))];
    const summary = `${byStream.size} aggregate(s) held: ${pointers.length} committed event(s) not delivered (${codes.join(', ')})`;
    await reporter.report(new Error(`${summary}; republish them to release the aggregates`), {
      errorType: 'AggregateHeld',
      severity: 'CRITICAL',
      correlationId: report.undelivered[0].event.correlationId,
      retryable: true,
      context: { functionName },
      metadata: {
        heldAggregates: message.republish as never,
        undeliveredCount: pointers.length,
        undelivered: pointers.slice(0, MAX_LISTED) as never,
      },
    });
  }

  return async (event: DynamoDBStreamEvent, context?: Context): Promise<DynamoDBBatchResponse> => {
    const functionName = context?.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'outbox-publisher';
    const tampered = tamperedEventsFromStreamRecords(event.Records ?? []);
    if (tampered.length > 0) {
      tools.metrics.addMetric('EventsTampered', MetricUnit.Count, tampered.length);
      tools.metrics.publishStoredMetrics();
    }
    for (const t of tampered) {
      const what = t.change === 'REMOVE' ? 'deleted' : `modified (${t.changedPaths.join(', ')})`;
      tools.logger.critical('a committed event was changed in the event store', { ...t });
      await reporter.report(new Error(`event ${t.eventSequence} (${t.eventType}) of ${t.aggregateType} '${t.aggregateId}' in domain '${t.domain}' was ${what}: events are immutable`), {
        errorType: 'EventTampered',
        severity: 'CRITICAL',
        retryable: false,
        context: { functionName, domain: t.domain },
        metadata: {
          change: t.change,
          streamId: t.streamId,
          aggregateId: t.aggregateId,
          aggregateType: t.aggregateType,
          eventSequence: t.eventSequence,
          eventId: t.eventId,
          eventType: t.eventType,
          changedPaths: t.changedPaths,
          streamSequenceNumber: t.sequenceNumber,
        },
      });
    }

    const events = eventsFromStreamRecords(event.Records ?? []);
    if (events.length === 0) return { batchItemFailures: [] };
    const { publishable, held } = await withoutHeld(events.map((e) => e.envelope));
    if (held.length > 0) {
      tools.metrics.addMetric('EventsHeld', MetricUnit.Count, held.length);
      tools.logger.warn('events of held aggregates not published (they wait for a republish)', {
        held: held.slice(0, MAX_LISTED).map((e) => ({ domain: domainOf(e), aggregateId: e.aggregateId, eventSequence: e.eventSequence })),
      });
    }
    const report = await publisher.publish(publishable);
    // Each aggregate's published events, in order, up to its first undelivered one (the publisher sends none of an
    // aggregate's events after an undelivered one). The first of them was vouched for above: sequence 1, a
    // remembered predecessor, a hold read that found no hold, or a hold released meanwhile.
    const sent = new Set(report.published.map((e) => `${keyOf(e)}\u0000${e.eventSequence}`));
    const stopped = new Set<string>();
    for (const e of [...publishable].sort((a, b) => a.eventSequence - b.eventSequence)) {
      const streamId = keyOf(e);
      if (stopped.has(streamId)) continue;
      if (sent.has(`${streamId}\u0000${e.eventSequence}`)) delivered.record(streamId, e.eventSequence);
      else stopped.add(streamId);
    }

    tools.metrics.addMetric('EventsPublished', MetricUnit.Count, report.published.length);
    tools.metrics.addMetric('EventsUndelivered', MetricUnit.Count, report.undelivered.length);
    tools.metrics.addMetric('EventsClaimChecked', MetricUnit.Count, report.claimChecked.length);
    tools.metrics.publishStoredMetrics();

    for (const big of report.claimChecked) {
      tools.logger.warn('event published as a claim check (over 256 KB)', { aggregateId: big.aggregateId, eventSequence: big.eventSequence });
      await reporter.report(new Error(`event ${big.aggregateId}#${big.eventSequence} (${big.eventType}) is over 256 KB: published without its data`), {
        errorType: 'EventClaimChecked',
        severity: 'MEDIUM',
        correlationId: big.correlationId,
        retryable: false,
        context: { functionName, domain: big.source.replace(/^skafu\./, '') },
        metadata: { aggregateId: big.aggregateId, eventSequence: big.eventSequence, eventId: big.eventId, eventType: big.eventType },
      });
    }

    if (report.undelivered.length === 0) return { batchItemFailures: [] };
    if (holds) {
      try {
        await holdUndelivered(report, functionName);
        return { batchItemFailures: [] };
      } catch (err) {
        tools.logger.error('could not hold the aggregates; the batch is retried from the first undelivered event', { error: err as Error });
      }
    }

    const undelivered = new Set(report.undelivered.map((u) => `${u.event.aggregateId}\u0000${u.event.eventSequence}`));
    const firstFailed = events.find((e) => undelivered.has(`${e.envelope.aggregateId}\u0000${e.envelope.eventSequence}`))!;
    const pointers = report.undelivered.map((u) => ({
      domain: domainOf(u.event),
      aggregateId: u.event.aggregateId,
      eventSequence: u.event.eventSequence,
      eventId: u.event.eventId,
      eventType: u.event.eventType,
      errorCode: u.errorCode,
    }));
    const codes = [...new Set(report.undelivered.filter((u) => !u.blockedBy).map((u) => u.errorCode))];
    tools.logger.error('events not published; the batch is retried from the first of them', { undelivered: pointers.slice(0, MAX_LISTED) });
    await reporter.report(new Error(`${report.undelivered.length} committed event(s) not yet published to the bus (${codes.join(', ')}); retrying`), {
      errorType: 'EventPublicationFailed',
      severity: 'HIGH',
      correlationId: firstFailed.envelope.correlationId,
      retryable: true,
      retryCount: Math.max(...report.undelivered.map((u) => u.attempts)),
      context: { functionName },
      metadata: {
        undeliveredCount: pointers.length,
        undelivered: pointers.slice(0, MAX_LISTED),
        retryFromStreamSequence: firstFailed.sequenceNumber,
      },
    });
    return { batchItemFailures: [{ itemIdentifier: firstFailed.sequenceNumber }] };
  };
}

let instance: ReturnType<typeof createPublisherHandler> | undefined;

export const handler = async (event: DynamoDBStreamEvent, context: Context): Promise<DynamoDBBatchResponse> => {
  if (!instance) {
    const tools = powertools('skafu-outbox-publisher');
    const holdTable = process.env.SKAFU_HOLD_TABLE;
    const queueUrl = process.env.SKAFU_DEAD_LETTER_QUEUE_URL;
    instance = createPublisherHandler({
      tools,
      holds: holdTable ? new HoldStore(holdTable, traced(tools, new DynamoDBClient({}))) : undefined,
      deadLetters: queueUrl ? { sqs: traced(tools, new SQSClient({})), queueUrl } : undefined,
      publisher: new EventBusPublisher({ client: traced(tools, new EventBridgeClient({})) }),
      reporter: new ErrorReporter({ component: 'outbox-publisher', client: traced(tools, new EventBridgeClient({})) }),
    });
  }
  return instance(event, context);
};
