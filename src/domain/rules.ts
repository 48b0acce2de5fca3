/**
 * Business rules of a declared domain, as data: the aggregate state each aggregate type folds from its events,
 * guards over that state and the body, ownership, several events per command, event schema upcasting, and
 * reactions to other domains' events. The bundled command handler enforces all of them; synth refuses a
 * declaration that cannot work, naming the command (or state, upcaster, reaction) and the field.
 */
import type { DataSource } from './declarations';
import {
  STATE_ENVELOPE_FIELDS,
  isSafeField,
  type StateEnvelopeField,
  type StateUpdateSpec,
  type StateValueSpec,
  type UpcastStepSpec,
} from '../runtime/state-fold';

const PATH = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$/;

function checkPath(where: string, path: string): string[] {
  if (!PATH.test(path)) throw new Error(`${where}: '${path}' is not a dotted path of identifiers`);
  const segments = path.split('.');
  const bad = segments.find((s) => !isSafeField(s));
  if (bad) throw new Error(`${where}: '${bad}' cannot be read (prototype key)`);
  return segments;
}

function checkField(where: string, field: string): void {
  if (!isSafeField(field)) throw new Error(`${where}: '${field}' is not a field name (an identifier, not __proto__, constructor or prototype)`);
}

/** A value a state update (or a reaction's command input) reads from an event. */
export abstract class StateValue {
  /**
   * A field of the event's `data`, by dotted path (`delta`, `owner.id`); a missing path reads as null. With a
   * prefix, a string or number value reads as prefix + value (`'alerts-'` + `projectId`), and any other as null:
   * useful to give a reacting command's aggregate an id of its own.
   */
  public static fromData(path: string, prefix?: string): StateValue {
    if (prefix !== undefined && !/^[A-Za-z0-9._:-]{1,32}$/.test(prefix)) {
      throw new Error(`StateValue.fromData: prefix '${prefix}' must be 1-32 letters, digits or . _ : -`);
    }
    return StateValue.of({ kind: 'data', path: checkPath('StateValue.fromData', path), ...(prefix === undefined ? {} : { prefix }) });
  }
  /**
   * A field of the envelope: aggregateId, eventId, eventType, eventVersion, eventSequence, timestamp,
   * correlationId, causationId, or userId (the event's `metadata.userId`).
   */
  public static fromEnvelope(field: string): StateValue {
    if (!(STATE_ENVELOPE_FIELDS as readonly string[]).includes(field)) {
      throw new Error(`StateValue.fromEnvelope: '${field}' is not an envelope field (${STATE_ENVELOPE_FIELDS.join(', ')})`);
    }
    return StateValue.of({ kind: 'envelope', field: field as StateEnvelopeField });
  }
  /**
   * A constant string.
   * @param value the string
   */
  public static string(value: string): StateValue {
    return StateValue.of({ kind: 'constant', value });
  }
  /**
   * A constant number. Throws if the number is not finite.
   * @param value the number (finite)
   */
  public static number(value: number): StateValue {
    if (!Number.isFinite(value)) throw new Error(`StateValue.number: ${value} is not a finite number`);
    return StateValue.of({ kind: 'constant', value });
  }
  /**
   * A constant boolean.
   * @param value the boolean
   */
  public static boolean(value: boolean): StateValue {
    return StateValue.of({ kind: 'constant', value });
  }
  private static of(spec: StateValueSpec): StateValue {
    return new (class extends StateValue {
      public _spec(): StateValueSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): StateValueSpec;
}

/** One change an event makes to the aggregate's declared state (a top-level field). */
export abstract class StateUpdate {
  /** Sets the field to the value (`status` to `'ARCHIVED'`, `name` to `data.name`). */
  public static set(field: string, value: StateValue): StateUpdate {
    checkField('StateUpdate.set', field);
    return StateUpdate.of({ op: 'set', field, value: value._spec() });
  }
  /** Adds the value to the field (a field that is not a number counts as 0; a value that is not a number adds 0). */
  public static add(field: string, value: StateValue): StateUpdate {
    checkField('StateUpdate.add', field);
    return StateUpdate.of({ op: 'add', field, value: value._spec() });
  }
  /** Appends the value to the field's list (a field that is not a list starts empty). Keep such lists short. */
  public static append(field: string, value: StateValue): StateUpdate {
    checkField('StateUpdate.append', field);
    return StateUpdate.of({ op: 'append', field, value: value._spec() });
  }
  /** Removes the field. */
  public static unset(field: string): StateUpdate {
    checkField('StateUpdate.unset', field);
    return StateUpdate.of({ op: 'unset', field });
  }
  private static of(spec: StateUpdateSpec): StateUpdate {
    return new (class extends StateUpdate {
      public _spec(): StateUpdateSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): StateUpdateSpec;
}

/** How one event type changes the state. */
export interface EventFold {
  /** The event type whose events apply the updates. */
  readonly eventType: string;
  /** Applied in order. */
  readonly updates: StateUpdate[];
}

/**
 * The declared state of an aggregate type, folded from its stream by the command handler before guards and
 * ownership are checked (and by `DeclaredStateFold` in custom handlers).
 */
export interface AggregateStateDefinition {
  /** The aggregate type (`Product`), as the commands declare it. */
  readonly aggregateType: string;
  /**
   * The state before the first event: top-level fields and JSON values.
   * @default {}
   */
  readonly initialState?: { [field: string]: any };
  /** How each event type changes the state; event types not listed leave it as it is. */
  readonly events: EventFold[];
  /**
   * Save a snapshot every N events, so long streams load fast (snapshots are keyed by a hash of this
   * declaration: changing it ignores older snapshots).
   * @default 0 - no snapshots
   */
  readonly snapshotEvery?: number;
}

/**
 * A condition that must hold before a command appends its events, written in the guard expression form over
 * `{ state, body, user, stream }` (for example `state.status == 'ACTIVE' && state.stock + body.delta >= 0`; the
 * form is documented in the README). A failed guard answers 409 with the guard's name as `error`, and nothing is
 * written. An expression that cannot be evaluated (a missing number, a wrong type) fails the guard.
 */
export interface CommandGuard {
  /** The error name answered when the guard fails (`ProductDiscontinued`). */
  readonly name: string;
  /** The condition that must be true. */
  readonly condition: string;
  /**
   * The message answered when the guard fails.
   * @default - "<command> refused: <condition>"
   */
  readonly message?: string;
}

/** Object-level authorization of a command: only the aggregate's creator may run it. */
export interface CommandOwnership {
  /**
   * Groups whose members may run the command on any aggregate (`Admin`).
   * @default - none
   */
  readonly overrideGroups?: string[];
}

/** Object-level authorization of a query over a read model item's owner attribute. */
export interface QueryOwnership {
  /** The read model attribute holding the owner's user id (`ownerId`). */
  readonly ownerAttribute: string;
  /**
   * Groups whose members read every item (`Admin`).
   * @default - none
   */
  readonly overrideGroups?: string[];
}

/** An event a command appends after its first one, in the same atomic commit. */
export interface AdditionalEvent {
  /** The event's type. */
  readonly eventType: string;
  /**
   * The event's schema version (an integer >= 1).
   * @default 1
   */
  readonly eventVersion?: number;
  /**
   * Whether the body is part of the event's data.
   * @default true
   */
  readonly includeBody?: boolean;
  /**
   * Values added to the event's data.
   * @default - none
   */
  readonly extraData?: { [field: string]: DataSource };
}

/** One step of an event schema upgrade (top-level fields of `data`). */
export abstract class UpcastStep {
  /** Renames a field (when present). */
  public static rename(field: string, to: string): UpcastStep {
    checkField('UpcastStep.rename', field);
    checkField('UpcastStep.rename', to);
    return UpcastStep.of({ op: 'rename', field, to });
  }
  /** Gives a missing (or null) field a value: a string, number or boolean. */
  public static setDefault(field: string, value: any): UpcastStep {
    checkField('UpcastStep.setDefault', field);
    if (!(typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)))) {
      throw new Error(`UpcastStep.setDefault(${field}): the value must be a string, a finite number or a boolean`);
    }
    return UpcastStep.of({ op: 'default', field, value });
  }
  /** Removes a field. */
  public static remove(field: string): UpcastStep {
    checkField('UpcastStep.remove', field);
    return UpcastStep.of({ op: 'remove', field });
  }
  private static of(spec: UpcastStepSpec): UpcastStep {
    return new (class extends UpcastStep {
      public _spec(): UpcastStepSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): UpcastStepSpec;
}

/**
 * How stored events of an older schema version are upgraded to the next one, when they are folded into state (by
 * the bundled command handler and `DeclaredStateFold`) and when they are projected (the domain's projection state
 * machine upgrades them before any projection reads them, and so does a rebuild). Every version below an event
 * type's current one (its command's `eventVersion`) needs one. Stored events are never rewritten.
 */
export interface EventUpcasterDefinition {
  /** The event type upgraded (one a bundled command of the domain emits). */
  readonly eventType: string;
  /** The version upgraded from (to `fromVersion + 1`). */
  readonly fromVersion: number;
  /** The changes made to the event's `data`, applied in order (at least one). */
  readonly steps: UpcastStep[];
}

/**
 * An event of another domain that issues one of this domain's commands: an EventBridge rule in this domain's
 * stack invokes the command handler, with the command id derived from the event id (a redelivered event writes
 * nothing twice) and the causation id set to the event id.
 */
export interface ReactionDefinition {
  /** The reaction's name (PascalCase, unique in the domain). */
  readonly name: string;
  /** The emitting domain's name (`projects`: events from `skafu.projects`). */
  readonly sourceDomain: string;
  /** The event type reacted to (`ProjectArchived`). */
  readonly eventType: string;
  /** The name of the bundled command of this domain the event issues. */
  readonly command: string;
  /**
   * An EventBridge content pattern on the event's `data` (for example `{ reason: ['shutdown'] }`).
   * @default - every event of the type
   */
  readonly dataPattern?: { [field: string]: any };
  /**
   * The command's path parameters, read from the event (every parameter of the command's path).
   * @default - none
   */
  readonly pathParameters?: { [name: string]: StateValue };
  /**
   * The command's body, read from the event.
   * @default - an empty body
   */
  readonly body?: { [field: string]: StateValue };
}

/** The domain-level rules of a declared domain. */
export interface DomainRules {
  /**
   * The declared state of each aggregate type, folded from its events.
   * @default - no declared state (guards see an empty `state`)
   */
  readonly aggregates?: AggregateStateDefinition[];
  /**
   * How stored events of older schema versions are upgraded, in the declared state and in the projections. Every
   * older version of an emitted event type needs one. A projection storing the whole data
   * (`ProjectionValue.dataAsJson()`) of a type whose upcasting deletes a field (`remove`, or the old name of a
   * `rename`) is refused at synth: Step Functions cannot delete a field from the data it stores.
   * @default - none
   */
  readonly upcasters?: EventUpcasterDefinition[];
  /**
   * Events of other domains that issue this domain's commands.
   * @default - none
   */
  readonly reactions?: ReactionDefinition[];
}
