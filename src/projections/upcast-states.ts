/**
 * Event schema upcasting in the projections: the states that upgrade a stored event of an older schema version
 * to its type's current version before any projection reads it, so that every projection sees what the declared
 * state fold sees (`EventUpcaster` in `runtime/state-fold.ts`, which the command handler and custom handlers use).
 *
 * Why states in the projection's own definition, and not one shared place (the publisher, a Lambda):
 * - The publisher is the platform's, shared by every domain, and publishes the store's events as stored; other
 *   consumers (reactions of other domains, the error bus reports) rely on that. Upcasting there would also leave
 *   the rebuild (which reads the event store directly) and replays of parked events to do it again elsewhere.
 * - A Lambda task per old event would add a function, its role and its failure modes to every projected domain.
 * - Pass and Choice states cost nothing extra in an EXPRESS machine, run the same in AWS, in Skafu Local and in the
 *   tests (aws-local-stepfunctions), and the definition stays the one source of what a projection does: the
 *   rebuild (`rebuild.runtime.ts`) runs these very states with `runUpcastStates` below before it evaluates the
 *   `Apply <type>` templates, so the live projection and a rebuild give identical read models.
 *
 * The states come right after the envelope checks: `Upcast` routes on the detail-type (as `RouteByDetailType`
 * does); an event type with upcasters checks `eventVersion` (1 to current - 1 are upgraded; the current one, or a
 * newer one written while a deployment is under way, goes on as it is; anything else is parked as InvalidEvent);
 * then one Choice or Pass per upcast step, and `eventVersion` is set to the current version. The upgraded event is
 * what every later state sees, parks and reports; a parked event is thus replayed at its current version.
 *
 * What JSONPath cannot do, and how it is kept exact: no intrinsic deletes a key. The generator therefore tracks,
 * per branch, which fields the fold has deleted (`remove`, or the old name of a `rename`) while the Step Functions
 * copy still holds them ("ghosts"): later steps treat a ghost as absent (a `setDefault` on it sets the value
 * unconditionally, a `rename` of it does nothing), and a projection that reads a field which is a ghost at the end
 * parks the event, exactly as it would park an event lacking the field. Only a projection that stores the whole
 * data (`ProjectionValue.dataAsJson()`) could see a ghost: synth refuses that combination (`upcastProjectionProblems`),
 * naming the read model, the event type, the stored version and the field.
 */
import { createHash } from 'node:crypto';
import type { JsonObject, JsonPrimitive } from '../runtime/json';
import type { UpcasterSpec, UpcastStepSpec } from '../runtime/state-fold';

/** The first upcast state (a Choice on the detail-type). */
export const UPCAST_ENTRY = 'Upcast';
const PREFIX = 'Upcast';

/** `Upcast <type> <suffix>`, within the 80 characters a state name may have (a long type is shortened and hashed). */
function stateName(type: string, suffix: string): string {
  const full = `${PREFIX} ${type}${suffix ? ` ${suffix}` : ''}`;
  if (full.length <= 80) return full;
  const hash = createHash('sha256').update(type).digest('hex').slice(0, 8);
  return `${PREFIX} ${type.slice(0, 80 - PREFIX.length - 11 - (suffix ? suffix.length + 1 : 0))}~${hash}${suffix ? ` ${suffix}` : ''}`;
}

/** The part of the data of one event type the projections read. */
export interface DataReads {
  /** Top-level fields of `data` read (by a path into them). */
  readonly fields: ReadonlySet<string>;
  /** Whether the whole `data` is read (`ProjectionValue.dataAsJson()`). */
  readonly whole: boolean;
}

/** What the data of each event type's projections read, from their rendered write templates. */
export function dataReads(projections: ReadonlyArray<{ eventType: string; template: unknown }>): Map<string, DataReads> {
  const out = new Map<string, { fields: Set<string>; whole: boolean }>();
  const scan = (eventType: string, value: unknown): void => {
    if (typeof value === 'string') {
      const reads = out.get(eventType) ?? { fields: new Set<string>(), whole: false };
      out.set(eventType, reads);
      for (const m of value.matchAll(/\$\.detail\.data(?:\.([A-Za-z0-9_]+))?/g)) {
        if (m[1] === undefined) reads.whole = true;
        else reads.fields.add(m[1]);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v) => scan(eventType, v));
    } else if (value !== null && typeof value === 'object') {
      Object.values(value).forEach((v) => scan(eventType, v));
    }
  };
  for (const p of projections) scan(p.eventType, p.template);
  return out;
}

