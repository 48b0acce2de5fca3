/**
 * IAM isolation between domains inside the one event store (issue 10), shown on synthesized templates (DynamoDB
 * Local does not enforce IAM): every role of a domain that touches the event store carries the
 * `dynamodb:LeadingKeys` condition on its own prefix, and no role of one domain names another domain's prefix.
 * The app is shaped like a user's: domains whose names are prefixes of each other, bundled and custom handlers,
 * with and without nested stacks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Aws, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AggregateIdSource, DataSource, EventStoreTable, Precondition, ProjectionAction, ProjectionValue, QueryInput, SkafuPlatform, type DomainDeclaration } from '../../src';
import { synthExample } from '../support/example';
import { applyAwsSolutions, nagErrors } from '../support/nag';
import { outdirOf, shippedDomainSpec, shipsDomainSpec } from '../support/shipped';

const code = lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 200, body: "{}" })');

function declaration(name: string, custom?: { command: lambda.IFunction; query: lambda.IFunction }): DomainDeclaration {
  return {
    name,
    commands: [
      { name: 'CreateThing', path: 'things', allowedGroups: ['Admin'], aggregateType: 'Thing', aggregateId: AggregateIdSource.generated('thing-'), eventType: 'ThingCreated' },
      { name: 'RenameThing', path: 'things/{id}/name', allowedGroups: ['Admin'], aggregateType: 'Thing', aggregateId: AggregateIdSource.fromPath('id'), eventType: 'ThingRenamed' },
      ...(custom
        ? [{ name: 'CloseThing', path: 'things/{id}/close', allowedGroups: ['Admin'], aggregateType: 'Thing', aggregateId: AggregateIdSource.fromPath('id'), eventType: 'ThingClosed', handler: custom.command }]
        : []),
    ],
    readModels: [{ name: 'things', partitionKey: { name: 'id' }, projections: [] }],
    queries: custom ? [{ name: 'GetThing', path: 'things/{id}', allowedGroups: ['Admin'], readModel: 'things', key: { id: QueryInput.pathParameter('id') }, handler: custom.query }] : [],
  } as DomainDeclaration;
}

/** Every template of a stack and its nested stacks. */
function templatesOf(stack: Stack): Record<string, any>[] {
  const app = stack.node.root as App;
  const assembly = app.synth();
  const out: Record<string, any>[] = [];
  for (const f of fs.readdirSync(assembly.directory).filter((x: string) => x.endsWith('.template.json'))) {
    out.push(JSON.parse(fs.readFileSync(path.join(assembly.directory, f), 'utf8')));
  }
  return out;
}

interface DomainRoleStatements {
  readonly domain: string;
  readonly role: string;
  readonly statements: any[];
}

/** The policy statements of every role that runs a function of a domain (SKAFU_DOMAIN in its environment). */
function domainRoleStatements(templates: Record<string, any>[]): DomainRoleStatements[] {
  const found: DomainRoleStatements[] = [];
  for (const t of templates) {
    const resources = Object.entries<any>(t.Resources ?? {});
    for (const [, fn] of resources.filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      const domain = fn.Properties?.Environment?.Variables?.SKAFU_DOMAIN;
      if (typeof domain !== 'string') continue;
      const role = fn.Properties.Role?.['Fn::GetAtt']?.[0] as string;
      const statements = resources
        .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(`"${role}"`))
        .flatMap(([, r]) => r.Properties.PolicyDocument.Statement as any[]);
      found.push({ domain, role, statements });
    }
  }
  return found;
}

const touchesEventStore = (statement: any) => /EventStoreTable/.test(JSON.stringify(statement.Resource)) && [statement.Action].flat().some((a: string) => a.startsWith('dynamodb:'));

function expectIsolated(templates: Record<string, any>[], domains: string[]): void {
  const roles = domainRoleStatements(templates);
  for (const domain of domains) {
    const mine = roles.filter((r) => r.domain === domain);
    const storeStatements = mine.flatMap((r) => r.statements.filter(touchesEventStore));
    expect({ domain, storeStatements: storeStatements.length > 0 }).toEqual({ domain, storeStatements: true });
    for (const statement of storeStatements) {
      expect(statement).toMatchObject({ Effect: 'Allow', Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${domain}#*`] } } });
      // Never an action that names no partition key (ForAllValues holds for an empty set of keys).
      // (ConditionCheckItem names the checked item's key: the append's check of its expected event.)
      for (const action of [statement.Action].flat()) {
        expect(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:ConditionCheckItem', 'dynamodb:Query']).toContain(action);
      }
    }
    for (const role of mine) {
      const text = JSON.stringify(role.statements);
      for (const other of domains.filter((d) => d !== domain)) expect({ role: role.role, names: text.includes(`"${other}#`) }).toEqual({ role: role.role, names: false });
    }
  }
}

test.each([true, false])('every domain role carries its own leading-key condition, none names another domain (nested stacks: %s)', (nested) => {
  const stack = new Stack(new App(), `Iso${nested ? 'Nested' : 'Flat'}`, { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: nested });
  const custom = {
    command: new lambda.Function(stack, 'CloseHandler', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code }),
    query: new lambda.Function(stack, 'GetHandler', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code }),
  };
  // 'ops' is a prefix of 'ops-audit' and of 'opsx': the '#' in the pattern keeps them apart.
  platform.addDomain(declaration('ops', custom));
  platform.addDomain(declaration('ops-audit'));
  platform.addDomain(declaration('opsx'));
  expectIsolated(templatesOf(stack), ['ops', 'ops-audit', 'opsx']);
});

test('the example platform: both domains isolated; only the platform republisher reads every domain', () => {
  const templates = Object.values(synthExample().templates);
  expectIsolated(templates, ['observability', 'projects']);
  const platform = templates.find((t) => Object.keys(t.Resources).some((k) => /OutboxRepublishRole/.test(k)))!;
  const republish = Template.fromJSON(platform);
  republish.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: Match.stringLikeRegexp('OutboxRepublishRole') }],
    PolicyDocument: { Statement: Match.arrayWith([Match.objectEquals({ Action: ['dynamodb:GetItem', 'dynamodb:Query'], Effect: 'Allow', Resource: Match.anyValue() })]) },
  });
});

