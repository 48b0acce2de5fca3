// Runs one Lambda function's handler in its own worker thread (its own environment and module cache), the way
// the Lambda runtime would: the exact bundled asset, loaded once at start (init), invoked with (event, context).
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { randomUUID } = require('node:crypto');
const { watchDynamoDbWrites } = require('./dynamodb-writes');

// Skafu Local is told the tables a handler writes as soon as DynamoDB has answered each write, so that it reads
// their streams at once (dynamodb-writes.js); the handler's requests are only observed.
watchDynamoDbWrites((tables) => parentPort.postMessage({ type: 'wrote', tables }));

const describe = (err) => ({
  name: (err && err.name) || 'Error',
  message: (err && err.message) || String(err),
  stack: (err && err.stack) || undefined,
});

let handler;
try {
  const mod = require(workerData.file);
  handler = mod[workerData.handlerName];
  if (typeof handler !== 'function') {
    throw Object.assign(new Error(`${workerData.file} exports no function '${workerData.handlerName}'`), { name: 'Runtime.HandlerNotFound' });
  }
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  const error = describe(err);
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(workerData.file)) error.name = 'Runtime.ImportModuleError';
  parentPort.postMessage({ type: 'load-error', error });
}

parentPort.on('message', async ({ id, event: eventJson, timeoutMs }) => {
  const started = Date.now();
  const context = {
    functionName: workerData.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: workerData.functionArn,
    memoryLimitInMB: String(workerData.memorySize),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${workerData.functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, timeoutMs - (Date.now() - started)),
    done() {},
    fail() {},
    succeed() {},
  };
  try {
    if (!handler) throw Object.assign(new Error('the handler could not be loaded'), { name: 'Runtime.ImportModuleError' });
    // The event arrives as JSON text and the result leaves as JSON text, as Lambda passes them.
    const result = await handler(JSON.parse(eventJson), context);
    parentPort.postMessage({ id, result: result === undefined ? 'null' : (JSON.stringify(result) ?? 'null') });
  } catch (err) {
    parentPort.postMessage({ id, error: describe(err) });
  }
});
