/**
 * Creates real tables in DynamoDB Local from the AWS::DynamoDB::Table resources our constructs synthesize, so
 * that the runtime is always tested against the exact key schema, indexes and stream the construct deploys.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { createTableInputFromCfn } from '../../local/src/tables';
import { EventStoreTable, EventStoreTableProps } from '../../src';

export { createTableInputFromCfn };

export function localClient(): DynamoDBClient {
  const endpoint = process.env.SKAFU_TEST_DYNAMODB_ENDPOINT;
  if (!endpoint) throw new Error('DynamoDB Local is not running: the jest global setup sets SKAFU_TEST_DYNAMODB_ENDPOINT');
  return new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
}

/** Synthesizes an EventStoreTable and creates its table, under a unique name, in DynamoDB Local. */
export async function createEventStoreTable(client: DynamoDBClient, props: EventStoreTableProps = {}): Promise<string> {
  const stack = new Stack(new App(), 'Store');
  new EventStoreTable(stack, 'Events', props);
  const tables = Template.fromStack(stack).findResources('AWS::DynamoDB::Table');
  const [resource] = Object.values(tables);
  const tableName = `events-${randomUUID()}`;
  await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, tableName)));
  return tableName;
}