/** The current version of each upcast event type: one above its newest upcaster. */
export function currentVersions(upcasters: readonly UpcasterSpec[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const u of upcasters) out.set(u.eventType, Math.max(out.get(u.eventType) ?? 1, u.fromVersion + 1));
  return out;
}

/** The steps from `fromVersion` to the current version, in order (assumes `upcastProblems` found none missing). */
function chain(upcasters: readonly UpcasterSpec[], eventType: string): { steps: UpcastStepSpec[]; firstStep: Map<number, number>; current: number } {
  const current = currentVersions(upcasters).get(eventType)!;
  const steps: UpcastStepSpec[] = [];
  const firstStep = new Map<number, number>();
  for (let v = 1; v < current; v++) {
    firstStep.set(v, steps.length);
    steps.push(...(upcasters.find((u) => u.eventType === eventType && u.fromVersion === v)?.steps ?? []));
  }
  return { steps, firstStep, current };
}

/**
 * Walks the steps from `index` with the set of fields the fold has deleted (`ghosts`), the way the generated
 * states do, branch by branch; `visit` sees every end of the chain with its ghosts.
 */
function walk(
  steps: readonly UpcastStepSpec[],
  index: number,
  ghosts: ReadonlySet<string>,
  visit: (ghosts: ReadonlySet<string>) => void,
  budget = { left: 4096 },
): void {
  if (--budget.left < 0) throw new Error('the upcasters have too many branches to be generated as states');
  if (index === steps.length) return visit(ghosts);
  const s = steps[index];
  const without = (f: string) => new Set([...ghosts].filter((g) => g !== f));
  if (s.op === 'remove') return walk(steps, index + 1, new Set([...ghosts, s.field]), visit, budget);
  if (s.op === 'default') return walk(steps, index + 1, without(s.field), visit, budget);
  // rename: nothing when the field is absent (or a ghost); otherwise the new name holds its value, the old is a ghost.
  if (s.to === s.field || ghosts.has(s.field)) return walk(steps, index + 1, ghosts, visit, budget);
  walk(steps, index + 1, ghosts, visit, budget);
  walk(steps, index + 1, new Set([...without(s.to!), s.field]), visit, budget);
}

/** Versions without an upcaster (their stored events could not be upgraded), each naming the event type and version. */
export function upcastVersionProblems(upcasters: readonly UpcasterSpec[]): string[] {
  const errors: string[] = [];
  for (const [type, version] of currentVersions(upcasters)) {
    const declared = upcasters.filter((u) => u.eventType === type).map((u) => u.fromVersion);
    const bad = declared.find((v) => !Number.isSafeInteger(v) || v < 1);
    if (bad !== undefined) {
      errors.push(`event ${type}: an upcaster's fromVersion (${bad}) must be an integer >= 1`);
      continue;
    }
    const missing = Array.from({ length: version - 1 }, (_v, i) => i + 1).filter((v) => !declared.includes(v));
    if (missing.length > 0) errors.push(`event ${type} is at v${version}, but stored v${missing.join(', v')} events cannot be upgraded: declare an upcaster from v${missing.join(', v')}`);
    const twice = declared.find((v, i) => declared.indexOf(v) !== i);
    if (twice !== undefined) errors.push(`event ${type}: the upcaster from v${twice} is declared twice`);
  }
  return errors;
}

/**
 * Projections that store the whole data (`ProjectionValue.dataAsJson()`) of a type whose upcasting deletes a field
 * Step Functions cannot delete; each problem names the read model, the event type, the stored version and the field.
 * Call it on upcasters without version problems.
 */
export function upcastProjectionProblems(
  upcasters: readonly UpcasterSpec[],
  projections: ReadonlyArray<{ readModel: string; eventType: string; template: unknown }>,
): string[] {
  const errors: string[] = [];
  const current = currentVersions(upcasters);
  for (const p of projections) {
    if (!current.has(p.eventType) || !dataReads([p]).get(p.eventType)?.whole) continue;
    const { steps, firstStep, current: to } = chain(upcasters, p.eventType);
    for (const [from, index] of firstStep) {
      const left = new Set<string>();
      walk(steps, index, new Set(), (ghosts) => ghosts.forEach((g) => left.add(g)));
      if (left.size > 0) {
        errors.push(
          `read model ${p.readModel}: the projection of ${p.eventType} stores the whole data (ProjectionValue.dataAsJson()), but upgrading stored ` +
            `v${from} events to v${to} deletes data.${[...left].join(', data.')} (UpcastStep.remove, or the old name of a rename), which a Step Functions ` +
            'projection cannot delete from the data it stores: project the fields one by one, or give the deleted field a value with UpcastStep.setDefault',
        );
        break;
      }
    }
  }
  return errors;
}

