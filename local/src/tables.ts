import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/** Turns a synthesized AWS::DynamoDB::Table's properties into a CreateTable request. */
export function createTableInputFromCfn(props: Record<string, any>, tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    KeySchema: props.KeySchema,
    AttributeDefinitions: props.AttributeDefinitions,
    BillingMode: props.BillingMode ?? 'PAY_PER_REQUEST',
    GlobalSecondaryIndexes: props.GlobalSecondaryIndexes?.map((gsi: Record<string, any>) => ({
      IndexName: gsi.IndexName,
      KeySchema: gsi.KeySchema,
      Projection: gsi.Projection,
    })),
    StreamSpecification: props.StreamSpecification
      ? { StreamEnabled: true, StreamViewType: props.StreamSpecification.StreamViewType }
      : undefined,
  };
}

