/**
 * The GraphQL change publisher: reads the read-model tables' streams and, for every item written or deleted,
 * sends the model's `publish<Model>Change` mutation to the AppSync API, signed with the function's IAM
 * credentials (SigV4, service `appsync`). Subscribers receive it through AppSync's subscription filters.
 *
 * Records are sent one at a time, in stream order; at the first failure the function reports that record and
 * every later one as failed (ReportBatchItemFailures), so Lambda retries from it and the item order holds. After
 * the mapping's retries the batch's metadata goes to the failed-changes queue (an alarm watches it). A lost live
 * update never loses data: the read model holds the item, and a client re-reads it with a query.
 *
 * A refusal that no retry can change (permanentRefusal: HTTP 400, or GraphQL errors of a validation kind, e.g. an
 * item written before an attribute changed type) is not retried: that record alone is parked on the failed-changes
 * queue (its table, keys, sequence number and the refusal, as a message of its own) and the batch goes on, so one
 * bad item never takes the healthy changes after it down with it. If parking fails, the record is retried as above.
 *
 * A read model kept in two versions (a rebuild, issue 12) is streamed from its current version's table only. Until
 * the active-version pointer names that version, its records are the rebuild's writes into a table no query reads
 * yet: they are dropped (counted as ChangesDroppedDuringRebuild), and subscribers receive nothing of the read model
 * (the previous version, which queries read, is no longer written). From the switch on (the pointer is read once
 * per batch until then, and never again after), records are published, except those created before the pointer's
 * `switchedAt` (the rebuild's last writes, to the second). Clients re-read with a query after a rebuild.
 */
import { createHash, createHmac } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient, GetItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { SignatureV4 } from '@smithy/signature-v4';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { post } from '../internal/https-post';
import { powertools } from '../internal/powertools';

/** What the publisher knows of a read model (from SKAFU_GRAPHQL_MODELS). */
export interface PublishedModel {
  /** Its table's name (SKAFU_GRAPHQL_TABLE_<n>). */
  readonly table: string;
  readonly keys: string[];
  readonly ownerAttribute?: string;
  readonly document: string;
  /** For a read model kept in two versions: its pointer and the version this table holds. */
  readonly activeVersion?: {
    /** The pointer's key in the checkpoint table (`#active#<readModelName>`). */
    readonly key: string;
    /** The version of `table` (the current one). */
    readonly version: number;
    /** The checkpoint table's name (SKAFU_GRAPHQL_CHECKPOINTS_<n>). */
    readonly checkpointTable: string;
  };
}

/** The active-version pointer as stored (absent: undefined). */
export interface ActivePointer {
  readonly version?: unknown;
  readonly switchedAt?: unknown;
}

export interface ChangePublisherDeps {
  readonly models: PublishedModel[];
  /** POSTs a GraphQL request; answers the HTTP status and the parsed body. */
  readonly post: (body: string) => Promise<{ status: number; body: any }>;
  readonly log?: (message: string, detail: Record<string, unknown>) => void;
  /** Counts published changes and failures (Powertools metrics in the handler). */
  readonly count?: (metric: 'ChangesPublished' | 'ChangesNotPublished' | 'ChangesDroppedDuringRebuild', n: number) => void;
  /** Reads an active-version pointer, strongly consistent (required when a model has `activeVersion`). */
  readonly readPointer?: (checkpointTable: string, key: string) => Promise<ActivePointer | undefined>;
  /**
   * Parks one record AppSync refused for good (a message of its own on the failed-changes queue).
   * @default - none: such a record is retried like any failure, and its batch's tail with it
   */
  readonly park?: (message: Record<string, unknown>) => Promise<void>;
}

