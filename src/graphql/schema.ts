/**
 * The GraphQL schema and VTL resolvers of the domains' read side, generated from their declarations (a pure
 * function: the same declarations always give the same text).
 *
 * - One object type per read model that a bundled query reads: its key attributes (non-null), its index keys and
 *   every attribute a projection writes, typed from the declaration (STRING → String, NUMBER → Float, BOOLEAN →
 *   Boolean, JSON → String holding the JSON text, appended values → lists).
 * - One Query field per bundled query (`GetAlert` → `getAlert`): a get answers the item or null, a list answers a
 *   page `{ items, count, nextToken }` with the REST query's page size, largest page and filters; `nextToken` is
 *   bound to the field that returned it (a token of another field, or a forged one, is refused with
 *   `InvalidNextToken`).
 * - Group RBAC as the REST routes have it: each field carries `@aws_cognito_user_pools(cognito_groups: ...)` with
 *   the route's groups, each read-model type the union of its queries' groups. Object-level rules (query
 *   ownership) are enforced in the resolvers exactly as the bundled query handler enforces them.
 * - One subscription per read model (`onAlertsChange(alertId)`), filtered by the key arguments given, open to the
 *   groups that may read the model within what their REST routes show (see subscriptionAccess): without key
 *   arguments only for groups with a list over every item (owner-only list: only owned items), with every key
 *   argument for groups with a get by key, otherwise refused. It fires on a mutation (`publishAlertsChange`) that only IAM callers (the
 *   platform's change publisher) may call.
 *
 * AWS AppSync with several authorization modes ignores `@aws_auth`; `@aws_cognito_user_pools` and `@aws_iam` are
 * the directives it reads (AppSync developer guide, "Authorization and authentication", using additional
 * authorization modes).
 */
import type { QueryDefinition, ReadModelDefinition } from '../domain';
import { ValueType } from '../projections/values';
import type { InputSpec } from '../runtime/domain-spec';

/** The part of a domain declaration the GraphQL side reads. */
export interface GraphqlDomainInput {
  readonly name: string;
  readonly queries?: QueryDefinition[];
  readonly readModels?: ReadModelDefinition[];
}

/** A field of a generated read-model type. */
export interface GeneratedField {
  readonly name: string;
  /** The GraphQL type (`String!`, `Float`, `[String]`). */
  readonly type: string;
}

/** A read model exposed over GraphQL. */
export interface GeneratedModel {
  readonly domain: string;
  readonly readModel: string;
  readonly typeName: string;
  /** The table's key attributes, partition key first. */
  readonly keys: Array<{ readonly name: string; readonly type: 'S' | 'N' | 'B' }>;
  readonly fields: GeneratedField[];
  /** The item attribute holding its owner, when some reader may only see owned items. */
  readonly ownerAttribute?: string;
  readonly mutationField: string;
  readonly subscriptionField: string;
  /** The mutation the change publisher sends: variables are the keys, `change`, `item` (JSON text) and the owner. */
  readonly mutationDocument: string;
  /** The groups that may read the model (and subscribe to it). */
  readonly readGroups: string[];
}

/** A resolver: VTL request and response templates on a read model's table (DynamoDB) or on no data source. */
export interface GeneratedResolver {
  readonly typeName: 'Query' | 'Mutation' | 'Subscription';
  readonly fieldName: string;
  /** The read model whose table the resolver reads; absent for a NONE data source. */
  readonly readModel?: { readonly domain: string; readonly name: string };
  readonly requestTemplate: string;
  readonly responseTemplate: string;
  /**
   * A query's templates as the before and after templates of a pipeline resolver, for a read model kept in two
   * versions (see versionFunctions): the before template validates the arguments and leaves the DynamoDB request
   * in `$ctx.stash.request`; the after template maps `$ctx.stash.answer` as the unit response template maps
   * `$ctx.result`. The same answers, errors and page tokens, except that a token names the version that issued it.
   */
  readonly pipeline?: { readonly requestTemplate: string; readonly responseTemplate: string };
}

export interface GeneratedSchema {
  /** The schema (SDL). */
  readonly sdl: string;
  readonly models: GeneratedModel[];
  readonly resolvers: GeneratedResolver[];
}

/** The message of a refused `nextToken`, as the REST query handler words it. */
export const INVALID_NEXT_TOKEN = 'nextToken is not a token this query returned';
/** The message of a `nextToken` issued by another version of a read model than the one answering now. */
export const STALE_NEXT_TOKEN = 'nextToken was issued by another version of this read model (queries switched to a rebuilt version since): list again without nextToken';

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const RESERVED_ARGS = new Set(['limit', 'nextToken']);
/** Type names a read model's types must not take: the root types, the built-in and AWS scalars, our enum. */
const RESERVED_TYPES = new Set([
  'Query',
  'Mutation',
  'Subscription',
  'String',
  'Int',
  'Float',
  'Boolean',
  'ID',
  'AWSDate',
  'AWSTime',
  'AWSDateTime',
  'AWSTimestamp',
  'AWSEmail',
  'AWSJSON',
  'AWSURL',
  'AWSPhone',
  'AWSIPAddress',
  'ReadModelChangeKind',
]);
/** Whether a name can be declared in the schema: a GraphQL name, not one of the `__` names GraphQL keeps for itself. */
function declarable(name: string): boolean {
  return GRAPHQL_NAME.test(name) && !name.startsWith('__');
}

