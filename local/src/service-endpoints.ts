/**
 * The AWS service endpoints the handlers call (EventBridge PutEvents, SQS) and the local issuer's JWKS, on their
 * own loopback port, apart from the API. Every path starts with a secret made at start that only the functions
 * Skafu Local runs get (through AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL_SQS and the JWKS URL), so that an
 * API client cannot put forged events on a bus. Bad requests are answered like AWS: 400 with `__type` and a
 * message, never 500.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeServer, readBody } from './api-gateway';
import type { ErrorLog } from './error-log';

export interface ServiceHandlers {
  readonly putEvents: (input: any) => unknown;
  readonly sqs: (target: string, input: unknown) => unknown;
  readonly jwks: () => unknown;
}

const MAX_BODY_BYTES = 1024 * 1024;

export class ServiceEndpoints {
  public readonly secret = randomBytes(18).toString('base64url');
  public base = '';
  private server?: Server;

  constructor(
    private readonly handlers: ServiceHandlers,
    private readonly errors: ErrorLog,
  ) {}

  public get eventsUrl(): string {
    return `${this.base}/${this.secret}/events`;
  }
  public get sqsUrl(): string {
    return `${this.base}/${this.secret}/sqs`;
  }
  public get jwksUrl(): string {
    return `${this.base}/${this.secret}/.well-known/jwks.json`;
  }

  public async listen(): Promise<void> {
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.base = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  public async close(): Promise<void> {
    await closeServer(this.server);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch {
      req.destroy();
      return;
    }
    const [, secret, ...rest] = (req.url ?? '/').split('?')[0].split('/');
    const given = Buffer.from(secret ?? '');
    const expected = Buffer.from(this.secret);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return reply(res, 403, { __type: 'AccessDeniedException', message: 'Not a Skafu Local function' });
    const service = rest.join('/');
    try {
      if (service === '.well-known/jwks.json') return reply(res, 200, this.handlers.jwks(), 'application/json');
      let input: unknown;
      try {
        input = JSON.parse(body || '{}');
      } catch {
        return reply(res, 400, { __type: 'SerializationException', message: 'The request body is not JSON' });
      }
      if (service === 'events' || service === 'events/') {
        if (req.headers['x-amz-target'] !== 'AWSEvents.PutEvents') return reply(res, 400, { __type: 'UnknownOperationException', message: `${req.headers['x-amz-target'] ?? '(no target)'} is not emulated` });
        return reply(res, 200, this.handlers.putEvents(input), 'application/x-amz-json-1.1');
      }
      if (service === 'sqs' || service.startsWith('sqs/')) return reply(res, 200, this.handlers.sqs(String(req.headers['x-amz-target'] ?? ''), input), 'application/x-amz-json-1.0');
      return reply(res, 404, { __type: 'UnknownOperationException', message: `no local service at /${service}` });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'ValidationException' || name === 'QueueDoesNotExist') return reply(res, 400, { __type: name === 'QueueDoesNotExist' ? 'AWS.SimpleQueueService.NonExistentQueue' : name, message: (err as Error).message });
      this.errors.report({ kind: 'SkafuLocalDefect', resource: `service /${service}`, message: (err as Error).stack ?? String(err) });
      return reply(res, 500, { __type: 'InternalFailure', message: (err as Error).message });
    }
  }
}

function reply(res: ServerResponse, status: number, body: unknown, type = 'application/x-amz-json-1.1'): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type });
  res.end(JSON.stringify(body));
}
