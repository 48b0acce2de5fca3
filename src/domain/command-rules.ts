/**
 * The business rules of the bundled command handler: loads the aggregate's declared state (through the
 * EventStore, with its snapshots), checks the stream's type and domain, ownership and guards, and appends all the
 * command's events at the loaded version, starting again from a fresh load when another writer got there first.
 *
 * Answers (thrown as RuleRejection): 403 NotOwner; 404 AggregateNotFound (no stream, or a stream of another
 * aggregate type or domain); 409 AggregateAlreadyExists; 409 VersionConflict (If-Match is not the loaded version,
 * or the races did not stop); 409 <guard name> when a guard fails. Nothing is written for any of them.
 */
import type { CommandSpec, DomainSpec } from '../runtime/domain-spec';
import type { EventEnvelope, NewEvent } from '../runtime/envelope';
import { ConcurrencyError, StreamContentionError } from '../runtime/errors';
import type { AppendOptions, AppendResult, EventStore } from '../runtime/event-store';
import { GuardEvaluationError, evaluateGuard, parseGuard, type GuardNode } from '../runtime/guards';
import type { JsonObject } from '../runtime/json';
import { DeclaredStateFold, EventUpcaster, loadDeclaredState, maybeSaveDeclaredSnapshot, type FoldedState } from '../runtime/state-fold';

