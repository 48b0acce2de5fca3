/**
 * The policy the RBAC authorizer returns, shaped to fit API Gateway's authorizer cache.
 *
 * API Gateway caches an authorizer's result under the values of its identity sources (here: the token, the
 * method and the route template) and, for every later request with the same values during the TTL, evaluates
 * the cached policy against that request's own concrete `methodArn` (`.../GET/api/v1/projects/p2`). A policy
 * naming the first request's concrete ARN (`.../projects/p1`) therefore answers 403 to the same user on the same
 * route with another path value. (AWS knowledge center "api-gateway-lambda-authorization-errors"; see
 * aws-behaviours.md section 1.)
 *
 * So the decision names the route, not the request: the route template's ARN with each `{param}` as `*`. An IAM
 * `*` also matches `/`, and `projects/*` would also match a more specific route such as `projects/search` or a
 * deeper one such as `projects/{id}/history`; the policy must never widen the decision to another route, even if
 * the cache key were the token alone. Two kinds of explicit Deny (which win over the Allow in IAM evaluation)
 * bound it to exactly the one method and route:
 * - any path with more segments than the route (`.../GET/*` repeated one more time than the route has segments);
 * - every declared route of the same method that API Gateway would pick instead for a path the wildcard matches
 *   (the same number of segments and, at the first segment where they differ, a literal where this route has a
 *   parameter: API Gateway prefers the literal resource).
 * Routes made outside `addRoute` are not in the route table; they are denied by the authorizer anyway (their
 * route is "not declared"), whatever a cached policy says about other routes.
 */

/** An IAM policy statement for `execute-api:Invoke`. */
export interface InvokeStatement {
  readonly Action: 'execute-api:Invoke';
  readonly Effect: 'Allow' | 'Deny';
  readonly Resource: string;
}

const PARAM = /^\{[^}]+\}$/;

function segmentsOf(template: string): string[] {
  return template.split('/').filter((s) => s.length > 0);
}

/** `true` when API Gateway would route to `other` (not `route`) every path that both templates match. */
function overrides(other: string[], route: string[]): boolean {
  if (other.length !== route.length) return false;
  for (let i = 0; i < route.length; i++) {
    const mine = PARAM.test(route[i]);
    const theirs = PARAM.test(other[i]);
    if (!mine && !theirs && route[i] !== other[i]) return false; // two different literals: no common path
    if (mine && !theirs) {
      // The first divergence decides: a literal beats a parameter. The rest must still be able to match.
      return other.slice(i + 1).every((s, j) => PARAM.test(s) || PARAM.test(route[i + 1 + j]) || s === route[i + 1 + j]);
    }
    if (!mine && theirs) return false; // this route is the more specific one
  }
  return false; // identical shape: the same route
}

/** The ARN up to and including the method (`arn:aws:execute-api:r:a:api/stage/GET`), from a concrete methodArn. */
function methodPrefix(methodArn: string): string | undefined {
  const m = /^(arn:[^:]+:execute-api:[^:]*:[^:]*:[^/]+\/[^/]+\/[^/]+)(\/.*)?$/.exec(methodArn);
  return m?.[1];
}

/** The route template as an execute-api Resource pattern: `{param}` (and `{proxy+}`) become `*`. */
export function routeResource(prefix: string, template: string): string {
  return `${prefix}/${segmentsOf(template).map((s) => (PARAM.test(s) ? '*' : s)).join('/')}`;
}

/**
 * The statements of a decision on one route (`method` + `template`), for the request's `methodArn`.
 * `declaredRoutes` are the route table's keys (`GET /api/v1/...`).
 */
export function routePolicy(effect: 'Allow' | 'Deny', methodArn: string, method: string, template: string | undefined, declaredRoutes: string[]): InvokeStatement[] {
  const prefix = methodPrefix(methodArn);
  if (!prefix || !template || !template.startsWith('/')) {
    // Not an ARN or a template we can read: decide for exactly this request.
    return [{ Action: 'execute-api:Invoke', Effect: effect, Resource: methodArn }];
  }
  const segments = segmentsOf(template);
  const statements: InvokeStatement[] = [{ Action: 'execute-api:Invoke', Effect: effect, Resource: routeResource(prefix, template) }];
  if (effect === 'Allow' && segments.some((s) => PARAM.test(s))) {
    statements.push({ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: `${prefix}${'/*'.repeat(segments.length + 1)}` });
    const verb = method.toUpperCase();
    for (const key of declaredRoutes) {
      const space = key.indexOf(' ');
      if (key.slice(0, space) !== verb) continue;
      const other = key.slice(space + 1);
      if (other !== template && overrides(segmentsOf(other), segments)) {
        statements.push({ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: routeResource(prefix, other) });
      }
    }
  }
  return statements;
}
