/**
 * The bundled query handler of a declared domain: get-by-key (404 when absent) or list with a key condition,
 * optional sort-key range, equality filters and pagination with an opaque `nextToken`. Answers 400 (bad or
 * missing parameter, bad token), 404, 200, or 500 (reported on the error bus), always JSON with the correlation id.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, ScanCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { Responder, requestCorrelationId } from './http-response';
import { OwnershipRefusal, checkItemOwner, ownerCondition } from './query-ownership';
import { powertools, traced, type Powertools } from '../internal/powertools';
import { decodeDomainSpec, readModelEnvName, type DomainSpec, type InputSpec, type QuerySpec } from '../runtime/domain-spec';
import { ErrorReporter } from '../runtime/error-reporter';

export interface QueryHandlerDeps {
  readonly spec: DomainSpec;
  readonly doc: DynamoDBDocumentClient;
  /** Table name of each read model, by name. */
  readonly tables: Record<string, string>;
  readonly reporter: ErrorReporter;
  readonly tools: Powertools;
  readonly corsOrigins?: string[];
}

class BadRequest extends Error {}

export function createQueryHandler(deps: QueryHandlerDeps) {
  const { spec, doc, tools } = deps;
  const responder = new Responder(deps.corsOrigins ?? []);
  const queries = new Map(spec.queries.map((q) => [q.resource, q]));

  return async (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult> => {
    const correlationId = requestCorrelationId(event);
    const query = event.httpMethod === 'GET' ? queries.get(event.resource) : undefined;
    try {
      if (!query) return responder.error(event, 404, 'NotFound', `no query is declared for ${event.httpMethod} ${event.resource}`, correlationId);
      const table = deps.tables[query.readModel];
      if (!table) throw new Error(`read model '${query.readModel}' has no table name (${readModelEnvName(query.readModel)})`);
      if (query.kind === 'get') {
        const key = Object.fromEntries(Object.entries(query.key ?? {}).map(([attr, input]) => [attr, inputValue(input, event, true)]));
        const out = await doc.send(new GetCommand({ TableName: table, Key: key }));
        if (!out.Item) return responder.error(event, 404, 'NotFound', `no ${query.readModel} item for ${JSON.stringify(key)}`, correlationId);
        checkItemOwner(query, event, out.Item);
        return responder.json(event, 200, { item: out.Item }, correlationId);
      }
      const page = await list(query, table, event);
      tools.metrics.addMetric('QueryServed', MetricUnit.Count, 1);
      return responder.json(event, 200, page, correlationId);
    } catch (err) {
      if (err instanceof BadRequest) return responder.error(event, 400, 'ValidationError', err.message, correlationId);
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

  async function list(query: QuerySpec, table: string, event: APIGatewayProxyEvent) {
    const params = event.queryStringParameters ?? {};
    const limitParam = params.limit;
    let limit = query.pageSize;
    if (limitParam !== undefined) {
      if (!/^\d{1,4}$/.test(limitParam) || Number(limitParam) < 1 || Number(limitParam) > query.maxPageSize) {
        throw new BadRequest(`limit must be an integer from 1 to ${query.maxPageSize}`);
      }
      limit = Number(limitParam);
    }
    const startKey = params.nextToken !== undefined ? decodeToken(params.nextToken) : undefined;
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const filters: string[] = [];
    query.filters.forEach((f, i) => {
      const raw = params[f.parameter];
      if (raw === undefined) return;
      names[`#f${i}`] = f.attribute;
      values[`:f${i}`] = convert(raw, f.type, f.parameter);
      filters.push(`#f${i} = :f${i}`);
    });
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
      names['#pk'] = query.partitionKey.attribute;
      values[':pk'] = inputValue(query.partitionKey.input, event, true);
      let condition = '#pk = :pk';
      const range = query.sortKeyRange;
      if (range) {
        const from = range.fromParameter ? params[range.fromParameter] : undefined;
        const to = range.toParameter ? params[range.toParameter] : undefined;
        if (from !== undefined || to !== undefined) names['#sk'] = range.attribute;
        if (from !== undefined) values[':from'] = convert(from, range.type, range.fromParameter!);
        if (to !== undefined) values[':to'] = convert(to, range.type, range.toParameter!);
        if (from !== undefined && to !== undefined) condition += ' AND #sk BETWEEN :from AND :to';
        else if (from !== undefined) condition += ' AND #sk >= :from';
        else if (to !== undefined) condition += ' AND #sk <= :to';
      }
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
      ...(out.LastEvaluatedKey ? { nextToken: Buffer.from(JSON.stringify(out.LastEvaluatedKey), 'utf8').toString('base64url') } : {}),
    };
  }
}

function inputValue(input: InputSpec, event: APIGatewayProxyEvent, required: boolean): string | number {
  if (input.kind === 'constant') return input.value;
  const raw = input.kind === 'path' ? event.pathParameters?.[input.name] : event.queryStringParameters?.[input.name];
  if (raw === undefined || raw === null || raw === '') {
    if (required) throw new BadRequest(`${input.kind === 'path' ? 'path parameter' : 'query parameter'} '${input.name}' is required`);
    return '';
  }
  return convert(raw, input.type, input.name);
}

function convert(raw: string, type: 'S' | 'N', name: string): string | number {
  if (raw.length > 1024) throw new BadRequest(`'${name}' is too long`);
  if (type === 'N') {
    if (!/^-?\d+(\.\d+)?$/.test(raw)) throw new BadRequest(`'${name}' must be a number`);
    return Number(raw);
  }
  return raw;
}

function decodeToken(token: string): Record<string, unknown> {
  try {
    if (token.length > 2048) throw new Error('too long');
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (
      parsed === null ||
      typeof parsed !== 'object' ||
      Array.isArray(parsed) ||
      Object.values(parsed).some((v) => !['string', 'number'].includes(typeof v))
    ) {
      throw new Error('not a key');
    }
    return parsed as Record<string, unknown>;
  } catch {
    throw new BadRequest('nextToken is not a token this query returned');
  }
}

let instance: ReturnType<typeof createQueryHandler> | undefined;

export const handler = async (event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  if (!instance) {
    const tools = powertools(`skafu-${process.env.SKAFU_DOMAIN ?? 'domain'}-queries`);
    const spec = decodeDomainSpec(process.env.SKAFU_DOMAIN_SPEC ?? '');
    const tables = Object.fromEntries(spec.queries.map((q) => [q.readModel, process.env[readModelEnvName(q.readModel)] ?? '']));
    instance = createQueryHandler({
      spec,
      tables,
      tools,
      doc: DynamoDBDocumentClient.from(traced(tools, new DynamoDBClient({}))),
      reporter: new ErrorReporter({ component: spec.domain, client: traced(tools, new EventBridgeClient({})) }),
      corsOrigins: (process.env.SKAFU_CORS_ORIGINS ?? '').split(',').filter(Boolean),
    });
  }
  return instance(event, context);
};