export class RuleRejection extends Error {
  constructor(
    public readonly status: number,
    public readonly error: string,
    message: string,
    public readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface RuledRequest {
  readonly command: CommandSpec;
  readonly aggregateId: string;
  /** The If-Match version, when the client gave a number. */
  readonly ifMatch?: number;
  readonly body: JsonObject;
  readonly events: NewEvent[];
  readonly user: { readonly id: string | null; readonly groups: readonly string[] };
  /** Reactions are issued by the platform, not a user: ownership does not apply to them. */
  readonly system: boolean;
  /** The scoped idempotency key and the request's fingerprint (recorded in each event's metadata). */
  readonly commandId?: string;
  readonly fingerprint: string;
  readonly append: Omit<AppendOptions, 'expectedVersion' | 'aggregateType' | 'expectedVersionFromLoad'>;
}

/** The retry budget of a rule-checked append without If-Match when the request sets no deadline. */
const DEFAULT_CONTENTION_BUDGET_MS = 10_000;

export class CommandRules {
  private readonly folds = new Map<string, DeclaredStateFold>();
  private readonly guards = new Map<string, Array<{ name: string; message: string; tree: GuardNode }>>();
  private readonly upcaster: EventUpcaster;

  constructor(private readonly spec: DomainSpec, private readonly store: EventStore) {
    this.upcaster = new EventUpcaster(spec.upcasters ?? [], spec.eventVersions ?? {});
    for (const a of spec.aggregates ?? []) this.folds.set(a.aggregateType, new DeclaredStateFold(a, this.upcaster));
    for (const c of spec.commands) {
      this.guards.set(c.name, (c.guards ?? []).map((g) => ({ name: g.name, message: g.message, tree: parseGuard(g.expression) })));
    }
  }

  /** Whether the command runs through the rules (otherwise the handler appends as before). */
  public applies(command: CommandSpec): boolean {
    return (
      this.folds.has(command.aggregateType) ||
      (command.guards?.length ?? 0) > 0 ||
      command.ownership !== undefined ||
      (command.additionalEvents?.length ?? 0) > 0
    );
  }

  public async run(req: RuledRequest): Promise<AppendResult> {
    const { command, aggregateId } = req;
    const fold =
      this.folds.get(command.aggregateType) ??
      new DeclaredStateFold({ aggregateType: command.aggregateType, initial: {}, events: [], snapshotEvery: 0 }, this.upcaster);
    const events = req.events.map((e) => ({
      ...e,
      metadata: { ...(e.metadata ?? {}), ...(req.commandId ? { commandId: req.commandId, requestHash: req.fingerprint } : {}) },
    }));
    if (req.system && req.commandId) {
      // A reaction's command id is derived from its event: whatever the idempotency window, it is appended once.
      const replay = await this.replayFromStream(req, command);
      if (replay) return replay;
    }
    for (let attempt = 1; ; attempt++) {
      const folded = await loadDeclaredState(this.store, aggregateId, fold);
      try {
        this.check(req, folded);
      } catch (err) {
        // A retried command whose first attempt succeeded now meets the state it made: answer the first result.
        const replay = err instanceof RuleRejection && req.commandId ? await this.replayFromStream(req, command) : undefined;
        if (replay) return replay;
        throw err;
      }
      try {
        const result = await this.store.append(aggregateId, events, {
          ...req.append,
          requestFingerprint: req.fingerprint,
          aggregateType: command.aggregateType,
          expectedVersion: folded.version,
          expectedVersionFromLoad: true,
        });
        if (!result.idempotentReplay) {
          await maybeSaveDeclaredSnapshot(this.store, aggregateId, fold, folded.version, fold.fold(result.events, folded));
        }
        return result;
      } catch (err) {
        if (!(err instanceof ConcurrencyError) || req.ifMatch !== undefined || command.precondition === 'must-not-exist') throw err;
        // No If-Match: the client asked for no concurrency check, so a lost race is not its conflict. Reload, check
        // the rules against the new state and try again, with full-jitter backoff, until the handler's time budget
        // is spent; then 503 with Retry-After (StreamContentionError), never 409 (as the store does for 'any').
        const pause = Math.random() * Math.min(400, 10 * 2 ** Math.min(attempt, 6));
        if (Date.now() + pause >= (req.append.deadline ?? Date.now() + DEFAULT_CONTENTION_BUDGET_MS)) {
          throw new StreamContentionError(aggregateId, attempt, 1);
        }
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  private check(req: RuledRequest, folded: FoldedState): void {
    const { command, aggregateId } = req;
    const exists = folded.version > 0;
    if (exists && (folded.aggregateType !== command.aggregateType || folded.source !== `skafu.${this.spec.domain}`)) {
      // Another type's (or domain's) stream under this id: to this command, its aggregate does not exist.
      throw new RuleRejection(command.precondition === 'must-not-exist' ? 409 : 404, command.precondition === 'must-not-exist' ? 'AggregateAlreadyExists' : 'AggregateNotFound',
        command.precondition === 'must-not-exist' ? `${command.aggregateType} '${aggregateId}' already exists` : `${command.aggregateType} '${aggregateId}' does not exist`);
    }
    if (command.precondition === 'must-exist' && !exists) throw new RuleRejection(404, 'AggregateNotFound', `${command.aggregateType} '${aggregateId}' does not exist`);
    if (command.precondition === 'must-not-exist' && exists) throw new RuleRejection(409, 'AggregateAlreadyExists', `${command.aggregateType} '${aggregateId}' already exists`);
    if (req.ifMatch !== undefined && req.ifMatch !== folded.version) {
      throw new RuleRejection(409, 'VersionConflict', `${command.aggregateType} '${aggregateId}' is at version ${folded.version}, not ${req.ifMatch}`, {
        expectedVersion: req.ifMatch,
        actualVersion: folded.version,
      });
    }
    if (command.ownership && exists && !req.system) {
      const override = command.ownership.overrideGroups.some((g) => req.user.groups.includes(g));
      if (!override && (req.user.id === null || folded.owner !== req.user.id)) {
        throw new RuleRejection(403, 'NotOwner', `only the creator of ${command.aggregateType} '${aggregateId}'${command.ownership.overrideGroups.length > 0 ? ` or a member of ${command.ownership.overrideGroups.join(', ')}` : ''} may ${command.name}`);
      }
    }
    const scope = {
      state: folded.state,
      body: req.body,
      user: { id: req.user.id, groups: [...req.user.groups] },
      stream: { version: folded.version, exists, owner: folded.owner },
    };
    for (const g of this.guards.get(command.name) ?? []) {
      let ok = false;
      try {
        ok = evaluateGuard(g.tree, scope);
      } catch (err) {
        if (!(err instanceof GuardEvaluationError)) throw err;
        ok = false; // fail closed
      }
      if (!ok) throw new RuleRejection(409, g.name, g.message, { command: command.name });
    }
  }

  /** The first result of a command whose events carry its command id, when the same request made them. */
  private async replayFromStream(req: RuledRequest, command: CommandSpec): Promise<AppendResult | undefined> {
    const all: EventEnvelope[] = await this.store.load(req.aggregateId);
    const mine = all.filter((e) => e.metadata?.commandId === req.commandId);
    if (mine.length === 0) return undefined;
    if (mine[0].metadata.requestHash !== req.fingerprint) {
      throw new RuleRejection(409, 'IdempotencyKeyReused', 'this Idempotency-Key was already used for a different request');
    }
    return {
      aggregateId: req.aggregateId,
      aggregateType: command.aggregateType,
      events: mine,
      firstSequence: mine[0].eventSequence,
      lastSequence: mine[mine.length - 1].eventSequence,
      nextExpectedVersion: mine[mine.length - 1].eventSequence,
      idempotentReplay: true,
    };
  }
}
