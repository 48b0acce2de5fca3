import { startDynamoDbLocal } from './dynamodb-local';

/** Starts one DynamoDB Local for the whole jest run; workers inherit its endpoint through the environment. */
export default async function globalSetup(): Promise<void> {
  const local = await startDynamoDbLocal();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = local.endpoint;
  process.env.AWS_ENDPOINT_URL_DYNAMODB_STREAMS = local.endpoint;
  process.env.SKAFU_TEST_DYNAMODB_ENDPOINT = local.endpoint;
  (globalThis as { __SKAFU_DYNAMODB_LOCAL__?: unknown }).__SKAFU_DYNAMODB_LOCAL__ = local;
}
