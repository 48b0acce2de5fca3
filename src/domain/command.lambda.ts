/**
 * The bundled command handler of a declared domain: validates the body (its JSON Schema, compiled to code at synth
 * and shipped in the function's asset with the domain spec; see internal/spec-loader.ts), resolves the aggregate
 * id and the expected version (`If-Match`), checks the precondition, appends the event (idempotent with
 * `Idempotency-Key`), and answers 201/202 with `aggregateId`, `eventSequence` and `correlationId`.
 *
 * Answers: 400 invalid JSON or body (with the failing paths, including refused `__proto__`/`constructor` keys),
 * bad id, bad header; 403 not the aggregate's owner; 404 aggregate must exist but does not, or the id belongs to an
 * aggregate of another type (answered exactly as a missing id); 409 version conflict, aggregate already exists,
 * idempotency key reused, or a declared guard failed (`error` is the guard's name); 413 body too large; 415 not
 * JSON; 503 with Retry-After when an unconditional (no If-Match) append kept losing races on a busy aggregate
 * until the handler's time budget was nearly spent; 500 unexpected (reported on the error bus). Every answer is
 * JSON with the correlation id. Nothing is written for any answer but 201/202. Commands with declared rules
 * (state, guards, ownership, several events) run through CommandRules; an EventBridge event is a declared
 * reaction (see reactions.ts).
 */
import { randomUUID } from 'node:crypto';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { CommandRules, RuleRejection } from './command-rules';
import { Responder, requestCorrelationId } from './http-response';
import { isReactionEvent, runReaction } from './reactions';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { loadDomainSpec, loadValidators, type CompiledValidator } from '../internal/spec-loader';
import { VALIDATOR_RUNTIME } from '../internal/validator-runtime';
import { canonicalJson, sha256 } from '../runtime/canonical-json';
import type { CommandSpec, DomainSpec } from '../runtime/domain-spec';
import { allowedHeaders } from '../runtime/error-event';
import { ErrorReporter } from '../runtime/error-reporter';
import {
  AggregateTypeMismatchError,
  ConcurrencyError,
  EventStoreValidationError,
  IdempotencyKeyReuseError,
  StreamContentionError,
} from '../runtime/errors';
import { ANY, EventStore, NO_STREAM, idempotencyScope, type ExpectedVersion } from '../runtime/event-store';
import { headerValue } from '../runtime/http';
import type { JsonObject, JsonValue } from '../runtime/json';

export interface CommandHandlerDeps {
  readonly spec: DomainSpec;
  /** Each command's body validator (compiled from its schema at synth), by command name. */
  readonly validators: Record<string, CompiledValidator>;
  readonly store: EventStore;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
  readonly corsOrigins?: string[];
}

const AGGREGATE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
/** Time kept back from an unconditional append's retries, to answer (and report) before Lambda's timeout. */
const ANSWER_MARGIN_MS = 2000;
/** The time budget when the handler runs without a Lambda context (tests, Skafu Local without one). */
const DEFAULT_BUDGET_MS = 10_000;

