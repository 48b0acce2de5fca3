import type { EventEnvelope, EventMetadata, NewEvent } from './envelope';
import { ConcurrencyError } from './errors';
import type { AppendResult, EventStore } from './event-store';
import type { JsonObject } from './json';

/** What a reducer sees: the event's type, schema version, data and position. */
export interface AppliedEvent<TData extends JsonObject = JsonObject> {
  readonly eventType: string;
  readonly eventVersion: number;
  readonly eventSequence: number;
  readonly data: TData;
}

/**
 * Base class of an event-sourced aggregate: state is rebuilt by folding events with `evolve`, and decisions
 * raise new events, applied at once and kept until the repository saves them.
 *
 * ```ts
 * class Counter extends AggregateRoot<{ count: number }> {
 *   static readonly type = 'Counter';
 *   protected initialState() { return { count: 0 }; }
 *   protected evolve(state, event) { return event.eventType === 'Incremented' ? { count: state.count + 1 } : state; }
 *   increment() { this.raise('Incremented', {}); }
 * }
 * ```
 */
export abstract class AggregateRoot<TState extends JsonObject = JsonObject> {
  private currentState: TState;
  private persistedVersion = 0;
  private pending: NewEvent[] = [];

  constructor(public readonly id: string) {
    this.currentState = this.initialState();
  }

  /** The state, including events raised and not yet saved. */
  public get state(): TState {
    return this.currentState;
  }

  /** The stream version this aggregate was loaded at (or last saved at): the next append's expected version. */
  public get version(): number {
    return this.persistedVersion;
  }

  /** True when the aggregate has at least one stored event. */
  public get exists(): boolean {
    return this.persistedVersion > 0 || this.pending.length > 0;
  }

  /** Events raised since load or the last save. */
  public get uncommittedEvents(): ReadonlyArray<NewEvent> {
    return this.pending;
  }

  protected abstract initialState(): TState;
  protected abstract evolve(state: TState, event: AppliedEvent): TState;

  /** Records a new event and applies it to the state. */
  protected raise<TData extends JsonObject>(eventType: string, data: TData, options: { eventVersion?: number; metadata?: EventMetadata } = {}): void {
    const eventVersion = options.eventVersion ?? 1;
    this.currentState = this.evolve(this.currentState, {
      eventType,
      eventVersion,
      eventSequence: this.persistedVersion + this.pending.length + 1,
      data,
    });
    this.pending.push({ eventType, data, eventVersion, metadata: options.metadata });
  }

  /** @internal rebuilds from stored events (after an optional snapshot). */
  public replay(events: ReadonlyArray<EventEnvelope>): void {
    for (const event of events) {
      if (event.eventSequence !== this.persistedVersion + 1) {
        throw new Error(
          `Aggregate '${this.id}': event ${event.eventSequence} cannot follow version ${this.persistedVersion} (the stream has a gap)`,
        );
      }
      this.currentState = this.evolve(this.currentState, event);
      this.persistedVersion = event.eventSequence;
    }
  }

  /** @internal starts from a snapshot's state. */
  public restore(state: TState, version: number): void {
    this.currentState = state;
    this.persistedVersion = version;
    this.pending = [];
  }

  /** @internal marks the pending events as stored at `version`. */
  public markCommitted(version: number): void {
    this.persistedVersion = version;
    this.pending = [];
  }
}

export interface AggregateRepositoryOptions<A extends AggregateRoot> {
  /** The aggregate type recorded on every event (`Project`). */
  readonly aggregateType: string;
  /** Makes an empty aggregate with the given id. */
  readonly create: (id: string) => A;
  /**
   * Snapshotting: keep a snapshot every `every` events, made by reducer version `reducerVersion`. Change the
   * reducer version whenever `evolve` changes meaning, and old snapshots are ignored.
   * @default no snapshots
   */
  readonly snapshots?: { readonly reducerVersion: string; readonly every: number };
  /**
   * How many times `execute` tries a command (load, decide, save) when it keeps losing races.
   * @default 5
   */
  readonly maxAttempts?: number;
}

