/**
 * Skafu Local: runs the Skafu resources of a synthesized cloud assembly on this machine.
 *
 * - tables in an embedded DynamoDB Local;
 * - the API on a loopback port, routes from the template, the bundled authorizer in front of every route;
 * - a local token issuer (its own key pair and JWKS) with a token for a demo user in each group;
 * - the exact bundled handler assets, each in a worker thread with its template environment;
 * - the event store stream read through DynamoDB Local's Streams API into the bundled publisher;
 * - local buses that route events by their rules' patterns to state machines (run from their exact
 *   definitions), log groups, queues and topics; error events shown in the console and kept in a log file.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { LocalAssembly, LOCAL_ACCOUNT, LOCAL_REGION, type LocalResource } from './assembly';
import { startDynamoDbLocal, type DynamoDbLocal } from './dynamodb-local';
import { matchesPattern, validatePattern } from './event-pattern';
import { LocalIssuer } from './issuer';
import { LambdaHost, LambdaInvocationError, type LocalFunction } from './lambda-host';
import { EMULATED_TASKS, runDefinition } from './state-machines';
import { createTableInputFromCfn } from './tables';

export interface SkafuLocalOptions {
  /** The cloud assembly directory (cdk.out). */
  readonly assembly: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Where logs, the error log and tokens go. @default <assembly>/../.skafu-local */
  readonly workDirectory?: string;
  /** Use a running DynamoDB (Local) instead of starting one. */
  readonly dynamoDbEndpoint?: string;
  /** Progress lines. @default console.log */
  readonly log?: (line: string) => void;
  /** How often streams are polled, in milliseconds. @default 100 */
  readonly pollIntervalMs?: number;
  /** Milliseconds every state machine Wait state lasts (instead of its seconds). @default 200 */
  readonly waitMs?: number;
  /** Milliseconds between a state machine task's retries (their number is kept). @default 100 */
  readonly retryMs?: number;
}

export interface LocalRoute {
  readonly method: string;
  readonly path: string;
  readonly allowedGroups: string[];
  readonly functionName: string;
}

export interface Unsupported {
  readonly type: string;
  readonly count: number;
  readonly why: string;
}

interface Route {
  readonly method: string;
  readonly resource: string;
  readonly pattern: RegExp;
  readonly params: string[];
  readonly integrationFunction?: string;
  readonly authorizerFunction?: string;
  readonly identityHeader?: string;
}

interface HttpReply {
  readonly statusCode: number;
  readonly body: string;
  readonly headers: Record<string, string>;
}

interface AuthorizerDecision {
  readonly policyDocument: { Statement: Array<{ Effect: string; Resource: string }> };
  readonly context?: Record<string, unknown>;
  readonly principalId?: string;
}

interface Rule {
  readonly name: string;
  readonly bus: string;
  readonly pattern: Record<string, unknown>;
  readonly targets: Array<{ arn: string; deadLetterArn?: string }>;
}

interface LocalQueue {
  readonly name: string;
  readonly arn: string;
  readonly messages: Array<{ id: string; body: string; receives: number }>;
  readonly redrive?: { deadLetterArn: string; maxReceiveCount: number };
}

const NOT_EMULATED: Record<string, string> = {
  'AWS::CloudWatch::Alarm': 'alarms need CloudWatch metrics (not emulated)',
  'AWS::CloudWatch::Dashboard': 'dashboards need CloudWatch (not emulated)',
  'AWS::KMS::Key': 'encryption at rest is not emulated (DynamoDB Local stores plain data)',
  'AWS::Events::Archive': 'archives and replays need EventBridge (republish from the store instead)',
  'AWS::Events::EventBusPolicy': 'resource policies are not enforced locally',
  'AWS::IAM::Role': 'IAM is not enforced locally: every function may call every local resource',
  'AWS::IAM::Policy': 'IAM is not enforced locally',
  'AWS::Logs::ResourcePolicy': 'not needed locally',
  'AWS::SQS::QueuePolicy': 'not enforced locally',
  'AWS::SNS::TopicPolicy': 'not enforced locally',
  'AWS::WAFv2::WebACLAssociation': 'WAF needs AWS',
  'AWS::ApiGateway::Account': 'API Gateway account settings need AWS',
  'AWS::Lambda::Permission': 'invoke permissions are not enforced locally',
  'AWS::ApiGateway::Deployment': 'every route is served at once',
  'AWS::ApiGateway::Stage': 'stage throttling and access logs need API Gateway',
  'AWS::ApiGateway::RequestValidator': 'bodies are validated by the handlers',
  'AWS::ApiGateway::Model': 'bodies are validated by the handlers',
  'AWS::CDK::Metadata': 'CDK bookkeeping',
};
const EMULATED = new Set([
  'AWS::DynamoDB::Table',
  'AWS::Lambda::Function',
  'AWS::Lambda::EventSourceMapping',
  'AWS::Events::EventBus',
  'AWS::Events::Rule',
  'AWS::StepFunctions::StateMachine',
  'AWS::SQS::Queue',
  'AWS::SNS::Topic',
  'AWS::Logs::LogGroup',
  'AWS::Cognito::UserPool',
  'AWS::Cognito::UserPoolClient',
  'AWS::Cognito::UserPoolGroup',
  'AWS::ApiGateway::RestApi',
  'AWS::ApiGateway::Resource',
  'AWS::ApiGateway::Method',
  'AWS::ApiGateway::Authorizer',
  'AWS::ApiGateway::GatewayResponse',
  'AWS::CloudFormation::Stack',
]);

