/**
 * The bundled query handler of a declared domain: get-by-key (404 when absent) or list with a key condition,
 * optional sort-key range, equality filters and pagination with an opaque `nextToken`. Answers 400
 * `ValidationError` (bad or missing parameter, naming it), 400 `InvalidNextToken` (a token this query did not
 * return), 404, 200, or 500 (reported on the error bus), always JSON with the correlation id.
 *
 * Nothing a client can shape reaches DynamoDB unchecked: key values within DynamoDB's key limits (partition key
 * 2,048 bytes, sort key 1,024 bytes, UTF-8), numbers DynamoDB can hold, `from` not after `to`, and a `nextToken`
 * bound to its query and route, holding exactly the read model's key attributes, in the requested partition and
 * range.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, ScanCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { Responder, requestCorrelationId } from './http-response';
import { OwnershipRefusal, checkItemOwner, ownerCondition } from './query-ownership';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { loadDomainSpec } from '../internal/spec-loader';
import { readModelEnvName, type DomainSpec, type InputSpec, type QuerySpec } from '../runtime/domain-spec';
import { ErrorReporter } from '../runtime/error-reporter';
import { ActiveReadModelTable, activeVersionConfigFromEnv, type ActiveVersionConfig, type PointerReader } from '../runtime/read-model-version';

export interface QueryHandlerDeps {
  readonly spec: DomainSpec;
  readonly doc: DynamoDBDocumentClient;
  /** Table name of each read model (the version this deployment built), by name. */
  readonly tables: Record<string, string>;
  /**
   * The versions of the read models whose previous version is kept, by name: they answer from the previous
   * version's table until the active-version pointer names theirs (read-model-version.ts).
   * @default - every read model answers from `tables`
   */
  readonly versions?: Record<string, ActiveVersionConfig>;
  /** Reads the active-version pointers (a DynamoDB client); required with `versions`. */
  readonly pointerClient?: PointerReader;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
  readonly corsOrigins?: string[];
}

/** A 400 naming the parameter at fault. */
class BadRequest extends Error {
  constructor(
    message: string,
    public readonly parameter?: string,
    public readonly errorName = 'ValidationError',
  ) {
    super(message);
  }
}

const INVALID_TOKEN = 'nextToken is not a token this query returned';
/** A token of the other version of a read model kept in two versions (the words GraphQL's resolvers use). */
const STALE_TOKEN = 'nextToken was issued by another version of this read model (queries switched to a rebuilt version since): list again without nextToken';
/** DynamoDB's key size limits (ServiceQuotas: partition key 2048 bytes, sort key 1024 bytes). */
const MAX_PARTITION_KEY_BYTES = 2048;
const MAX_SORT_KEY_BYTES = 1024;
/** Query-string values other than keys (filters). */
const MAX_VALUE_BYTES = 1024;

/** A parameter of the request, own properties only (a `constructor` parameter is not Object's). */
function own(record: Record<string, string | undefined> | null | undefined, name: string): string | undefined {
  return record && Object.prototype.hasOwnProperty.call(record, name) ? record[name] : undefined;
}

