/**
 * The direct JSONPath call Skafu Local gives aws-local-stepfunctions (local/src/jsonpath-fast.ts) answers exactly
 * what jsonpath-plus answers when called without `new`: scalars, undefined, objects, arrays, several matches,
 * filter expressions and errors; a state machine run through it keeps its Choice and parameter semantics.
 */
import { createRequire } from 'node:module';
import { runDefinition } from '../../local/src/state-machines';

const load = createRequire(require.resolve('aws-local-stepfunctions'));
const { JSONPath } = load('jsonpath-plus') as { JSONPath: any };

/** jsonpath-plus's own answer to a call without `new`: it runs itself with `new` and unwraps a scalar. */
function reference(opts: Record<string, unknown>): unknown {
  const original = Object.getPrototypeOf(JSONPath) as any;
  try {
    return new original(opts);
  } catch (err) {
    if ((err as { avoidNew?: boolean }).avoidNew) return (err as { value: unknown }).value;
    throw err;
  }
}

const doc = { detail: { aggregateId: 'a1', eventSequence: 3, data: { name: 'n', tags: ['x', 'y'], nested: { ok: true }, zero: 0, empty: '' }, list: [{ v: 1 }, { v: 2 }] } };

test.each([
  '$.detail.aggregateId',
  '$.detail.eventSequence',
  '$.detail.data',
  '$.detail.data.tags',
  '$.detail.data.tags[1]',
  '$.detail.data.zero',
  '$.detail.data.empty',
  '$.detail.missing',
  '$.detail.list[*].v',
  '$..v',
  '$.detail.list[?(@.v > 1)]',
  '$',
])('%s: the same answer as jsonpath-plus itself', (path) => {
  expect(JSONPath({ path, json: doc, wrap: false })).toEqual(reference({ path, json: doc, wrap: false }));
  expect(JSONPath({ path, json: doc })).toEqual(reference({ path, json: doc }));
});

test('the replacement is in place, other call shapes go to jsonpath-plus, errors are the same', () => {
  expect(JSONPath.__skafuDirect).toBe(true);
  expect(JSONPath('$.detail.aggregateId', doc)).toEqual(['a1']); // positional arguments
  // With `new`, jsonpath-plus refuses to hand back a scalar (it throws its NewError); an object comes back as is.
  expect(() => new JSONPath({ path: '$.detail.aggregateId', json: doc, wrap: false })).toThrow(expect.objectContaining({ avoidNew: true, value: 'a1' }));
  expect(new JSONPath({ path: '$.detail.data.nested', json: doc, wrap: false })).toEqual({ ok: true });
  expect(() => JSONPath({ path: '$.detail[?(@.v.constructor)]', json: doc, eval: 'nope' })).toThrow();
});

test('a state machine interpreted through it: Choice on present, missing and numeric values, parameters from paths and the context', async () => {
  const definition = {
    StartAt: 'Check',
    States: {
      Check: {
        Type: 'Choice',
        Choices: [
          { Not: { Variable: '$.detail.missing', IsPresent: true }, Next: 'Numeric' },
        ],
        Default: 'Wrong',
      },
      Numeric: { Type: 'Choice', Choices: [{ Variable: '$.detail.eventSequence', NumericGreaterThan: 2, Next: 'Shape' }], Default: 'Wrong' },
      Shape: { Type: 'Pass', Parameters: { 'id.$': '$.detail.aggregateId', 'tags.$': '$.detail.data.tags', 'zero.$': '$.detail.data.zero', 'machine.$': '$$.StateMachine.Name' }, End: true },
      Wrong: { Type: 'Fail', Error: 'Wrong' },
    },
  };
  const out = await runDefinition(definition, doc, {
    client: undefined as never,
    putEvents: () => ({}),
    stateMachine: { id: 'arn:aws:states:us-east-1:000000000000:stateMachine:m', name: 'm' },
    waitMs: 1,
    retryMs: 1,
  });
  expect(out).toEqual({ id: 'a1', tags: ['x', 'y'], zero: 0, machine: 'm' });
});
