/**
 * A read model's version in the synthesized templates: the identity a version gets in the projection machinery
 * (`Totals` for version 1, byte for byte what deployments made before versions existed; `Totals@v2` after), the
 * backfill and version guard custom resources, and the query side's pointer grants. Executions are proven in
 * versioned-rebuild.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, CfnElement, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import {
  DomainEventBus,
  ErrorBus,
  EventStoreTable,
  ProjectionAction,
  ProjectionStateMachine,
  ProjectionValue,
  QueryInput,
  ReadModelTable,
  SkafuEnvironment,
  SkafuPlatform,
  ValueType,
} from '../../src';
import { driftReport } from '../../src/projections/drift.runtime';
import { parseParkedEventsRequest } from '../../src/projections/parked-events.runtime';
import { writesFor } from '../../src/projections/rebuild.runtime';
import { cfnLint } from '../support/cfn-lint';
import { applyAwsSolutions, nagErrors } from '../support/nag';
import { ordersDomain } from '../support/orders-domain';

function synth(totalsProps: { version?: number; retainPreviousVersion?: boolean; previousVersionRetention?: Duration } = {}, explicitV1 = false) {
  const stack = new Stack(new App(), 'Shop', { env: { account: '111111111111', region: 'us-east-1' } });
  const store = new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const orders = new ReadModelTable(stack, 'Orders', { partitionKey: { name: 'orderId' }, ...(explicitV1 ? { version: 1 } : {}) });
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: 'customer' }, ...totalsProps });
  const key = { orderId: ProjectionValue.fromEnvelope('aggregateId') };
  const machine = new ProjectionStateMachine(stack, 'Projections', {
    domain: 'shop',
    eventBus: bus.eventBus,
    errorBus,
    eventStore: store,
    aggregateTypes: ['Order'],
    projections: [
      { eventType: 'OrderPlaced', readModel: orders, action: ProjectionAction.putItem({ key, attributes: { customer: ProjectionValue.fromData('customer') } }) },
      { eventType: 'OrderPlaced', readModel: totals, action: ProjectionAction.updateItem({ key: { customer: ProjectionValue.fromData('customer') }, add: { amount: ProjectionValue.fromData('amount', ValueType.NUMBER) } }) },
    ],
  });
  return { stack, template: Template.fromStack(stack), machine, totals };
}

const json = (t: Template) => JSON.stringify(t.toJSON());

test('version 1 keys stay byte for byte what they were: branch names, checkpoint and parking keys, backfill status and custom resource', () => {
  const implicit = synth();
  const explicit = synth({ version: 1 }, true);
  // Saying version 1 changes nothing at all.
  expect(json(explicit.template)).toBe(json(implicit.template));
  const text = json(implicit.template);
  // The keys of deployments made before versions existed (a change here would freeze every existing aggregate).
  expect(text).toContain("States.Format('Totals#{}', $.detail.aggregateId)");
  expect(text).toContain("States.Format('Orders#{}', $.detail.aggregateId)");
  expect(text).toContain('#backfill#Totals');
  expect(text).toContain('Apply OrderPlaced (Totals)');
  expect(text).not.toContain('@v');
  expect(implicit.machine.readModelNames).toEqual(['Orders', 'Totals']);
  // The backfill custom resource keeps its logical id and its properties: the ids below are what this app
  // synthesized before versions existed (measured on 26a7fcb's parent code path, unchanged for version 1).
  const backfills = implicit.template.findResources('Custom::SkafuReadModelBackfill');
  expect(Object.keys(backfills).sort()).toEqual(['ProjectionsBackfillOrders1C07D1F5', 'ProjectionsBackfillTotalsC1189A83']);
  expect(backfills.ProjectionsBackfillTotalsC1189A83.Properties.ReadModel).toBe('Totals');
  implicit.template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SKAFU_READ_MODELS: 'Orders,Totals' }) },
  });
  const fns = implicit.template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { SKAFU_READ_MODEL_TABLES: Match.anyValue() } } } });
  const tablesEnv = JSON.stringify(Object.values(fns)[0].Properties.Environment.Variables.SKAFU_READ_MODEL_TABLES);
  expect(tablesEnv).toContain('\\"Totals\\":');
  // No guard for a version 1 read model.
  implicit.template.resourceCountIs('Custom::SkafuReadModelVersionGuard', 0);
  // The v1 table keeps its construct id 'Table' and RETAIN.
  const tables = implicit.template.findResources('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
  expect(Object.keys(tables).some((id) => id.startsWith('TotalsTable'))).toBe(true);
});

test('version 2 has its own identity everywhere: branch, checkpoint, parking and status keys, backfill input, error context', () => {
  const { template, machine, totals } = synth({ version: 2 });
  expect(totals.versionedName).toBe('Totals@v2');
  expect(machine.readModelNames).toEqual(['Orders', 'Totals@v2']);
  const text = json(template);
  expect(text).toContain("States.Format('Totals@v2#{}', $.detail.aggregateId)");
  expect(text).toContain('#backfill#Totals@v2');
  expect(text).toContain('Apply OrderPlaced (Totals@v2)');
  // Orders (version 1) is unchanged by another read model's version.
  expect(text).toContain("States.Format('Orders#{}', $.detail.aggregateId)");
  expect(text).not.toContain("States.Format('Totals#{}'");
  const definition = JSON.parse(
    JSON.stringify(Object.values(template.findResources('AWS::StepFunctions::StateMachine')).find((m) => m.Properties.StateMachineType === 'EXPRESS')!.Properties.DefinitionString),
  );
  expect(JSON.stringify(definition)).toMatch(/"readModel\\":\\"Totals@v2\\"/);
  // The backfill of version 2 is a new custom resource, started with the versioned identity; version 1's is gone.
  const backfills = Object.values(template.findResources('Custom::SkafuReadModelBackfill')).map((r) => r.Properties.ReadModel).sort();
  expect(backfills).toEqual(['Orders', 'Totals@v2']);
  // One guard, for the read model with a previous version.
  template.resourceCountIs('Custom::SkafuReadModelVersionGuard', 1);
  template.hasResourceProperties('Custom::SkafuReadModelVersionGuard', { ReadModelName: 'Totals', Version: 2, RetainPreviousVersion: 'true', RetentionSeconds: 3 * 86400 });
});

test("the live projection's writes of a versioned branch are found (writesFor), aimed at the new version's table only", () => {
  const definition = {
    States: {
      ApplyPerReadModel: {
        Type: 'Parallel',
        Branches: [
          { States: { 'Apply OrderPlaced (Totals@v2)': { Type: 'Task', Parameters: { TransactItems: [{ Update: { TableName: 'cp' } }, { Update: { TableName: 'totals-v2' } }] } } } },
          { States: { 'Apply OrderPlaced (Orders)': { Type: 'Task', Parameters: { TransactItems: [{ Update: { TableName: 'cp' } }, { Put: { TableName: 'orders' } }] } } } },
        ],
      },
    },
  };
  expect([...writesFor(definition, 'totals-v2').keys()]).toEqual(['OrderPlaced']);
  expect(writesFor(definition, 'totals-v2').get('OrderPlaced')).toEqual([{ Update: { TableName: 'totals-v2' } }]);
  expect(writesFor(definition, 'orders').get('OrderPlaced')).toEqual([{ Put: { TableName: 'orders' } }]);
});

test('the operator and the drift report take versioned identities and refuse anything else', async () => {
  expect(parseParkedEventsRequest({ action: 'list', readModel: 'Totals@v2' })).toMatchObject({ readModel: 'Totals@v2' });
  expect(parseParkedEventsRequest({ action: 'retry', readModel: 'Totals', requestedBy: 'ops' })).toMatchObject({ readModel: 'Totals' });
  for (const bad of ['__proto__', 'Totals@v0', 'Totals@vx', 'Totals@v', 'Totals@v2@v3', 'Totals#x', 'Totals@v12345', '', 42]) {
    expect(() => parseParkedEventsRequest({ action: 'list', readModel: bad })).toThrow(/"readModel" must be/);
  }
  const config = { client: {} as never, eventStoreTable: 's', domain: 'shop', aggregateTypes: ['Order'], checkpointTable: 'cp' };
  for (const bad of ['__proto__', 'Totals@v0', 'Totals@vx']) {
    await expect(driftReport({ ...config, readModels: ['Totals@v2', bad] })).rejects.toThrow(/not a read model identity/);
  }
});

test('conflicting versions are refused at synth, naming them', () => {
  const stack = new Stack(new App(), 'Shop');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const v1 = new ReadModelTable(stack, 'A', { partitionKey: { name: 'id' }, readModelName: 'Totals' });
  const v2 = new ReadModelTable(stack, 'B', { partitionKey: { name: 'id' }, readModelName: 'Totals', version: 2 });
  const action = ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') }, attributes: {} });
  expect(
    () => new ProjectionStateMachine(stack, 'P', { domain: 'shop', eventBus: bus.eventBus, errorBus, projections: [{ eventType: 'X', readModel: v1, action }, { eventType: 'X', readModel: v2, action }] }),
  ).toThrow(/same readModelName 'Totals'.*at version 2: .*needs 'eventStore'/s);
});

describe('queries of a domain whose read model is at version 2', () => {
  function domainTemplate(readModel: Record<string, unknown>) {
    const stack = new Stack(new App(), 'Skafu', { env: { account: '111111111111', region: 'us-east-1' } });
    const platform = new SkafuPlatform(stack, 'Platform', { environment: SkafuEnvironment.PRODUCTION, nestedDomainStacks: false });
    const custom = new lambda.Function(stack, 'CustomQuery', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = async () => ({})') });
    const domain = platform.addDomain(
      ordersDomain({ indexes: [{ indexName: 'byItem', partitionKey: { name: 'item' } }], ...readModel }, [
        { name: 'GetOrder', path: 'orders/{orderId}', readModel: 'orders', allowedGroups: ['Developer'], key: { orderId: QueryInput.pathParameter('orderId') } },
        { name: 'Report', path: 'report', readModel: 'orders', allowedGroups: ['Developer'], handler: custom },
      ]),
    );
    return { template: Template.fromStack(stack), stack, domain, custom };
  }

  test('the bundled and the custom query handler get both tables, the versions and GetItem on exactly the pointer key', () => {
    const { template, stack, domain, custom } = domainTemplate({ version: 2 });
    const rm = domain.readModels.orders;
    const id = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
    const ref = (t: { table: unknown } | undefined) => ({ Ref: id((t as { table: IConstruct }).table) });
    const envOf = (fnId: string) => template.toJSON().Resources[fnId].Properties.Environment.Variables;
    const versionsEnv = (fnId: string) => stack.resolve(envOf(fnId).SKAFU_ACTIVE_VERSION_ORDERS);
    for (const fn of [domain.queryFunction!, custom]) {
      const fnId = id(fn);
      const vars = template.toJSON().Resources[fnId].Properties.Environment.Variables;
      expect(vars.SKAFU_READ_MODEL_ORDERS).toEqual({ Ref: id(rm.table) });
      const versions = JSON.stringify(versionsEnv(fnId));
      expect(versions).toContain('\\"version\\":2');
      expect(versions).toContain(JSON.stringify(ref({ table: rm.previousVersionTable })));
      expect(versions).toContain(JSON.stringify({ Ref: id(domain.projections!.checkpointTable) }));
      expect(versions).toContain('#active#orders');
      // Read on both versions' tables and indexes; GetItem on the checkpoint table only for the pointer's key.
      const statements = Object.values(template.findResources('AWS::IAM::Policy'))
        .filter((p) => JSON.stringify(p.Properties.Roles).includes(id((fn as lambda.Function).role!)))
        .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<Record<string, any>>);
      const read = statements.find((s) => JSON.stringify(s.Action) === JSON.stringify(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan']));
      const resources = JSON.stringify(read?.Resource);
      for (const t of [rm.table, rm.previousVersionTable!]) {
        expect(resources).toContain(id(t));
        expect(resources).toContain('/index/byItem');
      }
      const pointer = statements.find((s) => s.Condition?.['ForAllValues:StringEquals']?.['dynamodb:LeadingKeys']);
      expect(pointer).toMatchObject({ Action: 'dynamodb:GetItem', Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['#active#orders'] } } });
      expect(JSON.stringify(pointer!.Resource)).toContain(id(domain.projections!.checkpointTable));
    }
  });

  test('version 1, and version 2 once its previous version is no longer kept, read one table with no pointer', () => {
    for (const props of [{}, { version: 2, retainPreviousVersion: false }]) {
      const { template, stack, domain } = domainTemplate(props);
      const fnId = stack.getLogicalId(domain.queryFunction!.node.defaultChild as CfnElement);
      const vars = template.toJSON().Resources[fnId].Properties.Environment.Variables;
      expect(vars.SKAFU_ACTIVE_VERSION_ORDERS).toBeUndefined();
      expect(JSON.stringify(template.toJSON())).not.toContain('#active#orders"]');
    }
  });

  test('a read model at version 2 whose previous version is dropped is still guarded', () => {
    const { template } = domainTemplate({ version: 2, retainPreviousVersion: false, previousVersionRetention: Duration.hours(12) });
    template.hasResourceProperties('Custom::SkafuReadModelVersionGuard', { ReadModelName: 'orders', Version: 2, RetainPreviousVersion: 'false', RetentionSeconds: 43200 });
    // Only the new version's table is left in the template; the guard keeps CloudFormation from deleting the old one early.
    expect(Object.keys(template.findResources('AWS::DynamoDB::Table')).filter((k) => /ReadModelOrders/.test(k))).toEqual([expect.stringMatching(/TableV2/)]);
  });
});

test('a platform with a read model at version 3 is cdk-nag clean and passes cfn-lint', () => {
  const stack = new Stack(new App(), 'Skafu', { env: { account: '111111111111', region: 'us-east-1' } });
  applyAwsSolutions(stack);
  const platform = new SkafuPlatform(stack, 'Platform', { environment: SkafuEnvironment.PRODUCTION });
  platform.addDomain(
    ordersDomain({ version: 3 }, [{ name: 'GetOrder', path: 'orders/{orderId}', readModel: 'orders', allowedGroups: ['Developer'], key: { orderId: QueryInput.pathParameter('orderId') } }]),
  );
  const assembly = (stack.node.root as App).synth();
  expect(nagErrors(stack)).toEqual([]);
  const templates = Object.fromEntries(assembly.stacks.map((s) => [s.stackName, s.template]));
  expect(cfnLint(templates).filter((f) => f.level !== 'Informational')).toEqual([]);
  // The guard reads its own stack's status (a rollback or a version lowered by hand): DescribeStacks on that stack
  // only (a nested stack's own id where the guard is in one), in the template that holds the guard, nowhere else.
  // Nested stacks' templates are files of the assembly, not among its stacks.
  const all: Record<string, unknown> = { ...templates };
  for (const file of readdirSync(assembly.directory).filter((f) => f.endsWith('.nested.template.json'))) all[file] = JSON.parse(readFileSync(join(assembly.directory, file), 'utf8'));
  const describeStacks = Object.entries(all).flatMap(([name, template]) =>
    Object.values((template as { Resources: Record<string, any> }).Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap((r) => r.Properties.PolicyDocument.Statement as Array<Record<string, any>>)
      .filter((st) => [st.Action].flat().some((a: string) => a.startsWith('cloudformation:')))
      .map((st) => ({ name, st })),
  );
  const guarded = Object.entries(all).filter(([, template]) => JSON.stringify(template).includes('Custom::SkafuReadModelVersionGuard')).map(([name]) => name);
  // In a nested stack: its own id and its root's (passed in by CDK as a parameter), nothing else.
  expect(describeStacks).toEqual([{ name: guarded[0], st: { Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: [{ Ref: 'AWS::StackId' }, { Ref: expect.stringMatching(/^referenceto.*AWSStackId$/) }] } }]);
  expect(guarded).toHaveLength(1);
  // Version 3 keeps version 2's table and has its guard; version 1's table is gone from the template.
  const t = Template.fromStack(stack);
  const readModelTables = Object.keys(t.findResources('AWS::DynamoDB::Table')).filter((k) => /ReadModelOrders/.test(k));
  expect(readModelTables.map((k) => k.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([expect.stringMatching(/TableV2$/), expect.stringMatching(/TableV3$/)]);
});
