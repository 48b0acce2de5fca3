/**
 * Guard expressions: the small, data-only condition language of declared commands.
 *
 * A guard is a string such as `state.status == 'ACTIVE' && state.stock + body.delta >= 0`, parsed once (at synth,
 * to refuse a bad declaration, and again when the handler starts) into a tree, then evaluated against
 * `{ state, body, user, stream }`:
 *
 * - `state.<field>`: the aggregate's declared state (folded from its events); `body.<path>`: the validated body;
 *   `user.id`, `user.groups`: the caller; `stream.version` (0 when new), `stream.exists`, `stream.owner` (the user id
 *   recorded on the first event, or null).
 * - literals: numbers, `'strings'` or `"strings"`, `true`, `false`, `null`.
 * - operators, loosest first: `||`, `&&`, `== != < <= > >=` (not chained), `+ -`, `*`, then the unary `!` and `-`
 *   (which bind tightest: write `!(a == b)`); parentheses.
 * - functions: `contains(list, value)`, `size(string | list | object)`, `exists(path)` (the path has a non-null value).
 *
 * Semantics: a path that is missing reads as `null`. `==`/`!=` compare JSON values exactly (no coercion);
 * `< <= > >=` need two numbers or two strings; `+ - *` need numbers (and a finite result); `&& || !` need
 * booleans; a guard's result must be `true`. Anything else is an evaluation error, and a guard that errs FAILS
 * (fail closed): a missing number never lets a command through.
 *
 * Safety: path segments are identifiers; `__proto__`, `constructor` and `prototype` are refused at parse time,
 * and lookups only read an object's own properties, so no expression and no body can reach a prototype.
 * Expressions are bounded: at most 1024 characters, 256 nodes and 32 levels of nesting; evaluation has no loop
 * and is linear in the tree (and in the size of a list for `contains`/`size`).
 */
import { canonicalJson } from './canonical-json';
import type { JsonObject, JsonValue } from './json';

export const GUARD_MAX_LENGTH = 1024;
export const GUARD_MAX_NODES = 256;
export const GUARD_MAX_DEPTH = 32;
/** The roots an expression may read. */
export const GUARD_ROOTS = ['state', 'body', 'user', 'stream'] as const;
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);
const FUNCTIONS: Record<string, number> = { contains: 2, size: 1, exists: 1 };

export type GuardNode =
  | { readonly k: 'lit'; readonly v: JsonValue }
  | { readonly k: 'path'; readonly p: readonly string[] }
  | { readonly k: 'not'; readonly a: GuardNode }
  | { readonly k: 'neg'; readonly a: GuardNode }
  | { readonly k: 'bin'; readonly op: string; readonly a: GuardNode; readonly b: GuardNode }
  | { readonly k: 'call'; readonly f: string; readonly args: readonly GuardNode[] };

/** A parse error: `position` is the 0-based character offset in the expression. */
export class GuardSyntaxError extends Error {
  constructor(message: string, public readonly position: number) {
    super(`${message} (at character ${position + 1})`);
    this.name = 'GuardSyntaxError';
  }
}

/** An expression that cannot be evaluated against the given values (the guard then fails). */
export class GuardEvaluationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuardEvaluationError';
  }
}

interface Token {
  readonly t: 'num' | 'str' | 'id' | 'op' | 'end';
  readonly v: string;
  readonly pos: number;
}

const OPERATORS = ['||', '&&', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '!', '(', ')', ',', '.'];

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const num = /^(?:\d+(?:\.\d+)?)/.exec(src.slice(i, i + 40));
    if (num) {
      tokens.push({ t: 'num', v: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]{0,63}/.exec(src.slice(i, i + 65));
    if (id) {
      tokens.push({ t: 'id', v: id[0], pos: i });
      i += id[0].length;
      continue;
    }
    if (c === "'" || c === '"') {
      let j = i + 1;
      let value = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        value += src[j];
        j++;
      }
      if (j >= src.length) throw new GuardSyntaxError('unterminated string', i);
      tokens.push({ t: 'str', v: value, pos: i });
      i = j + 1;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) throw new GuardSyntaxError(`unexpected character '${c}'`, i);
    tokens.push({ t: 'op', v: op, pos: i });
    i += op.length;
  }
  tokens.push({ t: 'end', v: '', pos: src.length });
  return tokens;
}

/**
 * Parses a guard expression into its tree.
 * @throws GuardSyntaxError naming the problem and its position
 */