export interface SaveOptions {
  readonly idempotencyKey?: string;
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly metadata?: EventMetadata;
}

/**
 * Loads and saves aggregates through an EventStore, and runs commands with bounded retry on conflict:
 *
 * ```ts
 * const result = await repository.execute(projectId, (project) => project.rename(body.name), { correlationId });
 * ```
 */
export class AggregateRepository<A extends AggregateRoot> {
  private readonly maxAttempts: number;

  constructor(
    private readonly store: EventStore,
    private readonly options: AggregateRepositoryOptions<A>,
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    if (!Number.isSafeInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new Error(`AggregateRepository: maxAttempts must be an integer >= 1, got ${options.maxAttempts}`);
    }
    if (options.snapshots && (!Number.isSafeInteger(options.snapshots.every) || options.snapshots.every < 1)) {
      throw new Error(`AggregateRepository: snapshots.every must be an integer >= 1, got ${options.snapshots.every}`);
    }
  }

  /**
   * Loads an aggregate: the newest snapshot of the current reducer version, then the events after it.
   * @throws AggregateTypeMismatchError when the id belongs to an aggregate of another type
   */
  public async load(id: string): Promise<A> {
    const aggregate = this.options.create(id);
    let from = 1;
    if (this.options.snapshots) {
      const snapshot = await this.store.loadSnapshot(id, this.options.snapshots.reducerVersion, { aggregateType: this.options.aggregateType });
      if (snapshot) {
        aggregate.restore(snapshot.state, snapshot.version);
        from = snapshot.version + 1;
      }
    }
    aggregate.replay(await this.store.load(id, { fromSequence: from, aggregateType: this.options.aggregateType }));
    return aggregate;
  }

  /**
   * Appends the aggregate's uncommitted events at the version it was loaded at.
   * @throws ConcurrencyError when another writer got there first
   */
  public async save(aggregate: A, options: SaveOptions = {}): Promise<AppendResult> {
    const events = aggregate.uncommittedEvents;
    if (events.length === 0) {
      throw new Error(`Aggregate '${aggregate.id}' has no uncommitted events to save`);
    }
    const before = aggregate.version;
    const result = await this.store.append(aggregate.id, events, {
      ...options,
      aggregateType: this.options.aggregateType,
      expectedVersion: before,
      expectedVersionFromLoad: true,
    });
    aggregate.markCommitted(result.nextExpectedVersion);
    await this.maybeSnapshot(aggregate, before);
    return result;
  }

  /**
   * Runs a command: loads the aggregate, lets `decide` raise events, saves them at the loaded version, and on
   * a ConcurrencyError starts again from a fresh load, up to `maxAttempts` times (with jittered backoff).
   * `decide` must be free of side effects other than raising events: it may run more than once.
   */
  public async execute(
    id: string,
    decide: (aggregate: A) => void | Promise<void>,
    options: SaveOptions = {},
  ): Promise<AppendResult> {
    for (let attempt = 1; ; attempt++) {
      const aggregate = await this.load(id);
      await decide(aggregate);
      try {
        return await this.save(aggregate, options);
      } catch (err) {
        if (!(err instanceof ConcurrencyError) || attempt >= this.maxAttempts) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  private async maybeSnapshot(aggregate: A, before: number): Promise<void> {
    const config = this.options.snapshots;
    if (!config) return;
    // Snapshot when the save crossed a multiple of `every`.
    if (Math.floor(aggregate.version / config.every) <= Math.floor(before / config.every)) return;
    try {
      await this.store.saveSnapshot({
        aggregateId: aggregate.id,
        aggregateType: this.options.aggregateType,
        version: aggregate.version,
        reducerVersion: config.reducerVersion,
        state: aggregate.state,
      });
    } catch (err) {
      // A snapshot is an optimisation: the events are committed, and the next load simply reads more of them.
      console.warn(
        JSON.stringify({ level: 'WARN', message: 'snapshot not saved', aggregateId: aggregate.id, version: aggregate.version, error: String(err) }),
      );
    }
  }
}
