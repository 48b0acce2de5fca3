/**
 * The cost model of a synthesized Skafu app: reads a cloud assembly (cdk.out, nested stacks and stages included),
 * finds each request path (API Gateway, the authorizer and its cache TTL, the command and query functions with
 * their memory and architecture, the event store's stream and its publisher's batch size, the domain bus with its
 * archives and projection rules, the state machines with their type, logging and tracing), and prices one million
 * commands and one million queries of each domain, line by line, from a price table and measured figures.
 *
 * The seed design (Standard workflows, 512 MB x86_64 Lambdas for every function, a Lambda per projection, no
 * state machine logging) is priced on the same paths with the same measured figures, for comparison.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Measurements } from './measurements';
import type { PriceTable } from './prices';

type Json = Record<string, any>;

export interface FunctionInfo {
  /** `<template file>#<logical id>` */
  readonly id: string;
  readonly memoryMb: number;
  readonly arm64: boolean;
  readonly tracing: boolean;
  readonly environment: Record<string, unknown>;
}

export interface StateMachineInfo {
  readonly id: string;
  readonly type: 'EXPRESS' | 'STANDARD';
  /** ALL, ERROR, FATAL or OFF. */
  readonly logLevel: string;
  readonly tracing: boolean;
}

export interface DomainPaths {
  readonly domain: string;
  readonly commandFunction?: FunctionInfo;
  readonly queryFunction?: FunctionInfo;
  readonly commandRoutes: number;
  readonly queryRoutes: number;
  /** The state machines that rules on the bus start for this domain's events. */
  readonly projections: StateMachineInfo[];
}

export interface AppPaths {
  readonly templates: number;
  readonly authorizer?: { readonly ttlSeconds: number; readonly function?: FunctionInfo };
  readonly apiAccessLogs: boolean;
  readonly apiTracing: boolean;
  readonly publisher?: { readonly batchSize: number; readonly function: FunctionInfo };
  /** Archives on the bus the publisher puts domain events on (each processes every event). */
  readonly busArchives: number;
  readonly domains: DomainPaths[];
}

/** Reads every template of an assembly directory (recursively: nested stacks and stages). */
export function readTemplates(assemblyDir: string): Record<string, Json> {
  if (!fs.existsSync(assemblyDir) || !fs.statSync(assemblyDir).isDirectory()) {
    throw new Error(`${assemblyDir} is not a cloud assembly directory (run cdk synth first)`);
  }
  const templates: Record<string, Json> = {};
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && entry.name.startsWith('assembly-')) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.template.json')) templates[path.relative(assemblyDir, full)] = JSON.parse(fs.readFileSync(full, 'utf8'));
    }
  };
  walk(assemblyDir);
  if (Object.keys(templates).length === 0) throw new Error(`no *.template.json in ${assemblyDir}`);
  return templates;
}

/** The logical id a `Fn::GetAtt [id, Arn]` or `Ref` points at, wherever it sits in a Fn::Join. */
function referencedIds(value: unknown): string[] {
  const ids: string[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) {v.forEach(visit);} else if (v && typeof v === 'object') {
      const o = v as Json;
      if (Array.isArray(o['Fn::GetAtt'])) ids.push(String(o['Fn::GetAtt'][0]));
      else if (typeof o.Ref === 'string') ids.push(o.Ref);
      else Object.values(o).forEach(visit);
    }
  };
  visit(value);
  return ids;
}

function functionInfo(file: string, id: string, resource: Json): FunctionInfo {
  const p = resource.Properties ?? {};
  return {
    id: `${file}#${id}`,
    memoryMb: typeof p.MemorySize === 'number' ? p.MemorySize : 128,
    arm64: Array.isArray(p.Architectures) && p.Architectures.includes('arm64'),
    tracing: p.TracingConfig?.Mode === 'Active',
    environment: p.Environment?.Variables ?? {},
  };
}

