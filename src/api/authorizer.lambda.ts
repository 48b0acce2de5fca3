/**
 * RBAC at the edge: a Lambda REQUEST authorizer that verifies the Cognito JWT (signature against the pool's
 * JWKS, issuer, client id, token use, expiry) with aws-jwt-verify, requires `exp` and a bounded lifetime (the
 * verifier skips the expiry check when the claim is absent), reads `cognito:groups`, and allows the call only
 * if one of the user's groups is allowed on the route being called. Allowed calls carry the user id and the
 * groups to the integration (`requestContext.authorizer`).
 *
 * Caching: API Gateway caches an authorizer's result by its identity sources and evaluates the cached policy
 * against every later request's concrete `methodArn`. The identity sources are the Authorization header AND
 * `context.httpMethod` AND `context.resourcePath`, so the cache key is (token, method, route template): a
 * cached decision is only ever reused for the route it was made for, whatever the path values. The policy names
 * that route (its template's ARN, each path parameter a wildcard) and explicitly denies every other route the
 * wildcard could reach, so a cached decision fits every path value of its route and can never widen access to
 * another route or method (see ./route-policy.ts). Because the context is cached too, it holds only what
 * depends on the token and the route (user, groups, the reason of a Deny), never per-request values such as a
 * correlation id.
 *
 * Outcomes: no or malformed token, bad signature, wrong issuer, wrong client, wrong token use, expired, no
 * `exp`, too long a lifetime: 401 (thrown "Unauthorized"). A valid user outside the route's groups, or a route
 * not in the table: 403 (Deny). Both get JSON bodies from the API's gateway responses.
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import { SimpleJwksCache, type Jwks } from 'aws-jwt-verify/jwk';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { routePolicy } from './route-policy';
import { powertools, type Powertools } from '../internal/powertools';
import { loadRouteTable } from '../internal/spec-loader';
import { correlationIdFrom, headerValue, parseGroupsClaim } from '../runtime/http';
import { routeKey, type RouteGroups } from '../runtime/routes';

/** What the authorizer needs to know. */
export interface AuthorizerConfig {
  readonly userPoolId: string;
  readonly clientId: string;
  readonly tokenUse: 'access' | 'id';
  readonly routes: RouteGroups;
  /** Local emulation only: fetch the JWKS from here instead of Cognito. */
  readonly jwksUriOverride?: string;
  /** The longest lifetime (`exp` - `iat`) a token may have, in seconds. Default: 1 day, Cognito's maximum. */
  readonly maxTokenLifetimeSeconds?: number;
}

/** Cognito's longest access or ID token validity (1 day). */
export const MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600;
/** Clock skew tolerated on `iat`. */
const CLOCK_SKEW_SECONDS = 300;

export interface AuthorizerDeps {
  readonly config: AuthorizerConfig;
  readonly tools: Powertools;
  /** A JWKS to load up front instead of fetching it (tests, or a pool whose keys are known). */
  readonly jwks?: Jwks;
}

/**
 * The configuration: names from the environment, the route table (any size) from the file shipped in the
 * function's code asset (see internal/spec-loader.ts).
 */
export function authorizerConfigFromEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  routes: () => RouteGroups = () => loadRouteTable(),
): AuthorizerConfig {
  const missing = ['SKAFU_USER_POOL_ID', 'SKAFU_USER_POOL_CLIENT_ID'].filter((k) => !env[k]);
  if (missing.length > 0) throw new Error(`authorizer misconfigured: ${missing.join(', ')} not set`);
  return {
    userPoolId: env.SKAFU_USER_POOL_ID!,
    clientId: env.SKAFU_USER_POOL_CLIENT_ID!,
    tokenUse: env.SKAFU_TOKEN_USE === 'id' ? 'id' : 'access',
    routes: routes(),
    jwksUriOverride: env.SKAFU_JWKS_URI_OVERRIDE || undefined,
    maxTokenLifetimeSeconds: lifetimeFromEnvironment(env.SKAFU_MAX_TOKEN_LIFETIME),
  };
}

function lifetimeFromEnvironment(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (!Number.isSafeInteger(seconds) || seconds < 60) throw new Error(`authorizer misconfigured: SKAFU_MAX_TOKEN_LIFETIME '${value}' is not a number of seconds >= 60`);
  return seconds;
}

