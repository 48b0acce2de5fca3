/**
 * Evaluates a JSONPath `Parameters` template of Amazon States Language the way Step Functions does, for the
 * subset the projection definitions use: `key.$` fields holding a path (`$.detail.data.amount`) or an intrinsic
 * function (`States.Format`, `States.JsonToString`, `States.MathAdd`, `States.StringToJson`, `States.Array`,
 * `States.ArrayGetItem`), nested. Paths read own properties only (a `__proto__` or `constructor` key an event
 * does not have is missing, never Object.prototype's). A missing path throws `States.Runtime`, as in AWS.
 */

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'States.Runtime';
  }
}

function readPath(path: string, input: unknown, context: unknown): unknown {
  const root = path.startsWith('$$') ? context : input;
  const rest = path.startsWith('$$') ? path.slice(2) : path.slice(1);
  if (rest === '') return root;
  if (!rest.startsWith('.')) throw new TemplateError(`unsupported path ${path}`);
  let value: unknown = root;
  for (const segment of rest.slice(1).split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.prototype.hasOwnProperty.call(value, segment)) {
      throw new TemplateError(`the path ${path} does not exist in the input`);
    }
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** Splits `a, 'b, c', F(d, e)` into its top-level arguments. */
function splitArguments(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      current += c;
      if (c === '\\') current += text[++i] ?? '';
      else if (c === "'") quoted = false;
      continue;
    }
    if (c === "'") quoted = true;
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      out.push(current.trim());
      current = '';
      continue;
    }
    current += c;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

function formatValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') throw new TemplateError('States.Format takes only strings, numbers, booleans and null');
  return String(value);
}

function evaluateExpression(expression: string, input: unknown, context: unknown): unknown {
  const text = expression.trim();
  if (text.startsWith('$')) return readPath(text, input, context);
  if (text.startsWith("'")) return text.slice(1, -1).replace(/\\(.)/g, '$1');
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  const call = /^(States\.[A-Za-z]+)\((.*)\)$/s.exec(text);
  if (!call) throw new TemplateError(`unsupported expression ${text}`);
  const args = splitArguments(call[2]).map((a) => evaluateExpression(a, input, context));
  switch (call[1]) {
    case 'States.Format': {
      const [template, ...values] = args as [string, ...unknown[]];
      let n = 0;
      return template.replace(/\{\}/g, () => formatValue(values[n++]));
    }
    case 'States.JsonToString':
      return JSON.stringify(args[0]);
    case 'States.StringToJson':
      return JSON.parse(String(args[0]));
    case 'States.MathAdd':
      return Number(args[0]) + Number(args[1]);
    case 'States.Array':
      return args;
    case 'States.ArrayGetItem':
      return (args[0] as unknown[])[Number(args[1])];
    default:
      throw new TemplateError(`unsupported intrinsic ${call[1]}`);
  }
}

/** Resolves a `Parameters` template against an input (and the context object for `$$` paths). */
export function evaluateTemplate(template: unknown, input: unknown, context: unknown = {}): unknown {
  if (Array.isArray(template)) return template.map((t) => evaluateTemplate(t, input, context));
  if (template === null || typeof template !== 'object') return template;
  const out: Record<string, unknown> = {};
  const set = (k: string, v: unknown) => Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(template as Record<string, unknown>)) {
    if (key.endsWith('.$') && typeof value === 'string') set(key.slice(0, -2), evaluateExpression(value, input, context));
    else set(key, evaluateTemplate(value, input, context));
  }
  return out;
}
