/**
 * Independent review of read model versions (issue #12, last part): the cases the engineers' tests do not cover,
 * as CloudFormation and DynamoDB behave. Each `test.failing` demonstrates a defect (it passes while the defect is
 * there; turn it into `test` when it is fixed). The reasons are in the review report and in each test's comment.
 *
 * CloudFormation behaviours relied on (AWS CloudFormation User Guide):
 * - DeletionPolicy attribute: "This capability doesn't apply to resources whose physical instance is replaced
 *   during stack update operations": a replaced table is deleted whatever its policy.
 * - A key schema change of AWS::DynamoDB::Table (KeySchema, AttributeDefinitions of keys) is "Replacement".
 * - DeletionPolicy Retain keeps a resource also when the operation that created it rolls back (that is why
 *   RetainExceptOnCreate exists), and a custom resource's Delete during a rollback does not stop the Step
 *   Functions execution its Create started.
 * - A custom resource is sent an Update with OldResourceProperties whenever its properties change, whether the
 *   change is a rollback or a deployment that lowered the value by hand: the request does not say which.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteItemCommand, DeleteTableCommand, GetItemCommand, PutItemCommand, ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { App, CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
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
import { createQueryHandler } from '../../src/domain/query.lambda';
import { powertools } from '../../src/internal/powertools';
import { handler as backfillStep, deployRebuildId, type BackfillStepOutput } from '../../src/projections/backfill.lambda';
import { parseParkedEventsRequest } from '../../src/projections/parked-events.runtime';
import { runRebuildStep } from '../../src/projections/rebuild.runtime';
import { guardDecision, hasReadModelItems, parseVersionedReadModel, readActivePointer, switchActiveVersion, type GuardRequest } from '../../src/projections/versions.runtime';
import { ErrorReporter, EventStore, type DomainSpec } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { captureCloudFormationResponses, versionGuardRequest } from '../support/cloudformation-response';
import { ordersDomain } from '../support/orders-domain';
import { appendEvents, createTemplateTables, LiveProjection, machineDefinition, scanTable, tableOf } from '../support/projection-harness';
import { createTableInputFromCfn, localClient } from '../support/tables';

jest.setTimeout(120_000);

/** A platform with one read model `Totals` at `version`, keyed by `partitionKey` (`fixed`: a changed projection). */
function synth(version: number, partitionKey = 'customer', fixed = false): Template {
  const stack = new Stack(new App(), 'Review', { env: { account: '111111111111', region: 'us-east-1' } });
  const store = new EventStoreTable(stack, 'Store');
  const bus = new DomainEventBus(stack, 'Events');
  const errorBus = new ErrorBus(stack, 'Errors');
  const totals = new ReadModelTable(stack, 'Totals', { partitionKey: { name: partitionKey }, version });
  new ProjectionStateMachine(stack, 'Projections', {
    domain: 'review',
    eventBus: bus.eventBus,
    errorBus,
    eventStore: store,
    aggregateTypes: ['Order'],
    projections: [
      {
        eventType: 'OrderPlaced',
        readModel: totals,
        action: ProjectionAction.updateItem({
          key: { [partitionKey]: ProjectionValue.fromData('customer') },
          // `fixed`: a projection that no longer adds `amount` (which a poison event holds as text).
          add: fixed ? { orders: ProjectionValue.number(1) } : { amount: ProjectionValue.fromData('amount', ValueType.NUMBER) },
        }),
      },
    ],
  });
  return Template.fromStack(stack);
}

const ask = (request: Partial<GuardRequest>, pointer: Parameters<typeof guardDecision>[1], now = new Date('2026-11-10T00:00:00Z')) =>
  guardDecision({ requestType: 'Update', readModelName: 'Totals', version: 2, retainPreviousVersion: true, retentionSeconds: 3 * 86400, ...request }, pointer, now);