function pascal(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([a-z0-9])/g, (_m, _s, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '');
}
function camel(name: string): string {
  const p = pascal(name);
  return p.charAt(0).toLowerCase() + p.slice(1);
}
function keyType(type: string | undefined): 'S' | 'N' | 'B' {
  return (type ?? 'S') as 'S' | 'N' | 'B';
}
function scalarOfKey(type: 'S' | 'N' | 'B'): string {
  return type === 'N' ? 'Float' : 'String';
}
function scalarOfValue(type: ValueType): string {
  switch (type) {
    case ValueType.NUMBER:
      return 'Float';
    case ValueType.BOOLEAN:
      return 'Boolean';
    default:
      return 'String'; // STRING, and JSON stored as its JSON text
  }
}
function groupsDirective(groups: string[]): string {
  return `@aws_cognito_user_pools(cognito_groups: [${groups.map((g) => JSON.stringify(g)).join(', ')}])`;
}
function unique(values: string[]): string[] {
  return [...new Set(values)];
}
/** A VTL string literal (single quotes: no interpolation, `#` and `$` stay text; a quote is doubled). */
function vtl(value: string): string {
  if (!value.includes("'")) return `'${value}'`;
  if (!/["$#\\]/.test(value)) return `"${value}"`;
  throw new Error(`GraphQL schema: '${value}' holds both a quote and one of " $ # \\, which a VTL literal cannot hold; rename it`);
}
/** A VTL list literal of strings. */
function vtlList(values: string[]): string {
  return `[${values.map(vtl).join(', ')}]`;
}

interface QueryModel {
  readonly domain: string;
  readonly query: QueryDefinition;
  readonly readModel: ReadModelDefinition;
  readonly fieldName: string;
}

/**
 * Generates the schema and resolvers of the domains' bundled queries. Throws, naming the declarations, when two
 * domains would give the same type or field name, an attribute is written with two types, or a name is not a
 * GraphQL name.
 */
export function generateGraphqlSchema(domains: GraphqlDomainInput[]): GeneratedSchema {
  const problems: string[] = [];
  const queries: QueryModel[] = [];
  const fieldOwners = new Map<string, string>();
  const typeOwners = new Map<string, string>();
  const claim = (map: Map<string, string>, name: string, owner: string, what: string) => {
    const first = map.get(name);
    if (first && first !== owner) problems.push(`${what} '${name}' would be generated for both ${first} and ${owner}; rename one`);
    map.set(name, owner);
  };
  for (const domain of domains) {
    for (const query of domain.queries ?? []) {
      if (query.handler) continue; // a custom handler's logic cannot be read from the declaration
      const readModel = (domain.readModels ?? []).find((r) => r.name === query.readModel);
      if (!readModel) continue; // EventSourcedDomain refuses this declaration
      const fieldName = camel(query.name);
      claim(fieldOwners, fieldName, `query ${domain.name}.${query.name}`, 'Query field');
      queries.push({ domain: domain.name, query, readModel, fieldName });
    }
  }

  const models: GeneratedModel[] = [];
  const modelKeys = new Map<string, GeneratedModel>();
  const typeBlocks: string[] = [];
  for (const domain of domains) {
    for (const rm of domain.readModels ?? []) {
      const readers = queries.filter((q) => q.domain === domain.name && q.readModel === rm);
      if (readers.length === 0) continue; // no query reads it: nobody may read it over GraphQL either
      const typeName = pascal(rm.name);
      const owner = `read model ${domain.name}.${rm.name}`;
      for (const t of [typeName, `${typeName}Page`, `${typeName}Change`]) {
        if (!declarable(t)) problems.push(`${owner} would give the type '${t}', which is not a GraphQL name; rename the read model`);
        else if (RESERVED_TYPES.has(t)) problems.push(`${owner} would give the type '${t}', a name the schema reserves (${[...RESERVED_TYPES].join(', ')}); rename the read model`);
        claim(typeOwners, t, owner, 'type');
      }
      const model = buildModel(domain.name, rm, typeName, readers, problems);
      claim(fieldOwners, model.mutationField, owner, 'Mutation field');
      claim(fieldOwners, model.subscriptionField, owner, 'Subscription field');
      models.push(model);
      modelKeys.set(`${domain.name}/${rm.name}`, model);
    }
  }
  if (problems.length > 0) throw new Error(`GraphQL schema: ${problems.join('; ')}`);

  const resolvers: GeneratedResolver[] = [];
  const queryFields: string[] = [];
  for (const q of queries) {
    const model = modelKeys.get(`${q.domain}/${q.readModel.name}`)!;
    const { field, resolver } = q.query.key ? getQuery(q, model, problems) : listQuery(q, model, problems);
    queryFields.push(field);
    resolvers.push(resolver);
  }
  if (problems.length > 0) throw new Error(`GraphQL schema: ${problems.join('; ')}`);
  const mutationFields: string[] = [];
  const subscriptionFields: string[] = [];
  for (const model of models) {
    typeBlocks.push(modelTypes(model));
    const readers = queries.filter((q) => q.domain === model.domain && q.readModel.name === model.readModel);
    const { mutation, subscription, resolvers: r } = changeFields(model, readers);
    mutationFields.push(mutation);
    subscriptionFields.push(subscription);
    resolvers.push(...r);
  }

  const sdl = [
    'schema {\n  query: Query\n  mutation: Mutation\n  subscription: Subscription\n}',
    '"""What happened to a read-model item: written (created or changed) or deleted."""\nenum ReadModelChangeKind {\n  UPSERT\n  DELETE\n}',
    ...typeBlocks,
    `type Query {\n${queryFields.join('\n')}\n}`,
    `type Mutation {\n${mutationFields.join('\n')}\n}`,
    `type Subscription {\n${subscriptionFields.join('\n')}\n}`,
  ].join('\n\n') + '\n';
  return { sdl, models, resolvers };
}

function buildModel(domain: string, rm: ReadModelDefinition, typeName: string, readers: QueryModel[], problems: string[]): GeneratedModel {
  const where = `read model ${domain}.${rm.name}`;
  const fields = new Map<string, { scalar: string; list: boolean; required: boolean; from: string }>();
  const add = (name: string, scalar: string, list: boolean, required: boolean, from: string) => {
    if (!GRAPHQL_NAME.test(name) || name.startsWith('__')) {
      problems.push(`${where}: attribute '${name}' (${from}) is not a GraphQL field name`);
      return;
    }
    const existing = fields.get(name);
    if (existing && (existing.scalar !== scalar || existing.list !== list)) {
      problems.push(`${where}: attribute '${name}' is ${existing.list ? `[${existing.scalar}]` : existing.scalar} (${existing.from}) and ${list ? `[${scalar}]` : scalar} (${from})`);
      return;
    }
    fields.set(name, { scalar, list, required: required || (existing?.required ?? false), from: existing?.from ?? from });
  };
  const keys = [rm.partitionKey, ...(rm.sortKey ? [rm.sortKey] : [])].map((k) => ({ name: k.name, type: keyType(k.type) }));
  for (const k of keys) add(k.name, scalarOfKey(k.type), false, true, 'key');
  for (const index of rm.indexes ?? []) {
    for (const k of [index.partitionKey, index.sortKey]) if (k) add(k.name, scalarOfKey(keyType(k.type)), false, false, `index ${index.indexName}`);
  }
  for (const p of rm.projections) {
    for (const a of p.action._attributes()) add(a.name, scalarOfValue(a.type), a.list, false, `projection of ${p.eventType}`);
  }
  if (rm.timeToLiveAttribute) add(rm.timeToLiveAttribute, 'Float', false, false, 'TTL');

  const readGroups = unique(readers.flatMap((q) => q.query.allowedGroups));
  const owned = readers.filter((q) => q.query.ownership);
  const ownerAttributes = unique(owned.map((q) => q.query.ownership!.ownerAttribute));
  if (ownerAttributes.length > 1) problems.push(`${where}: its owner-only queries name different owner attributes (${ownerAttributes.join(', ')})`);
  const ownerAttribute = ownerGroups(readers).length > 0 ? ownerAttributes[0] : undefined;
  if (ownerAttribute && !fields.has(ownerAttribute)) add(ownerAttribute, 'String', false, false, 'ownership');

  const mutationField = `publish${typeName}Change`;
  const subscriptionField = `on${typeName}Change`;
  const generatedFields = [...fields.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, f]) => ({ name, type: `${f.list ? `[${f.scalar}]` : f.scalar}${f.required ? '!' : ''}` }));
  const keyAndOwner = [...keys.map((k) => k.name), ...(ownerAttribute && !keys.some((k) => k.name === ownerAttribute) ? [ownerAttribute] : [])];
  const variables = [
    ...keys.map((k) => `$${k.name}: ${scalarOfKey(k.type)}!`),
    ...(ownerAttribute && !keys.some((k) => k.name === ownerAttribute) ? [`$${ownerAttribute}: String`] : []),
    '$change: ReadModelChangeKind!',
    '$item: String',
  ];
  const mutationDocument =
    `mutation Publish${typeName}Change(${variables.join(', ')}) {\n` +
    `  ${mutationField}(${[...keyAndOwner, 'change', 'item'].map((n) => `${n}: $${n}`).join(', ')}) {\n` +
    `    ${keyAndOwner.join('\n    ')}\n    change\n    item {\n      ${generatedFields.map((f) => f.name).join('\n      ')}\n    }\n  }\n}\n`;
  return {
    domain,
    readModel: rm.name,
    typeName,
    keys,
    fields: generatedFields,
    ownerAttribute,
    mutationField,
    subscriptionField,
    mutationDocument,
    readGroups,
  };
}

