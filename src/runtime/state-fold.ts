/**
 * The declared aggregate state: how a domain's events fold into a small JSON state, with event schema upcasting.
 * The bundled command handler evaluates guards and ownership over it, and a custom handler gets the very same
 * fold from here (`DeclaredStateFold.fromEnvironment('Project')` and `loadDeclaredState`), so both paths agree.
 */
import { canonicalJson, sha256 } from './canonical-json';
import { decodeDomainSpec } from './domain-spec';
import type { EventEnvelope } from './envelope';
import type { EventStore } from './event-store';
import type { JsonObject, JsonPrimitive, JsonValue } from './json';

/** Envelope fields a fold can read; `userId` is the `metadata.userId` of the event. */
export type StateEnvelopeField = 'aggregateId' | 'eventId' | 'eventType' | 'eventVersion' | 'eventSequence' | 'timestamp' | 'correlationId' | 'causationId' | 'userId';
export const STATE_ENVELOPE_FIELDS: readonly StateEnvelopeField[] = ['aggregateId', 'eventId', 'eventType', 'eventVersion', 'eventSequence', 'timestamp', 'correlationId', 'causationId', 'userId'];

/** A value a state update uses: a path in the event's data, an envelope field, or a constant. */
export type StateValueSpec =
  | { readonly kind: 'data'; readonly path: readonly string[]; readonly prefix?: string }
  | { readonly kind: 'envelope'; readonly field: StateEnvelopeField }
  | { readonly kind: 'constant'; readonly value: JsonPrimitive };

/**
 * One change to the state: `set` the field to the value; `add` the (numeric) value to the field (a field that is
 * not a number counts as 0; a value that is not a number adds nothing); `append` the value to the field's list (a
 * field that is not a list starts empty); `unset` removes the field.
 */
export interface StateUpdateSpec {
  readonly op: 'set' | 'add' | 'append' | 'unset';
  readonly field: string;
  readonly value?: StateValueSpec;
}

export interface EventFoldSpec {
  readonly eventType: string;
  readonly updates: readonly StateUpdateSpec[];
}

/** The declared state of an aggregate type. Events without a fold leave the state as it is. */
export interface AggregateStateSpec {
  readonly aggregateType: string;
  readonly initial: JsonObject;
  readonly events: readonly EventFoldSpec[];
  /** Save a snapshot every N events (0: never). */
  readonly snapshotEvery: number;
}

/**
 * One step of an upgrade from `fromVersion` to `fromVersion + 1` of an event type's data: `rename` a top-level
 * field to `to` (when present), give a missing field a `default` value, or `remove` a field.
 */
export interface UpcastStepSpec {
  readonly op: 'rename' | 'default' | 'remove';
  readonly field: string;
  readonly to?: string;
  readonly value?: JsonPrimitive;
}

export interface UpcasterSpec {
  readonly eventType: string;
  readonly fromVersion: number;
  readonly steps: readonly UpcastStepSpec[];
}

/** The state as the handler sees it: the declared fields, the stream version, and the aggregate's creator. */
export interface FoldedState {
  readonly state: JsonObject;
  /** The stream version the state reflects (0: no event). */
  readonly version: number;
  /** The `metadata.userId` of the first event (who created the aggregate), or null. */
  readonly owner: string | null;
  /** The aggregate type of the stream's first event, or null when the stream is empty. */
  readonly aggregateType: string | null;
  /** The source (`skafu.<domain>`) of the stream's first event, or null. */
  readonly source: string | null;
}

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** True for a field name a state or an upcast may write (an identifier, and never a prototype key). */
export function isSafeField(name: unknown): name is string {
  return typeof name === 'string' && FIELD.test(name) && !FORBIDDEN.has(name);
}

/** Reads an own property of a plain object (never a prototype's). */
function own(value: JsonValue | undefined, key: string): JsonValue | undefined {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) return undefined;
  if (FORBIDDEN.has(key) || !Object.prototype.hasOwnProperty.call(value, key)) return undefined;
  return (value as JsonObject)[key];
}

