import { randomUUID } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { ERROR_DETAIL_TYPE, type ErrorContext, type ErrorEventDetail, type ErrorSeverity, sanitizeForError } from './error-event';
import type { JsonValue } from './json';

export interface ErrorReporterOptions {
  /**
   * The error bus name or ARN.
   * @default process.env.SKAFU_ERROR_BUS_NAME
   */
  readonly busName?: string;
  /** The reporting component: events get `source: skafu.<component>` (e.g. the domain, `outbox-publisher`). */
  readonly component: string;
  /** Merged into every report's context (domain, function name, ...). */
  readonly defaultContext?: ErrorContext;
  /** @default a new EventBridgeClient */
  readonly client?: EventBridgeClient;
  /**
   * Where the fallback goes when the bus cannot be reached: one JSON line per error.
   * @default console.error
   */
  readonly log?: (line: string) => void;
  /** @default () => new Date() */
  readonly clock?: () => Date;
}

export interface ReportInput {
  readonly correlationId?: string;
  /** @default from the error: validation and concurrency errors LOW, anything else HIGH */
  readonly severity?: ErrorSeverity;
  /** @default the error's name (ValidationError, ConcurrencyError, ...) */
  readonly errorType?: string;
  readonly context?: ErrorContext;
  /** @default 0 */
  readonly retryCount?: number;
  /** @default the error's own `retryable` flag, else false */
  readonly retryable?: boolean;
  /** The event or request being processed; redacted and truncated before it is sent. */
  readonly original?: unknown;
  /** Extra metadata (JSON). */
  readonly metadata?: Record<string, JsonValue>;
}

export interface ReportOutcome {
  readonly detail: ErrorEventDetail;
  /** True when the bus accepted the event; false when it went to the fallback log line. */
  readonly delivered: boolean;
}

/**
 * Builds `Application Error` events and puts them on the error bus. It never throws into the caller's path:
 * if the bus refuses the entry (FailedEntryCount) or cannot be reached, the error is written as one structured
 * JSON log line instead (with `errorDeliveryFailed`), so nothing is lost silently.
 */
export class ErrorReporter {
  private readonly client: EventBridgeClient;
  private readonly busName?: string;
  private readonly log: (line: string) => void;
  private readonly clock: () => Date;

  constructor(private readonly options: ErrorReporterOptions) {
    this.busName = options.busName ?? process.env.SKAFU_ERROR_BUS_NAME;
    this.client = options.client ?? new EventBridgeClient({});
    this.log = options.log ?? ((line) => console.error(line));
    this.clock = options.clock ?? (() => new Date());
  }

  /** The error event for an exception, without sending it. */
  public build(error: unknown, input: ReportInput = {}): ErrorEventDetail {
    const err = toError(error);
    const original = input.original === undefined ? undefined : sanitizeForError(input.original);
    const context = sanitizeForError({ ...(this.options.defaultContext ?? {}), ...(input.context ?? {}) }, 2048).value as ErrorContext;
    return {
      errorId: randomUUID(),
      correlationId: input.correlationId ?? randomUUID(),
      errorType: input.errorType ?? errorTypeOf(err),
      severity: input.severity ?? defaultSeverity(err),
      message: truncate(err.message || String(error), 1000),
      context,
      metadata: {
        ...(input.metadata ? (sanitizeForError(input.metadata, 16 * 1024).value as Record<string, JsonValue>) : {}),
        retryCount: input.retryCount ?? 0,
        retryable: input.retryable ?? (err as { retryable?: boolean }).retryable === true,
        ...(original ? { original: original.value, ...(original.truncated ? { originalTruncated: true } : {}) } : {}),
      },
      timestamp: this.clock().toISOString(),
    };
  }

  /** Builds the error event and puts it on the bus; falls back to a log line. Never throws. */
  public async report(error: unknown, input: ReportInput = {}): Promise<ReportOutcome> {
    let detail: ErrorEventDetail;
    try {
      detail = this.build(error, input);
    } catch (buildError) {
      // Building must not fail the caller either: report the bare minimum.
      detail = this.build(new Error(`${String(error)} (error report could not be built: ${String(buildError)})`), {
        correlationId: input.correlationId,
      });
    }
    return this.send(detail);
  }

  /** Puts a ready-made error event on the bus; falls back to a log line. Never throws. */
  public async send(detail: ErrorEventDetail): Promise<ReportOutcome> {
    if (!this.busName) {
      this.fallback(detail, 'no error bus configured (SKAFU_ERROR_BUS_NAME)');
      return { detail, delivered: false };
    }
    try {
      const out = await this.client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: this.busName,
              Source: `skafu.${this.options.component}`,
              DetailType: ERROR_DETAIL_TYPE,
              Detail: JSON.stringify(detail),
              Time: new Date(detail.timestamp),
            },
          ],
        }),
      );
      if ((out.FailedEntryCount ?? 0) > 0) {
        const entry = out.Entries?.[0];
        this.fallback(detail, `PutEvents refused the entry: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`.trim());
        return { detail, delivered: false };
      }
      return { detail, delivered: true };
    } catch (sendError) {
      this.fallback(detail, `PutEvents failed: ${(sendError as Error).name ?? ''} ${(sendError as Error).message ?? String(sendError)}`.trim());
      return { detail, delivered: false };
    }
  }

  private fallback(detail: ErrorEventDetail, reason: string): void {
    try {
      this.log(
        JSON.stringify({
          level: 'ERROR',
          message: 'error event not delivered to the error bus; logged instead',
          errorDeliveryFailed: reason,
          source: `skafu.${this.options.component}`,
          detailType: ERROR_DETAIL_TYPE,
          detail,
        }),
      );
    } catch {
      // Even logging failed: there is nothing left that would not throw into the caller.
    }
  }
}

function toError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(typeof error === 'string' ? error : safeString(error));
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function errorTypeOf(err: Error): string {
  const name = err.name && err.name !== 'Error' ? err.name : err.constructor?.name;
  return name && name !== 'Error' ? name : 'SystemError';
}

function defaultSeverity(err: Error): ErrorSeverity {
  if (/Validation|ConcurrencyError|IdempotencyKeyReuse/.test(err.name)) return 'LOW';
  return 'HIGH';
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