/**
 * Whether a query reads the whole model: a list with no index (an index may be sparse) and no constant partition.
 * The partition, sort-key range and filters it takes are then chosen by the caller, so any item can be read.
 */
function listsEveryItem(q: QueryModel): boolean {
  if (q.query.key || q.query.index) return false;
  return !q.query.partitionKey || q.query.partitionKey.input._spec().kind !== 'constant';
}
/** Whether a get query lets its caller choose the whole key (no constant key part). */
function getsAnyKey(q: QueryModel): boolean {
  return !!q.query.key && Object.values(q.query.key).every((input) => input._spec().kind !== 'constant');
}

/**
 * Who may subscribe to a model's changes, and how (the rule the subscription resolver enforces). A subscription
 * must never show a group more than its REST routes do:
 * - `all`: groups with a list over every item (see listsEveryItem), or in the override groups of such an owner-only
 *   list, subscribe with any arguments;
 * - `ownerList`: groups with an owner-only list over every item subscribe with any arguments and receive only
 *   changes of items they own;
 * - `byKey`: groups with a get whose whole key the caller chooses must give every key argument (they receive
 *   exactly what that get answers); `ownerByKey`: the same for an owner-only get, and only items they own;
 * - every other reading group (a list over a constant partition or an index only, a get with a constant key part)
 *   is refused with `$util.unauthorized()`.
 */
