/**
 * API Gateway's Lambda REQUEST authorizer, as AWS documents it, in pure functions: the concrete `methodArn`, the
 * cache key made of every identity source, the result cache with its TTL, and the evaluation of a (possibly
 * cached) policy against each request's own `methodArn` with IAM-style wildcards. Skafu Local runs requests
 * through it, and the tests' model of API Gateway (test/support/api-gateway.ts) uses the same functions.
 *
 * AWS documents followed (see /work/shared/reference/aws-behaviours.md section 1):
 * - "Configure a Lambda authorizer" (configure-api-gateway-lambda-authorization-with-console): the cache key is
 *   all identity sources together; a missing or empty identity source answers 401 without calling the
 *   authorizer; TTL default 300 s, 0 disables caching, at most 3600 s (API_Authorizer).
 * - "Input to a Lambda authorizer" (api-gateway-lambda-authorizer-input) and "Control access with IAM policies"
 *   (api-gateway-control-access-using-iam-policies-to-invoke-api): `methodArn` is
 *   `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{VERB}/{concrete path}`.
 * - Knowledge center "api-gateway-lambda-authorization-errors": a cached policy is reused for every request with
 *   the same identity sources during the TTL; if its Resource does not match the new request's methodArn, the
 *   caller gets 403 "User is not authorized to access this resource".
 * - IAM policy evaluation: an explicit Deny wins over any Allow; no matching Allow is an implicit deny. In a
 *   Resource, `*` matches any run of characters (including `/` and none) and `?` exactly one.
 */

/** One statement of an authorizer's policy. */
export interface PolicyStatement {
  readonly Effect: string;
  readonly Action?: string | string[];
  readonly Resource: string | string[];
}

/** What a Lambda authorizer returns (the parts API Gateway uses). */
export interface AuthorizerResult {
  readonly principalId?: string;
  readonly policyDocument: { readonly Statement: ReadonlyArray<PolicyStatement> };
  readonly context?: Record<string, unknown>;
}

/** The concrete method ARN API Gateway hands to the authorizer and checks the policy against. */
export function methodArn(parts: { region: string; account: string; apiId: string; stage: string; method: string; path: string }): string {
  const path = parts.path.startsWith('/') ? parts.path : `/${parts.path}`;
  return `arn:aws:execute-api:${parts.region}:${parts.account}:${parts.apiId}/${parts.stage}/${parts.method.toUpperCase()}${path}`;
}

/** IAM-style match of one Resource pattern against an ARN: `*` any run of characters, `?` one character. */
export function arnMatches(pattern: string, arn: string): boolean {
  // Iterative glob matching with backtracking on the last `*` (linear-ish, no regex built from input).
  let p = 0;
  let a = 0;
  let star = -1;
  let mark = 0;
  while (a < arn.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === arn[a])) {
      p++;
      a++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = a;
    } else if (star >= 0) {
      p = star + 1;
      a = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

function actionCovers(action: string | string[] | undefined): boolean {
  if (action === undefined) return false;
  return (Array.isArray(action) ? action : [action]).some((a) => arnMatches(a.toLowerCase(), 'execute-api:invoke'));
}

/**
 * Whether a policy lets a request with this method ARN through: an explicit Deny that matches wins, then any
 * matching Allow; otherwise it is an implicit deny (API Gateway answers 403).
 */
export function policyAllows(result: AuthorizerResult, arn: string): boolean {
  const statements = result.policyDocument?.Statement ?? [];
  const resources = (s: PolicyStatement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
  const matching = statements.filter((s) => actionCovers(s.Action) && resources(s).some((r) => arnMatches(r, arn)));
  if (matching.some((s) => s.Effect === 'Deny')) return false;
  return matching.some((s) => s.Effect === 'Allow');
}

/** The request values identity sources can name. */
export interface IdentityRequest {
  readonly method: string;
  /** The route template, e.g. `/api/v1/projects/{projectId}`. */
  readonly resourcePath: string;
  readonly headers: Record<string, string | undefined>;
  readonly query?: Record<string, string | undefined>;
  readonly stageVariables?: Record<string, string | undefined>;
  readonly context?: Record<string, string | undefined>;
}

function ownValue(record: Record<string, string | undefined> | undefined, name: string, caseInsensitive = false): string | undefined {
  if (!record) return undefined;
  for (const key of Object.keys(record)) {
    if (caseInsensitive ? key.toLowerCase() === name.toLowerCase() : key === name) return record[key];
  }
  return undefined;
}

/**
 * The cache key of a request: the values of every identity source, in order. Undefined when one is missing or
 * empty: API Gateway then answers 401 without calling the authorizer.
 */
export function identityKey(identitySource: string, request: IdentityRequest): string | undefined {
  const sources = identitySource.split(',').map((s) => s.trim()).filter(Boolean);
  const values: string[] = [];
  for (const source of sources) {
    let value: string | undefined;
    if (source.startsWith('method.request.header.')) value = ownValue(request.headers, source.slice('method.request.header.'.length), true);
    else if (source.startsWith('method.request.querystring.')) value = ownValue(request.query, source.slice('method.request.querystring.'.length));
    else if (source.startsWith('stageVariables.')) value = ownValue(request.stageVariables, source.slice('stageVariables.'.length));
    else if (source === 'context.httpMethod') value = request.method;
    else if (source === 'context.resourcePath') value = request.resourcePath;
    else if (source.startsWith('context.')) value = ownValue(request.context, source.slice('context.'.length));
    else throw new Error(`identity source '${source}' is not one API Gateway supports`);
    if (value === undefined || value === '') return undefined;
    values.push(value);
  }
  // JSON keeps the tuple unambiguous whatever the values contain.
  return JSON.stringify(values);
}

/** API Gateway's authorizer result cache: one entry per identity-source tuple, kept for the TTL. */
export class AuthorizerCache {
  private readonly entries = new Map<string, { result: AuthorizerResult; expires: number }>();

  /**
   * @param ttlSeconds the authorizer's `AuthorizerResultTtlInSeconds` (0 disables caching)
   * @param now the clock, in milliseconds (tests move it)
   */
  constructor(
    public readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  public get(key: string): AuthorizerResult | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.result;
  }

  public set(key: string, result: AuthorizerResult): void {
    if (this.ttlSeconds <= 0) return;
    this.entries.set(key, { result, expires: this.now() + this.ttlSeconds * 1000 });
  }

  /**
   * The cached result for the key, or the authorizer's (then cached). `cached` says which.
   * Errors (a thrown "Unauthorized", a crash) are not cached here; whether API Gateway caches a 401 is not
   * documented (unverified), and not caching it only ever calls the authorizer more often.
   */
  public async resolve(key: string, authorize: () => Promise<AuthorizerResult>): Promise<{ result: AuthorizerResult; cached: boolean }> {
    const hit = this.get(key);
    if (hit) return { result: hit, cached: true };
    const result = await authorize();
    this.set(key, result);
    return { result, cached: false };
  }
}
