#!/usr/bin/env node
/**
 * `skafu-cost <cdk.out> [--prices prices.json] [--measurements baseline.json] [--json]`: prints what one million
 * commands and one million queries of each domain of a synthesized Skafu app cost, line by line, and the same
 * priced with the seed design's choices. See src/cost/model.ts.
 */
import * as fs from 'node:fs';
import { DEFAULT_MEASUREMENTS, type Measurements } from './measurements';
import { estimate, findPaths, formatReport, readTemplates } from './model';
import { US_EAST_1_ON_DEMAND, type PriceTable } from './prices';

const USAGE = 'usage: skafu-cost <cdk.out directory> [--prices <prices.json>] [--measurements <bench/baseline.json>] [--json]';

function readJson(file: string, what: string): Record<string, any> {
  try {
    const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, any>;
  } catch (err) {
    throw new Error(`cannot read the ${what} file ${file}: ${(err as Error).message}`);
  }
}

/** A price file overrides the fields it names; every one of them must be a known price and a number >= 0. */
export function loadPrices(file?: string): PriceTable {
  if (!file) return US_EAST_1_ON_DEMAND;
  const overrides = readJson(file, 'prices');
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.prototype.hasOwnProperty.call(US_EAST_1_ON_DEMAND, key)) throw new Error(`${file}: unknown price '${key}'`);
    if (key !== 'takenOn' && key !== 'region' && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      throw new Error(`${file}: '${key}' must be a number >= 0`);
    }
  }
  return { ...US_EAST_1_ON_DEMAND, ...overrides };
}

/** Measurements: a bench baseline (its `measurements` field) or a Measurements object; missing parts keep the defaults. */
export function loadMeasurements(file?: string): Measurements {
  if (!file) return DEFAULT_MEASUREMENTS;
  const raw = readJson(file, 'measurements');
  const m = (raw.measurements ?? raw) as Partial<Measurements>;
  const d = DEFAULT_MEASUREMENTS;
  return {
    ...d,
    ...m,
    units: { ...d.units, ...(m.units ?? {}) },
    durationsMs: { ...d.durationsMs, ...(m.durationsMs ?? {}) },
    projection: { ...d.projection, ...(m.projection ?? {}) },
    assumptions: { ...d.assumptions, ...(m.assumptions ?? {}) },
  };
}

export function main(argv: string[]): string {
  let assembly: string | undefined;
  let pricesFile: string | undefined;
  let measurementsFile: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--prices') pricesFile = argv[++i];
    else if (arg === '--measurements') measurementsFile = argv[++i];
    else if (arg === '--json') json = true;
    else if (arg === '--help' || arg === '-h') return USAGE;
    else if (arg.startsWith('-') || assembly !== undefined) throw new Error(`unexpected argument '${arg}'\n${USAGE}`);
    else assembly = arg;
  }
  if (!assembly) throw new Error(USAGE);
  if ((argv.includes('--prices') && !pricesFile) || (argv.includes('--measurements') && !measurementsFile)) throw new Error(USAGE);
  const prices = loadPrices(pricesFile);
  const measurements = loadMeasurements(measurementsFile);
  const paths = findPaths(readTemplates(assembly));
  if (paths.domains.length === 0) throw new Error(`${assembly}: no Skafu domain found (no API method integrated with a function that has SKAFU_DOMAIN)`);
  const costs = estimate(paths, prices, measurements);
  return json ? JSON.stringify({ prices, measurements, paths, costs }, null, 2) : formatReport(paths, costs, prices, measurements);
}

if (require.main === module) {
  try {
    console.log(main(process.argv.slice(2)));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
