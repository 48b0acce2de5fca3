/**
 * Synth refuses declared rules that cannot work, naming the command (or state, upcaster, reaction) and the field;
 * the handler spec of sound rules; and what a custom handler gets.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { ProjectionAction, ProjectionValue, SkafuPlatform, StateUpdate, StateValue, UpcastStep, type DomainDeclaration } from '../../src';
import { inventory } from '../support/inventory';
import { outdirOf, shippedDomainSpec } from '../support/shipped';

const withRules = (change: (d: DomainDeclaration) => DomainDeclaration) => () => {
  const stack = new Stack(new App(), 'S');
  new SkafuPlatform(stack, 'P', { nestedDomainStacks: false }).addDomain(change(inventory));
};
const command = (d: DomainDeclaration, name: string, patch: Record<string, unknown>): DomainDeclaration => ({
  ...d,
  commands: d.commands!.map((c) => (c.name === name ? { ...c, ...patch } : c)),
});
const rules = (d: DomainDeclaration, patch: Record<string, unknown>): DomainDeclaration => ({ ...d, rules: { ...d.rules, ...patch } });

test('guards: syntax, unknown state fields, body fields not in the schema, prototype keys, bad names', () => {
  const guard = (condition: string, name = 'Refused') => (d: DomainDeclaration) => command(d, 'AdjustStock', { guards: [{ name, condition }] });
  expect(withRules(guard('state.stock +'))).toThrow(/command AdjustStock: guards\[0\]\.condition: the expression ends too early \(at character 14\)/);
  expect(withRules(guard('state.stok >= 0'))).toThrow(/command AdjustStock: guards\[0\]\.condition reads state\.stok, which the declared state of Product does not have \(status, stock, adjustments, name, discontinuedAt, locale\)/);
  expect(withRules(guard('body.amount >= 0'))).toThrow(/command AdjustStock: guards\[0\]\.condition reads body\.amount, which bodySchema does not declare/);
  expect(withRules(guard('state.__proto__.x == 1'))).toThrow(/guards\[0\]\.condition: '__proto__' cannot be read/);
  expect(withRules(guard("user.role == 'x'"))).toThrow(/reads user\.role: the user has id and groups/);
  expect(withRules(guard('state.stock >= 0', 'not-pascal'))).toThrow(/guards\[0\]\.name 'not-pascal' must be PascalCase/);
  // No declared state for the aggregate type: a guard on state says so.
  expect(withRules((d) => rules(guard('state.stock >= 0')(d), { aggregates: [] }))).toThrow(/no state is declared for it in rules\.aggregates/);
});

test('upcasters: a version that cannot be upgraded, one upgraded from the future, an unknown type', () => {
  expect(withRules((d) => rules(d, { upcasters: [] }))).toThrow(/event ProductRenamed is at v2, but stored v1 events cannot be upgraded: declare an upcaster from v1/);
  expect(withRules((d) => command(d, 'RenameProduct', { eventVersion: 4 }))).toThrow(/event ProductRenamed is at v4, but stored v2, v3 events cannot be upgraded/);
  expect(withRules((d) => rules(d, { upcasters: [...d.rules!.upcasters!, { eventType: 'ProductRenamed', fromVersion: 2, steps: [UpcastStep.remove('x')] }] }))).toThrow(
    /upcasters\[1\] \(ProductRenamed v2\): ProductRenamed's current version is v2, so there is nothing to upgrade from v2/,
  );
  expect(withRules((d) => rules(d, { upcasters: [...d.rules!.upcasters!, { eventType: 'Nope', fromVersion: 1, steps: [UpcastStep.remove('x')] }] }))).toThrow(/no bundled command emits Nope/);
  // Projections read stored events upgraded (issue 15): reading a field an upcaster adds is fine; storing the whole
  // data of a type whose upcasting deletes a field (the old name of a rename) is refused, as Step Functions cannot
  // delete it from what it stores.
  const projecting = (value: ProjectionValue) => (d: DomainDeclaration): DomainDeclaration => ({
    ...d,
    readModels: [{
      name: 'names',
      partitionKey: { name: 'id' },
      projections: [{ eventType: 'ProductRenamed', action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { n: value } }) }],
    }],
    queries: [],
  });
  expect(withRules(projecting(ProjectionValue.fromData('name')))).not.toThrow();
  expect(withRules(projecting(ProjectionValue.fromData('locale')))).not.toThrow();
  expect(withRules(projecting(ProjectionValue.dataAsJson()))).toThrow(
    /read model names: the projection of ProductRenamed stores the whole data \(ProjectionValue\.dataAsJson\(\)\), but upgrading stored v1 events to v2 deletes data\.title/,
  );
  // Once the old name is given a value again, nothing is deleted: accepted.
  const refilled = (d: DomainDeclaration) => rules(projecting(ProjectionValue.dataAsJson())(d), {
    upcasters: [{ eventType: 'ProductRenamed', fromVersion: 1, steps: [UpcastStep.rename('title', 'name'), UpcastStep.setDefault('locale', 'en'), UpcastStep.setDefault('title', '')] }],
  });
  expect(withRules(refilled)).not.toThrow();
  expect(() => UpcastStep.rename('constructor', 'x')).toThrow(/not a field name/);
  expect(() => UpcastStep.setDefault('x', { a: 1 })).toThrow(/string, a finite number or a boolean/);
});

test('states, ownership, additional events and reactions that cannot work', () => {
  expect(() => StateUpdate.set('__proto__', StateValue.string('x'))).toThrow(/not a field name/);
  expect(() => StateValue.fromData('a.constructor')).toThrow(/prototype key/);
  expect(() => StateValue.fromEnvelope('password')).toThrow(/not an envelope field/);
  expect(withRules((d) => rules(d, { aggregates: [...d.rules!.aggregates!, { aggregateType: 'Order', events: [{ eventType: 'OrderPlaced', updates: [] }] }] }))).toThrow(
    /state of Order: no command of the domain has aggregate type 'Order'; state of Order: events of type 'OrderPlaced' are never emitted/,
  );
  expect(withRules((d) => command(d, 'AdjustStock', { ownership: { overrideGroups: ['Admin team'] } }))).toThrow(/command AdjustStock: ownership.overrideGroups: 'Admin team' is not a group name/);
  expect(withRules((d) => command(d, 'DiscontinueProduct', { additionalEvents: [{ eventType: 'ProductDiscontinued' }] }))).toThrow(/additionalEvents\[0\] repeats the command's eventType/);
  const reaction = d0().rules!.reactions![0];
  expect(withRules((d) => rules(d, { reactions: [{ ...reaction, command: 'Nope' }] }))).toThrow(/reactions\[0\] \(DiscontinueDelistedProduct\): command 'Nope' is not declared in inventory/);
  expect(withRules((d) => rules(d, { reactions: [{ ...reaction, pathParameters: {} }] }))).toThrow(/pathParameters must give productId/);
  expect(withRules((d) => rules(d, { reactions: [{ ...reaction, body: { why: StateValue.string('x') } }] }))).toThrow(/body\.why is not declared by DiscontinueProduct's bodySchema/);
  expect(withRules((d) => rules(d, { reactions: [reaction, { ...reaction, name: 'Twice' }] }))).toThrow(/reactions\[0\] already reacts to suppliers SupplierProductDelisted/);
  // Rules on a command with a custom handler are not silently ignored.
  expect(
    withRules((d) => {
      const stack = new Stack(new App(), 'X');
      const fn = new lambda.Function(stack, 'F', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('x') });
      return command(d, 'AdjustStock', { handler: fn });
    }),
  ).toThrow(/command AdjustStock: guards, ownership and additionalEvents are enforced by the bundled handler/);
});

test('the handler spec of sound rules, shipped in the command handler\'s asset', () => {
  const stack = new Stack(new App(), 'S');
  const domain = new SkafuPlatform(stack, 'P', { nestedDomainStacks: false }).addDomain(inventory);
  const [commands] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function', { Properties: { Description: 'Skafu inventory command handler' } }));
  expect(commands.Properties.Environment.Variables.SKAFU_DOMAIN_SPEC).toBeUndefined();
  const spec = shippedDomainSpec(outdirOf(stack), commands);
  expect(spec.eventVersions).toEqual({ ProductRegistered: 1, StockAdjusted: 1, ProductDiscontinued: 1, ListingRemoved: 1, ProductRenamed: 2 });
  expect(spec.commands.find((c) => c.name === 'AdjustStock')).toMatchObject({
    guards: [
      { name: 'ProductDiscontinued', message: 'a discontinued product cannot change stock', expression: "state.status == 'ACTIVE'" },
      { name: 'InsufficientStock', message: 'stock cannot go below zero', expression: 'state.stock + body.delta >= 0' },
    ],
    ownership: { overrideGroups: ['Admin'] },
  });
  expect(spec.reactions).toEqual([
    {
      name: 'DiscontinueDelistedProduct',
      source: 'skafu.suppliers',
      eventType: 'SupplierProductDelisted',
      command: 'DiscontinueProduct',
      pathParameters: { productId: { kind: 'data', path: ['productId'] } },
      body: { reason: { kind: 'constant', value: 'supplier delisted the product' } },
    },
  ]);
  expect(domain.eventTypes).toContain('ListingRemoved');
  expect(Object.keys(domain.reactionRules)).toEqual(['DiscontinueDelistedProduct']);
});

function d0(): DomainDeclaration {
  return inventory;
}
