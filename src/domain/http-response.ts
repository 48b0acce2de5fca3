import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { correlationIdFrom, headerValue } from '../runtime/http';

/** The correlation id of an API request: the authorizer's (it saw the header first), else the header, else new. */
export function requestCorrelationId(event: APIGatewayProxyEvent): string {
  const fromAuthorizer = (event.requestContext?.authorizer as Record<string, unknown> | undefined)?.correlationId;
  if (typeof fromAuthorizer === 'string' && fromAuthorizer.length > 0) return fromAuthorizer;
  return correlationIdFrom(event.headers);
}

/** Builds JSON responses with the correlation id in body and header, and CORS headers for allowed origins. */
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
      headers: { 'Content-Type': 'application/json', 'X-Correlation-Id': correlationId, ...cors, ...headers },
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