describe('the version guard, as CloudFormation asks it', () => {
  // HIGH. A new environment (a new stage, a CI stack, a disaster-recovery region) deployed from code whose read
  // model is already at version 3: the guard is Created, there is no pointer (no version was ever active there),
  // and it answers FAILED ("version 2 never became active"), so the stack's creation fails and rolls back. The
  // only way to deploy that code is to edit it down to version 1, then 2, then 3, three deployments with backfills.
  // Fixed: on a Create with no pointer the function looks in the checkpoint table for any item of the read model
  // (readModelHasItems; the look-up itself is tested against DynamoDB Local below). None: a new environment.
  test('a new environment deployed straight from code at version 3 is created', () => {
    expect(ask({ requestType: 'Create', version: 3, readModelHasItems: false }, undefined)).toMatchObject({ status: 'SUCCESS', reason: expect.stringMatching(/Totals: a new environment/) });
    // The same Create where the read model has checkpoints (an existing environment jumping 1 → 3) is refused as before.
    expect(ask({ requestType: 'Create', version: 3, readModelHasItems: true }, undefined)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/version 2 never became active/) });
    expect(ask({ requestType: 'Create', version: 3 }, undefined)).toMatchObject({ status: 'FAILED' });
    // An Update (the guard existed: not a new environment) is never taken for one.
    expect(ask({ version: 3, previousPropertiesVersion: 2, readModelHasItems: false }, undefined)).toMatchObject({ status: 'FAILED' });
  });

  // MEDIUM. The README promises "the old version is removed after a retention you choose", and the guard refuses
  // `retainPreviousVersion: false` before `previousVersionRetention` has passed since the switch. Raising version 2
  // to 3 one minute after the switch to 2 removes version 1's table (it leaves the template, DESTROY) with no
  // retention at all: the fallback the retention was meant to keep is gone.
  test("raising version 2 to 3 a minute after the switch to 2 does not remove version 1's table before the retention", () => {
    const now = new Date('2026-11-10T00:00:00Z');
    const switchedToV2 = { version: 2, switchedAt: new Date(now.getTime() - 60_000).toISOString() };
    expect(ask({ version: 3, previousPropertiesVersion: 2 }, switchedToV2, now)).toMatchObject({
      status: 'FAILED',
      reason: expect.stringMatching(/read model Totals: raising version 2 to 3 removes version 1's table, but the retention \(259200 s\) after the switch to version 2 at 2026-11-09T23:59:00.000Z ends at 2026-11-12T23:59:00.000Z/),
    });
    // The old properties' retention counts (version 1's table was kept under them), not the new one's.
    expect(ask({ version: 3, previousPropertiesVersion: 2, previousPropertiesRetentionSeconds: 30, retentionSeconds: 7 * 86400 }, switchedToV2, now)).toMatchObject({ status: 'SUCCESS' });
    expect(ask({ version: 3, previousPropertiesVersion: 2, previousPropertiesRetentionSeconds: 120, retentionSeconds: 0 }, switchedToV2, now)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/\(120 s\)/) });
    // After the retention: raised. Version 1's table already gone at version 2 (retainPreviousVersion was false): nothing to wait for.
    expect(ask({ version: 3, previousPropertiesVersion: 2 }, switchedToV2, new Date(now.getTime() + 3 * 86400_000))).toMatchObject({ status: 'SUCCESS' });
    expect(ask({ version: 3, previousPropertiesVersion: 2, previousPropertiesRetainedPreviousVersion: false }, switchedToV2, now)).toMatchObject({ status: 'SUCCESS' });
    // A pointer without a readable switchedAt never lets version 1's table go.
    expect(ask({ version: 3, previousPropertiesVersion: 2 }, { version: 2 }, now)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/no readable switchedAt/) });
    // 3 → 4 the same way: version 2's table.
    expect(ask({ version: 4, previousPropertiesVersion: 3 }, { version: 3, switchedAt: switchedToV2.switchedAt }, now)).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/raising version 3 to 4 removes version 2's table/) });
  });

  // MEDIUM (a promise the code does not keep). The README says "The guard also refuses ... lowering a version (its
  // table is no longer updated); it never fails a rollback". onVersionGuard passes OldResourceProperties.Version
  // as previousPropertiesVersion on every Update, and guardDecision lets every Update to a lower version through as
  // "a rollback, or a lowered version": a deployment that lowers 3 to 2 by hand is an Update 3 → 2, exactly like a
  // rollback, and succeeds. The FAILED "never lowered" branch is reachable only on Create.
  // Fixed: the function reads the stack's status (DescribeStacks on the request's StackId); a deployment is
  // UPDATE_IN_PROGRESS, a rollback UPDATE_ROLLBACK_IN_PROGRESS (through the function: the test further down).
  test('a deployment that lowers the version by hand (an Update 3 → 2 while the pointer names 3) is refused, as the README says', () => {
    const v3 = { version: 3, switchedAt: '2026-11-01T00:00:00Z' };
    expect(ask({ version: 2, previousPropertiesVersion: 3, stackStatus: 'UPDATE_IN_PROGRESS' }, v3)).toMatchObject({
      status: 'FAILED',
      reason: expect.stringMatching(/read model Totals: this deployment lowers the version from 3 to 2 \(the stack is UPDATE_IN_PROGRESS, not rolling back\)/),
    });
    // The same Update during a rollback, or when the status could not be read, goes through.
    expect(ask({ version: 2, previousPropertiesVersion: 3, stackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS' }, v3)).toMatchObject({ status: 'SUCCESS', reason: expect.stringMatching(/a rollback/) });
    expect(ask({ version: 2, previousPropertiesVersion: 3, stackStatusError: 'AccessDenied' }, v3)).toMatchObject({ status: 'SUCCESS', reason: expect.stringMatching(/could not be read \(AccessDenied\)/) });
  });
});

describe('fixed in review', () => {
  // A deployment the guard refuses (version 1 → 3: version 2 never became active) used to start the refused
  // version's backfill all the same (the backfill custom resource did not wait for the guard): after the rollback
  // the execution went on, wrote `Totals@v3#...` checkpoints and switched the pointer to 3, so that the version the
  // guard then asks for (2) was refused as "lowered", and a later version 3 started from those checkpoints.
  test('the backfill function may read its own stack\'s status (DescribeStacks on this stack only) where a guard is, and nothing of CloudFormation without one', () => {
    const cfnStatements = (t: Template) =>
      Object.values(t.findResources('AWS::IAM::Policy'))
        .flatMap((r) => r.Properties.PolicyDocument.Statement as Array<Record<string, any>>)
        .filter((st) => JSON.stringify(st.Action).includes('cloudformation:'));
    expect(cfnStatements(synth(3))).toEqual([{ Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } }]);
    expect(cfnStatements(synth(1))).toEqual([]);
  });

  test("a version's backfill starts only after its version guard let the deployment through", () => {
    const resources = synth(3).toJSON().Resources as Record<string, { Type: string; DependsOn?: string[]; Properties?: Record<string, unknown> }>;
    const guard = Object.entries(resources).find(([, r]) => r.Type === 'Custom::SkafuReadModelVersionGuard')!;
    const backfill = Object.entries(resources).find(([, r]) => r.Type === 'Custom::SkafuReadModelBackfill' && r.Properties?.ReadModel === 'Totals@v3')!;
    expect(guard).toBeDefined();
    expect(backfill[1].DependsOn).toContain(guard[0]);
  });

  // `Totals@v1` named no version (version 1's identity is `Totals`) but was accepted by the operator and drift:
  // a careless operator's `{"action":"list","readModel":"Totals@v1"}` answered "nothing parked" instead of an error.
  test('`<name>@v1` is not a read model identity: the operator says so', () => {
    expect(() => parseParkedEventsRequest({ action: 'list', readModel: 'Totals@v1' })).toThrow(/read model version's identity/);
    expect(() => parseVersionedReadModel('Totals@v1')).toThrow(/not a read model identity/);
    for (const ok of ['Totals', 'Totals@v2', 'Totals@v10', 'Totals@v9999']) expect(() => parseParkedEventsRequest({ action: 'list', readModel: ok })).not.toThrow();
    for (const bad of ['Totals@v0', 'Totals@v01', 'Totals@v10000', 'Totals@v2@v3', '__proto__', 'constructor@v1']) {
      expect(() => parseParkedEventsRequest({ action: 'list', readModel: bad })).toThrow(/read model version's identity/);
    }
    expect(parseVersionedReadModel('constructor@v2')).toEqual({ readModelName: 'constructor', version: 2 });
  });
});

describe('the version guard through the backfill function (DynamoDB Local; CloudFormation faked)', () => {
  let client: DynamoDBClient;
  let checkpointTable: string;
  const stackId = `arn:aws:cloudformation:us-east-1:111111111111:stack/Review-${randomUUID().slice(0, 6)}/${randomUUID()}`;
  const put = (aggregateId: string) => client.send(new PutItemCommand({ TableName: checkpointTable, Item: { aggregateId: { S: aggregateId }, lastEventSequence: { N: '1' } } }));

  beforeAll(async () => {
    client = localClient();
    checkpointTable = `ReviewCheckpoints-${randomUUID().slice(0, 8)}`;
    await client.send(
      new CreateTableCommand({ TableName: checkpointTable, KeySchema: [{ AttributeName: 'aggregateId', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'aggregateId', AttributeType: 'S' }], BillingMode: 'PAY_PER_REQUEST' }),
    );
    // Other read models' items, including names that extend or prefix the one looked for, and one's pointer.
    for (const key of ['Orders#o-1', 'Orders@v2#o-1', '#backfill#Orders', '#backfill#Orders@v2', '#active#Orders', 'Totals2#a', 'Totals2@v3#a', '#backfill#Totals2', '#backfill#Totals2@v2', 'Total#a', 'TotalsX@v2#a']) await put(key);
    for (let i = 0; i < 30; i++) await put(`Orders#filler-${i}`);
  });
  afterAll(() => client.destroy());

  test("the look-up finds any version's checkpoints or backfill status of the read model, page after page, and nothing of other read models", async () => {
    const fresh = `Fresh${randomUUID().slice(0, 6)}`;
    expect(await hasReadModelItems(client, checkpointTable, fresh, { pageSize: 5 })).toBe(false);
    // Names sharing a prefix are other read models ('Totals2', 'TotalsX', 'Total'): none of them is 'Totals'.
    expect(await hasReadModelItems(client, checkpointTable, 'Totals', { pageSize: 5 })).toBe(false);
    for (const key of [`${fresh}#agg-1`, `${fresh}@v2#agg-1`, `${fresh}@v7#x#y`, `#backfill#${fresh}`, `#backfill#${fresh}@v3`]) {
      await put(key);
      // Pages of 5 items: the match is on a later page than the first (found wherever it is).
      expect(await hasReadModelItems(client, checkpointTable, fresh, { pageSize: 5 })).toBe(true);
      await client.send(new DeleteItemCommand({ TableName: checkpointTable, Key: { aggregateId: { S: key } } }));
    }
    // A pointer alone is not a checkpoint (the guard reads it separately), nor a key that only starts like one.
    await put(`#active#${fresh}`);
    await put(`${fresh}@v#x`);
    expect(await hasReadModelItems(client, checkpointTable, fresh, { pageSize: 5 })).toBe(false);
    await expect(hasReadModelItems(client, checkpointTable, fresh, { deadline: Date.now() - 1 })).rejects.toThrow(/did not finish in time/);
  });

  test('Create with no pointer: a new environment at version 3 is created, a jump on an existing one refused; a version lowered by hand is refused unless the stack rolls back (DescribeStacks faked: no local engine)', async () => {
    // The pre-signed response URL is captured (node:https stubbed, nothing sent).
    const captured = captureCloudFormationResponses();
    const answers = captured.answers;
    // @aws-sdk/client-cloudformation is provided by the Lambda runtime, not installed here: a virtual fake answers
    // DescribeStacks with `stackStatus`, or fails with `describeError`.
    let stackStatus = 'UPDATE_IN_PROGRESS';
    // A nested stack: its RootId, and the root's status.
    let rootId: string | undefined;
    let rootStatus = 'UPDATE_IN_PROGRESS';
    let describeError: Error | undefined;
    const described: unknown[] = [];
    let step!: typeof backfillStep;
    jest.isolateModules(() => {
      jest.doMock(
        '@aws-sdk/client-cloudformation',
        () => ({
          CloudFormationClient: class {
            public async send(command: { input: unknown }) {
              described.push(command.input);
              if (describeError) throw describeError;
              const asked = (command.input as { StackName: string }).StackName;
              if (rootId && asked === rootId) return { Stacks: [{ StackStatus: rootStatus }] };
              return { Stacks: [{ StackStatus: stackStatus, ...(rootId ? { RootId: rootId } : {}) }] };
            }
          },
          DescribeStacksCommand: class {
            constructor(public readonly input: unknown) {}
          },
        }),
        { virtual: true },
      );
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      step = require('../../src/projections/backfill.lambda').handler;
    });
    try {
      const request = (name: string, type: 'Create' | 'Update', properties: Record<string, string>, old?: Record<string, string>) =>
        versionGuardRequest({
          requestType: type,
          readModelName: name,
          stackId,
          properties: { Version: '3', RetainPreviousVersion: 'true', RetentionSeconds: '3600', CheckpointTable: checkpointTable, ...properties },
          oldProperties: old ? { ServiceToken: 'arn', ReadModelName: name, RetainPreviousVersion: 'true', RetentionSeconds: '3600', CheckpointTable: checkpointTable, ...old } : undefined,
        });
      const answer = (event: object) => captured.answer(step, event);
      // 1. A new environment (nothing of the read model in the table, other read models' items around it).
      const fresh = `Fresh${randomUUID().slice(0, 6)}`;
      expect(await answer(request(fresh, 'Create', {}))).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(new RegExp(`read model ${fresh}: a new environment`)), Data: { ActiveVersion: '1' } });
      expect(await answer(request(fresh, 'Create', { Version: '5' }))).toMatchObject({ Status: 'SUCCESS' });
      // An existing environment at version 1 (its checkpoints are there) jumping to 3: refused as before.
      await put(`${fresh}#order-1`);
      expect(await answer(request(fresh, 'Create', {}))).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/version 2 never became active/) });

      // 2. Version 2 switched a minute ago, raised to 3: version 1's table would go; refused until the old retention passed.
      const raised = `Raised${randomUUID().slice(0, 6)}`;
      await switchActiveVersion(client, { checkpointTable, readModelName: raised, version: 2, tableName: 't2', rebuildId: 'r', now: new Date(Date.now() - 60_000) });
      const early = await answer(request(raised, 'Update', { Version: '3' }, { Version: '2' }));
      expect(early).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(new RegExp(`read model ${raised}: raising version 2 to 3 removes version 1's table, but the retention \\(3600 s\\)`)) });
      // The old properties' retention decides (30 s, passed), whatever the new one says.
      expect(await answer(request(raised, 'Update', { Version: '3', RetentionSeconds: '86400' }, { Version: '2', RetentionSeconds: '30' }))).toMatchObject({ Status: 'SUCCESS' });
      // Version 1's table already gone at version 2: nothing left to wait for.
      expect(await answer(request(raised, 'Update', { Version: '3' }, { Version: '2', RetainPreviousVersion: 'false' }))).toMatchObject({ Status: 'SUCCESS' });
      expect(described).toEqual([]);

      // 3. Version 3 active, an Update 3 → 2: refused on a stack that is updating, let through when it rolls back.
      await switchActiveVersion(client, { checkpointTable, readModelName: raised, version: 3, tableName: 't3', rebuildId: 'r' });
      const lowered = await answer(request(raised, 'Update', { Version: '2' }, { Version: '3' }));
      expect(lowered).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/lowers the version from 3 to 2 \(the stack is UPDATE_IN_PROGRESS, not rolling back\)/) });
      expect(described).toEqual([{ StackName: stackId }]);
      stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
      expect(await answer(request(raised, 'Update', { Version: '2' }, { Version: '3' }))).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(/a rollback \(the stack is UPDATE_ROLLBACK_IN_PROGRESS\)/) });
      // DescribeStacks failing (denied, throttled): let through, never failing a rollback, and the reason says why.
      describeError = Object.assign(new Error('not authorized to perform cloudformation:DescribeStacks'), { name: 'AccessDenied' });
      expect(await answer(request(raised, 'Update', { Version: '2' }, { Version: '3' }))).toMatchObject({
        Status: 'SUCCESS',
        Reason: expect.stringMatching(/the stack's status could not be read \(DescribeStacks failed: AccessDenied: not authorized.*\), and a rollback is never failed/),
      });
      expect(described).toHaveLength(3);
      // A nested stack whose own status does not say it rolls back: its root's does (rolled back with it), or not.
      describeError = undefined;
      stackStatus = 'UPDATE_IN_PROGRESS';
      rootId = 'arn:aws:cloudformation:us-east-1:111111111111:stack/Root/abc';
      rootStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
      expect(await answer(request(raised, 'Update', { Version: '2' }, { Version: '3' }))).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(/UPDATE_ROLLBACK_IN_PROGRESS/) });
      expect(described.slice(-2)).toEqual([{ StackName: stackId }, { StackName: rootId }]);
      rootStatus = 'UPDATE_IN_PROGRESS';
      expect(await answer(request(raised, 'Update', { Version: '2' }, { Version: '3' }))).toMatchObject({ Status: 'FAILED', Reason: expect.stringMatching(/the stack is UPDATE_IN_PROGRESS, not rolling back/) });
      expect(answers.every((a) => a.Reason.length <= 1000)).toBe(true);
    } finally {
      captured.restore();
    }
  });
});

