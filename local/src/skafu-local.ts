/**
 * Skafu Local: runs the resources of a synthesized cloud assembly (cdk.out) on this machine, one module per
 * emulated service:
 * - tables in DynamoDB Local (dynamodb-local.ts, tables.ts);
 * - the Lambda functions, each in a worker thread with its template environment and exact asset (lambda-host.ts);
 * - the REST APIs: routes, Lambda authorizers, proxy and MOCK integrations, gateway responses (api-gateway.ts);
 * - the table streams read into their event source mappings (dynamodb-streams.ts);
 * - buses and rules (eventbridge.ts), queues (sqs.ts), state machines from their exact definitions
 *   (step-functions.ts), a token issuer standing in for the Cognito user pool (issuer.ts);
 * - the AWS endpoints the handlers call, on their own port behind a secret (service-endpoints.ts);
 * - the backfill of read models added to domains that already have events, at start (backfill.ts).
 * - an AppSync GraphQL API: its VTL resolvers on the same tables, the local issuer's tokens, subscriptions over
 *   AppSync's real-time WebSocket protocol (appsync.ts, appsync-auth.ts, appsync-server.ts).
 * Everything else in the assembly is named at start with the reason it is not emulated, and every failure ends
 * on the console and in errors.log (error-log.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, UpdateTableCommand, type StreamViewType } from '@aws-sdk/client-dynamodb';
import { ApiGateway, type LocalRoute, type Unsupported } from './api-gateway';
import { AppSync, appSyncFromTemplate } from './appsync';
import { AppSyncServer } from './appsync-server';
import { LocalAssembly, LOCAL_REGION, type LocalResource } from './assembly';
import { Backfills, type BackfillOutcome } from './backfill';
import { DynamoDbJsonClient } from './dynamodb-json';
import { startDynamoDbLocal, type DynamoDbLocal } from './dynamodb-local';
import { DynamoDbStreams } from './dynamodb-streams';
import { ErrorLog } from './error-log';
import { EventBridge } from './eventbridge';
import { LocalIssuer } from './issuer';
import { LambdaHost, type LocalFunction } from './lambda-host';
import { ServiceEndpoints } from './service-endpoints';
import { Sqs } from './sqs';
import { StepFunctions } from './step-functions';
import { createTableInputFromCfn } from './tables';

export type { LocalRoute, Unsupported } from './api-gateway';

export interface SkafuLocalOptions {
  /** The cloud assembly directory (cdk.out): relative to the current directory, absolute, or a symlink. */
  readonly assembly: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Where logs, the error log and tokens go. @default <assembly>/../.skafu-local */
  readonly workDirectory?: string;
  /** Use a running DynamoDB (Local) instead of starting one. */
  readonly dynamoDbEndpoint?: string;
  /** Progress lines. @default console.log */
  readonly log?: (line: string) => void;
  /**
   * How often an idle stream or queue is polled, in milliseconds. Streams are also read at once after anything
   * Skafu Local runs has written to their table (a handler's DynamoDB write, as soon as DynamoDB answered it; a
   * state machine's write task on it), and queues as soon as a message is sent to them; the interval is for
   * writes from outside (another client of DynamoDB Local).
   * @default 250 (Lambda's stream poller reads each shard about four times a second)
   */
  readonly pollIntervalMs?: number;
  /** Milliseconds every state machine Wait state lasts (instead of its seconds). @default 200 */
  readonly waitMs?: number;
  /** Milliseconds between a state machine task's retries (their number is kept). @default 100 */
  readonly retryMs?: number;
  /** State machine executions interpreted at once (the others wait their turn, in order). @default 16 */
  readonly maxConcurrentExecutions?: number;
  /** Backfill read models from the event store at start (see backfill.ts). @default true */
  readonly backfill?: boolean;
}

