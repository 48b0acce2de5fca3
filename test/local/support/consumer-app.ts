/**
 * A CDK app shaped like a user's, written into a temporary directory: an `inventory` domain in a SkafuPlatform
 * (stack 1), and a second stack with its own stream-enabled table read by a function of the app's own code, a
 * REST API with a CORS preflight, and a route whose handler crashes on purpose. Synthesized to `<dir>/cdk.out`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { AggregateIdSource, ErrorBus, ProjectionAction, ProjectionValue, QueryInput, SkafuEnvironment, SkafuPlatform, ValueType, type DomainDeclaration } from '../../../src';

export const inventory: DomainDeclaration = {
  name: 'inventory',
  commands: [
    {
      name: 'AddItem',
      path: 'items',
      allowedGroups: ['Admin', 'Developer'],
      aggregateType: 'Item',
      aggregateId: AggregateIdSource.generated('item-'),
      eventType: 'ItemAdded',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['sku', 'quantity'],
        properties: { sku: { type: 'string', minLength: 1, maxLength: 64 }, quantity: { type: 'integer', minimum: 0 } },
      },
    },
  ],
  readModels: [
    {
      name: 'items',
      partitionKey: { name: 'itemId' },
      projections: [
        {
          eventType: 'ItemAdded',
          action: ProjectionAction.putItem({
            key: { itemId: ProjectionValue.fromEnvelope('aggregateId') },
            attributes: { sku: ProjectionValue.fromData('sku'), quantity: ProjectionValue.fromData('quantity', ValueType.NUMBER) },
          }),
        },
      ],
    },
  ],
  queries: [{ name: 'GetItem', path: 'items/{itemId}', allowedGroups: ['Admin', 'Developer', 'Viewer'], readModel: 'items', key: { itemId: QueryInput.pathParameter('itemId') } }],
};

/** The app's own handlers (plain JavaScript, as a user's asset directory). */
const HANDLERS = `
const { DynamoDBClient, PutItemCommand, GetItemCommand } = require('@aws-sdk/client-dynamodb');
const db = new DynamoDBClient({});
exports.write = async (event) => {
  const note = JSON.parse(event.body || '{}');
  await db.send(new PutItemCommand({ TableName: process.env.NOTES_TABLE, Item: { id: { S: String(note.id) }, text: { S: String(note.text) } } }));
  return { statusCode: 201, body: JSON.stringify({ id: note.id }) };
};
exports.project = async (event) => {
  for (const record of event.Records) {
    const image = record.dynamodb.NewImage;
    await db.send(new PutItemCommand({ TableName: process.env.VIEW_TABLE, Item: { id: image.id, text: image.text, seen: { N: '1' } } }));
  }
};
exports.read = async (event) => {
  const out = await db.send(new GetItemCommand({ TableName: process.env.VIEW_TABLE, Key: { id: { S: event.pathParameters.id } } }));
  return out.Item ? { statusCode: 200, body: JSON.stringify({ id: out.Item.id.S, text: out.Item.text.S }) } : { statusCode: 404, body: '{"message":"no such note"}' };
};
exports.crash = async () => {
  throw new TypeError('injected crash: cannot read the order');
};
`;

export function buildConsumerApp(directory: string): string {
  const handlerDir = path.join(directory, 'handlers');
  fs.mkdirSync(handlerDir, { recursive: true });
  fs.writeFileSync(path.join(handlerDir, 'index.js'), HANDLERS);
  const outdir = path.join(directory, 'cdk.out');
  const app = new App({ outdir });

  const platformStack = new Stack(app, 'Inventory-dev');
  const platform = new SkafuPlatform(platformStack, 'Platform', { environment: SkafuEnvironment.DEVELOPMENT });
  platform.addDomain(inventory);

  const edge = new Stack(app, 'Edge-dev');
  new ErrorBus(edge, 'Errors', { environment: 'edge' });
  const notes = new dynamodb.Table(edge, 'Notes', {
    partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
    stream: dynamodb.StreamViewType.NEW_IMAGE,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const view = new dynamodb.Table(edge, 'NotesView', { partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING }, removalPolicy: RemovalPolicy.DESTROY });
  const fn = (id: string, handler: string) =>
    new lambda.Function(edge, id, {
      runtime: lambda.Runtime.NODEJS_22_X,
      code: lambda.Code.fromAsset(handlerDir),
      handler: `index.${handler}`,
      environment: { NOTES_TABLE: notes.tableName, VIEW_TABLE: view.tableName },
    });
  const projector = fn('Projector', 'project');
  projector.addEventSource(new DynamoEventSource(notes, { startingPosition: lambda.StartingPosition.TRIM_HORIZON, batchSize: 10, retryAttempts: 2 }));
  const api = new apigw.RestApi(edge, 'EdgeApi', {
    deployOptions: { stageName: 'edge' },
    defaultCorsPreflightOptions: { allowOrigins: ['http://localhost:5173'], allowMethods: ['GET', 'POST'] },
  });
  const notesResource = api.root.addResource('notes');
  notesResource.addMethod('POST', new apigw.LambdaIntegration(fn('Writer', 'write')));
  notesResource.addResource('{id}').addMethod('GET', new apigw.LambdaIntegration(fn('Reader', 'read')));
  api.root.addResource('crash').addMethod('POST', new apigw.LambdaIntegration(fn('Crasher', 'crash')));
  app.synth();
  return outdir;
}
