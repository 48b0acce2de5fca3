/** A local token issuer for tests: a real RS256 key pair, its JWKS, and Cognito-shaped tokens signed with it. */
import type { Jwks } from 'aws-jwt-verify/jwk';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

export const REGION = 'us-east-1';
export const USER_POOL_ID = 'us-east-1_SkafuTest';
export const CLIENT_ID = 'skafutestclient0000000000';
export const ISSUER = `https://cognito-idp.${REGION}.amazonaws.com/${USER_POOL_ID}`;

export interface MintOptions {
  readonly expiresInSeconds?: number;
  readonly kid?: string;
  readonly notBeforeSeconds?: number;
  /** Leave the `exp` claim out (a validly signed token that never expires). */
  readonly omitExp?: boolean;
  /** Leave the `iat` claim out. */
  readonly omitIat?: boolean;
  /** `iat` relative to now (default -10). */
  readonly issuedAtSeconds?: number;
}

export interface TestIssuer {
  /** The issuer's key set, typed as the authorizer reads it. */
  readonly jwks: Jwks;
  mint(claims: Record<string, unknown>, options?: MintOptions): Promise<string>;
}

export async function createIssuer(kid = 'test-key-1'): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return {
    // jose's JWK has no index signature; the same object is a JSON Web Key Set as aws-jwt-verify types it.
    jwks: { keys: [jwk] } as unknown as Jwks,
    async mint(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ token_use: 'access', client_id: CLIENT_ID, iss: ISSUER, ...claims }).setProtectedHeader({ alg: 'RS256', kid: options.kid ?? kid });
      if (!options.omitIat) jwt.setIssuedAt(now + (options.issuedAtSeconds ?? -10));
      if (!options.omitExp) jwt.setExpirationTime(now + (options.expiresInSeconds ?? 3600));
      if (options.notBeforeSeconds) jwt.setNotBefore(now + options.notBeforeSeconds);
      return jwt.sign(privateKey);
    },
  };
}

/** A user's access token claims, Cognito-style. */
export function userClaims(sub: string, groups: string[]): Record<string, unknown> {
  return { sub, username: sub, ...(groups.length > 0 ? { 'cognito:groups': groups } : {}), scope: 'aws.cognito.signin.user.admin' };
}
