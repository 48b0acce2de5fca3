// DynamoDB Local is started by the same code Skafu Local uses.
export * from '../../local/src/dynamodb-local';
