/**
 * `npm run demo`: synthesizes the example platform, starts Skafu Local on it, and plays a scripted scenario over
 * HTTP with the demo users, then prints a summary. Exits 0 when every step behaved as expected.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeleteTableCommand, CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import WebSocket from 'ws';
import { realtimeHeader } from './appsync-server';
import { runScenario as runRecorded, validateScenario, type Scenario } from './scenario';
import { SkafuLocal } from './skafu-local';
import { createTableInputFromCfn } from './tables';

export interface DemoStep {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

interface Reply {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

export class DemoClient {
  /**
   * The client's connections to Skafu Local, kept open between requests. node:http costs this thread about a
   * millisecond less per request than fetch (Node 20's undici), and the client shares the thread (and the
   * machine's cores) with the Skafu Local it measures. An idle connection is closed after 4 s, before the
   * server's keep-alive timeout (5 s), so that a request never goes out on a connection the server is closing.
   */
  private static readonly agent = new http.Agent({ keepAlive: true, timeout: 4_000 });
  private n = 0;

  constructor(
    private readonly local: SkafuLocal,
    public readonly correlationPrefix = 'demo',
  ) {}

  public async call(method: string, route: string, options: { as?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
    const token = options.as === undefined ? undefined : this.local.tokens[options.as];
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const url = new URL(`${this.local.url}${route}`);
    if (url.protocol !== 'http:') throw new Error(`DemoClient speaks plain HTTP to Skafu Local, not ${url.protocol} (${url.origin})`);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'X-Correlation-Id': `${this.correlationPrefix}-${++this.n}`,
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(options.headers ?? {}),
    };
    if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
    type Raw = { status: number; text: string; headers: http.IncomingHttpHeaders };
    const { status, text, headers: received } = await new Promise<Raw>((resolve, reject) => {
      // The URL object as it is (an IPv6 host keeps its meaning: node:http strips its brackets).
      const request = http.request(url, { method, headers, agent: DemoClient.agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: response.headers }));
        response.on('error', reject);
      });
      request.on('error', reject);
      // A minute with nothing received is a failure, not a hang (API Gateway's own integration timeout is 29 s).
      request.setTimeout(60_000, () => request.destroy(new Error(`nothing from ${url.origin} for ${method} ${route} in 60 s`)));
      request.end(body);
    });
    const replyHeaders = new Headers();
    for (const [name, value] of Object.entries(received)) {
      for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) replyHeaders.append(name, one);
    }
    return { status, body: text ? (JSON.parse(text) as Record<string, any>) : {}, headers: replyHeaders };
  }

  /** Queries until `ready` holds (the projections are asynchronous), at most `timeoutMs`, every `intervalMs`. */
  public async until(route: string, as: string, ready: (r: Reply) => boolean, timeoutMs = 20_000, intervalMs = 150): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    let last: Reply;
    do {
      last = await this.call('GET', route, { as });
      if (ready(last)) return last;
      await new Promise((r) => setTimeout(r, intervalMs));
    } while (Date.now() < deadline);
    return last;
  }
}

/** The demo's recorded scenario (local/scenarios/demo.json): the part that runs against any stage. */
export function demoScenario(): Scenario {
  const file = path.join(__dirname, '..', 'scenarios', 'demo.json');
  return validateScenario(JSON.parse(fs.readFileSync(file, 'utf8')), file);
}

/**
 * The demo: the recorded scenario over HTTP, then a step only Skafu Local can play (a projection that fails
 * because its read model table is gone becomes an error event). Returns each step with whether it behaved as
 * expected.
 */
export async function runScenario(local: SkafuLocal, log: (line: string) => void = console.log): Promise<DemoStep[]> {
  const steps: DemoStep[] = [...(await runRecorded(demoScenario(), { baseUrl: local.url, tokens: local.tokens, log, correlationPrefix: 'demo' }))];
  const step = (name: string, ok: boolean, detail: string) => {
    steps.push({ name, ok, detail });
    log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  };
  const api = new DemoClient(local);
  const second = await api.call('POST', '/api/v1/observability/alerts', { as: 'Admin', body: { name: 'Disk', metricName: 'disk', threshold: 90, condition: 'GreaterThan', severity: 'low' } });
  // Projected first, so that the failure below is the trigger's alone.
  await api.until(`/api/v1/observability/alerts/${second.body.aggregateId}`, 'Viewer', (r) => r.body.item?.version === 1);

  if (local.graphqlUrl) await graphqlSteps(local, api, second.body.aggregateId, step);

  // A failing projection: the alerts read model goes away while an alert is triggered.
  const alertsTable = Object.entries(local.tables).find(([p]) => /ReadModelAlerts/.test(p));
  if (alertsTable) {
    const [, name] = alertsTable;
    const described = await local.client.send(new DescribeTableCommand({ TableName: name }));
    await local.client.send(new DeleteTableCommand({ TableName: name }));
    const errorsBefore = local.errors.length;
    const failing = await api.call('POST', `/api/v1/observability/alerts/${second.body.aggregateId}/trigger`, { as: 'Developer', body: { metricValue: 3 } });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !local.errors.slice(errorsBefore).some((e) => e.errorType === 'ProjectionFailed')) await new Promise((r) => setTimeout(r, 200));
    const reported = local.errors.slice(errorsBefore).find((e) => e.errorType === 'ProjectionFailed');
    step('a failing projection becomes an error event', failing.status === 202 && reported !== undefined && reported.metadata?.original?.aggregateId === second.body.aggregateId, reported ? `${reported.errorType}: ${reported.message}` : 'no error event');
    const t = described.Table!;
    const definition = {
      KeySchema: t.KeySchema,
      AttributeDefinitions: t.AttributeDefinitions,
      GlobalSecondaryIndexes: t.GlobalSecondaryIndexes,
      StreamSpecification: t.StreamSpecification,
    };
    await local.client.send(new CreateTableCommand(createTableInputFromCfn(definition, name)));
  }
  return steps;
}

