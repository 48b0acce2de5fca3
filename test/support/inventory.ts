/**
 * An inventory domain declared as a new user would (register, adjust stock, discontinue, rename), with the
 * rules the issue asks for: declared state, guards, ownership, two events per command, a v2 event with an
 * upcaster from v1, and a reaction to another domain's event. Synthesized in an app shaped like a user's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { provideRuntimeSdk, shippedDomains } from './shipped';
import {
  AggregateIdSource,
  DataSource,
  Precondition,
  ProjectionAction,
  ProjectionValue,
  QueryInput,
  SkafuPlatform,
  StateUpdate,
  StateValue,
  UpcastStep,
  ValueType,
  type DomainDeclaration,
} from '../../src';
import type { DomainSpec } from '../../src/runtime';

export const inventory: DomainDeclaration = {
  name: 'inventory',
  commands: [
    {
      name: 'RegisterProduct',
      path: 'products',
      allowedGroups: ['Admin', 'Developer'],
      aggregateType: 'Product',
      aggregateId: AggregateIdSource.generated('product-'),
      eventType: 'ProductRegistered',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'initialStock'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, initialStock: { type: 'integer', minimum: 0, maximum: 1000000 } },
      },
      extraData: { productId: DataSource.aggregateId(), ownerId: DataSource.userId() },
    },
    {
      name: 'AdjustStock',
      path: 'products/{productId}/stock',
      allowedGroups: ['Admin', 'Developer'],
      aggregateType: 'Product',
      aggregateId: AggregateIdSource.fromPath('productId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'StockAdjusted',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['delta'],
        properties: { delta: { type: 'integer', minimum: -1000000, maximum: 1000000 } },
      },
      guards: [
        { name: 'ProductDiscontinued', condition: "state.status == 'ACTIVE'", message: 'a discontinued product cannot change stock' },
        { name: 'InsufficientStock', condition: 'state.stock + body.delta >= 0', message: 'stock cannot go below zero' },
      ],
      ownership: { overrideGroups: ['Admin'] },
    },
    {
      name: 'DiscontinueProduct',
      path: 'products/{productId}/discontinue',
      allowedGroups: ['Admin', 'Developer'],
      aggregateType: 'Product',
      aggregateId: AggregateIdSource.fromPath('productId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'ProductDiscontinued',
      bodySchema: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 200 } } },
      extraData: { productId: DataSource.pathParameter('productId') },
      additionalEvents: [{ eventType: 'ListingRemoved', includeBody: false, extraData: { productId: DataSource.pathParameter('productId') } }],
      guards: [{ name: 'AlreadyDiscontinued', condition: "state.status != 'DISCONTINUED'" }],
      ownership: { overrideGroups: ['Admin'] },
    },
    {
      name: 'RenameProduct',
      path: 'products/{productId}/name',
      allowedGroups: ['Admin', 'Developer'],
      aggregateType: 'Product',
      aggregateId: AggregateIdSource.fromPath('productId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'ProductRenamed',
      // v1 carried the new name as `title`; v2 calls it `name` and adds `locale`.
      eventVersion: 2,
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'locale'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, locale: { type: 'string', maxLength: 10 } },
      },
      guards: [{ name: 'ProductDiscontinued', condition: "state.status == 'ACTIVE'" }],
    },
  ],
  rules: {
    aggregates: [
      {
        aggregateType: 'Product',
        initialState: { status: 'NONE', stock: 0, adjustments: 0 },
        snapshotEvery: 3,
        events: [
          {
            eventType: 'ProductRegistered',
            updates: [StateUpdate.set('status', StateValue.string('ACTIVE')), StateUpdate.set('name', StateValue.fromData('name')), StateUpdate.add('stock', StateValue.fromData('initialStock'))],
          },
          { eventType: 'StockAdjusted', updates: [StateUpdate.add('stock', StateValue.fromData('delta')), StateUpdate.add('adjustments', StateValue.number(1))] },
          { eventType: 'ProductDiscontinued', updates: [StateUpdate.set('status', StateValue.string('DISCONTINUED')), StateUpdate.set('discontinuedAt', StateValue.fromEnvelope('timestamp'))] },
          { eventType: 'ProductRenamed', updates: [StateUpdate.set('name', StateValue.fromData('name')), StateUpdate.set('locale', StateValue.fromData('locale'))] },
        ],
      },
    ],
    upcasters: [{ eventType: 'ProductRenamed', fromVersion: 1, steps: [UpcastStep.rename('title', 'name'), UpcastStep.setDefault('locale', 'en')] }],
    reactions: [
      {
        name: 'DiscontinueDelistedProduct',
        sourceDomain: 'suppliers',
        eventType: 'SupplierProductDelisted',
        command: 'DiscontinueProduct',
        pathParameters: { productId: StateValue.fromData('productId') },
        body: { reason: StateValue.string('supplier delisted the product') },
      },
    ],
  },
  readModels: [
    {
      name: 'products',
      partitionKey: { name: 'productId' },
      projections: [
        {
          eventType: 'ProductRegistered',
          action: ProjectionAction.putItem({
            key: { productId: ProjectionValue.fromEnvelope('aggregateId') },
            attributes: {
              name: ProjectionValue.fromData('name'),
              ownerId: ProjectionValue.fromData('ownerId'),
              stock: ProjectionValue.fromData('initialStock', ValueType.NUMBER),
              status: ProjectionValue.string('ACTIVE'),
            },
          }),
        },
        {
          // Stored v1 events (title, no locale) are projected upgraded to v2, as the state folds them.
          eventType: 'ProductRenamed',
          action: ProjectionAction.updateItem({
            key: { productId: ProjectionValue.fromEnvelope('aggregateId') },
            set: { name: ProjectionValue.fromData('name'), locale: ProjectionValue.fromData('locale'), renamedVersion: ProjectionValue.fromEnvelope('eventVersion') },
          }),
        },
      ],
    },
  ],
  queries: [
    { name: 'ListProducts', path: 'products', allowedGroups: ['Admin', 'Developer'], readModel: 'products', ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] } },
    {
      name: 'GetProduct',
      path: 'products/{productId}',
      allowedGroups: ['Admin', 'Developer'],
      readModel: 'products',
      key: { productId: QueryInput.pathParameter('productId') },
      ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] },
    },
  ],
};

export interface InventoryAssembly {
  /** The spec its bundled command handler ships. */
  readonly spec: DomainSpec;
  readonly templates: Record<string, any>;
  readonly outdir: string;
  /** The command handler's code asset directory (bundle, spec, validators). */
  readonly commandDirectory: string;
}

let cached: InventoryAssembly | undefined;

/** Synthesizes the inventory domain on a platform (nested stacks, as addDomain makes them) and returns its spec. */
export function synthInventory(): InventoryAssembly {
  if (cached) return cached;
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-inventory-'));
  const app = new App({ outdir });
  const stack = new Stack(app, 'Shop', { env: { account: '123456789012', region: 'eu-west-1' } });
  new SkafuPlatform(stack, 'Platform').addDomain(inventory);
  app.synth();
  const templates: Record<string, any> = {};
  for (const file of fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json'))) templates[file] = JSON.parse(fs.readFileSync(path.join(outdir, file), 'utf8'));
  const found = shippedDomains(outdir, templates).find((d) => d.spec.domain === 'inventory' && d.fn.Properties.Description?.includes('command handler'));
  if (!found) throw new Error('no inventory command handler in the templates');
  provideRuntimeSdk(outdir);
  cached = { spec: found.spec, templates, outdir, commandDirectory: found.dir };
  return cached;
}