/** Every problem of upcasters for projections: versions first, then what the projections read. */
export function upcastProblems(
  upcasters: readonly UpcasterSpec[],
  projections: ReadonlyArray<{ readModel: string; eventType: string; template: unknown }>,
): string[] {
  const versions = upcastVersionProblems(upcasters);
  return versions.length > 0 ? versions : upcastProjectionProblems(upcasters, projections);
}

/** Inputs of the upcast states. */
export interface UpcastStatesInput {
  readonly eventTypes: readonly string[];
  readonly upcasters: readonly UpcasterSpec[];
  /** The rendered write templates of the projections, per event type (for the fields they read). */
  readonly projections: ReadonlyArray<{ eventType: string; template: unknown }>;
  /** Where an event goes once it is at its current version (`RouteByDetailType`). */
  readonly next: string;
  /** The state that parks an event from `$.outcome` (`{ failure, park: { errorType, reason } }`). */
  readonly park: string;
}

/**
 * The upcast states, or undefined when no routed event type has upcasters. The definition sends every event
 * with a valid envelope to `startAt`.
 */
export function buildUpcastStates(input: UpcastStatesInput): { startAt: string; states: Record<string, unknown> } | undefined {
  const types = input.eventTypes.filter((t) => input.upcasters.some((u) => u.eventType === t));
  if (types.length === 0) return undefined;
  const problems = upcastVersionProblems(input.upcasters);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const reads = dataReads(input.projections);
  const states: Record<string, unknown> = {};
  const parkWith = (name: string, error: string, cause: string) => {
    states[name] = {
      Type: 'Pass',
      Parameters: { failure: { Error: error, Cause: cause.slice(0, 1000) }, park: { errorType: 'ProjectionFailed', reason: 'InvalidEvent' } },
      ResultPath: '$.outcome',
      Next: input.park,
    };
    return name;
  };

  for (const type of types) {
    const { steps, firstStep, current } = chain(input.upcasters, type);
    const readFields = reads.get(type)?.fields ?? new Set<string>();
    const named = new Map<string, string>();
    let variants = 0;
    const data = (f: string) => `$.detail.data.${f}`;
    // The state that runs step `index` with these ghosts (memoized: branches that meet share their states).
    const stepState = (index: number, ghosts: ReadonlySet<string>): string => {
      const key = `${index}|${[...ghosts].sort().join(',')}`;
      const known = named.get(key);
      if (known) return known;
      const suffix = `${index === steps.length ? `to v${current}` : `step ${index + 1}`}${ghosts.size > 0 ? `.${++variants}` : ''}`;
      const name = stateName(type, suffix);
      const sub = (what: string) => stateName(type, `${suffix} ${what}`);
      named.set(key, name);
      if (index === steps.length) {
        // The end: the event is at the current version. A field the fold deleted but a projection reads parks the
        // event, as a missing field does.
        const lost = [...ghosts].filter((g) => readFields.has(g));
        const next = lost.length === 0
          ? input.next
          : parkWith(sub('lacks field'), 'Skafu.InvalidEvent', `${type} upgraded to v${current} has no data.${lost.join(', data.')} (an upcaster deletes it), which the projections of ${type} read`);
        states[name] = { Type: 'Pass', Comment: `${type} is now at v${current}`, Result: current, ResultPath: '$.detail.eventVersion', Next: next };
        return name;
      }
      const s = steps[index];
      const after = (g: ReadonlySet<string>) => stepState(index + 1, g);
      const without = (f: string) => new Set([...ghosts].filter((g) => g !== f));
      if (s.op === 'remove') {
        // Nothing to do in the data (a key cannot be deleted): the field is a ghost from here on.
        named.delete(key);
        const target = after(new Set([...ghosts, s.field]));
        named.set(key, target);
        return target;
      }
      if (s.op === 'default') {
        // A field deleted by an earlier step is missing for the fold: the default applies unconditionally.
        const setName = ghosts.has(s.field) ? name : sub('set');
        const comment = `${s.field} defaults to ${JSON.stringify(s.value)}`;
        if (s.value) {
          states[setName] = { Type: 'Pass', Comment: comment, Result: s.value as JsonPrimitive, ResultPath: data(s.field), Next: after(without(s.field)) };
        } else {
          // A falsy Result ('', 0, false) is taken for no Result by aws-local-stepfunctions 3.0.0 (Skafu Local and
          // the tests), which would pass the whole input on: the value goes through an object instead.
          states[setName] = { Type: 'Pass', Comment: comment, Result: { value: s.value as JsonPrimitive }, ResultPath: '$.skafuUpcastValue', Next: sub('set value') };
          states[sub('set value')] = { Type: 'Pass', InputPath: '$.skafuUpcastValue.value', ResultPath: data(s.field), Next: after(without(s.field)) };
        }
        if (!ghosts.has(s.field)) {
          states[name] = {
            Type: 'Choice',
            Comment: `setDefault ${s.field}: when it is missing or null`,
            Choices: [
              { Not: { Variable: data(s.field), IsPresent: true }, Next: sub('set') },
              { Variable: data(s.field), IsNull: true, Next: sub('set') },
            ],
            Default: after(ghosts),
          };
        }
        return name;
      }
      // rename: when the field is present (and not a ghost), its value moves to the new name.
      if (s.to === s.field || ghosts.has(s.field)) {
        named.delete(key);
        const target = after(ghosts);
        named.set(key, target);
        return target;
      }
      states[sub('move')] = {
        Type: 'Pass',
        Comment: `${s.field} is now ${s.to}`,
        InputPath: data(s.field),
        ResultPath: data(s.to!),
        Next: after(new Set([...without(s.to!), s.field])),
      };
      states[name] = {
        Type: 'Choice',
        Comment: `rename ${s.field} to ${s.to}: when it is present`,
        Choices: [{ Variable: data(s.field), IsPresent: true, Next: sub('move') }],
        Default: after(ghosts),
      };
      return name;
    };

    const invalidVersion = parkWith(
      stateName(type, 'invalid version'),
      'Skafu.InvalidEventVersion',
      `a ${type} event's eventVersion must be an integer from 1 to ${current} (older ones are upgraded to v${current}); newer ones are projected as they are`,
    );
    const invalidData = parkWith(stateName(type, 'invalid data'), 'Skafu.InvalidEvent', `a stored ${type} event's data is not an object: it cannot be upgraded`);
    const fromVersion: Array<Record<string, unknown>> = [];
    for (const [v, index] of firstStep) {
      const start = stepState(index, new Set());
      const checkData = stateName(type, `v${v}`);
      const emptyData = stateName(type, `v${v} no data`);
      // The fold upgrades `data ?? {}`; data that is not an object cannot be upgraded (the event store holds objects).
      states[emptyData] = { Type: 'Pass', Result: {} as JsonObject, ResultPath: '$.detail.data', Next: start };
      states[checkData] = {
        Type: 'Choice',
        Choices: [
          { Not: { Variable: '$.detail.data', IsPresent: true }, Next: emptyData },
          { Variable: '$.detail.data', IsNull: true, Next: emptyData },
          { Variable: '$.detail.data', IsString: true, Next: invalidData },
          { Variable: '$.detail.data', IsNumeric: true, Next: invalidData },
          { Variable: '$.detail.data', IsBoolean: true, Next: invalidData },
        ],
        Default: start,
      };
      fromVersion.push({ Variable: '$.detail.eventVersion', NumericEquals: v, Next: checkData });
    }
    // Choice rules are tried in order and the first that matches wins: presence and type come first.
    states[stateName(type, '')] = {
      Type: 'Choice',
      Comment: `${type} events of v1 to v${current - 1} are upgraded to v${current}`,
      Choices: [
        { Not: { Variable: '$.detail.eventVersion', IsPresent: true }, Next: invalidVersion },
        { Not: { Variable: '$.detail.eventVersion', IsNumeric: true }, Next: invalidVersion },
        { Variable: '$.detail.eventVersion', NumericGreaterThanEquals: current, Next: input.next },
        ...fromVersion,
      ],
      Default: invalidVersion,
    };
  }
  states[UPCAST_ENTRY] = {
    Type: 'Choice',
    Comment: 'Stored events of older schema versions are upgraded to the current one before they are projected',
    Choices: types.map((t) => ({ Variable: '$.detail-type', StringEquals: t, Next: stateName(t, '') })),
    Default: input.next,
  };
  return { startAt: UPCAST_ENTRY, states };
}

