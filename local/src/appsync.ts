/**
 * AWS AppSync, emulated for the schemas and VTL resolvers Skafu generates (src/graphql/schema.ts): queries and
 * mutations over graphql-js, each resolver's request and response templates run by the VTL runtime
 * (appsync-vtl.ts) against DynamoDB (Local) or a NONE data source, the authorization directives checked per field
 * as AppSync checks them with several modes, and subscriptions fed by the mutations named in `@aws_subscribe`,
 * filtered by their arguments and by the subscription resolver's enhanced filter.
 *
 * Why not `@aws-amplify/amplify-appsync-simulator`: it pulls in the Amplify CLI's core (hundreds of packages), it
 * skips JWT signature checks (tokens are verified here, appsync-auth.ts), AWS does not support it outside Amplify,
 * and its enhanced subscription filters are unverified; the generated resolvers need a small part of AppSync.
 *
 * Followed from AWS's documents: with additional authorization modes a field's own directives decide, else its
 * type's, else the default mode (Cognito user pools) — "Using additional authorization modes"; `cognito_groups`
 * are matched against the token's `cognito:groups`; a DynamoDB resolver's error reaches the response template as
 * `$ctx.error` (type `DynamoDB:<exception>`); pagination tokens are opaque and tamper-evident (AppSync encrypts
 * its DynamoDB tokens: here an HMAC with a key of this process stands for that).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { DynamoDBClient, GetItemCommand, QueryCommand, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  buildSchema,
  execute,
  GraphQLError,
  GraphQLObjectType,
  parse,
  validate,
  type DocumentNode,
  type GraphQLField,
  type GraphQLFieldResolver,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { APPSYNC_DEFINITIONS } from './appsync-schema';
import { matchesFilter, renderTemplate, TemplateError, type SubscriptionFilter } from './appsync-vtl';

/** Who calls: a Cognito user pool user (verified token) or an IAM principal (the platform's publisher). */
export type AppSyncIdentity =
  | { readonly kind: 'cognito'; readonly sub: string; readonly username: string; readonly groups: string[]; readonly claims: Record<string, unknown>; readonly issuer: string }
  | { readonly kind: 'iam'; readonly accessKeyId: string };

/** A pipeline function (AWS::AppSync::FunctionConfiguration, VTL 2018-05-29) on its data source. */
export interface AppSyncFunctionConfig {
  readonly name: string;
  /** The table a DynamoDB data source reads; absent for a NONE data source. */
  readonly tableName?: string;
  readonly requestTemplate: string;
  readonly responseTemplate: string;
}

export interface AppSyncResolverConfig {
  readonly typeName: string;
  readonly fieldName: string;
  /** The table a DynamoDB data source reads; absent for a NONE data source (and for a pipeline resolver). */
  readonly tableName?: string;
  /** A unit resolver's request template, or a pipeline resolver's before template. */
  readonly requestTemplate: string;
  /** A unit resolver's response template, or a pipeline resolver's after template. */
  readonly responseTemplate: string;
  /** A pipeline resolver's functions, in order (absent for a unit resolver). */
  readonly functions?: AppSyncFunctionConfig[];
}

export interface AppSyncOptions {
  readonly sdl: string;
  readonly resolvers: AppSyncResolverConfig[];
  readonly client: DynamoDBClient;
  /** Called after a delivery or a failed one (for logs). */
  readonly log?: (line: string) => void;
}

export interface GraphqlRequest {
  readonly query: string;
  readonly variables?: Record<string, unknown> | null;
  readonly operationName?: string | null;
}

export interface AppSyncError {
  readonly message: string;
  readonly errorType?: string;
  readonly path?: ReadonlyArray<string | number>;
  readonly data?: unknown;
  readonly errorInfo?: unknown;
}

export interface GraphqlResponse {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: AppSyncError[];
}

interface Subscriber {
  readonly id: string;
  readonly field: string;
  readonly mutations: string[];
  readonly args: Record<string, unknown>;
  readonly filter?: SubscriptionFilter;
  readonly document: DocumentNode;
  readonly variables: Record<string, unknown>;
  readonly identity: AppSyncIdentity;
  readonly deliver: (message: GraphqlResponse) => void;
}

interface Context {
  readonly identity: AppSyncIdentity;
}