test('grants: append needs a domain; reads and listings take one; malformed or token domains throw at synth', () => {
  const stack = new Stack(new App(), 'Grants');
  const store = new EventStoreTable(stack, 'Store');
  const role = new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  store.grantAppendEvents(role, 'billing');
  store.grantReadEvents(role, 'billing');
  store.grantListAggregates(role, 'billing');
  const statements = Template.fromStack(stack).findResources('AWS::IAM::Policy');
  const all = Object.values(statements).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
  expect(all).toHaveLength(3);
  for (const s of all) expect(s.Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['billing#*'] } });
  for (const bad of ['', 'has#hash', 'star*', 'q?', '1starts-with-digit', 'x'.repeat(65)]) {
    expect(() => store.grantAppendEvents(role, bad)).toThrow(/grantAppendEvents: domain .* must be 1-64 letters/);
  }
  expect(() => store.grantReadEvents(role, Aws.STACK_NAME)).toThrow(/not a token/);
});

test('cdk-nag: the handler-role acknowledgement covers only X-Ray\'s "*": a new wildcard on a domain handler role is reported', () => {
  const stack = new Stack(new App(), 'Nag', { env: { account: '111111111111', region: 'eu-west-1' } });
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  const domain = platform.addDomain(declaration('ops'));
  domain.commandFunction!.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::reports/*'] }));
  applyAwsSolutions(stack);
  const findings = nagErrors(stack).filter((f) => /IAM5/.test(f.message));
  expect(findings).toEqual([expect.objectContaining({ message: expect.stringMatching(/arn:aws:s3:::reports\/\*/) })]);
});

test('creates say they create: the default precondition follows where the id comes from', () => {
  const stack = new Stack(new App(), 'Pre');
  const platform = new SkafuPlatform(stack, 'Platform', { nestedDomainStacks: false });
  platform.addDomain({
    name: 'pre',
    commands: [
      { name: 'Gen', path: 'a', allowedGroups: ['Admin'], aggregateType: 'A', aggregateId: AggregateIdSource.generated(), eventType: 'E1' },
      { name: 'Body', path: 'b', allowedGroups: ['Admin'], aggregateType: 'A', aggregateId: AggregateIdSource.fromBody('id'), eventType: 'E2', bodySchema: { type: 'object', required: ['id'] } },
      { name: 'Path', path: 'c/{id}', allowedGroups: ['Admin'], aggregateType: 'A', aggregateId: AggregateIdSource.fromPath('id'), eventType: 'E3' },
      { name: 'Upsert', method: 'PUT', path: 'c/{id}', allowedGroups: ['Admin'], aggregateType: 'A', aggregateId: AggregateIdSource.fromPath('id'), eventType: 'E4', precondition: Precondition.ANY },
    ],
  });
  const fn = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function')).find((f: any) => shipsDomainSpec(outdirOf(stack), f)) as any;
  const spec = shippedDomainSpec(outdirOf(stack), fn);
  expect(Object.fromEntries(spec.commands.map((c) => [c.name, c.precondition]))).toEqual({ Gen: 'must-not-exist', Body: 'must-not-exist', Path: 'must-exist', Upsert: 'any' });
  expect(() =>
    platform.addDomain({
      name: 'proto',
      commands: [{ name: 'P', path: 'p', allowedGroups: ['Admin'], aggregateType: 'A', aggregateId: AggregateIdSource.generated(), eventType: 'E', extraData: { constructor: DataSource.userId() } }],
    }),
  ).toThrow(/extraData may not name the field 'constructor'/);
});

test.each([
  ['development', undefined, true],
  ['production', undefined, false],
  ['production', true, true],
  ['staging', false, false],
] as const)('projection state machine logs: %s preset, logExecutionData %s -> execution data %s', (environment, logExecutionData, expected) => {
  const stack = new Stack(new App(), `Logs${environment}${String(logExecutionData)}`);
  const platform = new SkafuPlatform(stack, 'Platform', { environment: environment as never, nestedDomainStacks: false, logExecutionData });
  platform.addDomain({
    ...declaration('ops'),
    readModels: [{ name: 'things', partitionKey: { name: 'id' }, projections: [{ eventType: 'ThingCreated', action: ProjectionAction.putItem({ key: { id: ProjectionValue.fromEnvelope('aggregateId') } }) }] }],
  });
  Template.fromStack(stack).hasResourceProperties('AWS::StepFunctions::StateMachine', {
    LoggingConfiguration: Match.objectLike({ IncludeExecutionData: expected, Level: 'ALL' }),
  });
});
