/**
 * The API Gateway service (REST APIs): the routes, methods, authorizers, MOCK integrations and gateway responses
 * of every AWS::ApiGateway::RestApi in the assembly, served over HTTP on a loopback port.
 *
 * What it follows (API Gateway developer guide):
 * - a request is `/<stage>/<path>` with the API's real stage name (any other first segment is a 404/403 like a
 *   missing resource); Skafu Local also serves the bare `/<path>` for convenience;
 * - resource matching prefers literal path parts to `{param}` parts, `{proxy+}` last;
 * - a REQUEST authorizer gets the `methodArn` of the concrete path (`.../<stage>/<VERB>/<path>`), and its policy
 *   must allow it (`*` and `?` wildcards); an authorizer that throws `Unauthorized` is a 401, any other failure is
 *   `AUTHORIZER_FAILURE` (500);
 * - AWS_PROXY integrations get the Lambda proxy event; a handler that crashes is a 502 `Internal server error`;
 * - MOCK integrations answer from the template: the status code of the request template, the integration
 *   response's static header mappings and template (CORS preflight);
 * - gateway responses are rendered from AWS::ApiGateway::GatewayResponse (plain substitution, not VTL).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join as joinPath } from 'node:path';
import { LOCAL_ACCOUNT, LOCAL_REGION, type LocalResource } from './assembly';
import { AuthorizerCache, identityKey, methodArn as concreteMethodArn, policyAllows, type AuthorizerResult } from './authorizer-cache';
import type { ErrorLog } from './error-log';
import { gatewayResponseFromCfn, renderGatewayResponse, type GatewayResponseDefinition } from './gateway-responses';
import { LambdaInvocationError, type LambdaHost } from './lambda-host';

/** API Gateway's payload limit (10 MB): larger bodies are refused with 413. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface LocalRoute {
  readonly method: string;
  readonly path: string;
  readonly allowedGroups: string[];
  /** The Lambda function, `MOCK`, or what is not emulated. */
  readonly functionName: string;
}

/** Something in the assembly that is not emulated, and why. */
export interface Unsupported {
  readonly type: string;
  readonly count: number;
  readonly why: string;
}

export interface HttpReply {
  readonly statusCode: number;
  readonly body: string;
  readonly headers: Record<string, string>;
}

interface MockIntegration {
  readonly requestTemplate: string;
  readonly responses: Array<{ statusCode: string; selectionPattern?: string; headers: Record<string, string>; template: string }>;
}

interface Authorizer {
  readonly name: string;
  readonly functionName: string;
  /** Its IdentitySource: every source together is the cache key (a missing one is a 401 before it runs). */
  readonly identitySource: string;
  /** Its result cache, for AuthorizerResultTtlInSeconds (one per authorizer, as in API Gateway). */
  readonly cache: AuthorizerCache;
}

export interface ApiRoute {
  readonly apiId: string;
  readonly stage: string;
  readonly method: string;
  /** The resource path template: `/api/v1/projects/{projectId}`. */
  readonly resource: string;
  readonly parts: string[];
  readonly integrationFunction?: string;
  readonly mock?: MockIntegration;
  /** Why the method cannot be served (an integration type that is not emulated). */
  readonly notEmulated?: string;
  readonly authorizer?: Authorizer;
}

interface RestApi {
  readonly id: string;
  readonly name: string;
  readonly stages: string[];
  readonly routes: ApiRoute[];
  readonly gatewayResponses: Map<string, GatewayResponseDefinition>;
}


/** The request as the gateway sees it once parsed. */
export interface GatewayRequest {
  readonly method: string;
  /** The path without the stage. */
  readonly path: string;
  readonly stage: string;
  readonly headers: Record<string, string>;
  readonly query: Record<string, string>;
  readonly pathParameters: Record<string, string>;
  readonly body: string;
  readonly requestId: string;
  readonly correlationId: string;
}

export class ApiGateway {
  public url = '';
  public readonly routes: LocalRoute[] = [];
  public readonly unsupported: Unsupported[] = [];
  private readonly apis = new Map<string, RestApi>();
  private server?: Server;