/** The longest delay a Node.js timer takes (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** Resource types that are emulated (the others are named at start). */
const EMULATED = new Set([
  'AWS::DynamoDB::Table',
  'AWS::Lambda::Function',
  'AWS::Lambda::EventSourceMapping',
  'AWS::Events::EventBus',
  'AWS::Events::Rule',
  'AWS::StepFunctions::StateMachine',
  'AWS::SQS::Queue',
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
  // Started at start by backfill.ts (the backfill state machine's loop, run by invoking its function).
  'Custom::SkafuReadModelBackfill',
  'AWS::AppSync::GraphQLApi',
  'AWS::AppSync::GraphQLSchema',
  'AWS::AppSync::DataSource',
  'AWS::AppSync::Resolver',
  'AWS::AppSync::FunctionConfiguration',
]);

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
  'AWS::SNS::Topic': 'messages published to topics are written to sns.log, not delivered to subscribers',
  'AWS::SNS::TopicPolicy': 'not enforced locally',
  'AWS::WAFv2::WebACL': 'WAF needs AWS: requests are not filtered',
  'AWS::WAFv2::WebACLAssociation': 'WAF needs AWS: requests are not filtered',
  'AWS::ApiGateway::Account': 'API Gateway account settings need AWS',
  'AWS::Lambda::Permission': 'invoke permissions are not enforced locally',
  'AWS::ApiGateway::Stage': 'only its name is used (the path prefix); throttling, caching and access logs need API Gateway',
  'AWS::ApiGateway::Deployment': 'every method is served at once (no deployment history)',
  'AWS::ApiGateway::RequestValidator': 'request validation is not emulated: bodies are validated by the handlers',
  'AWS::ApiGateway::Model': 'request models are not emulated: bodies are validated by the handlers',
  'AWS::CDK::Metadata': 'CDK bookkeeping',
  // The guard refuses an AWS deployment that would delete a read model's previous version too early; Skafu Local
  // never deletes a table, so there is nothing to guard (queries follow the active-version pointer all the same).
  'Custom::SkafuReadModelVersionGuard': 'Skafu Local never deletes a table: a previous read model version stays in DynamoDB Local (the guard runs on AWS deployments)',
};

export class SkafuLocal {
  public url = '';
  public readonly routes: LocalRoute[] = [];
  public readonly unsupported: Unsupported[] = [];
  public tokens: Record<string, string> = {};
  /** Local table names, by the resource path `Stack/LogicalId`. */
  public readonly tables: Record<string, string> = {};
  public readonly workDirectory: string;
  /** The DynamoDB client of the local tables. */
  public client!: DynamoDBClient;
  /** Functions that could not be loaded at start, by resource, with the reason. */
  public readonly loadFailures: Array<{ resource: string; function: string; reason: string }> = [];
  /** The GraphQL endpoint (`POST`), when the assembly has an AppSync API. */
  public graphqlUrl = '';
  /** The GraphQL real-time (subscriptions) endpoint, when the assembly has an AppSync API. */
  public graphqlRealtimeUrl = '';
  /** The AppSync emulation, when the assembly has an API. */
  public appsync?: AppSync;