/** Finds the request paths of a synthesized Skafu app. */
export function findPaths(templates: Record<string, Json>): AppPaths {
  let authorizer: AppPaths['authorizer'];
  let apiAccessLogs = false;
  let apiTracing = false;
  let publisher: AppPaths['publisher'];
  const archiveSources: string[][] = [];
  interface Mutable {
    commandFunction?: FunctionInfo;
    queryFunction?: FunctionInfo;
    commandRoutes: number;
    queryRoutes: number;
    projections: StateMachineInfo[];
  }
  const domains = new Map<string, Mutable>();
  const domainOf = (name: string) => {
    let d = domains.get(name);
    if (!d) domains.set(name, (d = { commandRoutes: 0, queryRoutes: 0, projections: [] }));
    return d;
  };

  for (const [file, template] of Object.entries(templates)) {
    const resources = (template.Resources ?? {}) as Record<string, Json>;
    const fn = (id: string) => (resources[id]?.Type === 'AWS::Lambda::Function' ? functionInfo(file, id, resources[id]) : undefined);
    for (const r of Object.values(resources)) {
      const p = r.Properties ?? {};
      switch (r.Type) {
        case 'AWS::ApiGateway::Authorizer': {
          const target = referencedIds(p.AuthorizerUri).map(fn).find(Boolean);
          authorizer = { ttlSeconds: typeof p.AuthorizerResultTtlInSeconds === 'number' ? p.AuthorizerResultTtlInSeconds : 300, function: target };
          break;
        }
        case 'AWS::ApiGateway::Stage':
          apiAccessLogs ||= Boolean(p.AccessLogSetting);
          apiTracing ||= p.TracingEnabled === true;
          break;
        case 'AWS::ApiGateway::Method': {
          if (p.HttpMethod === 'OPTIONS') break;
          const target = referencedIds(p.Integration?.Uri).map(fn).find(Boolean);
          const domain = target?.environment.SKAFU_DOMAIN;
          if (!target || typeof domain !== 'string') break;
          const d = domainOf(domain);
          if (p.HttpMethod === 'GET') {
            d.queryFunction = target;
            d.queryRoutes++;
          } else {
            d.commandFunction = target;
            d.commandRoutes++;
          }
          break;
        }
        case 'AWS::Lambda::EventSourceMapping': {
          const target = referencedIds(p.FunctionName).map(fn).find(Boolean);
          // The outbox: a mapping from a DynamoDB stream to the function that puts events on the bus.
          const fromStream = JSON.stringify(p.EventSourceArn ?? '').includes('StreamArn');
          if (target && fromStream && target.environment.SKAFU_EVENT_BUS_NAME !== undefined) {
            publisher = { batchSize: typeof p.BatchSize === 'number' ? p.BatchSize : 100, function: target };
          }
          break;
        }
        case 'AWS::Events::Archive':
          archiveSources.push(referencedIds(p.SourceArn));
          break;
        case 'AWS::Events::Rule': {
          const sources: unknown[] = Array.isArray(p.EventPattern?.source) ? p.EventPattern.source : [];
          for (const target of (p.Targets ?? []) as Json[]) {
            const machine = referencedIds(target.Arn).map((tid) => resources[tid]?.Type === 'AWS::StepFunctions::StateMachine' ? [tid, resources[tid]] as const : undefined).find(Boolean);
            if (!machine) continue;
            const props = machine[1].Properties ?? {};
            const info: StateMachineInfo = {
              id: `${file}#${machine[0]}`,
              type: props.StateMachineType === 'EXPRESS' ? 'EXPRESS' : 'STANDARD',
              logLevel: props.LoggingConfiguration?.Level ?? 'OFF',
              tracing: props.TracingConfiguration?.Enabled === true,
            };
            for (const source of sources) {
              if (typeof source === 'string' && source.startsWith('skafu.')) domainOf(source.slice('skafu.'.length)).projections.push(info);
            }
          }
          break;
        }
        default:
          break;
      }
    }
  }
  // The domain bus is the one the publisher puts events on (its SKAFU_EVENT_BUS_NAME refers to it).
  const domainBus = referencedIds(publisher?.function.environment.SKAFU_EVENT_BUS_NAME);
  const busArchives = archiveSources.filter((ids) => ids.some((id) => domainBus.includes(id))).length;
  return {
    templates: Object.keys(templates).length,
    authorizer,
    apiAccessLogs,
    apiTracing,
    publisher,
    busArchives,
    domains: [...domains.entries()]
      .filter(([, d]) => d.commandFunction || d.queryFunction)
      .map(([domain, d]) => ({ domain, ...d }))
      .sort((a, b) => a.domain.localeCompare(b.domain)),
  };
}

export interface CostLine {
  readonly item: string;
  /** How the figure was computed, in words and numbers a reader can redo. */
  readonly basis: string;
  /** USD per million operations. */
  readonly usd: number;
}

export interface CostEstimate {
  readonly lines: CostLine[];
  readonly total: number;
}

export interface DomainCost {
  readonly domain: string;
  readonly commands?: CostEstimate;
  /** The same command sent with an Idempotency-Key header. */
  readonly commandsWithIdempotencyKey?: CostEstimate;
  readonly queries?: CostEstimate;
  /** The seed design's choices, priced on the same paths. */
  readonly seedCommands?: CostEstimate;
  readonly seedQueries?: CostEstimate;
}