/**
 * The read side over GraphQL: a Viewer reads the alert with a query, subscribes to its changes over AppSync's
 * real-time protocol, a Developer triggers it over REST, and the change arrives (projection → read-model stream →
 * change publisher → IAM mutation → subscription). A user in no group is refused the subscription.
 */
type Step = (name: string, ok: boolean, detail: string) => void;
async function graphqlSteps(local: SkafuLocal, api: DemoClient, alertId: string, step: Step): Promise<void> {
  const viewer = local.tokens.Viewer;
  const query = await fetch(local.graphqlUrl, {
    method: 'POST',
    headers: { 'Authorization': viewer, 'Content-Type': 'application/json' },
    body: JSON.stringify({ query: 'query($id: String!) { getAlert(alertId: $id) { alertId name triggerCount version } }', variables: { id: alertId } }),
  });
  const read = (await query.json()) as any;
  step('GraphQL: a Viewer queries the alert', query.status === 200 && read.data?.getAlert?.alertId === alertId && read.data.getAlert.triggerCount === 0, JSON.stringify(read.data ?? read.errors));

  const host = new URL(local.graphqlUrl).host;
  const ws = new WebSocket(`${local.graphqlRealtimeUrl}?header=${realtimeHeader(viewer, host)}&payload=e30=`, 'graphql-ws');
  const messages: any[] = [];
  ws.on('message', (raw) => messages.push(JSON.parse(String(raw))));
  const waitFor = async (match: (m: any) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !messages.some(match)) await new Promise((r) => setTimeout(r, 50));
    return messages.find(match);
  };
  try {
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor((m) => m.type === 'connection_ack');
    const start = (id: string, token: string) =>
      ws.send(JSON.stringify({
        id,
        type: 'start',
        payload: {
          data: JSON.stringify({ query: 'subscription($id: String) { onAlertsChange(alertId: $id) { alertId change item { triggerCount lastValue version } } }', variables: { id: alertId } }),
          extensions: { authorization: { Authorization: token, host } },
        },
      }));
    start('viewer', viewer);
    start('nogroup', local.tokens.NoGroup);
    const acked = await waitFor((m) => m.type === 'start_ack' && m.id === 'viewer');
    const refused = await waitFor((m) => m.type === 'error' && m.id === 'nogroup');
    step('GraphQL: a user in no group is refused the subscription', acked !== undefined && refused?.payload?.errors?.[0]?.errorType === 'Unauthorized', JSON.stringify(refused?.payload ?? 'no answer'));
    const triggered = await api.call('POST', `/api/v1/observability/alerts/${alertId}/trigger`, { as: 'Developer', body: { metricValue: 97 } });
    const started = Date.now();
    const data = await waitFor((m) => m.type === 'data' && m.id === 'viewer');
    const change = data?.payload?.data?.onAlertsChange;
    step(
      'GraphQL subscription: the Viewer sees the trigger arrive',
      triggered.status === 202 && change?.alertId === alertId && change.change === 'UPSERT' && change.item?.triggerCount === 1 && change.item?.lastValue === 97,
      change ? `${JSON.stringify(change)} ${Date.now() - started} ms after the command` : 'no change arrived',
    );
    ws.send(JSON.stringify({ type: 'stop', id: 'viewer' }));
  } finally {
    ws.terminate();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-demo-'));
  console.log('Synthesizing the example platform...');
  // The example app is TypeScript in this repository.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildExampleApp } = require('../../examples/platform/app') as typeof import('../../examples/platform/app');
  buildExampleApp(outdir).synth();
  const local = new SkafuLocal({ assembly: outdir, workDirectory: path.join(process.cwd(), '.skafu-local') });
  let steps: DemoStep[] = [];
  try {
    await local.start();
    console.log('\nScenario:');
    steps = await runScenario(local);
  } finally {
    await local.stop();
  }
  const failed = steps.filter((s) => !s.ok);
  console.log(`\nSummary: ${steps.length - failed.length} of ${steps.length} steps as expected; ${local.errors.length} error event(s) on the error bus; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`demo: ${steps.length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length === 0 ? 0 : 1);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
