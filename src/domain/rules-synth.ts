/**
 * Synth side of the domain rules (not exported from the package): validation naming the command and field, and
 * the handler spec. See rules.ts for the declarations.
 */
import type { DataSource } from './declarations';
import type { AdditionalEvent, CommandGuard, CommandOwnership, DomainRules } from './rules';
import type { DataSourceSpec, ReactionSpec } from '../runtime/domain-spec';
import { GUARD_ROOTS, guardPaths, parseGuard, GuardSyntaxError } from '../runtime/guards';
import { isSafeField, type AggregateStateSpec, type UpcasterSpec } from '../runtime/state-fold';

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const TYPE = /^[A-Z][A-Za-z0-9]{0,127}$/;

/** What of a command the rules read (a structural subset of CommandDefinition). */
export interface RuledCommand {
  readonly name: string;
  readonly path: string;
  readonly aggregateType: string;
  readonly eventType: string;
  readonly eventVersion?: number;
  readonly bodySchema?: { [key: string]: any };
  readonly handler?: unknown;
  readonly guards?: CommandGuard[];
  readonly ownership?: CommandOwnership;
  readonly additionalEvents?: AdditionalEvent[];
}

/** The events each command emits, with their versions. */
function emitted(commands: readonly RuledCommand[]): Array<{ command: string; eventType: string; eventVersion: number }> {
  return commands.flatMap((c) => [
    { command: c.name, eventType: c.eventType, eventVersion: c.eventVersion ?? 1 },
    ...(c.additionalEvents ?? []).map((e) => ({ command: c.name, eventType: e.eventType, eventVersion: e.eventVersion ?? 1 })),
  ]);
}