/** The choices a design makes for its functions and workflows. */
interface Design {
  readonly name: 'skafu' | 'seed';
  readonly memory: (f: FunctionInfo | undefined, fallback: number) => number;
  readonly arm64: (f: FunctionInfo | undefined) => boolean;
  readonly workflow: (m: StateMachineInfo) => StateMachineInfo;
  readonly lambdaPerProjection: boolean;
}

const SKAFU: Design = {
  name: 'skafu',
  memory: (f, fallback) => f?.memoryMb ?? fallback,
  arm64: (f) => f?.arm64 ?? true,
  workflow: (m) => m,
  lambdaPerProjection: false,
};

/** Skafu's seed design: SAM defaults (x86_64), 512 MB everywhere, Standard workflows without logging, a Lambda per projection. */
const SEED: Design = {
  name: 'seed',
  memory: () => 512,
  arm64: () => false,
  workflow: (m) => ({ ...m, type: 'STANDARD', logLevel: 'OFF', tracing: false }),
  lambdaPerProjection: true,
};

const GB = 1024 ** 3;
const round = (n: number, digits = 4) => Number(n.toFixed(digits));

class Lines {
  public readonly lines: CostLine[] = [];
  public add(item: string, basis: string, usd: number): void {
    this.lines.push({ item, basis, usd: round(usd, 6) });
  }
  public estimate(): CostEstimate {
    return { lines: this.lines, total: round(this.lines.reduce((s, l) => s + l.usd, 0), 6) };
  }
}

function lambdaLine(
  lines: Lines,
  prices: PriceTable,
  design: Design,
  label: string,
  f: FunctionInfo | undefined,
  fallbackMb: number,
  invocations: number,
  ms: number,
): void {
  const mb = design.memory(f, fallbackMb);
  const arm = design.arm64(f);
  const perGbSecond = arm ? prices.lambdaPerGbSecondArm : prices.lambdaPerGbSecondX86;
  const gbSeconds = invocations * (mb / 1024) * (ms / 1000);
  lines.add(
    label,
    `${round(invocations, 4)} invocation(s) x ($${prices.lambdaPerMillionRequests}/M + ${mb} MB ${arm ? 'arm64' : 'x86_64'} x ${ms} ms at $${perGbSecond}/GB-s)`,
    invocations * prices.lambdaPerMillionRequests + gbSeconds * 1e6 * perGbSecond,
  );
}

function edgeLines(lines: Lines, paths: AppPaths, prices: PriceTable, m: Measurements, design: Design): { authorizerRuns: number } {
  lines.add('API Gateway REST request', `1 request at $${prices.apiGatewayRestPerMillionRequests}/M`, prices.apiGatewayRestPerMillionRequests);
  let authorizerRuns = 0;
  if (paths.authorizer) {
    const ttl = paths.authorizer.ttlSeconds;
    const perEntry = Math.max(1, ttl * m.assumptions.requestsPerSecondPerCallerRoute);
    authorizerRuns = 1 / perEntry;
    lambdaLine(
      lines,
      prices,
      design,
      `Authorizer Lambda (cache TTL ${ttl} s: runs once per ${round(perEntry, 2)} requests of a caller on a route)`,
      paths.authorizer.function,
      256,
      authorizerRuns,
      m.durationsMs.authorizer,
    );
  }
  return { authorizerRuns };
}

function units(lines: Lines, prices: PriceTable, label: string, u: { read: number; write: number }, times = 1): void {
  lines.add(
    label,
    `${round(u.read * times, 3)} RRU at $${prices.dynamoDbPerMillionReadUnits}/M + ${round(u.write * times, 3)} WRU at $${prices.dynamoDbPerMillionWriteUnits}/M`,
    times * (u.read * prices.dynamoDbPerMillionReadUnits + u.write * prices.dynamoDbPerMillionWriteUnits),
  );
}

