/**
 * The projections' keys in the checkpoint and parking tables, shared by the state machine definition (synth
 * side) and the handlers (rebuild, operator, drift). Keep this file free of imports.
 *
 * | item                          | `aggregateId` (partition key)       |
 * |-------------------------------|-------------------------------------|
 * | a read model's checkpoint     | `<readModel>#<aggregateId>`         |
 * | a read model's parked events  | `<readModel>#<aggregateId>` (+ `eventSequence`, parking table) |
 * | a read model's backfill status| `#backfill#<readModel>`             |
 * | a read model's active version | `#active#<readModelName>` (the bare name, all versions) |
 *
 * `<readModel>` above is a read model *version*'s identity in the projection machinery (versionedReadModel):
 * the bare name for version 1, `<name>@v<N>` from version 2 on, so that a new version starts with checkpoints,
 * parking keys and a backfill of its own. Read model names start with a letter, so no checkpoint key starts
 * with `#`, and a name holds no `@`, so no version's keys meet another's.
 */

/** The checkpoint and parking key of one read model's view of one aggregate. */
export function streamKey(readModel: string, aggregateId: string): string {
  return `${readModel}#${aggregateId}`;
}

/** The status a backfilling read model's status item holds: the live projection leaves what it cannot apply yet to the backfill. */
export const BACKFILLING = 'BACKFILLING';

/** The key of a read model's backfill status item in the checkpoint table. */
export function backfillStatusKey(readModel: string): string {
  return `#backfill#${readModel}`;
}

/** A read model version's identity in the projection machinery (branch, checkpoints, parking, backfill): version 1 keeps the bare name. */
export function versionedReadModel(readModelName: string, version: number): string {
  return version === 1 ? readModelName : `${readModelName}@v${version}`;
}

/**
 * The key of a read model's active-version pointer in the checkpoint table. The item (written when a new version
 * has caught up with the store) holds `version` (N), `readModel` (the versioned identity), `tableName`,
 * `rebuildId` and `switchedAt`; while it is absent, or names an older version, queries read the previous version.
 */
export function activeVersionKey(readModelName: string): string {
  return `#active#${readModelName}`;
}

/**
 * The pattern of a read model version's identity (versionedReadModel): the bare name, or `@v2` to `@v9999` after
 * it. Never `@v1`: version 1's identity is the bare name, and `<name>@v1` would name keys no version owns.
 */
export const VERSIONED_READ_MODEL = /^[A-Za-z][A-Za-z0-9_-]{0,63}(@v([2-9]|[1-9][0-9]{1,3}))?$/;