  public readonly errorLog: ErrorLog;
  private readonly assembly: LocalAssembly;
  private readonly log: (line: string) => void;
  private dynamo?: DynamoDbLocal;
  private dynamodbJson?: DynamoDbJsonClient;
  private host?: LambdaHost;
  private issuer?: LocalIssuer;
  private api?: ApiGateway;
  private endpoints?: ServiceEndpoints;
  private bus?: EventBridge;
  private sqs?: Sqs;
  private stepFunctions?: StepFunctions;
  private backfills?: Backfills;
  private streams?: DynamoDbStreams;
  private graphql?: AppSyncServer;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** The pending waitUntil checks (run after each bus event and each execution's end), each with its cancel. */
  private readonly waiters = new Map<() => void, () => void>();

  constructor(private readonly options: SkafuLocalOptions) {
    this.log = options.log ?? ((line) => console.log(line));
    this.assembly = new LocalAssembly(options.assembly);
    this.workDirectory = path.resolve(options.workDirectory ?? path.join(path.dirname(this.assembly.directory), '.skafu-local'));
    this.errorLog = new ErrorLog(this.workDirectory, this.log);
  }

  /** Error events seen on the buses (their detail). */
  public get errors(): Array<Record<string, any>> {
    return this.bus?.errorEvents ?? [];
  }

  /** Every event put on a bus. */
  public get events(): Array<Record<string, any>> {
    return this.bus?.events ?? [];
  }

  /**
   * Waits for the pipeline without polling it: resolves true as soon as `condition` holds, checked now and again
   * each time an event has been put on a bus (recorded in `events` and `errors`, the executions it starts
   * counted in `executions.started`) and each time a state machine execution has ended (`executions.finished`).
   * Nothing else triggers a check (a table, a queue, a Lambda invocation, the error log): a condition on those
   * is checked only when one of the two happens. The condition must be synchronous (a promise counts as true); it
   * runs inside the event's delivery, once per entry of a PutEvents batch, and should be cheap. Resolves false,
   * without throwing, after `timeoutMs` (at most about 24.8 days) or when Skafu Local stops; rejects with the
   * error a condition throws (the delivery that ran it goes on).
   * @param condition what to wait for, e.g. `() => local.executions.finished > before`
   * @param timeoutMs how long to wait at most. @default 30000
   * @returns whether the condition held before the timeout
   */
  public waitUntil(condition: () => boolean, timeoutMs = 30_000): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let settled = false;
      // A condition that throws rejects this promise; it never breaks the delivery that ran it.
      const check = () => {
        if (settled) return;
        try {
          if (condition()) done(() => resolve(true));
        } catch (err) {
          done(() => reject(err));
        }
      };
      const done = (settle: () => void) => {
        settled = true;
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      const timer = setTimeout(() => done(() => resolve(false)), Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
      timer.unref(); // a wait keeps no process alive
      this.waiters.set(check, () => done(() => resolve(false)));
      check();
    });
  }

  private progressed(): void {
    for (const check of [...this.waiters.keys()]) check();
  }

  /** State machine executions started so far, and those that have ended (succeeded or failed). */
  public get executions(): { started: number; finished: number } {
    return { started: this.stepFunctions?.executions ?? 0, finished: this.stepFunctions?.finishedExecutions ?? 0 };
  }

  /** The stage names a request may start with. */
  public get stages(): string[] {
    return this.api?.stages ?? [];
  }