  constructor(
    private readonly host: LambdaHost,
    private readonly errors: ErrorLog,
  ) {}

  /** The stage names requests may use as their first path segment. */
  public get stages(): string[] {
    return [...new Set([...this.apis.values()].flatMap((a) => a.stages))];
  }

  /** Reads every REST API of the assembly (call after the functions are registered). */
  public configure(resources: LocalResource[]): void {
    const resourcePaths = new Map<string, { parent: string; part: string }>();
    const roots = new Map<string, string>();
    for (const r of resources) {
      if (r.type === 'AWS::ApiGateway::RestApi') {
        const id = r.stack.physicalId(r.logicalId);
        roots.set(String(r.stack.getAtt(r.logicalId, 'RootResourceId')), id);
        this.apis.set(id, { id, name: String(r.properties.Name ?? r.path), stages: [], routes: [], gatewayResponses: new Map() });
      }
      if (r.type === 'AWS::ApiGateway::Resource') {
        const parent = String(r.stack.resolve(r.properties.ParentId));
        resourcePaths.set(r.stack.physicalId(r.logicalId), { parent, part: String(r.properties.PathPart) });
      }
    }
    const pathOf = (id: string): string => {
      if (roots.has(id)) return '';
      const node = resourcePaths.get(id);
      if (!node) throw new Error(`API resource ${id} has no known parent`);
      return `${pathOf(node.parent)}/${node.part}`;
    };
    const apiOf = (r: LocalResource): RestApi | undefined => this.apis.get(String(r.stack.resolve(r.properties.RestApiId)));

    for (const r of resources) {
      if (r.type === 'AWS::ApiGateway::Stage') apiOf(r)?.stages.push(String(r.stack.resolve(r.properties.StageName)));
      if (r.type === 'AWS::ApiGateway::Deployment' && r.properties.StageName) apiOf(r)?.stages.push(String(r.stack.resolve(r.properties.StageName)));
    }
    const authorizers = new Map<string, Authorizer>();
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::Authorizer')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      if (props.Type === 'COGNITO_USER_POOLS') {
        this.unsupported.push({ type: 'AWS::ApiGateway::Authorizer (COGNITO_USER_POOLS)', count: 1, why: `${r.path}: only Lambda (REQUEST/TOKEN) authorizers are emulated; its methods answer 500` });
        continue;
      }
      authorizers.set(r.stack.physicalId(r.logicalId), {
        name: r.path,
        functionName: functionFromUri(String(props.AuthorizerUri)),
        identitySource: String(props.IdentitySource ?? 'method.request.header.Authorization'),
        cache: new AuthorizerCache(Number(props.AuthorizerResultTtlInSeconds ?? 300)),
      });
    }
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::GatewayResponse')) {
      const definition = gatewayResponseFromCfn(r.stack.resolve(r.properties) as Record<string, any>);
      apiOf(r)?.gatewayResponses.set(definition.responseType, definition);
    }
    let routeGroups: Record<string, string[]> = {};
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::Method')) {
      const api = apiOf(r);
      if (!api) continue;
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const method = String(props.HttpMethod);
      const resource = pathOf(String(props.ResourceId)) || '/';
      const authorizer = props.AuthorizerId ? authorizers.get(String(props.AuthorizerId)) : undefined;
      const integration = (props.Integration ?? {}) as Record<string, any>;
      let integrationFunction: string | undefined;
      let mock: MockIntegration | undefined;
      let notEmulated: string | undefined;
      if (integration.Type === 'AWS_PROXY' && String(integration.Uri ?? '').includes(':lambda:')) {
        integrationFunction = functionFromUri(String(integration.Uri));
      } else if (integration.Type === 'MOCK') {
        mock = {
          requestTemplate: String(integration.RequestTemplates?.['application/json'] ?? '{"statusCode": 200}'),
          responses: ((integration.IntegrationResponses ?? []) as Array<Record<string, any>>).map((ir) => ({
            statusCode: String(ir.StatusCode),
            selectionPattern: ir.SelectionPattern as string | undefined,
            headers: staticHeaders(ir.ResponseParameters, 'method.response.header.'),
            template: String(ir.ResponseTemplates?.['application/json'] ?? ''),
          })),
        };
      } else {
        notEmulated = `${integration.Type ?? 'no'} integration`;
        this.unsupported.push({ type: `AWS::ApiGateway::Method (${notEmulated})`, count: 1, why: `${r.path} (${method} ${resource}): only AWS_PROXY Lambda and MOCK integrations are emulated; it answers 500` });
      }
      if (props.AuthorizerId && !authorizer && props.AuthorizationType !== 'NONE') notEmulated ??= 'its authorizer is not emulated';
      const stage = api.stages[0] ?? 'local';
      api.routes.push({ apiId: api.id, stage, method, resource, parts: resource.split('/').filter(Boolean), integrationFunction, mock, notEmulated, authorizer });
      if (authorizer && Object.keys(routeGroups).length === 0) {
        const directory = this.host.get(authorizer.functionName)?.directory;
        if (directory) routeGroups = readRoutes(directory);
      }
    }
    for (const api of this.apis.values()) {
      for (const route of api.routes.filter((x) => x.method !== 'OPTIONS')) {
        this.routes.push({
          method: route.method,
          path: route.resource,
          allowedGroups: routeGroups[`${route.method} ${route.resource}`] ?? [],
          functionName: route.integrationFunction ?? (route.mock ? 'MOCK' : `(not emulated: ${route.notEmulated})`),
        });
      }
    }
    this.routes.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  }

  /** Starts serving on a loopback port. */
  public async listen(port: number): Promise<string> {
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this.url;
  }

  public async close(): Promise<void> {
    await closeServer(this.server);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      // The client went away mid-body (nothing to answer), or sent too much.
      if ((err as Error).message === 'too large' && !res.headersSent) send(res, { statusCode: 413, body: JSON.stringify({ message: 'Request Too Long' }), headers: { 'Content-Type': 'application/json' } });
      else req.destroy();
      return;
    }
    try {
      send(res, await this.handle(req.method ?? 'GET', req.url ?? '/', req.headers, body));
    } catch (err) {
      // A defect of Skafu Local itself: reported, and answered like API Gateway's own failures.
      this.errors.report({ kind: 'SkafuLocalDefect', message: (err as Error).stack ?? String(err) });
      if (!res.headersSent) send(res, { statusCode: 500, body: JSON.stringify({ message: 'Internal server error' }), headers: { 'Content-Type': 'application/json' } });
    }
  }

  /** Handles one request (method, raw URL with query, headers, body) as API Gateway would. */
  public async handle(method: string, rawUrl: string, rawHeaders: Record<string, string | string[] | undefined>, body: string): Promise<HttpReply> {
    const requestId = randomUUID();
    const headers = Object.fromEntries(Object.entries(rawHeaders).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(',') : String(v ?? '')]));
    const correlationId = headers['x-correlation-id'] || requestId;
    const url = new URL(rawUrl, 'http://localhost');
    const [first, ...rest] = url.pathname.split('/').slice(1);
    const api = [...this.apis.values()].find((a) => a.stages.includes(first));
    const stage = api ? first : undefined;
    const path = stage ? `/${rest.join('/')}` : url.pathname;
    const candidatesApis = api ? [api] : [...this.apis.values()];
    const fallback = candidatesApis[0];
    const fail = (type: string, status: number, message: string) =>
      this.gatewayResponse(fallback, type, status, message, { requestId, headers, query: {} });

    let segments: string[];
    try {
      segments = path.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    } catch {
      return fail('BAD_REQUEST_PARAMETERS', 400, `Malformed percent-encoding in the path ${JSON.stringify(url.pathname)}`);
    }
    const matches = candidatesApis
      .flatMap((a) => a.routes)
      .map((route) => ({ route, params: matchRoute(route.parts, segments) }))
      .filter((m) => m.params !== undefined);
    if (matches.length === 0) {
      // API Gateway answers a path it does not know with 403 MISSING_AUTHENTICATION_TOKEN.
      return fail('MISSING_AUTHENTICATION_TOKEN', 403, 'Missing Authentication Token');
    }
    matches.sort((a, b) => specificity(b.route.parts) - specificity(a.route.parts));
    const bestResource = matches[0].route.resource;
    const match = matches.find((m) => m.route.resource === bestResource && m.route.method === method) ?? matches.find((m) => m.route.resource === bestResource && m.route.method === 'ANY');
    if (!match) return fail('MISSING_AUTHENTICATION_TOKEN', 403, 'Missing Authentication Token');
    const route = match.route;
    const request: GatewayRequest = {
      method,
      path,
      stage: stage ?? route.stage,
      headers,
      query: Object.fromEntries(url.searchParams.entries()),
      pathParameters: match.params!,
      body,
      requestId,
      correlationId,
    };
    const api2 = this.apis.get(route.apiId)!;
    if (route.notEmulated) return this.gatewayResponse(api2, 'DEFAULT_5XX', 500, `Not emulated by Skafu Local: ${route.notEmulated}`, request);
    let authorizerContext: Record<string, unknown> | undefined;
    if (route.authorizer) {
      const outcome = await this.authorize(route, request);
      if ('reply' in outcome) return outcome.reply;
      authorizerContext = outcome.context;
    }
    if (route.mock) return mockReply(route.mock, request.headers);
    return this.invokeIntegration(route, request, authorizerContext);
  }

  /**
   * Runs the route's Lambda authorizer for a request and applies its policy to the request's methodArn.
   * Returns the authorizer context to hand to the integration, or the gateway response that ends the request.
   */
  public async authorize(route: ApiRoute, request: GatewayRequest): Promise<{ context: Record<string, unknown> } | { reply: HttpReply }> {
    const authorizer = route.authorizer!;
    const api = this.apis.get(route.apiId)!;
    const deny = (type: string, status: number, message: string, context?: Record<string, unknown>) => ({
      reply: this.gatewayResponse(api, type, status, message, request, context),
    });
    // The cache key is every identity source together; a missing one is a 401 before the authorizer runs
    // (aws-behaviours.md section 1 [A1]).
    const identity = { method: request.method, resourcePath: route.resource, headers: request.headers, query: request.query };
    const key = identityKey(authorizer.identitySource, identity);
    if (key === undefined) return deny('UNAUTHORIZED', 401, 'Unauthorized');
    // As API Gateway: the concrete path, not the route template, in the methodArn [A4][A7].
    const methodArn = concreteMethodArn({
      region: LOCAL_REGION,
      account: LOCAL_ACCOUNT,
      apiId: route.apiId,
      stage: request.stage,
      method: request.method,
      path: request.path,
    });
    let decision: AuthorizerResult;
    try {
      // A cached decision (same identity sources, within the TTL) is reused for every route and method, and its
      // policy is evaluated against this request's own methodArn [A3] (local/src/authorizer-cache.ts).
      const { result } = await authorizer.cache.resolve(key, async () => (await this.host.invoke(authorizer.functionName, {
        type: 'REQUEST',
        methodArn,
        resource: route.resource,
        path: request.path,
        httpMethod: request.method,
        headers: request.headers,
        queryStringParameters: request.query,
        pathParameters: request.pathParameters,
        stageVariables: {},
        requestContext: { requestId: request.requestId, httpMethod: request.method, resourcePath: route.resource, stage: request.stage, path: `/${request.stage}${request.path}` },
      })) as AuthorizerResult);
      decision = result;
    } catch (err) {
      if (err instanceof LambdaInvocationError && err.message === 'Unauthorized') return deny('UNAUTHORIZED', 401, 'Unauthorized');
      this.reportCrash(authorizer.functionName, 'AuthorizerCrash', err as Error, request);
      return deny('AUTHORIZER_FAILURE', 500, 'Internal server error');
    }
    if (!Array.isArray(decision?.policyDocument?.Statement)) {
      this.errors.report({ kind: 'AuthorizerFailure', resource: authorizer.name, message: 'the authorizer returned no policy document', correlationId: request.correlationId });
      return deny('AUTHORIZER_CONFIGURATION_ERROR', 500, 'Internal server error');
    }
    if (!policyAllows(decision, methodArn)) return deny('ACCESS_DENIED', 403, 'User is not authorized to access this resource', decision.context);
    return { context: { ...(decision.context ?? {}), principalId: decision.principalId } };
  }

  private async invokeIntegration(route: ApiRoute, request: GatewayRequest, authorizer: Record<string, unknown> | undefined): Promise<HttpReply> {
    const event = {
      resource: route.resource,
      path: request.path,
      httpMethod: request.method,
      headers: request.headers,
      multiValueHeaders: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, [v]])),
      queryStringParameters: Object.keys(request.query).length > 0 ? request.query : null,
      multiValueQueryStringParameters: null,
      pathParameters: Object.keys(request.pathParameters).length > 0 ? request.pathParameters : null,
      stageVariables: null,
      requestContext: {
        requestId: request.requestId,
        resourcePath: route.resource,
        httpMethod: request.method,
        path: `/${request.stage}${request.path}`,
        stage: request.stage,
        apiId: route.apiId,
        accountId: LOCAL_ACCOUNT,
        authorizer,
        identity: { sourceIp: '127.0.0.1' },
      },
      body: request.body.length > 0 ? request.body : null,
      isBase64Encoded: false,
    };
    const api = this.apis.get(route.apiId)!;
    try {
      const out = (await this.host.invoke(route.integrationFunction!, event)) as Partial<HttpReply> | null;
      // API Gateway answers 502 "Malformed Lambda proxy response" to anything else than a status code and a string body.
      if (!out || typeof out !== 'object' || typeof out.statusCode !== 'number' || (out.body !== undefined && out.body !== null && typeof out.body !== 'string')) {
        this.errors.report({ kind: 'MalformedProxyResponse', resource: route.integrationFunction, message: `the handler returned ${JSON.stringify(out)?.slice(0, 200)}, not a proxy response`, correlationId: request.correlationId });
        return this.gatewayResponse(api, 'DEFAULT_5XX', 502, 'Internal server error', request);
      }
      return { statusCode: out.statusCode, body: typeof out.body === 'string' ? out.body : '', headers: Object.fromEntries(Object.entries(out.headers ?? {}).map(([k, v]) => [k, String(v)])) };
    } catch (err) {
      this.reportCrash(route.integrationFunction!, 'HandlerCrash', err as Error, request);
      return this.gatewayResponse(api, 'DEFAULT_5XX', 502, 'Internal server error', request);
    }
  }

  private reportCrash(functionName: string, kind: string, err: Error, request: GatewayRequest): void {
    const fn = this.host.get(functionName);
    const trace = err instanceof LambdaInvocationError ? err.trace.filter(Boolean).slice(0, 8) : [];
    this.errors.report(
      {
        kind,
        resource: fn?.resource ?? functionName,
        function: fn?.name ?? functionName,
        message: `${err.name}: ${err.message}`,
        correlationId: request.correlationId,
        requestId: request.requestId,
        request: `${request.method} ${request.path}`,
        trace,
      },
      `[${kind}] ${request.method} ${request.path} -> ${fn?.name ?? functionName}: ${err.name}: ${err.message} [correlationId ${request.correlationId}]`,
    );
  }

  /** A gateway response, rendered from the API's AWS::ApiGateway::GatewayResponse like API Gateway does. */
  private gatewayResponse(
    api: RestApi | undefined,
    responseType: string,
    defaultStatus: number,
    message: string,
    request: Pick<GatewayRequest, 'requestId' | 'headers' | 'query'> & { readonly pathParameters?: Record<string, string> },
    authorizer?: Record<string, unknown>,
  ): HttpReply {
    return renderGatewayResponse(api?.gatewayResponses ?? new Map(), {
      responseType,
      defaultStatus,
      message,
      requestId: request.requestId,
      authorizer,
      request: { headers: request.headers, query: request.query, path: request.pathParameters },
    });
  }
}