describe('IAM of the query side', () => {
  // Control (passes): what a query handler's role may do with DynamoDB, all statements together. The engineers'
  // test finds the pointer statement; this one checks that nothing else reaches the checkpoint table or any table
  // other than the read model's two versions (and their indexes).
  test("a query role reads the read model's two tables and, in the checkpoint table, only the pointer item", () => {
    const stack = new Stack(new App(), 'Skafu', { env: { account: '111111111111', region: 'us-east-1' } });
    const platform = new SkafuPlatform(stack, 'Platform', { environment: SkafuEnvironment.PRODUCTION, nestedDomainStacks: false });
    const domain = platform.addDomain(
      ordersDomain({ version: 3, indexes: [{ indexName: 'byItem', partitionKey: { name: 'item' } }] }, [
        { name: 'GetOrder', path: 'orders/{orderId}', readModel: 'orders', allowedGroups: ['Developer'], key: { orderId: QueryInput.pathParameter('orderId') } },
      ]),
    );
    const template = Template.fromStack(stack);
    const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as CfnElement);
    const roleId = id(domain.queryFunction!.role! as never);
    const statements = Object.values(template.findResources('AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<Record<string, any>>)
      .filter((st) => [st.Action].flat().some((a: string) => a.startsWith('dynamodb:')));
    const rm = domain.readModels.orders;
    const allowed = [id(rm.table), id(rm.previousVersionTable!)];
    const checkpoints = id(domain.projections!.checkpointTable);
    const seen = new Set<string>();
    for (const st of statements) {
      const resources = JSON.stringify(st.Resource);
      expect(resources).not.toContain('"*"');
      const tables = [...resources.matchAll(/"Fn::GetAtt":\["([^"]+)","Arn"\]/g)].map((m) => m[1]);
      expect(tables.length).toBeGreaterThan(0);
      tables.forEach((t) => seen.add(t));
      if (tables.includes(checkpoints)) {
        expect(tables).toEqual([checkpoints]);
        expect(st).toMatchObject({ Action: 'dynamodb:GetItem', Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['#active#orders'] } } });
      } else {
        expect(tables.every((t) => allowed.includes(t))).toBe(true);
        expect([st.Action].flat().sort()).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan']);
      }
    }
    expect([...seen].sort()).toEqual([...allowed, checkpoints].sort());
  });
});