interface SubscriptionAccess {
  readonly all: string[];
  readonly ownerList: string[];
  readonly byKey: string[];
  readonly ownerByKey: string[];
}
function subscriptionAccess(readers: QueryModel[]): SubscriptionAccess {
  const overrides = (q: QueryModel) => q.query.ownership?.overrideGroups ?? [];
  /** Groups reading every item the query answers, and groups reading only their own among them. */
  const full = (q: QueryModel) => (q.query.ownership ? q.query.allowedGroups.filter((g) => overrides(q).includes(g)) : q.query.allowedGroups);
  const partial = (q: QueryModel) => (q.query.ownership ? q.query.allowedGroups.filter((g) => !overrides(q).includes(g)) : []);
  const lists = readers.filter(listsEveryItem);
  const gets = readers.filter(getsAnyKey);
  const all = unique(lists.flatMap(full));
  const ownerList = unique(lists.flatMap(partial)).filter((g) => !all.includes(g));
  const byKey = unique(gets.flatMap(full)).filter((g) => !all.includes(g));
  const ownerByKey = unique(gets.flatMap(partial)).filter((g) => !all.includes(g) && !byKey.includes(g));
  return { all, ownerList, byKey, ownerByKey };
}
/** Groups whose members may read only the items they own (the model then carries its owner attribute). */
function ownerGroups(readers: QueryModel[]): string[] {
  const access = subscriptionAccess(readers);
  return unique([...access.ownerList, ...access.ownerByKey]);
}

function modelTypes(model: GeneratedModel): string {
  const doc = `Read model \`${model.readModel}\` of domain \`${model.domain}\`.`;
  const readers = groupsDirective(model.readGroups);
  const keyFields = model.keys.map((k) => `  ${k.name}: ${scalarOfKey(k.type)}!`);
  const owner = model.ownerAttribute && !model.keys.some((k) => k.name === model.ownerAttribute) ? [`  """The item's owner (its \`${model.ownerAttribute}\`)."""\n  ${model.ownerAttribute}: String`] : [];
  return [
    `"""${doc}"""\ntype ${model.typeName} ${readers} @aws_iam {\n${model.fields.map((f) => `  ${f.name}: ${f.type}`).join('\n')}\n}`,
    `"""A page of \`${model.readModel}\` items; \`nextToken\` reads the next page with the same arguments."""\ntype ${model.typeName}Page ${readers} {\n  items: [${model.typeName}!]!\n  count: Int!\n  nextToken: String\n}`,
    `"""A change of one \`${model.readModel}\` item: its key, what happened, and the item as written (null when deleted)."""\ntype ${model.typeName}Change ${readers} @aws_iam {\n${[...keyFields, ...owner].join('\n')}\n  change: ReadModelChangeKind!\n  item: ${model.typeName}\n}`,
  ].join('\n\n');
}

/** Where each argument of a query comes from, and its GraphQL type. */
function argument(input: InputSpec, required: boolean): { name: string; decl: string; ref: string } | undefined {
  if (input.kind === 'constant') return undefined;
  const scalar = input.type === 'N' ? 'Float' : 'String';
  return { name: input.name, decl: `${input.name}: ${scalar}${required ? '!' : ''}`, ref: `$ctx.args.${input.name}` };
}

/** A VTL expression giving the DynamoDB attribute value of an input. */
function inputValue(input: InputSpec): string {
  if (input.kind === 'constant') return typeof input.value === 'number' ? `{"N": ${vtl(String(input.value))}}` : `{"S": ${vtl(String(input.value))}}`;
  return `$util.dynamodb.toDynamoDB($ctx.args.${input.name})`;
}

/** VTL lines that refuse a missing or empty input with ValidationError, naming it. */
function requireInput(input: InputSpec): string {
  if (input.kind === 'constant') return '';
  const test = input.type === 'N' ? `$util.isNull($ctx.args.${input.name})` : `$util.isNullOrEmpty($ctx.args.${input.name})`;
  return `#if(${test})\n  $util.error(${vtl(`'${input.name}' is required`)}, 'ValidationError')\n#end\n`;
}

/** VTL lines setting `$readsAll`: whether the caller is in one of the override groups. */
function readsAllLines(groups: string[]): string {
  return (
    '#set($readsAll = false)\n' +
    `#set($readAllGroups = ${vtlList(groups)})\n` +
    '#foreach($group in $util.defaultIfNull($ctx.identity.groups, []))\n' +
    '  #if($readAllGroups.contains($group))\n    #set($readsAll = true)\n  #end\n' +
    '#end\n'
  );
}

function restRoute(q: QueryModel): string {
  return `GET /api/v1/${q.domain}/${q.query.path.replace(/^\/+|\/+$/g, '')}`;
}

