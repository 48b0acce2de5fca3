/**
 * The local token issuer: a key pair made at start, its JWKS served by Skafu Local, and Cognito-shaped access
 * tokens (issuer, client id, token use, groups) for a demo user in each group. The bundled authorizer verifies
 * them exactly as it verifies Cognito's, fetching this JWKS instead (SKAFU_JWKS_URI_OVERRIDE).
 */
import { generateKeyPairSync, createSign, randomUUID } from 'node:crypto';
import { LOCAL_REGION } from './assembly';

export class LocalIssuer {
  public readonly jwks: { keys: Array<Record<string, unknown>> };
  public readonly issuer: string;
  private readonly privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'];
  private readonly kid = `skafu-local-${randomUUID().slice(0, 8)}`;

  constructor(
    public readonly userPoolId: string,
    public readonly clientId: string,
  ) {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.jwks = { keys: [{ ...(publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: this.kid, alg: 'RS256', use: 'sig' }] };
    this.issuer = `https://cognito-idp.${LOCAL_REGION}.amazonaws.com/${userPoolId}`;
  }

  /** An access token for a user in the given groups. */
  public token(sub: string, groups: string[], ttlSeconds = 12 * 3600): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', kid: this.kid, typ: 'JWT' };
    const payload = {
      sub,
      'username': sub,
      'cognito:groups': groups,
      'iss': this.issuer,
      'client_id': this.clientId,
      'token_use': 'access',
      'scope': 'aws.cognito.signin.user.admin',
      'auth_time': now,
      'iat': now,
      'exp': now + ttlSeconds,
      'jti': randomUUID(),
    };
    const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${encode(header)}.${encode(payload)}`;
    const signature = createSign('RSA-SHA256').update(unsigned).sign(this.privateKey).toString('base64url');
    return `${unsigned}.${signature}`;
  }

  /** One demo user per group (`demo-admin` in Admin, ...) and one in no group. */
  public demoTokens(groups: string[]): Record<string, string> {
    const tokens: Record<string, string> = {};
    for (const group of groups) tokens[group] = this.token(`demo-${group.toLowerCase()}`, [group]);
    tokens.NoGroup = this.token('demo-nogroup', []);
    return tokens;
  }
}
