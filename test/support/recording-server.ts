/**
 * A real node:http server on loopback that records every request it receives (method, URL, headers, body, and the
 * socket it came on, to tell kept-alive connections apart) and answers through the test's own function. For the
 * tests of HTTP clients: the handlers' https-post and Skafu Local's DemoClient.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface SeenRequest {
  readonly method?: string;
  readonly url?: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly socket: Socket;
}

export interface RecordingServer {
  readonly url: string;
  /** Every request received, in order. */
  readonly seen: SeenRequest[];
  readonly server: Server;
}

/** Starts a server on a free loopback port; `answer` gets each request once its body has arrived, with its index. */
export async function serve(answer: (seen: SeenRequest, res: ServerResponse, index: number) => void): Promise<RecordingServer> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s = { method: req.method, url: req.url, headers: req.headers, body, socket: req.socket };
      seen.push(s);
      answer(s, res, seen.length - 1);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

/** Closes the server and every connection it still holds. */
export const close = (server: Server) => new Promise<void>((r) => {
  server.closeAllConnections();
  server.close(() => r());
});
