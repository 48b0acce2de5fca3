/**
 * The handlers' one-request POST (src/internal/https-post.ts) against a real local HTTP server: exact headers and
 * body, any status answered, a kept-alive socket the server dropped in the meantime (what a frozen Lambda
 * environment finds) sent again once on a new socket, a silent server timed out, and no second send otherwise.
 */
import type { Socket } from 'node:net';
import { MAX_ANSWER_BYTES, post } from '../../src/internal/https-post';
import { close, serve } from '../support/recording-server';

test('sends exactly the given headers (and content-length) and body; answers the status and text of any answer', async () => {
  const { url, seen, server } = await serve((_s, res, i) => {
    res.writeHead(i === 0 ? 200 : 503, { 'content-type': 'application/json' });
    res.end(i === 0 ? '{"data":{"ok":true}}' : 'été indisponible');
  });
  try {
    const body = JSON.stringify({ query: 'mutation { x }', variables: { name: 'Zoë', n: 1 } });
    const first = await post(`${url}/graphql?x=1`, { 'authorization': 'AWS4-HMAC-SHA256 sig', 'content-type': 'application/json', 'x-amz-date': '20261130T000000Z' }, body, 5_000);
    expect(first).toEqual({ status: 200, text: '{"data":{"ok":true}}' });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/graphql?x=1', body });
    expect(seen[0].headers).toMatchObject({ 'authorization': 'AWS4-HMAC-SHA256 sig', 'content-type': 'application/json', 'x-amz-date': '20261130T000000Z', 'content-length': String(Buffer.byteLength(body)) });
    // A non-2xx answer is an answer (the caller decides), in UTF-8.
    expect(await post(`${url}/`, {}, 'x', 5_000)).toEqual({ status: 503, text: 'été indisponible' });
    expect(seen).toHaveLength(2);
  } finally {
    await close(server);
  }
});

test('a kept-alive socket the server has dropped is not the caller\'s failure: the request is sent again once, on a new socket', async () => {
  // The server answers, keeps the socket open, then resets it when the next request arrives on it without answering
  // (as a peer that closed the connection while the client was frozen).
  const used = new Set<Socket>();
  const { url, seen, server } = await serve((s, res) => {
    if (used.has(s.socket)) {
      s.socket.destroy();
      return;
    }
    used.add(s.socket);
    res.end(`answer ${seen.length}`);
  });
  try {
    expect(await post(url, {}, 'one', 5_000)).toEqual({ status: 200, text: 'answer 1' });
    const again = await post(url, {}, 'two', 5_000);
    expect(again.status).toBe(200);
    // Received twice ('two' on the dropped socket, then on a new one), answered once.
    expect(seen.map((s) => s.body)).toEqual(['one', 'two', 'two']);
    expect(seen[2].socket).not.toBe(seen[0].socket);
  } finally {
    await close(server);
  }
});

test('a kept-alive socket reset after the answer began is the caller\'s failure: the request is not sent again', async () => {
  const used = new Set<Socket>();
  const { url, seen, server } = await serve((s, res) => {
    if (used.has(s.socket)) {
      // The answer begins (status and part of the body), then the connection is reset.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"data":');
      setTimeout(() => s.socket.resetAndDestroy(), 20);
      return;
    }
    used.add(s.socket);
    res.end('first');
  });
  try {
    expect(await post(url, {}, 'one', 5_000)).toEqual({ status: 200, text: 'first' });
    await expect(post(url, {}, 'two', 5_000)).rejects.toThrow();
    expect(seen.map((s) => s.body)).toEqual(['one', 'two']);
  } finally {
    await close(server);
  }
});

test('an answer over MAX_ANSWER_BYTES is a failure, not read into memory', async () => {
  const { url, server } = await serve((_s, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    const more = () => {
      while (sent < 2 * MAX_ANSWER_BYTES) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('error', () => undefined);
    more();
  });
  try {
    await expect(post(url, {}, 'x', 5_000)).rejects.toThrow();
  } finally {
    await close(server);
  }
});

test('a failure on a NEW socket is not sent again; a server that never answers is timed out', async () => {
  let resets = 0;
  const { url, server } = await serve((s) => {
    resets++;
    s.socket.destroy();
  });
  try {
    await expect(post(`${url}/fresh`, {}, 'x', 5_000)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(resets).toBe(1);
  } finally {
    await close(server);
  }
  const silent = await serve(() => undefined);
  try {
    const started = Date.now();
    await expect(post(silent.url, {}, 'x', 300)).rejects.toThrow(/no answer from 127\.0\.0\.1:\d+ within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(silent.seen).toHaveLength(1);
  } finally {
    await close(silent.server);
  }
});

test('only http and https URLs', async () => {
  await expect(post('file:///etc/passwd', {}, 'x', 1_000)).rejects.toThrow(/cannot POST to file: URL/);
  await expect(post('not a url', {}, 'x', 1_000)).rejects.toThrow();
});
