/**
 * Property-based tests (fast-check) of the declared rules' engine: the declared fold equals a hand-written
 * reducer on random event sequences (upcasting included); guards never let an invalid state be reached over
 * random command sequences; the guard evaluator is total, bounded and blind to prototypes.
 */
import * as fc from 'fast-check';
import { CommandRules } from '../../src/domain/command-rules';
import { StateUpdate, StateValue, UpcastStep } from '../../src/domain/rules';
import { commandRulesSpec, domainRulesSpec } from '../../src/domain/rules-synth';
import {
  DeclaredStateFold,
  EventUpcaster,
  GuardSyntaxError,
  evaluateGuard,
  parseGuard,
  type CommandSpec,
  type DomainSpec,
  type EventEnvelope,
  type JsonObject,
} from '../../src/runtime';

const RUNS = Number(process.env.SKAFU_PROPERTY_RUNS ?? 200);

// The inventory fold, declared...
const declared = domainRulesSpec(
  [{ name: 'Rename', path: 'p', aggregateType: 'Product', eventType: 'ProductRenamed', eventVersion: 2 }],
  {
    aggregates: [
      {
        aggregateType: 'Product',
        initialState: { status: 'NONE', stock: 0, tags: [] },
        events: [
          { eventType: 'Registered', updates: [StateUpdate.set('status', StateValue.string('ACTIVE')), StateUpdate.set('name', StateValue.fromData('name')), StateUpdate.add('stock', StateValue.fromData('qty'))] },
          { eventType: 'Adjusted', updates: [StateUpdate.add('stock', StateValue.fromData('delta')), StateUpdate.append('tags', StateValue.fromData('tag'))] },
          { eventType: 'Discontinued', updates: [StateUpdate.set('status', StateValue.string('DISCONTINUED')), StateUpdate.unset('name'), StateUpdate.set('by', StateValue.fromEnvelope('userId'))] },
          { eventType: 'ProductRenamed', updates: [StateUpdate.set('name', StateValue.fromData('name')), StateUpdate.set('locale', StateValue.fromData('locale'))] },
        ],
      },
    ],
    upcasters: [{ eventType: 'ProductRenamed', fromVersion: 1, steps: [UpcastStep.rename('title', 'name'), UpcastStep.setDefault('locale', 'en')] }],
  },
);

// ...and written by hand.
type Stored = { eventType: string; eventVersion: number; data: Record<string, any>; metadata: Record<string, any> };
function reducer(state: Record<string, any>, e: Stored) {
  const s = { ...state };
  const has = (k: string) => Object.prototype.hasOwnProperty.call(e.data, k);
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  switch (e.eventType) {
    case 'Registered':
      s.status = 'ACTIVE';
      s.name = has('name') ? e.data.name : null;
      s.stock = num(s.stock) + num(has('qty') ? e.data.qty : null);
      break;
    case 'Adjusted':
      s.stock = num(s.stock) + num(has('delta') ? e.data.delta : null);
      s.tags = [...(Array.isArray(s.tags) ? s.tags : []), has('tag') ? e.data.tag : null];
      break;
    case 'Discontinued':
      s.status = 'DISCONTINUED';
      delete s.name;
      s.by = typeof e.metadata.userId === 'string' ? e.metadata.userId : null;
      break;
    case 'ProductRenamed': {
      // v1 -> v2 renames title to name when title is there (it then wins over a stray name).
      const name = e.eventVersion === 1 && has('title') ? e.data.title : has('name') ? e.data.name : null;
      const locale = e.eventVersion === 1 ? (e.data.locale ?? 'en') : has('locale') ? e.data.locale : null;
      s.name = name;
      s.locale = locale;
      break;
    }
  }
  return s;
}

const value = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 5 }), fc.constant(null), fc.boolean());
const data = fc.dictionary(fc.constantFrom('name', 'qty', 'delta', 'tag', 'title', 'locale', '__proto__', 'constructor', 'other'), value, { maxKeys: 5 });
const event = fc.record({
  eventType: fc.constantFrom('Registered', 'Adjusted', 'Discontinued', 'ProductRenamed', 'Unrelated'),
  v1: fc.boolean(),
  data,
  userId: fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }),
});

