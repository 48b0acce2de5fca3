export * from './event-store';
export * from './error-bus';
export * from './event-bus';
export * from './publisher';
