// Which tables a DynamoDB request writes, and a watch on a thread's outgoing HTTP requests that reports each
// successful write as soon as DynamoDB has answered it. The Lambda worker (lambda-worker.js) installs the watch,
// so that Skafu Local reads a table's stream right after a function it runs wrote to it, instead of at the next
// idle poll (see dynamodb-streams.ts). Plain JavaScript: the worker loads it without a TypeScript loader.
//
// Only what the handler sends is observed (the x-amz-target header and the request body, over node:http or
// node:https, which the AWS SDK for JavaScript v3 uses in Node.js); nothing is changed. A write through another
// HTTP client (fetch) is not seen: its table's stream is read at the next idle poll, as a write from outside.
'use strict';
const diagnostics = require('node:diagnostics_channel');
const http = require('node:http');

const PREFIX = 'DynamoDB_20120810.';
/** The DynamoDB operations that can write an item (and so a stream record). */
const WRITE_OPERATIONS = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
  'ExecuteStatement',
  'BatchExecuteStatement',
  'ExecuteTransaction',
]);

/** `arn:aws:dynamodb:<region>:<account>:table/<name>` or `<name>` -> `<name>` (TableName accepts both). */
function tableName(nameOrArn) {
  if (typeof nameOrArn !== 'string') return undefined;
  const at = nameOrArn.indexOf(':table/');
  return at >= 0 ? nameOrArn.slice(at + ':table/'.length).split('/')[0] : nameOrArn;
}

/** The table a PartiQL statement writes; `null` when it cannot be told; `undefined` for a SELECT. */
function statementTable(statement) {
  if (typeof statement !== 'string') return null;
  const text = statement.trim();
  if (/^select\b/i.test(text)) return undefined;
  const m = /^(?:insert\s+into|update|delete\s+from)\s+(?:"((?:[^"]|"")+)"|([A-Za-z0-9_.-]+))/i.exec(text);
  return m ? (m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]) : null;
}

/**
 * The tables a DynamoDB request may have written: `[]` when it writes none (a read, a PartiQL SELECT), `null`
 * when they cannot be told (then every table's stream should be read).
 * @param {string} operation e.g. `PutItem` (the x-amz-target without its `DynamoDB_20120810.` prefix)
 * @param {unknown} input the request body, parsed
 * @returns {string[] | null}
 */
function writtenTables(operation, input) {
  if (!WRITE_OPERATIONS.has(operation)) return [];
  if (!input || typeof input !== 'object') return null;
  const names = new Set();
  let unknown = false;
  const add = (name) => {
    if (name === undefined) return;
    if (name === null) unknown = true;
    else names.add(name);
  };
  switch (operation) {
    case 'PutItem':
    case 'UpdateItem':
    case 'DeleteItem':
      add(tableName(input.TableName) ?? null);
      break;
    case 'BatchWriteItem':
      for (const name of Object.keys(input.RequestItems ?? {})) add(tableName(name));
      break;
    case 'TransactWriteItems':
      for (const item of Array.isArray(input.TransactItems) ? input.TransactItems : []) {
        for (const kind of ['Put', 'Update', 'Delete']) if (item && item[kind]) add(tableName(item[kind].TableName) ?? null);
      }
      break;
    case 'ExecuteStatement':
      add(statementTable(input.Statement));
      break;
    default: // BatchExecuteStatement, ExecuteTransaction
      for (const s of [...(Array.isArray(input.Statements) ? input.Statements : []), ...(Array.isArray(input.TransactStatements) ? input.TransactStatements : [])]) {
        add(statementTable(s && s.Statement));
      }
  }
  return unknown ? null : [...names];
}

/**
 * Watches this thread's outgoing HTTP requests for DynamoDB writes; calls `onWrite(tables)` (see writtenTables)
 * once DynamoDB has answered one with a 2xx status (the write is then committed and in the stream). Installed
 * once per thread.
 * @param {(tables: string[] | null) => void} onWrite
 */
function watchDynamoDbWrites(onWrite) {
  const proto = http.ClientRequest.prototype;
  if (proto.__skafuWatched) return;
  proto.__skafuWatched = true;
  /** @type {WeakMap<object, { operation: string, chunks: Buffer[] } | null>} */
  const watched = new WeakMap();
  const entry = (req) => {
    if (watched.has(req)) return watched.get(req);
    let value = null;
    try {
      const target = req.getHeader('x-amz-target');
      const operation = typeof target === 'string' && target.startsWith(PREFIX) ? target.slice(PREFIX.length) : undefined;
      if (operation && WRITE_OPERATIONS.has(operation)) value = { operation, chunks: [] };
    } catch {
      value = null;
    }
    watched.set(req, value);
    return value;
  };
  const keep = (req, chunk, encoding) => {
    const e = entry(req);
    if (!e || chunk === undefined || chunk === null || typeof chunk === 'function') return;
    e.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk));
  };
  const write = proto.write;
  const end = proto.end;
  proto.write = function (chunk, encoding, ...rest) {
    keep(this, chunk, encoding);
    return write.call(this, chunk, encoding, ...rest);
  };
  proto.end = function (chunk, encoding, ...rest) {
    keep(this, chunk, encoding);
    return end.call(this, chunk, encoding, ...rest);
  };
  // Published when the response's head has arrived, before the caller sees it (node:http's diagnostics channel).
  diagnostics.subscribe('http.client.response.finish', ({ request, response }) => {
    const e = watched.get(request);
    if (!e || response.statusCode < 200 || response.statusCode >= 300) return;
    watched.delete(request);
    let tables = null;
    try {
      tables = writtenTables(e.operation, JSON.parse(Buffer.concat(e.chunks).toString('utf8')));
    } catch {
      tables = null;
    }
    if (tables === null || tables.length > 0) onWrite(tables);
  });
}

module.exports = { WRITE_OPERATIONS, writtenTables, watchDynamoDbWrites };
