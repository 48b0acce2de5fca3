/**
 * Upcasting in the projections equals upcasting in the fold. Property-based (fast-check): random upcaster
 * declarations (rename, setDefault, remove over a few fields, up to v4) and random stored events (any version up
 * to the current one, any JSON values, null included) are upgraded three ways:
 * - by the declared state fold (`EventUpcaster`, what the command handler and custom handlers use);
 * - by the generated upcast states, executed by aws-local-stepfunctions (the Step Functions engine of the tests
 *   and of Skafu Local);
 * - by `runUpcastStates`, which the rebuild uses on the same definition.
 * A projection reading any one field must see exactly the fold's value of it (or park when the fold has none); a
 * projection storing the whole data must see exactly the fold's data whenever synth accepts it; the rebuild's run
 * must equal the engine's run, state for state.
 * Data keys are identifiers: the fold's copy also drops `__proto__`, `constructor` and `prototype` keys, which no
 * projection can name (ProjectionValue.fromData refuses them) and no fold can read.
 */
import { App, Stack } from 'aws-cdk-lib';
import { StateMachine } from 'aws-local-stepfunctions';
import * as fc from 'fast-check';
import { DomainEventBus, ErrorBus, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, UpcastStep } from '../../src';
import { buildUpcastStates, runUpcastStates, upcastProjectionProblems } from '../../src/projections/upcast-states';
import { EventUpcaster, type JsonObject, type UpcasterSpec } from '../../src/runtime';

const RUNS = Number(process.env.SKAFU_PROPERTY_RUNS ?? 60);
const TYPE = 'ThingChanged';
const FIELDS = ['a', 'b', 'c', 'd'];

const field = fc.constantFrom(...FIELDS);
const primitive = fc.oneof(fc.string({ maxLength: 4 }), fc.integer({ min: -5, max: 5 }), fc.boolean());
const step = fc.oneof(
  fc.tuple(field, field).map(([f, t]) => UpcastStep.rename(f, t)._spec()),
  fc.tuple(field, primitive).map(([f, v]) => UpcastStep.setDefault(f, v)._spec()),
  field.map((f) => UpcastStep.remove(f)._spec()),
);
const declaration = fc
  .integer({ min: 2, max: 4 })
  .chain((current) => fc.tuple(...Array.from({ length: current - 1 }, () => fc.array(step, { minLength: 1, maxLength: 4 }))))
  .map((perVersion): UpcasterSpec[] => perVersion.map((steps, i) => ({ eventType: TYPE, fromVersion: i + 1, steps })));
const value = fc.oneof(fc.constant(null), primitive, fc.array(fc.integer(), { maxLength: 2 }), fc.dictionary(fc.constantFrom('x', 'y'), fc.integer(), { maxKeys: 2 }));
const data = fc.dictionary(fc.constantFrom(...FIELDS, 'e'), value, { maxKeys: 5 });

/** The upcast states alone, ending in two Succeed states: out to the projections, or to the parking. */
function definitionFor(upcasters: UpcasterSpec[], projection: unknown): Record<string, any> {
  const upcast = buildUpcastStates({ eventTypes: [TYPE, 'Other'], upcasters, projections: [{ eventType: TYPE, template: projection }], next: 'RouteByDetailType', park: 'Park' })!;
  return {
    StartAt: upcast.startAt,
    States: { ...upcast.states, RouteByDetailType: { Type: 'Succeed' }, Park: { Type: 'Succeed' } },
  };
}

async function both(definition: Record<string, any>, input: Record<string, any>) {
  input = JSON.parse(JSON.stringify(input));
  const machine = new StateMachine(definition as never, { validationOptions: { noValidate: true } });
  const engine = (await machine.run(input as never).result) as Record<string, any>;
  const rebuild = runUpcastStates(definition as never, input as never);
  // The rebuild runs the same states to the same place, with the same data.
  if (engine.outcome) expect(rebuild.parked).toEqual({ error: engine.outcome.failure.Error, cause: engine.outcome.failure.Cause });
  else expect(rebuild.input).toEqual(engine);
  return engine;
}

test('a projection sees what the fold sees, field by field and whole, on random declarations and events', async () => {
  await fc.assert(
    fc.asyncProperty(declaration, fc.array(fc.tuple(fc.nat(), data), { minLength: 1, maxLength: 6 }), async (upcasters, events) => {
      const current = upcasters.length + 1;
      const fold = new EventUpcaster(upcasters, { [TYPE]: current });
      const perField = FIELDS.map((f) => [f, definitionFor(upcasters, { 'S.$': `$.detail.data.${f}` })] as const);
      const wholeAccepted = upcastProjectionProblems(upcasters, [{ readModel: 'r', eventType: TYPE, template: { 'S.$': 'States.JsonToString($.detail.data)' } }]).length === 0;
      const whole = definitionFor(upcasters, { 'S.$': 'States.JsonToString($.detail.data)' });
      for (const [n, stored] of events) {
        const version = (n % current) + 1;
        const input = { 'detail-type': TYPE, 'detail': { eventType: TYPE, eventVersion: version, data: stored, aggregateId: 'a-1' } };
        const expected = fold.upcast(TYPE, version, stored as JsonObject);
        for (const [f, definition] of perField) {
          const out = await both(definition, JSON.parse(JSON.stringify(input)));
          if (Object.prototype.hasOwnProperty.call(expected.data, f)) {
            expect(out.outcome).toBeUndefined();
            expect(out.detail.data[f]).toEqual(expected.data[f]);
            expect(out.detail.eventVersion).toBe(current);
          } else if (!out.outcome) {
            // The fold has no such field: the projection's own check parks the event (a missing field).
            expect(Object.prototype.hasOwnProperty.call(out.detail.data, f)).toBe(false);
          } else {
            expect(out.outcome.failure.Error).toBe('Skafu.InvalidEvent');
          }
        }
        const all = await both(whole, JSON.parse(JSON.stringify(input)));
        expect(all.outcome).toBeUndefined();
        if (wholeAccepted) expect(all.detail.data).toEqual(expected.data);
        expect(all.detail.eventVersion).toBe(current);
        // Envelope fields other than eventVersion and data are never touched.
        expect(all.detail.aggregateId).toBe('a-1');
      }
    }),
    { numRuns: RUNS },
  );
});

