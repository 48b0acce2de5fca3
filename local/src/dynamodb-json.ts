/**
 * DynamoDB's and DynamoDB Streams' JSON protocol, spoken directly over HTTP to DynamoDB Local, for the calls Skafu
 * Local makes itself on its main thread: state machine DynamoDB tasks and stream reads.
 *
 * Why not the AWS SDK: per call, the SDK's middleware, model-driven serialization and SigV4 signing cost several
 * times the CPU of the request itself (measured on this project's 2-core machine: about 1.7 to 3.4 ms of CPU per
 * PutItem or GetItem through the SDK, 0.3 to 0.6 ms as a plain JSON request), and that CPU is taken from the
 * thread that also serves the API and interprets the state machines. Step Functions itself hands a task's
 * parameters to DynamoDB's JSON API as they are, and Lambda's stream poller reads the Streams API: this is that
 * protocol, with nothing dropped or converted by a client model (a binary attribute stays base64 text, a record's
 * ApproximateCreationDateTime stays epoch seconds, as the APIs send them).
 *
 * DynamoDB Local checks the form of the Authorization header, not its signature: requests carry an unsigned
 * SigV4-shaped header naming the access key and region, which pick the database when DynamoDB Local runs without
 * `-sharedDb`. An error answers as the SDK would raise it: `name` is the exception's short name (the part of
 * `__type` after `#`), `message` its message, the other fields of the body (e.g. `CancellationReasons`) kept.
 * A request that fails on the connection (a kept-alive socket closed by the server) is sent again, at most twice,
 * as the SDK's standard retry does for transient network errors; DynamoDB's own errors are never retried here.
 */
import * as http from 'node:http';
import * as https from 'node:https';

/** An error answered by DynamoDB (Local), as the AWS SDK names it. */
export class DynamoDbServiceError extends Error {
  constructor(
    name: string,
    message: string,
    /** The HTTP status DynamoDB answered with. */
    public readonly statusCode: number,
    /** The other fields of the error body (e.g. `CancellationReasons` of a TransactionCanceledException). */
    public readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = name;
    for (const [key, value] of Object.entries(details)) {
      if (!(key in this)) (this as Record<string, unknown>)[key] = value;
    }
  }
}

const NETWORK_RETRIES = 2;
const RETRYABLE_NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT']);

export interface DynamoDbJsonClientOptions {
  /** The DynamoDB Local endpoint, `http://127.0.0.1:8000`. */
  readonly endpoint: string;
  readonly region: string;
  /** Names the database when DynamoDB Local runs without `-sharedDb`. @default 'local' */
  readonly accessKeyId?: string;
}

export class DynamoDbJsonClient {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;
  private readonly region: string;
  private readonly accessKeyId: string;

  constructor(options: DynamoDbJsonClientOptions) {
    this.url = new URL(options.endpoint);
    const secure = this.url.protocol === 'https:';
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 64 }) : new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.request = secure ? https.request : http.request;
    this.region = options.region;
    this.accessKeyId = options.accessKeyId ?? 'local';
  }

  /** A DynamoDB API call: `operation` as in the API reference (`PutItem`), `input` its request as JSON. */
  public dynamodb<T = Record<string, any>>(operation: string, input: unknown): Promise<T> {
    return this.send('DynamoDB_20120810', 'dynamodb', operation, input) as Promise<T>;
  }

  /** A DynamoDB Streams API call (`GetRecords`, `GetShardIterator`, `DescribeStream`, `ListStreams`). */
  public streams<T = Record<string, any>>(operation: string, input: unknown): Promise<T> {
    return this.send('DynamoDBStreams_20120810', 'dynamodb', operation, input) as Promise<T>;
  }

  public destroy(): void {
    this.agent.destroy();
  }

  private async send(prefix: string, service: string, operation: string, input: unknown): Promise<unknown> {
    const body = JSON.stringify(input ?? {});
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(prefix, service, operation, body);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (err instanceof DynamoDbServiceError || attempt >= NETWORK_RETRIES || !code || !RETRYABLE_NETWORK_ERRORS.has(code)) throw err;
      }
    }
  }

  private once(prefix: string, service: string, operation: string, body: string): Promise<unknown> {
    const date = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    return new Promise((resolve, reject) => {
      const req = this.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          path: this.url.pathname || '/',
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            'content-length': Buffer.byteLength(body),
            'x-amz-target': `${prefix}.${operation}`,
            'x-amz-date': date,
            'authorization': `AWS4-HMAC-SHA256 Credential=${this.accessKeyId}/${date.slice(0, 8)}/${this.region}/${service}/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0`,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown> = {};
            try {
              parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              parsed = { Message: text };
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(parsed);
            const { __type: type, Message: upper, message: lower, ...details } = parsed;
            const name = typeof type === 'string' && type ? type.slice(type.lastIndexOf('#') + 1) : status >= 500 ? 'InternalServerError' : 'UnknownError';
            reject(new DynamoDbServiceError(name, String(upper ?? lower ?? `${operation} failed with HTTP ${status}`), status, details));
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}
