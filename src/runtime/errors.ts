/** Base class of every error the Skafu runtime throws on purpose. */
export class SkafuRuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * An append lost an optimistic-concurrency race, or named a version the stream is not at.
 * Retryable: reload the aggregate, decide again, append again.
 */
export class ConcurrencyError extends SkafuRuntimeError {
  public readonly retryable = true;
  constructor(
    public readonly aggregateId: string,
    /** What the caller expected: a version number, 'no-stream' or 'any'. */
    public readonly expectedVersion: number | string,
    /** The stream's version when the conflict was detected. */
    public readonly actualVersion: number,
  ) {
    super(
      `Concurrency conflict on aggregate '${aggregateId}': expected version ${String(expectedVersion)}, actual version ${actualVersion}`,
    );
  }
}

/** One thing wrong with an append or snapshot request, with where it is (`events[2].data.price`). */
export interface ValidationProblem {
  readonly path: string;
  readonly message: string;
}

/** The request was rejected before any write. Not retryable: fix the input. */
export class EventStoreValidationError extends SkafuRuntimeError {
  public readonly retryable = false;
  constructor(public readonly problems: ReadonlyArray<ValidationProblem>) {
    super(
      `Invalid event store request: ${problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ')}`,
    );
  }
}

/** The idempotency key was used before, within its window, for a different request. */
export class IdempotencyKeyReuseError extends SkafuRuntimeError {
  public readonly retryable = false;
  constructor(public readonly idempotencyKey: string) {
    super(`Idempotency key '${idempotencyKey}' was already used for a different request`);
  }
}

/**
 * The stream belongs to another aggregate type: a stream's type is fixed by its first event, and an event of
 * another type is never appended to it (nor is it loaded or snapshotted as another type). Nothing was written.
 * Not retryable. The bundled command handler answers it exactly as for an aggregate that does not exist.
 */
export class AggregateTypeMismatchError extends SkafuRuntimeError {
  public readonly retryable = false;
  constructor(
    public readonly aggregateId: string,
    /** The type the caller named. */
    public readonly expectedType: string,
    /** The type the stream belongs to. */
    public readonly actualType: string,
  ) {
    super(`Aggregate '${aggregateId}' is a ${actualType}, not a ${expectedType}`);
  }
}

/**
 * An append with `expectedVersion: 'any'` kept losing races on a busy stream until its time budget was spent.
 * Nothing was written. Retryable: try again after `retryAfterSeconds`.
 */
export class StreamContentionError extends SkafuRuntimeError {
  public readonly retryable = true;
  constructor(
    public readonly aggregateId: string,
    /** How many attempts were made. */
    public readonly attempts: number,
    /** A hint for the caller (HTTP Retry-After). */
    public readonly retryAfterSeconds: number,
  ) {
    super(`Aggregate '${aggregateId}' is too busy: the append lost ${attempts} races within its time budget; retry after ${retryAfterSeconds} s`);
  }
}