test('versions that cannot be upgraded are parked, the current and newer ones pass as they are, other types are untouched', async () => {
  const upcasters: UpcasterSpec[] = [{ eventType: TYPE, fromVersion: 1, steps: [UpcastStep.rename('title', 'name')._spec()] }];
  const definition = definitionFor(upcasters, { 'S.$': '$.detail.data.name' });
  const run = (detail: Record<string, unknown>, type = TYPE) => both(definition, { 'detail-type': type, 'detail': { eventType: type, ...detail } });
  for (const eventVersion of [0, 1.5, -1, '1', null, undefined, true]) {
    const out = await run({ eventVersion, data: { title: 't' } });
    expect({ eventVersion, error: out.outcome?.failure.Error }).toEqual({ eventVersion, error: 'Skafu.InvalidEventVersion' });
    expect(out.detail.data).toEqual({ title: 't' });
  }
  for (const eventVersion of [2, 3]) expect((await run({ eventVersion, data: { title: 't' } })).detail).toEqual({ eventType: TYPE, eventVersion, data: { title: 't' } });
  expect((await run({ eventVersion: 1, data: { title: 't' } }, 'Other')).detail.data).toEqual({ title: 't' });
  // Stored data that is missing or null upgrades as the fold's `data ?? {}`; data that is not an object is parked.
  expect((await run({ eventVersion: 1 })).detail).toEqual({ eventType: TYPE, eventVersion: 2, data: {} });
  expect((await run({ eventVersion: 1, data: null })).detail.data).toEqual({});
  for (const bad of ['text', 7, false]) expect((await run({ eventVersion: 1, data: bad })).outcome.failure.Error).toBe('Skafu.InvalidEvent');
  // A null value is present: it moves under its new name, as in the fold.
  expect((await run({ eventVersion: 1, data: { title: null, name: 'old' } })).detail.data).toEqual({ title: null, name: null });
  expect(new EventUpcaster(upcasters, { [TYPE]: 2 }).upcast(TYPE, 1, { title: null, name: 'old' }).data).toEqual({ name: null });
});

test('a field the fold deletes parks the projections that read it; later steps see it as absent', async () => {
  // v1 -> v2 renames title to name; v2 -> v3 gives title a new meaning with a default: the ghost of title is absent.
  const upcasters: UpcasterSpec[] = [
    { eventType: TYPE, fromVersion: 1, steps: [UpcastStep.rename('title', 'name')._spec()] },
    { eventType: TYPE, fromVersion: 2, steps: [UpcastStep.setDefault('title', 'untitled')._spec(), UpcastStep.remove('legacy')._spec()] },
  ];
  const fold = new EventUpcaster(upcasters, { [TYPE]: 3 });
  const title = await both(definitionFor(upcasters, { 'S.$': '$.detail.data.title' }), { 'detail-type': TYPE, 'detail': { eventVersion: 1, data: { title: 'Old', legacy: 1 } } });
  expect(fold.upcast(TYPE, 1, { title: 'Old', legacy: 1 }).data).toEqual({ name: 'Old', title: 'untitled' });
  expect(title.detail.data).toMatchObject({ name: 'Old', title: 'untitled' });
  const legacy = await both(definitionFor(upcasters, { 'S.$': '$.detail.data.legacy' }), { 'detail-type': TYPE, 'detail': { eventVersion: 2, data: { legacy: 1 } } });
  expect(legacy.outcome.failure).toMatchObject({ Error: 'Skafu.InvalidEvent', Cause: expect.stringContaining('has no data.legacy (an upcaster deletes it)') });
  // Storing the whole data would keep `legacy`: refused, naming the read model, the type, the version and the field.
  expect(upcastProjectionProblems(upcasters, [{ readModel: 'things', eventType: TYPE, template: { 'S.$': 'States.JsonToString($.detail.data)' } }])).toEqual([
    expect.stringMatching(/^read model things: the projection of ThingChanged stores the whole data \(ProjectionValue\.dataAsJson\(\)\), but upgrading stored v1 events to v3 deletes data\.legacy /),
  ]);
});

test('ProjectionStateMachine refuses upcasters with a missing version, naming the type and the version', () => {
  const stack = new Stack(new App(), 'S');
  const readModel = new ReadModelTable(stack, 'Things', { partitionKey: { name: 'id' } });
  const make = (fromVersions: number[]) => () =>
    new ProjectionStateMachine(stack, `P${fromVersions.join('')}`, {
      domain: 'things',
      eventBus: new DomainEventBus(stack, `B${fromVersions.join('')}`).eventBus,
      errorBus: new ErrorBus(stack, `E${fromVersions.join('')}`),
      projections: [{ eventType: TYPE, readModel, action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') }, attributes: { n: ProjectionValue.fromData('name') } }) }],
      upcasters: fromVersions.map((fromVersion) => ({ eventType: TYPE, fromVersion, steps: [UpcastStep.setDefault('name', 'x')] })),
    });
  expect(make([1, 3])).toThrow(/event ThingChanged is at v4, but stored v2 events cannot be upgraded: declare an upcaster from v2/);
  expect(make([1, 2])).not.toThrow();
});
