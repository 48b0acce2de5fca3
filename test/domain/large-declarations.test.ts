/**
 * Declarations of any size: a domain with 40 commands with realistic schemas, and an API with hundreds of routes,
 * synthesize (both were refused at synth while they travelled in environment variables) and work. The
 * handlers run are the synthesized code assets (the shared bundle plus the domain's spec and the validators
 * compiled at synth), against DynamoDB Local; the authorizer verifies real RS256 tokens.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import * as path from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { AggregateIdSource, DataSource, SkafuPlatform, type CommandDefinition, type DomainDeclaration } from '../../src';
import { DOMAIN_SPEC_FILE, ROUTES_FILE, VALIDATORS_FILE } from '../../src/internal/shipped-files';
import { EventStore, decodeDomainSpec, encodeDomainSpec, encodeRouteGroups } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { CLIENT_ID, createIssuer, USER_POOL_ID, userClaims } from '../support/jwt';
import { assetDirectory, outdirOf, provideRuntimeSdk, shippedDomainSpec, shippedRoutes } from '../support/shipped';
import { createEventStoreTable, localClient } from '../support/tables';

const ENTITIES = [
  'Invoice', 'Customer', 'Shipment', 'Supplier', 'Warehouse', 'Contract', 'Payment', 'Refund', 'Voucher', 'Carrier',
  'Subscription', 'Ticket', 'Campaign', 'Employee', 'Timesheet', 'Asset', 'License', 'Budget', 'Forecast', 'Quote',
];
const CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY', 'CHF', 'SEK', 'NOK', 'DKK', 'PLN', 'CZK'];

/** A realistic create body: strings with lengths and patterns, formats, enums, numbers with bounds, an address, lines. */
function createSchema(entity: string, i: number): Record<string, unknown> {
  return {
    type: 'object',
    required: ['reference', 'title', 'contactEmail', 'amount', 'currency', 'lines'],
    additionalProperties: false,
    properties: {
      reference: { type: 'string', pattern: `^${entity.slice(0, 3).toUpperCase()}-[0-9]{4,10}$`, description: `The ${entity.toLowerCase()}'s business reference` },
      title: { type: 'string', minLength: 1, maxLength: 120 + i },
      notes: { type: 'string', maxLength: 2000 },
      contactEmail: { type: 'string', format: 'email' },
      website: { type: 'string', format: 'uri' },
      effectiveDate: { type: 'string', format: 'date' },
      dueAt: { type: 'string', format: 'date-time' },
      amount: { type: 'number', minimum: 0, maximum: 1_000_000 * (i + 1) },
      currency: { type: 'string', enum: CURRENCIES },
      priority: { type: 'integer', minimum: 1, maximum: 5 },
      tags: { type: 'array', maxItems: 20, uniqueItems: true, items: { type: 'string', pattern: '^[a-z0-9-]{1,32}$' } },
      address: {
        type: 'object',
        required: ['line1', 'city', 'country'],
        additionalProperties: false,
        properties: {
          line1: { type: 'string', minLength: 1, maxLength: 200 },
          line2: { type: 'string', maxLength: 200 },
          city: { type: 'string', minLength: 1, maxLength: 100 },
          postcode: { type: 'string', pattern: '^[A-Z0-9 -]{3,10}$' },
          country: { type: 'string', pattern: '^[A-Z]{2}$' },
        },
      },
      lines: {
        type: 'array',
        minItems: 1,
        maxItems: 100,
        items: {
          type: 'object',
          required: ['sku', 'quantity', 'unitPrice'],
          additionalProperties: false,
          properties: {
            sku: { type: 'string', pattern: '^[A-Z0-9]{4,16}$' },
            quantity: { type: 'integer', minimum: 1, maximum: 10_000 },
            unitPrice: { type: 'number', exclusiveMinimum: 0 },
            discountPercent: { type: 'number', minimum: 0, maximum: 100 },
          },
        },
      },
    },
  };
}

