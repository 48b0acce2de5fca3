/** Small helpers shared by the benchmarks: timing, medians, and a printed table of ratios. */
import { performance } from 'node:perf_hooks';

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Runs `count` tasks with at most `concurrency` in flight. */
export async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export interface Row {
  readonly name: string;
  readonly value: string;
}

export function printSection(title: string, rows: Row[]): void {
  const width = Math.max(...rows.map((r) => r.name.length));
  console.log(`\n## ${title}`);
  for (const row of rows) console.log(`  ${row.name.padEnd(width)}  ${row.value}`);
}

export const fmt = (n: number, digits = 1): string => n.toFixed(digits);