function getQuery(q: QueryModel, model: GeneratedModel, problems: string[]): { field: string; resolver: GeneratedResolver } {
  const key = Object.entries(q.query.key ?? {}).map(([attr, input]) => ({ attr, spec: input._spec() }));
  const args = key.map((k) => argument(k.spec, true)).filter((a): a is NonNullable<typeof a> => !!a);
  for (const a of args) {
    if (!declarable(a.name)) problems.push(`query ${q.domain}.${q.query.name}: parameter '${a.name}' is not a GraphQL argument name (letters, digits and _, not starting with a digit or __); rename it`);
  }
  const field = `  """${q.query.name}: one \`${q.readModel.name}\` item by its key, or null (REST: ${restRoute(q)})."""\n  ${q.fieldName}${args.length > 0 ? `(${args.map((a) => a.decl).join(', ')})` : ''}: ${model.typeName} ${groupsDirective(q.query.allowedGroups)}`;
  const requestBody =
    key.map((k) => requireInput(k.spec)).join('') +
    '#set($key = {})\n' +
    key.map((k) => `$util.qr($key.put(${vtl(k.attr)}, ${inputValue(k.spec)}))\n`).join('');
  const getItem = '{"version": "2018-05-29", "operation": "GetItem", "key": $key, "consistentRead": false}';
  const request = `## ${q.domain}.${q.query.name}: GetItem on the read model \`${q.readModel.name}\`.\n` + requestBody + `$util.toJson(${getItem})\n`;
  const ownership = q.query.ownership;
  const mapping = (result: string) =>
    (ownership
      ? readsAllLines(ownership.overrideGroups ?? []) +
        `#if(!$util.isNull(${result}) && !$readsAll && ${result}.get(${vtl(ownership.ownerAttribute)}) != $ctx.identity.sub)\n` +
        `  $util.error(${vtl(`only the owner${(ownership.overrideGroups ?? []).length > 0 ? ` or a member of ${ownership.overrideGroups!.join(', ')}` : ''} may read this item`)}, 'NotOwner')\n#end\n`
      : '') +
    `$util.toJson(${result})\n`;
  const response = '#if($ctx.error)\n  $util.error($ctx.error.message, $ctx.error.type)\n#end\n' + mapping('$ctx.result');
  const pipeline = {
    requestTemplate:
      `## ${q.domain}.${q.query.name}: GetItem on the active version of the read model \`${q.readModel.name}\` (the functions choose it).\n` +
      requestBody +
      `$util.qr($ctx.stash.put('request', ${getItem}))\n{}\n`,
    responseTemplate: `## ${q.domain}.${q.query.name}: the item the active version answered.\n` + mapping('$ctx.stash.answer'),
  };
  return { field, resolver: { typeName: 'Query', fieldName: q.fieldName, readModel: { domain: q.domain, name: q.readModel.name }, requestTemplate: request, responseTemplate: response, pipeline } };
}

