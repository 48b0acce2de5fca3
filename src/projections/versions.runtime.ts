/**
 * A read model's versions (handler-side): the switch of queries to a new version once its backfill has caught
 * up, and the guard that lets a deployment remove the previous version's table only after that switch and a
 * retention.
 *
 * The active-version pointer is one item of the projection's checkpoint table, `#active#<readModelName>`
 * (keys.ts activeVersionKey): `version` (N), `readModel` (`<name>@v<N>`), `tableName`, `rebuildId`,
 * `switchedAt`. It is written once per version, by the backfill of that version when it ends CAUGHT_UP, and never
 * moves to an older version. It is deleted (conditioned on naming that version) only by a backfill that finds its
 * version's table empty while the version has checkpoints (a re-created table, rebuild.runtime.ts startBackfill):
 * queries then read the previous version until the refill switches again (query containers that had switched
 * re-read the pointer a minute later, read-model-version.ts). Queries compare its `version` with the version they were deployed with; they never
 * read the table it names (a forged or stale `tableName` cannot send them elsewhere).
 */
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand, ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { activeVersionKey, backfillStatusKey, VERSIONED_READ_MODEL } from './keys';

/** A read model version's identity split into its name and version (`Totals` → 1, `Totals@v2` → 2). */
export function parseVersionedReadModel(identity: string): { readModelName: string; version: number } {
  if (!VERSIONED_READ_MODEL.test(identity)) throw new Error(`'${identity}' is not a read model identity (name, or name@v<N>)`);
  const at = identity.indexOf('@v');
  return at < 0 ? { readModelName: identity, version: 1 } : { readModelName: identity.slice(0, at), version: Number(identity.slice(at + 2)) };
}

export interface ActivePointer {
  readonly version: number;
  readonly readModel?: string;
  readonly tableName?: string;
  readonly rebuildId?: string;
  readonly switchedAt?: string;
}

/** The pointer as stored (consistent read), or undefined when queries never switched (version 1 answers). */
export async function readActivePointer(client: DynamoDBClient, checkpointTable: string, readModelName: string): Promise<ActivePointer | undefined> {
  const key = { aggregateId: { S: activeVersionKey(readModelName) } };
  const out = await client.send(new GetItemCommand({ TableName: checkpointTable, Key: key, ConsistentRead: true }));
  const item = out.Item;
  if (!item) return undefined;
  const version = Number(item.version?.N);
  return {
    // A pointer without a readable version switches nothing: it reads as version 0.
    version: Number.isSafeInteger(version) ? version : 0,
    readModel: item.readModel?.S,
    tableName: item.tableName?.S,
    rebuildId: item.rebuildId?.S,
    switchedAt: item.switchedAt?.S,
  };
}

export interface SwitchOutcome {
  /** Queries read this version (switched now, or by an earlier run of the same or another backfill of it). */
  readonly switched: boolean;
  /** The version the pointer names after this call. */
  readonly activeVersion: number;
  /** When queries switched to `activeVersion`. */
  readonly switchedAt?: string;
}

/**
 * Points queries at `version` of a read model: one PutItem, conditioned on the pointer being absent or naming an
 * older version, so that it never moves back and a resumed (or repeated) run does not move `switchedAt` (the
 * start of the retention). Safe to call again: an existing pointer at this version answers `switched`.
 */
export async function switchActiveVersion(
  client: DynamoDBClient,
  input: { checkpointTable: string; readModelName: string; version: number; tableName: string; rebuildId: string; now?: Date },
): Promise<SwitchOutcome> {
  const identity = input.version === 1 ? input.readModelName : `${input.readModelName}@v${input.version}`;
  const switchedAt = (input.now ?? new Date()).toISOString();
  try {
    await client.send(
      new PutItemCommand({
        TableName: input.checkpointTable,
        Item: {
          aggregateId: { S: activeVersionKey(input.readModelName) },
          version: { N: String(input.version) },
          readModel: { S: identity },
          tableName: { S: input.tableName },
          rebuildId: { S: input.rebuildId },
          switchedAt: { S: switchedAt },
        },
        // Absent, unreadable (no number: it would switch nothing and block every switch), or an older version.
        ConditionExpression: 'attribute_not_exists(aggregateId) OR NOT attribute_type(#version, :number) OR #version < :version',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':version': { N: String(input.version) }, ':number': { S: 'N' } },
      }),
    );
    return { switched: true, activeVersion: input.version, switchedAt };
  } catch (err) {
    if (!(err instanceof ConditionalCheckFailedException) && (err as Error).name !== 'ConditionalCheckFailedException') throw err;
    const pointer = await readActivePointer(client, input.checkpointTable, input.readModelName);
    const active = pointer?.version ?? 0;
    return { switched: active === input.version, activeVersion: active, switchedAt: pointer?.switchedAt };
  }
}