function makeVerifier(config: AuthorizerConfig) {
  const jwksCache = config.jwksUriOverride
    ? new SimpleJwksCache({
      fetcher: {
        fetch: async () => {
          const response = await fetch(config.jwksUriOverride!);
          if (!response.ok) throw new Error(`JWKS fetch failed: ${response.status}`);
          return response.arrayBuffer();
        },
      },
    })
    : undefined;
  return CognitoJwtVerifier.create(
    { userPoolId: config.userPoolId, clientId: config.clientId, tokenUse: config.tokenUse },
    jwksCache ? { jwksCache } : undefined,
  );
}

export function createAuthorizer(deps: AuthorizerDeps) {
  const { config, tools } = deps;
  const verifier = makeVerifier(config);
  if (deps.jwks) verifier.cacheJwks(deps.jwks);
  const declaredRoutes = Object.keys(config.routes);
  const maxLifetime = config.maxTokenLifetimeSeconds ?? MAX_TOKEN_LIFETIME_SECONDS;

  return async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
    const correlationId = correlationIdFrom(event.headers);
    const route = routeKey(event.httpMethod, event.resource);
    const header = headerValue(event.headers, 'Authorization')?.trim() ?? '';
    const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i.exec(header);
    if (!match) {
      tools.logger.info('refused: no bearer token', { route, correlationId, reason: header ? 'malformed' : 'missing' });
      throw new Error('Unauthorized');
    }
    let claims: Record<string, unknown>;
    try {
      claims = (await verifier.verify(match[1])) as unknown as Record<string, unknown>;
    } catch (err) {
      tools.logger.info('refused: token did not verify', { route, correlationId, reason: (err as Error).name });
      throw new Error('Unauthorized');
    }
    const lifetimeProblem = checkLifetime(claims, maxLifetime, Math.floor(Date.now() / 1000));
    if (lifetimeProblem) {
      tools.logger.info('refused: token lifetime', { route, correlationId, reason: lifetimeProblem });
      throw new Error('Unauthorized');
    }
    const userId = typeof claims.sub === 'string' ? claims.sub : '';
    const groups = parseGroupsClaim(claims['cognito:groups']);
    const allowedGroups = Object.prototype.hasOwnProperty.call(config.routes, route) ? config.routes[route] : undefined;
    const allowed = allowedGroups !== undefined && groups.some((g) => allowedGroups.includes(g));
    tools.logger.info(allowed ? 'allowed' : 'denied', { route, correlationId, userId, groups, allowedGroups: allowedGroups ?? 'route not declared' });
    const reason = allowed ? '' : allowedGroups === undefined ? 'route not declared' : `requires one of: ${allowedGroups.join(', ')}`;
    return {
      principalId: userId || 'anonymous',
      policyDocument: {
        Version: '2012-10-17',
        Statement: routePolicy(allowed ? 'Allow' : 'Deny', event.methodArn, event.httpMethod, event.resource, declaredRoutes),
      },
      context: {
        userId,
        username: String(claims.username ?? claims['cognito:username'] ?? ''),
        groups: groups.join(','),
        // Why a Deny happened, for the 403 body: API Gateway substitutes $context.authorizer.reason into the
        // gateway response template as is, inside a JSON string, so it is escaped here (group names may hold
        // quotes or backslashes).
        reason: jsonStringContent(reason),
      },
    };
  };
}

/** Why a verified token's lifetime is refused, or undefined. aws-jwt-verify checks `exp` only when present. */
export function checkLifetime(claims: Record<string, unknown>, maxLifetimeSeconds: number, nowSeconds: number): string | undefined {
  const { exp, iat } = claims;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'no exp claim';
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return 'no iat claim';
  if (iat > nowSeconds + CLOCK_SKEW_SECONDS) return 'issued in the future';
  if (exp - iat > maxLifetimeSeconds) return `lifetime ${exp - iat} s is over ${maxLifetimeSeconds} s`;
  if (exp - nowSeconds > maxLifetimeSeconds) return 'expires too far in the future';
  return undefined;
}

/** The text of a JSON string literal, without its quotes. */
function jsonStringContent(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

let instance: ReturnType<typeof createAuthorizer> | undefined;

export const handler = async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
  instance ??= createAuthorizer({ config: authorizerConfigFromEnvironment(), tools: powertools('skafu-authorizer') });
  return instance(event);
};