  /**
   * The start-up sequence, in one place: what is not emulated, the service endpoints, DynamoDB and the tables,
   * the issuer, the functions (loaded, failures reported), buses, queues, state machines, the API, then the
   * stream and queue pollers, and the API port last (requests are served once everything is ready).
   */
  public async start(): Promise<void> {
    // aws-local-stepfunctions leaves a task's rejected promise unobserved after its Retry/Catch has handled the
    // error; the execution itself is correct. Those are kept in a log file; anything else is reported.
    process.on('unhandledRejection', this.onUnhandledRejection);
    const resources = this.assembly.allResources();
    this.log(`Assembly: ${this.assembly.directory} (${this.assembly.stacks.length} stack(s), ${resources.length} resources)`);
    this.collectUnsupported(resources);

    this.endpoints = new ServiceEndpoints(
      {
        putEvents: (input) => this.bus!.putEvents(input),
        sqs: (target, input) => this.sqs!.action(target, input),
        jwks: () => this.issuer?.jwks ?? { keys: [] },
      },
      this.errorLog,
    );
    await this.endpoints.listen();
    this.assembly.setQueueBase(this.endpoints.sqsUrl);

    const endpoint = await this.startDynamoDb();
    const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    this.client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials });
    // Skafu Local's own calls on its main thread (stream reads, state machine tasks): the JSON API, no SDK.
    this.dynamodbJson = new DynamoDbJsonClient({ endpoint, region: LOCAL_REGION, accessKeyId: credentials.accessKeyId });
    await this.createTables(resources);
    this.setUpIdentity(resources);
    await this.startGraphql(resources);

    this.host = new LambdaHost(
      {
        AWS_REGION: LOCAL_REGION,
        AWS_DEFAULT_REGION: LOCAL_REGION,
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        AWS_ENDPOINT_URL_DYNAMODB: endpoint,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS: endpoint,
        AWS_ENDPOINT_URL_EVENTBRIDGE: this.endpoints.eventsUrl,
        AWS_ENDPOINT_URL_SQS: this.endpoints.sqsUrl,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR',
        POWERTOOLS_TRACE_ENABLED: 'false',
        POWERTOOLS_METRICS_DISABLED: 'true',
        // Lambda's Node.js runtime provides the AWS SDK v3: handlers that do not bundle it find Skafu Local's.
        NODE_PATH: [sdkModules(), process.env.NODE_PATH ?? ''].filter(Boolean).join(path.delimiter),
      },
      path.join(this.workDirectory, 'logs'),
      // A handler's DynamoDB write, once answered: the streams of the tables it wrote are read at once.
      (tables) => this.streams?.nudge(tables),
    );
    this.registerFunctions(resources);
    await this.loadFunctions();

    const track = (work: Promise<unknown>) => this.track(work);
    this.bus = new EventBridge(this.workDirectory, this.errorLog, this.log, track, () => this.progressed());
    this.sqs = new Sqs(this.assembly, this.log, track);
    this.stepFunctions = new StepFunctions({
      client: this.client,
      dynamodb: this.dynamodbJson,
      putEvents: (input) => this.bus!.putEvents(input),
      waitMs: this.options.waitMs ?? 200,
      retryMs: this.options.retryMs ?? 100,
      maxConcurrentExecutions: this.options.maxConcurrentExecutions,
      log: this.log,
      track,
      afterWrite: (tables) => this.streams?.nudge(tables),
      onFinished: () => this.progressed(),
    });
    this.sqs.configure(resources);
    this.stepFunctions.configure(resources);
    this.bus.configure(resources, {
      startExecution: (arn, input) => this.stepFunctions!.startExecution(arn, input),
      sendMessage: (arn, body) => void this.sqs!.sendMessage(arn, body),
      invokeFunction: (arn, event) => this.host!.invoke(arn, event),
    });
    this.api = new ApiGateway(this.host, this.errorLog);
    this.api.configure(resources);
    this.routes.push(...this.api.routes);
    this.unsupported.push(...this.api.unsupported, ...this.bus.unsupported, ...this.stepFunctions.unsupported);

    this.streams = new DynamoDbStreams({
      api: this.dynamodbJson!,
      errors: this.errorLog,
      log: this.log,
      invoke: (fn, event) => this.host!.invoke(fn, event),
      sendToDestination: (arn, body) => void this.sqs!.sendMessage(arn, body),
      pollIntervalMs: this.pollIntervalMs,
    });
    this.streams.configure(resources);
    this.streams.start();
    this.sqs.startMappings(resources, (fn, event) => this.host!.invoke(fn, event), this.pollIntervalMs);

    // Read models added to domains that already have events are backfilled before the API answers.
    this.backfills = new Backfills((arn, event) => this.host!.invoke(arn, event), this.log);
    this.backfills.configure(resources);
    if (this.options.backfill !== false && this.backfills.readModels.length > 0) await this.backfill();

    this.url = await this.api.listen(this.options.port ?? 0);
    fs.writeFileSync(path.join(this.workDirectory, 'tokens.json'), JSON.stringify(this.tokens, null, 2));
    this.printUnsupported();
    const stage = this.stages[0];
    this.log(`API: ${this.url}${stage ? `/${stage}` : ''}/api/v1 (the stage prefix may be left out: ${this.url}/api/v1)`);
    if (this.graphqlUrl) this.log(`GraphQL: ${this.graphqlUrl} (subscriptions: ${this.graphqlRealtimeUrl}, AppSync's real-time protocol)`);
    if (Object.keys(this.tokens).length > 0) this.log(`Tokens for the demo users: ${path.join(this.workDirectory, 'tokens.json')} (${Object.keys(this.tokens).join(', ')})`);
    this.log(`Errors (error events, handler crashes, unreadable streams): console and ${this.errorLog.file}`);
    this.printRoutes();
  }

  private readonly onUnhandledRejection = (reason: unknown) => {
    const name = (reason as Error)?.name ?? '';
    if (/^(DynamoDb|DynamoDB|States)\./.test(name)) {
      fs.appendFileSync(path.join(this.workDirectory, 'state-machine-task-errors.log'), `${new Date().toISOString()} ${name}: ${(reason as Error).message}\n`);
      return;
    }
    this.errorLog.report({ kind: 'SkafuLocalDefect', message: `unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}` });
  };

  /**
   * Backfills read models from the event store (all, or the one named) as the backfill state machine does on
   * AWS; see backfill.ts. Runs at start unless `backfill: false`.
   */
  public async backfill(only: { domain?: string; readModel?: string; rebuildId?: string } = {}): Promise<BackfillOutcome[]> {
    if (!this.backfills) throw new Error('Skafu Local is not started');
    return this.backfills.run(only);
  }

  public async stop(): Promise<void> {
    process.off('unhandledRejection', this.onUnhandledRejection);
    for (const cancel of [...this.waiters.values()]) cancel(); // pending waits answer false
    await this.api?.close();
    await this.graphql?.close();
    await this.streams?.stop();
    this.sqs?.stop();
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.host?.stop();
    await this.endpoints?.close();
    this.client?.destroy();
    this.dynamodbJson?.destroy();
    await this.dynamo?.stop();
  }

  /**
   * Waits until nothing is in flight (stream records, bus deliveries, executions, queue batches) for longer than
   * one idle poll interval (so that an idle stream has been read once more), or the timeout.
   */
  public async settle(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const tick = 40;
    let quietSince = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, tick));
      if (this.inFlight.size > 0 || this.streams?.busy) quietSince = 0;
      else if (quietSince === 0) quietSince = Date.now();
      else if (Date.now() - quietSince > this.pollIntervalMs + 2 * tick) return;
    }
  }

  private get pollIntervalMs(): number {
    return this.options.pollIntervalMs ?? 250;
  }

  /** PutEvents on the local buses, as a function Skafu Local runs would call it (e.g. to replay events). */
  public putEvents(entries: Array<Record<string, unknown>>): { FailedEntryCount: number; Entries: Array<Record<string, unknown>> } {
    if (!this.bus) throw new Error('Skafu Local is not started');
    return this.bus.putEvents({ Entries: entries });
  }

  /** The messages currently in a queue (by name), e.g. to inspect a dead-letter queue. */
  public queueMessages(name: string): string[] {
    return this.sqs?.messages(name) ?? [];
  }

  /** A token for a user in the given groups, signed by the local issuer. */
  public token(sub: string, groups: string[]): string {
    if (!this.issuer) throw new Error('the assembly has no Cognito user pool: no local issuer');
    return this.issuer.token(sub, groups);
  }

  // ---- start-up steps ---------------------------------------------------------------------------------------

  private async startDynamoDb(): Promise<string> {
    if (this.options.dynamoDbEndpoint) {
      this.log(`DynamoDB: using ${this.options.dynamoDbEndpoint}`);
      return this.options.dynamoDbEndpoint;
    }
    this.log('DynamoDB Local: starting (Java 17)...');
    this.dynamo = await startDynamoDbLocal();
    this.log(`DynamoDB Local: ${this.dynamo.endpoint}`);
    return this.dynamo.endpoint;
  }

  private collectUnsupported(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::EventSourceMapping')) {
      const source = String(r.stack.resolve(r.properties.EventSourceArn ?? ''));
      if (!/:table\/[^/]+\/stream\//.test(source) && !source.includes(':sqs:')) {
        this.unsupported.push({ type: 'AWS::Lambda::EventSourceMapping', count: 1, why: `${r.path}: only DynamoDB stream and SQS sources are read locally, not ${source}` });
      }
    }
    const counts = new Map<string, number>();
    for (const r of resources) if (!EMULATED.has(r.type)) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
    for (const [type, count] of [...counts].sort()) {
      this.unsupported.push({ type, count, why: NOT_EMULATED[type] ?? 'not emulated by Skafu Local: deploy to AWS to exercise it' });
    }
  }

  private printUnsupported(): void {
    if (this.unsupported.length === 0) return;
    this.log('Not emulated (reported, not silently ignored):');
    for (const u of this.unsupported) this.log(`  ${u.type} x${u.count}: ${u.why}`);
  }

  private async createTables(resources: LocalResource[]): Promise<void> {
    for (const r of resources.filter((x) => x.type === 'AWS::DynamoDB::Table')) {
      const name = r.stack.physicalId(r.logicalId);
      const input = createTableInputFromCfn(r.stack.resolve(r.properties) as Record<string, any>, name);
      try {
        await this.client.send(new CreateTableCommand(input));
      } catch (err) {
        if ((err as Error).name !== 'ResourceInUseException') throw new Error(`${r.path}: table ${name} cannot be created: ${(err as Error).message}`);
        await this.updateStream(name, input.StreamSpecification?.StreamViewType);
      }
      this.tables[r.path] = name;
      this.log(`  table ${name}`);
    }
  }

  /**
   * A table kept from an earlier run (or an earlier version of the app) gets the stream the template now
   * declares, as a CloudFormation update of StreamSpecification would: enabled, or replaced when its view type
   * changed (a new stream ARN; the mappings read the table's latest stream).
   */
  private async updateStream(name: string, viewType: string | undefined): Promise<void> {
    const current = (await this.client.send(new DescribeTableCommand({ TableName: name }))).Table?.StreamSpecification;
    const enabled = current?.StreamEnabled === true;
    if (!viewType || (enabled && current?.StreamViewType === viewType)) return;
    if (enabled) await this.client.send(new UpdateTableCommand({ TableName: name, StreamSpecification: { StreamEnabled: false } }));
    const stream = { StreamEnabled: true, StreamViewType: viewType as StreamViewType };
    await this.client.send(new UpdateTableCommand({ TableName: name, StreamSpecification: stream }));
    this.log(`  table ${name}: stream ${enabled ? 'replaced' : 'enabled'} (${viewType}), as the template declares`);
  }

  private setUpIdentity(resources: LocalResource[]): void {
    const pool = resources.find((r) => r.type === 'AWS::Cognito::UserPool');
    const client = resources.find((r) => r.type === 'AWS::Cognito::UserPoolClient');
    if (!pool || !client) return;
    this.issuer = new LocalIssuer(pool.stack.physicalId(pool.logicalId), client.stack.physicalId(client.logicalId));
    const groups = resources.filter((r) => r.type === 'AWS::Cognito::UserPoolGroup').map((g) => String(g.stack.resolve(g.properties.GroupName)));
    this.tokens = this.issuer.demoTokens(groups);
  }

  /** The AppSync API of the assembly (one is emulated), on its own port, with the local issuer's tokens. */
  private async startGraphql(resources: LocalResource[]): Promise<void> {
    const apis = resources.filter((r) => r.type === 'AWS::AppSync::GraphQLApi');
    if (apis.length === 0) return;
    if (apis.length > 1) this.unsupported.push({ type: 'AWS::AppSync::GraphQLApi', count: apis.length - 1, why: `only the first API (${apis[0].path}) is served locally` });
    const stack = apis[0].stack;
    const own = Object.fromEntries(resources.filter((r) => r.stack === stack && r.type.startsWith('AWS::AppSync::')).map((r) => [r.logicalId, { Type: r.type, Properties: r.properties }]));
    const config = appSyncFromTemplate(own, (value) => String(stack.resolve(value)));
    const props = apis[0].properties;
    const userPoolId = String(stack.resolve(props.UserPoolConfig?.UserPoolId ?? ''));
    if (!this.issuer || props.AuthenticationType !== 'AMAZON_COGNITO_USER_POOLS') {
      this.unsupported.push({ type: 'AWS::AppSync::GraphQLApi', count: 1, why: `${apis[0].path}: only Cognito user pool APIs are served locally (the local issuer stands for the pool)` });
      return;
    }
    const regex = props.UserPoolConfig?.AppIdClientRegex;
    this.appsync = new AppSync({ sdl: config.sdl, resolvers: config.resolvers, client: this.client, log: this.log });
    this.graphql = new AppSyncServer(
      this.appsync,
      { issuer: this.issuer.issuer, jwks: () => this.issuer!.jwks, appIdClientRegex: regex === undefined ? undefined : String(stack.resolve(regex)) },
      (line) => this.errorLog.report({ kind: 'SkafuLocalDefect', message: line }),
    );
    if (userPoolId && !this.issuer.issuer.endsWith(userPoolId)) this.log(`  GraphQL API ${apis[0].path} names user pool ${userPoolId}; the local issuer's tokens are accepted`);
    this.graphqlUrl = await this.graphql.listen(0);
    this.graphqlRealtimeUrl = this.graphql.realtimeUrl;
    const pipelines = config.resolvers.filter((r) => r.functions).length;
    this.log(`  GraphQL API ${apis[0].path}: ${config.resolvers.length} VTL resolvers${pipelines > 0 ? ` (${pipelines} pipelines reading a rebuilt read model's active version)` : ''}`);
  }

  private registerFunctions(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::Function')) {
      const props = r.properties;
      const runtime = String(props.Runtime ?? 'nodejs');
      if (!runtime.startsWith('nodejs')) {
        this.unsupported.push({ type: `AWS::Lambda::Function (${runtime})`, count: 1, why: `${r.path}: only Node.js functions run locally; its invocations fail` });
        continue;
      }
      if (!props.Code?.S3Key) {
        this.unsupported.push({ type: 'AWS::Lambda::Function (inline or image code)', count: 1, why: `${r.path}: only asset code runs locally` });
        continue;
      }
      const env = Object.fromEntries(
        Object.entries(r.stack.resolve(props.Environment?.Variables ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
      );
      if (env.SKAFU_USER_POOL_ID && this.endpoints) env.SKAFU_JWKS_URI_OVERRIDE = this.endpoints.jwksUrl;
      // The backfill function reads its projection definition with DescribeStateMachine on AWS; here it is given.
      if (env.SKAFU_READ_MODEL_TABLES && env.SKAFU_PROJECTION_STATE_MACHINE_ARN) {
        const machine = resources.find((m) => m.type === 'AWS::StepFunctions::StateMachine' && m.stack.arn(m.logicalId) === env.SKAFU_PROJECTION_STATE_MACHINE_ARN);
        if (machine) env.SKAFU_PROJECTION_DEFINITION_OVERRIDE = String(machine.stack.resolve(machine.properties.DefinitionString));
      }
      // The change publisher signs its mutations for the local AppSync endpoint instead of AWS's.
      if (env.SKAFU_GRAPHQL_URL !== undefined && this.graphqlUrl) env.SKAFU_GRAPHQL_URL = this.graphqlUrl;
      let directory: string;
      try {
        directory = this.assembly.assetDirectory(props.Code, r.stack.directory);
      } catch (err) {
        this.loadFailures.push({ resource: r.path, function: r.stack.physicalId(r.logicalId), reason: (err as Error).message });
        continue;
      }
      const fn: LocalFunction = {
        name: r.stack.physicalId(r.logicalId),
        arn: r.stack.arn(r.logicalId),
        resource: r.path,
        directory,
        handler: props.Handler ?? 'index.handler',
        environment: env,
        timeoutSeconds: Number(props.Timeout ?? 3),
        memorySize: Number(props.MemorySize ?? 128),
        description: String(props.Description ?? r.logicalId),
      };
      this.host!.register(fn);
    }
  }

  /** Loads every handler (like Lambda's init) and reports, by resource, each one that cannot load and why. */
  private async loadFunctions(): Promise<void> {
    const failures = await this.host!.loadAll();
    this.loadFailures.push(...failures.map((f) => ({ resource: f.function.resource, function: f.function.name, reason: f.reason })));
    for (const f of this.loadFailures) {
      this.errorLog.report({ kind: 'HandlerLoadFailed', resource: f.resource, message: `${f.function} cannot be loaded: ${f.reason}` });
    }
    this.log(`  ${this.host!.all().length - failures.length} function(s) loaded${this.loadFailures.length > 0 ? `, ${this.loadFailures.length} FAILED (see above; their invocations fail)` : ''}`);
  }

  private printRoutes(): void {
    if (this.routes.length === 0) return;
    const width = Math.max(...this.routes.map((r) => r.path.length)) + 8;
    this.log('Routes:');
    for (const r of this.routes) this.log(`  ${`${r.method.padEnd(7)}${r.path}`.padEnd(width)} ${r.allowedGroups.join(', ') || '(no groups)'}`);
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

/** The node_modules directory that holds the AWS SDK v3 Skafu Local uses. */
function sdkModules(): string {
  const entry = require.resolve('@aws-sdk/client-dynamodb');
  const at = entry.lastIndexOf(`${path.sep}node_modules${path.sep}`);
  return at < 0 ? '' : entry.slice(0, at + '/node_modules'.length);
}