/** What a version guard is asked (the custom resource's properties, as CloudFormation sends them: strings). */
export interface GuardRequest {
  readonly requestType: 'Create' | 'Update' | 'Delete';
  readonly readModelName: string;
  readonly version: number;
  readonly retainPreviousVersion: boolean;
  readonly retentionSeconds: number;
  /** The version of the properties this Update replaces (an Update to a lower version is a rollback, or a downgrade). */
  readonly previousPropertiesVersion?: number;
  /** The old properties' retainPreviousVersion (an Update); unknown counts as `true` (version - 2's table was kept). */
  readonly previousPropertiesRetainedPreviousVersion?: boolean;
  /** The old properties' retention, in seconds (an Update); unknown: `retentionSeconds`. */
  readonly previousPropertiesRetentionSeconds?: number;
  /**
   * Whether the checkpoint table holds any item of this read model (any version's checkpoints or backfill status):
   * looked up on a Create with no pointer only (hasReadModelItems). `false`: a new environment; unknown: not one.
   */
  readonly readModelHasItems?: boolean;
  /**
   * The status of the stack the guard is in (DescribeStacks on the request's StackId), asked on an Update to a lower
   * version only; `stackStatusError` when it could not be read.
   */
  readonly stackStatus?: string;
  readonly stackStatusError?: string;
}

/**
 * Whether a stack status is a rollback's: CloudFormation sends the custom resource of a stack rolling back an update
 * the same Update (old and new properties swapped) as a deployment that lowered the value by hand; only the stack's
 * status (UPDATE_ROLLBACK_IN_PROGRESS, IMPORT_ROLLBACK_IN_PROGRESS, ROLLBACK_IN_PROGRESS) tells them apart. A nested
 * stack rolled back by its parent is taken to show UPDATE_ROLLBACK_IN_PROGRESS itself (its own StackId is what the
 * request carries); not verified against CloudFormation here.
 */
export function isRollingBack(stackStatus: string): boolean {
  return /(^|_)ROLLBACK_IN_PROGRESS$/.test(stackStatus);
}

/**
 * Whether the checkpoint table holds any item of read model `readModelName` (version 1's `<name>#…`, a later
 * version's `<name>@v<N>#…`, or a backfill status `#backfill#<name>` / `#backfill#<name>@v<N>`): a paginated Scan
 * of the keys only, stopping at the first match. What it costs: a Scan is charged for the items it reads, whatever
 * ProjectionExpression keeps (about 1 RRU per 8 KB read, eventually consistent): a new environment's checkpoint
 * table holds a few items, one page; an existing environment where this read model is new but others have
 * checkpoints reads the whole table once (about 128 RRU per MB, $0.125 per million RRU on demand, so about $0.016 per
 * GB) and answers "none" when nothing is found. `deadline` (epoch ms) bounds it: past it, it throws (the guard then
 * refuses, as it does for a jump without this look-up). `pageSize` (Scan Limit) is for tests of the pagination.
 */
export async function hasReadModelItems(
  client: DynamoDBClient,
  checkpointTable: string,
  readModelName: string,
  options: { deadline?: number; pageSize?: number } = {},
): Promise<boolean> {
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  const versionOf = (key: string): boolean => {
    for (const prefix of [backfillStatusKey(readModelName), readModelName]) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      // `<name>#…` / `#backfill#<name>`, or the same with `@v<N>` (never another read model whose name extends this one).
      const m = /^(@v[0-9]+)?(.*)$/s.exec(rest)!;
      if (prefix === readModelName ? m[2].startsWith('#') : m[2] === '') return true;
    }
    return false;
  };
  let start: Record<string, any> | undefined;
  do {
    if (Date.now() > deadline) throw new Error(`the look-up of ${readModelName}'s checkpoints in ${checkpointTable} did not finish in time`);
    const out = await client.send(
      new ScanCommand({ TableName: checkpointTable, ProjectionExpression: '#k', ExpressionAttributeNames: { '#k': 'aggregateId' }, ExclusiveStartKey: start, Limit: options.pageSize }),
    );
    if ((out.Items ?? []).some((item) => typeof item.aggregateId?.S === 'string' && versionOf(item.aggregateId.S))) return true;
    start = out.LastEvaluatedKey;
  } while (start);
  return false;
}

export interface GuardDecision {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: string;
}

/**
 * The guard's decision from the pointer and the clock: a deployment may go on unless it would make queries read a
 * table that is not complete, or remove the previous version's table before queries switched away from it and the
 * retention passed.
 */