/** GraphQL error types (and messages) that the same request always gets again: validation of the mutation's variables. */
const PERMANENT_ERROR = /^(ValidationError|BadRequestException|MalformedHttpRequestException)$/;
const PERMANENT_MESSAGE = /Can't serialize value|Validation error|Variable '[^']*' has an invalid value/;

/**
 * Whether AppSync's answer refuses the request for good: HTTP 400 (a malformed request), or HTTP 200 whose every
 * error is of a validation kind. Throttling (429), 5xx, 401/403 (a permission being deployed) and other errors
 * (a timeout, an unknown type) are retried. The error types AppSync gives are not verified against the service here.
 */
export function permanentRefusal(status: number, body: any): boolean {
  if (status === 400) return true;
  if (status !== 200 || !Array.isArray(body?.errors) || body.errors.length === 0) return false;
  return body.errors.every((e: any) => PERMANENT_ERROR.test(String(e?.errorType ?? '')) || PERMANENT_MESSAGE.test(String(e?.message ?? '')));
}

/** A pointer's `switchedAt` as epoch milliseconds: an ISO 8601 text or epoch seconds or milliseconds; undefined otherwise. */
export function switchedAtMillis(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value < 1e11 ? value * 1000 : value;
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
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
  /** Read models whose pointer named their table's version: from when (epoch ms, 0 when unknown). The pointer never goes back. */
  const switched = new Map<string, number>();
  /** Whether a model's table answers queries now, and since when; read once per batch until it does. */
  const switchOf = async (model: PublishedModel, batch: Map<string, Promise<number | undefined>>): Promise<number | undefined> => {
    const active = model.activeVersion;
    if (!active) return 0;
    if (switched.has(model.table)) return switched.get(model.table);
    let pending = batch.get(model.table);
    if (!pending) {
      if (!deps.readPointer) throw new Error('no pointer reader');
      pending = deps.readPointer(active.checkpointTable, active.key).then((pointer) => {
        const version = pointer?.version;
        if (typeof version !== 'number' || version < active.version) return undefined;
        const since = switchedAtMillis(pointer?.switchedAt) ?? 0;
        switched.set(model.table, since);
        return since;
      });
      batch.set(model.table, pending);
    }
    return pending;
  };
  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const records = event.Records ?? [];
    const pointers = new Map<string, Promise<number | undefined>>();
    let published = 0;
    let dropped = 0;
    let parked = 0;
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
          const since = await switchOf(model, pointers);
          const created = record.dynamodb?.ApproximateCreationDateTime;
          // Before the switch, and the rebuild's writes just before it (to the second): not a live change of what queries read.
          if (since === undefined || (since > 0 && typeof created === 'number' && created < Math.floor(since / 1000))) {
            dropped++;
            continue;
          }
        } catch (err) {
          problem = `the active-version pointer could not be read: ${(err as Error).message}`;
        }
        if (!problem) {
          try {
            const out = await deps.post(JSON.stringify({ query: model.document, variables: changeVariables(model, record) }));
            if (out.status !== 200) problem = `HTTP ${out.status}: ${JSON.stringify(out.body).slice(0, 500)}`;
            else if (Array.isArray(out.body?.errors) && out.body.errors.length > 0) problem = `GraphQL errors: ${JSON.stringify(out.body.errors).slice(0, 500)}`;
            if (problem && deps.park && permanentRefusal(out.status, out.body)) {
              // Refused for good: park this record alone and go on (a failed park falls through to the retry).
              await deps.park({
                reason: 'RefusedByAppSync',
                table,
                sequenceNumber: record.dynamodb?.SequenceNumber,
                eventName: record.eventName,
                keys: record.dynamodb?.Keys,
                problem,
              });
              deps.log?.('change refused for good by AppSync; parked on the failed-changes queue', { table, sequenceNumber: record.dynamodb?.SequenceNumber, problem });
              parked++;
              continue;
            }
          } catch (err) {
            problem ??= (err as Error).message;
          }
        }
      }
      if (problem) {
        deps.log?.('change not published; retried from this record', { table, sequenceNumber: record.dynamodb?.SequenceNumber, problem });
        deps.count?.('ChangesPublished', published);
        deps.count?.('ChangesDroppedDuringRebuild', dropped);
        deps.count?.('ChangesNotPublished', records.length - i + parked);
        return { batchItemFailures: records.slice(i).map((r) => ({ itemIdentifier: r.dynamodb?.SequenceNumber ?? '' })) };
      }
      published++;
    }
    deps.count?.('ChangesPublished', published);
    deps.count?.('ChangesDroppedDuringRebuild', dropped);
    if (parked > 0) deps.count?.('ChangesNotPublished', parked);
    return { batchItemFailures: [] };
  };
}

