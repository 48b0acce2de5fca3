/**
 * Counts the DynamoDB capacity units a client consumes: every request is sent with `ReturnConsumedCapacity: TOTAL`
 * and the units DynamoDB (Local) reports are added up, reads and writes apart.
 *
 * One correction, for transactions, which DynamoDB Local under-reports: DynamoDB bills every action of a
 * TransactWriteItems, a ConditionCheck included, as 2 write units per KB of its item (developer guide, "Capacity
 * management for transactions"; the ConditionCheck characterised against real DynamoDB in
 * paritysuite/dynamodb-conformance pull request 67), while DynamoDB Local (measured here) reports 2 units per KB
 * of the whole transaction and nothing for a ConditionCheck: two small Puts report 2, a ConditionCheck and a Put
 * report 2. The meter counts a transaction as max(what Local reports, 2 x its actions): exact when each item is
 * under 1 KB (the events and records here are), a lower bound otherwise.
 * Failed conditional writes return no ConsumedCapacity (AWS bills them anyway): the figures are for requests that
 * succeed.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

const READS = new Set(['GetItemCommand', 'QueryCommand', 'ScanCommand', 'BatchGetItemCommand', 'TransactGetItemsCommand']);
const METERED = new Set([
  ...READS,
  'PutItemCommand',
  'UpdateItemCommand',
  'DeleteItemCommand',
  'BatchWriteItemCommand',
  'TransactWriteItemsCommand',
]);
/** Write units AWS bills per action of a transaction, for an item up to 1 KB. */
export const TRANSACTION_ACTION_WRITE_UNITS = 2;

export interface Units {
  readonly read: number;
  readonly write: number;
  readonly requests: number;
}

export class CapacityMeter {
  private read = 0;
  private write = 0;
  private requests = 0;

  /** Meters every request sent through `client` (and through document clients made from it). */
  public attach(client: DynamoDBClient): this {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const name = String(context.commandName);
        if (!METERED.has(name)) return next(args);
        const input = args.input as Record<string, any>;
        const out = await next({ ...args, input: { ...input, ReturnConsumedCapacity: 'TOTAL' } });
        const consumed = (out.output as { ConsumedCapacity?: unknown }).ConsumedCapacity;
        const list = (Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) as Array<{ CapacityUnits?: number }>;
        let units = list.reduce((sum, c) => sum + (c.CapacityUnits ?? 0), 0);
        if (name === 'TransactWriteItemsCommand') {
          units = Math.max(units, ((input.TransactItems ?? []) as unknown[]).length * TRANSACTION_ACTION_WRITE_UNITS);
        }
        if (READS.has(name)) this.read += units;
        else this.write += units;
        this.requests++;
        return out;
      },
      { step: 'initialize', name: 'bench-capacity-meter' },
    );
    return this;
  }

  public reset(): void {
    this.read = 0;
    this.write = 0;
    this.requests = 0;
  }

  public snapshot(): Units {
    return { read: this.read, write: this.write, requests: this.requests };
  }

  /** The units consumed while `fn` runs (nothing else may use the metered client meanwhile). */
  public async measure<T>(fn: () => Promise<T>): Promise<{ units: Units; value: T }> {
    const before = this.snapshot();
    const value = await fn();
    const after = this.snapshot();
    return { units: { read: after.read - before.read, write: after.write - before.write, requests: after.requests - before.requests }, value };
  }
}

export const fmtUnits = (u: Units, per = 1): string =>
  `${(u.read / per).toFixed(2)} RRU + ${(u.write / per).toFixed(2)} WRU (${(u.requests / per).toFixed(2)} requests)`;
