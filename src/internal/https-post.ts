/**
 * One POST over node:http or node:https (by the URL's scheme) with a keep-alive agent per scheme, for bundled
 * handlers that sign a request themselves rather than carry an SDK client for one call (the GraphQL change
 * publisher's AppSync mutation and its SQS SendMessage). Internal: bundled into handlers, never exported.
 *
 * Why not `fetch`: on Node.js 20 and 22 it runs undici's full Fetch machinery (streams, AbortSignal, Headers),
 * measured at 1.2 to 1.7 ms more CPU per request than node:http on a 2-core machine (a loopback POST of a small
 * JSON body, 1,000 requests after 300 warm ones): a handler that sends one request per change pays it on every
 * invocation, on Lambda (billed duration) and in Skafu Local.
 *
 * A kept-alive socket can have been closed by the server while the function was frozen (Lambda freezes the
 * execution environment between invocations): a request that fails with ECONNRESET or EPIPE on a REUSED socket
 * before any answer arrived is sent once more, on a new connection of its own, as Node.js's documentation advises
 * ("http.Agent", `request.reusedSocket`). Such a request almost always died with the stale socket; if the server
 * did receive it, it is received twice, which is what the callers' own retry (a stream batch retried from the failed
 * record) would do anyway: the callers here are at-least-once. A request whose answer had begun is never sent
 * again. Any other failure, an answer over MAX_ANSWER_BYTES, and a timeout, are the caller's.
 */
import * as http from 'node:http';
import * as https from 'node:https';

export interface PostResult {
  readonly status: number;
  /** The response body, as text (UTF-8). */
  readonly text: string;
}

/** The largest answer read (AppSync's and SQS's answers to these requests are a few KB): beyond it, a failure. */
export const MAX_ANSWER_BYTES = 1024 * 1024;

const agents = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

/**
 * POSTs `body` to `url` with exactly `headers` (plus `content-length`); resolves with the status and text of any
 * answer (2xx or not), rejects on a network failure or after `timeoutMs` without an answer.
 */
export async function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<PostResult> {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`cannot POST to ${target.protocol} URL`);
  try {
    return await once(target, headers, body, timeoutMs, false);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { resendable?: boolean };
    if (e.resendable && ['ECONNRESET', 'EPIPE'].includes(e.code ?? '')) return once(target, headers, body, timeoutMs, true);
    throw err;
  }
}

function once(target: URL, headers: Record<string, string>, body: string, timeoutMs: number, ownConnection: boolean): Promise<PostResult> {
  const send = target.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const request = send(target, {
      method: 'POST',
      // A resend goes on a connection of its own (`agent: false`), not on another idle socket of the pool.
      agent: ownConnection ? false : agents[target.protocol as 'http:' | 'https:'],
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    let answered = false;
    const timer = setTimeout(() => request.destroy(Object.assign(new Error(`no answer from ${target.host} within ${timeoutMs} ms`), { name: 'TimeoutError' })), timeoutMs);
    request.on('error', (err) => {
      clearTimeout(timer);
      // Resendable only if it failed on a kept-alive socket before any answer (see above).
      reject(Object.assign(err, { resendable: request.reusedSocket && !answered }));
    });
    request.on('response', (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) request.destroy(new Error(`the answer from ${target.host} is over ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(c);
      });
      response.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    request.end(body);
  });
}
