import { randomUUID } from 'node:crypto';

/** The header carrying the correlation id, in requests and responses. */
export const CORRELATION_HEADER = 'X-Correlation-Id';
const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A header's value, whatever its case (HTTP headers are case-insensitive). */
export function headerValue(headers: Record<string, string | undefined> | null | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && value !== undefined) return value;
  }
  return undefined;
}

/**
 * The request's correlation id: the `X-Correlation-Id` header when it is a sane id (1-128 of letters, digits and
 * `._:-`), otherwise the fallback, otherwise a new UUID. A malformed header is replaced rather than trusted or echoed.
 */
export function correlationIdFrom(headers: Record<string, string | undefined> | null | undefined, fallback?: string): string {
  const given = headerValue(headers, CORRELATION_HEADER)?.trim();
  return given && CORRELATION_ID.test(given) ? given : fallback ?? randomUUID();
}

/**
 * The user's groups from a `cognito:groups` claim in any of the shapes it travels in: a JSON array (a decoded
 * JWT), a JSON array in a string, API Gateway REST's comma-separated string, or HTTP API's "[a b]".
 */
export function parseGroupsClaim(claim: unknown): string[] {
  if (Array.isArray(claim)) return claim.filter((g): g is string => typeof g === 'string' && g.length > 0);
  if (typeof claim !== 'string') return [];
  const text = claim.trim();
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parseGroupsClaim(parsed);
    } catch {
      // "[a b]": not JSON
    }
    return text.slice(1, -1).split(/[\s,]+/).filter(Boolean);
  }
  return text.split(',').map((g) => g.trim()).filter(Boolean);
}
