/**
 * The projections' keys in the checkpoint and parking tables, shared by the state machine definition (synth
 * side) and the handlers (rebuild, operator, drift). Keep this file free of imports.
 *
 * | item                          | `aggregateId` (partition key)       |
 * |-------------------------------|-------------------------------------|
 * | a read model's checkpoint     | `<readModel>#<aggregateId>`         |
 * | a read model's parked events  | `<readModel>#<aggregateId>` (+ `eventSequence`, parking table) |
 * | a read model's backfill status| `#backfill#<readModel>`             |
 *
 * Read model names start with a letter, so no checkpoint key starts with `#`.
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