function listQuery(q: QueryModel, model: GeneratedModel, problems: string[]): { field: string; resolver: GeneratedResolver } {
  const query = q.query;
  const pageSize = query.pageSize ?? 25;
  const maxPageSize = query.maxPageSize ?? 100;
  const args: string[] = [];
  const names = new Set<string>();
  const addArg = (name: string, decl: string) => {
    if (!declarable(name)) problems.push(`query ${q.domain}.${query.name}: parameter '${name}' is not a GraphQL argument name (letters, digits and _, not starting with a digit or __); rename it`);
    if (RESERVED_ARGS.has(name) || names.has(name)) problems.push(`query ${q.domain}.${query.name}: argument '${name}' is given twice or is reserved (limit, nextToken)`);
    names.add(name);
    args.push(decl);
  };
  const pk = query.partitionKey ? { attribute: query.partitionKey.attribute, spec: query.partitionKey.input._spec() } : undefined;
  if (pk) {
    const a = argument(pk.spec, true);
    if (a) addArg(a.name, a.decl);
  }
  const range = query.sortKeyRange;
  const rangeScalar = range?.type === 'N' ? 'Float' : 'String';
  if (range?.fromParameter) addArg(range.fromParameter, `${range.fromParameter}: ${rangeScalar}`);
  if (range?.toParameter) addArg(range.toParameter, `${range.toParameter}: ${rangeScalar}`);
  const filters = query.filters ?? [];
  for (const f of filters) addArg(f.parameter, `${f.parameter}: ${f.type === 'N' ? 'Float' : 'String'}`);
  args.push(`"""Items in the page (1 to ${maxPageSize}; default ${pageSize})."""\n    limit: Int`, '"""The `nextToken` of the previous page of this field."""\n    nextToken: String');
  const field = `  """${query.name}: a page of \`${q.readModel.name}\` items (REST: ${restRoute(q)})."""\n  ${q.fieldName}(\n    ${args.join('\n    ')}\n  ): ${model.typeName}Page ${groupsDirective(query.allowedGroups)}`;

  const prefix = `${q.fieldName}:`;
  const operation = `${pk ? 'Query' : 'Scan'} on the read model \`${q.readModel.name}\`${query.index ? ` (index ${query.index})` : ''}`;
  const head =
    `#set($limit = $util.defaultIfNull($ctx.args.limit, ${pageSize}))\n` +
    `#if($limit < 1 || $limit > ${maxPageSize})\n  $util.error(${vtl(`limit must be an integer from 1 to ${maxPageSize}`)}, 'ValidationError')\n#end\n` +
    `#set($request = {"version": "2018-05-29", "operation": ${vtl(pk ? 'Query' : 'Scan')}, "limit": $limit, "consistentRead": false})\n` +
    (query.index ? `$util.qr($request.put('index', ${vtl(query.index)}))\n` : '') +
    (pk ? `$util.qr($request.put('scanIndexForward', ${query.newestFirst ? 'false' : 'true'}))\n` : '');
  const decodeToken = (versioned: boolean) =>
    (versioned
      ? '## The token is bound to this field and to the version that issued it (base64 of "<field>:v<version>:<data source token>");\n' +
        '## the function reading the active version refuses a token of another version.\n'
      : '## The token is bound to this field: it must be one this field returned (base64 of "<field>:<data source token>").\n') +
    '#if(!$util.isNull($ctx.args.nextToken))\n' +
    `  #if(!$util.matches('^[A-Za-z0-9+/]{4,8192}={0,2}$', $ctx.args.nextToken))\n    $util.error(${vtl(INVALID_NEXT_TOKEN)}, 'InvalidNextToken')\n  #end\n` +
    '  #set($decoded = $util.base64Decode($ctx.args.nextToken))\n' +
    `  #if(!$decoded.startsWith(${vtl(prefix)}) || $decoded.length() <= ${prefix.length})\n    $util.error(${vtl(INVALID_NEXT_TOKEN)}, 'InvalidNextToken')\n  #end\n` +
    (versioned
      ? `  #set($bound = $decoded.substring(${prefix.length}))\n` +
        `  #if(!$util.matches('v[1-9][0-9]{0,3}:.+', $bound))\n    $util.error(${vtl(STALE_NEXT_TOKEN)}, 'InvalidNextToken')\n  #end\n` +
        "  #set($colon = $bound.indexOf(':'))\n" +
        '  #set($start = $colon + 1)\n' +
        "  $util.qr($ctx.stash.put('tokenVersion', $bound.substring(1, $colon)))\n" +
        "  $util.qr($request.put('nextToken', $bound.substring($start)))\n"
      : `  $util.qr($request.put('nextToken', $decoded.substring(${prefix.length})))\n`) +
    '#end\n';
  let request = '';
  if (pk) {
    request +=
      requireInput(pk.spec) +
      `#set($names = {'#pk': ${vtl(pk.attribute)}})\n` +
      `#set($values = {':pk': ${inputValue(pk.spec)}})\n` +
      '#set($expression = \'#pk = :pk\')\n';
    if (range && (range.fromParameter || range.toParameter)) {
      const from = range.fromParameter ? `$ctx.args.${range.fromParameter}` : undefined;
      const to = range.toParameter ? `$ctx.args.${range.toParameter}` : undefined;
      const given = (r: string | undefined) => (r ? `!$util.isNull(${r})` : 'false');
      // REST refuses reversed bounds with a 400 naming them (DynamoDB would refuse BETWEEN with a ValidationException).
      // Strings compare by UTF-16 code units here (Java's compareTo) and by UTF-8 bytes in DynamoDB: they differ only
      // between characters U+E000-U+FFFF and those above U+FFFF, which DynamoDB then refuses itself.
      const reversed = range.type === 'N' ? `${from} > ${to}` : `${from}.compareTo(${to}) > 0`;
      request +=
        (from && to
          ? `#if(${given(from)} && ${given(to)})\n  #if(${reversed})\n` +
            `    $util.error(${vtl(`'${range.fromParameter}' must not be after '${range.toParameter}'`)}, 'ValidationError')\n  #end\n#end\n`
          : '') +
        `#if(${given(from)} || ${given(to)})\n  $util.qr($names.put('#sk', ${vtl(range.attribute)}))\n#end\n` +
        (from ? `#if(${given(from)})\n  $util.qr($values.put(':from', $util.dynamodb.toDynamoDB(${from})))\n#end\n` : '') +
        (to ? `#if(${given(to)})\n  $util.qr($values.put(':to', $util.dynamodb.toDynamoDB(${to})))\n#end\n` : '') +
        `#if(${given(from)} && ${given(to)})\n  #set($expression = '#pk = :pk AND #sk BETWEEN :from AND :to')\n` +
        `#elseif(${given(from)})\n  #set($expression = '#pk = :pk AND #sk >= :from')\n` +
        `#elseif(${given(to)})\n  #set($expression = '#pk = :pk AND #sk <= :to')\n#end\n`;
    }
    request += '$util.qr($request.put(\'query\', {"expression": $expression, "expressionNames": $names, "expressionValues": $values}))\n';
  }
  const ownership = query.ownership;
  if (filters.length > 0 || ownership) {
    request += '#set($filters = [])\n#set($filterNames = {})\n#set($filterValues = {})\n';
    filters.forEach((f, i) => {
      request +=
        `#if(!$util.isNull($ctx.args.${f.parameter}))\n` +
        `  $util.qr($filters.add(${vtl(`#f${i} = :f${i}`)}))\n` +
        `  $util.qr($filterNames.put(${vtl(`#f${i}`)}, ${vtl(f.attribute)}))\n` +
        `  $util.qr($filterValues.put(${vtl(`:f${i}`)}, $util.dynamodb.toDynamoDB($ctx.args.${f.parameter})))\n#end\n`;
    });
    if (ownership) {
      request +=
        '## Object-level rule: only the caller\'s items, unless the caller is in an override group.\n' +
        readsAllLines(ownership.overrideGroups ?? []) +
        '#if(!$readsAll)\n' +
        `  #if($util.isNullOrEmpty($ctx.identity.sub))\n    $util.error(${vtl(`${query.name} lists the caller's items, and the caller has no user id`)}, 'NotOwner')\n  #end\n` +
        "  $util.qr($filters.add('#owner = :owner'))\n" +
        `  $util.qr($filterNames.put('#owner', ${vtl(ownership.ownerAttribute)}))\n` +
        "  $util.qr($filterValues.put(':owner', $util.dynamodb.toDynamoDB($ctx.identity.sub)))\n#end\n";
    }
    request +=
      '#if($filters.size() > 0)\n' +
      "  #set($filterExpression = '')\n" +
      '  #foreach($f in $filters)\n    #if($filterExpression == \'\')\n      #set($filterExpression = $f)\n    #else\n      #set($filterExpression = "$filterExpression AND $f")\n    #end\n  #end\n' +
      '  $util.qr($request.put(\'filter\', {"expression": $filterExpression, "expressionNames": $filterNames, "expressionValues": $filterValues}))\n' +
      '#end\n';
  }
  const unitRequest = `## ${q.domain}.${query.name}: ${operation}.\n` + head + decodeToken(false) + request + '$util.toJson($request)\n';
  const page = (result: string, token: string) =>
    `#set($page = {"items": ${result}.items, "count": ${result}.items.size()})\n` +
    `#if(!$util.isNullOrEmpty(${result}.nextToken))\n  $util.qr($page.put('nextToken', $util.base64Encode("${prefix}${token}${result}.nextToken")))\n#end\n` +
    '$util.toJson($page)\n';
  const response =
    '#if($ctx.error)\n' +
    `  #if(!$util.isNull($ctx.args.nextToken))\n    $util.error(${vtl(INVALID_NEXT_TOKEN)}, 'InvalidNextToken')\n  #end\n` +
    '  $util.error($ctx.error.message, $ctx.error.type)\n#end\n' +
    page('$ctx.result', '');
  const pipeline = {
    requestTemplate:
      `## ${q.domain}.${query.name}: ${operation}, on its active version (the functions choose it).\n` +
      head +
      decodeToken(true) +
      request +
      "$util.qr($ctx.stash.put('request', $request))\n{}\n",
    responseTemplate: `## ${q.domain}.${query.name}: the page the active version answered; its token names that version.\n` + page('$ctx.stash.answer', 'v$ctx.stash.version:'),
  };
  return { field, resolver: { typeName: 'Query', fieldName: q.fieldName, readModel: { domain: q.domain, name: q.readModel.name }, requestTemplate: unitRequest, responseTemplate: response, pipeline } };
}