test('the declared fold equals the hand-written reducer on random event sequences (v1 and v2 events)', () => {
  const fold = new DeclaredStateFold(declared.aggregates![0], new EventUpcaster(declared.upcasters!, declared.eventVersions!));
  fc.assert(
    fc.property(fc.array(event, { maxLength: 30 }), (events) => {
      const envelopes = events.map((e, i) => ({
        eventType: e.eventType,
        eventVersion: e.eventType === 'ProductRenamed' && !e.v1 ? 2 : 1,
        eventSequence: i + 1,
        data: JSON.parse(JSON.stringify(e.data)) as JsonObject, // as stored: __proto__ is an own key
        metadata: e.userId ? { userId: e.userId } : {},
      }));
      const expected = envelopes.reduce((s, e) => reducer(s, e), { status: 'NONE', stock: 0, tags: [] } as Record<string, any>);
      const actual = fold.fold(envelopes as unknown as EventEnvelope[]);
      expect(actual.state).toEqual(expected);
      expect(actual.version).toBe(events.length);
      expect(actual.owner).toBe(events.length > 0 ? envelopes[0].metadata.userId ?? null : null);
      expect(Object.getPrototypeOf(actual.state)).toBe(Object.prototype);
      expect(({} as any).polluted).toBeUndefined();
    }),
    { numRuns: RUNS, seed: 20261130 },
  );
});

test('guards never let an invalid state be reached over random command sequences (stock >= 0, nothing after discontinue)', async () => {
  // The guards and fold of the inventory, through CommandRules, over an in-memory store with the EventStore's
  // load/append contract (optimistic concurrency on the loaded version).
  const guarded: CommandSpec[] = [
    { name: 'Adjust', guards: [{ name: 'Discontinued', expression: "state.status == 'ACTIVE'" }, { name: 'Insufficient', expression: 'state.stock + body.delta >= 0' }] },
    { name: 'Discontinue', guards: [{ name: 'Already', expression: "state.status != 'DISCONTINUED'" }] },
  ].map((c) => ({
    name: c.name,
    method: 'POST',
    resource: `/${c.name}`,
    aggregateType: 'Product',
    eventType: c.name === 'Adjust' ? 'Adjusted' : 'Discontinued',
    eventVersion: 1,
    aggregateId: { kind: 'path', name: 'id' },
    precondition: 'must-exist',
    schema: {},
    extraData: {},
    maxBodyBytes: 1000,
    ...commandRulesSpec({ name: c.name, path: 'x', aggregateType: 'Product', eventType: 'x', guards: c.guards.map((g) => ({ name: g.name, condition: g.expression })) }),
  }));
  const spec: DomainSpec = { domain: 'inventory', commands: guarded, queries: [], aggregates: declared.aggregates };
  const fold = new DeclaredStateFold(declared.aggregates![0]);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 20 }),
      fc.array(fc.oneof(fc.record({ c: fc.constant('Adjust'), delta: fc.integer({ min: -15, max: 15 }) }), fc.record({ c: fc.constant('Discontinue'), delta: fc.constant(0) })), { maxLength: 25 }),
      async (initial, commands) => {
        const stream: EventEnvelope[] = [{ eventType: 'Registered', eventVersion: 1, eventSequence: 1, aggregateId: 'p', aggregateType: 'Product', source: 'skafu.inventory', data: { qty: initial }, metadata: {} } as unknown as EventEnvelope];
        const store = {
          load: async (_id: string, o: { fromSequence?: number } = {}) => stream.filter((e) => e.eventSequence >= (o.fromSequence ?? 1)),
          append: async (_id: string, events: any[], o: any) => {
            if (o.expectedVersion !== stream.length) throw new Error('conflict');
            const added = events.map((e, i) => ({ ...e, eventSequence: stream.length + i + 1, aggregateType: 'Product', source: 'skafu.inventory', metadata: e.metadata ?? {} }));
            stream.push(...added);
            const last = stream.length;
            return { events: added, firstSequence: added[0].eventSequence, lastSequence: last, nextExpectedVersion: last, idempotentReplay: false };
          },
        };
        const rules = new CommandRules(spec, store as never);
        let discontinuedAt = 0;
        for (const cmd of commands) {
          const command = guarded.find((g) => g.name === cmd.c)!;
          const body: JsonObject = cmd.c === 'Adjust' ? { delta: cmd.delta } : {};
          await rules
            .run({ command, aggregateId: 'p', body, events: [{ eventType: command.eventType, data: body }], user: { id: 'u', groups: [] }, system: false, fingerprint: 'f', append: {} })
            .catch((err: Error & { status?: number }) => expect(err.status).toBe(409));
          const state = fold.fold(stream).state;
          expect(state.stock).toBeGreaterThanOrEqual(0);
          if (state.status === 'DISCONTINUED' && discontinuedAt === 0) discontinuedAt = stream.length;
        }
        // Nothing after the (single) discontinuation.
        if (discontinuedAt > 0) expect(stream.length).toBe(discontinuedAt);
        expect(stream.filter((e) => e.eventType === 'Discontinued').length).toBeLessThanOrEqual(1);
      },
    ),
    { numRuns: RUNS, seed: 20261130 },
  );
});