export function parseGuard(src: string): GuardNode {
  if (typeof src !== 'string' || src.trim() === '') throw new GuardSyntaxError('the expression is empty', 0);
  if (src.length > GUARD_MAX_LENGTH) throw new GuardSyntaxError(`the expression is over ${GUARD_MAX_LENGTH} characters`, GUARD_MAX_LENGTH);
  const tokens = tokenize(src);
  let at = 0;
  let nodes = 0;
  const peek = () => tokens[at];
  const next = () => tokens[at++];
  const node = (n: GuardNode, pos: number): GuardNode => {
    if (++nodes > GUARD_MAX_NODES) throw new GuardSyntaxError(`the expression has over ${GUARD_MAX_NODES} parts`, pos);
    return n;
  };
  const expect = (v: string) => {
    const t = next();
    if (t.t !== 'op' || t.v !== v) throw new GuardSyntaxError(`expected '${v}'${t.t === 'end' ? ' before the end' : `, found '${t.v}'`}`, t.pos);
  };
  const binary = (ops: string[], operand: (d: number) => GuardNode, single = false) => (depth: number): GuardNode => {
    let left = operand(depth);
    while (peek().t === 'op' && ops.includes(peek().v)) {
      const t = next();
      left = node({ k: 'bin', op: t.v, a: left, b: operand(depth) }, t.pos);
      if (single && peek().t === 'op' && ops.includes(peek().v)) {
        throw new GuardSyntaxError('comparisons do not chain: use && (\'a < b && b < c\')', peek().pos);
      }
    }
    return left;
  };
  const primary = (depth: number): GuardNode => {
    if (depth > GUARD_MAX_DEPTH) throw new GuardSyntaxError(`the expression nests over ${GUARD_MAX_DEPTH} levels`, peek().pos);
    const t = next();
    if (t.t === 'num') {
      const v = Number(t.v);
      if (!Number.isFinite(v)) throw new GuardSyntaxError(`'${t.v}' is not a finite number`, t.pos);
      return node({ k: 'lit', v }, t.pos);
    }
    if (t.t === 'str') return node({ k: 'lit', v: t.v }, t.pos);
    if (t.t === 'op' && t.v === '(') {
      const inner = or(depth + 1);
      expect(')');
      return inner;
    }
    if (t.t === 'op' && t.v === '!') return node({ k: 'not', a: primaryOrUnary(depth + 1) }, t.pos);
    if (t.t === 'op' && t.v === '-') return node({ k: 'neg', a: primaryOrUnary(depth + 1) }, t.pos);
    if (t.t === 'id') {
      if (t.v === 'true' || t.v === 'false') return node({ k: 'lit', v: t.v === 'true' }, t.pos);
      if (t.v === 'null') return node({ k: 'lit', v: null }, t.pos);
      if (peek().t === 'op' && peek().v === '(') {
        const arity = Object.prototype.hasOwnProperty.call(FUNCTIONS, t.v) ? FUNCTIONS[t.v] : undefined;
        if (arity === undefined) throw new GuardSyntaxError(`unknown function '${t.v}' (known: ${Object.keys(FUNCTIONS).join(', ')})`, t.pos);
        next();
        const args: GuardNode[] = [];
        if (!(peek().t === 'op' && peek().v === ')')) {
          args.push(or(depth + 1));
          while (peek().t === 'op' && peek().v === ',') {
            next();
            args.push(or(depth + 1));
          }
        }
        expect(')');
        if (args.length !== arity) throw new GuardSyntaxError(`${t.v}() takes ${arity} argument${arity === 1 ? '' : 's'}, got ${args.length}`, t.pos);
        if (t.v === 'exists' && args[0].k !== 'path') throw new GuardSyntaxError('exists() takes a path (exists(state.owner))', t.pos);
        return node({ k: 'call', f: t.v, args }, t.pos);
      }
      if (!(GUARD_ROOTS as readonly string[]).includes(t.v)) {
        throw new GuardSyntaxError(`'${t.v}' is not a value: paths start with ${GUARD_ROOTS.join(', ')}`, t.pos);
      }
      const path = [t.v];
      while (peek().t === 'op' && peek().v === '.') {
        next();
        const seg = next();
        if (seg.t !== 'id') throw new GuardSyntaxError('expected a field name after \'.\'', seg.pos);
        if (FORBIDDEN_SEGMENTS.has(seg.v)) throw new GuardSyntaxError(`'${seg.v}' cannot be read`, seg.pos);
        path.push(seg.v);
        if (path.length > 8) throw new GuardSyntaxError('a path has at most 8 segments', seg.pos);
      }
      return node({ k: 'path', p: path }, t.pos);
    }
    throw new GuardSyntaxError(t.t === 'end' ? 'the expression ends too early' : `unexpected '${t.v}'`, t.pos);
  };
  const primaryOrUnary = (depth: number) => primary(depth);
  const product = binary(['*'], primary);
  const sum = binary(['+', '-'], product);
  const comparison = binary(['==', '!=', '<', '<=', '>', '>='], sum, true);
  const and = binary(['&&'], comparison);
  const or = binary(['||'], and);
  const tree = or(0);
  const rest = peek();
  if (rest.t !== 'end') throw new GuardSyntaxError(`unexpected '${rest.v}'`, rest.pos);
  return tree;
}

