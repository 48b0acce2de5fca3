/**
 * AppSync's VTL resolver runtime, as far as Skafu's generated resolvers use it: velocityjs (the Velocity template
 * language in JavaScript) with the Java methods AppSync's templates call on strings, lists and maps, and the
 * `$util` / `$extensions` functions of the AppSync resolver mapping template reference ("Resolver mapping
 * template utility reference"). A function the emulation does not provide fails the template loudly (velocityjs
 * development mode), never silently.
 */
import { randomUUID } from 'node:crypto';
import { marshall } from '@aws-sdk/util-dynamodb';
import { Compile, parse } from 'velocityjs';

/** An error a template raised with `$util.error` / `$util.unauthorized` (the field's GraphQL error). */
export class TemplateError extends Error {
  /** The message as the template gave it (velocityjs appends the template position to `message`). */
  public readonly templateMessage: string;
  constructor(
    message: string,
    public readonly errorType: string | undefined,
    public readonly data?: unknown,
    public readonly errorInfo?: unknown,
  ) {
    super(message);
    this.templateMessage = message;
  }
}

/** Java methods AppSync's VTL offers on its values (velocityjs has get/put/add/size/remove/keySet). */
const javaMethods = [
  {
    uid: 'appsync: contains',
    match: ({ property, context }: any) => property === 'contains' && (Array.isArray(context) || typeof context === 'string'),
    resolve: ({ context, params }: any) => (Array.isArray(context) ? context.includes(params[0]) : context.includes(String(params[0]))),
  },
  {
    uid: 'appsync: containsKey',
    match: ({ property, context }: any) => property === 'containsKey' && context !== null && typeof context === 'object',
    resolve: ({ context, params }: any) => Object.prototype.hasOwnProperty.call(context, params[0]),
  },
  {
    uid: 'appsync: length',
    match: ({ property, context }: any) => property === 'length' && typeof context === 'string',
    resolve: ({ context }: any) => context.length,
  },
  {
    // Java's String.compareTo: the sign of the first differing UTF-16 code unit (or of the length difference).
    uid: 'appsync: compareTo',
    match: ({ property, context }: any) => property === 'compareTo' && typeof context === 'string',
    resolve: ({ context, params }: any) => {
      const other = String(params[0]);
      for (let i = 0; i < Math.min(context.length, other.length); i++) {
        if (context.charCodeAt(i) !== other.charCodeAt(i)) return context.charCodeAt(i) - other.charCodeAt(i);
      }
      return context.length - other.length;
    },
  },
  {
    uid: 'appsync: isEmpty',
    match: ({ property, context }: any) => property === 'isEmpty' && context !== null && context !== undefined,
    resolve: ({ context }: any) => (typeof context === 'string' || Array.isArray(context) ? context.length === 0 : Object.keys(context).length === 0),
  },
];

function isNull(v: unknown): boolean {
  return v === null || v === undefined;
}

/** `$util.transform.toSubscriptionFilter`: a map `{ field: { op: value } }` to AppSync's filter group. */
export function toSubscriptionFilter(map: Record<string, Record<string, unknown>>): SubscriptionFilter {
  return {
    filterGroup: [
      {
        filters: Object.entries(map).flatMap(([fieldName, ops]) => Object.entries(ops).map(([operator, value]) => ({ fieldName, operator, value }))),
      },
    ],
  };
}

export interface SubscriptionFilter {
  readonly filterGroup: Array<{ readonly filters: Array<{ readonly fieldName: string; readonly operator: string; readonly value: unknown }> }>;
}

/** Whether a payload passes an enhanced subscription filter (groups ORed, filters in a group ANDed). */
export function matchesFilter(filter: SubscriptionFilter, payload: Record<string, unknown>): boolean {
  const valueAt = (path: string) => path.split('.').reduce<any>((o, k) => (o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined), payload);
  return filter.filterGroup.some((group) =>
    group.filters.every(({ fieldName, operator, value }) => {
      const v = valueAt(fieldName);
      switch (operator) {
        case 'eq':
          return v === value;
        case 'ne':
          return v !== value;
        case 'in':
          return Array.isArray(value) && value.includes(v);
        case 'notIn':
          return Array.isArray(value) && !value.includes(v);
        case 'beginsWith':
          return typeof v === 'string' && typeof value === 'string' && v.startsWith(value);
        case 'gt':
          return (v as any) > (value as any);
        case 'ge':
          return (v as any) >= (value as any);
        case 'lt':
          return (v as any) < (value as any);
        case 'le':
          return (v as any) <= (value as any);
        case 'contains':
          return (typeof v === 'string' || Array.isArray(v)) && (v as any).includes(value);
        default:
          throw new Error(`subscription filter operator '${operator}' is not emulated`);
      }
    }),
  );
}