/** A copy of a JSON object as a plain object whose keys are only own data properties (prototype keys dropped). */
function plainCopy(value: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.keys(value)) {
    if (FORBIDDEN.has(key)) continue;
    Object.defineProperty(out, key, { value: value[key], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** What the fold needs of an event. */
export type FoldableEvent = Pick<EventEnvelope, 'eventType' | 'eventVersion' | 'eventSequence' | 'data'> &
Partial<Pick<EventEnvelope, 'aggregateId' | 'aggregateType' | 'eventId' | 'timestamp' | 'correlationId' | 'causationId' | 'source' | 'metadata'>>;

/** Upgrades events of older schema versions to the current one, step by step. */
export class EventUpcaster {
  private readonly steps = new Map<string, UpcasterSpec>();
  private readonly current = new Map<string, number>();

  /**
   * @param upcasters one per (event type, from version)
   * @param currentVersions the current schema version of each event type (types not listed are not upgraded)
   */
  constructor(upcasters: readonly UpcasterSpec[], currentVersions: Readonly<Record<string, number>>) {
    for (const u of upcasters) {
      for (const s of u.steps) {
        if (!isSafeField(s.field) || (s.op === 'rename' && !isSafeField(s.to))) throw new Error(`upcaster ${u.eventType} v${u.fromVersion}: '${s.field}' is not a field name`);
      }
      this.steps.set(`${u.eventType}#${u.fromVersion}`, u);
    }
    for (const [type, version] of Object.entries(currentVersions)) this.current.set(type, version);
  }

  /** The upgrade steps of an event type, oldest first (part of a fold's snapshot key). */
  public stepsFor(eventType: string): UpcasterSpec[] {
    return [...this.steps.values()].filter((u) => u.eventType === eventType).sort((a, b) => a.fromVersion - b.fromVersion);
  }

  /** The current version of an event type, when declared. */
  public currentVersion(eventType: string): number | undefined {
    return this.current.get(eventType);
  }

  /**
   * The event's data at the current version of its type.
   * @throws Error when the stored version is newer than the current one, or a step is missing
   */
  public upcast(eventType: string, eventVersion: number, data: JsonObject): { eventVersion: number; data: JsonObject } {
    const target = this.current.get(eventType);
    if (target === undefined || eventVersion === target) return { eventVersion, data };
    if (eventVersion > target) throw new Error(`${eventType} v${eventVersion} is newer than the v${target} this handler knows`);
    let out = plainCopy(data);
    for (let v = eventVersion; v < target; v++) {
      const step = this.steps.get(`${eventType}#${v}`);
      if (!step) throw new Error(`${eventType} v${v} cannot be upgraded: no upcaster from v${v}`);
      out = applySteps(out, step.steps);
    }
    return { eventVersion: target, data: out };
  }
}

function applySteps(data: JsonObject, steps: readonly UpcastStepSpec[]): JsonObject {
  const out = plainCopy(data);
  for (const s of steps) {
    const has = Object.prototype.hasOwnProperty.call(out, s.field);
    if (s.op === 'remove') {delete out[s.field];} else if (s.op === 'default') {
      if (!has || out[s.field] === null) out[s.field] = s.value ?? null;
    } else if (has) {
      const value = out[s.field];
      delete out[s.field];
      out[s.to!] = value;
    }
  }
  return out;
}

/** The declared fold of one aggregate type. */
export class DeclaredStateFold {
  /**
   * The fold of an aggregate type as declared in the domain: EventSourcedDomain sets the declared states,
   * upcasters and event versions in a custom command handler's `SKAFU_DOMAIN_SPEC` (the bundled handlers read the
   * whole spec from their code asset instead).
   */
  public static fromEnvironment(aggregateType: string): DeclaredStateFold {
    const encoded = process.env.SKAFU_DOMAIN_SPEC;
    if (!encoded) throw new Error('DeclaredStateFold.fromEnvironment needs SKAFU_DOMAIN_SPEC (set by EventSourcedDomain)');
    const spec = decodeDomainSpec(encoded);
    const state = (spec.aggregates ?? []).find((a) => a.aggregateType === aggregateType);
    if (!state) throw new Error(`the domain ${spec.domain} declares no state for aggregate type '${aggregateType}'`);
    return new DeclaredStateFold(state, new EventUpcaster(spec.upcasters ?? [], spec.eventVersions ?? {}));
  }

  /** Changes whenever the declaration changes: snapshots of another declaration are ignored. */
  public readonly reducerVersion: string;
  private readonly folds = new Map<string, readonly StateUpdateSpec[]>();

  constructor(
    public readonly spec: AggregateStateSpec,
    public readonly upcaster: EventUpcaster = new EventUpcaster([], {}),
  ) {
    for (const f of spec.events) {
      for (const u of f.updates) if (!isSafeField(u.field)) throw new Error(`state of ${spec.aggregateType}: '${u.field}' is not a field name`);
      this.folds.set(f.eventType, f.updates);
    }
    for (const key of Object.keys(spec.initial)) if (!isSafeField(key)) throw new Error(`state of ${spec.aggregateType}: '${key}' is not a field name`);
    // Snapshots are keyed by everything that shapes the state: the fold, and each folded type's version and upcasts.
    const versions = [...new Set(spec.events.map((e) => e.eventType))].map((t) => [t, upcaster.currentVersion(t) ?? null, upcaster.stepsFor(t)]);
    this.reducerVersion = `decl-${sha256(canonicalJson([spec.initial, spec.events, versions])).slice(0, 24)}`;
  }

  /** The state of an aggregate with no event. */
  public initial(): FoldedState {
    return { state: plainCopy(this.spec.initial), version: 0, owner: null, aggregateType: null, source: null };
  }

  /** Applies one event (upgraded to its current schema version first). */
  public apply(folded: FoldedState, event: FoldableEvent): FoldedState {
    const first = event.eventSequence === 1;
    const { eventVersion, data } = this.upcaster.upcast(event.eventType, event.eventVersion, event.data ?? {});
    const updates = this.folds.get(event.eventType) ?? [];
    let state = folded.state;
    if (updates.length > 0) {
      state = plainCopy(state);
      for (const u of updates) {
        const value = u.value === undefined ? null : this.value(u.value, { ...event, eventVersion, data });
        const current = own(state, u.field);
        switch (u.op) {
          case 'set':
            state[u.field] = value;
            break;
          case 'add': {
            const base = typeof current === 'number' ? current : 0;
            const sum = base + (typeof value === 'number' ? value : 0);
            state[u.field] = Number.isFinite(sum) ? sum : base;
            break;
          }
          case 'append':
            state[u.field] = [...(Array.isArray(current) ? current : []), value];
            break;
          case 'unset':
            delete state[u.field];
            break;
        }
      }
    }
    const userId = event.metadata?.userId;
    return {
      state,
      version: event.eventSequence,
      owner: first ? (typeof userId === 'string' && userId !== '' ? userId : null) : folded.owner,
      aggregateType: first ? event.aggregateType ?? null : folded.aggregateType,
      source: first ? event.source ?? null : folded.source,
    };
  }

  /**
   * Folds a stream (or the rest of it after `from`).
   * @throws Error when an event does not follow the previous one (a gap)
   */
  public fold(events: ReadonlyArray<FoldableEvent>, from: FoldedState = this.initial()): FoldedState {
    let folded = from;
    for (const e of events) {
      if (e.eventSequence !== folded.version + 1) throw new Error(`${this.spec.aggregateType}: event ${e.eventSequence} cannot follow version ${folded.version}`);
      folded = this.apply(folded, e);
    }
    return folded;
  }

  private value(v: StateValueSpec, event: FoldableEvent): JsonValue {
    if (v.kind === 'constant') return v.value;
    if (v.kind === 'envelope') {
      if (v.field === 'userId') return typeof event.metadata?.userId === 'string' ? event.metadata.userId : null;
      const value = (event as unknown as Record<string, JsonValue | undefined>)[v.field];
      return value === undefined ? null : value;
    }
    let cur: JsonValue | undefined = event.data;
    for (const seg of v.path) cur = own(cur, seg);
    return withPrefix(cur === undefined ? null : cur, v.prefix);
  }
}

/** A prefixed value: `prefix` + a string or number; any other value reads as null. */
export function withPrefix(value: JsonValue, prefix: string | undefined): JsonValue {
  if (prefix === undefined) return value;
  return typeof value === 'string' || typeof value === 'number' ? `${prefix}${value}` : null;
}

/**
 * Loads an aggregate's declared state through the EventStore: the newest snapshot of this declaration (when
 * the declaration snapshots), then the events after it.
 */
export async function loadDeclaredState(store: EventStore, aggregateId: string, fold: DeclaredStateFold): Promise<FoldedState> {
  let from = fold.initial();
  if (fold.spec.snapshotEvery > 0) {
    // A snapshot is an optimisation: if it cannot be read (throttled, not granted), fold the whole stream.
    const snapshot = await store.loadSnapshot(aggregateId, fold.reducerVersion).catch((err: unknown) => {
      console.warn(JSON.stringify({ level: 'WARN', message: 'snapshot not read', aggregateId, error: String(err) }));
      return undefined;
    });
    const s = snapshot?.state as { state?: JsonObject; owner?: string | null; aggregateType?: string | null; source?: string | null } | undefined;
    if (snapshot && s && s.state && typeof s.state === 'object') {
      from = {
        state: plainCopy(s.state),
        version: snapshot.version,
        owner: s.owner ?? null,
        aggregateType: s.aggregateType ?? null,
        source: s.source ?? null,
      };
    }
  }
  return fold.fold(await store.load(aggregateId, { fromSequence: from.version + 1 }), from);
}

/**
 * Saves a snapshot when the stream crossed a multiple of `snapshotEvery` between `before` and `after`. A failed
 * snapshot is only logged: the events are committed, and the next load reads more of them.
 */
export async function maybeSaveDeclaredSnapshot(
  store: EventStore,
  aggregateId: string,
  fold: DeclaredStateFold,
  before: number,
  after: FoldedState,
): Promise<void> {
  const every = fold.spec.snapshotEvery;
  if (every <= 0 || Math.floor(after.version / every) <= Math.floor(before / every)) return;
  try {
    await store.saveSnapshot({
      aggregateId,
      aggregateType: fold.spec.aggregateType,
      version: after.version,
      reducerVersion: fold.reducerVersion,
      state: { state: after.state, owner: after.owner, aggregateType: after.aggregateType, source: after.source },
    });
  } catch (err) {
    console.warn(JSON.stringify({ level: 'WARN', message: 'snapshot not saved', aggregateId, version: after.version, error: String(err) }));
  }
}