/** Headers whose mapping is a static value (`'text'`); mappings from the request are not emulated. */
function staticHeaders(parameters: Record<string, unknown> | undefined, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parameters ?? {})) {
    const m = /^'(.*)'$/s.exec(String(v));
    if (k.startsWith(prefix) && m) out[k.slice(prefix.length)] = m[1];
  }
  return out;
}

function mockReply(mock: MockIntegration, requestHeaders: Record<string, string>): HttpReply {
  // The request template of a MOCK integration sets the status code that selects the integration response.
  const status = /statusCode["']?\s*:\s*(\d{3})/.exec(mock.requestTemplate)?.[1] ?? '200';
  const response =
    mock.responses.find((r) => r.selectionPattern !== undefined && r.selectionPattern !== '' && new RegExp(`^${r.selectionPattern}$`).test(status)) ??
    mock.responses.find((r) => !r.selectionPattern);
  if (!response) return { statusCode: 500, body: JSON.stringify({ message: 'Internal server error' }), headers: { 'Content-Type': 'application/json' } };
  return { statusCode: Number(response.statusCode), ...renderCorsTemplate(response.template, response.headers, requestHeaders) };
}

/**
 * The one VTL form Skafu Local renders in a MOCK response template: the CORS preflight template CDK writes for
 * several allowed origins (`#set($origin = ...)`, `#if($origin == "https://a" || ...)`, then
 * `#set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)`): the request's origin replaces
 * the static first origin when it is one of them. Other directive lines render to nothing; any other template is
 * returned as it stands.
 */
function renderCorsTemplate(
  template: string,
  mapped: Record<string, string>,
  requestHeaders: Record<string, string>,
): { body: string; headers: Record<string, string> } {
  if (!/^\s*#(set|if|end|else)/m.test(template)) return { body: template, headers: mapped };
  const headers = { ...mapped };
  const origin = requestHeaders.origin;
  const accepted = [...template.matchAll(/\$origin == "([^"]*)"/g)].map((m) => m[1]);
  if (origin && accepted.includes(origin) && /responseOverride\.header\.Access-Control-Allow-Origin = \$origin/.test(template)) {
    headers['Access-Control-Allow-Origin'] = origin;
  }
  const body = template.split('\n').filter((line) => !/^\s*#/.test(line)).join('\n').trim();
  return { body, headers };
}

/** Path parameters if the route's parts match the request's decoded segments. */
export function matchRoute(parts: string[], segments: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = Object.create(null);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const greedy = /^\{(.+)\+\}$/.exec(part);
    if (greedy) {
      if (i !== parts.length - 1 || segments.length <= i) return undefined;
      params[greedy[1]] = segments.slice(i).join('/');
      return { ...params };
    }
    const segment = segments[i];
    if (segment === undefined) return undefined;
    const param = /^\{(.+)\}$/.exec(part);
    if (param) params[param[1]] = segment;
    else if (part !== segment) return undefined;
  }
  return segments.length === parts.length ? { ...params } : undefined;
}

/** Literal parts weigh more than parameters, parameters more than a greedy `{proxy+}`. */
function specificity(parts: string[]): number {
  return parts.reduce((sum, p, i) => sum + (/^\{.+\+\}$/.test(p) ? 1 : /^\{.+\}$/.test(p) ? 2 : 3) * 4 ** (20 - i), 0);
}

function functionFromUri(uri: string): string {
  const m = /functions\/(.+)\/invocations/.exec(uri);
  if (!m) throw new Error(`not a Lambda integration URI: ${uri}`);
  return m[1];
}

/**
 * The route table a Skafu authorizer ships in its code asset (`skafu-routes.json`, ROUTES_FILE in
 * @skafu/constructs' internal/shipped-files.ts): route -> groups. Another authorizer has none: no groups listed.
 */
function readRoutes(directory: string): Record<string, string[]> {
  try {
    return JSON.parse(fs.readFileSync(joinPath(directory, 'skafu-routes.json'), 'utf8')) as Record<string, string[]>;
  } catch {
    return {};
  }
}

/** Closes a loopback server (if started), dropping its keep-alive connections rather than waiting for them. */
export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Reads a request body; rejects if the client aborts or the body is larger than the limit. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('too large'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('aborted', () => reject(new Error('aborted')));
    req.on('error', (err) => reject(err));
    req.on('close', () => {
      if (!req.complete) reject(new Error('aborted'));
    });
  });
}

export function send(res: ServerResponse, reply: HttpReply): void {
  if (res.destroyed) return;
  res.writeHead(reply.statusCode, reply.headers);
  res.end(reply.body);
}
