/**
 * The authorization AppSync does before any resolver runs, for the two modes Skafu's APIs use:
 * - Cognito user pools: a JWT signed by the pool's key (RS256, checked against its JWKS: the local issuer's in
 *   Skafu Local), issued by the pool, not expired and not used before `nbf`, for an app client the API accepts
 *   (`AppIdClientRegex`, read from `client_id` of access tokens or `aud` of ID tokens; AppSync accepts both kinds).
 *   `@aws-amplify/amplify-appsync-simulator` decodes tokens without checking their signature; this does.
 * - IAM: a SigV4 `Authorization` header. Skafu Local holds one credential (access key `local`, the one it gives
 *   the functions it runs): a request signed for it is the platform; the signature itself is not recomputed.
 * Anything else answers 401 `UnauthorizedException`, as AppSync does.
 */
import { createPublicKey, createVerify } from 'node:crypto';
import type { AppSyncIdentity } from './appsync';

export interface AppSyncAuthConfig {
  /** The user pool's issuer (`https://cognito-idp.<region>.amazonaws.com/<poolId>`). */
  readonly issuer: string;
  readonly jwks: () => { keys: Array<Record<string, unknown>> };
  /** `AppIdClientRegex`; absent: every client. */
  readonly appIdClientRegex?: string;
  /** The access key an IAM-signed request must name. @default 'local' */
  readonly iamAccessKeyId?: string;
  readonly now?: () => number;
}

export class AuthError extends Error {
  public readonly errorType = 'UnauthorizedException';
}

function decode(part: string): Record<string, any> {
  const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AuthError('malformed token');
  return value;
}

/** The caller of a request, from its `Authorization` header value; throws AuthError (401). */
export function authenticate(authorization: string | undefined, config: AppSyncAuthConfig): AppSyncIdentity {
  if (!authorization) throw new AuthError('Missing authorization header');
  const sigv4 = /^AWS4-HMAC-SHA256 Credential=([^/]+)\//.exec(authorization);
  if (sigv4) {
    if (sigv4[1] !== (config.iamAccessKeyId ?? 'local')) throw new AuthError('The security token included in the request is invalid');
    return { kind: 'iam', accessKeyId: sigv4[1] };
  }
  const token = authorization.replace(/^Bearer /, '');
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw new AuthError('Valid authorization header not provided');
  let header: Record<string, any>;
  let claims: Record<string, any>;
  try {
    header = decode(parts[0]);
    claims = decode(parts[1]);
  } catch {
    throw new AuthError('Valid authorization header not provided');
  }
  const jwk = config.jwks().keys.find((k) => k.kid === header.kid);
  if (header.alg !== 'RS256' || !jwk) throw new AuthError('Token signed by an unknown key');
  const verified = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`).verify(createPublicKey({ key: jwk as any, format: 'jwk' }), Buffer.from(parts[2], 'base64url'));
  if (!verified) throw new AuthError('Token signature is invalid');
  const now = Math.floor((config.now ?? Date.now)() / 1000);
  if (claims.iss !== config.issuer) throw new AuthError('Token issued by another user pool');
  if (typeof claims.exp !== 'number' || claims.exp <= now) throw new AuthError('Token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf > now) throw new AuthError('Token not yet valid');
  if (claims.token_use !== 'access' && claims.token_use !== 'id') throw new AuthError('Not an access or ID token');
  const client = claims.token_use === 'access' ? claims.client_id : claims.aud;
  if (config.appIdClientRegex && !(typeof client === 'string' && new RegExp(config.appIdClientRegex).test(client))) throw new AuthError('Token issued to another app client');
  const groups = Array.isArray(claims['cognito:groups']) ? claims['cognito:groups'].filter((g: unknown): g is string => typeof g === 'string') : [];
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new AuthError('Token has no subject');
  return { kind: 'cognito', sub: claims.sub, username: String(claims.username ?? claims['cognito:username'] ?? claims.sub), groups, claims, issuer: claims.iss };
}
