/**
 * The Powertools tracer, in a module of its own so that powertools.ts can require it only where tracing may be on
 * (see tracingMayBeOn): esbuild bundles a module reached by `require` as one evaluated when first required, and
 * this module's `import` keeps the tracer's ES module build, which shares @aws-lambda-powertools/commons with the
 * logger and metrics (requiring the tracer package itself would add its CommonJS build and a second commons).
 */
import { Tracer } from '@aws-lambda-powertools/tracer';

export function createTracer(serviceName: string): Tracer {
  return new Tracer({ serviceName });
}
