import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { correlationIdFrom, headerValue } from '../runtime/http';

/**
 * The correlation id of an API request: the caller's `X-Correlation-Id` when it is a sane id, else API Gateway's
 * request id (the one its gateway responses and access logs carry), else a new one. Never the authorizer's
 * context: API Gateway caches that with the decision, so it belongs to an earlier request.
 */
export function requestCorrelationId(event: APIGatewayProxyEvent): string {
  const requestId = event.requestContext?.requestId;
  const fallback = typeof requestId === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(requestId) ? requestId : undefined;
  return correlationIdFrom(event.headers, fallback);
}

/**
 * Builds JSON responses with the correlation id in body and header, CORS headers for allowed origins, and
 * `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` (every answer is for an authenticated caller).
 */
export class Responder {
  constructor(private readonly origins: string[]) {}

  public json(
    event: APIGatewayProxyEvent,
    statusCode: number,
    body: Record<string, unknown>,
    correlationId: string,
    headers: Record<string, string> = {},
  ): APIGatewayProxyResult {
    const origin = headerValue(event.headers, 'Origin');
    const cors: Record<string, string> =
      origin && this.origins.includes(origin)
        ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', 'Access-Control-Expose-Headers': 'X-Correlation-Id,ETag', 'Vary': 'Origin' }
        : {};
    return {
      statusCode,
      headers: {
        'Content-Type': 'application/json',
        'X-Correlation-Id': correlationId,
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-store',
        ...cors,
        ...headers,
      },
      body: JSON.stringify({ ...body, correlationId }),
    };
  }

  public error(
    event: APIGatewayProxyEvent,
    statusCode: number,
    error: string,
    message: string,
    correlationId: string,
    extra: Record<string, unknown> = {},
  ): APIGatewayProxyResult {
    return this.json(event, statusCode, { error, message, ...extra }, correlationId);
  }
}
