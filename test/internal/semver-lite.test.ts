/**
 * The `semver` stand-in bundled into the handlers (esbuild --alias, .projenrc.ts) answers `gte` as semver does
 * for the versions its only caller (aws-xray-sdk-core's SDK v2 patcher) compares, and refuses what it cannot.
 */
import * as fc from 'fast-check';
import { gte } from '../../src/internal/semver-lite';

// The real package (a transitive dependency of aws-xray-sdk-core, untyped here).
// eslint-disable-next-line @typescript-eslint/no-require-imports, import/no-extraneous-dependencies
const semver = require('semver') as { gte(a: string, b: string): boolean };

test('gte agrees with semver on plain versions', () => {
  const version = fc.tuple(fc.nat(30), fc.nat(30), fc.nat(30)).map(([a, b, c]) => `${a}.${b}.${c}`);
  fc.assert(fc.property(version, version, (a, b) => gte(a, b) === semver.gte(a, b)));
  expect(gte('2.1692.0', '2.7.15')).toBe(true);
  expect(gte('2.7.14', '2.7.15')).toBe(false);
});

test('refuses what it does not compare exactly, rather than guess', () => {
  expect(() => gte('2.7.15-beta.1', '2.7.15')).toThrow(/plain major.minor.patch/);
  expect(() => gte('latest', '2.7.15')).toThrow(/plain major.minor.patch/);
});
