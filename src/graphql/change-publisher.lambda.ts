/**
 * The GraphQL change publisher: reads the read-model tables' streams and, for every item written or deleted,
 * sends the model's `publish<Model>Change` mutation to the AppSync API, signed with the function's IAM
 * credentials (SigV4, service `appsync`). Subscribers receive it through AppSync's subscription filters.
 *
 * Records are sent one at a time, in stream order; at the first failure the function reports that record and
 * every later one as failed (ReportBatchItemFailures), so Lambda retries from it and the item order holds. After
 * the mapping's retries the batch's metadata goes to the failed-changes queue (an alarm watches it). A lost live
 * update never loses data: the read model holds the item, and a client re-reads it with a query.
 */
import { createHash, createHmac } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { SignatureV4 } from '@smithy/signature-v4';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { powertools } from '../internal/powertools';

/** What the publisher knows of a read model (from SKAFU_GRAPHQL_MODELS). */
export interface PublishedModel {
  /** Its table's name (SKAFU_GRAPHQL_TABLE_<n>). */
  readonly table: string;
  readonly keys: string[];
  readonly ownerAttribute?: string;
  readonly document: string;
}

export interface ChangePublisherDeps {
  readonly models: PublishedModel[];
  /** POSTs a GraphQL request; answers the HTTP status and the parsed body. */
  readonly post: (body: string) => Promise<{ status: number; body: any }>;
  readonly log?: (message: string, detail: Record<string, unknown>) => void;
  /** Counts published changes and failures (Powertools metrics in the handler). */
  readonly count?: (metric: 'ChangesPublished' | 'ChangesNotPublished', n: number) => void;
}

/** The table name of a stream record (`arn:...:table/<name>/stream/<label>`). */
export function tableOfRecord(record: DynamoDBRecord): string | undefined {
  return /:table\/([^/]+)\/stream\//.exec(record.eventSourceARN ?? '')?.[1];
}

/** The mutation's variables for one stream record. */
export function changeVariables(model: PublishedModel, record: DynamoDBRecord): Record<string, unknown> {
  const keys = unmarshall((record.dynamodb?.Keys ?? {}) as Record<string, AttributeValue>);
  const image = record.dynamodb?.NewImage ? unmarshall(record.dynamodb.NewImage as Record<string, AttributeValue>) : undefined;
  const old = record.dynamodb?.OldImage ? unmarshall(record.dynamodb.OldImage as Record<string, AttributeValue>) : undefined;
  const variables: Record<string, unknown> = {};
  for (const k of model.keys) variables[k] = keys[k];
  if (model.ownerAttribute && !model.keys.includes(model.ownerAttribute)) {
    const owner = (image ?? old)?.[model.ownerAttribute];
    variables[model.ownerAttribute] = typeof owner === 'string' ? owner : null;
  }
  const removed = record.eventName === 'REMOVE';
  variables.change = removed ? 'DELETE' : 'UPSERT';
  variables.item = removed || !image ? null : JSON.stringify(image, (_k, v) => (v instanceof Set ? [...v] : typeof v === 'bigint' ? Number(v) : v));
  return variables;
}

export function createChangePublisher(deps: ChangePublisherDeps) {
  const byTable = new Map(deps.models.map((m) => [m.table, m]));
  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const records = event.Records ?? [];
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      const table = tableOfRecord(record);
      const model = byTable.get(table ?? '');
      let problem: string | undefined;
      // Never skipped silently: a record the publisher cannot place is a misconfiguration, retried and then
      // dead-lettered like a failed publish (the alarm on the failed-changes queue fires).
      if (!model) {
        problem = `the record's table '${table ?? record.eventSourceARN}' has no GraphQL model`;
      } else {
        try {
          const out = await deps.post(JSON.stringify({ query: model.document, variables: changeVariables(model, record) }));
          if (out.status !== 200) problem = `HTTP ${out.status}: ${JSON.stringify(out.body).slice(0, 500)}`;
          else if (Array.isArray(out.body?.errors) && out.body.errors.length > 0) problem = `GraphQL errors: ${JSON.stringify(out.body.errors).slice(0, 500)}`;
        } catch (err) {
          problem = (err as Error).message;
        }
      }
      if (problem) {
        deps.log?.('change not published; retried from this record', { table, sequenceNumber: record.dynamodb?.SequenceNumber, problem });
        deps.count?.('ChangesPublished', i);
        deps.count?.('ChangesNotPublished', records.length - i);
        return { batchItemFailures: records.slice(i).map((r) => ({ itemIdentifier: r.dynamodb?.SequenceNumber ?? '' })) };
      }
    }
    deps.count?.('ChangesPublished', records.length);
    return { batchItemFailures: [] };
  };
}

/** SKAFU_GRAPHQL_MODELS: deflated JSON of the models without their table names (tokens at synth). */
export function decodeModels(encoded: string, env: Record<string, string | undefined>): PublishedModel[] {
  const raw = JSON.parse(inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8')) as Array<Omit<PublishedModel, 'table'>>;
  return raw.map((m, i) => ({ ...m, table: env[`SKAFU_GRAPHQL_TABLE_${i}`] ?? '' }));
}

class Sha256 {
  private readonly hash;
  constructor(secret?: string | Uint8Array) {
    this.hash = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data: string | Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

/** A POST to the GraphQL endpoint signed with the function's credentials (SigV4, service `appsync`). */
export function signedPost(url: string, env: Record<string, string | undefined> = process.env) {
  const endpoint = new URL(url);
  const signer = new SignatureV4({
    service: 'appsync',
    region: env.AWS_REGION ?? 'us-east-1',
    sha256: Sha256 as never,
    credentials: async () => ({ accessKeyId: env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '', sessionToken: env.AWS_SESSION_TOKEN }),
  });
  return async (body: string): Promise<{ status: number; body: any }> => {
    const request = await signer.sign({
      method: 'POST',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: endpoint.pathname,
      headers: { 'host': endpoint.host, 'content-type': 'application/json' },
      body,
    });
    const response = await fetch(url, { method: 'POST', headers: request.headers as Record<string, string>, body, signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text for the log
    }
    return { status: response.status, body: parsed };
  };
}

let instance: ReturnType<typeof createChangePublisher> | undefined;
const tools = powertools('skafu-graphql-changes');

export const handler = async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
  if (!instance) {
    instance = createChangePublisher({
      models: decodeModels(process.env.SKAFU_GRAPHQL_MODELS ?? '', process.env),
      post: signedPost(process.env.SKAFU_GRAPHQL_URL ?? ''),
      log: (message, detail) => tools.logger.warn(message, detail),
      count: (metric, n) => {
        if (n > 0) tools.metrics.addMetric(metric, MetricUnit.Count, n);
      },
    });
  }
  try {
    return await instance(event);
  } finally {
    tools.metrics.publishStoredMetrics();
  }
};