function logsAndTraces(
  lines: Lines,
  prices: PriceTable,
  m: Measurements,
  apiAccessLogs: boolean,
  lambdaRuns: number,
  sfnStatesLogged: number,
  traces: number,
): void {
  const a = m.assumptions;
  const bytes =
    (apiAccessLogs ? a.apiAccessLogBytes : 0) +
    lambdaRuns * (a.lambdaPlatformLogBytes + a.handlerLogBytes) +
    sfnStatesLogged * a.stepFunctionsLogBytesPerState;
  lines.add(
    'CloudWatch Logs ingested',
    `${round(bytes, 0)} bytes (${apiAccessLogs ? `access log ${a.apiAccessLogBytes} + ` : ''}${round(lambdaRuns, 3)} Lambda run(s) x ${a.lambdaPlatformLogBytes + a.handlerLogBytes}` +
      `${sfnStatesLogged ? ` + ${round(sfnStatesLogged, 2)} states logged x ${a.stepFunctionsLogBytesPerState}` : ''}) at $${prices.cloudWatchLogsPerGbIngested}/GB`,
    (bytes * 1e6 / GB) * prices.cloudWatchLogsPerGbIngested,
  );
  if (traces > 0) {
    lines.add('X-Ray traces recorded', `${round(traces, 3)} trace(s) x ${a.xRaySampleRate} sampled at $${prices.xRayPerMillionTracesRecorded}/M`, traces * a.xRaySampleRate * prices.xRayPerMillionTracesRecorded);
  }
}

function commandCost(paths: AppPaths, d: DomainPaths, prices: PriceTable, m: Measurements, design: Design, idempotencyKey = false): CostEstimate {
  const lines = new Lines();
  const a = m.assumptions;
  const { authorizerRuns } = edgeLines(lines, paths, prices, m, design);
  lambdaLine(lines, prices, design, 'Command Lambda', d.commandFunction, 512, 1, m.durationsMs.command);
  units(lines, prices, `DynamoDB: one command${idempotencyKey ? ' with an idempotency key' : ''} (load, checks, append)`, idempotencyKey ? m.units.commandWithIdempotencyKey : m.units.command);
  const events = a.eventsPerCommand;
  let lambdaRuns = authorizerRuns + 1;
  if (paths.publisher) {
    const perInvocation = Math.min(paths.publisher.batchSize, a.publisherEventsPerInvocation);
    const runs = events / perInvocation;
    lambdaRuns += runs;
    const label = `Outbox publisher Lambda (stream batches of ${perInvocation}, mapping's batch size ${paths.publisher.batchSize}; stream reads free)`;
    lambdaLine(lines, prices, design, label, paths.publisher.function, 256, runs, m.durationsMs.publisherBatch);
  }
  lines.add('EventBridge PutEvents', `${events} custom event(s) at $${prices.eventBridgePerMillionEvents}/M`, events * prices.eventBridgePerMillionEvents);
  if (paths.busArchives > 0) {
    const gb = (events * a.eventBytes * 1e6) / GB;
    lines.add(
      'EventBridge archive',
      `${events} event(s) x ${a.eventBytes} bytes processed by ${paths.busArchives} archive(s) at $${prices.eventBridgeArchivePerGb}/GB`,
      paths.busArchives * gb * prices.eventBridgeArchivePerGb,
    );
  }
  let statesLogged = 0;
  let traces = 1;
  for (const original of d.projections) {
    const sm = design.workflow(original);
    const runs = events;
    if (sm.type === 'EXPRESS') {
      const mb = Math.ceil(m.projection.expressMemoryMb / 64) * 64;
      const ms = Math.ceil(m.projection.expressDurationMs / 100) * 100;
      const gbSeconds = runs * (mb / 1024) * (ms / 1000);
      lines.add(
        'Step Functions Express projection',
        `${runs} request(s) at $${prices.stepFunctionsExpressPerMillionRequests}/M + ${mb} MB x ${ms} ms at $${prices.stepFunctionsExpressPerGbSecond}/GB-s`,
        runs * prices.stepFunctionsExpressPerMillionRequests + gbSeconds * 1e6 * prices.stepFunctionsExpressPerGbSecond,
      );
    } else {
      const transitions = runs * m.projection.statesPerExecution;
      lines.add('Step Functions Standard projection', `${transitions} state transitions at $${prices.stepFunctionsStandardPerThousandTransitions}/1,000`, (transitions / 1000) * 1e6 * prices.stepFunctionsStandardPerThousandTransitions);
    }
    if (design.lambdaPerProjection) {
      lambdaRuns += runs;
      lambdaLine(lines, prices, design, 'Projection Lambda', undefined, 512, runs, m.durationsMs.projectionLambda);
    }
    units(lines, prices, 'DynamoDB: read-model and checkpoint writes of one projected event', m.units.projectedEvent, runs);
    if (sm.logLevel === 'ALL') statesLogged += runs * m.projection.statesPerExecution;
    if (sm.tracing) traces += runs;
  }
  logsAndTraces(lines, prices, m, paths.apiAccessLogs, lambdaRuns, statesLogged, traces);
  return lines.estimate();
}

