/**
 * `npx projen bench rebuild`: a read model rebuilt from the event store (rebuild.runtime.ts) against the same
 * read model built live by the synthesized projection definition (Skafu Local's Step Functions runner), both
 * against one DynamoDB Local in the same run. Prints events per second of each, their ratio, and the cost per
 * million rebuilt events on AWS derived from the requests the rebuild counted (on-demand prices from
 * shared/reference/aws-behaviours.md §8; items under 1 KB).
 *
 * Then the versioned rebuild a user starts by raising a read model's `version`: the new version's backfill in
 * place (the live checkpoints of `Orders@v2`, the BACKFILLING hand-over and its last pass), then the switch of the
 * active-version pointer, timed and counted the same way, against the same live rate.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { fmt, pool, printSection, timed } from './harness';
import { startDynamoDbLocal } from '../local/src/dynamodb-local';
import { runDefinition } from '../local/src/state-machines';
import { createTableInputFromCfn } from '../local/src/tables';
import { DomainEventBus, ErrorBus, EventStoreTable, ProjectionAction, ProjectionStateMachine, ProjectionValue, ReadModelTable, ValueType } from '../src';
import { runRebuildStep } from '../src/projections/rebuild.runtime';
import { switchActiveVersion } from '../src/projections/versions.runtime';
import { EventStore } from '../src/runtime';

const AGGREGATES = Number(process.env.SKAFU_BENCH_AGGREGATES ?? 150);
const EVENTS_PER_AGGREGATE = Number(process.env.SKAFU_BENCH_EVENTS ?? 10);
const WRU = 0.625 / 1e6;
const RRU = 0.125 / 1e6;

export async function runRebuildBench(): Promise<void> {
  const dynamo = await startDynamoDbLocal();
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
  try {
    // Version 1 (built live) and version 2 (the versioned rebuild): the same construct ids, so one set of tables.
    const synth = (version: number) => {
      const stack = new Stack(new App(), 'Bench', { env: { account: '111111111111', region: 'us-east-1' } });
      const eventStore = new EventStoreTable(stack, 'Store');
      const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' }, version });
      const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
      new ProjectionStateMachine(stack, 'Projections', {
        domain: 'bench',
        eventBus: new DomainEventBus(stack, 'Bus').eventBus,
        errorBus: new ErrorBus(stack, 'Errors'),
        eventStore,
        aggregateTypes: ['Order'],
        projections: [
          { eventType: 'OrderPlaced', readModel: orders, action: ProjectionAction.putItem({ key, attributes: { amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } }) },
          { eventType: 'OrderNoted', readModel: orders, action: ProjectionAction.updateItem({ key, append: { notes: ProjectionValue.fromData('note') }, add: { n: ProjectionValue.number(1) } }) },
        ],
      });
      return Template.fromStack(stack);
    };
    const template = synth(1);
    const templateV2 = synth(2);
    const names: Record<string, string> = {};
    for (const [id, r] of Object.entries(templateV2.findResources('AWS::DynamoDB::Table'))) {
      names[id] = `${id}-${randomUUID().slice(0, 6)}`;
      await client.send(new CreateTableCommand(createTableInputFromCfn(r.Properties, names[id])));
    }
    const name = (prefix: string) => names[Object.keys(names).find((k) => k.startsWith(prefix) && !(prefix === 'OrdersTable' && k.startsWith('OrdersTableV2')))!];
    const refs: Record<string, string> = { ...names };
    for (const id of Object.keys(template.findResources('AWS::Events::EventBus'))) refs[id] = 'skafu-errors';
    const resolve = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(resolve) : v && typeof v === 'object'
        ? 'Ref' in v ? refs[(v as { Ref: string }).Ref] ?? 'x' : 'Fn::Join' in v ? ((v as any)['Fn::Join'][1] as unknown[]).map(resolve).join('') : 'Fn::GetAtt' in v ? `arn:${(v as any)['Fn::GetAtt'][0]}` : v
        : v;
    const projectionOf = (t: Template) => {
      const machine = Object.values(t.findResources('AWS::StepFunctions::StateMachine')).find((m) => m.Properties.StateMachineType === 'EXPRESS')!;
      return JSON.parse(resolve(machine.Properties.DefinitionString) as string);
    };
    const definition = projectionOf(template);
    const definitionV2 = projectionOf(templateV2);

    const store = new EventStore({ tableName: name('Store'), domain: 'bench', client });
    const details: Array<Array<Record<string, any>>> = [];
    await pool(AGGREGATES, 8, async (a) => {
      const events = Array.from({ length: EVENTS_PER_AGGREGATE }, (_, i) => (i === 0 ? { eventType: 'OrderPlaced', data: { amount: a } } : { eventType: 'OrderNoted', data: { note: `n${i}` } }));
      const result = await store.append(`order-${a}`, events as never, { expectedVersion: 'no-stream', aggregateType: 'Order' });
      details[a] = result.events.map((e) => ({ ...e, timestampEpochSeconds: Math.floor(Date.parse(e.timestamp) / 1000) }));
    });
    const total = AGGREGATES * EVENTS_PER_AGGREGATE;

    const live = await timed(() =>
      pool(AGGREGATES, 16, async (a) => {
        for (const detail of details[a]) {
          await runDefinition(definition, { 'detail-type': detail.eventType, 'source': 'skafu.bench', detail }, {
            client,
            putEvents: () => { throw new Error('a live projection failed'); },
            stateMachine: { id: 'arn:aws:states:us-east-1:111111111111:stateMachine:bench', name: 'bench' },
            waitMs: 10,
            retryMs: 0,
          });
        }
      }),
    );
    const target = `Orders-rebuilt-${randomUUID().slice(0, 6)}`;
    const [, ordersResource] = Object.entries(template.findResources('AWS::DynamoDB::Table')).find(([id]) => id.startsWith('OrdersTable'))!;
    await client.send(new CreateTableCommand(createTableInputFromCfn(ordersResource.Properties, target)));
    const rebuild = await timed(async () => {
      let progress = await runRebuildStep(
        { client, eventStoreTable: name('Store'), domain: 'bench', aggregateTypes: ['Order'], definition, readModelTable: name('OrdersTable'), targetTable: target, stateTable: name('ProjectionsRebuildState'), rebuildId: 'bench', concurrency: 16 },
        Date.now() + 600_000,
      );
      while (progress.status === 'RUNNING') {
        progress = await runRebuildStep(
          { client, eventStoreTable: name('Store'), domain: 'bench', aggregateTypes: ['Order'], definition, readModelTable: name('OrdersTable'), targetTable: target, stateTable: name('ProjectionsRebuildState'), rebuildId: 'bench', concurrency: 16 },
          Date.now() + 600_000,
        );
      }
      return progress;
    });
    // The versioned rebuild: Orders raised to version 2, its backfill in place, then the switch.
    const checkpointTable = name('ProjectionsCheckpoints');
    const v2Table = name('OrdersTableV2');
    const versioned = await timed(async () => {
      const config = {
        client,
        eventStoreTable: name('Store'),
        domain: 'bench',
        aggregateTypes: ['Order'],
        definition: definitionV2,
        readModelTable: v2Table,
        targetTable: v2Table,
        stateTable: name('ProjectionsRebuildState'),
        rebuildId: 'Orders@v2:bench',
        backfill: { checkpointTable, readModel: 'Orders@v2' },
        concurrency: 16,
      };
      let progress = await runRebuildStep(config, Date.now() + 600_000);
      while (progress.status === 'RUNNING') progress = await runRebuildStep(config, Date.now() + 600_000);
      const switched = await switchActiveVersion(client, { checkpointTable, readModelName: 'Orders', version: 2, tableName: v2Table, rebuildId: 'Orders@v2:bench' });
      if (progress.status !== 'CAUGHT_UP' || !switched.switched) throw new Error(`the versioned rebuild ended ${progress.status}, switched: ${switched.switched}`);
      return progress;
    });
    const p = rebuild.value;
    const liveRate = total / (live.ms / 1000);
    const rebuildRate = p.eventsApplied / (rebuild.ms / 1000);
    // Transactional writes cost 2 WRU per item (prepare + commit); consistent reads of small items 1 RRU.
    const costPerMillion = ((p.writeRequests * 2 * WRU + p.readRequests * RRU) / p.eventsApplied) * 1e6;
    const v = versioned.value;
    const versionedRate = v.eventsApplied / (versioned.ms / 1000);
    // Besides the counted requests: two status PutItems (BACKFILLING, LIVE), the progress item once per page, the pointer PutItem.
    const pages = Math.ceil(AGGREGATES / 100) * v.pass;
    const versionedCost = (((v.writeRequests * 2 + 2 + pages + 1) * WRU + v.readRequests * RRU) / v.eventsApplied) * 1e6;
    printSection(`rebuild (${AGGREGATES} aggregates x ${EVENTS_PER_AGGREGATE} events, DynamoDB Local, this machine)`, [
      { name: 'live projection (synthesized ASL, 16 aggregates at a time)', value: `${fmt(liveRate)} events/s (${total} events in ${fmt(live.ms / 1000)} s)` },
      { name: 'rebuild from the store (16 aggregates at a time)', value: `${fmt(rebuildRate)} events/s (${p.eventsApplied} events in ${fmt(rebuild.ms / 1000)} s, ${p.pass} passes)` },
      { name: 'ratio rebuild / live', value: `${fmt(rebuildRate / liveRate, 2)}x` },
      { name: 'requests counted', value: `${p.writeRequests} transactional item writes, ${p.readRequests} reads` },
      { name: 'DynamoDB cost per million rebuilt events (on-demand)', value: `$${fmt(costPerMillion, 2)}` },
      { name: 'versioned rebuild (version 2 backfilled in place, then switched)', value: `${fmt(versionedRate)} events/s (${v.eventsApplied} events in ${fmt(versioned.ms / 1000)} s, ${v.pass} passes)` },
      { name: 'ratio versioned rebuild / live', value: `${fmt(versionedRate / liveRate, 2)}x` },
      { name: 'versioned rebuild requests counted', value: `${v.writeRequests} transactional item writes, ${v.readRequests} reads, ${pages} progress writes, 3 status/pointer writes` },
      { name: 'DynamoDB cost per million events, versioned rebuild (on-demand)', value: `$${fmt(versionedCost, 2)}` },
    ]);
  } finally {
    client.destroy();
    await dynamo.stop();
  }
}
