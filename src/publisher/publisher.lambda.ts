/**
 * The outbox publisher: fed by the event store's stream, it publishes every committed event to the domain bus
 * (source `skafu.<domain>`, detail-type = eventType, detail = the clean envelope), in per-aggregate order.
 *
 * Failure paths, none of which loses an event:
 * - entries that fail are retried in place with backoff (only the failed ones);
 * - events still undelivered make the handler report them on the error bus (aggregate and sequence of each)
 *   and return a batch item failure at the earliest of them, so Lambda retries from there, in order;
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
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { Context, DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { ErrorReporter } from '../runtime/error-reporter';
import { EventBusPublisher } from '../runtime/event-publisher';
import { domainOf, eventsFromStreamRecords, tamperedEventsFromStreamRecords } from '../runtime/stream-records';

export interface PublisherHandlerDeps {
  readonly publisher: EventBusPublisher;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
}

const MAX_LISTED = 100;

export function createPublisherHandler(deps: PublisherHandlerDeps) {
  const { publisher, reporter, tools } = deps;
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
    const report = await publisher.publish(events.map((e) => e.envelope));

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
    instance = createPublisherHandler({
      tools,
      publisher: new EventBusPublisher({ client: traced(tools, new EventBridgeClient({})) }),
      reporter: new ErrorReporter({ component: 'outbox-publisher', client: traced(tools, new EventBridgeClient({})) }),
    });
  }
  return instance(event, context);
};
