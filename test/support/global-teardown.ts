import type { DynamoDbLocal } from './dynamodb-local';

export default async function globalTeardown(): Promise<void> {
  const local = (globalThis as { __SKAFU_DYNAMODB_LOCAL__?: DynamoDbLocal }).__SKAFU_DYNAMODB_LOCAL__;
  await local?.stop();
}
