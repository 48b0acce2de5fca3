/**
 * aws-local-stepfunctions evaluates every JSONPath (each Choice variable, each `.$` parameter) by calling
 * jsonpath-plus's `JSONPath({ path, json, wrap: false })` without `new`. Called that way, jsonpath-plus runs
 * itself with `new` and, when the result is a scalar or undefined (most Choice variables), hands it back by
 * throwing and catching an Error, whose stack trace is the costliest part of interpreting a state: about a third
 * of an execution's time on the example platform's projections.
 *
 * This replaces that export (the module instance aws-local-stepfunctions itself loads) with a function that does
 * exactly the same steps (construct with the same options, then evaluate the same path on the same document) and
 * returns the result directly. Any other call shape (with `new`, positional arguments) goes to the original.
 */
import { createRequire } from 'node:module';

type JsonPathFunction = ((this: unknown, ...args: unknown[]) => unknown) & { __skafuDirect?: boolean };

const load = createRequire(require.resolve('aws-local-stepfunctions'));
const jsonPathPlus = load('jsonpath-plus') as { JSONPath: JsonPathFunction };
type JsonPathClass = new (opts: Record<string, unknown>) => { evaluate(args: Record<string, unknown>): unknown };
const original = jsonPathPlus.JSONPath as unknown as JsonPathClass & JsonPathFunction;

if (!original.__skafuDirect) {
  const direct: JsonPathFunction = function JSONPath(this: unknown, ...args: unknown[]): unknown {
    const [opts] = args;
    if (new.target) return Reflect.construct(original, args, new.target);
    if (args.length !== 1 || !opts || typeof opts !== 'object' || (opts as Record<string, unknown>).autostart === false) {
      return Reflect.apply(original, this, args);
    }
    const options = opts as Record<string, unknown>;
    const evaluator = new original({ ...options, autostart: false });
    // The arguments jsonpath-plus's own autostart passes to evaluate (an options object).
    const evaluateArgs: Record<string, unknown> = { path: options.path };
    if ('json' in options) evaluateArgs.json = options.json;
    return evaluator.evaluate(evaluateArgs);
  };
  direct.__skafuDirect = true;
  Object.setPrototypeOf(direct, original);
  direct.prototype = original.prototype;
  jsonPathPlus.JSONPath = direct;
}
