/**
 * A read model's versions (handler-side): the switch of queries to a new version once its backfill has caught
 * up, and the guard that lets a deployment remove the previous version's table only after that switch and a
 * retention.
 *
 * The active-version pointer is one item of the projection's checkpoint table, `#active#<readModelName>`
 * (keys.ts activeVersionKey): `version` (N), `readModel` (`<name>@v<N>`), `tableName`, `rebuildId`,
 * `switchedAt`. It is written once per version, by the backfill of that version when it ends CAUGHT_UP, and never
 * moves to an older version. Queries compare its `version` with the version they were deployed with; they never
 * read the table it names (a forged or stale `tableName` cannot send them elsewhere).
 */
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { activeVersionKey, VERSIONED_READ_MODEL } from './keys';

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
  if (request.previousPropertiesVersion !== undefined && version < request.previousPropertiesVersion) {
    // A rollback (or a version lowered by hand): never fail it, a failed rollback leaves the stack stuck.
    return { status: 'SUCCESS', reason: `read model ${name}: version ${request.previousPropertiesVersion} → ${version} (a rollback, or a lowered version); queries follow the pointer, which names ${activeText}` };
  }
  if (active > version) {
    return {
      status: 'FAILED',
      reason: `read model ${name}: this deployment is at version ${version} but queries already switched to ${activeText}; a version is never lowered (its table is no longer updated): raise 'version' instead`,
    };
  }
  if (version >= 3 && active < version - 1) {
    return {
      status: 'FAILED',
      reason:
        `read model ${name}: version ${version} keeps version ${version - 1} for queries until it has caught up, but version ${version - 1} never became active ` +
        `(active: ${activeText}), so queries would read a table that is not complete, and version ${version - 2}'s table would be removed. ` +
        `Let the backfill of ${name}@v${version - 1} catch up first (or fix its projection at version ${version - 1} and resume it with the same rebuildId)`,
    };
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
