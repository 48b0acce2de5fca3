import type { JsonObject, JsonValue } from './json';

/** How bad an error is. CRITICAL errors can page someone (ErrorBus `criticalTopic`). */
export type ErrorSeverity = 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export const ERROR_SEVERITIES: ReadonlyArray<ErrorSeverity> = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];

/** The EventBridge detail-type of every Skafu error event. */
export const ERROR_DETAIL_TYPE = 'Application Error';

/** Where an error happened. */
export interface ErrorContext {
  readonly domain?: string;
  /** The Lambda function, state machine or component that failed. */
  readonly functionName?: string;
  readonly stateMachine?: string;
  readonly apiPath?: string;
  readonly httpMethod?: string;
  readonly userId?: string;
  readonly [key: string]: JsonValue | undefined;
}

/** What is known about retrying, and what was being processed (truncated, secrets redacted). */
export interface ErrorMetadata {
  readonly retryCount: number;
  readonly retryable: boolean;
  /** The event or request being processed, with secrets redacted, truncated to 8 KB of JSON. */
  readonly original?: JsonValue;
  /** True when `original` was cut down to fit. */
  readonly originalTruncated?: boolean;
  readonly [key: string]: JsonValue | undefined;
}

/**
 * The one error event schema of the library: the `detail` of an `Application Error` event on the error bus,
 * with `source: skafu.<component>`. It never holds stack traces or secrets.
 */
export interface ErrorEventDetail {
  readonly errorId: string;
  readonly correlationId: string;
  /** The error's class: ValidationError, ConcurrencyError, EventPublicationFailed, ProjectionFailed, ... */
  readonly errorType: string;
  readonly severity: ErrorSeverity;
  readonly message: string;
  readonly context: ErrorContext;
  readonly metadata: ErrorMetadata;
  /** ISO-8601 UTC. */
  readonly timestamp: string;
}

const SECRET_KEY =
  /authori[sz]ation|password|passwd|passphrase|secret|token|cookie|session|api[-_]?key|credential|private[-_]?key|signature|e-?mail|phone|ssn|credit[-_]?card|card[-_]?number|cvv|cvc|iban|otp/i;
/** Keys whose string value is a raw message body: parsed and redacted when it is JSON, dropped when not. */
const BODY_KEY = /^(body|rawBody|payload)$/i;

/**
 * The request headers worth keeping in an error event; every other header (Authorization, Cookie, custom
 * tokens, forwarded addresses, ...) is dropped.
 */
export const ALLOWED_ERROR_HEADERS: ReadonlySet<string> = new Set([
  'accept',
  'content-type',
  'content-length',
  'content-encoding',
  'user-agent',
  'x-correlation-id',
  'x-request-id',
  'x-amzn-trace-id',
  'idempotency-key',
  'if-match',
  'origin',
]);

/** Only the allow-listed headers (names compared case-insensitively). */
export function allowedHeaders(headers: Record<string, string | undefined> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined && ALLOWED_ERROR_HEADERS.has(name.toLowerCase())) out[name] = value;
  }
  return out;
}
export const MAX_ORIGINAL_BYTES = 8 * 1024;

/**
 * Makes a value safe to put in an error event: JSON only, secrets and personal data (by key name: authorization,
 * password, token, secret, cookie, session, api key, credential, email, phone, card numbers, ...) replaced by
 * "[REDACTED]", a string under a `body`/`rawBody`/`payload` key parsed as JSON and redacted the same way (or
 * dropped when it is not JSON: a form or text body cannot be redacted by key), long strings cut, and the whole
 * cut to `maxBytes` of JSON by dropping the deepest and largest parts first. Keys are copied as own properties,
 * so a `__proto__` key never reaches a prototype.
 */
export function sanitizeForError(value: unknown, maxBytes = MAX_ORIGINAL_BYTES): { value: JsonValue; truncated: boolean } {
  let truncated = false;
  const seen = new Set<unknown>();
  const clean = (v: unknown, depth: number, maxString: number): JsonValue => {
    if (v === null || v === undefined) return null;
    if (typeof v === 'string') {
      if (v.length > maxString) {
        truncated = true;
        return `${v.slice(0, maxString)}…`;
      }
      return v;
    }
    if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
    if (typeof v === 'boolean') return v;
    if (typeof v === 'bigint') return v.toString();
    if (typeof v !== 'object' || typeof v === 'function') return `[${typeof v}]`;
    if (v instanceof Date) return v.toISOString();
    if (seen.has(v)) return '[Circular]';
    if (depth > 8) {
      truncated = true;
      return '[…]';
    }
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        const items = v.slice(0, 50).map((x) => clean(x, depth + 1, maxString));
        if (v.length > 50) {
          truncated = true;
          items.push(`[… ${v.length - 50} more]`);
        }
        return items;
      }
      const out: JsonObject = {};
      for (const [key, item] of Object.entries(v as Record<string, unknown>)) {
        let cleaned: JsonValue;
        if (SECRET_KEY.test(key)) cleaned = '[REDACTED]';
        else if (BODY_KEY.test(key) && typeof item === 'string') cleaned = cleanBody(item, (parsed) => clean(parsed, depth + 1, maxString));
        else cleaned = clean(item, depth + 1, maxString);
        Object.defineProperty(out, key, { value: cleaned, enumerable: true, writable: true, configurable: true });
      }
      return out;
    } finally {
      seen.delete(v);
    }
  };
  const cleanBody = (text: string, cleanParsed: (parsed: unknown) => JsonValue): JsonValue => {
    if (text.trim() === '') return text;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object') return cleanParsed(parsed);
    } catch {
      // not JSON: dropped below
    }
    return `[body of ${Buffer.byteLength(text, 'utf8')} bytes dropped: not a JSON object, so it cannot be redacted by key]`;
  };
  for (const maxString of [2048, 512, 128, 32]) {
    const candidate = clean(value, 0, maxString);
    if (Buffer.byteLength(JSON.stringify(candidate), 'utf8') <= maxBytes) return { value: candidate, truncated };
    truncated = true;
  }
  const text = JSON.stringify(clean(value, 0, 32));
  return { value: `${text.slice(0, Math.max(0, maxBytes - 64))}…`, truncated: true };
}