class Rejection extends Error {
  constructor(
    public readonly status: number,
    public readonly error: string,
    message: string,
    public readonly extra: Record<string, unknown> = {},
    public readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function createCommandHandler(deps: CommandHandlerDeps) {
  const { spec, store, reporter, tools } = deps;
  const responder = new Responder(deps.corsOrigins ?? []);
  const rules = new CommandRules(spec, store);
  const commands = new Map<string, { spec: CommandSpec; validate: CompiledValidator }>();
  for (const command of spec.commands) {
    const validate = Object.prototype.hasOwnProperty.call(deps.validators, command.name) ? deps.validators[command.name] : undefined;
    if (typeof validate !== 'function') throw new Error(`no compiled validator for command ${command.name}: the handler's asset is incomplete`);
    commands.set(`${command.method} ${command.resource}`, { spec: command, validate });
  }

  return async (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult> => {
    const correlationId = requestCorrelationId(event);
    tools.logger.appendKeys({ correlationId });
    const found = commands.get(`${event.httpMethod} ${event.resource}`);
    try {
      if (!found) throw new Rejection(404, 'NotFound', `no command is declared for ${event.httpMethod} ${event.resource}`);
      const result = await execute(found.spec, found.validate, event, correlationId, context);
      tools.metrics.addDimension('command', found.spec.name);
      tools.metrics.addMetric('CommandAccepted', MetricUnit.Count, 1);
      return result;
    } catch (err) {
      if (err instanceof Rejection || err instanceof RuleRejection) {
        // 'message' is a key the Powertools logger reserves (it drops it and warns): the reason goes under 'reason'.
        tools.logger.info('command rejected', { command: found?.spec.name, status: err.status, error: err.error, reason: err.message });
        tools.metrics.addMetric('CommandRejected', MetricUnit.Count, 1);
        const headers = err instanceof Rejection ? err.headers : {};
        return responder.json(event, err.status, { error: err.error, message: err.message, ...err.extra }, correlationId, headers);
      }
      tools.logger.error('command failed', { command: found?.spec.name, error: err as Error });
      tools.metrics.addMetric('CommandFailed', MetricUnit.Count, 1);
      await reporter.report(err, {
        correlationId,
        context: {
          domain: spec.domain,
          functionName: context?.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME,
          apiPath: event.resource,
          httpMethod: event.httpMethod,
          userId: userIdOf(event),
        },
        // Headers from an allow-list only; the body parsed and redacted by key (or dropped) by the reporter.
        original: { path: event.path, pathParameters: event.pathParameters, headers: allowedHeaders(event.headers), body: bodyText(event) },
      });
      return responder.error(event, 500, 'InternalError', 'Internal error', correlationId);
    } finally {
      tools.metrics.publishStoredMetrics();
      tools.logger.removeKeys(['correlationId']);
    }
  };

  async function execute(
    command: CommandSpec,
    validate: CompiledValidator,
    event: APIGatewayProxyEvent,
    correlationId: string,
    context: Context | undefined,
  ): Promise<APIGatewayProxyResult> {
    const started = Date.now();
    const body = parseBody(command, event);
    if (!validate(body)) {
      const details = (validate.errors ?? []).slice(0, 20).map((e) => ({
        path: e.instancePath || '/',
        message: e.message ?? 'is invalid',
        ...(e.params && Object.keys(e.params).length > 0 ? { params: e.params } : {}),
      }));
      throw new Rejection(400, 'ValidationError', `the body does not match ${command.name}'s schema`, { details });
    }
    const aggregateId = resolveAggregateId(command, event, body as JsonObject);
    const idempotencyKey = headerValue(event.headers, 'Idempotency-Key');
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new Rejection(400, 'ValidationError', 'Idempotency-Key must be 1-128 letters, digits or . _ : -');
    }
    const userId = userIdOf(event);
    // Own properties only, defined rather than assigned: a body key never reaches a prototype.
    const data: JsonObject = { ...(body as JsonObject) };
    for (const [field, source] of Object.entries(command.extraData)) {
      const value = dataValue(source, event, aggregateId, userId);
      Object.defineProperty(data, field, { value, enumerable: true, writable: true, configurable: true });
    }
    const remaining = context?.getRemainingTimeInMillis?.() ?? DEFAULT_BUDGET_MS - (Date.now() - started);
    const events = [
      { eventType: command.eventType, eventVersion: command.eventVersion, data },
      ...(command.additionalEvents ?? []).map((e) => {
        const extra: JsonObject = { ...(e.includeBody ? (body as JsonObject) : {}) };
        for (const [field, source] of Object.entries(e.extraData)) {
          const value = dataValue(source, event, aggregateId, userId);
          Object.defineProperty(extra, field, { value, enumerable: true, writable: true, configurable: true });
        }
        return { eventType: e.eventType, eventVersion: e.eventVersion, data: extra };
      }),
    ];
    // Scoped per command and user (the store scopes it per domain): one client's key never replays another's
    // result. Each part is length-delimited before hashing, so no choice of user id and key can collide.
    const scopedKey = idempotencyKey ? idempotencyScope(command.name, userId ?? null, idempotencyKey) : undefined;
    const fingerprint = sha256(canonicalJson([command.name, event.pathParameters ?? {}, body]));
    try {
      const expectedVersion = await resolveExpectedVersion(command, event, aggregateId);
      const append = {
        correlationId,
        causationId: event.requestContext?.requestId ?? correlationId,
        idempotencyKey: scopedKey,
        deadline: Date.now() + Math.max(0, remaining - ANSWER_MARGIN_MS),
        // The request, not the event: a retried create generates a new id and time, and is still the same request.
        requestFingerprint: fingerprint,
        metadata: {
          ...(userId ? { userId } : {}),
          ...(event.requestContext?.requestId ? { requestId: event.requestContext.requestId } : {}),
          command: command.name,
        },
      };
      const result = rules.applies(command) || isSystemRequest(event)
        ? await rules.run({
          command,
          aggregateId,
          ifMatch: typeof expectedVersion === 'number' ? expectedVersion : undefined,
          body: body as JsonObject,
          events,
          user: { id: userId ?? null, groups: groupsOf(event) },
          system: isSystemRequest(event),
          commandId: scopedKey,
          fingerprint,
          append,
        })
        : await store.append(aggregateId, events, { ...append, expectedVersion, aggregateType: command.aggregateType });
      const [committed] = result.events;
      return responder.json(
        event,
        result.firstSequence === 1 ? 201 : 202,
        {
          aggregateId: result.aggregateId,
          eventSequence: committed.eventSequence,
          eventId: committed.eventId,
          eventType: committed.eventType,
          ...(result.events.length > 1
            ? { events: result.events.map((e) => ({ eventId: e.eventId, eventType: e.eventType, eventSequence: e.eventSequence })) }
            : {}),
        },
        correlationId,
        { ETag: `"${result.nextExpectedVersion}"`, ...(result.idempotentReplay ? { 'Idempotent-Replayed': 'true' } : {}) },
      );
    } catch (err) {
      if (err instanceof AggregateTypeMismatchError) {
        // The id is another type's aggregate. A create cannot take it; anything else answers exactly as for a
        // missing id, so a caller learns nothing about other aggregates.
        if (command.precondition === 'must-not-exist') {
          throw new Rejection(409, 'AggregateAlreadyExists', `${command.aggregateType} '${aggregateId}' already exists`);
        }
        throw new Rejection(404, 'AggregateNotFound', `${command.aggregateType} '${aggregateId}' does not exist`);
      }
      if (err instanceof StreamContentionError) {
        throw new Rejection(
          503,
          'AggregateBusy',
          `${command.aggregateType} '${aggregateId}' is receiving many concurrent updates; retry after ${err.retryAfterSeconds} s`,
          {},
          { 'Retry-After': String(err.retryAfterSeconds) },
        );
      }
      if (err instanceof ConcurrencyError) {
        if (command.precondition === 'must-not-exist' || err.expectedVersion === NO_STREAM) {
          throw new Rejection(409, 'AggregateAlreadyExists', `${command.aggregateType} '${aggregateId}' already exists`);
        }
        if (err.actualVersion === 0) throw new Rejection(404, 'AggregateNotFound', `${command.aggregateType} '${aggregateId}' does not exist`);
        throw new Rejection(409, 'VersionConflict', `${command.aggregateType} '${aggregateId}' is at version ${err.actualVersion}, not ${String(err.expectedVersion)}`, {
          expectedVersion: err.expectedVersion,
          actualVersion: err.actualVersion,
        });
      }
      if (err instanceof IdempotencyKeyReuseError) {
        throw new Rejection(409, 'IdempotencyKeyReused', 'this Idempotency-Key was already used for a different request');
      }
      if (err instanceof EventStoreValidationError) {
        const tooLarge = err.problems.some((p) => /bytes, over/.test(p.message));
        throw new Rejection(tooLarge ? 413 : 400, tooLarge ? 'PayloadTooLarge' : 'ValidationError', err.message, {
          details: err.problems.map((p) => ({ path: bodyPath(p.path), message: p.message })),
        });
      }
      throw err;
    }
  }

  function parseBody(command: CommandSpec, event: APIGatewayProxyEvent): unknown {
    const contentType = headerValue(event.headers, 'Content-Type');
    if (contentType !== undefined && !/^application\/([a-z0-9.+-]*\+)?json\b/i.test(contentType.trim())) {
      throw new Rejection(415, 'UnsupportedMediaType', 'the body must be application/json');
    }
    const raw = event.body === null || event.body === undefined ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    if (Buffer.byteLength(raw, 'utf8') > command.maxBodyBytes) {
      throw new Rejection(413, 'PayloadTooLarge', `the body is over ${command.maxBodyBytes} bytes`);
    }
    if (raw.trim() === '') return {};
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new Rejection(400, 'ValidationError', 'the body is not valid JSON');
    }
  }

  function resolveAggregateId(command: CommandSpec, event: APIGatewayProxyEvent, body: JsonObject): string {
    const source = command.aggregateId;
    let id: unknown;
    if (source.kind === 'generated') id = `${source.prefix}${randomUUID()}`;
    else if (source.kind === 'path') id = event.pathParameters?.[source.name];
    else id = body[source.field];
    if (typeof id !== 'string' || !AGGREGATE_ID.test(id)) {
      const where = source.kind === 'path' ? `path parameter '${source.name}'` : source.kind === 'body' ? `body field '${source.field}'` : 'generated id';
      throw new Rejection(400, 'ValidationError', `the ${where} must be 1-256 letters, digits or . _ : - (starting with a letter or digit)`);
    }
    return id;
  }

  async function resolveExpectedVersion(command: CommandSpec, event: APIGatewayProxyEvent, aggregateId: string): Promise<ExpectedVersion> {
    const ifMatch = headerValue(event.headers, 'If-Match')?.trim();
    let version: number | undefined;
    if (ifMatch !== undefined && ifMatch !== '*') {
      const m = /^(?:W\/)?"?(\d{1,15})"?$/.exec(ifMatch);
      if (!m) throw new Rejection(400, 'ValidationError', 'If-Match must be a version number (an ETag such as "3")');
      version = Number(m[1]);
    }
    if (command.precondition === 'must-not-exist') {
      if (ifMatch !== undefined && version !== 0) throw new Rejection(400, 'ValidationError', `${command.name} creates the aggregate: If-Match may only be "0"`);
      return NO_STREAM;
    }
    if (version !== undefined) {
      if (command.precondition === 'must-exist' && version === 0) throw new Rejection(400, 'ValidationError', `${command.name} needs an existing aggregate: If-Match must be 1 or more`);
      return version;
    }
    if (command.precondition === 'must-exist' || ifMatch === '*') {
      // Events are never deleted: once the aggregate exists it keeps existing, so 'any' is safe after this check.
      if ((await store.readVersion(aggregateId, { aggregateType: command.aggregateType })) === 0) {
        throw new Rejection(404, 'AggregateNotFound', `${command.aggregateType} '${aggregateId}' does not exist`);
      }
    }
    return ANY;
  }
}

function groupsOf(event: APIGatewayProxyEvent): string[] {
  const groups = (event.requestContext?.authorizer as Record<string, unknown> | undefined)?.groups;
  return typeof groups === 'string' ? groups.split(',').map((g) => g.trim()).filter(Boolean) : [];
}

/** A reaction's request, built by the handler itself from an EventBridge event (never reachable over HTTP). */
function isSystemRequest(event: APIGatewayProxyEvent): boolean {
  return (event.requestContext?.authorizer as Record<string, unknown> | undefined)?.skafuReaction === true;
}

function userIdOf(event: APIGatewayProxyEvent): string | undefined {
  const id = (event.requestContext?.authorizer as Record<string, unknown> | undefined)?.userId;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

function dataValue(source: CommandSpec['extraData'][string], event: APIGatewayProxyEvent, aggregateId: string, userId: string | undefined): JsonValue {
  switch (source.kind) {
    case 'path':
      return event.pathParameters?.[source.name] ?? null;
    case 'userId':
      return userId ?? null;
    case 'requestTime':
      return new Date().toISOString();
    case 'aggregateId':
      return aggregateId;
    default:
      return source.value;
  }
}

/** A store problem's path as a JSON Pointer into the body: `events[0].data.tags["a b"]` -> `/tags/a b`. */
function bodyPath(path: string): string {
  const rest = path.replace(/^events\[0\]\.data/, '');
  if (rest === path) return `/${path}`;
  const parts: string[] = [];
  const re = /\.([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest))) parts.push(m[1] ?? m[2] ?? (JSON.parse(m[3]) as string));
  return `/${parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
}

/** The body as text (decoded when base64): the reporter parses and redacts it, never passes it raw. */
function bodyText(event: APIGatewayProxyEvent): string | null {
  if (event.body === null || event.body === undefined) return null;
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

let instance: ReturnType<typeof createCommandHandler> | undefined;
let shippedSpec: DomainSpec | undefined;
let reactionReporter: ErrorReporter | undefined;

export const handler = async (event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult | void> => {
  if (!instance) {
    const tools = powertools(`skafu-${process.env.SKAFU_DOMAIN ?? 'domain'}-commands`);
    const spec = (shippedSpec = loadDomainSpec());
    instance = createCommandHandler({
      spec,
      validators: loadValidators(VALIDATOR_RUNTIME),
      tools,
      store: EventStore.fromEnvironment({ client: traced(tools, new DynamoDBClient({})) }),
      reporter: new ErrorReporter({ component: spec.domain, client: traced(tools, new EventBridgeClient({})) }),
      corsOrigins: (process.env.SKAFU_CORS_ORIGINS ?? '').split(',').filter(Boolean),
    });
    reactionReporter = new ErrorReporter({ component: `${spec.domain}-reactions`, client: traced(tools, new EventBridgeClient({})) });
  }
  if (isReactionEvent(event)) return runReaction(shippedSpec!, event, instance, reactionReporter!, context);
  return instance(event, context);
};
