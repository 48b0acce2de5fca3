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
 * the outbox's tamper alarm watches. So does an INSERT of an event item whose partition key contradicts its
 * envelope's `source` and `aggregateId` (a writer claiming to speak for another domain or aggregate).
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
 * Aggregates whose events this execution environment delivered itself, each from its first event (sequence 1) up
 * to a sequence without a gap. The hold read of a batch is skipped for an aggregate whose first event in the batch
 * is its first event (nothing can be undelivered before it) or directly follows the sequence remembered here, and
 * whose other events in the batch follow without a gap (withoutHeld).
 *
 * Why that is safe: a hold only keeps an event from overtaking an undelivered earlier event of its aggregate. When
 * event n is 1, or follows a run 1..n-1 that this environment delivered, every earlier event has reached the bus,
 * whatever other environments did meanwhile and in whatever order the stream showed the records. (DynamoDB Streams
 * orders the records of each item, not those of the several items one transaction writes: "Change data capture
 * for DynamoDB Streams", DynamoDB developer guide. That is why a hold read that finds no hold never starts a run:
 * it does not prove that an earlier event was not handled after a later one.) What the skip does not see is a
 * hold created by another environment for an event this one had already delivered (a batch redelivered after its
 * invocation failed, or a record shown twice): this environment publishes the aggregate's next events; the
 * republish later sends the held events again, after them, as EventBridge's at-least-once delivery allows, and
 * the projections' checkpoints ignore the copies. A different environment, or one that forgot the aggregate,
 * reads the holds. Lambda does not promise to reuse an environment for a shard's next batch: reuse decides how
 * often the read is skipped, not whether skipping is right.
 */
export class DeliveredUpTo {
  private readonly upTo = new Map<string, number>();
  constructor(private readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new Error(`rememberedAggregates must be a whole number of 0 or more, not ${capacity}`);
  }

  /** True when nothing before event `sequence` of the stream can be undelivered (sequence 1, or after the run remembered). */
  public follows(streamId: string, sequence: number): boolean {
    return this.capacity > 0 && (sequence === 1 || this.upTo.get(streamId) === sequence - 1);
  }

  /**
   * This environment delivered event `sequence` of the stream. Remembered only when it is the stream's first event
   * or directly follows the sequence remembered, so that what is remembered is always a run this environment
   * delivered itself from sequence 1 on. A hold read that finds no hold is not enough to start a run: the records
   * of one transaction's items may reach the publisher in any order (see above), so event n may be handled before
   * event n-1 is.
   */
  public extend(streamId: string, sequence: number): void {
    const known = this.upTo.get(streamId);
    if ((known !== undefined && known >= sequence) || !this.follows(streamId, sequence)) return; // a copy, or a gap
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

  /** Each aggregate's sequences in these events, lowest first. */
  function sequencesOfEach(events: EventEnvelope[]): Map<string, number[]> {
    const each = new Map<string, number[]>();
    for (const e of events) {
      const key = keyOf(e);
      const list = each.get(key);
      if (list) list.push(e.eventSequence);
      else each.set(key, [e.eventSequence]);
    }
    for (const list of each.values()) list.sort((a, b) => a - b);
    return each;
  }

  /**
   * Leaves out the events of held aggregates (recording them on the hold); returns what may be published. The
   * holds are read for the aggregates `delivered` cannot vouch for, and not at all when it vouches for every one:
   * the aggregate's first event in the batch follows what it delivered, and the others follow without a gap (an
   * event after a gap may be waiting behind a held one: a transaction's records can arrive out of order).
   */
  async function withoutHeld(all: EventEnvelope[]): Promise<{ publishable: EventEnvelope[]; held: EventEnvelope[] }> {
    if (!holds) return { publishable: all, held: [] };
    const unsure = [...sequencesOfEach(all)]
      .filter(([streamId, list]) => !delivered.follows(streamId, list[0]) || list.some((seq, i) => i > 0 && seq > list[i - 1] + 1))
      .map(([streamId]) => streamId);
    if (unsure.length === 0) return { publishable: all, held: [] };
    const current = await holds.get(unsure);
    if (current.size === 0) return { publishable: all, held: [] };
    const publishable: EventEnvelope[] = [];
    const held: EventEnvelope[] = [];
    for (const e of [...all].sort((a, b) => a.eventSequence - b.eventSequence)) {
      const hold = current.get(keyOf(e));
      if (!hold || e.eventSequence < hold.fromSequence) {
        // Not held, or before the hold: published. An event before the hold may be a redelivered record (a copy
        // then reaches the bus, which consumers ignore) or one that arrived after a later event of the same
        // transaction was held; leaving it out would lose it, as the hold and its republish start later.
        publishable.push(e);
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

  /**
   * Holds every aggregate with an undelivered event, dead-letters their pointers and reports them. The dead-letter
   * message goes first: it is what an operator republishes from, and a hold without it would keep its aggregate
   * with nothing to release it. When a hold then cannot be written, the caller falls back to a batch item
   * failure: those events are tried again, and republishing the message later sends copies, which consumers ignore.
   */
  async function holdUndelivered(report: PublishReport, functionName: string): Promise<void> {
    const byStream = new Map<string, PublishReport['undelivered']>();
    for (const u of report.undelivered) byStream.set(keyOf(u.event), [...(byStream.get(keyOf(u.event)) ?? []), u]);
    const pointers: EventPointer[] = report.undelivered.map((u) => {
      const { aggregateId, eventSequence, eventId, eventType } = u.event;
      return { domain: domainOf(u.event), aggregateId, eventSequence, eventId, eventType, errorCode: u.errorCode };
    });
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
      const what = {
        REMOVE: 'deleted',
        MODIFY: `modified (${t.changedPaths.join(', ')})`,
        INSERT: `written with an envelope its key contradicts (${t.changedPaths.join(', ')}); not published`,
      }[t.change];
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
    // What this environment now knows it delivered itself, without a gap from sequence 1 (see DeliveredUpTo). The
    // publisher accepts an aggregate's events in sequence order, one after the other.
    for (const e of report.published) delivered.extend(keyOf(e), e.eventSequence);

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

    const undelivered = new Set(report.undelivered.map((u) => `${keyOf(u.event)}\u0000${u.event.eventSequence}`));
    const firstFailed = events.find((e) => undelivered.has(`${keyOf(e.envelope)}\u0000${e.envelope.eventSequence}`))!;
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
