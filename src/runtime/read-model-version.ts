/**
 * Which table of a read model answers queries: the version a deployment built (`version`), once its backfill has
 * caught up and switched the active-version pointer to it, and until then the previous version's table, complete
 * but no longer updated. Before the switch the pointer (`#active#<readModelName>` in the projections' checkpoint
 * table) is read on every call (one strongly consistent GetItem: a query never reads the new version before the
 * switch, and every query after the PutItem that switched reads it). Once it names this version the answer is kept
 * for RECHECK_AFTER_SWITCH_MS, then the pointer is read again: a backfill into a re-created (empty) table of this
 * version deletes the pointer (rebuild.runtime.ts clearStaleCheckpoints), and queries go back to the previous version
 * within that time. Only the pointer's `version` is used, never the table it names.
 *
 * EventSourcedDomain gives the bundled query handler and custom query handlers the environment this reads:
 * `SKAFU_READ_MODEL_<NAME>` (this version's table) and, while the previous version is kept,
 * `SKAFU_ACTIVE_VERSION_<NAME>` (ActiveVersionConfig as JSON), with read on both tables and GetItem on the
 * pointer's key only.
 */
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { activeVersionEnvName, readModelEnvName } from './domain-spec';

/** A read model's versions, as a query handler's environment gives them. */
export interface ActiveVersionConfig {
  /** The version this deployment built. */
  readonly version: number;
  /** The previous version's table (queries read it until the pointer names `version`). */
  readonly previousTable: string;
  /** The projections' checkpoint table, which holds the pointer. */
  readonly checkpointTable: string;
  /** The pointer's key (`#active#<readModelName>`). */
  readonly pointerKey: string;
}

/** What ActiveReadModelTable needs of a DynamoDB client. */
export interface PointerReader {
  send(command: GetItemCommand): Promise<{ Item?: Record<string, { N?: string } | undefined> }>;
}

/** How long a container that has seen the switch answers from this version without reading the pointer again. */
export const RECHECK_AFTER_SWITCH_MS = 60_000;

/** Resolves a read model's table for each request (one instance per read model and container). */
export class ActiveReadModelTable {
  /** When this container last read a pointer naming this version (epoch ms), or 0. */
  private switchedSeenAt = 0;

  /**
   * @param client reads the pointer
   * @param table this version's table
   * @param versions the versions, when the previous one is kept (without them, `table` always answers)
   */
  constructor(
    private readonly client: PointerReader,
    private readonly table: string,
    private readonly versions?: ActiveVersionConfig,
  ) {}

  /** The table that answers now. */
  public async tableName(): Promise<string> {
    if (!this.versions || (this.switchedSeenAt > 0 && Date.now() - this.switchedSeenAt < RECHECK_AFTER_SWITCH_MS)) return this.table;
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.versions.checkpointTable,
        Key: { aggregateId: { S: this.versions.pointerKey } },
        ProjectionExpression: '#v',
        ExpressionAttributeNames: { '#v': 'version' },
        ConsistentRead: true,
      }),
    );
    const active = Number(out.Item?.version?.N);
    if (Number.isSafeInteger(active) && active >= this.versions.version) {
      // This version answers, without another read for a while (the pointer moves back only when this version's
      // table was created again and is being filled again).
      this.switchedSeenAt = Date.now();
      return this.table;
    }
    this.switchedSeenAt = 0;
    return this.versions.previousTable;
  }
}

/** The versions of a read model from the environment (undefined when its previous version is not kept). */
export function activeVersionConfigFromEnv(
  readModel: string,
  env: Record<string, string | undefined> = process.env,
): ActiveVersionConfig | undefined {
  const raw = env[activeVersionEnvName(readModel)];
  if (!raw) return undefined;
  const parsed = JSON.parse(raw) as Partial<ActiveVersionConfig>;
  if (!Number.isSafeInteger(parsed.version) || !parsed.previousTable || !parsed.checkpointTable || !parsed.pointerKey) {
    throw new Error(`${activeVersionEnvName(readModel)} must hold version, previousTable, checkpointTable and pointerKey`);
  }
  return parsed as ActiveVersionConfig;
}

const resolvers = new Map<string, ActiveReadModelTable>();
let sharedClient: DynamoDBClient | undefined;

/**
 * The table a custom query handler reads for a read model of its domain (the name declared in `readModels`):
 * this version's once queries switched to it, the previous version's before. Call it for every request (it reads
 * the pointer until the switch, then answers from memory).
 *
 * @param readModel the read model's name in the domain (the one `SKAFU_READ_MODEL_<NAME>` is named after)
 * @param options a DynamoDB client to read the pointer with (default: one of its own)
 */
export async function activeReadModelTable(readModel: string, options: { client?: PointerReader } = {}): Promise<string> {
  let resolver = resolvers.get(readModel);
  if (!resolver) {
    const table = process.env[readModelEnvName(readModel)];
    if (!table) throw new Error(`read model '${readModel}' has no table name (${readModelEnvName(readModel)} is not set)`);
    resolver = new ActiveReadModelTable(options.client ?? (sharedClient ??= new DynamoDBClient({})), table, activeVersionConfigFromEnv(readModel));
    resolvers.set(readModel, resolver);
  }
  return resolver.tableName();
}
