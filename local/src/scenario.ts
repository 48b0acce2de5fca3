/**
 * Recorded scenarios: a JSON file of HTTP requests, the statuses and body values each must answer with, values
 * to keep for later steps, and waits for a read-model condition (a query repeated until it holds). A scenario
 * names users, not tokens: the runner is given a token per user, so the same file runs against Skafu Local
 * (its tokens.json) or against a deployed stage (tokens of real users), unchanged.
 *
 * {
 *   "name": "alerts",
 *   "steps": [
 *     { "name": "create", "request": { "method": "POST", "path": "/api/v1/observability/alerts", "as": "Developer",
 *         "body": { "name": "High CPU" } }, "expect": { "status": 201 }, "save": { "alertId": "body.aggregateId" } },
 *     { "name": "visible", "request": { "method": "GET", "path": "/api/v1/observability/alerts/${alertId}", "as": "Viewer" },
 *       "until": { "body.item.name": "High CPU" }, "timeoutMs": 20000 }
 *   ]
 * }
 *
 * - `${name}` in a path, body or header is a saved value (or `${run}`, a value unique to the run);
 * - `expect.status` is a number or a list; `expect.body` values are matched by JSON path (`body.item.count`) and
 *   are a value (equal), or an object with one of `exists`, `gte`, `lte`, `contains`, `matches` (a regex);
 * - `until` is the same kind of match, retried every 200 ms until it holds or `timeoutMs` (default 20 s) ends.
 */
import { randomUUID } from 'node:crypto';

