import type { ValidationProblem } from './errors';

/** DynamoDB's hard limit on one item, in bytes. */
export const MAX_ITEM_BYTES = 400 * 1024;
/** DynamoDB's limit on the total size of one TransactWriteItems call. */
export const MAX_TRANSACTION_BYTES = 4 * 1024 * 1024;
/** DynamoDB's limit on the actions in one TransactWriteItems call. */
export const MAX_TRANSACTION_ACTIONS = 100;
/** DynamoDB nests maps and lists at most 32 levels deep; the envelope's `data` itself is one level. */
const MAX_JSON_DEPTH = 30;
/** DynamoDB numbers: magnitude between 1E-130 and 9.99E+125 (or zero). */
const MIN_MAGNITUDE = 1e-130;

/**
 * Object keys refused anywhere in stored JSON: the DynamoDB marshaller drops `__proto__` silently (the key becomes
 * the object's prototype) and cannot marshal an object with an own `constructor` key, and either would let a
 * body reach an object's prototype somewhere downstream.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const SAFE_NAME = /^[A-Za-z][A-Za-z0-9_.:-]*$/;

/** Collects problems; throws nothing itself. */
export class ProblemList {
  public readonly problems: ValidationProblem[] = [];
  add(path: string, message: string): void {
    this.problems.push({ path, message });
  }
  get empty(): boolean {
    return this.problems.length === 0;
  }
}

export function checkId(problems: ProblemList, path: string, value: unknown, opts: { maxLength: number; reservedPrefix?: string }): void {
  if (typeof value !== 'string') {
    problems.add(path, `must be a string, got ${describe(value)}`);
    return;
  }
  if (value.trim().length === 0) {
    problems.add(path, 'must not be empty');
    return;
  }
  if (Buffer.byteLength(value, 'utf8') > opts.maxLength) {
    problems.add(path, `must be at most ${opts.maxLength} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    problems.add(path, 'must not contain control characters');
  }
  if (opts.reservedPrefix && value.startsWith(opts.reservedPrefix)) {
    problems.add(path, `must not start with '${opts.reservedPrefix}' (reserved for the store's own records)`);
  }
}

export function checkName(problems: ProblemList, path: string, value: unknown, maxLength: number): void {
  if (typeof value !== 'string' || value.length === 0) {
    problems.add(path, `must be a non-empty string, got ${describe(value)}`);
    return;
  }
  if (value.length > maxLength || !SAFE_NAME.test(value)) {
    problems.add(
      path,
      `'${truncate(value, 40)}' must start with a letter, use only letters, digits and _ . : - and be at most ${maxLength} characters`,
    );
  }
}

export function checkPositiveInteger(problems: ProblemList, path: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    problems.add(path, `must be an integer >= 1, got ${describe(value)}`);
  }
}

/**
 * Checks that `value` is plain JSON that DynamoDB stores and gives back unchanged: objects with string keys,
 * arrays, strings, booleans, null, and finite numbers in DynamoDB's range that JavaScript holds exactly.
 * Dates, Maps, class instances, undefined, functions, symbols, bigints, NaN/Infinity and cycles are rejected,
 * each with its path.
 */
export function checkJson(problems: ProblemList, path: string, value: unknown, requireObject = true): void {
  if (requireObject && !isPlainObject(value)) {
    problems.add(path, `must be a JSON object, got ${describe(value)}`);
    return;
  }
  const seen = new Set<object>();
  const walk = (v: unknown, p: string, depth: number): void => {
    if (problems.problems.length >= 20) return; // enough to act on
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) {
        problems.add(p, `${v} is not a JSON number`);
      } else if (Math.abs(v) > Number.MAX_SAFE_INTEGER) {
        problems.add(p, `${v} is beyond ±${Number.MAX_SAFE_INTEGER} and would lose precision; store it as a string`);
      } else if (v !== 0 && Math.abs(v) < MIN_MAGNITUDE) {
        problems.add(p, `${v} is below DynamoDB's smallest magnitude 1e-130; store it as a string`);
      }
      return;
    }
    if (typeof v !== 'object') {
      problems.add(p, `${describe(v)} is not JSON-serialisable`);
      return;
    }
    if (depth > MAX_JSON_DEPTH) {
      problems.add(p, `nests deeper than ${MAX_JSON_DEPTH} levels (DynamoDB allows 32 in all)`);
      return;
    }
    if (seen.has(v)) {
      problems.add(p, 'is a circular reference');
      return;
    }
    seen.add(v);
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (item === undefined) problems.add(`${p}[${i}]`, 'undefined is not JSON-serialisable (use null)');
        else walk(item, `${p}[${i}]`, depth + 1);
      });
    } else if (isPlainObject(v)) {
      for (const [key, item] of Object.entries(v)) {
        const childPath = /^[A-Za-z_$][\w$]*$/.test(key) ? `${p}.${key}` : `${p}[${JSON.stringify(key)}]`;
        if (FORBIDDEN_KEYS.has(key)) {
          problems.add(childPath, `the key '${key}' is refused: JavaScript gives it a special meaning (prototype), and it would not be stored faithfully`);
          continue;
        }
        if (item === undefined) problems.add(childPath, 'undefined is not JSON-serialisable (omit the key or use null)');
        else walk(item, childPath, depth + 1);
      }
    } else {
      problems.add(p, `${describe(v)} is not plain JSON (convert it first, e.g. a Date to an ISO string)`);
    }
    seen.delete(v);
  };
  walk(value, path, 1);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The size DynamoDB counts for an item, following its documented rules: names and strings in UTF-8 bytes,
 * numbers about one byte per two significant digits plus one, maps and lists 3 bytes plus 1 per element.
 * Rounded up where the documentation says "approximately", so an item accepted here is accepted by DynamoDB.
 */
export function itemSize(item: Record<string, unknown>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    if (value === undefined) continue;
    size += Buffer.byteLength(name, 'utf8') + valueSize(value);
  }
  return size;
}

function valueSize(value: unknown): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') {
    const digits = String(Math.abs(value)).replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '').length;
    return Math.min(21, Math.ceil(Math.max(digits, 1) / 2) + 1);
  }
  if (Array.isArray(value)) {
    return 3 + value.reduce((sum: number, v) => sum + 1 + valueSize(v), 0);
  }
  if (typeof value === 'object') {
    let size = 3;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      size += 1 + Buffer.byteLength(k, 'utf8') + valueSize(v);
    }
    return size;
  }
  return 0;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    const ctor = Object.getPrototypeOf(value)?.constructor?.name;
    return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
  }
  if (typeof value === 'string') return `'${truncate(value, 40)}'`;
  if (typeof value === 'function') return 'a function';
  return `${typeof value} ${String(value)}`;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