/** How many document texts are kept parsed and validated (the oldest kept is forgotten first), and up to which length. */
const DOCUMENTS_KEPT = 256;
const DOCUMENT_KEPT_MAX_LENGTH = 16 * 1024;

/** A document text parsed and validated against the schema: its operations, or why it was refused. */
type CheckedDocument = { document: DocumentNode; operations: OperationDefinitionNode[] } | { errors: AppSyncError[] };

const unauthorized = (field: string, type: string) => new TemplateError(`Not Authorized to access ${field} on type ${type}`, 'Unauthorized');

export class AppSync {
  public readonly schema: GraphQLSchema;
  private readonly resolvers = new Map<string, AppSyncResolverConfig>();
  private readonly subscribers = new Map<string, Subscriber>();
  private readonly tokenKey = randomBytes(32);
  /** Documents parsed and validated, by their text (see checked()). */
  private readonly documents = new Map<string, CheckedDocument>();
  private nextId = 0;

  constructor(private readonly options: AppSyncOptions) {
    this.schema = buildSchema(`${APPSYNC_DEFINITIONS}\n${options.sdl}`);
    for (const r of options.resolvers) this.resolvers.set(`${r.typeName}.${r.fieldName}`, r);
  }

  /** The subscriptions open now. */
  public get subscriptionCount(): number {
    return this.subscribers.size;
  }

  /** Runs a query or mutation; a mutation then feeds the subscriptions that name it. */
  public async execute(request: GraphqlRequest, identity: AppSyncIdentity): Promise<GraphqlResponse> {
    const prepared = this.prepare(request);
    if ('errors' in prepared) return prepared;
    const { document, operation } = prepared;
    if (operation.operation === 'subscription') return { errors: [{ message: 'subscriptions are opened over the real-time endpoint', errorType: 'UnsupportedOperation' }] };
    const result = await execute({
      schema: this.schema,
      document,
      variableValues: request.variables ?? {},
      operationName: request.operationName ?? undefined,
      contextValue: { identity } satisfies Context,
      fieldResolver: this.fieldResolver,
    });
    const response = format(result);
    if (operation.operation === 'mutation' && result.data) {
      for (const [field, value] of Object.entries(result.data)) if (value !== null) this.publish(field, value as Record<string, unknown>);
    }
    return response;
  }

  /**
   * Opens a subscription: checks the field's authorization, runs its resolver (which may set an enhanced filter
   * or refuse), and registers it. Answers the subscription's id, or the errors that refused it.
   */
  public async subscribe(
    request: GraphqlRequest,
    identity: AppSyncIdentity,
    deliver: (message: GraphqlResponse) => void,
  ): Promise<{ id: string } | { errors: AppSyncError[] }> {
    const prepared = this.prepare(request);
    if ('errors' in prepared) return { errors: prepared.errors };
    const { document, operation } = prepared;
    if (operation.operation !== 'subscription') return { errors: [{ message: 'not a subscription', errorType: 'UnsupportedOperation' }] };
    const selections = operation.selectionSet.selections;
    if (selections.length !== 1 || selections[0].kind !== 'Field') return { errors: [{ message: 'a subscription selects exactly one field', errorType: 'UnsupportedOperation' }] };
    const type = this.schema.getSubscriptionType()!;
    const fieldName = selections[0].name.value;
    const field = type.getFields()[fieldName];
    const mutations = (field?.astNode?.directives ?? []).find((d) => d.name.value === 'aws_subscribe');
    if (!field || !mutations) return { errors: [{ message: `${fieldName} is not a subscription field`, errorType: 'ValidationError' }] };
    try {
      authorize(field, type, identity);
    } catch (err) {
      return { errors: [toError(err as Error, [fieldName])] };
    }
    // The field's arguments, as graphql-js coerces them.
    const args: Record<string, unknown> = {};
    await execute({
      schema: this.schema,
      document,
      variableValues: request.variables ?? {},
      contextValue: { identity } satisfies Context,
      fieldResolver: (_source, a) => {
        Object.assign(args, a);
        return null;
      },
    });
    let filter: SubscriptionFilter | undefined;
    const resolver = this.resolvers.get(`Subscription.${fieldName}`);
    if (resolver) {
      try {
        const ctx = contextOf(args, identity);
        const req = JSON.parse(renderTemplate(resolver.requestTemplate, ctx).text);
        const out = renderTemplate(resolver.responseTemplate, { ...ctx, result: req.payload ?? null });
        filter = out.subscriptionFilter;
      } catch (err) {
        return { errors: [toError(err as Error, [fieldName])] };
      }
    }
    const names = ((mutations.arguments?.[0]?.value as any)?.values ?? []).map((v: any) => v.value as string);
    const id = `sub-${++this.nextId}`;
    const variables = request.variables ?? {};
    this.subscribers.set(id, { id, field: fieldName, mutations: names, args, filter, document, variables, identity, deliver });
    return { id };
  }

