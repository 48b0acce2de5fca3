/**
 * The cost model (`skafu-cost`) on the example platform's synthesized assembly: what it finds in the templates,
 * arithmetic checked by hand on round figures, the price and measurement files, and the comparison with the seed
 * design. A second assembly (production: another authorizer cache TTL) shows the figures follow the templates.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildExampleApp } from '../../examples/platform/app';
import { SkafuEnvironment } from '../../src';
import { loadMeasurements, loadPrices, main } from '../../src/cost/cli';
import { DEFAULT_MEASUREMENTS, type Measurements } from '../../src/cost/measurements';
import { estimate, findPaths, readTemplates, type CostEstimate } from '../../src/cost/model';
import { US_EAST_1_ON_DEMAND } from '../../src/cost/prices';
import { synthExample } from '../support/example';

const dev = () => synthExample().assembly.directory;
let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-cost-'))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const writeJson = (name: string, value: unknown) => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify(value));
  return file;
};
const line = (e: CostEstimate | undefined, prefix: string) => {
  const found = e?.lines.find((l) => l.item.startsWith(prefix));
  if (!found) throw new Error(`no line '${prefix}' in ${JSON.stringify(e?.lines.map((l) => l.item))}`);
  return found.usd;
};

/** Round figures, so that every line can be redone by hand. */
const ROUND: Measurements = {
  ...DEFAULT_MEASUREMENTS,
  units: {
    command: { read: 2, write: 1 },
    commandWithIdempotencyKey: { read: 3, write: 4 },
    query: { read: 1, write: 0 },
    projectedEvent: { read: 1, write: 4 },
  },
  durationsMs: { command: 100, query: 50, authorizer: 10, publisherBatch: 100, projectionLambda: 100 },
  projection: { statesPerExecution: 10, expressDurationMs: 150, expressMemoryMb: 64 },
  assumptions: {
    ...DEFAULT_MEASUREMENTS.assumptions,
    requestsPerSecondPerCallerRoute: 0.1,
    publisherEventsPerInvocation: 10,
    eventBytes: 1024,
    xRaySampleRate: 0.1,
  },
};

describe('what it finds in the example assembly', () => {
  test('every request path: two domains with their routes, the authorizer TTL, the outbox batch, the domain bus archive, Express projections', () => {
    const paths = findPaths(readTemplates(dev()));
    expect(paths.templates).toBe(3); // the stack and its two nested domain stacks
    expect(paths.domains.map((d) => d.domain)).toEqual(['observability', 'projects']);
    const projects = paths.domains.find((d) => d.domain === 'projects')!;
    expect(projects).toMatchObject({ commandRoutes: 3, queryRoutes: 3 });
    expect(projects.commandFunction).toMatchObject({ memoryMb: 512, arm64: true, tracing: true });
    expect(projects.queryFunction).toMatchObject({ memoryMb: 512, arm64: true });
    expect(projects.commandFunction!.id).not.toBe(projects.queryFunction!.id);
    expect(projects.projections).toEqual([expect.objectContaining({ type: 'EXPRESS', logLevel: 'ALL', tracing: true })]);
    expect(paths.domains.find((d) => d.domain === 'observability')).toMatchObject({ commandRoutes: 4, queryRoutes: 3 });
    expect(paths.authorizer).toMatchObject({ ttlSeconds: 300, function: expect.objectContaining({ memoryMb: 256 }) });
    expect(paths.publisher).toMatchObject({ batchSize: 100, function: expect.objectContaining({ memoryMb: 256 }) });
    // Two archives in the app, one on the domain bus: the error bus's archive sees no domain event.
    expect(paths.busArchives).toBe(1);
    expect(paths.apiAccessLogs).toBe(true);
  });

  test('a directory that is not an assembly, or has no Skafu domain, is refused with a message', () => {
    expect(() => main([path.join(tmp, 'missing')])).toThrow(/not a cloud assembly directory/);
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => main([empty])).toThrow(/no \*\.template\.json/);
    fs.writeFileSync(path.join(empty, 'Other.template.json'), JSON.stringify({ Resources: { Q: { Type: 'AWS::SQS::Queue' } } }));
    expect(() => main([empty])).toThrow(/no Skafu domain/);
    expect(() => main([])).toThrow(/usage: skafu-cost/);
    expect(() => main([dev(), '--prices'])).toThrow(/usage/);
    expect(() => main([dev(), 'second-arg'])).toThrow(/unexpected argument/);
  });
});

