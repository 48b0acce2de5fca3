/**
 * Powertools (logger, tracer, metrics) for the bundled handlers. Internal: bundled by esbuild into each handler,
 * never a dependency of the package, never exported from the runtime subpath.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';

export interface Powertools {
  readonly logger: Logger;
  readonly tracer: Tracer;
  readonly metrics: Metrics;
}

export function powertools(defaultServiceName: string): Powertools {
  const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? defaultServiceName;
  return {
    logger: new Logger({ serviceName }),
    tracer: new Tracer({ serviceName }),
    metrics: new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Skafu', serviceName }),
  };
}

/** Traces an AWS SDK v3 client when running under X-Ray (a no-op elsewhere). */
export function traced<T>(tools: Powertools, client: T): T {
  return tools.tracer.captureAWSv3Client(client as never) as T;
}