  public unsubscribe(id: string): void {
    this.subscribers.delete(id);
  }

  private prepare(request: GraphqlRequest): { document: DocumentNode; operation: OperationDefinitionNode } | { errors: AppSyncError[] } {
    const checked = this.checked(request.query);
    // A copy: what a request answers never shares an object with what is kept for the next one.
    if ('errors' in checked) return { errors: checked.errors.map((e) => ({ ...e })) };
    const { document, operations } = checked;
    const single = operations.length === 1 ? operations[0] : undefined;
    const operation = request.operationName ? operations.find((o) => o.name?.value === request.operationName) : single;
    if (!operation) return { errors: [{ message: 'the operation to run is not named (operationName) or not found', errorType: 'ValidationError' }] };
    return { document, operation };
  }

  /**
   * A document parsed and validated against the schema, kept by its text: both depend only on the text and the
   * schema, which does not change, and a client (the change publisher above all) sends the same few documents
   * with new variables every time. Parsing and validating them again cost about 2 ms of this thread per request.
   * Bounded: DOCUMENTS_KEPT texts of at most DOCUMENT_KEPT_MAX_LENGTH characters (a longer one is checked every
   * time), the oldest forgotten first.
   */
  private checked(query: string): CheckedDocument {
    if (typeof query !== 'string') return { errors: [{ message: 'the request has no "query" string', errorType: 'MalformedHttpRequestException' }] };
    const known = this.documents.get(query);
    if (known) return known;
    let result: CheckedDocument;
    try {
      const document = parse(query);
      const problems = validate(this.schema, document);
      result =
        problems.length > 0
          ? { errors: problems.map((p) => ({ message: p.message, errorType: 'ValidationError' })) }
          : { document, operations: document.definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition') };
    } catch (err) {
      result = { errors: [{ message: (err as Error).message, errorType: 'MalformedHttpRequestException' }] };
    }
    if (query.length <= DOCUMENT_KEPT_MAX_LENGTH) {
      if (this.documents.size >= DOCUMENTS_KEPT) this.documents.delete(this.documents.keys().next().value!);
      this.documents.set(query, result);
    }
    return result;
  }

  /** Every field: its authorization, then its resolver (or the default property read). */
  private readonly fieldResolver: GraphQLFieldResolver<any, Context> = async (source, args, context, info) => {
    const parent = info.parentType;
    authorize(parent.getFields()[info.fieldName], parent, context.identity);
    const resolver = this.resolvers.get(`${parent.name}.${info.fieldName}`);
    if (!resolver) {
      const value = source !== null && typeof source === 'object' && Object.prototype.hasOwnProperty.call(source, info.fieldName) ? source[info.fieldName] : null;
      return value === undefined ? null : value;
    }
    return this.runResolver(resolver, args, context.identity, source);
  };

  private async runResolver(
    resolver: AppSyncResolverConfig,
    args: Record<string, unknown>,
    identity: AppSyncIdentity,
    source: unknown,
  ): Promise<unknown> {
    const ctx = contextOf(args, identity, source);
    if (resolver.functions) return this.runPipeline(resolver, resolver.functions, ctx);
    const before = renderTemplate(resolver.requestTemplate, ctx);
    if (before.returned) return before.returned.value;
    const { result, error } = await this.callDataSource(resolver.tableName, JSON.parse(before.text));
    return this.outcome(renderTemplate(resolver.responseTemplate, { ...ctx, result, error }));
  }

  /**
   * A pipeline resolver as AppSync runs it (developer guide, "Pipeline resolvers" and the resolver mapping template
   * reference): the before template, whose output is the first function's `$ctx.prev.result`; each function's
   * request template, its data source, its response template, whose output is the next `$ctx.prev.result`; then the
   * after template, with the last function's output as `$ctx.prev.result` (and `$ctx.result`). One `$ctx.stash`
   * throughout. `#return` in the before or after template ends the resolver with its data; in a function's request
   * template it skips that function's data source and response template (its data is the function's result); in a
   * function's response template it is the function's result. `$util.error` anywhere fails the field.
   */
  private async runPipeline(resolver: AppSyncResolverConfig, functions: AppSyncFunctionConfig[], ctx: Record<string, unknown>): Promise<unknown> {
    const before = renderTemplate(resolver.requestTemplate, ctx);
    if (before.returned) return before.returned.value;
    let prev = parseOutput(before.text);
    for (const fn of functions) {
      const withPrev = { ...ctx, prev: { result: prev } };
      const request = renderTemplate(fn.requestTemplate, withPrev);
      if (request.returned) {
        prev = request.returned.value;
        continue;
      }
      const { result, error } = await this.callDataSource(fn.tableName, JSON.parse(request.text));
      const response = renderTemplate(fn.responseTemplate, { ...withPrev, result, error });
      prev = response.returned ? response.returned.value : parseOutput(response.text);
    }
    return this.outcome(renderTemplate(resolver.responseTemplate, { ...ctx, prev: { result: prev }, result: prev }));
  }

  /** A DynamoDB data source's answer (or its error, as `$ctx.error` has it), or a NONE data source's payload. */
  private async callDataSource(
    tableName: string | undefined,
    request: Record<string, any>,
  ): Promise<{ result: unknown; error?: { message: string; type: string } }> {
    if (!tableName) return { result: request.payload ?? null };
    try {
      return { result: await this.dynamodb(tableName, request) };
    } catch (err) {
      return { result: null, error: { message: (err as Error).message, type: `DynamoDB:${(err as Error).name}` } };
    }
  }

  private outcome(out: { text: string; returned?: { value: unknown } }): unknown {
    return out.returned ? out.returned.value : parseOutput(out.text);
  }

  /** The DynamoDB data source: GetItem, Query and Scan requests (version 2018-05-29). */
  private async dynamodb(table: string, request: Record<string, any>): Promise<unknown> {
    const client = this.options.client;
    switch (request.operation) {
      case 'GetItem': {
        const out = await client.send(new GetItemCommand({ TableName: table, Key: request.key, ConsistentRead: request.consistentRead === true }));
        return out.Item ? unmarshall(out.Item) : null;
      }
      case 'Query':
      case 'Scan': {
        const names = { ...(request.query?.expressionNames ?? {}), ...(request.filter?.expressionNames ?? {}) };
        const values = { ...(request.query?.expressionValues ?? {}), ...(request.filter?.expressionValues ?? {}) };
        const common = {
          TableName: table,
          IndexName: request.index,
          Limit: request.limit,
          ExclusiveStartKey: request.nextToken ? this.decodeToken(request.nextToken) : undefined,
          FilterExpression: request.filter?.expression,
          ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
          ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
          ConsistentRead: request.consistentRead === true,
        };
        const out =
          request.operation === 'Query'
            ? await client.send(
              new QueryCommand({ ...common, KeyConditionExpression: request.query.expression, ScanIndexForward: request.scanIndexForward !== false }),
            )
            : await client.send(new ScanCommand(common));
        return {
          items: (out.Items ?? []).map((i) => unmarshall(i)),
          nextToken: out.LastEvaluatedKey ? this.encodeToken(out.LastEvaluatedKey) : null,
          scannedCount: out.ScannedCount ?? 0,
        };
      }
      default:
        throw Object.assign(new Error(`operation '${request.operation}' is not emulated`), { name: 'UnsupportedOperation' });
    }
  }

  private encodeToken(key: Record<string, AttributeValue>): string {
    const body = Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
    return `${body}.${createHmac('sha256', this.tokenKey).update(body).digest('base64url')}`;
  }

  private decodeToken(token: string): Record<string, AttributeValue> {
    const [body, mac, extra] = String(token).split('.');
    const expected = createHmac('sha256', this.tokenKey).update(body ?? '').digest('base64url');
    if (extra !== undefined || !mac || mac !== expected) throw Object.assign(new Error('Invalid pagination token'), { name: 'InvalidNextTokenException' });
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  }

  /** Delivers a mutation's result to the subscriptions naming the mutation whose arguments and filter it passes. */
  private publish(mutationField: string, payload: Record<string, unknown>): void {
    for (const s of this.subscribers.values()) {
      if (!s.mutations.includes(mutationField)) continue;
      // Argument filtering: every argument given must equal the payload's field of that name.
      if (Object.entries(s.args).some(([k, v]) => v !== null && v !== undefined && payload[k] !== v)) continue;
      if (s.filter && !matchesFilter(s.filter, payload)) continue;
      void Promise.resolve(execute({
        schema: this.schema,
        document: s.document,
        variableValues: s.variables,
        rootValue: { [s.field]: payload },
        contextValue: { identity: s.identity } satisfies Context,
        fieldResolver: (source, _args, context: Context, info) => {
          if (info.parentType === this.schema.getSubscriptionType()) return source[info.fieldName];
          authorize(info.parentType.getFields()[info.fieldName], info.parentType, context.identity);
          const value = source !== null && typeof source === 'object' && Object.prototype.hasOwnProperty.call(source, info.fieldName) ? source[info.fieldName] : null;
          return value === undefined ? null : value;
        },
      })).then(
        (result) => s.deliver(format(result)),
        (err: unknown) => this.options.log?.(`subscription ${s.id}: delivery failed: ${(err as Error).message}`),
      );
    }
  }
}

/** A template's output as JSON (an empty output is null). */
function parseOutput(text: string): unknown {
  const trimmed = text.trim();
  return trimmed === '' ? null : JSON.parse(trimmed);
}

/** The resolver context AppSync gives templates (one stash per resolver run). */
function contextOf(args: Record<string, unknown>, identity: AppSyncIdentity, source: unknown = null): Record<string, unknown> {
  const ident =
    identity.kind === 'cognito'
      ? { sub: identity.sub, username: identity.username, groups: identity.groups, claims: identity.claims, issuer: identity.issuer, sourceIp: ['127.0.0.1'], defaultAuthStrategy: 'ALLOW' }
      : { accountId: '000000000000', accessKey: identity.accessKeyId, userArn: `arn:aws:iam::000000000000:user/${identity.accessKeyId}`, username: identity.accessKeyId, sourceIp: ['127.0.0.1'] };
  return { arguments: args, args, identity: ident, source, stash: Object.create(null), request: { headers: {} }, info: {} };
}

function directiveNames(node: { directives?: readonly any[] } | undefined | null): string[] {
  return (node?.directives ?? []).map((d: any) => d.name.value).filter((n: string) => n.startsWith('aws_') && n !== 'aws_subscribe');
}

function cognitoGroups(node: { directives?: readonly any[] } | undefined | null): string[] | undefined {
  const d = (node?.directives ?? []).find((x: any) => x.name.value === 'aws_cognito_user_pools');
  const arg = d?.arguments?.find((a: any) => a.name.value === 'cognito_groups');
  return arg ? (arg.value.values ?? []).map((v: any) => v.value as string) : undefined;
}

/** AppSync's per-field decision with several modes: the field's directives, else its type's, else the default. */
function authorize(field: GraphQLField<any, any> | undefined, type: GraphQLObjectType, identity: AppSyncIdentity): void {
  if (!field) throw unauthorized('?', type.name);
  const onField = directiveNames(field.astNode);
  const node = onField.length > 0 ? field.astNode : type.astNode;
  const names = onField.length > 0 ? onField : directiveNames(type.astNode);
  if (identity.kind === 'iam') {
    if (!names.includes('aws_iam')) throw unauthorized(field.name, type.name);
    return;
  }
  if (names.length === 0) return; // the default mode: any user of the pool
  if (!names.includes('aws_cognito_user_pools')) throw unauthorized(field.name, type.name);
  const groups = cognitoGroups(node);
  if (groups && !groups.some((g) => identity.groups.includes(g))) throw unauthorized(field.name, type.name);
}

function toError(err: Error, path?: ReadonlyArray<string | number>): AppSyncError {
  if (err instanceof TemplateError) {
    return {
      message: err.templateMessage,
      errorType: err.errorType,
      path,
      ...(err.data !== undefined ? { data: err.data } : {}),
      ...(err.errorInfo !== undefined ? { errorInfo: err.errorInfo } : {}),
    };
  }
  return { message: err.message, errorType: 'InternalFailure', path };
}

function format(result: { data?: any; errors?: readonly GraphQLError[] }): GraphqlResponse {
  const errors = (result.errors ?? []).map((e) => {
    const original = e.originalError;
    if (original instanceof TemplateError) return toError(original, e.path);
    if (original && original instanceof Error && !(original instanceof GraphQLError)) return { message: original.message, errorType: original instanceof SyntaxError ? 'MappingTemplate' : 'InternalFailure', path: e.path };
    return { message: e.message, errorType: 'ValidationError', path: e.path };
  });
  return { data: result.data ?? null, ...(errors.length > 0 ? { errors } : {}) };
}

/**
 * The AppSync API of a template: its schema and resolvers, unit (VTL, on a data source) or pipeline (VTL before
 * and after templates around VTL functions), with each DynamoDB data source's table name.
 */
export function appSyncFromTemplate(
  resources: Record<string, any>,
  tableName: (value: unknown) => string,
): { sdl: string; resolvers: AppSyncResolverConfig[]; apis: number } {
  const apis = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::AppSync::GraphQLApi');
  if (apis.length === 0) return { sdl: '', resolvers: [], apis: 0 };
  const schema = Object.values(resources).find((r) => r.Type === 'AWS::AppSync::GraphQLSchema');
  const sources = new Map<string, { name: string; table?: string }>();
  for (const [id, r] of Object.entries(resources).filter(([, x]) => x.Type === 'AWS::AppSync::DataSource')) {
    sources.set(id, { name: r.Properties.Name, table: r.Properties.Type === 'AMAZON_DYNAMODB' ? tableName(r.Properties.DynamoDBConfig.TableName) : undefined });
  }
  const byName = new Map([...sources.values()].map((s) => [s.name, s]));
  const sourceOf = (ref: unknown, what: string) => {
    const source = typeof ref === 'string' ? byName.get(ref) : sources.get((ref as any)?.['Fn::GetAtt']?.[0]);
    if (!source) throw new Error(`${what}: data source ${JSON.stringify(ref)} is not in the template`);
    return source;
  };
  const vtlOnly = (p: Record<string, any>, what: string) => {
    if (p.Code || p.CodeS3Location || p.Runtime || p.RequestMappingTemplateS3Location || p.ResponseMappingTemplateS3Location) {
      throw new Error(`${what}: only VTL templates given inline are emulated`);
    }
  };
  const functions = new Map<string, AppSyncFunctionConfig>();
  for (const [id, r] of Object.entries(resources).filter(([, x]) => x.Type === 'AWS::AppSync::FunctionConfiguration')) {
    const p = r.Properties;
    const what = `function ${p.Name}`;
    vtlOnly(p, what);
    if (p.FunctionVersion !== '2018-05-29') throw new Error(`${what}: only VTL functions of version 2018-05-29 are emulated`);
    functions.set(id, {
      name: p.Name,
      tableName: sourceOf(p.DataSourceName, what).table,
      requestTemplate: p.RequestMappingTemplate,
      responseTemplate: p.ResponseMappingTemplate,
    });
  }
  const resolvers = Object.values(resources)
    .filter((r) => r.Type === 'AWS::AppSync::Resolver')
    .map((r): AppSyncResolverConfig => {
      const p = r.Properties;
      const what = `resolver ${p.TypeName}.${p.FieldName}`;
      vtlOnly(p, what);
      const base = {
        typeName: p.TypeName,
        fieldName: p.FieldName,
        requestTemplate: p.RequestMappingTemplate,
        responseTemplate: p.ResponseMappingTemplate,
      };
      if (p.Kind === 'PIPELINE') {
        const ids: unknown[] = p.PipelineConfig?.Functions ?? [];
        if (ids.length === 0) throw new Error(`${what}: a pipeline resolver without functions`);
        return {
          ...base,
          functions: ids.map((ref) => {
            const fn = functions.get((ref as any)?.['Fn::GetAtt']?.[0]);
            if (!fn) throw new Error(`${what}: function ${JSON.stringify(ref)} is not in the template`);
            return fn;
          }),
        };
      }
      return { ...base, tableName: sourceOf(p.DataSourceName, what).table };
    });
  return { sdl: schema?.Properties?.Definition ?? '', resolvers, apis: apis.length };
}
