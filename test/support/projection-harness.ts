/**
 * What the projection tests share: the synthesized tables created in DynamoDB Local (and copies of them for a
 * reference built live), the synthesized state machines' ASL resolved to those tables, events appended with the
 * real event store, and the live projection run by aws-local-stepfunctions (Skafu Local's runner) event by event.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Template } from 'aws-cdk-lib/assertions';
import { definitionFrom, runLocal, type CfnRefs } from './asl';
import { createTableInputFromCfn } from './tables';
import type { EventStore } from '../../src/runtime';

/** The template's tables created under unique names: `names[logicalId]`, and a copy per given suffix (`copies[suffix][logicalId]`). */
export async function createTemplateTables(
  client: DynamoDBClient,
  template: Template,
  options: { copies?: string[]; skipCopies?: (logicalId: string) => boolean } = {},
): Promise<{ names: Record<string, string>; copies: Record<string, Record<string, string>> }> {
  const names: Record<string, string> = {};
  const copies: Record<string, Record<string, string>> = Object.fromEntries((options.copies ?? []).map((c) => [c, {}]));
  for (const [logicalId, resource] of Object.entries(template.findResources('AWS::DynamoDB::Table'))) {
    names[logicalId] = `${logicalId}-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, names[logicalId])));
    if (options.skipCopies?.(logicalId)) continue;
    for (const suffix of options.copies ?? []) {
      copies[suffix][logicalId] = `${logicalId}-${suffix}-${randomUUID().slice(0, 8)}`;
      await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, copies[suffix][logicalId])));
    }
  }
  return { names, copies };
}

/** The name of the table whose logical id starts with `prefix` (and not with any of `unless`). */
export function tableOf(names: Record<string, string>, prefix: string, unless: string[] = []): string {
  const ids = Object.keys(names).filter((k) => k.startsWith(prefix) && !unless.some((u) => k.startsWith(u)));
  if (ids.length !== 1) throw new Error(`${ids.length} tables match ${prefix}: ${ids.join(', ')}`);
  return names[ids[0]];
}

/** The ASL of the template's state machine of a type (EXPRESS: the projection; STANDARD: the backfill), on `names`. */
export function machineDefinition(template: Template, type: 'EXPRESS' | 'STANDARD', names: Record<string, string>): Record<string, any> {
  const refs: CfnRefs = { ...names };
  for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
  for (const id of Object.keys(template.findResources('AWS::Lambda::Function'))) refs[id] = id;
  const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine')).find((m) => (m.Properties.StateMachineType ?? 'STANDARD') === type);
  if (!machine) throw new Error(`no ${type} state machine in the template`);
  return definitionFrom(machine as never, refs);
}

export type Detail = Record<string, any>;

/** Appends events with the real event store; returns them as EventBridge details (with `timestampEpochSeconds`). */
export async function appendEvents(
  store: EventStore,
  aggregateId: string,
  events: Array<{ eventType: string; data: Record<string, unknown> }>,
  expectedVersion: number | 'no-stream',
  aggregateType: string,
): Promise<Detail[]> {
  const result = await store.append(aggregateId, events as never, { expectedVersion: expectedVersion as never, aggregateType, metadata: { userId: 'u' } });
  return result.events.map((e) => ({ ...e, timestampEpochSeconds: Math.floor(Date.parse(e.timestamp) / 1000) }));
}

/** The live projection: each event an execution of the synthesized ASL; error events and failures are collected. */
export class LiveProjection {
  /** Error bus entries and failed executions. */
  public readonly errors: unknown[] = [];
  /** How each read model's branch ended, counted (APPLIED, LEFT_TO_BACKFILL, ...). */
  public readonly outcomes = new Map<string, number>();

  constructor(
    private readonly client: DynamoDBClient,
    private readonly source: string,
  ) {}

  public async project(definition: Record<string, any>, details: Detail[]): Promise<void> {
    for (const detail of details) {
      try {
        const out = (await runLocal(definition, { 'detail-type': detail.eventType, 'source': this.source, detail }, { client: this.client, onPutEvents: (e) => this.errors.push(...e) })) as { readModels?: string[] };
        for (const o of out.readModels ?? []) this.outcomes.set(o, (this.outcomes.get(o) ?? 0) + 1);
      } catch (err) {
        this.errors.push({ execution: (err as Error).message, detail });
      }
    }
  }

  /** Each aggregate's events in order, several aggregates at a time (as EventBridge delivers them, roughly). */
  public async projectAll(definition: Record<string, any>, streams: Detail[][], concurrency = 16): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < streams.length) await this.project(definition, streams[next++]);
      }),
    );
  }
}

/** Every item of a table (consistent reads), sorted by the given key attributes. */
export async function scanTable(client: DynamoDBClient, name: string, keys: string[]): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: name, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...(page.Items ?? []).map((i) => unmarshall(i)));
    start = page.LastEvaluatedKey;
  } while (start);
  const sortKey = (i: Record<string, unknown>) => keys.map((k) => String(i[k] ?? '')).join('\u0000');
  return items.sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
}
