// Runs one Lambda function's handler in its own worker thread (its own environment and module cache), the way
// the Lambda runtime would: the exact bundled asset, invoked with (event, context).
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { randomUUID } = require('node:crypto');

let handler;
function load() {
  if (!handler) {
    const mod = require(workerData.file);
    const [file, name] = [workerData.file, workerData.handlerName];
    handler = mod[name];
    if (typeof handler !== 'function') throw new Error(`${file} exports no function '${name}'`);
  }
  return handler;
}

parentPort.on('message', async ({ id, event, timeoutMs }) => {
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
    const result = await load()(event, context);
    parentPort.postMessage({ id, result: result === undefined ? null : result });
  } catch (err) {
    parentPort.postMessage({ id, error: { name: (err && err.name) || 'Error', message: (err && err.message) || String(err) } });
  }
});
