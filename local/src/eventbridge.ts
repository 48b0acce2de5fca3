/**
 * The EventBridge service: the buses and rules of the assembly. PutEvents builds the event envelope as
 * EventBridge does, matches every rule of the bus by its pattern, and delivers to the targets (state machines,
 * log groups, queues, topics, functions). A target that cannot be reached goes to the rule's dead-letter queue
 * when it has one, and is reported either way. Error events (`Application Error`) are shown on the console and
 * kept in errors.log.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Unsupported } from './api-gateway';
import { LOCAL_ACCOUNT, LOCAL_REGION, type LocalResource } from './assembly';
import type { ErrorLog } from './error-log';
import { matchesPattern, validatePattern } from './event-pattern';

export interface Rule {
  readonly name: string;
  readonly bus: string;
  readonly pattern: Record<string, unknown>;
  readonly targets: Array<{ arn: string; deadLetterArn?: string; input?: string; inputPath?: string }>;
}

/** Where a rule's targets go: one function per target kind, given by Skafu Local. */
export interface Targets {
  readonly startExecution: (arn: string, input: unknown) => void;
  readonly sendMessage: (queueArn: string, body: string) => void;
  readonly invokeFunction: (arn: string, event: unknown) => Promise<unknown>;
}

export interface PutEventsEntry {
  readonly Source?: unknown;
  readonly DetailType?: unknown;
  readonly Detail?: unknown;
  readonly EventBusName?: unknown;
  readonly Resources?: unknown;
  readonly Time?: unknown;
}

export class EventBridge {
  /** Every event put on any bus, in order (for tests and the demo). */
  public readonly events: Array<Record<string, any>> = [];
  /** The detail of every error event. */
  public readonly errorEvents: Array<Record<string, any>> = [];
  public readonly unsupported: Unsupported[] = [];
  private readonly buses = new Set<string>(['default']);
  private readonly rules: Rule[] = [];
  private readonly logGroups = new Map<string, string>();
  private targets!: Targets;

  constructor(
    private readonly workDirectory: string,
    private readonly errors: ErrorLog,
    private readonly log: (line: string) => void,
    private readonly track: (work: Promise<unknown>) => void,
    /**
     * Told after each event is put on a bus: recorded in `events` (and `errorEvents`), its targets started (an
     * execution it starts is counted), before any of them has run further.
     */
    private readonly onEvent: () => void = () => undefined,
  ) {}

  public configure(resources: LocalResource[], targets: Targets): void {
    this.targets = targets;
    for (const r of resources.filter((x) => x.type === 'AWS::Events::EventBus')) this.buses.add(r.stack.physicalId(r.logicalId));
    for (const r of resources.filter((x) => x.type === 'AWS::Logs::LogGroup')) {
      this.logGroups.set(r.stack.arn(r.logicalId).replace(/:\*$/, ''), r.stack.physicalId(r.logicalId));
    }
    for (const r of resources.filter((x) => x.type === 'AWS::Events::Rule')) {
      const props = r.stack.resolve(r.properties) as Record<string, any>;
      if (!props.EventPattern) {
        this.unsupported.push({ type: 'AWS::Events::Rule (schedule)', count: 1, why: `${r.path}: scheduled rules do not fire locally` });
        continue;
      }
      const pattern = props.EventPattern as Record<string, unknown>;
      validatePattern(pattern, r.path); // an unsupported operator stops the start, naming the rule
      const ruleTargets = ((props.Targets ?? []) as Array<Record<string, any>>).filter((t) => {
        if (t.InputTransformer) {
          this.unsupported.push({ type: 'AWS::Events::Rule target (InputTransformer)', count: 1, why: `${r.path} target ${t.Id}: input transformers are not emulated; it receives nothing` });
          return false;
        }
        return true;
      });
      const bus = busName(String(props.EventBusName ?? 'default'));
      this.rules.push({
        name: r.path,
        bus,
        pattern,
        targets: ruleTargets.map((t) => ({ arn: String(t.Arn), deadLetterArn: t.DeadLetterConfig?.Arn, input: t.Input, inputPath: t.InputPath })),
      });
      this.log(`  rule ${r.logicalId} on ${bus} -> ${ruleTargets.length} target(s)`);
    }
  }

