/** API Gateway proxy events as API Gateway hands them to a handler behind the Skafu authorizer. */
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent } from 'aws-lambda';

export interface ApiEventOptions {
  readonly pathParameters?: Record<string, string>;
  readonly queryStringParameters?: Record<string, string>;
  readonly body?: unknown;
  /** A raw body string (overrides `body`). */
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  readonly userId?: string;
  /** The caller's `X-Correlation-Id` header. */
  readonly correlationId?: string;
}

export function apiEvent(method: string, resource: string, options: ApiEventOptions = {}): APIGatewayProxyEvent {
  let path = resource;
  for (const [k, v] of Object.entries(options.pathParameters ?? {})) path = path.replace(`{${k}}`, v);
  const requestId = randomUUID();
  return {
    httpMethod: method,
    resource,
    path,
    pathParameters: options.pathParameters ?? null,
    queryStringParameters: options.queryStringParameters ?? null,
    multiValueQueryStringParameters: null,
    headers: { 'Content-Type': 'application/json', ...(options.correlationId ? { 'X-Correlation-Id': options.correlationId } : {}), ...(options.headers ?? {}) },
    multiValueHeaders: {},
    body: options.rawBody ?? (options.body === undefined ? null : JSON.stringify(options.body)),
    isBase64Encoded: false,
    stageVariables: null,
    requestContext: {
      requestId,
      httpMethod: method,
      resourcePath: resource,
      // What the Skafu authorizer puts in its (cached) context: nothing per request.
      authorizer: { userId: options.userId ?? 'user-1', groups: 'Developer', reason: '' },
    } as never,
  };
}