export function createQueryHandler(deps: QueryHandlerDeps) {
  const { spec, doc, tools } = deps;
  const responder = new Responder(deps.corsOrigins ?? []);
  const queries = new Map(spec.queries.map((q) => [q.resource, q]));
  // One resolver per read model for the container's life: once switched, it reads the pointer once a minute.
  const resolvers = new Map<string, ActiveReadModelTable>();
  /** The table that answers now, and (for a read model kept in two versions) the version it holds. */
  const tableOf = async (readModel: string): Promise<{ table: string; binding?: TokenBinding }> => {
    let resolver = resolvers.get(readModel);
    if (!resolver) {
      const table = Object.prototype.hasOwnProperty.call(deps.tables, readModel) ? deps.tables[readModel] : undefined;
      if (!table) throw new Error(`read model '${readModel}' has no table name (${readModelEnvName(readModel)})`);
      const versions = deps.versions && Object.prototype.hasOwnProperty.call(deps.versions, readModel) ? deps.versions[readModel] : undefined;
      if (versions && !deps.pointerClient) throw new Error(`read model '${readModel}' has versions but no client to read its pointer`);
      resolver = new ActiveReadModelTable(deps.pointerClient!, table, versions);
      resolvers.set(readModel, resolver);
    }
    const table = await resolver.tableName();
    const versions = deps.versions && Object.prototype.hasOwnProperty.call(deps.versions, readModel) ? deps.versions[readModel] : undefined;
    // The previous version is the one before this deployment's (ReadModelTable keeps `version - 1`).
    if (!versions) return { table };
    const previous = table === versions.previousTable;
    return { table, binding: { version: previous ? versions.version - 1 : versions.version, previous } };
  };

  return async (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult> => {
    const correlationId = requestCorrelationId(event);
    const query = event.httpMethod === 'GET' ? queries.get(event.resource) : undefined;
    try {
      if (!query) return responder.error(event, 404, 'NotFound', `no query is declared for ${event.httpMethod} ${event.resource}`, correlationId);
      const { table, binding } = await tableOf(query.readModel);
      if (query.kind === 'get') {
        const partitionAttribute = query.startKey?.[0]?.name;
        const key = Object.fromEntries(
          Object.entries(query.key ?? {}).map(([attr, input]) => [
            attr,
            inputValue(input, event, true, attr === partitionAttribute ? MAX_PARTITION_KEY_BYTES : MAX_SORT_KEY_BYTES),
          ]),
        );
        const out = await doc.send(new GetCommand({ TableName: table, Key: key }));
        if (!out.Item) return responder.error(event, 404, 'NotFound', `no ${query.readModel} item for ${JSON.stringify(key)}`, correlationId);
        checkItemOwner(query, event, out.Item);
        return responder.json(event, 200, { item: out.Item }, correlationId);
      }
      const page = await list(query, table, event, binding);
      tools.metrics.addMetric('QueryServed', MetricUnit.Count, 1);
      return responder.json(event, 200, page, correlationId);
    } catch (err) {
      if (err instanceof BadRequest) {
        return responder.error(event, 400, err.errorName, err.message, correlationId, err.parameter ? { parameter: err.parameter } : {});
      }
      if (query?.kind === 'list' && own(event.queryStringParameters, 'nextToken') !== undefined && (err as Error).name === 'ValidationException') {
        // A token that passed the checks but still does not fit (DynamoDB's own check): still the client's token.
        return responder.error(event, 400, 'InvalidNextToken', INVALID_TOKEN, correlationId, { parameter: 'nextToken' });
      }
      if (err instanceof OwnershipRefusal) return responder.error(event, 403, 'NotOwner', err.message, correlationId);
      tools.logger.error('query failed', { query: query?.name, correlationId, error: err as Error });
      await deps.reporter.report(err, {
        correlationId,
        context: { domain: spec.domain, functionName: context?.functionName, apiPath: event.resource, httpMethod: event.httpMethod },
        original: { path: event.path, queryStringParameters: event.queryStringParameters },
      });
      return responder.error(event, 500, 'InternalError', 'Internal error', correlationId);
    } finally {
      tools.metrics.publishStoredMetrics();
    }
  };

  /** `binding`: the version answering, for a read model kept in two versions (its tokens are bound to it). */
  async function list(query: QuerySpec, table: string, event: APIGatewayProxyEvent, binding?: TokenBinding) {
    const params = event.queryStringParameters ?? {};
    const limitParam = own(params, 'limit');
    let limit = query.pageSize;
    if (limitParam !== undefined) {
      if (!/^\d{1,4}$/.test(limitParam) || Number(limitParam) < 1 || Number(limitParam) > query.maxPageSize) {
        throw new BadRequest(`limit must be an integer from 1 to ${query.maxPageSize}`, 'limit');
      }
      limit = Number(limitParam);
    }
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const filters: string[] = [];
    query.filters.forEach((f, i) => {
      const raw = own(params, f.parameter);
      if (raw === undefined) return;
      names[`#f${i}`] = f.attribute;
      values[`:f${i}`] = convert(raw, f.type, f.parameter, MAX_VALUE_BYTES);
      filters.push(`#f${i} = :f${i}`);
    });
    let condition = '';
    let bounds: { from?: string | number; to?: string | number } = {};
    if (query.partitionKey) {
      names['#pk'] = query.partitionKey.attribute;
      values[':pk'] = inputValue(query.partitionKey.input, event, true, MAX_PARTITION_KEY_BYTES);
      condition = '#pk = :pk';
      const range = query.sortKeyRange;
      if (range) {
        const fromRaw = range.fromParameter ? own(params, range.fromParameter) : undefined;
        const toRaw = range.toParameter ? own(params, range.toParameter) : undefined;
        const from = fromRaw === undefined ? undefined : convert(fromRaw, range.type, range.fromParameter!, MAX_SORT_KEY_BYTES);
        const to = toRaw === undefined ? undefined : convert(toRaw, range.type, range.toParameter!, MAX_SORT_KEY_BYTES);
        if (from !== undefined && to !== undefined && compareKeys(from, to) > 0) {
          // DynamoDB refuses BETWEEN with the bounds reversed.
          throw new BadRequest(`'${range.fromParameter}' must not be after '${range.toParameter}'`, range.fromParameter);
        }
        if (from !== undefined || to !== undefined) names['#sk'] = range.attribute;
        if (from !== undefined) values[':from'] = from;
        if (to !== undefined) values[':to'] = to;
        if (from !== undefined && to !== undefined) condition += ' AND #sk BETWEEN :from AND :to';
        else if (from !== undefined) condition += ' AND #sk >= :from';
        else if (to !== undefined) condition += ' AND #sk <= :to';
        bounds = { from, to };
      }
    }
    const tokenParam = own(params, 'nextToken');
    const startKey = tokenParam !== undefined ? decodeToken(tokenParam, query, values[':pk'] as string | number | undefined, bounds, binding) : undefined;
    const owner = ownerCondition(query, event);
    if (owner) {
      names['#owner'] = owner.attribute;
      values[':owner'] = owner.userId;
      filters.push('#owner = :owner');
    }
    const common = {
      TableName: table,
      IndexName: query.index,
      Limit: limit,
      ExclusiveStartKey: startKey,
      ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
    };
    let out;
    if (query.partitionKey) {
      const input: QueryCommandInput = {
        ...common,
        KeyConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: !query.newestFirst,
      };
      out = await doc.send(new QueryCommand(input));
    } else {
      out = await doc.send(
        new ScanCommand({
          ...common,
          ...(filters.length > 0 ? { ExpressionAttributeNames: names, ExpressionAttributeValues: values } : {}),
        }),
      );
    }
    return {
      items: out.Items ?? [],
      count: out.Items?.length ?? 0,
      ...(out.LastEvaluatedKey ? { nextToken: encodeToken(query, out.LastEvaluatedKey, binding?.version) } : {}),
    };
  }
}

function inputValue(input: InputSpec, event: APIGatewayProxyEvent, required: boolean, maxBytes: number): string | number {
  if (input.kind === 'constant') return input.value;
  const raw = input.kind === 'path' ? own(event.pathParameters, input.name) : own(event.queryStringParameters, input.name);
  if (raw === undefined || raw === null || raw === '') {
    if (required) throw new BadRequest(`${input.kind === 'path' ? 'path parameter' : 'query parameter'} '${input.name}' is required`, input.name);
    return '';
  }
  return convert(raw, input.type, input.name, maxBytes);
}

function convert(raw: string, type: 'S' | 'N', name: string, maxBytes: number): string | number {
  if (typeof raw !== 'string') throw new BadRequest(`'${name}' must be a single value`, name);
  if (Buffer.byteLength(raw, 'utf8') > maxBytes) throw new BadRequest(`'${name}' is too long (at most ${maxBytes} bytes in UTF-8)`, name);
  if (type === 'N') {
    // DynamoDB numbers hold up to 38 significant digits, but the document client refuses to marshal a JavaScript
    // number beyond the safe integers (it throws, which would be a 500), and values read back beyond them could not
    // be unmarshalled either: the range a query accepts is the safe integers' (decimals included).
    if (!/^-?\d{1,38}(\.\d{1,38})?$/.test(raw)) throw new BadRequest(`'${name}' must be a number`, name);
    if (!isSafeNumber(Number(raw))) throw new BadRequest(`'${name}' must be a number from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`, name);
    return Number(raw);
  }
  return raw;
}

/** A number the document client marshals (finite, within the safe integers' range). */
function isSafeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER;
}