function queryCost(paths: AppPaths, d: DomainPaths, prices: PriceTable, m: Measurements, design: Design): CostEstimate {
  const lines = new Lines();
  const { authorizerRuns } = edgeLines(lines, paths, prices, m, design);
  lambdaLine(lines, prices, design, 'Query Lambda', d.queryFunction, 512, 1, m.durationsMs.query);
  units(lines, prices, 'DynamoDB: one query (a read-model GetItem)', m.units.query);
  logsAndTraces(lines, prices, m, paths.apiAccessLogs, authorizerRuns + 1, 0, 1);
  return lines.estimate();
}

/** Prices each domain's commands and queries, for this app and for the seed design's choices. */
export function estimate(paths: AppPaths, prices: PriceTable, m: Measurements): DomainCost[] {
  return paths.domains.map((d) => ({
    domain: d.domain,
    commands: d.commandFunction ? commandCost(paths, d, prices, m, SKAFU) : undefined,
    commandsWithIdempotencyKey: d.commandFunction ? commandCost(paths, d, prices, m, SKAFU, true) : undefined,
    queries: d.queryFunction ? queryCost(paths, d, prices, m, SKAFU) : undefined,
    seedCommands: d.commandFunction ? commandCost(paths, d, prices, m, SEED) : undefined,
    seedQueries: d.queryFunction ? queryCost(paths, d, prices, m, SEED) : undefined,
  }));
}

const usd = (n: number) => `$${n.toFixed(n < 10 ? 3 : 2)}`;

function table(title: string, e: CostEstimate): string[] {
  const width = Math.max(...e.lines.map((l) => l.item.length), 5);
  return [
    `  ${title}`,
    ...e.lines.map((l) => `    ${l.item.padEnd(width)}  ${usd(l.usd).padStart(9)}   ${l.basis}`),
    `    ${'total'.padEnd(width)}  ${usd(e.total).padStart(9)}`,
  ];
}

/** The report `skafu-cost` prints. */
export function formatReport(paths: AppPaths, costs: DomainCost[], prices: PriceTable, m: Measurements): string {
  const out: string[] = [];
  out.push(`Skafu cost model: USD per million requests, ${prices.region} on-demand prices taken ${prices.takenOn}, no free tier.`);
  out.push(`Measured figures: ${m.source}, ${m.measuredOn}. Assumptions: ${m.assumptions.eventsPerCommand} event per command, ` +
    `X-Ray samples ${m.assumptions.xRaySampleRate * 100}%, a caller sends ${m.assumptions.requestsPerSecondPerCallerRoute} requests/s per route.`);
  out.push(`Found: ${paths.templates} template(s), ${paths.domains.length} domain(s), authorizer cache TTL ${paths.authorizer?.ttlSeconds ?? 'none'} s, ` +
    `publisher batch size ${paths.publisher?.batchSize ?? 'none'}, ${paths.busArchives} bus archive(s).`);
  for (const c of costs) {
    const d = paths.domains.find((x) => x.domain === c.domain)!;
    out.push('');
    out.push(`Domain ${c.domain}: ${d.commandRoutes} command route(s), ${d.queryRoutes} query route(s), ${d.projections.length} projection state machine(s) ` +
      `(${d.projections.map((p) => `${p.type}, logs ${p.logLevel}${p.tracing ? ', traced' : ''}`).join('; ') || 'none'})`);
    if (c.commands) out.push(...table('per million commands', c.commands));
    if (c.commandsWithIdempotencyKey) out.push(`  with an Idempotency-Key header: ${usd(c.commandsWithIdempotencyKey.total)} per million commands`);
    if (c.queries) out.push(...table('per million queries', c.queries));
    if (c.commands && c.seedCommands) {
      out.push(`  seed design (Standard workflows, 512 MB x86_64 Lambdas, a Lambda per projection) per million commands: ${usd(c.seedCommands.total)}; ` +
        `this app: ${usd(c.commands.total)} = ${((100 * c.commands.total) / c.seedCommands.total).toFixed(1)}% of it`);
    }
    if (c.queries && c.seedQueries) {
      out.push(`  seed design per million queries: ${usd(c.seedQueries.total)}; this app: ${usd(c.queries.total)} = ${((100 * c.queries.total) / c.seedQueries.total).toFixed(1)}% of it`);
    }
  }
  out.push('');
  out.push('Not counted: free tiers, data transfer out, storage (tables, logs, archives, X-Ray), CloudWatch metrics and alarms, ' +
    'Cognito, failed or retried requests, reactions (rules that start commands).');
  return out.join('\n');
}