describe('arithmetic, checked by hand on round figures', () => {
  const paths = () => findPaths(readTemplates(dev()));
  const projects = () => estimate(paths(), US_EAST_1_ON_DEMAND, ROUND).find((c) => c.domain === 'projects')!;

  test('per million commands, line by line', () => {
    const c = projects().commands!;
    expect(line(c, 'API Gateway REST request')).toBeCloseTo(3.5, 6);
    // TTL 300 s x 0.1 requests/s = 30 requests per cached policy: 1/30 run per request, 256 MB arm64, 10 ms.
    expect(line(c, 'Authorizer Lambda')).toBeCloseTo((1 / 30) * (0.2 + 0.25 * 0.01 * 1e6 * 0.0000133334), 5);
    // 1 run: $0.20 + 0.5 GB x 0.1 s x 1e6 x $0.0000133334 = 0.2 + 0.66667
    expect(line(c, 'Command Lambda')).toBeCloseTo(0.866667, 5);
    expect(line(c, 'DynamoDB: one command')).toBeCloseTo(2 * 0.125 + 1 * 0.625, 6);
    // 1 event in batches of 10: 0.1 run of 256 MB x 0.1 s
    expect(line(c, 'Outbox publisher Lambda')).toBeCloseTo(0.1 * (0.2 + 0.25 * 0.1 * 1e6 * 0.0000133334), 5);
    expect(line(c, 'EventBridge PutEvents')).toBeCloseTo(1, 6);
    // 1e6 x 1024 bytes = 0.9537 GB at $0.10
    expect(line(c, 'EventBridge archive')).toBeCloseTo((1024e6 / 1024 ** 3) * 0.1, 5);
    // 150 ms bills 200 ms; 64 MB: $1 + 0.0625 GB x 0.2 s x 1e6 x $0.00001667
    expect(line(c, 'Step Functions Express projection')).toBeCloseTo(1 + 0.0625 * 0.2 * 1e6 * 0.00001667, 5);
    expect(line(c, 'DynamoDB: read-model')).toBeCloseTo(0.125 + 4 * 0.625, 6);
    // access log 450 + (1/30 + 1 + 0.1) Lambda runs x 750 + 10 states x 700 bytes, per request
    const bytes = 450 + (1 / 30 + 1 + 0.1) * 750 + 10 * 700;
    expect(line(c, 'CloudWatch Logs ingested')).toBeCloseTo(((bytes * 1e6) / 1024 ** 3) * 0.5, 4);
    // the request's trace and the projection's, 10% sampled
    expect(line(c, 'X-Ray traces recorded')).toBeCloseTo(2 * 0.1 * 5, 6);
    expect(c.total).toBeCloseTo(c.lines.reduce((s, l) => s + l.usd, 0), 5);
    expect(projects().commandsWithIdempotencyKey!.total - c.total).toBeCloseTo((3 - 2) * 0.125 + (4 - 1) * 0.625, 5);
  });

  test('per million queries', () => {
    const q = projects().queries!;
    expect(q.lines.map((l) => l.item.split(' (')[0])).toEqual([
      'API Gateway REST request',
      'Authorizer Lambda',
      'Query Lambda',
      'DynamoDB: one query',
      'CloudWatch Logs ingested',
      'X-Ray traces recorded',
    ]);
    expect(line(q, 'Query Lambda')).toBeCloseTo(0.2 + 0.5 * 0.05 * 1e6 * 0.0000133334, 5);
    expect(line(q, 'DynamoDB: one query')).toBeCloseTo(0.125, 6);
  });

  test('the seed design on the same paths: Standard transitions, 512 MB x86_64 everywhere, a Lambda per projection, no workflow logs', () => {
    const { seedCommands, commands } = projects();
    expect(line(seedCommands, 'Step Functions Standard projection')).toBeCloseTo(10 * 1e6 * (0.025 / 1000), 5); // $250
    expect(line(seedCommands, 'Projection Lambda')).toBeCloseTo(0.2 + 0.5 * 0.1 * 1e6 * 0.0000166667, 5);
    expect(line(seedCommands, 'Command Lambda')).toBeCloseTo(0.2 + 0.5 * 0.1 * 1e6 * 0.0000166667, 5);
    expect(line(seedCommands, 'Authorizer Lambda')).toBeCloseTo((1 / 30) * (0.2 + 0.5 * 0.01 * 1e6 * 0.0000166667), 5);
    // The same DynamoDB, EventBridge and API Gateway lines.
    for (const item of ['API Gateway REST request', 'DynamoDB: one command', 'EventBridge PutEvents', 'DynamoDB: read-model']) {
      expect(line(seedCommands, item)).toBeCloseTo(line(commands, item), 6);
    }
  });
});