export interface ScenarioRequest {
  readonly method: string;
  readonly path: string;
  /** The user whose token is sent (omit for no token). */
  readonly as?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export type Condition = unknown | { exists?: boolean; gte?: number; lte?: number; contains?: unknown; matches?: string };

export interface ScenarioStep {
  readonly name: string;
  readonly request: ScenarioRequest;
  readonly expect?: { readonly status?: number | number[]; readonly body?: Record<string, Condition> };
  /** Repeat the request until these hold (a read model catching up). */
  readonly until?: Record<string, Condition>;
  readonly timeoutMs?: number;
  /** Values to keep: a name and the JSON path of the reply (`body.aggregateId`, `headers.etag`). */
  readonly save?: Record<string, string>;
}

export interface Scenario {
  readonly name: string;
  readonly description?: string;
  readonly steps: ScenarioStep[];
}

export interface StepResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface RunScenarioOptions {
  /** The API base URL including the stage: `http://127.0.0.1:3000` or `https://abc.execute-api.../prod`. */
  readonly baseUrl: string;
  /** A token per user name. */
  readonly tokens: Record<string, string>;
  readonly log?: (line: string) => void;
  /** Prefix of the X-Correlation-Id sent with every request. @default 'scenario' */
  readonly correlationPrefix?: string;
}

interface Reply {
  readonly status: number;
  readonly body: any;
  readonly headers: Record<string, string>;
}

/** Checks a parsed scenario and throws naming the first problem. */
export function validateScenario(value: unknown, where = 'scenario'): Scenario {
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  if (!value || typeof value !== 'object') fail('not a JSON object');
  const s = value as Record<string, any>;
  if (typeof s.name !== 'string') fail('"name" must be a string');
  if (!Array.isArray(s.steps) || s.steps.length === 0) fail('"steps" must be a non-empty list');
  s.steps.forEach((step: any, i: number) => {
    const at = `step ${i + 1}${typeof step?.name === 'string' ? ` (${step.name})` : ''}`;
    if (!step || typeof step.name !== 'string') fail(`${at}: "name" must be a string`);
    if (!step.request || typeof step.request.method !== 'string' || typeof step.request.path !== 'string') fail(`${at}: "request" needs "method" and "path"`);
    if (!String(step.request.path).startsWith('/')) fail(`${at}: the path must start with /`);
    if (step.expect === undefined && step.until === undefined) fail(`${at}: give "expect" or "until"`);
  });
  return s as Scenario;
}

/** Runs a scenario's steps in order; a failed step is reported and the run goes on. */
export async function runScenario(scenario: Scenario, options: RunScenarioOptions): Promise<StepResult[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const saved: Record<string, unknown> = { run: randomUUID().slice(0, 8) };
  const base = options.baseUrl.replace(/\/+$/, '');
  let n = 0;
  const results: StepResult[] = [];
  for (const step of scenario.steps) {
    const request = substitute(step.request, saved) as ScenarioRequest;
    const call = async (): Promise<Reply> => {
      const token = request.as === undefined ? undefined : options.tokens[request.as];
      if (request.as !== undefined && token === undefined) throw new Error(`no token for user ${request.as}`);
      const response = await fetch(`${base}${request.path}`, {
        method: request.method,
        headers: {
          'Content-Type': 'application/json',
          'X-Correlation-Id': `${options.correlationPrefix ?? 'scenario'}-${saved.run}-${++n}`,
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(request.headers ?? {}),
        },
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
      });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        // not JSON: kept as text
      }
      return { status: response.status, body, headers: Object.fromEntries(response.headers.entries()) };
    };
    let reply: Reply | undefined;
    let problems: string[] = [];
    try {
      if (step.until) {
        const deadline = Date.now() + (step.timeoutMs ?? 20_000);
        for (;;) {
          reply = await call();
          problems = [...check(reply, { status: step.expect?.status ?? 200 }), ...checkPaths(reply, step.until)];
          if (problems.length === 0 || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      } else {
        reply = await call();
      }
      problems = [...(step.until ? problems : []), ...check(reply!, step.expect ?? {})];
      for (const [name, at] of Object.entries(step.save ?? {})) saved[name] = pick(reply, at);
    } catch (err) {
      problems = [(err as Error).message];
    }
    const ok = problems.length === 0;
    const detail = ok ? `${reply!.status} ${summary(reply!.body)}` : problems.join('; ');
    results.push({ name: step.name, ok, detail });
    log(`${ok ? 'ok  ' : 'FAIL'} ${step.name}: ${detail}`);
  }
  return results;
}

function check(reply: Reply, expect: NonNullable<ScenarioStep['expect']>): string[] {
  const problems: string[] = [];
  if (expect.status !== undefined) {
    const wanted = [expect.status].flat();
    if (!wanted.includes(reply.status)) problems.push(`status ${reply.status}, expected ${wanted.join(' or ')} (${summary(reply.body)})`);
  }
  return [...problems, ...checkPaths(reply, prefixed(expect.body ?? {}))];
}

function prefixed(conditions: Record<string, Condition>): Record<string, Condition> {
  return Object.fromEntries(Object.entries(conditions).map(([k, v]) => [k.startsWith('body') || k.startsWith('headers') || k === 'status' ? k : `body.${k}`, v]));
}

function checkPaths(reply: Reply, conditions: Record<string, Condition>): string[] {
  const problems: string[] = [];
  for (const [at, condition] of Object.entries(conditions)) {
    const value = pick(reply, at);
    if (!holds(value, condition)) problems.push(`${at} is ${JSON.stringify(value)}, expected ${JSON.stringify(condition)}`);
  }
  return problems;
}

function holds(value: unknown, condition: Condition): boolean {
  if (condition !== null && typeof condition === 'object' && !Array.isArray(condition)) {
    const c = condition as Record<string, unknown>;
    const operators = ['exists', 'gte', 'lte', 'contains', 'matches'];
    if (Object.keys(c).length > 0 && Object.keys(c).every((k) => operators.includes(k))) {
      if (c.exists !== undefined && (value !== undefined) !== c.exists) return false;
      if (c.gte !== undefined && !(typeof value === 'number' && value >= Number(c.gte))) return false;
      if (c.lte !== undefined && !(typeof value === 'number' && value <= Number(c.lte))) return false;
      if (c.contains !== undefined && !(Array.isArray(value) ? value.some((v) => JSON.stringify(v) === JSON.stringify(c.contains)) : String(value ?? '').includes(String(c.contains)))) return false;
      if (c.matches !== undefined && !new RegExp(String(c.matches)).test(String(value ?? ''))) return false;
      return true;
    }
  }
  return JSON.stringify(value) === JSON.stringify(condition);
}

/** A value at a JSON path (`body.items.0.name`, `headers.etag`, `status`, `body.items.length`). */
function pick(reply: unknown, at: string): unknown {
  let value: any = reply;
  for (const key of at.split('.')) {
    if (value === null || value === undefined) return undefined;
    value = Object.prototype.hasOwnProperty.call(Object(value), key) || (key === 'length' && Array.isArray(value)) ? value[key] : undefined;
  }
  return value;
}

function substitute(value: unknown, saved: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{([A-Za-z0-9_]+)\}$/.exec(value);
    if (whole && Object.prototype.hasOwnProperty.call(saved, whole[1])) return saved[whole[1]];
    return value.replace(/\$\{([A-Za-z0-9_]+)\}/g, (m, name: string) => (Object.prototype.hasOwnProperty.call(saved, name) ? String(saved[name]) : m));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, saved));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, saved)]));
  return value;
}

function summary(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}
