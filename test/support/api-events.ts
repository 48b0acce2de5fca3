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
    headers: { 'Content-Type': 'application/json', ...(options.headers ?? {}) },
    multiValueHeaders: {},
    body: options.rawBody ?? (options.body === undefined ? null : JSON.stringify(options.body)),
    isBase64Encoded: false,
    stageVariables: null,
    requestContext: {
      requestId,
      httpMethod: method,
      resourcePath: resource,
      authorizer: { userId: options.userId ?? 'user-1', groups: 'Developer', correlationId: options.correlationId ?? randomUUID() },
    } as never,
  };
}