export function guardDecision(request: GuardRequest, pointer: ActivePointer | undefined, now: Date): GuardDecision {
  const { readModelName: name, version } = request;
  if (request.requestType === 'Delete') return { status: 'SUCCESS', reason: `the version guard of ${name} is removed` };
  // No pointer: queries never switched, version 1 answers.
  const active = pointer?.version ?? 1;
  const activeText = pointer ? `version ${active} (switched at ${pointer.switchedAt ?? 'an unknown time'})` : 'version 1 (no version has been switched to yet)';
  const previous = request.previousPropertiesVersion;
  if (previous !== undefined && version < previous) {
    // An Update to a lower version: a rollback (never failed: a failed rollback leaves the stack stuck in
    // UPDATE_ROLLBACK_FAILED), or a deployment that lowered the version by hand (refused: the lower version's table
    // was not updated while the higher one was deployed). Only the stack's status tells them apart.
    if (request.stackStatus !== undefined && !isRollingBack(request.stackStatus)) {
      return {
        status: 'FAILED',
        reason:
          `read model ${name}: this deployment lowers the version from ${previous} to ${version} (the stack is ${request.stackStatus}, not rolling back); ` +
          `a version is never lowered (version ${version}'s table was not updated while version ${previous} was deployed; queries read ${activeText}): raise 'version' instead`,
      };
    }
    const why = request.stackStatus !== undefined
      ? `a rollback (the stack is ${request.stackStatus})`
      : `let through: the stack's status could not be read${request.stackStatusError ? ` (${request.stackStatusError})` : ''}, and a rollback is never failed`;
    return { status: 'SUCCESS', reason: `read model ${name}: version ${previous} → ${version}, ${why}; queries follow the pointer, which names ${activeText}` };
  }
  if (active > version) {
    return {
      status: 'FAILED',
      reason: `read model ${name}: this deployment is at version ${version} but queries already switched to ${activeText}; a version is never lowered (its table is no longer updated): raise 'version' instead`,
    };
  }
  if (version >= 3 && active < version - 1) {
    if (request.requestType === 'Create' && !pointer && request.readModelHasItems === false) {
      // Nothing of this read model in the checkpoint table: a new environment (or a read model new to this one),
      // deployed straight at this version; there is no table to lose and no complete version to keep.
      return {
        status: 'SUCCESS',
        reason: `read model ${name}: a new environment (no pointer, no checkpoint or backfill item of ${name} in the checkpoint table): created at version ${version}; queries read version ${version - 1} until the backfill of ${name}@v${version} has caught up`,
      };
    }
    return {
      status: 'FAILED',
      reason:
        `read model ${name}: version ${version} keeps version ${version - 1} for queries until it has caught up, but version ${version - 1} never became active ` +
        `(active: ${activeText}), so queries would read a table that is not complete, and version ${version - 2}'s table would be removed. ` +
        `Let the backfill of ${name}@v${version - 1} catch up first (or fix its projection at version ${version - 1} and resume it with the same rebuildId)`,
    };
  }
  if (version >= 3 && previous === version - 1 && request.previousPropertiesRetainedPreviousVersion !== false) {
    // Raising N-1 to N takes version N-2's table out of the template (it was kept as N-1's previous version): the
    // same condition as retainPreviousVersion: false at N-1, the switch to N-1 and the old properties' retention.
    const retention = request.previousPropertiesRetentionSeconds ?? request.retentionSeconds;
    const switchedAt = Date.parse(pointer?.switchedAt ?? '');
    const gone = `raising version ${version - 1} to ${version} removes version ${version - 2}'s table`;
    if (!pointer || !Number.isFinite(switchedAt)) {
      return { status: 'FAILED', reason: `read model ${name}: ${gone}, but the active-version pointer has no readable switchedAt (${activeText}); version ${version - 2}'s table is not removed` };
    }
    const until = switchedAt + retention * 1000;
    if (until > now.getTime()) {
      return {
        status: 'FAILED',
        reason:
          `read model ${name}: ${gone}, but the retention (${retention} s) after the switch to version ${pointer.version} at ${pointer.switchedAt} ` +
          `ends at ${new Date(until).toISOString()}: deploy version ${version} after that`,
      };
    }
  }
  if (request.retainPreviousVersion) return { status: 'SUCCESS', reason: `read model ${name}: version ${version - 1} is kept; queries read ${activeText}` };
  if (active < version || !pointer) {
    return {
      status: 'FAILED',
      reason:
        `read model ${name}: retainPreviousVersion is false, which removes version ${version - 1}'s table, but queries have not switched to version ${version} ` +
        `(active: ${activeText}): keep retainPreviousVersion until the backfill of ${name}@v${version} has caught up and the retention has passed`,
    };
  }
  const switchedAt = Date.parse(pointer.switchedAt ?? '');
  if (!Number.isFinite(switchedAt)) {
    return { status: 'FAILED', reason: `read model ${name}: the active-version pointer names version ${version} but has no readable switchedAt; version ${version - 1}'s table is not removed` };
  }
  const until = switchedAt + request.retentionSeconds * 1000;
  if (until > now.getTime()) {
    return {
      status: 'FAILED',
      reason:
        `read model ${name}: retainPreviousVersion is false, which removes version ${version - 1}'s table, but the retention (${request.retentionSeconds} s) ` +
        `after the switch to version ${version} at ${pointer.switchedAt} ends at ${new Date(until).toISOString()}: deploy again after that`,
    };
  }
  return { status: 'SUCCESS', reason: `read model ${name}: queries switched to version ${version} at ${pointer.switchedAt}, the retention has passed; version ${version - 1}'s table may be removed` };
}
