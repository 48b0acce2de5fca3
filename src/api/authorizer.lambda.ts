/**
 * RBAC at the edge: a Lambda REQUEST authorizer that verifies the Cognito JWT (signature against the pool's
 * JWKS, issuer, client id, token use, expiry) with aws-jwt-verify, reads `cognito:groups`, and allows the call
 * only if one of the user's groups is allowed on the route being called. Allowed calls carry the user id, the
 * groups and the correlation id to the integration (`requestContext.authorizer`).
 *
 * Caching and the classic leak: API Gateway caches an authorizer's policy by its identity sources. If the cache
 * key were the token alone, an Allow computed for one route would be replayed for every other route the same
 * token calls, whatever their groups. Here the authorizer's identity sources are the Authorization header AND
 * `context.httpMethod` AND `context.resourcePath`, so the cache key is (token, method, route): a cached decision
 * is only ever reused for the very route it was made for. On top of that, the policy allows exactly the one
 * method ARN being called, never a wildcard, so even a mis-keyed cache could not widen it.
 *
 * Outcomes: no or malformed token, bad signature, wrong issuer, wrong client, wrong token use, expired: 401
 * (thrown "Unauthorized"). A valid user outside the route's groups, or a route not in the table: 403 (Deny).
 * Both get JSON bodies from the API's gateway responses.
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import { SimpleJwksCache, type Jwks } from 'aws-jwt-verify/jwk';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { powertools, type Powertools } from '../internal/powertools';
import { correlationIdFrom, headerValue, parseGroupsClaim } from '../runtime/http';
import { decodeRouteGroups, routeKey, type RouteGroups } from '../runtime/routes';

/** What the authorizer needs to know. */
export interface AuthorizerConfig {
  readonly userPoolId: string;
  readonly clientId: string;
  readonly tokenUse: 'access' | 'id';
  readonly routes: RouteGroups;
  /** Local emulation only: fetch the JWKS from here instead of Cognito. */
  readonly jwksUriOverride?: string;
}

export interface AuthorizerDeps {
  readonly config: AuthorizerConfig;
  readonly tools: Powertools;
  /** A JWKS to load up front instead of fetching it (tests, or a pool whose keys are known). */
  readonly jwks?: Jwks;
}

export function authorizerConfigFromEnvironment(env: NodeJS.ProcessEnv = process.env): AuthorizerConfig {
  const missing = ['SKAFU_USER_POOL_ID', 'SKAFU_USER_POOL_CLIENT_ID', 'SKAFU_ROUTES'].filter((k) => !env[k]);
  if (missing.length > 0) throw new Error(`authorizer misconfigured: ${missing.join(', ')} not set`);
  return {
    userPoolId: env.SKAFU_USER_POOL_ID!,
    clientId: env.SKAFU_USER_POOL_CLIENT_ID!,
    tokenUse: env.SKAFU_TOKEN_USE === 'id' ? 'id' : 'access',
    routes: decodeRouteGroups(env.SKAFU_ROUTES!),
    jwksUriOverride: env.SKAFU_JWKS_URI_OVERRIDE || undefined,
  };
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
    const userId = String(claims.sub ?? '');
    const groups = parseGroupsClaim(claims['cognito:groups']);
    const allowedGroups = config.routes[route];
    const allowed = allowedGroups !== undefined && groups.some((g) => allowedGroups.includes(g));
    tools.logger.info(allowed ? 'allowed' : 'denied', { route, correlationId, userId, groups, allowedGroups: allowedGroups ?? 'route not declared' });
    return {
      principalId: userId || 'anonymous',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: allowed ? 'Allow' : 'Deny', Resource: event.methodArn }],
      },
      context: {
        userId,
        username: String(claims.username ?? claims['cognito:username'] ?? ''),
        groups: groups.join(','),
        correlationId,
        // Why a Deny happened, for the 403 body (API Gateway exposes it as $context.authorizer.reason).
        reason: allowed ? '' : allowedGroups === undefined ? 'route not declared' : `requires one of: ${allowedGroups.join(', ')}`,
      },
    };
  };
}

let instance: ReturnType<typeof createAuthorizer> | undefined;

export const handler = async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
  instance ??= createAuthorizer({ config: authorizerConfigFromEnvironment(), tools: powertools('skafu-authorizer') });
  return instance(event);
};