/** Every problem of the rules, each naming what it is about; empty when the rules are sound. */
export function validateRules(
  commands: readonly RuledCommand[],
  rules: DomainRules | undefined,
  domainEventTypes: readonly string[],
  domain: string,
): string[] {
  const errors: string[] = [];
  const aggregates = rules?.aggregates ?? [];
  const events = emitted(commands);
  const knownTypes = new Set([...events.map((e) => e.eventType), ...domainEventTypes]);

  // Event versions: one current version per type, and a way up from every older one.
  const current = new Map<string, number>();
  for (const e of events) {
    if (!Number.isSafeInteger(e.eventVersion) || e.eventVersion < 1) errors.push(`command ${e.command}: eventVersion of ${e.eventType} must be an integer >= 1`);
    const seen = current.get(e.eventType);
    if (seen !== undefined && seen !== e.eventVersion) errors.push(`command ${e.command}: ${e.eventType} is emitted at v${e.eventVersion} here and at v${seen} by another command; one event type has one current version`);
    current.set(e.eventType, Math.max(seen ?? 0, e.eventVersion));
  }
  const upcasters = rules?.upcasters ?? [];
  const keys = new Set<string>();
  upcasters.forEach((u, i) => {
    const where = `upcasters[${i}] (${u.eventType} v${u.fromVersion})`;
    const target = current.get(u.eventType);
    if (target === undefined) errors.push(`${where}: no bundled command emits ${u.eventType}`);
    if (!Number.isSafeInteger(u.fromVersion) || u.fromVersion < 1) errors.push(`${where}: fromVersion must be an integer >= 1`);
    else if (target !== undefined && u.fromVersion >= target) errors.push(`${where}: ${u.eventType}'s current version is v${target}, so there is nothing to upgrade from v${u.fromVersion}`);
    if (keys.has(`${u.eventType}#${u.fromVersion}`)) errors.push(`${where}: declared twice`);
    keys.add(`${u.eventType}#${u.fromVersion}`);
    if (u.steps.length === 0) errors.push(`${where}: steps is empty`);
  });
  for (const [type, version] of current) {
    const missing = Array.from({ length: version - 1 }, (_v, i) => i + 1).filter((v) => !keys.has(`${type}#${v}`));
    if (missing.length > 0) {
      errors.push(`event ${type} is at v${version}, but stored v${missing.join(', v')} events cannot be upgraded: declare an upcaster from v${missing.join(', v')}`);
    }
  }

  // Declared states.
  const aggregateTypes = new Set(commands.map((c) => c.aggregateType));
  const stateFields = new Map<string, Set<string>>();
  const stateTypes = new Set<string>();
  for (const a of aggregates) {
    const where = `state of ${a.aggregateType}`;
    if (stateTypes.has(a.aggregateType)) errors.push(`${where}: declared twice`);
    stateTypes.add(a.aggregateType);
    if (!aggregateTypes.has(a.aggregateType)) errors.push(`${where}: no command of the domain has aggregate type '${a.aggregateType}'`);
    const fields = new Set<string>();
    for (const [k, v] of Object.entries(a.initialState ?? {})) {
      if (!isSafeField(k)) errors.push(`${where}: initialState.${k} is not a field name`);
      if (!isJson(v, 0)) errors.push(`${where}: initialState.${k} must be a JSON value`);
      fields.add(k);
    }
    const folded = new Set<string>();
    for (const f of a.events) {
      if (!knownTypes.has(f.eventType)) errors.push(`${where}: events of type '${f.eventType}' are never emitted by the domain (declare custom handlers' types in eventTypes)`);
      if (folded.has(f.eventType)) errors.push(`${where}: ${f.eventType} is folded twice (list all its updates once)`);
      folded.add(f.eventType);
      for (const u of f.updates) fields.add(u._spec().field);
    }
    const every = a.snapshotEvery ?? 0;
    if (!Number.isSafeInteger(every) || every < 0) errors.push(`${where}: snapshotEvery must be an integer >= 0`);
    stateFields.set(a.aggregateType, fields);
  }

  // Per command: guards, ownership, additional events.
  for (const c of commands) {
    const hasRules = (c.guards?.length ?? 0) > 0 || c.ownership !== undefined || (c.additionalEvents?.length ?? 0) > 0;
    if (hasRules && c.handler) errors.push(`command ${c.name}: guards, ownership and additionalEvents are enforced by the bundled handler; a custom handler enforces its own (use DeclaredStateFold from the runtime)`);
    const names = new Set<string>();
    (c.guards ?? []).forEach((g, i) => {
      const where = `command ${c.name}: guards[${i}]`;
      if (!TYPE.test(g.name)) errors.push(`${where}.name '${g.name}' must be PascalCase (it is the error name answered)`);
      if (names.has(g.name)) errors.push(`${where}.name '${g.name}' is used twice`);
      names.add(g.name);
      if (g.message !== undefined && (g.message.length === 0 || g.message.length > 500)) errors.push(`${where}.message must be 1-500 characters`);
      let paths: string[] = [];
      try {
        paths = guardPaths(parseGuard(g.condition));
      } catch (err) {
        if (err instanceof GuardSyntaxError) {
          errors.push(`${where}.condition: ${err.message}`);
          return;
        }
        throw err;
      }
      const fields = stateFields.get(c.aggregateType);
      const bodyProps = c.bodySchema && typeof c.bodySchema.properties === 'object' ? Object.keys(c.bodySchema.properties) : undefined;
      for (const p of paths) {
        const [root, first] = p.split('.');
        if (!(GUARD_ROOTS as readonly string[]).includes(root)) continue;
        if (first === undefined) {
          if (root !== 'state' && root !== 'body') errors.push(`${where}.condition: '${root}' alone is not a value (user.id, user.groups, stream.version, stream.exists, stream.owner)`);
          continue;
        }
        if (root === 'state' && !fields?.has(first)) {
          errors.push(`${where}.condition reads state.${first}, which the declared state of ${c.aggregateType} does not have (${fields ? [...fields].join(', ') || 'no field' : 'no state is declared for it in rules.aggregates'})`);
        }
        if (root === 'body' && bodyProps && !bodyProps.includes(first)) errors.push(`${where}.condition reads body.${first}, which bodySchema does not declare`);
        if (root === 'user' && !['id', 'groups'].includes(first)) errors.push(`${where}.condition reads user.${first}: the user has id and groups`);
        if (root === 'stream' && !['version', 'exists', 'owner'].includes(first)) errors.push(`${where}.condition reads stream.${first}: the stream has version, exists and owner`);
      }
    });
    for (const g of c.ownership?.overrideGroups ?? []) if (!NAME.test(g)) errors.push(`command ${c.name}: ownership.overrideGroups: '${g}' is not a group name`);
    (c.additionalEvents ?? []).forEach((e, i) => {
      if (!TYPE.test(e.eventType)) errors.push(`command ${c.name}: additionalEvents[${i}].eventType '${e.eventType}' must be PascalCase`);
      if (e.eventType === c.eventType) errors.push(`command ${c.name}: additionalEvents[${i}] repeats the command's eventType`);
      if ((c.additionalEvents?.length ?? 0) > 9) errors.push(`command ${c.name}: at most 10 events per command`);
    });
  }

  // Reactions.
  const reactionNames = new Set<string>();
  (rules?.reactions ?? []).forEach((r, i) => {
    const where = `reactions[${i}] (${r.name})`;
    if (!/^[A-Z][A-Za-z0-9]{0,63}$/.test(r.name)) errors.push(`${where}: name must be PascalCase`);
    if (reactionNames.has(r.name)) errors.push(`${where}: name is used twice`);
    reactionNames.add(r.name);
    const twin = (rules?.reactions ?? []).findIndex((o) => o.sourceDomain === r.sourceDomain && o.eventType === r.eventType);
    if (twin !== i) errors.push(`${where}: reactions[${twin}] already reacts to ${r.sourceDomain} ${r.eventType} (one reaction per event type; a command can emit several events)`);
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(r.sourceDomain)) errors.push(`${where}: sourceDomain '${r.sourceDomain}' is not a domain name`);
    if (!TYPE.test(r.eventType)) errors.push(`${where}: eventType '${r.eventType}' must be PascalCase`);
    const command = commands.find((c) => c.name === r.command);
    if (!command) {errors.push(`${where}: command '${r.command}' is not declared in ${domain}`);} else if (command.handler) {errors.push(`${where}: command '${r.command}' has a custom handler; reactions issue bundled commands`);} else {
      const params = [...command.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const given = Object.keys(r.pathParameters ?? {});
      const missing = params.filter((p) => !given.includes(p));
      const extra = given.filter((p) => !params.includes(p));
      if (missing.length > 0) errors.push(`${where}: pathParameters must give ${missing.join(', ')} (the path of ${r.command})`);
      if (extra.length > 0) errors.push(`${where}: pathParameters ${extra.join(', ')} are not in the path of ${r.command}`);
      const bodyProps = command.bodySchema && typeof command.bodySchema.properties === 'object' ? Object.keys(command.bodySchema.properties) : undefined;
      for (const f of Object.keys(r.body ?? {})) {
        if (!isSafeField(f)) errors.push(`${where}: body.${f} is not a field name`);
        else if (bodyProps && !bodyProps.includes(f)) errors.push(`${where}: body.${f} is not declared by ${r.command}'s bodySchema`);
      }
    }
    if (r.dataPattern !== undefined && (typeof r.dataPattern !== 'object' || Array.isArray(r.dataPattern) || !isJson(r.dataPattern, 0))) {
      errors.push(`${where}: dataPattern must be an object of EventBridge pattern values`);
    }
    for (const k of Object.keys(r.dataPattern ?? {})) if (!(k.startsWith('$') || isSafeField(k))) errors.push(`${where}: dataPattern.${k} is not a field name`);
  });
  return errors;
}