/** What a template run produced besides its text. */
export interface TemplateOutcome {
  readonly text: string;
  readonly subscriptionFilter?: SubscriptionFilter;
  /**
   * Set when the template ran `#return(data)` or `#return` (data null): the template stopped there, and its caller
   * returns `value` (AppSync resolver mapping template reference, "Directives": from a resolver's template, the
   * resolver's result; from a function's template, the function's result, and the pipeline goes on).
   */
  readonly returned?: { readonly value: unknown };
}

const compiled = new Map<string, Compile>();

/**
 * The context's maps as AppSync has them (Java maps): only their own keys. A plain JavaScript object would answer
 * `$ctx.args.valueOf` or `$ctx.args.constructor` from Object.prototype when no such argument was given.
 */
function asJavaMaps(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asJavaMaps);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const map = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) map[k] = asJavaMaps(v);
  return map;
}

/** Renders a mapping template with AppSync's `$ctx`/`$context`, `$util` and `$extensions`. */
export function renderTemplate(template: string, ctx: Record<string, unknown>): TemplateOutcome {
  let compiler = compiled.get(template);
  if (!compiler) {
    // A bare `#return` (no parentheses) is AppSync's `#return(null)`; velocityjs parses only the call form.
    compiler = new Compile(parse(template.replace(/#return(?![\w(])/g, '#return()')), { escape: false, customMethodHandlers: javaMethods as any });
    compiled.set(template, compiler);
  }
  // velocityjs keeps its stop flag across renders of one compiled template: every render starts afresh.
  const state = (compiler as unknown as { runState: { stop: boolean; break: boolean } }).runState;
  state.stop = false;
  state.break = false;
  let returned: { value: unknown } | undefined;
  const macros = {
    return: (value?: unknown) => {
      returned = { value: value === undefined ? null : value };
      state.stop = true;
      return '';
    },
  };
  let subscriptionFilter: SubscriptionFilter | undefined;
  const util = {
    error: (message: string, errorType?: string, data?: unknown, errorInfo?: unknown) => {
      throw new TemplateError(String(message), errorType ?? undefined, data, errorInfo);
    },
    unauthorized: () => {
      throw new TemplateError('Unauthorized', 'Unauthorized');
    },
    validate: (condition: boolean, message: string, errorType?: string) => {
      if (!condition) throw new TemplateError(String(message), errorType ?? 'CustomTemplateException');
      return '';
    },
    isNull,
    isNullOrEmpty: (v: unknown) => isNull(v) || v === '',
    isNullOrBlank: (v: unknown) => isNull(v) || (typeof v === 'string' && v.trim() === ''),
    defaultIfNull: (v: unknown, d: unknown) => (isNull(v) ? d : v),
    defaultIfNullOrEmpty: (v: unknown, d: unknown) => (isNull(v) || v === '' ? d : v),
    isString: (v: unknown) => typeof v === 'string',
    isNumber: (v: unknown) => typeof v === 'number',
    isBoolean: (v: unknown) => typeof v === 'boolean',
    isList: (v: unknown) => Array.isArray(v),
    isMap: (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v),
    toJson: (v: unknown) => JSON.stringify(v === undefined ? null : v),
    parseJson: (s: string) => JSON.parse(s),
    qr: () => '',
    quiet: () => '',
    matches: (pattern: string, value: string) => typeof value === 'string' && new RegExp(`^(?:${pattern})$`).test(value),
    base64Encode: (s: string) => Buffer.from(String(s), 'utf8').toString('base64'),
    base64Decode: (s: string) => Buffer.from(String(s), 'base64').toString('utf8'),
    autoId: () => randomUUID(),
    time: {
      nowISO8601: () => new Date().toISOString(),
      nowEpochSeconds: () => Math.floor(Date.now() / 1000),
      nowEpochMilliSeconds: () => Date.now(),
    },
    dynamodb: {
      toDynamoDB: (v: unknown) => marshall({ v }, { removeUndefinedValues: true }).v,
      toDynamoDBJson: (v: unknown) => JSON.stringify(marshall({ v }, { removeUndefinedValues: true }).v),
      toMapValues: (m: Record<string, unknown>) => marshall(m, { removeUndefinedValues: true }),
      toMapValuesJson: (m: Record<string, unknown>) => JSON.stringify(marshall(m, { removeUndefinedValues: true })),
    },
    transform: { toSubscriptionFilter },
  };
  const extensions = {
    setSubscriptionFilter: (filter: SubscriptionFilter) => {
      subscriptionFilter = filter;
      return '';
    },
  };
  // The stash is one map for the whole resolver (its before template, functions and after template): kept as
  // given, so that what a template puts in it is there for the next one.
  const { stash, ...rest } = ctx;
  const data = asJavaMaps(rest) as Record<string, unknown>;
  data.stash = stash ?? Object.create(null);
  const text = compiler.render({ ctx: data, context: data, util, utils: util, extensions }, macros);
  return { text, subscriptionFilter, ...(returned ? { returned } : {}) };
}
