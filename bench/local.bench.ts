/**
 * Skafu Local end to end: latency from a command accepted (201) to its effect visible in a query, and command
 * throughput over HTTP; baseline: a bare DynamoDB PutItem (latency and throughput) against the same DynamoDB
 * Local, in the same run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { fmt, percentile, pool, printSection, timed } from './harness';
import { buildExampleApp } from '../examples/platform/app';
import { DemoClient } from '../local/src/demo';
import { startDynamoDbLocal } from '../local/src/dynamodb-local';
import { SkafuLocal } from '../local/src/skafu-local';

const SAMPLES = Number(process.env.BENCH_E2E_SAMPLES ?? 40);
const COMMANDS = Number(process.env.BENCH_E2E_COMMANDS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_E2E_CONCURRENCY ?? 8);

export async function runLocalBench(): Promise<void> {
  const dynamo = await startDynamoDbLocal();
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-bench-local-'));
  buildExampleApp(outdir).synth();
  const local = new SkafuLocal({ assembly: outdir, dynamoDbEndpoint: dynamo.endpoint, workDirectory: path.join(outdir, '.skafu-local'), log: () => undefined, pollIntervalMs: 25 });
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
  try {
    await local.start();
    const api = new DemoClient(local, 'bench');
    const body = (i: number) => ({ name: `bench.latency.${i}`, value: i, unit: 'Count', source: 'bench' });
    // Warm every worker once.
    await api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: body(-1) });
    await api.until('/api/v1/observability/metrics?name=bench.latency.-1', 'Viewer', (r) => r.body.count === 1);

    const visible: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const accepted = await api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: body(i) });
      if (accepted.status !== 201) throw new Error(`command refused: ${accepted.status}`);
      const t0 = performance.now();
      await api.until(`/api/v1/observability/metrics?name=bench.latency.${i}`, 'Viewer', (r) => r.body.count === 1, 30_000);
      visible.push(performance.now() - t0);
    }
    const commandLatencies: number[] = [];
    const { ms } = await timed(() =>
      pool(COMMANDS, CONCURRENCY, async (i) => {
        const { ms: one, value } = await timed(() => api.call('POST', '/api/v1/observability/metrics', { as: 'Developer', body: { ...body(i), name: 'bench.throughput' } }));
        if (value.status !== 201) throw new Error(`command refused: ${value.status}`);
        commandLatencies.push(one);
      }),
    );
    const throughput = COMMANDS / (ms / 1000);

    // Baseline: a bare PutItem on the same DynamoDB Local.
    await client.send(new CreateTableCommand({ TableName: 'bench-bare', BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }] }));
    const put = (i: number) => client.send(new PutItemCommand({ TableName: 'bench-bare', Item: { pk: { S: `k${i}` }, value: { N: String(i) } } }));
    for (let i = 0; i < 20; i++) await put(-i - 1);
    const putLatencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) putLatencies.push((await timed(() => put(i))).ms);
    const { ms: putMs } = await timed(() => pool(COMMANDS, CONCURRENCY, (i) => put(1000 + i).then(() => undefined)));
    const putThroughput = COMMANDS / (putMs / 1000);
    await local.settle(30_000);

    printSection(`Skafu Local end to end (example platform, ${SAMPLES} samples, ${COMMANDS} commands at ${CONCURRENCY} in flight)`, [
      { name: 'command accepted -> visible in query, p50', value: `${fmt(percentile(visible, 50))} ms` },
      { name: 'command accepted -> visible in query, p99', value: `${fmt(percentile(visible, 99))} ms` },
      { name: 'command over HTTP (authorizer + handler), p50 / p99', value: `${fmt(percentile(commandLatencies, 50))} / ${fmt(percentile(commandLatencies, 99))} ms` },
      { name: 'command throughput over HTTP', value: `${fmt(throughput)} commands/s` },
      { name: 'baseline: bare DynamoDB PutItem, p50 / p99', value: `${fmt(percentile(putLatencies, 50), 2)} / ${fmt(percentile(putLatencies, 99), 2)} ms` },
      { name: 'baseline: bare PutItem throughput', value: `${fmt(putThroughput)} puts/s` },
      { name: 'ratio visible-p50 / put-p50', value: fmt(percentile(visible, 50) / percentile(putLatencies, 50), 1) },
      { name: 'ratio command throughput / put throughput', value: fmt(throughput / putThroughput, 3) },
    ]);
  } finally {
    client.destroy();
    await local.stop();
    await dynamo.stop();
  }
}