describe('the previous version in the template', () => {
  // HIGH. The previous version's table is synthesized from the *current* version's props (tableOf(version - 1)
  // in read-model-table.ts). A version 2 that changes the partition key (the most natural reason to rebuild,
  // and a careless user's first try; the README only asks not to) rewrites version 1's KeySchema in the template:
  // CloudFormation replaces version 1's table (a new, empty one; the old one with its items deleted in the cleanup,
  // whatever its DeletionPolicy), so queries answer from an empty table until version 2 switches, and the items
  // version 1 held are gone. Nothing at synth or in the guard stops it.
  // Known limit (lead): mitigated, not fixed. The previous table's UpdateReplacePolicy is Retain, so a replacement
  // leaves the old table and its items in the account (test below); queries still read the empty replacement until
  // the switch. The README and `version`'s doc say the keys must stay across versions.
  test('a replaced previous version keeps its items in the account (UpdateReplacePolicy Retain)', () => {
    const previous = Object.entries(synth(2, 'customerId').findResources('AWS::DynamoDB::Table')).find(([logicalId]) => /^TotalsTable[0-9A-F]{8}$/.test(logicalId))!;
    expect(previous[1].UpdateReplacePolicy).toBe('Retain');
    expect(previous[1].DeletionPolicy).toBe('Delete');
  });
  test.failing("a version 2 whose partition key changed leaves version 1's table as it was (no replacement)", () => {
    const tableV1 = (t: Template) => {
      const [id, resource] = Object.entries(t.findResources('AWS::DynamoDB::Table')).find(([logicalId]) => /^TotalsTable[0-9A-F]{8}$/.test(logicalId))!;
      return { id, keySchema: resource.Properties.KeySchema, attributes: resource.Properties.AttributeDefinitions };
    };
    const before = tableV1(synth(1, 'customer'));
    const after = tableV1(synth(2, 'customerId'));
    expect(after.id).toBe(before.id);
    expect(after.keySchema).toEqual(before.keySchema);
    expect(after.attributes).toEqual(before.attributes);
  });

  test('control: with the keys unchanged, version 1 keeps its logical id and key schema', () => {
    const before = Template.fromJSON(synth(1).toJSON()).findResources('AWS::DynamoDB::Table');
    const after = synth(2).findResources('AWS::DynamoDB::Table');
    const id = Object.keys(before).find((k) => /^TotalsTable[0-9A-F]{8}$/.test(k))!;
    expect(after[id].Properties.KeySchema).toEqual(before[id].Properties.KeySchema);
  });
});