// ---- Running the upcast states outside Step Functions (the rebuild) ----

type Json = unknown;

function read(path: string, doc: Json): { found: boolean; value?: Json } {
  if (path === '$') return { found: true, value: doc };
  if (!path.startsWith('$.')) throw new Error(`unsupported path ${path}`);
  let value = doc;
  for (const segment of path.slice(2).split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.prototype.hasOwnProperty.call(value, segment)) return { found: false };
    value = (value as Record<string, Json>)[segment];
  }
  return { found: true, value };
}

function write(path: string, doc: Json, value: Json): Json {
  if (path === '$') return value;
  const segments = path.slice(2).split('.');
  let target = doc as Record<string, Json>;
  for (const segment of segments.slice(0, -1)) {
    const next = Object.prototype.hasOwnProperty.call(target, segment) ? target[segment] : undefined;
    if (next === null || typeof next !== 'object' || Array.isArray(next)) throw Object.assign(new Error(`ResultPath ${path} does not fit the input`), { name: 'States.ResultPathMatchFailure' });
    target = next as Record<string, Json>;
  }
  Object.defineProperty(target, segments[segments.length - 1], { value, enumerable: true, writable: true, configurable: true });
  return doc;
}

function holds(rule: Record<string, any>, doc: Json): boolean {
  if (rule.Not) return !holds(rule.Not, doc);
  if (rule.And) return (rule.And as Array<Record<string, any>>).every((r) => holds(r, doc));
  if (rule.Or) return (rule.Or as Array<Record<string, any>>).some((r) => holds(r, doc));
  const { found, value } = read(rule.Variable, doc);
  if ('IsPresent' in rule) return found === rule.IsPresent;
  if (!found) throw Object.assign(new Error(`the path ${rule.Variable} does not exist`), { name: 'States.Runtime' });
  if ('IsNull' in rule) return (value === null) === rule.IsNull;
  if ('IsString' in rule) return (typeof value === 'string') === rule.IsString;
  if ('IsNumeric' in rule) return (typeof value === 'number') === rule.IsNumeric;
  if ('IsBoolean' in rule) return (typeof value === 'boolean') === rule.IsBoolean;
  if ('StringEquals' in rule) return value === rule.StringEquals;
  if ('NumericEquals' in rule) return typeof value === 'number' && value === rule.NumericEquals;
  if ('NumericGreaterThanEquals' in rule) return typeof value === 'number' && value >= rule.NumericGreaterThanEquals;
  throw new Error(`unsupported Choice rule ${JSON.stringify(rule)}`);
}