describe('guard expressions', () => {
  const scope = (state: unknown, body: unknown) => ({ state, body, user: { id: 'u', groups: ['Developer'] }, stream: { version: 1, exists: true, owner: 'u' } }) as never;

  test('the documented forms', () => {
    const cases: Array<[string, boolean]> = [
      ["state.status == 'ACTIVE'", true],
      ['state.stock + body.delta >= 0', true],
      ['state.stock + body.delta * 2 >= 0', false],
      ['-state.stock < 0 && !(body.delta > 100)', true],
      ["contains(user.groups, 'Developer') || stream.version > 10", true],
      ['size(state.tags) == 2 && exists(state.status) && !exists(state.missing)', true],
      ['stream.owner == user.id && stream.exists', true],
      ['state.missing == null', true],
      ['"a" < "b"', true],
    ];
    for (const [expression, expected] of cases) expect([expression, evaluateGuard(parseGuard(expression), scope({ status: 'ACTIVE', stock: 5, tags: [1, 2] }, { delta: -3 }))]).toEqual([expression, expected]);
  });

  test('type errors and missing numbers fail closed (throw, never true)', () => {
    for (const expression of ['state.missing + 1 >= 0', 'state.status + 1 > 0', 'state.stock && true', "state.stock < 'x'", 'size(state.stock) > 0', '!state.stock', '1 * 1e308']) {
      let result: boolean | Error;
      try {
        result = evaluateGuard(parseGuard(expression), scope({ status: 'ACTIVE', stock: 5 }, {}));
      } catch (err) {
        result = err as Error;
      }
      expect([expression, result === true]).toEqual([expression, false]);
    }
  });

  test('syntax errors name the problem and its position; prototype keys and unknown roots are refused', () => {
    const refused: Array<[string, RegExp]> = [
      ['state.__proto__.polluted == 1', /'__proto__' cannot be read \(at character 7\)/],
      ['body.constructor == 1', /'constructor' cannot be read/],
      ['state.x.prototype', /'prototype' cannot be read/],
      ['process.exit(1)', /unknown function|'process' is not a value/],
      ['state.a < state.b < state.c', /comparisons do not chain/],
      ['state.a ==', /ends too early/],
      ["state.a == 'x", /unterminated string/],
      ['state.a = 1', /unexpected character '='/],
      ['', /empty/],
      ['('.repeat(40) + '1' + ')'.repeat(40), /nests over 32 levels/],
      [Array.from({ length: 300 }, () => '1').join('+'), /over 256 parts/],
      ['x'.repeat(1100), /over 1024 characters/],
      ['exists(1)', /exists\(\) takes a path/],
    ];
    for (const [expression, message] of refused) {
      expect(() => parseGuard(expression)).toThrow(GuardSyntaxError);
      expect(() => parseGuard(expression)).toThrow(message);
    }
  });

  test('fuzz: any string parses or throws GuardSyntaxError; any parsed guard evaluates to a boolean or GuardEvaluationError; prototypes stay out', () => {
    const alphabet = fc.constantFrom(...'state.body.user.stream.__proto__ constructor ( ) ! - + * == != < <= > >= && || \' " 1 2.5 true null size( contains( exists( , status stock x'.split(' '));
    const hostile = fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'status', 'stock', 'x', 'toString'), fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 25 }), hostile, hostile, (parts, state, body) => {
        const src = parts.join(' ');
        let tree;
        try {
          tree = parseGuard(src);
        } catch (err) {
          expect(err).toBeInstanceOf(GuardSyntaxError);
          return;
        }
        const s = JSON.parse(JSON.stringify(state));
        const b = JSON.parse(JSON.stringify(body));
        try {
          expect(typeof evaluateGuard(tree, scope(s, b))).toBe('boolean');
        } catch (err) {
          expect((err as Error).name).toBe('GuardEvaluationError');
        }
        expect(({} as any).polluted).toBeUndefined();
      }),
      { numRuns: RUNS * 5, seed: 20261130 },
    );
    // A path never reads inherited members: `state.toString` of an empty state is null, not a function.
    expect(evaluateGuard(parseGuard('state.toString == null && body.hasOwnProperty == null'), scope({}, {}))).toBe(true);
  });
});

test('a changed upcaster changes the snapshot key: old snapshots are never restored into a different fold', () => {
  const again = (steps: UpcastStep[]) => new DeclaredStateFold(declared.aggregates![0], new EventUpcaster([{ eventType: 'ProductRenamed', fromVersion: 1, steps: steps.map((s) => s._spec()) }], declared.eventVersions!)).reducerVersion;
  const base = new DeclaredStateFold(declared.aggregates![0], new EventUpcaster(declared.upcasters!, declared.eventVersions!)).reducerVersion;
  expect(again([UpcastStep.rename('title', 'name'), UpcastStep.setDefault('locale', 'en')])).toBe(base);
  expect(again([UpcastStep.rename('title', 'name'), UpcastStep.setDefault('locale', 'fr')])).not.toBe(base);
});