export class SkafuLocal {
  public url = '';
  public readonly errors: Array<Record<string, any>> = [];
  public readonly events: Array<Record<string, any>> = [];
  public readonly routes: LocalRoute[] = [];
  public readonly unsupported: Unsupported[] = [];
  public tokens: Record<string, string> = {};
  /** Local table names, by the resource path `Stack/LogicalId`. */
  public readonly tables: Record<string, string> = {};
  public readonly workDirectory: string;

  private readonly assembly: LocalAssembly;
  private readonly log: (line: string) => void;
  private dynamo?: DynamoDbLocal;
  /** The DynamoDB client of the local tables. */
  public client!: DynamoDBClient;
  private streams!: DynamoDBStreamsClient;
  private server?: Server;
  private host!: LambdaHost;
  private issuer!: LocalIssuer;
  private readonly apiRoutes: Route[] = [];
  private readonly gatewayResponses = new Map<string, { status?: string; template: string; headers: Record<string, string> }>();
  private readonly rules: Rule[] = [];
  private readonly stateMachines = new Map<string, { name: string; definition: Record<string, any> }>();
  private readonly queues = new Map<string, LocalQueue>();
  private readonly logGroups = new Map<string, string>();
  private readonly pollers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly options: SkafuLocalOptions) {
    this.assembly = new LocalAssembly(options.assembly);
    this.log = options.log ?? ((line) => console.log(line));
    this.workDirectory = options.workDirectory ?? path.join(path.dirname(path.resolve(options.assembly)), '.skafu-local');
  }

  public async start(): Promise<void> {
    fs.mkdirSync(this.workDirectory, { recursive: true });
    // aws-local-stepfunctions leaves a task's rejected promise unobserved after its Retry/Catch has handled the
    // error; the execution itself is correct. Those are logged, not allowed to stop the process.
    process.on('unhandledRejection', this.onUnhandledRejection);
    const resources = this.assembly.allResources();
    this.reportUnsupported(resources);

    // HTTP first: its port is part of every function's environment.
    this.server = createServer((req, res) => void this.handleHttp(req, res));
    await new Promise<void>((resolve) => this.server!.listen(this.options.port ?? 0, '127.0.0.1', () => resolve()));
    const port = (this.server.address() as { port: number }).port;
    this.url = `http://127.0.0.1:${port}`;
    this.assembly.setQueueBase(`${this.url}/aws/sqs`);

    if (this.options.dynamoDbEndpoint) {
      this.log(`DynamoDB: using ${this.options.dynamoDbEndpoint}`);
    } else {
      this.log('DynamoDB Local: starting (Java 17)...');
      this.dynamo = await startDynamoDbLocal();
      this.log(`DynamoDB Local: ${this.dynamo.endpoint}`);
    }
    const endpoint = this.options.dynamoDbEndpoint ?? this.dynamo!.endpoint;
    const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    this.client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials });
    this.streams = new DynamoDBStreamsClient({ endpoint, region: LOCAL_REGION, credentials });

    await this.createTables(resources);
    this.setUpIdentity(resources);
    this.host = new LambdaHost(
      {
        AWS_REGION: LOCAL_REGION,
        AWS_DEFAULT_REGION: LOCAL_REGION,
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        AWS_ENDPOINT_URL_DYNAMODB: endpoint,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS: endpoint,
        AWS_ENDPOINT_URL_EVENTBRIDGE: `${this.url}/aws/events`,
        AWS_ENDPOINT_URL_SQS: `${this.url}/aws/sqs`,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        POWERTOOLS_TRACE_ENABLED: 'false',
        POWERTOOLS_METRICS_DISABLED: 'true',
        NODE_PATH: [path.join(__dirname, '..', 'node_modules'), path.join(__dirname, '..', '..', 'node_modules'), process.env.NODE_PATH ?? ''].join(path.delimiter),
      },
      path.join(this.workDirectory, 'logs'),
    );
    this.registerFunctions(resources);
    this.setUpBuses(resources);
    this.setUpQueues(resources);
    this.setUpStateMachines(resources);
    this.setUpApi(resources);
    await this.startStreamPollers(resources);
    this.startQueuePollers(resources);
    fs.writeFileSync(path.join(this.workDirectory, 'tokens.json'), JSON.stringify(this.tokens, null, 2));
    this.log(`API: ${this.url}/api/v1 (also under /<stage>/api/v1)`);
    this.log(`Tokens for the demo users: ${path.join(this.workDirectory, 'tokens.json')} (${Object.keys(this.tokens).join(', ')})`);
    this.log(`Error events: console and ${path.join(this.workDirectory, 'errors.log')}`);
    this.printRoutes();
  }

  private readonly onUnhandledRejection = (reason: unknown) => {
    const name = (reason as Error)?.name ?? '';
    if (/^(DynamoDb|DynamoDB|States)\./.test(name)) {
      fs.appendFileSync(path.join(this.workDirectory, 'state-machine-task-errors.log'), `${new Date().toISOString()} ${name}: ${(reason as Error).message}\n`);
      return;
    }
    this.log(`skafu-local: unexpected error: ${(reason as Error)?.stack ?? String(reason)}`);
  };

  public async stop(): Promise<void> {
    process.off('unhandledRejection', this.onUnhandledRejection);
    this.stopped = true;
    for (const p of this.pollers) clearInterval(p);
    await Promise.allSettled([...this.inFlight]);
    await this.host?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.client?.destroy();
    this.streams?.destroy();
    await this.dynamo?.stop();
  }

  /** Waits until nothing is in flight (stream records, bus deliveries, executions), or the timeout. */
  public async settle(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let quiet = 0;
    while (Date.now() < deadline && quiet < 3) {
      await new Promise((r) => setTimeout(r, (this.options.pollIntervalMs ?? 100) + 20));
      quiet = this.inFlight.size === 0 ? quiet + 1 : 0;
    }
  }

  // ---- setup ------------------------------------------------------------------------------------------------

  private reportUnsupported(resources: LocalResource[]): void {
    const counts = new Map<string, number>();
    for (const r of resources) if (!EMULATED.has(r.type)) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
    for (const [type, count] of [...counts].sort()) {
      this.unsupported.push({ type, count, why: NOT_EMULATED[type] ?? 'not emulated by Skafu Local: deploy to AWS to exercise it' });
    }
    if (this.unsupported.length > 0) {
      this.log('Not emulated (reported, not silently ignored):');
      for (const u of this.unsupported) this.log(`  ${u.type} x${u.count}: ${u.why}`);
    }
  }

  private async createTables(resources: LocalResource[]): Promise<void> {
    for (const r of resources.filter((x) => x.type === 'AWS::DynamoDB::Table')) {
      const name = r.stack.physicalId(r.logicalId);
      try {
        await this.client.send(new CreateTableCommand(createTableInputFromCfn(r.stack.resolve(r.properties) as Record<string, any>, name)));
      } catch (err) {
        if ((err as Error).name !== 'ResourceInUseException') throw err;
      }
      this.tables[r.path] = name;
      this.log(`  table ${name}`);
    }
  }

  private setUpIdentity(resources: LocalResource[]): void {
    const pool = resources.find((r) => r.type === 'AWS::Cognito::UserPool');
    const client = resources.find((r) => r.type === 'AWS::Cognito::UserPoolClient');
    if (!pool || !client) return;
    const poolId = pool.stack.physicalId(pool.logicalId);
    this.issuer = new LocalIssuer(poolId, client.stack.physicalId(client.logicalId));
    const groups = resources.filter((r) => r.type === 'AWS::Cognito::UserPoolGroup').map((g) => String(g.properties.GroupName));
    this.tokens = this.issuer.demoTokens(groups);
  }

  private registerFunctions(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::Function')) {
      const props = r.properties;
      if (!props.Code?.S3Key) {
        this.unsupported.push({ type: 'AWS::Lambda::Function (inline or image code)', count: 1, why: `${r.path}: only asset code runs locally` });
        continue;
      }
      const env = Object.fromEntries(
        Object.entries((r.stack.resolve(props.Environment?.Variables ?? {}) as Record<string, unknown>)).map(([k, v]) => [k, String(v)]),
      );
      if (env.SKAFU_USER_POOL_ID) env.SKAFU_JWKS_URI_OVERRIDE = `${this.url}/.well-known/jwks.json`;
      const fn: LocalFunction = {
        name: r.stack.physicalId(r.logicalId),
        arn: r.stack.arn(r.logicalId),
        directory: this.assembly.assetDirectory(props.Code),
        handler: props.Handler ?? 'index.handler',
        environment: env,
        timeoutSeconds: Number(props.Timeout ?? 3),
        memorySize: Number(props.MemorySize ?? 128),
        description: String(props.Description ?? r.logicalId),
      };
      this.host.register(fn);
    }
  }

  private setUpBuses(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Events::Rule')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      if (props.ScheduleExpression && !props.EventPattern) {
        // A scheduled rule (the projections' lag metrics): no clock-driven invocations locally.
        this.log(`  rule ${r.logicalId}: schedule ${props.ScheduleExpression} not emulated (invoke its target by hand)`);
        continue;
      }
      const pattern = props.EventPattern as Record<string, unknown>;
      validatePattern(pattern, r.path); // an unsupported operator stops the start, naming the rule
      this.rules.push({
        name: r.path,
        bus: busName(String(props.EventBusName ?? 'default')),
        pattern,
        targets: (props.Targets ?? []).map((t: Record<string, any>) => ({ arn: String(t.Arn), deadLetterArn: t.DeadLetterConfig?.Arn })),
      });
      this.log(`  rule ${r.logicalId} on ${busName(String(props.EventBusName ?? 'default'))} -> ${(props.Targets ?? []).length} target(s)`);
    }
    for (const r of resources.filter((x) => x.type === 'AWS::Logs::LogGroup')) {
      this.logGroups.set(r.stack.arn(r.logicalId).replace(/:\*$/, ''), r.stack.physicalId(r.logicalId));
    }
  }

  private setUpQueues(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::SQS::Queue')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const name = r.stack.physicalId(r.logicalId);
      const arn = r.stack.arn(r.logicalId);
      this.queues.set(arn, {
        name,
        arn,
        messages: [],
        redrive: props.RedrivePolicy
          ? { deadLetterArn: String(props.RedrivePolicy.deadLetterTargetArn), maxReceiveCount: Number(props.RedrivePolicy.maxReceiveCount) }
          : undefined,
      });
    }
  }

  private setUpStateMachines(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::StepFunctions::StateMachine')) {
      const definition = JSON.parse(String(r.stack.resolve(r.properties.DefinitionString)));
      this.stateMachines.set(r.stack.arn(r.logicalId), { name: r.stack.physicalId(r.logicalId), definition });
      for (const [name, state] of Object.entries(definition.States as Record<string, any>)) {
        if (state.Type === 'Task' && !EMULATED_TASKS.has(state.Resource)) {
          this.unsupported.push({ type: `Task ${state.Resource}`, count: 1, why: `${r.path} state '${name}' fails locally: only DynamoDB and events:putEvents tasks are emulated` });
        }
      }
    }
  }

  private setUpApi(resources: LocalResource[]): void {
    const resourcePaths = new Map<string, { parent: string; part: string }>();
    const roots = new Set<string>();
    for (const r of resources) {
      if (r.type === 'AWS::ApiGateway::RestApi') roots.add(String(r.stack.getAtt(r.logicalId, 'RootResourceId')));
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
    const authorizers = new Map<string, { fn: string; header: string }>();
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::Authorizer')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const header = /method\.request\.header\.([^,]+)/.exec(String(props.IdentitySource ?? ''))?.[1] ?? 'Authorization';
      authorizers.set(r.stack.physicalId(r.logicalId), { fn: functionFromUri(String(props.AuthorizerUri)), header });
    }
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::GatewayResponse')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      this.gatewayResponses.set(String(props.ResponseType), {
        status: props.StatusCode,
        template: String(props.ResponseTemplates?.['application/json'] ?? '{"message":$context.error.messageString}'),
        headers: Object.fromEntries(
          Object.entries((props.ResponseParameters ?? {}) as Record<string, string>).map(([k, v]) => [k.replace('gatewayresponse.header.', ''), String(v).replace(/^'|'$/g, '')]),
        ),
      });
    }
    let routeGroups: Record<string, string[]> = {};
    for (const r of resources.filter((x) => x.type === 'AWS::ApiGateway::Method')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const method = String(props.HttpMethod);
      const resource = pathOf(String(props.ResourceId)) || '/';
      const authorizer = props.AuthorizerId ? authorizers.get(String(props.AuthorizerId)) : undefined;
      const integrationFunction = props.Integration?.Type === 'AWS_PROXY' ? functionFromUri(String(props.Integration.Uri)) : undefined;
      const params: string[] = [];
      const pattern = new RegExp(`^${resource.replace(/\{([^}]+)\}/g, (_m, p: string) => (params.push(p), '([^/]+)'))}/?$`);
      const authorizerFunction = authorizer?.fn;
      this.apiRoutes.push({ method, resource, pattern, params, integrationFunction, authorizerFunction, identityHeader: authorizer?.header });
      if (authorizer && Object.keys(routeGroups).length === 0) {
        const encoded = this.host.get(authorizer.fn)?.environment.SKAFU_ROUTES;
        if (encoded) routeGroups = decodeRoutes(encoded);
      }
    }
    for (const route of this.apiRoutes.filter((r) => r.method !== 'OPTIONS')) {
      this.routes.push({
        method: route.method,
        path: route.resource,
        allowedGroups: routeGroups[`${route.method} ${route.resource}`] ?? [],
        functionName: route.integrationFunction ?? '(not a Lambda proxy: not emulated)',
      });
    }
    this.routes.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  }

  private printRoutes(): void {
    if (this.routes.length === 0) return;
    const width = Math.max(...this.routes.map((r) => r.path.length)) + 8;
    this.log('Routes:');
    for (const r of this.routes) this.log(`  ${`${r.method.padEnd(7)}${r.path}`.padEnd(width)} ${r.allowedGroups.join(', ') || '(no groups)'}`);
  }

  // ---- the API ----------------------------------------------------------------------------------------------

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.url);
    try {
      if (url.pathname === '/.well-known/jwks.json') return send(res, 200, JSON.stringify(this.issuer?.jwks ?? { keys: [] }), { 'Content-Type': 'application/json' });
      if (url.pathname.startsWith('/aws/events')) return send(res, 200, JSON.stringify(await this.putEvents(JSON.parse(body))), { 'Content-Type': 'application/x-amz-json-1.1' });
      if (url.pathname.startsWith('/aws/sqs')) return send(res, 200, JSON.stringify(this.sqsAction(String(req.headers['x-amz-target'] ?? ''), JSON.parse(body || '{}'))), { 'Content-Type': 'application/x-amz-json-1.0' });
      const result = await this.apiRequest(req, url, body);
      return send(res, result.statusCode, result.body, result.headers);
    } catch (err) {
      return send(res, 500, JSON.stringify({ error: 'SkafuLocalError', message: (err as Error).message }), { 'Content-Type': 'application/json' });
    }
  }

  private async apiRequest(req: IncomingMessage, url: URL, body: string): Promise<HttpReply> {
    const requestId = randomUUID();
    let pathname = url.pathname;
    if (!pathname.startsWith('/api/')) pathname = pathname.replace(/^\/[^/]+(?=\/api\/)/, ''); // /<stage>/api/...
    const method = req.method ?? 'GET';
    const candidates = this.apiRoutes.filter((r) => r.pattern.test(pathname));
    const route = candidates.find((r) => r.method === method);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v ?? '')]));
    if (!route) {
      if (method === 'OPTIONS' && candidates.length > 0) return this.gateway('DEFAULT_4XX', 204, requestId, '', true);
      return this.gateway(candidates.length > 0 ? 'DEFAULT_4XX' : 'DEFAULT_4XX', candidates.length > 0 ? 405 : 404, requestId, candidates.length > 0 ? 'Method not allowed' : 'Missing Authentication Token');
    }
    const match = route.pattern.exec(pathname)!;
    const pathParameters = Object.fromEntries(route.params.map((p, i) => [p, decodeURIComponent(match[i + 1])]));
    const query = Object.fromEntries(url.searchParams.entries());
    const methodArn = `arn:aws:execute-api:${LOCAL_REGION}:${LOCAL_ACCOUNT}:local/local/${method}${route.resource}`;
    let authorizerContext: Record<string, unknown> | undefined;
    if (route.authorizerFunction) {
      const identity = headers[(route.identityHeader ?? 'Authorization').toLowerCase()];
      if (!identity) return this.gateway('UNAUTHORIZED', 401, requestId, 'Unauthorized');
      try {
        const decision = (await this.host.invoke(route.authorizerFunction, {
          type: 'REQUEST',
          methodArn,
          resource: route.resource,
          path: pathname,
          httpMethod: method,
          headers,
          queryStringParameters: query,
          pathParameters,
          requestContext: { requestId, httpMethod: method, resourcePath: route.resource },
        })) as AuthorizerDecision;
        const allowed = decision.policyDocument.Statement.some((s) => s.Effect === 'Allow' && (s.Resource === methodArn || s.Resource === '*'));
        if (!allowed) return this.gateway('ACCESS_DENIED', 403, requestId, 'User is not authorized to access this resource');
        authorizerContext = { ...(decision.context ?? {}), principalId: decision.principalId };
      } catch (err) {
        if (err instanceof LambdaInvocationError && err.message === 'Unauthorized') return this.gateway('UNAUTHORIZED', 401, requestId, 'Unauthorized');
        return this.gateway('DEFAULT_5XX', 500, requestId, 'Internal server error');
      }
    }
    if (!route.integrationFunction) return this.gateway('DEFAULT_5XX', 500, requestId, 'Integration not emulated');
    const event = {
      resource: route.resource,
      path: pathname,
      httpMethod: method,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      queryStringParameters: Object.keys(query).length > 0 ? query : null,
      multiValueQueryStringParameters: null,
      pathParameters: route.params.length > 0 ? pathParameters : null,
      stageVariables: null,
      requestContext: { requestId, resourcePath: route.resource, httpMethod: method, stage: 'local', authorizer: authorizerContext, identity: { sourceIp: '127.0.0.1' } },
      body: body.length > 0 ? body : null,
      isBase64Encoded: false,
    };
    try {
      const out = (await this.host.invoke(route.integrationFunction, event)) as Partial<HttpReply>;
      return { statusCode: out.statusCode ?? 200, body: out.body ?? '', headers: out.headers ?? {} };
    } catch {
      return this.gateway('DEFAULT_5XX', 502, requestId, 'Internal server error');
    }
  }

  /** A gateway response, rendered from the template's AWS::ApiGateway::GatewayResponse like API Gateway does. */
  private gateway(type: string, status: number, requestId: string, message: string, preflight = false) {
    const response = this.gatewayResponses.get(type) ?? this.gatewayResponses.get(status >= 500 ? 'DEFAULT_5XX' : 'DEFAULT_4XX');
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(response?.headers ?? {}) };
    if (preflight) {
      return { statusCode: 204, body: '', headers: { ...headers, 'Access-Control-Allow-Methods': 'GET,POST,PUT,PATCH,DELETE,OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type,Authorization,X-Correlation-Id,Idempotency-Key,If-Match' } };
    }
    const template = response?.template ?? '{"message":$context.error.messageString}';
    const body = template.replace(/\$context\.error\.messageString/g, JSON.stringify(message)).replace(/\$context\.error\.validationErrorString/g, message).replace(/\$context\.requestId/g, requestId);
    return { statusCode: Number(response?.status ?? status), body, headers };
  }

  // ---- buses --------------------------------------------------------------------------------------------------

  /** The PutEvents API of the local buses. */
  public async putEvents(input: { Entries?: Array<Record<string, any>> }): Promise<Record<string, unknown>> {
    const entries = input.Entries ?? [];
    const results = entries.map((entry) => {
      const id = randomUUID();
      let detail: unknown;
      try {
        // SDK callers send Detail as JSON text; Step Functions' optimized integration passes an object.
        detail = typeof entry.Detail === 'object' && entry.Detail !== null ? entry.Detail : JSON.parse(String(entry.Detail ?? '{}'));
      } catch {
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is not JSON' };
      }
      const event = {
        'version': '0',
        id,
        'detail-type': entry.DetailType,
        'source': entry.Source,
        'account': LOCAL_ACCOUNT,
        'time': entry.Time ? new Date(typeof entry.Time === 'number' ? entry.Time * 1000 : entry.Time).toISOString() : new Date().toISOString(),
        'region': LOCAL_REGION,
        'resources': entry.Resources ?? [],
        detail,
      };
      this.track(this.route(busName(String(entry.EventBusName ?? 'default')), event));
      return { EventId: id };
    });
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  }

  private async route(bus: string, event: Record<string, any>): Promise<void> {
    this.events.push({ bus, ...event });
    if (event['detail-type'] === 'Application Error') {
      this.errors.push(event.detail);
      const d = event.detail;
      this.log(`[error-bus] ${d.severity} ${d.errorType} (${event.source}): ${d.message} [correlationId ${d.correlationId}]`);
      fs.appendFileSync(path.join(this.workDirectory, 'errors.log'), `${JSON.stringify(event)}\n`);
    }
    for (const rule of this.rules.filter((r) => r.bus === bus && matchesPattern(r.pattern, event as never))) {
      for (const target of rule.targets) {
        try {
          await this.deliver(target.arn, event);
        } catch (err) {
          if (target.deadLetterArn) this.enqueue(target.deadLetterArn, JSON.stringify(event));
          this.log(`[bus ${bus}] delivery to ${target.arn} failed: ${(err as Error).message}`);
        }
      }
    }
  }

  private async deliver(arn: string, event: Record<string, any>): Promise<void> {
    if (arn.includes(':states:')) return this.runStateMachine(arn, event);
    if (arn.includes(':logs:')) {
      const name = this.logGroups.get(arn.replace(/:\*$/, '')) ?? arn;
      fs.appendFileSync(path.join(this.workDirectory, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`), `${JSON.stringify(event)}\n`);
      return;
    }
    if (arn.includes(':sqs:')) return void this.enqueue(arn, JSON.stringify(event));
    if (arn.includes(':sns:')) return void fs.appendFileSync(path.join(this.workDirectory, 'sns.log'), `${arn} ${JSON.stringify(event)}\n`);
    if (arn.includes(':lambda:')) return void (await this.host.invoke(arn, event));
    throw new Error(`target ${arn} is not emulated`);
  }

  private async runStateMachine(arn: string, input: Record<string, any>): Promise<void> {
    const machine = this.stateMachines.get(arn);
    if (!machine) throw new Error(`no state machine ${arn}`);
    try {
      await runDefinition(machine.definition, input, {
        client: this.client,
        putEvents: (request) => this.putEvents(request),
        stateMachine: { id: arn, name: machine.name },
        waitMs: this.options.waitMs ?? 200,
        retryMs: this.options.retryMs ?? 100,
      });
    } catch (err) {
      this.log(`[state machine ${machine.name}] execution failed: ${(err as Error).message.replace(/^Execution has failed with the following error: /, '')}`);
    }
  }

  // ---- queues -------------------------------------------------------------------------------------------------

  private queueByUrlOrArn(ref: string): LocalQueue | undefined {
    return this.queues.get(ref) ?? [...this.queues.values()].find((q) => ref.endsWith(`/${q.name}`) || ref.endsWith(`:${q.name}`));
  }

  private enqueue(ref: string, body: string): string {
    const queue = this.queueByUrlOrArn(ref);
    if (!queue) throw new Error(`no local queue ${ref}`);
    const id = randomUUID();
    queue.messages.push({ id, body, receives: 0 });
    return id;
  }

  private sqsAction(target: string, input: Record<string, any>): Record<string, unknown> {
    if (target.endsWith('.SendMessage')) return { MessageId: this.enqueue(String(input.QueueUrl), String(input.MessageBody)) };
    if (target.endsWith('.GetQueueUrl')) return { QueueUrl: this.assembly.queueUrl(String(input.QueueName)) };
    throw new Error(`SQS ${target} is not emulated`);
  }

  /** The messages currently in a queue (by name), e.g. to inspect a dead-letter queue. */
  public queueMessages(name: string): string[] {
    return [...this.queues.values()].filter((q) => q.name.includes(name)).flatMap((q) => q.messages.map((m) => m.body));
  }

  private startQueuePollers(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::EventSourceMapping')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const source = String(props.EventSourceArn);
      if (!source.includes(':sqs:')) continue;
      const queue = this.queueByUrlOrArn(source);
      const fn = String(props.FunctionName);
      if (!queue) continue;
      this.log(`  queue ${queue.name} -> ${fn}`);
      const batchSize = Number(props.BatchSize ?? 10);
      let busy = false;
      this.pollers.push(
        setInterval(() => {
          if (busy || this.stopped || queue.messages.length === 0) return;
          busy = true;
          const batch = queue.messages.splice(0, batchSize);
          const work = this.host
            .invoke(fn, { Records: batch.map((m) => ({ messageId: m.id, body: m.body, attributes: { ApproximateReceiveCount: String(m.receives + 1) }, eventSource: 'aws:sqs', eventSourceARN: queue.arn })) })
            .then((out) => (out as { batchItemFailures?: Array<{ itemIdentifier: string }> })?.batchItemFailures ?? [])
            .catch(() => batch.map((m) => ({ itemIdentifier: m.id })))
            .then((failures) => {
              for (const m of batch.filter((b) => failures.some((f) => f.itemIdentifier === b.id))) {
                m.receives++;
                if (queue.redrive && m.receives >= queue.redrive.maxReceiveCount) this.enqueue(queue.redrive.deadLetterArn, m.body);
                else queue.messages.push(m);
              }
            })
            .finally(() => (busy = false));
          this.track(work);
        }, this.options.pollIntervalMs ?? 100),
      );
    }
  }

  // ---- streams ------------------------------------------------------------------------------------------------

  private async startStreamPollers(resources: LocalResource[]): Promise<void> {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::EventSourceMapping')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      const source = String(props.EventSourceArn);
      if (!source.includes('/stream/')) continue;
      const table = /table\/([^/]+)\/stream/.exec(source)![1];
      const described = await this.client.send(new DescribeTableCommand({ TableName: table }));
      const streamArn = described.Table?.LatestStreamArn;
      if (!streamArn) throw new Error(`table ${table} has no stream`);
      const fn = String(props.FunctionName);
      const filterList = (props.FilterCriteria?.Filters ?? []) as Array<{ Pattern: string }>;
      const filters = filterList.map((f) => JSON.parse(f.Pattern) as Record<string, unknown>);
      filters.forEach((f) => validatePattern(f, `${r.path} FilterCriteria`));
      const batchSize = Number(props.BatchSize ?? 100);
      const retries = Number(props.MaximumRetryAttempts ?? -1);
      const onFailure = props.DestinationConfig?.OnFailure?.Destination as string | undefined;
      const iterators = new Map<string, string | undefined>();
      this.log(`  stream of ${table} -> ${fn} (batch ${batchSize}, ${filters.length} filter(s))`);
      let busy = false;
      const poll = async () => {
        const description = await this.streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
        for (const shard of description.StreamDescription?.Shards ?? []) {
          if (!iterators.has(shard.ShardId!)) {
            const out = await this.streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }));
            iterators.set(shard.ShardId!, out.ShardIterator);
          }
          const iterator = iterators.get(shard.ShardId!);
          if (!iterator) continue;
          const out = await this.streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: batchSize }));
          iterators.set(shard.ShardId!, out.NextShardIterator);
          const records = ((out.Records ?? []) as Array<Record<string, any>>)
            .map(toLambdaRecord)
            .filter((rec) => filters.length === 0 || filters.some((f) => matchesPattern(f, rec as never)));
          if (records.length > 0) await this.deliverStreamBatch(fn, records, retries, onFailure, streamArn, shard.ShardId!);
        }
      };
      this.pollers.push(
        setInterval(() => {
          if (busy || this.stopped) return;
          busy = true;
          this.track(poll().catch((err) => this.log(`[stream ${table}] ${(err as Error).message}`)).finally(() => (busy = false)));
        }, this.options.pollIntervalMs ?? 100),
      );
    }
  }

  private async deliverStreamBatch(
    fn: string,
    records: Array<Record<string, any>>,
    retries: number,
    onFailure: string | undefined,
    streamArn: string,
    shardId: string,
  ): Promise<void> {
    let batch = records;
    for (let attempt = 0; ; attempt++) {
      let failedAt: string | undefined;
      try {
        const out = (await this.host.invoke(fn, { Records: batch })) as { batchItemFailures?: Array<{ itemIdentifier: string }> } | null;
        failedAt = out?.batchItemFailures?.[0]?.itemIdentifier;
      } catch {
        failedAt = batch[0].dynamodb.SequenceNumber;
      }
      if (!failedAt) return;
      batch = batch.slice(Math.max(0, batch.findIndex((r) => r.dynamodb.SequenceNumber === failedAt)));
      if (retries >= 0 && attempt >= retries) {
        if (onFailure) {
          this.enqueue(
            onFailure,
            JSON.stringify({
              requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: attempt + 1 },
              responseContext: { functionError: 'Unhandled' },
              version: '1.0',
              timestamp: new Date().toISOString(),
              DDBStreamBatchInfo: {
                shardId,
                startSequenceNumber: batch[0].dynamodb.SequenceNumber,
                endSequenceNumber: batch[batch.length - 1].dynamodb.SequenceNumber,
                batchSize: batch.length,
                streamArn,
              },
            }),
          );
        }
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
    }
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

function busName(nameOrArn: string): string {
  return nameOrArn.includes(':event-bus/') ? nameOrArn.split(':event-bus/')[1] : nameOrArn;
}

function functionFromUri(uri: string): string {
  const m = /functions\/(.+)\/invocations/.exec(uri);
  if (!m) throw new Error(`not a Lambda integration URI: ${uri}`);
  return m[1];
}

/** A Streams API record in the shape Lambda hands to a stream handler (and that filter patterns match). */
function toLambdaRecord(record: Record<string, any>): Record<string, any> {
  const fix = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(fix);
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 0) return { M: {} }; // an empty map comes back as {} through the Streams API
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, fix(x)]));
  };
  const image = (img: unknown) => (img ? Object.fromEntries(Object.entries(img as Record<string, unknown>).map(([k, v]) => [k, fix(v)])) : undefined);
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion,
    eventSource: 'aws:dynamodb',
    awsRegion: LOCAL_REGION,
    dynamodb: {
      ...record.dynamodb,
      ApproximateCreationDateTime: record.dynamodb?.ApproximateCreationDateTime
        ? Math.floor(new Date(record.dynamodb.ApproximateCreationDateTime).getTime() / 1000)
        : undefined,
      NewImage: image(record.dynamodb?.NewImage),
      OldImage: image(record.dynamodb?.OldImage),
    },
  };
}

/** The route table the Skafu authorizer carries (indexed group names, JSON, raw deflate, base64). */
function decodeRoutes(encoded: string): Record<string, string[]> {
  const { g, r } = JSON.parse(inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8')) as { g: string[]; r: Record<string, number[]> };
  return Object.fromEntries(Object.entries(r).map(([route, idx]) => [route, idx.map((i) => g[i])]));
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
  res.writeHead(status, headers);
  res.end(body);
}
