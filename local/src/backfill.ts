/**
 * Skafu Local's backfill of read models: what the backfill state machine (a loop of the backfill function's
 * bounded steps) and its deploy-time custom resource do on AWS. At start, every read model of every projection
 * state machine that has a backfill function is backfilled by invoking that function (its exact asset, in its
 * worker, with its template environment) until the progress it returns is no longer RUNNING, before the API
 * answers. A read model added to a domain that already has events is filled; one already filled costs one
 * progress read (its progress for this table says CAUGHT_UP). The function is given its projection definition
 * (SKAFU_PROJECTION_DEFINITION_OVERRIDE, set by skafu-local.ts) instead of reading it with DescribeStateMachine.
 *
 * Read model versions: the function names each version by its identity (`projects`, `projects@v2`), so a version
 * raised since the last start is a new read model with an empty table, backfilled here; the function switches
 * queries to it when it has caught up (the active-version pointer), as on AWS, and the query handlers follow the
 * pointer. Until then (and for good, if it caught up with failures) queries answer from the previous version.
 */
import type { LocalResource } from './assembly';

interface LocalBackfill {
  readonly resource: string;
  readonly functionArn: string;
  readonly domain: string;
  readonly tables: Record<string, string>;
}

/** The progress a backfill step returns (rebuild.runtime.ts's RebuildProgress, failures counted). */
export interface BackfillProgress {
  readonly status: 'RUNNING' | 'CAUGHT_UP' | 'CAUGHT_UP_WITH_FAILURES';
  readonly pass: number;
  readonly aggregatesVisited: number;
  readonly eventsApplied: number;
  readonly writeRequests: number;
  readonly readRequests: number;
  readonly failures: number;
  readonly firstFailures: Array<{ aggregateId: string; eventSequence: number; error: string }>;
  /** Version 2 on, once caught up: whether queries read this version now. */
  readonly switched?: boolean;
  /** Version 2 on, once caught up: the version queries read. */
  readonly activeVersion?: number;
}

export interface BackfillOutcome {
  readonly domain: string;
  readonly readModel: string;
  readonly progress: BackfillProgress;
  readonly ms: number;
}

export class Backfills {
  private readonly domains: LocalBackfill[] = [];

  constructor(
    private readonly invoke: (functionArn: string, event: unknown) => Promise<unknown>,
    private readonly log: (line: string) => void,
  ) {}

  /** Finds the backfill functions: their environment names SKAFU_READ_MODEL_TABLES and SKAFU_REBUILD_STATE_TABLE. */
  public configure(resources: LocalResource[]): void {
    for (const r of resources.filter((x) => x.type === 'AWS::Lambda::Function')) {
      const env = r.stack.resolve(r.properties.Environment?.Variables ?? {}) as Record<string, unknown>;
      if (typeof env.SKAFU_READ_MODEL_TABLES !== 'string' || !env.SKAFU_REBUILD_STATE_TABLE) continue;
      const tables = JSON.parse(env.SKAFU_READ_MODEL_TABLES) as Record<string, string>;
      this.domains.push({ resource: r.path, functionArn: r.stack.arn(r.logicalId), domain: String(env.SKAFU_DOMAIN), tables });
    }
  }

  /** The read models that can be backfilled. */
  public get readModels(): Array<{ domain: string; readModel: string }> {
    return this.domains.flatMap((d) => Object.keys(d.tables).map((readModel) => ({ domain: d.domain, readModel })));
  }

  /**
   * Backfills every read model (or those named), each until it has caught up. `rebuildId` defaults to the one
   * the deploy-time custom resource gives (`deploy-<table>`), so that a read model already backfilled for its
   * table is not scanned again; give another to run a backfill again.
   */
  public async run(only: { domain?: string; readModel?: string; rebuildId?: string } = {}): Promise<BackfillOutcome[]> {
    const out: BackfillOutcome[] = [];
    for (const d of this.domains) {
      if (only.domain && d.domain !== only.domain) continue;
      for (const [readModel, table] of Object.entries(d.tables)) {
        if (only.readModel && readModel !== only.readModel) continue;
        const started = Date.now();
        const input = { readModel, rebuildId: only.rebuildId ?? `deploy-${table}` };
        let progress = (await this.invoke(d.functionArn, input)) as BackfillProgress;
        while (progress.status === 'RUNNING') {
          this.log(`  backfill ${d.domain}/${readModel}: pass ${progress.pass}, ${progress.aggregatesVisited} aggregates visited, ${progress.eventsApplied} events applied`);
          progress = (await this.invoke(d.functionArn, input)) as BackfillProgress;
        }
        const ms = Date.now() - started;
        const failures = progress.failures > 0 ? `, ${progress.failures} failure(s), first: ${JSON.stringify(progress.firstFailures.slice(0, 3))}` : '';
        const version = progress.activeVersion === undefined ? '' : progress.switched ? `, queries read version ${progress.activeVersion}` : `, queries did not switch (they read version ${progress.activeVersion})`;
        this.log(`  backfill ${d.domain}/${readModel}: ${progress.status}, ${progress.eventsApplied} events applied, ${ms} ms${failures}${version}`);
        out.push({ domain: d.domain, readModel, progress, ms });
      }
    }
    return out;
  }
}
