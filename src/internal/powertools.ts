/**
 * Powertools (logger, tracer, metrics) for the bundled handlers. Internal: bundled by esbuild into each handler,
 * never a dependency of the package, never exported from the runtime subpath.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Tracer } from '@aws-lambda-powertools/tracer';

export interface Powertools {
  readonly logger: Logger;
  /** Undefined where tracing is off for certain (see tracingMayBeOn): the tracer is then never loaded. */
  readonly tracer?: Tracer;
  readonly metrics: Metrics;
}

/**
 * False where the Powertools tracer would disable itself for certain: `POWERTOOLS_TRACE_ENABLED` is `false` (any
 * case), or `AWS_EXECUTION_ENV` is empty, i.e. not in Lambda (the tracer's own rules, `setTracingEnabled` in
 * @aws-lambda-powertools/tracer 2.x). Everywhere else the tracer is loaded and decides for itself (it also turns
 * off under SAM CLI and Amplify mocks), so what is traced does not change.
 *
 * Why not always load it: its X-Ray SDK creates a continuation-local-storage namespace when it is loaded, an
 * async hook with a destroy callback on every promise, which slowed each invocation of the query handler by
 * 0.5-1.2 ms (of 5-7 ms, against DynamoDB Local) even with tracing off. Skafu Local runs the handlers with
 * tracing off (it emulates no X-Ray), and so may a user's own stage.
 */
export function tracingMayBeOn(env: Record<string, string | undefined> = process.env): boolean {
  if ((env.POWERTOOLS_TRACE_ENABLED ?? '').trim().toLowerCase() === 'false') return false;
  return (env.AWS_EXECUTION_ENV ?? '').trim() !== '';
}

/**
 * The tracer module, loaded with this module where tracing may be on, so that in Lambda the X-Ray SDK still loads
 * during the function's init (before the first request, and within provisioned concurrency's warm-up), as it did
 * when it was imported at the top; undefined elsewhere. The environment decides once here, as Lambda's does not
 * change within an execution environment; powertools() decides again, and loads it then if needed.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
let tracerModule: typeof import('./tracer') | undefined = tracingMayBeOn() ? require('./tracer') : undefined;

export function powertools(defaultServiceName: string): Powertools {
  const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? defaultServiceName;
  return {
    logger: new Logger({ serviceName }),
    tracer: tracingMayBeOn() ? loadTracer(serviceName) : undefined,
    metrics: new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Skafu', serviceName }),
  };
}

/**
 * A tracer, from the module loaded at init or, if the environment only now allows tracing, loaded here. A
 * `require` of a module of our own (tracer.ts): esbuild bundles it as a module evaluated when first required.
 */
function loadTracer(serviceName: string): Tracer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  tracerModule ??= require('./tracer') as typeof import('./tracer');
  return tracerModule.createTracer(serviceName);
}

/** Traces an AWS SDK v3 client when running under X-Ray (a no-op elsewhere). */
export function traced<T>(tools: Powertools, client: T): T {
  return tools.tracer ? (tools.tracer.captureAWSv3Client(client as never) as T) : client;
}
