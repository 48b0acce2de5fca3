/**
 * Declared reactions, handler side: an event of another domain, delivered by the reaction's EventBridge rule
 * (asynchronous Lambda invocation), becomes one of this domain's commands, run by the same code path as an HTTP
 * command (schema, rules, guards, atomic append):
 *
 * - command id: `reaction.<reaction name>.<eventId>` (the event envelope's id, which stays the same when the
 *   event is redelivered or republished), used as the Idempotency-Key, so the command is appended once;
 * - causation id: the event id; correlation id: the event's correlation id;
 * - the command runs as the platform, not a user: ownership does not apply, guards do (`user.id` is null).
 *
 * Outcomes: 2xx (or an idempotent replay) succeeds. A 4xx is a business refusal that a retry cannot change: it
 * is reported on the error bus (errorType ReactionRejected) and the delivery succeeds. A 409 VersionConflict or a
 * 5xx (already reported by the command handler) throws, so Lambda retries the asynchronous invocation and then
 * sends it to the reaction's dead-letter queue (configured by EventSourcedDomain).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { DomainSpec, ReactionSpec, ReactionValueSpec } from '../runtime/domain-spec';
import type { ErrorReporter } from '../runtime/error-reporter';
import type { JsonObject, JsonValue } from '../runtime/json';
import { withPrefix } from '../runtime/state-fold';

/** An EventBridge event as a rule delivers it to Lambda. */
export interface ReactionEvent {
  readonly 'id'?: string;
  readonly 'source': string;
  readonly 'detail-type': string;
  readonly 'detail': Record<string, unknown>;
}

const EVENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

export function isReactionEvent(event: unknown): event is ReactionEvent {
  if (event === null || typeof event !== 'object') return false;
  const e = event as Record<string, unknown>;
  return e.httpMethod === undefined && typeof e['detail-type'] === 'string' && typeof e.source === 'string' && typeof e.detail === 'object' && e.detail !== null;
}

/** The reaction declared for an event (one per source and type in a domain). */
export function reactionFor(spec: DomainSpec, event: ReactionEvent): ReactionSpec | undefined {
  return (spec.reactions ?? []).find((r) => r.source === event.source && r.eventType === event['detail-type']);
}

function own(value: unknown, key: string): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || FORBIDDEN.has(key)) return undefined;
  return Object.prototype.hasOwnProperty.call(value, key) ? (value as Record<string, unknown>)[key] : undefined;
}

function valueOf(v: ReactionValueSpec, detail: Record<string, unknown>): JsonValue {
  if (v.kind === 'constant') return v.value;
  if (v.kind === 'envelope') {
    const value = v.field === 'userId' ? own(own(detail, 'metadata'), 'userId') : own(detail, v.field);
    return value === undefined ? null : (value as JsonValue);
  }
  let cur: unknown = own(detail, 'data');
  for (const seg of v.path) cur = own(cur, seg);
  return withPrefix(cur === undefined ? null : (cur as JsonValue), v.prefix);
}

/** The command request a reaction makes of an event; throws when the event cannot make one. */
export function reactionRequest(spec: DomainSpec, reaction: ReactionSpec, event: ReactionEvent): APIGatewayProxyEvent {
  const command = spec.commands.find((c) => c.name === reaction.command);
  if (!command) throw new Error(`reaction ${reaction.name}: command ${reaction.command} is not in the spec`);
  const detail = event.detail;
  const eventId = own(detail, 'eventId');
  if (typeof eventId !== 'string' || !EVENT_ID.test(eventId)) throw new Error(`reaction ${reaction.name}: the event has no usable eventId`);
  const correlation = own(detail, 'correlationId');
  const correlationId = typeof correlation === 'string' && EVENT_ID.test(correlation) ? correlation : eventId;
  const pathParameters: Record<string, string> = {};
  let path = command.resource;
  for (const [name, source] of Object.entries(reaction.pathParameters)) {
    const value = valueOf(source, detail);
    if (typeof value !== 'string' && typeof value !== 'number') throw new Error(`reaction ${reaction.name}: path parameter ${name} has no string value in the event`);
    pathParameters[name] = String(value);
    path = path.replace(`{${name}}`, encodeURIComponent(String(value)));
  }
  const body: JsonObject = {};
  for (const [field, source] of Object.entries(reaction.body)) {
    Object.defineProperty(body, field, { value: valueOf(source, detail), enumerable: true, writable: true, configurable: true });
  }
  return {
    httpMethod: command.method,
    resource: command.resource,
    path,
    pathParameters,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `reaction.${reaction.name}.${eventId}`, 'X-Correlation-Id': correlationId },
    multiValueHeaders: {},
    body: JSON.stringify(body),
    isBase64Encoded: false,
    stageVariables: null,
    // The handler builds this itself: an HTTP request's authorizer context never carries skafuReaction.
    requestContext: {
      requestId: eventId,
      httpMethod: command.method,
      resourcePath: command.resource,
      authorizer: { skafuReaction: true, correlationId },
    } as never,
  } as unknown as APIGatewayProxyEvent;
}

/** Runs the reaction an event is for (see the module comment for the outcomes). */
export async function runReaction(
  spec: DomainSpec,
  event: ReactionEvent,
  handle: (request: APIGatewayProxyEvent, context?: Context) => Promise<APIGatewayProxyResult>,
  reporter: ErrorReporter,
  context?: Context,
): Promise<void> {
  const reaction = reactionFor(spec, event);
  const correlation = own(event.detail, 'correlationId');
  const reportContext = { domain: spec.domain, reaction: reaction?.name ?? null, eventType: event['detail-type'], source: event.source, eventId: (own(event.detail, 'eventId') as JsonValue) ?? null };
  let request: APIGatewayProxyEvent;
  try {
    if (!reaction) throw new Error(`no reaction of ${spec.domain} is declared for ${event.source} ${event['detail-type']}`);
    request = reactionRequest(spec, reaction, event);
  } catch (err) {
    // The event cannot make a command: a retry cannot change that.
    await reporter.report(err, { correlationId: typeof correlation === 'string' ? correlation : undefined, errorType: 'ReactionRejected', retryable: false, context: reportContext, original: event });
    return;
  }
  const response = await handle(request, context);
  if (response.statusCode < 300) return;
  const answer = JSON.parse(response.body) as { error?: string; message?: string };
  const retryable = response.statusCode >= 500 || answer.error === 'VersionConflict';
  if (retryable) {
    // 5xx: the command handler reported it already. Throwing makes Lambda retry, then dead-letter.
    throw new Error(`reaction ${reaction!.name} to event ${String(reportContext.eventId)}: ${response.statusCode} ${answer.error ?? ''} ${answer.message ?? ''}`.trim());
  }
  await reporter.report(new Error(`${reaction!.command} refused the reaction: ${response.statusCode} ${answer.error}: ${answer.message}`), {
    correlationId: request.requestContext.authorizer?.correlationId as string,
    errorType: 'ReactionRejected',
    severity: 'MEDIUM',
    retryable: false,
    context: { ...reportContext, status: response.statusCode, error: answer.error ?? null },
    original: event,
  });
}
