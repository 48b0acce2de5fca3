import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DeleteCommand, DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

/**
 * An aggregate the outbox stopped publishing: one of its events could not be delivered, so none of its later
 * events may reach the bus ahead of it. Released by a republish from `fromSequence` (in order).
 */
export interface AggregateHold {
  /** The stream's stored partition key (`<domain>#<aggregateId>`). */
  readonly streamId: string;
  readonly domain: string;
  readonly aggregateId: string;
  /** The first event that was not delivered: republish from here. */
  readonly fromSequence: number;
  /** The last event held back so far (later events arrived while held). */
  readonly lastHeldSequence: number;
  readonly errorCode: string;
  readonly heldAt: string;
}

/** The partition key of the outbox's held-aggregates table. */
export const HOLD_TABLE_PARTITION_KEY = 'streamId';

/**
 * The outbox's held aggregates, in a small DynamoDB table of its own (one item per held aggregate; usually
 * empty). Used by the publisher (hold, record held events, read holds for a batch) and by the republisher
 * (release after publishing in order).
 */
export class HoldStore {
  private readonly doc: DynamoDBDocumentClient;
  constructor(
    public readonly tableName: string,
    client: DynamoDBClient | DynamoDBDocumentClient = new DynamoDBClient({}),
  ) {
    this.doc = client instanceof DynamoDBDocumentClient ? client : DynamoDBDocumentClient.from(client);
  }

  /** The holds of these streams (strongly consistent). */
  public async get(streamIds: ReadonlyArray<string>): Promise<Map<string, AggregateHold>> {
    const holds = new Map<string, AggregateHold>();
    const unique = [...new Set(streamIds)];
    for (let i = 0; i < unique.length; i += 100) {
      let keys: Array<Record<string, unknown>> | undefined = unique.slice(i, i + 100).map((id) => ({ [HOLD_TABLE_PARTITION_KEY]: id }));
      for (let round = 0; keys && keys.length > 0; round++) {
        if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 50 * 2 ** Math.min(round, 5)));
        if (round > 8) throw new Error('BatchGetItem on the held-aggregates table kept returning unprocessed keys');
        const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }));
        for (const item of out.Responses?.[this.tableName] ?? []) holds.set(item[HOLD_TABLE_PARTITION_KEY] as string, item as AggregateHold);
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys as Array<Record<string, unknown>> | undefined;
      }
    }
    return holds;
  }

  /**
   * Holds an aggregate from `fromSequence` (an existing hold is kept, its first sequence lowered and its last held
   * sequence raised as needed). When the existing hold is released meanwhile, the hold is written again.
   */
  public async hold(hold: AggregateHold): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.doc.send(
          new PutCommand({ TableName: this.tableName, Item: { ...hold }, ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': HOLD_TABLE_PARTITION_KEY } }),
        );
        return;
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        await this.lowerFrom(hold.streamId, hold.fromSequence);
        if (await this.recordHeld(hold.streamId, hold.lastHeldSequence)) return;
        if (attempt >= 4) throw new Error(`the hold of ${hold.streamId} kept being released while it was written`);
      }
    }
  }

  /**
   * Moves an existing hold's first sequence down to `fromSequence` when that is earlier: an earlier event of the
   * aggregate (a transaction's record that arrived after a later one was held) could not be delivered either, so a
   * republish must start from it, and a release from the later sequence answers 'not-covered'. Nothing happens
   * when the hold starts at or before it, or is gone.
   */
  private async lowerFrom(streamId: string, fromSequence: number): Promise<void> {
    await this.setIf(streamId, 'fromSequence', '>', fromSequence);
  }

  /** Sets one number of an existing hold when its value is `comparison` `value`; false when not (or no hold). */
  private async setIf(streamId: string, attribute: 'fromSequence' | 'lastHeldSequence', comparison: '<' | '>', value: number): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [HOLD_TABLE_PARTITION_KEY]: streamId },
          UpdateExpression: 'SET #a = :v',
          ConditionExpression: `attribute_exists(#pk) AND #a ${comparison} :v`,
          ExpressionAttributeNames: { '#pk': HOLD_TABLE_PARTITION_KEY, '#a': attribute },
          ExpressionAttributeValues: { ':v': value },
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      return false;
    }
  }

  /**
   * Records that `sequence` was held back. Returns false when the aggregate is no longer held (released in the
   * meantime): the caller publishes the event itself.
   */
  public async recordHeld(streamId: string, sequence: number): Promise<boolean> {
    if (await this.setIf(streamId, 'lastHeldSequence', '<', sequence)) return true;
    const current = (await this.get([streamId])).get(streamId);
    return current !== undefined; // still held (and already past this sequence), or released
  }

  /**
   * Releases a hold after its events were republished in order from `fromSequence` through `lastPublished`.
   * Returns 'released', 'not-held', 'behind' (events after `lastPublished` were held meanwhile: republish them
   * and try again) or 'not-covered' (the hold starts before `fromSequence`).
   */
  public async release(streamId: string, fromSequence: number, lastPublished: number): Promise<'released' | 'not-held' | 'behind' | 'not-covered'> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { [HOLD_TABLE_PARTITION_KEY]: streamId },
          ConditionExpression: 'attribute_exists(#pk) AND #from >= :from AND #last <= :last',
          ExpressionAttributeNames: { '#pk': HOLD_TABLE_PARTITION_KEY, '#from': 'fromSequence', '#last': 'lastHeldSequence' },
          ExpressionAttributeValues: { ':from': fromSequence, ':last': lastPublished },
        }),
      );
      return 'released';
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      const current = (await this.get([streamId])).get(streamId);
      if (!current) return 'not-held';
      return current.fromSequence < fromSequence ? 'not-covered' : 'behind';
    }
  }
}