function isJson(value: unknown, depth: number): boolean {
  if (depth > 16) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((v) => isJson(v, depth + 1));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.entries(value as Record<string, unknown>).every(([k, v]) => !['__proto__', 'constructor', 'prototype'].includes(k) && isJson(v, depth + 1));
  }
  return false;
}

/** The handler spec of a command's rules (fields absent when not declared, to keep the spec small). */
export function commandRulesSpec(c: RuledCommand & { extraData?: { [field: string]: DataSource } }): {
  guards?: Array<{ name: string; message: string; expression: string }>;
  ownership?: { overrideGroups: string[] };
  additionalEvents?: Array<{ eventType: string; eventVersion: number; includeBody: boolean; extraData: Record<string, DataSourceSpec> }>;
} {
  return {
    ...(c.guards && c.guards.length > 0
      ? { guards: c.guards.map((g) => ({ name: g.name, message: g.message ?? `${c.name} refused: ${g.condition}`, expression: g.condition })) }
      : {}),
    ...(c.ownership ? { ownership: { overrideGroups: [...(c.ownership.overrideGroups ?? [])] } } : {}),
    ...(c.additionalEvents && c.additionalEvents.length > 0
      ? {
        additionalEvents: c.additionalEvents.map((e) => ({
          eventType: e.eventType,
          eventVersion: e.eventVersion ?? 1,
          includeBody: e.includeBody ?? true,
          extraData: Object.fromEntries(Object.entries(e.extraData ?? {}).map(([k, v]) => [k, v._spec()])),
        })),
      }
      : {}),
  };
}

/** The handler spec of the domain's rules. */
export function domainRulesSpec(commands: readonly RuledCommand[], rules: DomainRules | undefined): {
  aggregates?: AggregateStateSpec[];
  upcasters?: UpcasterSpec[];
  eventVersions?: Record<string, number>;
  reactions?: ReactionSpec[];
} {
  const versions: Record<string, number> = {};
  for (const e of emitted(commands)) versions[e.eventType] = Math.max(versions[e.eventType] ?? 0, e.eventVersion);
  const upcasters = (rules?.upcasters ?? []).map((u) => ({
    eventType: u.eventType,
    fromVersion: u.fromVersion,
    steps: u.steps.map((s) => s._spec()),
  }));
  const aggregates = (rules?.aggregates ?? []).map((a) => ({
    aggregateType: a.aggregateType,
    initial: (a.initialState ?? {}) as AggregateStateSpec['initial'],
    events: a.events.map((f) => ({ eventType: f.eventType, updates: f.updates.map((u) => u._spec()) })),
    snapshotEvery: a.snapshotEvery ?? 0,
  }));
  const reactions = (rules?.reactions ?? []).map((r) => ({
    name: r.name,
    source: `skafu.${r.sourceDomain}`,
    eventType: r.eventType,
    command: r.command,
    pathParameters: Object.fromEntries(Object.entries(r.pathParameters ?? {}).map(([k, v]) => [k, v._spec()])),
    body: Object.fromEntries(Object.entries(r.body ?? {}).map(([k, v]) => [k, v._spec()])),
  }));
  const versioned = Object.values(versions).some((v) => v > 1);
  return {
    ...(aggregates.length > 0 ? { aggregates } : {}),
    ...(upcasters.length > 0 ? { upcasters } : {}),
    ...(versioned ? { eventVersions: versions } : {}),
    ...(reactions.length > 0 ? { reactions } : {}),
  };
}