describe('the target and the files', () => {
  test('with the recorded measurements, a million commands cost at most 25% of the seed design, in every domain of the example', () => {
    const costs = estimate(findPaths(readTemplates(dev())), US_EAST_1_ON_DEMAND, loadMeasurements(path.join(__dirname, '../../bench/baseline.json')));
    for (const c of costs) expect(c.commands!.total / c.seedCommands!.total).toBeLessThanOrEqual(0.25);
  });

  test('the report prints each line, the totals and the comparison; --json holds the same figures', () => {
    const text = main([dev()]);
    expect(text).toMatch(/prices taken 2026-11-30/);
    expect(text).toMatch(/Domain projects: 3 command route\(s\), 3 query route\(s\), 1 projection state machine\(s\) \(EXPRESS, logs ALL, traced\)/);
    expect(text).toMatch(/per million commands\n\s+API Gateway REST request\s+\$3\.500/);
    expect(text).toMatch(/seed design .* per million commands: \$\d+\.\d+; this app: \$\d+\.\d+ = \d+\.\d% of it/);
    const parsed = JSON.parse(main([dev(), '--json']));
    const projects = parsed.costs.find((c: any) => c.domain === 'projects');
    expect(text).toContain(`$${projects.commands.total.toFixed(2)}`);
  });

  test('a price file overrides the prices it names, and only known prices with numbers >= 0', () => {
    const cheaper = writeJson('prices.json', { apiGatewayRestPerMillionRequests: 1, takenOn: '2027-01-01' });
    const prices = loadPrices(cheaper);
    expect(prices).toMatchObject({ apiGatewayRestPerMillionRequests: 1, takenOn: '2027-01-01', lambdaPerMillionRequests: 0.2 });
    const json = JSON.parse(main([dev(), '--json', '--prices', cheaper]));
    expect(json.costs[0].commands.lines[0]).toMatchObject({ item: 'API Gateway REST request', usd: 1 });
    expect(() => loadPrices(writeJson('typo.json', { apiGatewayPerMillion: 1 }))).toThrow(/unknown price 'apiGatewayPerMillion'/);
    expect(() => loadPrices(writeJson('negative.json', { lambdaPerMillionRequests: -1 }))).toThrow(/must be a number >= 0/);
    expect(() => loadPrices(writeJson('string.json', { lambdaPerMillionRequests: '0.2' }))).toThrow(/must be a number >= 0/);
    const proto = path.join(tmp, 'proto.json');
    fs.writeFileSync(proto, '{"__proto__": {"apiGatewayRestPerMillionRequests": 0}}');
    expect(() => loadPrices(proto)).toThrow(/unknown price '__proto__'/);
    fs.writeFileSync(path.join(tmp, 'broken.json'), '{');
    expect(() => loadPrices(path.join(tmp, 'broken.json'))).toThrow(/cannot read the prices file/);
  });

  test('measurements come from a bench baseline (its measurements field); what it lacks keeps the defaults', () => {
    const file = writeJson('baseline.json', { measurements: { units: { query: { read: 0.5, write: 0 } } } });
    const m = loadMeasurements(file);
    expect(m.units.query).toEqual({ read: 0.5, write: 0 });
    expect(m.units.command).toEqual(DEFAULT_MEASUREMENTS.units.command);
    expect(m.durationsMs).toEqual(DEFAULT_MEASUREMENTS.durationsMs);
  });
});

test('another assembly, other figures: the production example caches the authorizer 60 s, so it runs 5x as often as with 300 s', () => {
  const outdir = fs.mkdtempSync(path.join(tmp, 'prod-'));
  buildExampleApp(outdir, SkafuEnvironment.PRODUCTION).synth();
  const prod = findPaths(readTemplates(outdir));
  expect(prod.authorizer!.ttlSeconds).toBe(60);
  const authorizer = (dir: string) => line(estimate(findPaths(readTemplates(dir)), US_EAST_1_ON_DEMAND, ROUND)[0].queries, 'Authorizer Lambda');
  // 60 s x 0.1 = 6 requests per cached policy against 30.
  expect(authorizer(outdir) / authorizer(dev())).toBeCloseTo(5, 3);
});