/** A realistic update body: a status change with a reason. */
function updateSchema(entity: string): Record<string, unknown> {
  return {
    type: 'object',
    required: ['status', 'reason'],
    additionalProperties: false,
    properties: {
      status: { type: 'string', enum: ['DRAFT', 'SUBMITTED', 'APPROVED', 'REJECTED', 'ARCHIVED'] },
      reason: { type: 'string', minLength: 3, maxLength: 500, description: `Why the ${entity.toLowerCase()} changes status` },
      effectiveFrom: { type: 'string', format: 'date-time' },
      notifyEmails: { type: 'array', maxItems: 10, items: { type: 'string', format: 'email' } },
    },
  };
}

/** 40 commands: a create and a status change for each of 20 entities. */
function commands(): CommandDefinition[] {
  return ENTITIES.flatMap((entity, i) => {
    const plural = `${entity.toLowerCase()}s`;
    const idName = `${entity.charAt(0).toLowerCase()}${entity.slice(1)}Id`;
    return [
      {
        name: `Create${entity}`,
        path: plural,
        allowedGroups: ['Admin', 'Developer'],
        aggregateType: entity,
        aggregateId: AggregateIdSource.generated(`${entity.slice(0, 3).toLowerCase()}-`),
        eventType: `${entity}Created`,
        bodySchema: createSchema(entity, i),
        extraData: { createdBy: DataSource.userId(), createdAt: DataSource.requestTime() },
      },
      {
        name: `Change${entity}Status`,
        path: `${plural}/{${idName}}/status`,
        allowedGroups: ['Admin'],
        aggregateType: entity,
        aggregateId: AggregateIdSource.fromPath(idName),
        eventType: `${entity}StatusChanged`,
        bodySchema: updateSchema(entity),
      },
    ];
  });
}

const ledger: DomainDeclaration = { name: 'ledger', commands: commands() };

/**
 * Three more domains (each in its own nested stack, as addDomain makes them) whose 360 routes, with the ledger's,
 * make a route table far over what the authorizer's environment held.
 */
const OTHER_DOMAINS = ['stores', 'fleet', 'payroll'];
const otherRoute = (d: string, i: number) => `${ENTITIES[i % ENTITIES.length].toLowerCase()}-${createHash('sha256').update(`${d}${i}`).digest('hex').slice(0, 10)}`;
const others: DomainDeclaration[] = OTHER_DOMAINS.map((d) => ({
  name: d,
  commands: Array.from({ length: 120 }, (_, i) => ({
    name: `Record${ENTITIES[i % ENTITIES.length]}Observation${i}`,
    path: otherRoute(d, i),
    allowedGroups: i % 3 === 0 ? ['Admin'] : i % 3 === 1 ? ['Admin', 'Developer'] : ['Admin', 'Developer', 'Viewer'],
    aggregateType: 'Observation',
    aggregateId: AggregateIdSource.generated(),
    eventType: `Observation${i}Recorded`,
  })),
}));
const LATE_ROUTE = `/api/v1/payroll/${otherRoute('payroll', 118)}`;

const validBody = (i: number) => ({
  reference: `${ENTITIES[i].slice(0, 3).toUpperCase()}-${1000 + i}`,
  title: `${ENTITIES[i]} for Q${(i % 4) + 1}`,
  contactEmail: 'ada@example.com',
  website: 'https://example.com/a',
  effectiveDate: '2026-11-30',
  dueAt: '2026-12-31T12:00:00Z',
  amount: 1234.5,
  currency: CURRENCIES[i % CURRENCIES.length],
  priority: 3,
  tags: ['q4', 'north-region'],
  address: { line1: '1 Main Street', city: 'Lyon', postcode: '69001', country: 'FR' },
  lines: [{ sku: 'ABCD1234', quantity: 2, unitPrice: 617.25 }],
});

const stack = new Stack(new App(), 'Large', { env: { account: '123456789012', region: 'eu-west-1' } });
const platform = new SkafuPlatform(stack, 'Platform');
const domain = platform.addDomain(ledger);
for (const d of others) platform.addDomain(d);
Template.fromStack(stack); // synthesizes the app
provideRuntimeSdk(outdirOf(stack));
/** Every function of the assembly's templates (nested stacks included). */
const functions: any[] = fs
  .readdirSync(outdirOf(stack))
  .filter((f) => f.endsWith('.template.json'))
  .flatMap((f) => Object.values(JSON.parse(fs.readFileSync(path.join(outdirOf(stack), f), 'utf8')).Resources as Record<string, any>))
  .filter((r) => r.Type === 'AWS::Lambda::Function');
