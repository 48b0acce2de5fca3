/**
 * AppSync's two endpoints for Skafu Local, over the emulation in appsync.ts:
 * - `POST /graphql`: a query or mutation, `Authorization` a Cognito token or a SigV4 header (appsync-auth.ts);
 *   401 `UnauthorizedException` before anything runs when it is neither.
 * - `ws://.../graphql/realtime`: AppSync's real-time protocol (subprotocol `graphql-ws`; AWS AppSync developer
 *   guide, "Building a real-time WebSocket client"): the connection's `header` query parameter (base64 JSON with
 *   `Authorization`) is verified on connect; `connection_init` → `connection_ack`; `start` (its own authorization
 *   in `payload.extensions.authorization`, the request as JSON text in `payload.data`) → `start_ack` or `error`;
 *   each change → `data`; `stop` → `complete`; `ka` keep-alives.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AppSync, GraphqlRequest } from './appsync';
import { AuthError, authenticate, type AppSyncAuthConfig } from './appsync-auth';

const MAX_BODY = 1024 * 1024;
const CONNECTION_TIMEOUT_MS = 300_000;

export class AppSyncServer {
  public url = '';
  public realtimeUrl = '';
  private server?: Server;
  private wss?: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();

  constructor(
    private readonly appsync: AppSync,
    private readonly auth: AppSyncAuthConfig,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  public async listen(port = 0): Promise<string> {
    this.server = createServer((req, res) => {
      void this.serve(req).then(({ status, body }) => {
        res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
        res.end(JSON.stringify(body));
      });
    });
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('graphql-ws') ? 'graphql-ws' : false) });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/graphql/realtime') {
        socket.destroy();
        return;
      }
      try {
        const header = JSON.parse(Buffer.from(url.searchParams.get('header') ?? '', 'base64').toString('utf8'));
        authenticate(header?.Authorization, this.auth);
      } catch (err) {
        socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ errors: [{ errorType: 'UnauthorizedException', message: (err as Error).message }] })}`);
        return;
      }
      this.wss!.handleUpgrade(req, socket, head, (ws) => this.connection(ws));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', () => resolve()));
    const address = this.server.address();
    const actual = typeof address === 'object' && address ? address.port : port;
    this.url = `http://127.0.0.1:${actual}/graphql`;
    this.realtimeUrl = `ws://127.0.0.1:${actual}/graphql/realtime`;
    return this.url;
  }

  public async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async serve(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/graphql') return { status: 404, body: { errors: [{ errorType: 'NotFound', message: 'POST /graphql' }] } };
    if (req.method !== 'POST') return { status: 405, body: { errors: [{ errorType: 'MethodNotAllowed', message: 'POST /graphql' }] } };
    let identity;
    try {
      identity = authenticate(req.headers.authorization, this.auth);
    } catch (err) {
      if (err instanceof AuthError) return { status: 401, body: { errors: [{ errorType: 'UnauthorizedException', message: err.message }] } };
      throw err;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) return { status: 413, body: { errors: [{ errorType: 'PayloadTooLarge', message: 'request over 1 MB' }] } };
      chunks.push(chunk as Buffer);
    }
    let request: GraphqlRequest;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (typeof request?.query !== 'string') throw new Error('no query');
    } catch {
      return { status: 400, body: { errors: [{ errorType: 'MalformedHttpRequestException', message: 'the body must be JSON with a "query" string' }] } };
    }
    try {
      return { status: 200, body: await this.appsync.execute(request, identity) };
    } catch (err) {
      this.log(`GraphQL: ${(err as Error).stack ?? err}`);
      return { status: 500, body: { errors: [{ errorType: 'InternalFailure', message: 'internal failure' }] } };
    }
  }

  private connection(ws: WebSocket): void {
    this.sockets.add(ws);
    const subscriptions = new Map<string, string>();
    const send = (message: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
    const keepAlive = setInterval(() => send({ type: 'ka' }), 60_000);
    keepAlive.unref();
    ws.on('close', () => {
      clearInterval(keepAlive);
      for (const id of subscriptions.values()) this.appsync.unsubscribe(id);
      this.sockets.delete(ws);
    });
    ws.on('message', (raw) => {
      let message: any;
      try {
        message = JSON.parse(String(raw));
      } catch {
        return send({ type: 'connection_error', payload: { errors: [{ errorType: 'MalformedMessage', message: 'not JSON' }] } });
      }
      if (message.type === 'connection_init') return send({ type: 'connection_ack', payload: { connectionTimeoutMs: CONNECTION_TIMEOUT_MS } });
      if (message.type === 'stop') {
        const sub = subscriptions.get(message.id);
        if (sub) this.appsync.unsubscribe(sub);
        subscriptions.delete(message.id);
        return send({ type: 'complete', id: message.id });
      }
      if (message.type !== 'start' || typeof message.id !== 'string') return send({ type: 'error', id: message.id, payload: { errors: [{ errorType: 'UnsupportedOperation', message: `unknown message type '${message.type}'` }] } });
      void this.start(message, subscriptions, send);
    });
  }

  private async start(message: any, subscriptions: Map<string, string>, send: (m: unknown) => void): Promise<void> {
    const id: string = message.id;
    if (subscriptions.has(id)) return send({ type: 'error', id, payload: { errors: [{ errorType: 'DuplicateSubscription', message: `subscription ${id} is already started` }] } });
    let identity;
    let request: GraphqlRequest;
    try {
      identity = authenticate(message.payload?.extensions?.authorization?.Authorization, this.auth);
      request = JSON.parse(message.payload?.data ?? '');
    } catch (err) {
      const errorType = err instanceof AuthError ? 'UnauthorizedException' : 'MalformedMessage';
      return send({ type: 'error', id, payload: { errors: [{ errorType, message: (err as Error).message }] } });
    }
    const out = await this.appsync.subscribe(request, identity, (payload) => send({ type: 'data', id, payload }));
    if ('errors' in out) return send({ type: 'error', id, payload: { errors: out.errors } });
    subscriptions.set(id, out.id);
    send({ type: 'start_ack', id });
  }
}

/** The `header` query parameter of a real-time connection for a token (what an AppSync client sends). */
export function realtimeHeader(authorization: string, host: string): string {
  return Buffer.from(JSON.stringify({ Authorization: authorization, host })).toString('base64');
}