/** SKAFU_GRAPHQL_MODELS: deflated JSON of the models without their table names (tokens at synth), which are in SKAFU_GRAPHQL_TABLE_<n> and SKAFU_GRAPHQL_CHECKPOINTS_<n>. */
export function decodeModels(encoded: string, env: Record<string, string | undefined>): PublishedModel[] {
  type Encoded = Omit<PublishedModel, 'table' | 'activeVersion'> & { activeVersion?: { key: string; version: number } };
  const raw = JSON.parse(inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8')) as Encoded[];
  return raw.map(({ activeVersion, ...m }, i) => ({
    ...m,
    table: env[`SKAFU_GRAPHQL_TABLE_${i}`] ?? '',
    ...(activeVersion ? { activeVersion: { ...activeVersion, checkpointTable: env[`SKAFU_GRAPHQL_CHECKPOINTS_${i}`] ?? '' } } : {}),
  }));
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

/** POSTs to one endpoint, signed with SigV4 for `service` with the function's credentials (from `env`). */
function signedPoster(service: string, endpoint: URL, env: Record<string, string | undefined>) {
  const signer = new SignatureV4({
    service,
    region: env.AWS_REGION ?? 'us-east-1',
    sha256: Sha256 as never,
    credentials: async () => ({ accessKeyId: env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '', sessionToken: env.AWS_SESSION_TOKEN }),
  });
  return async (headers: Record<string, string>, body: string) => {
    const request = await signer.sign({
      method: 'POST',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: endpoint.pathname,
      headers: { host: endpoint.host, ...headers },
      body,
    });
    return post(endpoint.href, request.headers as Record<string, string>, body, 10_000);
  };
}

/** A POST to the GraphQL endpoint signed with the function's credentials (SigV4, service `appsync`). */
export function signedPost(url: string, env: Record<string, string | undefined> = process.env) {
  const send = signedPoster('appsync', new URL(url), env);
  return async (body: string): Promise<{ status: number; body: any }> => {
    const response = await send({ 'content-type': 'application/json' }, body);
    let parsed: unknown = response.text;
    try {
      parsed = JSON.parse(response.text);
    } catch {
      // not JSON: kept as text for the log
    }
    return { status: response.status, body: parsed };
  };
}

/**
 * Sends one message to an SQS queue with the function's credentials: SendMessage in the AWS JSON 1.0 protocol
 * (`X-Amz-Target: AmazonSQS.SendMessage`, SQS API Reference), signed with SigV4 for service `sqs`, POSTed to the
 * queue's own endpoint. No SQS client in the bundle for one call.
 */
export function signedSqsSend(queueUrl: string, env: Record<string, string | undefined> = process.env) {
  // The service endpoint: AWS_ENDPOINT_URL_SQS when set (as the SDK reads it; Skafu Local sets it), else the
  // queue URL's host (`https://sqs.<region>.amazonaws.com/`).
  const send = signedPoster('sqs', new URL(env.AWS_ENDPOINT_URL_SQS || `${new URL(queueUrl).origin}/`), env);
  return async (message: Record<string, unknown>): Promise<void> => {
    const body = JSON.stringify({ QueueUrl: queueUrl, MessageBody: JSON.stringify(message) });
    const response = await send({ 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.SendMessage' }, body);
    if (response.status !== 200) throw new Error(`SQS SendMessage answered HTTP ${response.status}: ${response.text.slice(0, 300)}`);
  };
}

/** A pointer read with the function's credentials (GetItem, strongly consistent: the switch is seen at once). */
export function pointerReader(client: DynamoDBClient) {
  return async (checkpointTable: string, key: string): Promise<ActivePointer | undefined> => {
    const out = await client.send(new GetItemCommand({ TableName: checkpointTable, Key: { aggregateId: { S: key } }, ConsistentRead: true }));
    return out.Item ? (unmarshall(out.Item) as ActivePointer) : undefined;
  };
}

let instance: ReturnType<typeof createChangePublisher> | undefined;
const tools = powertools('skafu-graphql-changes');

export const handler = async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
  if (!instance) {
    instance = createChangePublisher({
      models: decodeModels(process.env.SKAFU_GRAPHQL_MODELS ?? '', process.env),
      post: signedPost(process.env.SKAFU_GRAPHQL_URL ?? ''),
      readPointer: pointerReader(new DynamoDBClient({})),
      ...(process.env.SKAFU_GRAPHQL_FAILED_CHANGES_QUEUE_URL ? { park: signedSqsSend(process.env.SKAFU_GRAPHQL_FAILED_CHANGES_QUEUE_URL) } : {}),
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