const commandFn = functions.find((f) => f.Properties.Description === 'Skafu ledger command handler')!;
const authorizerFn = functions.find((f) => f.Properties.Environment?.Variables?.SKAFU_USER_POOL_ID)!;

describe('synth', () => {
  test('the declarations are far over what the environment held, and ship as files in the function\'s own asset', () => {
    const spec = shippedDomainSpec(outdirOf(stack), commandFn);
    expect(spec.commands).toHaveLength(40);
    // What the environment variable would have had to hold (the old ceiling: 2,800 bytes).
    expect(encodeDomainSpec(spec).length).toBeGreaterThan(2800);
    expect(fs.statSync(path.join(assetDirectory(outdirOf(stack), commandFn), DOMAIN_SPEC_FILE)).size).toBeGreaterThan(40_000);
    const dir = assetDirectory(outdirOf(stack), commandFn);
    expect(fs.readdirSync(dir).sort()).toEqual(['index.js', DOMAIN_SPEC_FILE, VALIDATORS_FILE].sort());
    // The shared bundle, byte for byte; the validators are code compiled at synth, exporting one per command.
    expect(fs.readFileSync(path.join(dir, 'index.js'))).toEqual(fs.readFileSync(path.join(__dirname, '..', '..', 'assets', 'domain', 'command.lambda', 'index.js')));
    const validators = fs.readFileSync(path.join(dir, VALIDATORS_FILE), 'utf8');
    for (const c of spec.commands) expect(validators).toContain(`exports.${c.name} = `);
  });

  test('the environment keeps names and ARNs, well inside Lambda\'s 4 KB', () => {
    for (const fn of functions) {
      const variables = (fn.Properties.Environment?.Variables ?? {}) as Record<string, unknown>;
      expect(variables.SKAFU_DOMAIN_SPEC).toBeUndefined();
      expect(variables.SKAFU_ROUTES).toBeUndefined();
      // Tokens (Ref, GetAtt) resolve to names and ARNs of at most a few hundred bytes.
      expect(JSON.stringify(variables).length).toBeLessThan(2048);
    }
  });

  test('each domain\'s handler gets its own asset; two synths of the same app give the same asset', () => {
    const keys = functions.filter((f) => /command handler/.test(f.Properties.Description)).map((f) => f.Properties.Code.S3Key);
    expect(new Set(keys).size).toBe(4);
    const again = new Stack(new App(), 'Again', { env: { account: '123456789012', region: 'eu-west-1' } });
    new SkafuPlatform(again, 'Platform', { nestedDomainStacks: false }).addDomain(ledger);
    const [fn] = Object.values(Template.fromStack(again).findResources('AWS::Lambda::Function', { Properties: { Description: 'Skafu ledger command handler' } }));
    expect(fn.Properties.Code.S3Key).toBe(commandFn.Properties.Code.S3Key);
  });

  test('the authorizer\'s route table holds every route, far over what its environment held', () => {
    const routes = shippedRoutes(outdirOf(stack), authorizerFn);
    expect(Object.keys(routes)).toHaveLength(400);
    // What the environment variable would have had to hold (the old ceiling: 3,000 bytes).
    expect(encodeRouteGroups(routes).length).toBeGreaterThan(3000);
    expect(routes['POST /api/v1/ledger/quotes/{quoteId}/status']).toEqual(['Admin']);
    expect(routes[`POST ${LATE_ROUTE}`]).toEqual(['Admin', 'Developer']);
    expect(fs.readdirSync(assetDirectory(outdirOf(stack), authorizerFn)).sort()).toEqual(['index.js', ROUTES_FILE].sort());
  });

  test('a schema that does not compile is refused at synth, naming the command', () => {
    const other = new Stack(new App(), 'Bad');
    const bad = ledger.commands![0];
    expect(() =>
      new SkafuPlatform(other, 'Platform', { nestedDomainStacks: false }).addDomain({
        name: 'bad',
        commands: [{ ...bad, bodySchema: { type: 'object', properties: { n: { type: 'number', minimum: 'zero' } } } }],
      }),
    ).toThrow(/EventSourcedDomain .*the JSON Schema of CreateInvoice does not compile: .*minimum/);
    expect(() =>
      new SkafuPlatform(new Stack(new App(), 'Async'), 'Platform', { nestedDomainStacks: false }).addDomain({
        name: 'async',
        commands: [{ ...bad, bodySchema: { $async: true, type: 'object' } }],
      }),
    ).toThrow(/CreateInvoice|validation runtime module/);
  });

  test('a custom command handler gets the declared fold in its environment, never the commands and their schemas', () => {
    const other = new Stack(new App(), 'Custom');
    const custom = new lambda.Function(other, 'Custom', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = 1') });
    new SkafuPlatform(other, 'Platform', { nestedDomainStacks: false }).addDomain({ ...ledger, commands: [...commands(), { ...commands()[0], name: 'ImportInvoice', path: 'imports', handler: custom }] });
    const [fn] = Object.values(Template.fromStack(other).findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.handler', Code: { ZipFile: 'exports.handler = 1' } } }));
    const spec = decodeDomainSpec(fn.Properties.Environment.Variables.SKAFU_DOMAIN_SPEC);
    expect(spec).toMatchObject({ domain: 'ledger', commands: [], queries: [] });
    expect(domain.commandFunction).toBeDefined();
  });
});

describe('the synthesized command handler, against DynamoDB Local', () => {
  type Handler = (event: unknown, context?: unknown) => Promise<APIGatewayProxyResult | void>;
  const client = localClient();
  let handler: Handler;
  let store: EventStore;
  afterAll(() => client.destroy());
  beforeAll(async () => {
    const table = await createEventStoreTable(client);
    store = new EventStore({ tableName: table, domain: 'ledger', client });
    Object.assign(process.env, { SKAFU_DOMAIN: 'ledger', SKAFU_EVENT_STORE_TABLE: table });
    delete process.env.SKAFU_ERROR_BUS_NAME;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      handler = (require(path.join(assetDirectory(outdirOf(stack), commandFn), 'index.js')) as { handler: Handler }).handler;
    });
  });
  const call = async (method: string, resource: string, body: unknown, pathParameters?: Record<string, string>) => {
    const res = (await handler(apiEvent(method, resource, { body, pathParameters, userId: 'alice' }), { functionName: 'ledger-commands' })) as APIGatewayProxyResult;
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, any> };
  };

  test.each([0, 7, 19])('entity %i: a valid create is accepted and stored; its status change too', async (i) => {
    const entity = ENTITIES[i];
    const plural = `${entity.toLowerCase()}s`;
    const created = await call('POST', `/api/v1/ledger/${plural}`, validBody(i));
    expect(created).toMatchObject({ status: 201, body: { aggregateId: expect.stringMatching(new RegExp(`^${entity.slice(0, 3).toLowerCase()}-`)), eventType: `${entity}Created` } });
    const id = created.body.aggregateId as string;
    const idName = `${entity.charAt(0).toLowerCase()}${entity.slice(1)}Id`;
    const changed = await call('POST', `/api/v1/ledger/${plural}/{${idName}}/status`, { status: 'APPROVED', reason: 'checked by finance' }, { [idName]: id });
    expect(changed).toMatchObject({ status: 202, body: { eventSequence: 2 } });
    const events = await store.load(id);
    expect(events.map((e) => e.eventType)).toEqual([`${entity}Created`, `${entity}StatusChanged`]);
    expect(events[0].data).toMatchObject({ ...validBody(i), createdBy: 'alice' });
  });

  test('bad bodies: 400 naming each field at fault, as Ajv words it, and nothing written', async () => {
    const before = (await client.send(new ScanCommand({ TableName: process.env.SKAFU_EVENT_STORE_TABLE, Select: 'COUNT' }))).Count;
    const bad = {
      ...validBody(12),
      reference: 'nope',
      contactEmail: 'not-an-email',
      dueAt: 'tomorrow',
      currency: 'XXX',
      tags: ['ok', 'ok'],
      address: { line1: '1 Main Street', country: 'FR' },
      lines: [{ sku: 'ABCD1234', quantity: 0, unitPrice: 1 }],
      surprise: true,
    };
    const res = await call('POST', '/api/v1/ledger/campaigns', bad);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'ValidationError', message: "the body does not match CreateCampaign's schema", correlationId: expect.any(String) });
    const details = res.body.details as Array<{ path: string; message: string; params?: Record<string, unknown> }>;
    expect(details).toEqual(
      expect.arrayContaining([
        { path: '/', message: 'must NOT have additional properties', params: { additionalProperty: 'surprise' } },
        { path: '/reference', message: 'must match pattern "^CAM-[0-9]{4,10}$"', params: { pattern: '^CAM-[0-9]{4,10}$' } },
        { path: '/contactEmail', message: 'must match format "email"', params: { format: 'email' } },
        { path: '/dueAt', message: 'must match format "date-time"', params: { format: 'date-time' } },
        { path: '/currency', message: 'must be equal to one of the allowed values', params: { allowedValues: CURRENCIES } },
        expect.objectContaining({ path: '/tags', message: expect.stringMatching(/^must NOT have duplicate items/) }),
        { path: '/address', message: "must have required property 'city'", params: { missingProperty: 'city' } },
        { path: '/lines/0/quantity', message: 'must be >= 1', params: { comparison: '>=', limit: 1 } },
      ]),
    );
    const missing = await call('POST', '/api/v1/ledger/tickets/{ticketId}/status', { status: 'SHIPPED' }, { ticketId: 'tic-1' });
    expect(missing.status).toBe(400);
    expect(missing.body.details).toEqual([
      { path: '/', message: "must have required property 'reason'", params: { missingProperty: 'reason' } },
      { path: '/status', message: 'must be equal to one of the allowed values', params: { allowedValues: ['DRAFT', 'SUBMITTED', 'APPROVED', 'REJECTED', 'ARCHIVED'] } },
    ]);
    const after = (await client.send(new ScanCommand({ TableName: process.env.SKAFU_EVENT_STORE_TABLE, Select: 'COUNT' }))).Count;
    expect(after).toBe(before);
  });

  test('a route the domain does not declare: 404', async () => {
    expect(await call('POST', '/api/v1/ledger/unknown', {})).toMatchObject({ status: 404, body: { error: 'NotFound' } });
  });
});

