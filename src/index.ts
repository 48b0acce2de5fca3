export * from './event-store';
export * from './error-bus';
export * from './event-bus';
export * from './publisher';
export * from './rbac-user-pool';
export * from './api';
export * from './projections';
