/**
 * @skafu/constructs/runtime: the handler-side library used by the bundled handlers and by custom handlers.
 * Needs `@aws-sdk/client-dynamodb` and `@aws-sdk/lib-dynamodb` (present in the Node.js Lambda runtime).
 */
export * from './json';
export * from './envelope';
export * from './errors';
export * from './event-store-schema';
export * from './event-store';
export * from './aggregate';
export * from './error-event';
export * from './error-reporter';
export * from './event-publisher';
export * from './stream-records';
export * from './republish';
export * from './holds';
export * from './http';
export * from './routes';
export * from './domain-spec';
export * from './guards';
export * from './state-fold';
export * from './read-model-version';