describe('the synthesized authorizer, with its route table file', () => {
  let server: Server;
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('allows a route late in a 400-route table to its groups only', async () => {
    const issuer = await createIssuer();
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(issuer.jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    Object.assign(process.env, {
      SKAFU_USER_POOL_ID: USER_POOL_ID,
      SKAFU_USER_POOL_CLIENT_ID: CLIENT_ID,
      SKAFU_JWKS_URI_OVERRIDE: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`,
    });
    let authorize!: (event: unknown) => Promise<{ policyDocument: { Statement: Array<{ Effect: string }> } }>;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      authorize = (require(path.join(assetDirectory(outdirOf(stack), authorizerFn), 'index.js')) as { handler: typeof authorize }).handler;
    });
    const resource = LATE_ROUTE;
    const event = (token: string, method = 'POST') => ({
      type: 'REQUEST',
      methodArn: `arn:aws:execute-api:eu-west-1:123456789012:abc123/development/${method}${resource}`,
      resource,
      path: resource,
      httpMethod: method,
      headers: { Authorization: `Bearer ${token}` },
      pathParameters: {},
      requestContext: { httpMethod: method, resourcePath: resource, requestId: 'r-1' },
    });
    const effect = async (groups: string[], method?: string) => (await authorize(event(await issuer.mint(userClaims('u', groups)), method))).policyDocument.Statement[0].Effect;
    expect(await effect(['Developer'])).toBe('Allow');
    expect(await effect(['Viewer'])).toBe('Deny');
    expect(await effect(['Developer'], 'DELETE')).toBe('Deny');
    for (const k of ['SKAFU_USER_POOL_ID', 'SKAFU_USER_POOL_CLIENT_ID', 'SKAFU_JWKS_URI_OVERRIDE']) delete process.env[k];
  });
});