describe('a version whose table is replaced while its checkpoints and pointer stay (DynamoDB Local)', () => {
  let client: DynamoDBClient;
  let names: Record<string, string>;
  let v2: Record<string, any>;
  let store: EventStore;
  const saved = { ...process.env };
  const env = (tables: Record<string, string>, definition: Record<string, any>) =>
    Object.assign(process.env, {
      SKAFU_DOMAIN: 'review',
      SKAFU_EVENT_STORE_TABLE: tableOf(names, 'Store'),
      SKAFU_AGGREGATE_TYPES: 'Order',
      SKAFU_CHECKPOINT_TABLE: tableOf(names, 'ProjectionsCheckpoints'),
      SKAFU_REBUILD_STATE_TABLE: tableOf(names, 'ProjectionsRebuildState'),
      SKAFU_PROJECTION_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111111111111:stateMachine:unused',
      SKAFU_READ_MODEL_TABLES: JSON.stringify(tables),
      SKAFU_PROJECTION_DEFINITION_OVERRIDE: JSON.stringify(definition),
    });
  /** The backfill function, fresh (it caches the definition), run step after step to the end. */
  const backfill = async (rebuildId: string): Promise<BackfillStepOutput> => {
    let step!: typeof backfillStep;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      step = require('../../src/projections/backfill.lambda').handler;
    });
    let out = await step({ readModel: 'Totals@v2', rebuildId }, { getRemainingTimeInMillis: () => 70_000 });
    while (out.status === 'RUNNING') out = await step({ readModel: 'Totals@v2', rebuildId }, { getRemainingTimeInMillis: () => 70_000 });
    return out;
  };
  const newTable = async () => {
    const [, resource] = Object.entries(synth(2).findResources('AWS::DynamoDB::Table')).find(([id]) => id.startsWith('TotalsTableV2'))!;
    const name = `TotalsV2-again-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, name)));
    return name;
  };

  beforeAll(async () => {
    client = localClient();
    const t2 = synth(2);
    names = (await createTemplateTables(client, t2)).names;
    v2 = machineDefinition(t2, 'EXPRESS', names);
    store = new EventStore({ tableName: tableOf(names, 'Store'), domain: 'review', client });
    for (let a = 0; a < 6; a++) {
      await appendEvents(store, `order-${a}`, [{ eventType: 'OrderPlaced', data: { customer: `c${a % 2}`, amount: a + 1 } }], 'no-stream', 'Order');
    }
  });
  afterAll(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    client.destroy();
  });

  // HIGH. Version 2 raised, its backfill caught up and switched (or only ran part-way), then the deployment rolled
  // back (another resource failed; a small domain's backfill finishes before CloudFormation does) or the version was
  // lowered to 1 and raised again. The version 2 table the next deployment creates is a new, empty table (a Retain
  // table created by a rolled-back operation is orphaned, a Destroy one deleted; the new one gets a new name and
  // rebuildId `deploy-<new name>`), but the checkpoints `Totals@v2#<aggregate>` and the pointer (version 2) are still
  // in the checkpoint table: the new backfill skips every event they cover, ends CAUGHT_UP at once, and queries,
  // already switched, read the new, empty table. The README's remedy for that rollback ("deploy the raised version
  // again") leads straight here. The backfill should refuse (or reset the version's checkpoints) when its table is
  // empty and its checkpoints are not.
  test('a version 2 deployed again into a new table after a rollback is filled again before queries read it', async () => {
    const first = tableOf(names, 'TotalsTableV2');
    env({ 'Totals@v2': first }, v2);
    expect(await backfill(`deploy-${first}`)).toMatchObject({ status: 'CAUGHT_UP', switched: true, activeVersion: 2 });
    const full = await scanTable(client, first, ['customer']);
    expect(full).toEqual([
      { customer: 'c0', amount: 1 + 3 + 5 },
      { customer: 'c1', amount: 2 + 4 + 6 },
    ]);
    // Rolled back, then deployed again: a new version 2 table, the same checkpoint table.
    const again = await newTable();
    env({ 'Totals@v2': again }, JSON.parse(JSON.stringify(v2).split(first).join(again)));
    const out = await backfill(`deploy-${again}`);
    const pointer = await readActivePointer(client, tableOf(names, 'ProjectionsCheckpoints'), 'Totals');
    const items = await scanTable(client, again, ['customer']);
    // What it does today (printed for the report): CAUGHT_UP, 0 events applied, pointer at version 2, an empty table.
    console.log(`re-deployed version 2: status ${out.status}, eventsApplied ${out.eventsApplied}, pointer version ${pointer?.version}, items in the new table ${items.length}`);
    expect(items).toEqual(full);
  });

  // MEDIUM. A version lowered (3 → 2 by hand, which the guard lets through, see above) brings back the version 2
  // backfill custom resource with the same rebuildId (`deploy-<version 2 table>`). Its progress item says
  // CAUGHT_UP, so the backfill returns at once: the events appended while version 3 was deployed (which the live
  // projection wrote to version 3 only) never reach version 2, and the next event of each of those aggregates is a
  // gap for version 2's live projection (ProjectionGap, parked). Queries read version 2 (the pointer names 3 >= 2).
  // Mitigated, not fixed (lead): the guard now refuses a lowered version unless the stack rolls back, and each
  // deployment's Create starts a rebuildId of its own; a finished rebuildId started again by hand still returns at
  // once (Skafu Local relies on that to start cheaply). Start a new rebuildId to catch a version up.
  test.failing('the same rebuildId started again after events it did not see applies them', async () => {
    const first = tableOf(names, 'TotalsTableV2');
    env({ 'Totals@v2': first }, v2);
    const done = await backfill(`deploy-${first}`);
    expect(done.status).toBe('CAUGHT_UP');
    // While version 3 was deployed: an event version 2 never saw.
    await appendEvents(store, 'order-late', [{ eventType: 'OrderPlaced', data: { customer: 'c0', amount: 100 } }], 'no-stream', 'Order');
    const out = await backfill(`deploy-${first}`);
    console.log(`version 2's backfill started again with its rebuildId: status ${out.status}, eventsApplied ${out.eventsApplied} (was ${done.eventsApplied})`);
    expect((await scanTable(client, first, ['customer'])).find((i) => i.customer === 'c0')).toEqual({ customer: 'c0', amount: 1 + 3 + 5 + 100 });
  });
  // MEDIUM. The backfill function caches the projection definition (DescribeStateMachine) for the container's life.
  // The README's remedy for a backfill that caught up with failures is "fix the projection at the same version,
  // deploy, and resume with the same rebuildId"; that deployment changes the projection state machine only, not the
  // function, so a warm container (Lambda keeps them for minutes) resumes with the definition it read before the
  // fix: the same events fail again, and the backfill ends CAUGHT_UP_WITH_FAILURES again (or, for a fix that
  // changes what a write does, applies the old projection). DescribeStateMachine has no local engine: a fake of
  // @aws-sdk/client-sfn answers it, first with the definition as deployed, then with the fixed one.
  test('a resumed backfill in a warm container applies the projection as deployed now, not the one it read before the fix', async () => {
    const table = await newTable();
    const first = tableOf(names, 'TotalsTableV2');
    const retarget = (definition: Record<string, any>) => JSON.parse(JSON.stringify(definition).split(first).join(table));
    const broken = retarget(v2);
    const fixed = retarget(machineDefinition(synth(2, 'customer', true), 'EXPRESS', names));
    const poisonStore = new EventStore({ tableName: tableOf(names, 'Store'), domain: 'review-poison', client });
    await appendEvents(poisonStore, 'good', [{ eventType: 'OrderPlaced', data: { customer: 'p', amount: 2 } }], 'no-stream', 'Order');
    await appendEvents(poisonStore, 'bad', [{ eventType: 'OrderPlaced', data: { customer: 'p', amount: 'lots' } }], 'no-stream', 'Order');
    env({ 'Totals@v2': table }, broken);
    delete process.env.SKAFU_PROJECTION_DEFINITION_OVERRIDE;
    process.env.SKAFU_DOMAIN = 'review-poison';
    let step!: typeof backfillStep;
    let answers = 0;
    jest.isolateModules(() => {
      // One container: the function module and the SDK module it requires (not installed here; the Lambda runtime
      // provides it), faked for DescribeStateMachine only.
      jest.doMock(
        '@aws-sdk/client-sfn',
        () => ({
          SFNClient: class {
            public async send() {
              return { definition: JSON.stringify(answers++ === 0 ? broken : fixed) };
            }
          },
          DescribeStateMachineCommand: class {
            constructor(public readonly input: unknown) {}
          },
          StartExecutionCommand: class {},
        }),
        { virtual: true },
      );
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      step = require('../../src/projections/backfill.lambda').handler;
    });
    const run = async () => {
      let out = await step({ readModel: 'Totals@v2', rebuildId: 'poison' }, { getRemainingTimeInMillis: () => 70_000 });
      while (out.status === 'RUNNING') out = await step({ readModel: 'Totals@v2', rebuildId: 'poison' }, { getRemainingTimeInMillis: () => 70_000 });
      return out;
    };
    expect(await run()).toMatchObject({ status: 'CAUGHT_UP_WITH_FAILURES', failures: 1 });
    // The fix is deployed (DescribeStateMachine now answers the fixed definition); resumed with the same rebuildId.
    const resumed = await run();
    console.log(`resumed after the fix in the same container: ${resumed.status}, ${resumed.failures} failure(s), DescribeStateMachine called ${answers} time(s)`);
    expect(resumed).toMatchObject({ status: 'CAUGHT_UP', failures: 0 });
  });
  /** The checkpoints of a read model identity (`<identity>#...`), by key. */
  const checkpointsOf = async (identity: string) => {
    const out = await client.send(new ScanCommand({ TableName: tableOf(names, 'ProjectionsCheckpoints'), ConsistentRead: true }));
    return (out.Items ?? []).filter((i) => i.aggregateId.S!.startsWith(`${identity}#`)).map((i) => i.aggregateId.S!).sort();
  };

  test("the backfill custom resource's Create starts a rebuildId of its own: a table deleted and created again under the same name is filled again, the live projection leaving gaps to the backfill meanwhile", async () => {
    // A user-given tableName: the same RebuildId (`deploy-<tableName>`) on every Create; the RequestId differs.
    const base = 'deploy-totals-v2-fixed-name';
    const [first, second] = [deployRebuildId(base, randomUUID()), deployRebuildId(base, randomUUID())];
    expect(first).not.toBe(second);
    expect(first.startsWith(`${base}:`)).toBe(true);
    const long = deployRebuildId('x'.repeat(255), randomUUID());
    expect(long.length).toBeLessThanOrEqual(255);
    expect(long).toMatch(/^[A-Za-z0-9_.:-]{1,255}$/);
    const table = await newTable();
    const definition = JSON.parse(JSON.stringify(v2).split(tableOf(names, 'TotalsTableV2')).join(table));
    env({ 'Totals@v2': table }, definition);
    expect(await backfill(first)).toMatchObject({ status: 'CAUGHT_UP', switched: true, activeVersion: 2 });
    const full = await scanTable(client, table, ['customer']);
    expect(full.length).toBe(2);
    // The table deleted and created again with the same name (empty); checkpoints and pointer stay.
    await client.send(new DeleteTableCommand({ TableName: table }));
    const [, resource] = Object.entries(synth(2).findResources('AWS::DynamoDB::Table')).find(([id]) => id.startsWith('TotalsTableV2'))!;
    await client.send(new CreateTableCommand(createTableInputFromCfn(resource.Properties, table)));
    expect((await checkpointsOf('Totals@v2')).length).toBeGreaterThan(0);
    // The old rebuildId is finished: it would apply nothing (what `deploy-<tableName>` alone did).
    expect((await backfill(first)).status).toBe('CAUGHT_UP');
    expect(await scanTable(client, table, ['customer'])).toEqual([]);
    // The new Create's rebuildId: its start (no time for a page) clears the stale checkpoints and the pointer.
    const config = {
      client,
      eventStoreTable: tableOf(names, 'Store'),
      domain: 'review',
      aggregateTypes: ['Order'],
      definition: definition as { States: Record<string, any> },
      readModelTable: table,
      targetTable: table,
      stateTable: tableOf(names, 'ProjectionsRebuildState'),
      rebuildId: `Totals@v2:${second}`,
      backfill: { checkpointTable: tableOf(names, 'ProjectionsCheckpoints'), readModel: 'Totals@v2' },
    };
    await runRebuildStep(config, 0);
    expect(await checkpointsOf('Totals@v2')).toEqual([]);
    expect(await readActivePointer(client, tableOf(names, 'ProjectionsCheckpoints'), 'Totals')).toBeUndefined();
    const status = await client.send(new GetItemCommand({ TableName: tableOf(names, 'ProjectionsCheckpoints'), Key: { aggregateId: { S: '#backfill#Totals@v2' } }, ConsistentRead: true }));
    expect(status.Item?.status?.S).toBe('BACKFILLING');
    // Meanwhile, an event of an aggregate the live projection had checkpoints for: a gap now, left to the backfill.
    const live = new LiveProjection(client, 'skafu.review');
    const late = await appendEvents(store, 'order-0', [{ eventType: 'OrderPlaced', data: { customer: 'c0', amount: 1000 } }], 1, 'Order');
    await live.project(definition, late);
    expect(live.errors).toEqual([]);
    expect(live.outcomes.get('LEFT_TO_BACKFILL')).toBe(1);
    expect(await scanTable(client, table, ['customer'])).toEqual([]);
    // The backfill goes on with the same rebuildId: everything, the late event once, and queries switched back.
    expect(await backfill(second)).toMatchObject({ status: 'CAUGHT_UP', switched: true, activeVersion: 2 });
    expect(await scanTable(client, table, ['customer'])).toEqual(full.map((i) => (i.customer === 'c0' ? { ...i, amount: (i.amount as number) + 1000 } : i)));
  });

  test('version 1: an empty table with checkpoints `<name>#...` is the same staleness (filled again); the other version\'s checkpoints are left alone', async () => {
    const v1Table = await newTable();
    const v1 = JSON.parse(JSON.stringify(machineDefinition(synth(1), 'EXPRESS', names)).split(tableOf(names, 'TotalsTable', ['TotalsTableV2'])).join(v1Table));
    const run = async (rebuildId: string) => {
      let step!: typeof backfillStep;
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        step = require('../../src/projections/backfill.lambda').handler;
      });
      let out = await step({ readModel: 'Totals', rebuildId }, { getRemainingTimeInMillis: () => 70_000 });
      while (out.status === 'RUNNING') out = await step({ readModel: 'Totals', rebuildId }, { getRemainingTimeInMillis: () => 70_000 });
      return out;
    };
    env({ Totals: v1Table }, v1);
    const pointerBefore = await readActivePointer(client, tableOf(names, 'ProjectionsCheckpoints'), 'Totals');
    expect(await run('v1-first')).toMatchObject({ status: 'CAUGHT_UP' });
    const full = await scanTable(client, v1Table, ['customer']);
    expect(full.length).toBe(2);
    const v1Checkpoints = await checkpointsOf('Totals');
    expect(v1Checkpoints.length).toBeGreaterThan(0);
    const v2Checkpoints = await checkpointsOf('Totals@v2');
    // A new, empty version 1 table; the checkpoints say it is filled.
    const again = await newTable();
    env({ Totals: again }, JSON.parse(JSON.stringify(v1).split(v1Table).join(again)));
    expect(await run('v1-again')).toMatchObject({ status: 'CAUGHT_UP' });
    expect(await scanTable(client, again, ['customer'])).toEqual(full);
    expect(await checkpointsOf('Totals')).toEqual(v1Checkpoints);
    expect(await checkpointsOf('Totals@v2')).toEqual(v2Checkpoints);
    // Version 1 has no pointer of its own: whatever another version's backfill wrote stays.
    expect(await readActivePointer(client, tableOf(names, 'ProjectionsCheckpoints'), 'Totals')).toEqual(pointerBefore);
  });

  // LOW. A REST page token is bound to its query and route, not to the version that issued it (GraphQL's are, and
  // refuse a token of another version with InvalidNextToken). Page 1 read before the switch, page 2 after it: the
  // listing silently goes on in the other version's table from the first page's last key, one listing made of two
  // versions (items of page 1 as version 1 had them, of page 2 as version 2 has them; with a changed projection
  // an item may be counted differently, and the client cannot tell).
  test('a REST nextToken issued before the switch is refused after it, as GraphQL refuses it', async () => {
    const spec: DomainSpec = {
      domain: 'review',
      commands: [],
      queries: [{ name: 'ListTotals', resource: '/api/v1/review/totals', readModel: 'totals', kind: 'list', filters: [], pageSize: 1, maxPageSize: 100, newestFirst: false, startKey: [{ name: 'customer', type: 'S' }] }],
    };
    const v1 = await newTable();
    const v2Table = await newTable();
    for (const [table, amount] of [[v1, 1], [v2Table, 2]] as const) {
      for (const c of ['a', 'b', 'c']) await client.send(new PutItemCommand({ TableName: table, Item: { customer: { S: c }, amount: { N: String(amount) } } }));
    }
    const pointerKey = `#active#Rest${randomUUID().slice(0, 6)}`;
    const checkpointTable = tableOf(names, 'ProjectionsCheckpoints');
    const queries = createQueryHandler({
      spec,
      doc: DynamoDBDocumentClient.from(client),
      tables: { totals: v2Table },
      versions: { totals: { version: 2, previousTable: v1, checkpointTable, pointerKey } },
      pointerClient: client,
      tools: powertools('test'),
      reporter: new ErrorReporter({ component: 'review', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
    });
    const page1 = await queries(apiEvent('GET', '/api/v1/review/totals'));
    const first = JSON.parse(page1.body) as { items: Array<{ amount: number }>; nextToken: string };
    expect(first.items).toEqual([expect.objectContaining({ amount: 1 })]);
    // The switch, between the two pages.
    await client.send(new PutItemCommand({ TableName: checkpointTable, Item: { aggregateId: { S: pointerKey }, version: { N: '2' }, switchedAt: { S: new Date().toISOString() } } }));
    const page2 = await queries(apiEvent('GET', '/api/v1/review/totals', { queryStringParameters: { nextToken: first.nextToken } }));
    console.log(`REST page 2 after the switch: HTTP ${page2.statusCode} ${page2.body.slice(0, 200)}`);
    expect(page2.statusCode).toBe(400);
    expect(JSON.parse(page2.body)).toMatchObject({ error: 'InvalidNextToken', parameter: 'nextToken' });
  });
  test('REST page tokens: bound to the version that issued them (each version pages through its own table; a pre-versions token only on the previous one), unversioned tokens unchanged byte for byte', async () => {
    const spec: DomainSpec = {
      domain: 'review',
      commands: [],
      queries: [{ name: 'ListTotals', resource: '/api/v1/review/totals', readModel: 'totals', kind: 'list', filters: [], pageSize: 1, maxPageSize: 100, newestFirst: false, startKey: [{ name: 'customer', type: 'S' }] }],
    };
    const [v1, v2Table] = [await newTable(), await newTable()];
    for (const [table, amount] of [[v1, 1], [v2Table, 2]] as const) {
      for (const c of ['a', 'b', 'c']) await client.send(new PutItemCommand({ TableName: table, Item: { customer: { S: c }, amount: { N: String(amount) } } }));
    }
    const pointerKey = `#active#Rest${randomUUID().slice(0, 6)}`;
    const checkpointTable = tableOf(names, 'ProjectionsCheckpoints');
    const reporter = new ErrorReporter({ component: 'review', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined });
    const handlerOn = (tables: Record<string, string>, versions?: Record<string, any>) =>
      createQueryHandler({ spec, doc: DynamoDBDocumentClient.from(client), tables, ...(versions ? { versions, pointerClient: client } : {}), tools: powertools('test'), reporter });
    const versioned = handlerOn({ totals: v2Table }, { totals: { version: 2, previousTable: v1, checkpointTable, pointerKey } });
    const unversioned = handlerOn({ totals: v1 });
    const listAll = async (h: ReturnType<typeof createQueryHandler>, token?: string) => {
      const amounts: number[] = [];
      const tokens: string[] = [];
      do {
        const page = JSON.parse((await h(apiEvent('GET', '/api/v1/review/totals', token ? { queryStringParameters: { nextToken: token } } : {}))).body);
        amounts.push(...page.items.map((i: { amount: number }) => i.amount));
        token = page.nextToken;
        if (token) tokens.push(token);
      } while (token);
      return { amounts, tokens };
    };
    // Unversioned: the token is exactly `{q, r, k}`, as before versions existed.
    const plain = await listAll(unversioned);
    expect(plain.amounts).toEqual([1, 1, 1]);
    const decoded = JSON.parse(Buffer.from(plain.tokens[0], 'base64url').toString('utf8'));
    expect(Object.keys(decoded)).toEqual(['q', 'r', 'k']);
    expect(plain.tokens[0]).toBe(Buffer.from(JSON.stringify({ q: 'ListTotals', r: '/api/v1/review/totals', k: decoded.k }), 'utf8').toString('base64url'));
    // Before the switch: version 1 answers, its tokens say so, and a token of the unversioned deployment goes on there.
    const before = await listAll(versioned);
    expect(before.amounts).toEqual([1, 1, 1]);
    expect(JSON.parse(Buffer.from(before.tokens[0], 'base64url').toString('utf8')).v).toBe(1);
    expect((await listAll(versioned, plain.tokens[0])).amounts.every((a) => a === 1)).toBe(true);
    // An unversioned handler refuses a version-bound token (not its own shape).
    const refusedPlain = await unversioned(apiEvent('GET', '/api/v1/review/totals', { queryStringParameters: { nextToken: before.tokens[0] } }));
    expect(refusedPlain.statusCode).toBe(400);
    // The switch: version 2 answers and pages through its own table with its own tokens.
    await client.send(new PutItemCommand({ TableName: checkpointTable, Item: { aggregateId: { S: pointerKey }, version: { N: '2' }, switchedAt: { S: new Date().toISOString() } } }));
    const after = await listAll(versioned);
    expect(after.amounts).toEqual([2, 2, 2]);
    expect(JSON.parse(Buffer.from(after.tokens[0], 'base64url').toString('utf8')).v).toBe(2);
    // Refused after the switch: a version 1 token, a token from before versions, a forged version; the body names
    // the problem and the caller's correlation id.
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(after.tokens[0], 'base64url').toString('utf8')), v: 3 }), 'utf8').toString('base64url');
    for (const [token, message] of [[before.tokens[0], /another version/], [plain.tokens[0], /not a token this query returned/], [forged, /another version/]] as const) {
      const refused = await versioned(apiEvent('GET', '/api/v1/review/totals', { queryStringParameters: { nextToken: token }, correlationId: 'corr-token-1' }));
      expect(refused.statusCode).toBe(400);
      expect(JSON.parse(refused.body)).toMatchObject({ error: 'InvalidNextToken', parameter: 'nextToken', message: expect.stringMatching(message), correlationId: 'corr-token-1' });
    }
  });
});