/**
 * Runs a projection definition's upcast states on an input (`{ 'detail-type', detail }`), as Step Functions runs
 * them: the input the rest of the definition sees, or the failure the event would be parked with. A definition
 * without upcast states leaves the input as it is.
 */
export function runUpcastStates(
  definition: { States: Record<string, any> },
  input: { 'detail-type': string; 'detail': unknown },
): { input: Record<string, any>; parked?: undefined } | { parked: { error: string; cause: string }; input?: undefined } {
  if (!definition.States[UPCAST_ENTRY]) return { input };
  let doc = JSON.parse(JSON.stringify(input)) as Record<string, any>;
  let name = UPCAST_ENTRY;
  let parked = false;
  for (let n = 0; n < 10_000; n++) {
    if (name !== UPCAST_ENTRY && !name.startsWith(`${PREFIX} `)) {
      // Out of the upcast states: into the projections, or (after a state set the outcome) to the parking.
      return parked ? { parked: { error: String(doc.outcome.failure.Error), cause: String(doc.outcome.failure.Cause) } } : { input: doc };
    }
    const state = definition.States[name];
    if (state.Type === 'Choice') {
      const match = (state.Choices as Array<Record<string, any>>).find((c) => holds(c, doc));
      name = match ? match.Next : state.Default;
      continue;
    }
    if (state.Type !== 'Pass') throw new Error(`unexpected ${state.Type} state '${name}' among the upcast states`);
    let value: Json;
    if ('Result' in state) {
      value = JSON.parse(JSON.stringify(state.Result));
    } else if ('Parameters' in state) {
      value = JSON.parse(JSON.stringify(state.Parameters));
    } else {
      const r = read(state.InputPath ?? '$', doc);
      if (!r.found) throw Object.assign(new Error(`InputPath ${state.InputPath} does not exist`), { name: 'States.Runtime' });
      value = JSON.parse(JSON.stringify(r.value));
    }
    doc = write(state.ResultPath ?? '$', doc, value) as Record<string, any>;
    parked ||= state.ResultPath === '$.outcome';
    name = state.Next;
  }
  throw new Error('the upcast states do not end');
}
