import { Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { acknowledgeHandlerRole, handlerOptions } from '../internal/handler';
import { acknowledgeNag } from '../internal/nag';
import { ROUTES_FILE } from '../internal/shipped-files';
import { bundledHandlerWithLateFiles } from '../internal/spec-asset';
import { routeKey, type RouteGroups } from '../runtime/routes';

/** Which token the authorizer accepts. */
export enum TokenUse {
  /** Cognito access tokens (recommended for APIs). */
  ACCESS = 'access',
  /** Cognito ID tokens. */
  ID = 'id',
}

/** Stage throttling. */
export interface ThrottleSettings {
  /** Steady-state requests per second of the stage. */
  readonly rateLimit: number;
  /** Requests the stage accepts in a burst (at least `rateLimit`). */
  readonly burstLimit: number;
}

/** Properties of a SkafuApi. */
export interface SkafuApiProps {
  /** The pool whose tokens are accepted. */
  readonly userPool: cognito.IUserPool;
  /** The app client the tokens must be issued to. */
  readonly userPoolClient: cognito.IUserPoolClient;
  /**
   * The groups that exist (e.g. `RbacUserPool.groupNames`): routes naming any other group are refused at synth.
   * @default - group names are not checked
   */
  readonly groupNames?: string[];
  /**
   * The environment: names the stage and picks the throttling and log defaults.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * The REST API's name.
   * @default `skafu-api-<environment>`
   */
  readonly restApiName?: string;
  /**
   * Browser origins allowed by CORS. Credentials are allowed, so '*' is refused.
   * @default ['http://localhost:3000']
   */
  readonly corsOrigins?: string[];
  /**
   * Stage throttling.
   * @default by environment: development 100/200, staging 500/1000, production 2000/5000 (rate/burst)
   */
  readonly throttle?: ThrottleSettings;
  /**
   * Execution logging level. Execution logging needs the account's API Gateway CloudWatch role (see README).
   * @default apigw.MethodLoggingLevel.INFO
   */
  readonly loggingLevel?: apigw.MethodLoggingLevel;
  /**
   * Retention of the JSON access log group.
   * @default by environment: 30 days, staging 90 days, production 365 days
   */
  readonly accessLogRetention?: logs.RetentionDays;
  /**
   * A WAFv2 web ACL (REGIONAL) to associate with the stage.
   * @default - none
   */
  readonly webAclArn?: string;
  /**
   * Which Cognito token the authorizer accepts (access tokens carry `client_id`, ID tokens `aud`).
   * @default TokenUse.ACCESS
   */
  readonly tokenUse?: TokenUse;
  /**
   * How long API Gateway caches an authorization decision (per token, method and route). Zero disables caching.
   * A user removed from a group, disabled or signed out keeps access for up to the token's remaining validity
   * plus this TTL (see the README).
   * @default by environment: production 1 minute, otherwise 5 minutes
   */
  readonly authorizerCacheTtl?: Duration;
  /**
   * The longest lifetime (`exp` - `iat`) the authorizer accepts; tokens without `exp` or `iat` are always refused.
   * @default Duration.days(1) (Cognito's longest token validity)
   */
  readonly maxTokenLifetime?: Duration;
  /**
   * Retention of the authorizer's logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/** Options of one route. */
export interface RouteOptions {
  /** The groups whose members may call the route. At least one. */
  readonly allowedGroups: string[];
  /**
   * Request body models by content type, checked by API Gateway before anything runs.
   * @default - none
   */
  readonly requestModels?: Record<string, apigw.IModel>;
  /**
   * Required (true) or optional (false) request parameters, e.g. `method.request.querystring.name`.
   * @default - none
   */
  readonly requestParameters?: Record<string, boolean>;
  /**
   * The method's operation name (used by generated SDKs).
   * @default - none
   */
  readonly operationName?: string;
  /**
   * Create the route's resources and method in this scope (for example a domain's nested stack) instead of the
   * API's own stack, so that a platform with many domains stays inside CloudFormation's per-stack limits. Each
   * first path segment must then belong to one scope only.
   * @default - the API's stack
   */
  readonly scope?: Construct;
}

/** A declared route. */
export interface RouteDescription {
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The full resource path, e.g. `/api/v1/projects/{projectId}`. */
  readonly path: string;
  /** The groups whose members may call it. */
  readonly allowedGroups: string[];
}

const THROTTLE_BY_ENVIRONMENT: Record<string, ThrottleSettings> = {
  development: { rateLimit: 100, burstLimit: 200 },
  staging: { rateLimit: 500, burstLimit: 1000 },
  production: { rateLimit: 2000, burstLimit: 5000 },
};
const RETENTION_BY_ENVIRONMENT: Record<string, logs.RetentionDays> = {
  development: logs.RetentionDays.ONE_MONTH,
  staging: logs.RetentionDays.THREE_MONTHS,
  production: logs.RetentionDays.ONE_YEAR,
};
const CACHE_TTL_BY_ENVIRONMENT: Record<string, Duration> = {
  production: Duration.minutes(1),
};
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * The platform's REST API: stage named after the environment, `/api/v1` under which domains hang their routes,
 * CORS (with `X-Correlation-Id` allowed and exposed), JSON gateway responses that keep CORS headers, request
 * validation, stage throttling by environment, JSON access logs, execution logging, X-Ray, optional WAF, and
 * RBAC at the edge: every method is guarded by a bundled Lambda authorizer that verifies the Cognito JWT and
 * allows only the route's groups. Methods added to `restApi` or `apiV1` outside `addRoute` get the authorizer
 * too (the RestApi's default method options), and so are denied until declared with `addRoute`; synth refuses
 * any method other than CORS preflight (`OPTIONS`) that opts out of authorization (`AuthorizationType.NONE`).
 *
 * It never sets `cloudWatchRole: true` (that rewrites an account-wide setting); see the README for the one-time
 * account setup that execution logging needs.
 */
export class SkafuApi extends Construct {
  /** The REST API. Methods added to it outside `addRoute` get the RBAC authorizer by default. */
  public readonly restApi: apigw.RestApi;
  /** The `/api/v1` resource. */
  public readonly apiV1: apigw.IResource;
  /** The RBAC Lambda REQUEST authorizer (the default of every method). */
  public readonly authorizer: apigw.RequestAuthorizer;
  /** The authorizer's function. */
  public readonly authorizerFunction: lambda.IFunction;
  /** The stage's JSON access log group. */
  public readonly accessLogGroup: logs.LogGroup;
  /** The request validator (body and parameters) of every route. */
  public readonly requestValidator: apigw.RequestValidator;
  /** The stage's name (the environment). */
  public readonly stageName: string;
  /** The stage (its name is the environment). */
  public readonly stage: apigw.Stage;
  /** The deployment; it is replaced whenever a route changes, in any stack. */
  public readonly deployment: apigw.Deployment;
  /** The CORS origins, for handlers that answer with CORS headers. */
  public readonly corsOrigins: string[];
  /** The stage URL, ending in `/`. */
  public readonly url: string;

  private readonly routeTable: RouteGroups = {};
  private readonly cors: apigw.CorsOptions;
  /** Per foreign scope (e.g. a domain's nested stack): the API imported there and the resources made there. */
  private readonly scopedRoots = new Map<Construct, apigw.IResource>();
  private readonly segmentOwners = new Map<string, Construct>();
  private readonly groupNames?: string[];

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (SkafuApiProps)
   */
  constructor(scope: Construct, id: string, props: SkafuApiProps) {
    super(scope, id);
    validate(this.node.path, props);
    const environment = props.environment ?? 'development';
    this.stageName = environment;
    this.groupNames = props.groupNames;
    const origins = props.corsOrigins ?? ['http://localhost:3000'];
    const throttle = props.throttle ?? THROTTLE_BY_ENVIRONMENT[environment] ?? THROTTLE_BY_ENVIRONMENT.development;
    this.cors = {
      allowOrigins: origins,
      allowMethods: [...METHODS, 'OPTIONS'],
      allowHeaders: ['Content-Type', 'Authorization', 'X-Correlation-Id', 'Idempotency-Key', 'If-Match', 'X-Amz-Date', 'X-Amz-Security-Token'],
      exposeHeaders: ['X-Correlation-Id', 'ETag'],
      allowCredentials: true,
      maxAge: Duration.days(1),
    };
    this.corsOrigins = origins;

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? RETENTION_BY_ENVIRONMENT[environment] ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const authorizerOptions = handlerOptions(this, 'Authorizer', {
      description: 'Skafu RBAC authorizer: verifies the Cognito JWT and the route\'s groups',
      serviceName: 'skafu-authorizer',
      logRetention: props.logRetention,
      timeout: Duration.seconds(10),
      memorySize: 256,
      environment: {
        SKAFU_USER_POOL_ID: props.userPool.userPoolId,
        SKAFU_USER_POOL_CLIENT_ID: props.userPoolClient.userPoolClientId,
        SKAFU_TOKEN_USE: props.tokenUse ?? TokenUse.ACCESS,
        ...(props.maxTokenLifetime ? { SKAFU_MAX_TOKEN_LIFETIME: String(props.maxTokenLifetime.toSeconds()) } : {}),
      },
    });
    // The route table ships as a file in the authorizer's own code asset (any number of routes), written when the
    // app synthesizes: domains add routes after the API exists, in any stack.
    const authorizerFunction = bundledHandlerWithLateFiles(this, 'Authorizer', 'api/authorizer.lambda', () => ({ [ROUTES_FILE]: routesFile(this.routeTable) }), authorizerOptions);
    this.authorizerFunction = authorizerFunction;
    acknowledgeHandlerRole(authorizerOptions.role);
    this.authorizer = new apigw.RequestAuthorizer(this, 'RbacAuthorizer', {
      authorizerName: 'skafu-rbac',
      handler: authorizerFunction,
      // The cache key is (token, method, route): a decision is never reused for another route, and its policy
      // names the route (path parameters as wildcards), so it fits every path value. See the handler.
      identitySources: [
        apigw.IdentitySource.header('Authorization'),
        apigw.IdentitySource.context('httpMethod'),
        apigw.IdentitySource.context('resourcePath'),
      ],
      resultsCacheTtl: props.authorizerCacheTtl ?? CACHE_TTL_BY_ENVIRONMENT[environment] ?? Duration.minutes(5),
    });

    this.restApi = new apigw.RestApi(this, 'Api', {
      restApiName: props.restApiName ?? `skafu-api-${environment}`,
      description: `Skafu API (${environment})`,
      endpointTypes: [apigw.EndpointType.REGIONAL],
      cloudWatchRole: false,
      // The deployment is managed here, so that routes declared in other (nested) stacks are deployed too.
      deploy: false,
      defaultCorsPreflightOptions: this.cors,
      // Every method added to this API (root, apiV1 or below) is guarded unless it says otherwise; CDK's CORS
      // preflight methods say otherwise (AuthorizationType.NONE), and stay open: browsers send them without a token.
      defaultMethodOptions: { authorizer: this.authorizer, authorizationType: apigw.AuthorizationType.CUSTOM },
    });
    this.restApi.node.addValidation({ validate: () => this.unguardedMethods() });
    this.deployment = new apigw.Deployment(this, 'Deployment', { api: this.restApi, description: `Skafu API (${environment})` });
    const stage = new apigw.Stage(this, 'Stage', {
      deployment: this.deployment,
      stageName: environment,
      tracingEnabled: true,
      loggingLevel: props.loggingLevel ?? apigw.MethodLoggingLevel.INFO,
      dataTraceEnabled: false,
      metricsEnabled: true,
      throttlingRateLimit: throttle.rateLimit,
      throttlingBurstLimit: throttle.burstLimit,
      accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogGroup),
      accessLogFormat: apigw.AccessLogFormat.custom(
        JSON.stringify({
          requestId: '$context.requestId',
          userId: '$context.authorizer.userId',
          ip: '$context.identity.sourceIp',
          requestTime: '$context.requestTime',
          httpMethod: '$context.httpMethod',
          resourcePath: '$context.resourcePath',
          status: '$context.status',
          responseLength: '$context.responseLength',
          latency: '$context.responseLatency',
          integrationLatency: '$context.integrationLatency',
          error: '$context.error.message',
          authorizerError: '$context.authorizer.error',
        }),
      ),
    });
    this.restApi.deploymentStage = stage;
    this.stage = stage;
    this.url = this.restApi.url;
    this.apiV1 = this.restApi.root.addResource('api').addResource('v1');
    this.requestValidator = this.restApi.addRequestValidator('RequestValidator', {
      requestValidatorName: 'body-and-parameters',
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    this.addGatewayResponses(origins);

    if (props.webAclArn) {
      new wafv2.CfnWebACLAssociation(this, 'WebAcl', {
        resourceArn: this.stage.stageArn,
        webAclArn: props.webAclArn,
      });
    }
  }

  /**
   * Adds a route under `/api/v1` (e.g. `('POST', 'projects/{projectId}/archive', integration, { allowedGroups })`),
   * guarded by the RBAC authorizer: only members of `allowedGroups` get through, everyone else is refused before
   * the integration runs.
   */
  public addRoute(method: string, path: string, integration: apigw.Integration, options: RouteOptions): apigw.Method {
    const verb = method.toUpperCase();
    const problems: string[] = [];
    if (!METHODS.includes(verb)) problems.push(`method '${method}' is not one of ${METHODS.join(', ')}`);
    const segments = path.replace(/^\/+|\/+$/g, '').split('/');
    if (path.replace(/^\/+|\/+$/g, '') === '' || segments.some((s) => !/^([a-z0-9][a-z0-9-]*|\{[A-Za-z][A-Za-z0-9_]*\})$/.test(s))) {
      problems.push(`path '${path}' must be segments of lower-case letters, digits and '-', or {param}`);
    }
    if (!options.allowedGroups || options.allowedGroups.length === 0) problems.push('allowedGroups is empty: name at least one group');
    const unknown = this.groupNames ? options.allowedGroups.filter((g) => !this.groupNames!.includes(g)) : [];
    if (unknown.length > 0) problems.push(`allowedGroups names unknown group(s) ${unknown.join(', ')} (known: ${this.groupNames!.join(', ')})`);
    const fullPath = `/api/v1/${segments.join('/')}`;
    const key = routeKey(verb, fullPath);
    if (this.routeTable[key]) problems.push(`route ${key} is already declared`);
    if (problems.length > 0) throw new Error(`SkafuApi ${this.node.path}: addRoute(${verb} ${path}): ${problems.join('; ')}`);

    let resource = this.rootFor(options.scope, segments[0]);
    for (const segment of segments) {
      resource = resource.getResource(segment) ?? resource.addResource(segment, { defaultCorsPreflightOptions: this.cors });
    }
    this.routeTable[key] = [...new Set(options.allowedGroups)];
    const created = resource.addMethod(verb, integration, {
      authorizer: this.authorizer,
      authorizationType: apigw.AuthorizationType.CUSTOM,
      requestValidator: this.requestValidator,
      requestModels: options.requestModels,
      requestParameters: options.requestParameters,
      operationName: options.operationName,
    });
    // A new deployment whenever the routes change, after every method exists (in whichever stack).
    // (Only on the method itself: its Lambda permissions may name the stage, which depends on the deployment.)
    this.deployment.node.addDependency(created.node.defaultChild!);
    this.deployment.addToLogicalId({ route: key, groups: this.routeTable[key], models: Object.keys(options.requestModels ?? {}) });
    acknowledgeNag(created, [
      {
        id: 'AwsSolutions-COG4',
        reason:
          'Guarded by the Skafu RBAC Lambda authorizer, which verifies the Cognito JWT (signature, issuer, client, token use, expiry) and the route groups; a COGNITO_USER_POOLS authorizer cannot enforce groups.',
      },
    ]);
    return created;
  }

  private rootFor(scope: Construct | undefined, firstSegment: string): apigw.IResource {
    const owner = this.segmentOwners.get(firstSegment);
    if (owner !== undefined && owner !== (scope ?? this)) {
      throw new Error(`SkafuApi ${this.node.path}: /api/v1/${firstSegment} already belongs to another scope; a first path segment belongs to one scope`);
    }
    this.segmentOwners.set(firstSegment, scope ?? this);
    if (!scope || Stack.of(scope) === Stack.of(this)) return this.apiV1;
    let root = this.scopedRoots.get(scope);
    if (!root) {
      const imported = apigw.RestApi.fromRestApiAttributes(scope, 'SkafuApiV1', {
        restApiId: this.restApi.restApiId,
        rootResourceId: this.apiV1.resourceId,
      });
      root = imported.root;
      this.scopedRoots.set(scope, root);
    }
    return root;
  }

  /** Every declared route with its groups. */
  public routes(): RouteDescription[] {
    return Object.entries(this.routeTable).map(([key, allowedGroups]) => {
      const [method, path] = key.split(' ');
      return { method, path, allowedGroups };
    });
  }

  /** 5XX responses of the stage. */
  public metricServerErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.restApi.metricServerError({ period: Duration.minutes(5), ...props });
  }

  /** 4XX responses of the stage (refusals included). */
  public metricClientErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.restApi.metricClientError({ period: Duration.minutes(5), ...props });
  }

  /** End-to-end latency (p90 by default). */
  public metricLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.restApi.metricLatency({ statistic: 'p90', period: Duration.minutes(5), ...props });
  }

  /**
   * Methods without authorization other than CORS preflight: synth refuses them, naming each. A preflight is an
   * `OPTIONS` method with a MOCK integration (it runs no code and reads nothing); an `OPTIONS` method with any
   * other integration (a Lambda, an HTTP backend, an AWS service) would be reachable by anyone, so it is refused too.
   */
  private unguardedMethods(): string[] {
    const problems: string[] = [];
    for (const m of this.restApi.methods) {
      const cfn = m.node.defaultChild as apigw.CfnMethod;
      if (cfn.authorizationType !== undefined && cfn.authorizationType !== apigw.AuthorizationType.NONE) continue;
      if (m.httpMethod === 'OPTIONS') {
        const integration = Stack.of(m).resolve(cfn.integration) as { type?: string } | undefined;
        if (integration?.type === 'MOCK') continue;
        problems.push(
          `SkafuApi ${this.node.path}: OPTIONS ${m.resource.path} has no authorization and a ${integration?.type ?? 'missing'} integration; ` +
          'only a CORS preflight (a MOCK integration) may stay open: give it the authorizer or a MockIntegration',
        );
        continue;
      }
      problems.push(
        `SkafuApi ${this.node.path}: ${m.httpMethod} ${m.resource.path} has no authorization (AuthorizationType.NONE); ` +
        'declare it with addRoute, or leave the authorizer that SkafuApi sets by default',
      );
    }
    return problems;
  }

  /**
   * JSON gateway responses. API Gateway fills their templates by plain substitution (not VTL), so only values that
   * cannot break a JSON string go in: its own quoted message (`$context.error.messageString`, embedded bare), its
   * request id, and the authorizer's `reason`, which the authorizer escapes. Never
   * `$context.error.validationErrorString` (raw text with quotes). A request header can only reach a response
   * header (`method.request.header.*`), never the body, and the authorizer's context is cached per token and
   * route, so: the `X-Correlation-Id` header echoes the caller's, and the body's `correlationId` is API Gateway's
   * request id (the one the access log holds). See the README's HTTP contract.
   */
  private addGatewayResponses(origins: string[]): void {
    // One origin: named. Several: the request's Origin echoed (a gateway response cannot choose among them), with
    // Vary: Origin. These bodies hold nothing but the error: the integration's own answers name only configured
    // origins (see Responder), and the API takes bearer tokens, not cookies.
    const headers: Record<string, string> = {
      'Access-Control-Allow-Origin': origins.length === 1 ? `'${origins[0]}'` : 'method.request.header.Origin',
      'Access-Control-Allow-Credentials': "'true'",
      'Access-Control-Expose-Headers': "'X-Correlation-Id'",
      'X-Correlation-Id': 'method.request.header.X-Correlation-Id',
      'X-Content-Type-Options': "'nosniff'",
      'Cache-Control': "'no-store'",
      ...(origins.length === 1 ? {} : { Vary: "'Origin'" }),
    };
    const body = (error: string, message: string, extra = '') =>
      `{"error":"${error}","message":${message},${extra}"correlationId":"$context.requestId"}`;
    const responses: Array<[string, apigw.ResponseType, string | undefined, string, string, string?]> = [
      ['Unauthorized', apigw.ResponseType.UNAUTHORIZED, '401', 'Unauthorized', '"Missing, malformed, expired or invalid token"'],
      ['AccessDenied', apigw.ResponseType.ACCESS_DENIED, '403', 'Forbidden', '"Your groups may not call this route"', '"reason":"$context.authorizer.reason",'],
      ['NotFound', apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, '404', 'NotFound', '"No route for this method and path"'],
      ['BadRequestBody', apigw.ResponseType.BAD_REQUEST_BODY, '400', 'ValidationError', '$context.error.messageString'],
      ['BadRequestParameters', apigw.ResponseType.BAD_REQUEST_PARAMETERS, '400', 'ValidationError', '$context.error.messageString'],
      ['Throttled', apigw.ResponseType.THROTTLED, '429', 'TooManyRequests', '$context.error.messageString'],
      ['Default4xx', apigw.ResponseType.DEFAULT_4XX, undefined, 'ClientError', '$context.error.messageString'],
      ['Default5xx', apigw.ResponseType.DEFAULT_5XX, undefined, 'InternalError', '"Internal error"'],
    ];
    for (const [id, type, statusCode, error, message, extra] of responses) {
      this.restApi.addGatewayResponse(id, {
        type,
        statusCode,
        responseHeaders: headers,
        templates: { 'application/json': body(error, message, extra) },
      });
    }
  }
}

function validate(path: string, props: SkafuApiProps): void {
  const errors: string[] = [];
  const origins = props.corsOrigins ?? [];
  if (props.corsOrigins && origins.length === 0) errors.push("'corsOrigins' is empty");
  if (origins.includes('*')) errors.push("'corsOrigins' contains '*', which browsers refuse with credentials; list the origins");
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) errors.push(`CORS origin '${o}' must be scheme://host[:port] without a path`);
  }
  if (props.throttle && !(props.throttle.rateLimit > 0 && props.throttle.burstLimit >= props.throttle.rateLimit)) {
    errors.push("'throttle' needs rateLimit > 0 and burstLimit >= rateLimit");
  }
  const ttl = props.authorizerCacheTtl?.toSeconds();
  if (ttl !== undefined && (ttl < 0 || ttl > 3600)) errors.push("'authorizerCacheTtl' must be 0 to 3600 seconds");
  const lifetime = props.maxTokenLifetime?.toSeconds();
  if (lifetime !== undefined && (lifetime < 300 || lifetime > 86400)) errors.push("'maxTokenLifetime' must be 5 minutes to 1 day");
  if (props.webAclArn && !Token.isUnresolved(props.webAclArn) && !props.webAclArn.includes(':wafv2:')) {
    errors.push('\'webAclArn\' must be a WAFv2 web ACL ARN');
  }
  if (errors.length > 0) throw new Error(`SkafuApi ${path}: ${errors.join('; ')}`);
}

/** The route table as the authorizer reads it: routes sorted, each route's groups sorted (a stable asset hash). */
function routesFile(routes: RouteGroups): string {
  return JSON.stringify(Object.fromEntries(Object.keys(routes).sort().map((route) => [route, [...routes[route]].sort()])));
}