/** DynamoDB's order of key values: numbers by value, strings by their UTF-8 bytes. */
function compareKeys(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return Buffer.compare(Buffer.from(String(a), 'utf8'), Buffer.from(String(b), 'utf8'));
}

/**
 * A page token: the query, its route and the key DynamoDB returned, and for a read model kept in two versions the
 * version whose table issued it (`v`), so that a listing never goes on in the other version's table after the
 * switch. Opaque to clients, not a secret. Without versions, the token is what it always was.
 */
/** The version a read model kept in two versions answers from now, and whether it is the previous one. */
interface TokenBinding {
  readonly version: number;
  readonly previous: boolean;
}

function encodeToken(query: QuerySpec, key: Record<string, unknown>, version?: number): string {
  const body = version === undefined ? { q: query.name, r: query.resource, k: key } : { q: query.name, r: query.resource, v: version, k: key };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/**
 * The start key of a token, checked before DynamoDB sees it: made by this query on this route, exactly the read
 * model's key attributes with their types and sizes, in the requested partition and within the requested range.
 */
function decodeToken(
  token: string,
  query: QuerySpec,
  partition: string | number | undefined,
  bounds: { from?: string | number; to?: string | number },
  binding?: TokenBinding,
): Record<string, unknown> {
  const invalid = () => new BadRequest(INVALID_TOKEN, 'nextToken', 'InvalidNextToken');
  let parsed: unknown;
  try {
    if (token.length > 8192 || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalid();
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!isPlainObject(parsed) || parsed.q !== query.name || parsed.r !== query.resource || !isPlainObject(parsed.k)) throw invalid();
  const bound = Object.prototype.hasOwnProperty.call(parsed, 'v');
  if (binding && bound && parsed.v !== binding.version) {
    // Issued by the other version's table (read before the switch): its key means nothing in this one.
    throw new BadRequest(STALE_TOKEN, 'nextToken', 'InvalidNextToken');
  }
  // A token without `v` was issued before this read model was kept in two versions, by the table that is now the
  // previous version's: it goes on there only. A read model without versions takes no token with `v`.
  if (binding ? !bound && !binding.previous : bound) throw invalid();
  const key = parsed.k;
  const entries = Object.entries(key);
  const expected = query.startKey;
  if (expected) {
    if (entries.length !== expected.length) throw invalid();
    expected.forEach((attr, i) => {
      if (!Object.prototype.hasOwnProperty.call(key, attr.name)) throw invalid();
      const value = key[attr.name];
      const limit = i === 0 ? MAX_PARTITION_KEY_BYTES : MAX_SORT_KEY_BYTES;
      if (attr.type === 'S' && !(typeof value === 'string' && value.length > 0 && Buffer.byteLength(value, 'utf8') <= limit)) throw invalid();
      if (attr.type === 'N' && !isSafeNumber(value)) throw invalid();
      if (attr.type === 'B') throw invalid(); // binary keys do not survive JSON; no bundled query pages over them
    });
  } else if (entries.length === 0 || entries.some(([, v]) => !(typeof v === 'string' || isSafeNumber(v)))) {
    throw invalid();
  }
  if (query.partitionKey && key[query.partitionKey.attribute] !== partition) throw invalid();
  const range = query.sortKeyRange;
  if (range && Object.prototype.hasOwnProperty.call(key, range.attribute)) {
    const value = key[range.attribute] as string | number;
    if (typeof value !== (range.type === 'N' ? 'number' : 'string')) throw invalid();
    if (bounds.from !== undefined && compareKeys(value, bounds.from) < 0) throw invalid();
    if (bounds.to !== undefined && compareKeys(value, bounds.to) > 0) throw invalid();
  }
  return key;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

let instance: ReturnType<typeof createQueryHandler> | undefined;

export const handler = async (event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  if (!instance) {
    const tools = powertools(`skafu-${process.env.SKAFU_DOMAIN ?? 'domain'}-queries`);
    const spec = loadDomainSpec();
    const tables = Object.fromEntries(spec.queries.map((q) => [q.readModel, process.env[readModelEnvName(q.readModel)] ?? '']));
    const versions: Record<string, ActiveVersionConfig> = Object.fromEntries(
      spec.queries.flatMap((q) => {
        const config = activeVersionConfigFromEnv(q.readModel);
        return config ? [[q.readModel, config]] : [];
      }),
    );
    const client = traced(tools, new DynamoDBClient({}));
    instance = createQueryHandler({
      spec,
      tables,
      versions,
      pointerClient: client,
      tools,
      doc: DynamoDBDocumentClient.from(client),
      reporter: new ErrorReporter({ component: spec.domain, client: traced(tools, new EventBridgeClient({})) }),
      corsOrigins: (process.env.SKAFU_CORS_ORIGINS ?? '').split(',').filter(Boolean),
    });
  }
  return instance(event, context);
};