function changeFields(model: GeneratedModel, readers: QueryModel[]): { mutation: string; subscription: string; resolvers: GeneratedResolver[] } {
  const keyArgs = model.keys.map((k) => ({ name: k.name, scalar: scalarOfKey(k.type) }));
  const ownerArg = model.ownerAttribute && !model.keys.some((k) => k.name === model.ownerAttribute) ? model.ownerAttribute : undefined;
  const mutationArgs = [...keyArgs.map((k) => `${k.name}: ${k.scalar}!`), ...(ownerArg ? [`${ownerArg}: String`] : []), 'change: ReadModelChangeKind!', '"""The item as written, as JSON text (absent when deleted)."""\n    item: String'];
  const mutation =
    `  """Publishes a change of a \`${model.readModel}\` item to its subscribers (the platform's change publisher only)."""\n` +
    `  ${model.mutationField}(\n    ${mutationArgs.join('\n    ')}\n  ): ${model.typeName}Change @aws_iam`;
  const subscription =
    `  """Changes of \`${model.readModel}\` items, only those whose key matches the arguments given${model.ownerAttribute ? '; readers allowed only their own items receive only those' : ''}."""\n` +
    `  ${model.subscriptionField}(${keyArgs.map((k) => `${k.name}: ${k.scalar}`).join(', ')}): ${model.typeName}Change\n` +
    `    @aws_subscribe(mutations: [${JSON.stringify(model.mutationField)}])\n    ${groupsDirective(model.readGroups)}`;
  const mutationRequest =
    `## ${model.domain}.${model.readModel}: the change publisher's mutation (IAM only), answered as given (NONE data source).\n` +
    '#set($payload = {"change": $ctx.args.change})\n' +
    [...keyArgs.map((k) => k.name), ...(ownerArg ? [ownerArg] : [])].map((n) => `$util.qr($payload.put(${vtl(n)}, $ctx.args.${n}))\n`).join('') +
    '#if(!$util.isNullOrEmpty($ctx.args.item))\n  $util.qr($payload.put(\'item\', $util.parseJson($ctx.args.item)))\n#end\n' +
    '$util.toJson({"version": "2018-05-29", "payload": $payload})\n';
  const access = subscriptionAccess(readers);
  const member = (variable: string, groups: string[]) =>
    `#set($${variable} = false)\n` +
    (groups.length > 0
      ? `#set($${variable}Groups = ${vtlList(groups)})\n#foreach($group in $util.defaultIfNull($ctx.identity.groups, []))\n  #if($${variable}Groups.contains($group))\n    #set($${variable} = true)\n  #end\n#end\n`
      : '');
  const ownerFilter = (indent: string) =>
    model.ownerAttribute
      ? `${indent}#if($util.isNullOrEmpty($ctx.identity.sub))\n${indent}  $util.unauthorized()\n${indent}#end\n` +
        `${indent}$util.qr($filter.put(${vtl(model.ownerAttribute)}, {"eq": $ctx.identity.sub}))\n`
      : `${indent}$util.unauthorized()\n`; // unreachable: owner-only queries give the model its owner attribute
  const subscriptionResponse =
    `## ${model.domain}.${model.readModel}: filter the changes by the key arguments given, and refuse a caller the` +
    ' subscription would show more than its REST routes do:\n' +
    '## a group with a list over every item subscribes freely (owner-only list: only its own items); a group with a\n' +
    '## get by key must give every key argument (owner-only get: only its own items); any other group is refused.\n' +
    '#set($filter = {})\n' +
    keyArgs.map((k) => `#if(!$util.isNull($ctx.args.${k.name}))\n  $util.qr($filter.put(${vtl(k.name)}, {"eq": $ctx.args.${k.name}}))\n#end\n`).join('') +
    `#set($wholeKey = ${keyArgs.map((k) => `!$util.isNull($ctx.args.${k.name})`).join(' && ')})\n` +
    member('readsAll', access.all) +
    member('ownerList', access.ownerList) +
    member('byKey', access.byKey) +
    member('ownerByKey', access.ownerByKey) +
    '#if(!$readsAll)\n' +
    '  #if($byKey && $wholeKey)\n' +
    '    ## the get by key answers this item whoever owns it\n' +
    '  #elseif($ownerList || ($ownerByKey && $wholeKey))\n' +
    ownerFilter('    ') +
    '  #else\n    $util.unauthorized()\n  #end\n' +
    '#end\n' +
    '#if($filter.size() > 0)\n  $extensions.setSubscriptionFilter($util.transform.toSubscriptionFilter($filter))\n#end\n' +
    '$util.toJson(null)\n';
  return {
    mutation,
    subscription,
    resolvers: [
      { typeName: 'Mutation', fieldName: model.mutationField, requestTemplate: mutationRequest, responseTemplate: '$util.toJson($ctx.result)\n' },
      {
        typeName: 'Subscription',
        fieldName: model.subscriptionField,
        requestTemplate: '{"version": "2018-05-29", "payload": {}}\n',
        responseTemplate: subscriptionResponse,
      },
    ],
  };
}

