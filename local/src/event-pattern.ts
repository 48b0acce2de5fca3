/**
 * EventBridge event pattern matching, for routing events on the local buses. Implements the documented
 * operators: exact values (strings, numbers, booleans, null), prefix, suffix, anything-but (values, prefix,
 * suffix), numeric ranges, exists, equals-ignore-case, wildcard, cidr (IPv4) and $or. Any other operator is
 * refused with an error naming it, at load time (`validatePattern`), never silently matched.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const OPERATORS = new Set(['prefix', 'suffix', 'anything-but', 'numeric', 'exists', 'equals-ignore-case', 'wildcard', 'cidr']);

export class UnsupportedPatternError extends Error {}

/** Throws UnsupportedPatternError for anything this matcher does not implement. */
export function validatePattern(pattern: unknown, where = ''): void {
  if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) {
    throw new UnsupportedPatternError(`${where || 'pattern'}: must be an object`);
  }
  for (const [key, value] of Object.entries(pattern as Record<string, unknown>)) {
    const at = where ? `${where}.${key}` : key;
    if (key === '$or') {
      if (!Array.isArray(value) || value.length < 2) throw new UnsupportedPatternError(`${at}: $or needs a list of at least two patterns`);
      value.forEach((v, i) => validatePattern(v, `${at}[${i}]`));
    } else if (Array.isArray(value)) {
      for (const rule of value) {
        if (rule === null || typeof rule !== 'object') continue;
        const ops = Object.keys(rule as object);
        if (ops.length !== 1 || !OPERATORS.has(ops[0])) {
          throw new UnsupportedPatternError(`${at}: unsupported operator ${JSON.stringify(rule)} (supported: ${[...OPERATORS].join(', ')})`);
        }
      }
    } else if (value !== null && typeof value === 'object') {
      validatePattern(value, at);
    } else {
      throw new UnsupportedPatternError(`${at}: a pattern value must be a list or an object, got ${JSON.stringify(value)}`);
    }
  }
}

/** Whether an event matches a pattern (call validatePattern first). */
export function matchesPattern(pattern: Record<string, unknown>, event: Json): boolean {
  return Object.entries(pattern).every(([key, rules]) => {
    if (key === '$or') return (rules as Record<string, unknown>[]).some((alt) => matchesPattern(alt, event));
    const value = event !== null && typeof event === 'object' && !Array.isArray(event) ? (event as Record<string, Json>)[key] : undefined;
    if (!Array.isArray(rules)) {
      // A nested pattern: the field must be an object matching it.
      return value !== undefined && value !== null && typeof value === 'object' && !Array.isArray(value) && matchesPattern(rules as Record<string, unknown>, value);
    }
    return matchesField(rules as Json[], value);
  });
}

function matchesField(rules: Json[], value: Json | undefined): boolean {
  // exists:false is about the field's absence.
  const existsRule = rules.find((r) => isOp(r, 'exists')) as { exists: boolean } | undefined;
  if (existsRule) {
    const present = value !== undefined && !(Array.isArray(value) && value.length === 0);
    if (existsRule.exists !== present) return false;
    if (rules.length === 1) return true;
  }
  if (value === undefined) return false;
  const values = Array.isArray(value) ? value : [value];
  return values.some((v) => rules.some((rule) => !isOp(rule, 'exists') && matchesRule(rule, v)));
}

function isOp(rule: Json, op: string): boolean {
  return rule !== null && typeof rule === 'object' && !Array.isArray(rule) && op in rule;
}

function matchesRule(rule: Json, value: Json): boolean {
  if (rule === null || typeof rule !== 'object') {
    if (typeof rule === 'number' && typeof value === 'number') return rule === value;
    return rule === value;
  }
  const [op, arg] = Object.entries(rule as Record<string, Json>)[0];
  switch (op) {
    case 'prefix':
      return typeof value === 'string' && (typeof arg === 'string' ? value.startsWith(arg) : isOp(arg, 'equals-ignore-case') && value.toLowerCase().startsWith(String((arg as Record<string, Json>)['equals-ignore-case']).toLowerCase()));
    case 'suffix':
      return typeof value === 'string' && (typeof arg === 'string' ? value.endsWith(arg) : isOp(arg, 'equals-ignore-case') && value.toLowerCase().endsWith(String((arg as Record<string, Json>)['equals-ignore-case']).toLowerCase()));
    case 'equals-ignore-case':
      return typeof value === 'string' && typeof arg === 'string' && value.toLowerCase() === arg.toLowerCase();
    case 'wildcard':
      return typeof value === 'string' && typeof arg === 'string' && wildcard(arg).test(value);
    case 'anything-but': {
      if (Array.isArray(arg)) return !arg.some((a) => a === value);
      if (arg !== null && typeof arg === 'object') {
        const [inner, innerArg] = Object.entries(arg as Record<string, Json>)[0];
        if (inner === 'prefix') return typeof value === 'string' && !value.startsWith(String(innerArg));
        if (inner === 'suffix') return typeof value === 'string' && !value.endsWith(String(innerArg));
        if (inner === 'equals-ignore-case') {
          const list = Array.isArray(innerArg) ? innerArg : [innerArg];
          return typeof value === 'string' && !list.some((x) => String(x).toLowerCase() === value.toLowerCase());
        }
        throw new UnsupportedPatternError(`unsupported anything-but operator ${inner}`);
      }
      return value !== arg;
    }
    case 'numeric': {
      if (typeof value !== 'number' || !Array.isArray(arg)) return false;
      for (let i = 0; i < arg.length; i += 2) {
        const [cmp, bound] = [arg[i] as string, arg[i + 1] as number];
        const ok = { '<': value < bound, '<=': value <= bound, '=': value === bound, '>': value > bound, '>=': value >= bound }[cmp];
        if (!ok) return false;
      }
      return true;
    }
    case 'cidr':
      return typeof value === 'string' && typeof arg === 'string' && inCidr(value, arg);
    default:
      throw new UnsupportedPatternError(`unsupported operator ${op}`);
  }
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
}

function ipv4(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const a = ipv4(ip);
  const b = ipv4(base);
  const n = Number(bits ?? 32);
  if (a === undefined || b === undefined || !(n >= 0 && n <= 32)) return false;
  const size = 2 ** (32 - n);
  return Math.floor(a / size) === Math.floor(b / size);
}