  /** The PutEvents API. Entries that are not valid fail one by one, like EventBridge's partial failures. */
  public putEvents(input: { Entries?: PutEventsEntry[] }): { FailedEntryCount: number; Entries: Array<Record<string, unknown>> } {
    if (!input || !Array.isArray(input.Entries) || input.Entries.length === 0 || input.Entries.length > 10) {
      throw new ValidationException('Entries must be a list of 1 to 10 entries');
    }
    const results = input.Entries.map((entry): Record<string, unknown> => {
      if (!entry || typeof entry !== 'object') return { ErrorCode: 'InvalidArgument', ErrorMessage: 'An entry must be an object' };
      if (typeof entry.Source !== 'string' || typeof entry.DetailType !== 'string' || entry.Detail === undefined) {
        return { ErrorCode: 'InvalidArgument', ErrorMessage: 'Parameters Source, DetailType and Detail are required' };
      }
      let detail: unknown;
      try {
        // SDK callers send Detail as JSON text; Step Functions' optimized integration passes an object.
        detail = typeof entry.Detail === 'object' && entry.Detail !== null ? entry.Detail : JSON.parse(String(entry.Detail));
      } catch {
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
      }
      if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
      const bus = busName(String(entry.EventBusName ?? 'default'));
      if (!this.buses.has(bus)) return { ErrorCode: 'NotFound', ErrorMessage: `Event bus ${bus} does not exist.` };
      const id = randomUUID();
      const time = entry.Time ? new Date(typeof entry.Time === 'number' ? entry.Time * 1000 : String(entry.Time)) : new Date();
      const event = {
        'version': '0',
        id,
        'detail-type': entry.DetailType,
        'source': entry.Source,
        'account': LOCAL_ACCOUNT,
        'time': (Number.isNaN(time.getTime()) ? new Date() : time).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        'region': LOCAL_REGION,
        'resources': Array.isArray(entry.Resources) ? entry.Resources : [],
        detail,
      };
      this.route(bus, event);
      return { EventId: id };
    });
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  }

  private route(bus: string, event: Record<string, any>): void {
    this.events.push({ bus, ...event });
    if (event['detail-type'] === 'Application Error') {
      const d = event.detail;
      this.errorEvents.push(d);
      this.errors.report(
        { kind: 'Application Error', resource: String(event.source), message: String(d.message), correlationId: d.correlationId, event },
        `[error-bus] ${d.severity} ${d.errorType} (${event.source}): ${d.message} [correlationId ${d.correlationId}]`,
      );
    }
    for (const rule of this.rules) {
      if (rule.bus !== bus || !matchesPattern(rule.pattern, event as never)) continue;
      for (const target of rule.targets) this.track(this.deliver(rule, target, event));
    }
    this.onEvent();
  }

  private async deliver(rule: Rule, target: Rule['targets'][number], event: Record<string, any>): Promise<void> {
    const input = target.input !== undefined ? JSON.parse(target.input) : target.inputPath === '$.detail' ? event.detail : event;
    const arn = target.arn;
    try {
      if (arn.includes(':states:')) return this.targets.startExecution(arn, input);
      if (arn.includes(':logs:')) {
        const name = this.logGroups.get(arn.replace(/:\*$/, '')) ?? arn;
        fs.appendFileSync(path.join(this.workDirectory, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`), `${JSON.stringify(input)}\n`);
        return;
      }
      if (arn.includes(':sqs:')) return this.targets.sendMessage(arn, JSON.stringify(input));
      if (arn.includes(':sns:')) return void fs.appendFileSync(path.join(this.workDirectory, 'sns.log'), `${arn} ${JSON.stringify(input)}\n`);
      if (arn.includes(':lambda:')) return void (await this.targets.invokeFunction(arn, input));
      throw new Error(`target ${arn} is not emulated`);
    } catch (err) {
      if (target.deadLetterArn) {
        try {
          this.targets.sendMessage(target.deadLetterArn, JSON.stringify(event));
        } catch (dlqErr) {
          this.errors.report({ kind: 'DeadLetterFailed', resource: rule.name, message: `${(dlqErr as Error).message} (the event ${event.id} is lost)` });
        }
      }
      this.errors.report({ kind: 'TargetDeliveryFailed', resource: rule.name, message: `delivery to ${arn} failed: ${(err as Error).message}${target.deadLetterArn ? ' (sent to its dead-letter queue)' : ''}`, correlationId: event.detail?.correlationId });
    }
  }
}

/** An API error that the service endpoint answers with 400. */
export class ValidationException extends Error {
  public readonly name = 'ValidationException';
}

export function busName(nameOrArn: string): string {
  return nameOrArn.includes(':event-bus/') ? nameOrArn.split(':event-bus/')[1] : nameOrArn;
}