/** The pipeline functions of a read model kept in two versions, run in this order by each of its query fields. */
export interface VersionFunctions {
  /** GetItem of the active-version pointer (checkpoint table); stashes `readCurrent`. */
  readonly activeVersion: { readonly requestTemplate: string; readonly responseTemplate: string };
  /** The query on the previous version's table, skipped (`#return`) once the pointer names the current version. */
  readonly readPrevious: { readonly requestTemplate: string; readonly responseTemplate: string };
  /** The query on the current version's table, skipped (`#return`) until the pointer names it. */
  readonly readCurrent: { readonly requestTemplate: string; readonly responseTemplate: string };
}

/**
 * The functions that answer a read model's queries from its active version: the pointer is read first (strongly
 * consistent, so that once a query has seen the switch no later one reads the previous version), then exactly one
 * of the two reads runs the request the resolver's before template left in `$ctx.stash.request` (a function whose
 * request template ends with `#return` calls no data source: AppSync's "#return" directive in a function returns
 * from the function and the pipeline goes on with the next one). The read that runs stashes its answer and its
 * version (`$ctx.stash.answer`, `$ctx.stash.version`), and refuses a page token another version issued.
 *
 * Pointer semantics: absent, not a number, or below `current` → the previous version; `current` or above → the
 * current version (the pointer flips once, when the rebuilt version has caught up, and never goes back).
 */
export function versionFunctions(
  model: { readonly domain: string; readonly readModel: string },
  pointerKey: string,
  previous: number,
  current: number,
): VersionFunctions {
  const where = `${model.domain}.${model.readModel}`;
  const read = (version: number, skipWhen: string): { requestTemplate: string; responseTemplate: string } => ({
    requestTemplate:
      `## ${where}: the query on version ${version}, unless the pointer says otherwise (then no data source call).\n` +
      `#if(${skipWhen})\n  #return\n#end\n` +
      `#if(!$util.isNull($ctx.stash.tokenVersion) && $ctx.stash.tokenVersion != ${vtl(String(version))})\n  $util.error(${vtl(STALE_NEXT_TOKEN)}, 'InvalidNextToken')\n#end\n` +
      `$util.qr($ctx.stash.put('version', ${vtl(String(version))}))\n` +
      '$util.toJson($ctx.stash.request)\n',
    responseTemplate:
      '#if($ctx.error)\n' +
      `  #if(!$util.isNull($ctx.args.nextToken))\n    $util.error(${vtl(INVALID_NEXT_TOKEN)}, 'InvalidNextToken')\n  #end\n` +
      '  $util.error($ctx.error.message, $ctx.error.type)\n#end\n' +
      "$util.qr($ctx.stash.put('answer', $ctx.result))\n" +
      '$util.toJson($ctx.result)\n',
  });
  return {
    activeVersion: {
      requestTemplate:
        `## ${where}: the active-version pointer (the checkpoint table's item ${pointerKey}, the only one this data source may read).\n` +
        `#set($pointerKey = ${vtl(pointerKey)})\n` +
        '$util.toJson({"version": "2018-05-29", "operation": "GetItem", "key": {"aggregateId": {"S": $pointerKey}}, "consistentRead": true})\n',
      responseTemplate:
        '#if($ctx.error)\n  $util.error($ctx.error.message, $ctx.error.type)\n#end\n' +
        '#set($readCurrent = false)\n' +
        `#if(!$util.isNull($ctx.result) && $util.isNumber($ctx.result.version) && $ctx.result.version >= ${current})\n  #set($readCurrent = true)\n#end\n` +
        "$util.qr($ctx.stash.put('readCurrent', $readCurrent))\n" +
        '$util.toJson({"readCurrent": $readCurrent})\n',
    },
    readPrevious: read(previous, '$ctx.stash.readCurrent'),
    readCurrent: read(current, '!$ctx.stash.readCurrent'),
  };
}
