/**
 * A test model of API Gateway (REST) in front of a Lambda REQUEST authorizer, as AWS documents it (the documents
 * are listed in local/src/authorizer-cache.ts; see aws-behaviours.md section 1):
 * - the authorizer gets the request's CONCRETE methodArn (`.../GET/api/v1/projects/p1`), not the template;
 * - its result is cached under the values of ALL identity sources together, for the TTL;
 * - a missing or empty identity source answers 401 without calling the authorizer;
 * - each request (cached or not) is let through only if the policy allows ITS OWN methodArn, IAM-style
 *   (`*` and `?` wildcards, an explicit Deny wins); otherwise 403.
 * The cache, the key and the policy evaluation are the same pure functions Skafu Local uses.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { AuthorizerCache, identityKey, methodArn, policyAllows, type AuthorizerResult } from '../../local/src/authorizer-cache';

export interface GatewayModelOptions {
  /** The authorizer's IdentitySource, as synthesized (comma-separated). */
  readonly identitySource: string;
  /** AuthorizerResultTtlInSeconds. */
  readonly ttlSeconds: number;
  readonly authorize: (event: APIGatewayRequestAuthorizerEvent) => Promise<APIGatewayAuthorizerResult>;
  /** The clock in milliseconds. @default Date.now */
  readonly now?: () => number;
}

export interface GatewayOutcome {
  readonly status: 200 | 401 | 403;
  /** Whether the authorizer ran for this request (false: cached, or refused before it). */
  readonly invoked: boolean;
  readonly result?: APIGatewayAuthorizerResult;
  readonly methodArn: string;
}

export const MODEL_ARN = { region: 'us-east-1', account: '111111111111', apiId: 'abc123', stage: 'development' };

/** The concrete path of a route template with its parameters filled in. */
export function concretePath(template: string, params: Record<string, string>): string {
  return template.replace(/\{([^}]+)\}/g, (_m, name: string) => {
    if (!Object.prototype.hasOwnProperty.call(params, name)) throw new Error(`no value for {${name}} in ${template}`);
    return encodeURIComponent(params[name]);
  });
}

export class ApiGatewayModel {
  public invocations = 0;
  private readonly cache: AuthorizerCache;

  constructor(private readonly options: GatewayModelOptions) {
    this.cache = new AuthorizerCache(options.ttlSeconds, options.now ?? Date.now);
  }

  /** One request: `template` is the route it matches, `params` its path values. */
  public async call(method: string, template: string, params: Record<string, string>, headers: Record<string, string>): Promise<GatewayOutcome> {
    const path = concretePath(template, params);
    const arn = methodArn({ ...MODEL_ARN, method, path });
    const key = identityKey(this.options.identitySource, { method, resourcePath: template, headers });
    if (key === undefined) return { status: 401, invoked: false, methodArn: arn };
    const event: APIGatewayRequestAuthorizerEvent = {
      type: 'REQUEST',
      methodArn: arn,
      resource: template,
      path,
      httpMethod: method,
      headers,
      multiValueHeaders: {},
      pathParameters: params,
      queryStringParameters: {},
      multiValueQueryStringParameters: {},
      stageVariables: {},
      requestContext: { httpMethod: method, resourcePath: template, path: `/${MODEL_ARN.stage}${path}`, stage: MODEL_ARN.stage, requestId: `req-${this.invocations}` } as never,
    };
    let outcome: { result: AuthorizerResult; cached: boolean };
    try {
      outcome = await this.cache.resolve(key, async () => {
        this.invocations++;
        return (await this.options.authorize(event)) as unknown as AuthorizerResult;
      });
    } catch (err) {
      if ((err as Error).message === 'Unauthorized') return { status: 401, invoked: true, methodArn: arn };
      throw err;
    }
    const result = outcome.result as unknown as APIGatewayAuthorizerResult;
    return { status: policyAllows(outcome.result, arn) ? 200 : 403, invoked: !outcome.cached, result, methodArn: arn };
  }
}
