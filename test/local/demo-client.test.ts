/**
 * DemoClient, the HTTP client of the demo, the bench and the end-to-end tests: what it sends (method, path and
 * query, JSON body, token, correlation id), what it gives back (status, parsed JSON or {} for an empty body, every
 * header, repeated ones too), one kept-alive connection for consecutive requests, a request after the server closed
 * an idle connection, and a refusal of anything but plain HTTP. Against a real node:http server on loopback.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DemoClient } from '../../local/src/demo';
import type { SkafuLocal } from '../../local/src/skafu-local';
import { close, serve, type SeenRequest } from '../support/recording-server';

let server: Server;
let url: string;
let seen: SeenRequest[];
let connections = 0;
let answer: (res: ServerResponse) => void;

beforeAll(async () => {
  ({ url, seen, server } = await serve((_s, res) => answer(res)));
  server.on('connection', () => connections++);
});

afterAll(() => close(server));

beforeEach(() => {
  seen.length = 0;
  server.keepAliveTimeout = 5_000;
  answer = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
});

const client = (base = url) => new DemoClient({ url: base, tokens: { Viewer: 'token-of-viewer' } } as unknown as SkafuLocal, 'dc');

test('sends the method, path and query, the JSON body with its length, the token and a correlation id per request', async () => {
  const api = client();
  await api.call('POST', '/api/v1/things?x=1&y=%C3%A9', { as: 'Viewer', body: { name: 'é', n: 2 } });
  await api.call('GET', '/api/v1/things/7', { headers: { 'If-None-Match': '"v1"' } });
  expect(seen.map((s) => [s.method, s.url])).toEqual([
    ['POST', '/api/v1/things?x=1&y=%C3%A9'],
    ['GET', '/api/v1/things/7'],
  ]);
  expect(JSON.parse(seen[0].body)).toEqual({ name: 'é', n: 2 });
  expect(seen[0].headers['content-length']).toBe(String(Buffer.byteLength(seen[0].body)));
  expect(seen[0].headers.authorization).toBe('Bearer token-of-viewer');
  expect([seen[0].headers['x-correlation-id'], seen[1].headers['x-correlation-id']]).toEqual(['dc-1', 'dc-2']);
  expect(seen[1].headers.authorization).toBeUndefined(); // no user, no token
  expect(seen[1].headers['if-none-match']).toBe('"v1"');
  expect(seen[1].body).toBe('');
});

test('answers: status, parsed JSON, {} for an empty body, every header (repeated set-cookie headers kept apart, as fetch keeps them)', async () => {
  answer = (res) => res.writeHead(409, [['content-type', 'application/json'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['x-correlation-id', 'dc-1']]).end('{"error":"Conflict"}');
  const conflict = await client().call('POST', '/x', { body: {} });
  expect(conflict.status).toBe(409);
  expect(conflict.body).toEqual({ error: 'Conflict' });
  expect(conflict.headers.get('x-correlation-id')).toBe('dc-1');
  expect(conflict.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
  answer = (res) => res.writeHead(204).end();
  const empty = await client().call('OPTIONS', '/x');
  expect([empty.status, empty.body]).toEqual([204, {}]);
});

test('consecutive requests share one kept-alive connection; after the server closes an idle one, the next opens another', async () => {
  const api = client();
  const before = connections;
  for (let i = 0; i < 5; i++) await api.call('GET', `/n/${i}`);
  expect(new Set(seen.map((s) => s.socket)).size).toBe(1);
  expect(connections - before).toBeLessThanOrEqual(1);
  // The server gives up idle connections after 200 ms (its keep-alive timeout): the client's pooled socket is
  // closed under it, and the next request must not fail on it.
  server.keepAliveTimeout = 200;
  await api.call('GET', '/arm'); // the answer carries the new timeout
  await new Promise((r) => setTimeout(r, 600));
  const after = await api.call('GET', '/after-idle');
  expect(after.status).toBe(200);
  expect(seen[seen.length - 1].socket).not.toBe(seen[0].socket);
});

test('a non-JSON answer throws a SyntaxError; anything but plain HTTP is refused before sending', async () => {
  answer = (res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
  await expect(client().call('GET', '/x')).rejects.toThrow(SyntaxError);
  const sent = seen.length;
  await expect(client(url.replace('http:', 'https:')).call('GET', '/x')).rejects.toThrow(/plain HTTP/);
  expect(seen.length).toBe(sent);
});

test('a server that is gone is an error, not a hang', async () => {
  const gone = createServer();
  await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
  const goneUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
  await new Promise((resolve) => gone.close(resolve));
  await expect(client(goneUrl).call('GET', '/x')).rejects.toThrow(/ECONNREFUSED/);
});

test('an IPv6 loopback URL ([::1]) reaches its server', async () => {
  const v6 = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"family":"IPv6"}'));
  const listening = await new Promise<boolean>((resolve) => {
    v6.once('error', () => resolve(false));
    v6.listen(0, '::1', () => resolve(true));
  });
  if (!listening) return; // a machine without IPv6 loopback: nothing to check
  try {
    const reply = await client(`http://[::1]:${(v6.address() as AddressInfo).port}`).call('GET', '/x');
    expect([reply.status, reply.body]).toEqual([200, { family: 'IPv6' }]);
  } finally {
    v6.closeAllConnections();
    await new Promise((resolve) => v6.close(resolve));
  }
});