/** The values a guard reads. */
export interface GuardScope {
  readonly state: JsonObject;
  readonly body: JsonObject;
  readonly user: { readonly id: string | null; readonly groups: readonly string[] };
  readonly stream: { readonly version: number; readonly exists: boolean; readonly owner: string | null };
}

/**
 * Evaluates a parsed guard. Returns true only when the expression evaluates to the boolean `true`.
 * @throws GuardEvaluationError when a value has the wrong type (callers treat it as a failed guard)
 */
export function evaluateGuard(tree: GuardNode, scope: GuardScope): boolean {
  return evaluate(tree, scope as unknown as JsonObject) === true;
}

function own(value: JsonValue | undefined, key: string): JsonValue | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  if (FORBIDDEN_SEGMENTS.has(key) || !Object.prototype.hasOwnProperty.call(value, key)) return undefined;
  return (value as JsonObject)[key];
}

function kind(v: JsonValue): string {
  return v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}

function evaluate(n: GuardNode, scope: JsonObject): JsonValue {
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'path': {
      let v: JsonValue | undefined = scope;
      for (const seg of n.p) v = own(v, seg);
      return v === undefined ? null : v;
    }
    case 'not': {
      const a = evaluate(n.a, scope);
      if (typeof a !== 'boolean') throw new GuardEvaluationError(`'!' needs a boolean, got ${kind(a)}`);
      return !a;
    }
    case 'neg': {
      const a = evaluate(n.a, scope);
      if (typeof a !== 'number') throw new GuardEvaluationError(`'-' needs a number, got ${kind(a)}`);
      return -a;
    }
    case 'call': {
      const args = n.args.map((a) => evaluate(a, scope));
      if (n.f === 'exists') return args[0] !== null;
      if (n.f === 'size') {
        const a = args[0];
        if (typeof a === 'string' || Array.isArray(a)) return a.length;
        if (a !== null && typeof a === 'object') return Object.keys(a).length;
        throw new GuardEvaluationError(`size() needs a string, list or object, got ${kind(a)}`);
      }
      const [list, item] = args;
      if (!Array.isArray(list)) throw new GuardEvaluationError(`contains() needs a list, got ${kind(list)}`);
      const wanted = canonicalJson(item);
      return list.some((x) => canonicalJson(x) === wanted);
    }
    case 'bin': {
      if (n.op === '&&' || n.op === '||') {
        const a = evaluate(n.a, scope);
        if (typeof a !== 'boolean') throw new GuardEvaluationError(`'${n.op}' needs booleans, got ${kind(a)}`);
        if (n.op === '&&' ? !a : a) return a;
        const b = evaluate(n.b, scope);
        if (typeof b !== 'boolean') throw new GuardEvaluationError(`'${n.op}' needs booleans, got ${kind(b)}`);
        return b;
      }
      const a = evaluate(n.a, scope);
      const b = evaluate(n.b, scope);
      if (n.op === '==') return canonicalJson(a) === canonicalJson(b);
      if (n.op === '!=') return canonicalJson(a) !== canonicalJson(b);
      if (n.op === '+' || n.op === '-' || n.op === '*') {
        if (typeof a !== 'number' || typeof b !== 'number') throw new GuardEvaluationError(`'${n.op}' needs numbers, got ${kind(a)} and ${kind(b)}`);
        const r = n.op === '+' ? a + b : n.op === '-' ? a - b : a * b;
        if (!Number.isFinite(r)) throw new GuardEvaluationError(`'${n.op}' overflowed`);
        return r;
      }
      if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string'))) {
        throw new GuardEvaluationError(`'${n.op}' needs two numbers or two strings, got ${kind(a)} and ${kind(b)}`);
      }
      switch (n.op) {
        case '<':
          return a < b;
        case '<=':
          return a <= b;
        case '>':
          return a > b;
        default:
          return a >= b;
      }
    }
  }
}

/** The paths (as dotted strings) an expression reads, for synth-time checks. */
export function guardPaths(tree: GuardNode): string[] {
  const out: string[] = [];
  const walk = (n: GuardNode) => {
    if (n.k === 'path') {out.push(n.p.join('.'));} else if (n.k === 'not' || n.k === 'neg') {walk(n.a);} else if (n.k === 'bin') {
      walk(n.a);
      walk(n.b);
    } else if (n.k === 'call') {n.args.forEach(walk);}
  };
  walk(tree);
  return out;
}
