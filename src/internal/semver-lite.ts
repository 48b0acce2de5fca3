/**
 * Stands in for the `semver` package in the handler bundles (esbuild `--alias:semver`, set in .projenrc.ts).
 * Its only user there is aws-xray-sdk-core's AWS SDK v2 patcher (`captureAWS`: `semver.gte(AWS.VERSION,
 * '2.7.15')`), which the Powertools tracer reaches only through `tracer.captureAWS` for SDK v2; Skafu's handlers
 * use SDK v3 (`captureAWSv3Client`). The real package is 29 KB of every minified bundle. `gte` compares plain
 * `major.minor.patch` versions exactly as semver does; anything else throws rather than guess.
 */
const PLAIN = /^v?(\d+)\.(\d+)\.(\d+)$/;

function parts(version: string): [number, number, number] {
  const m = PLAIN.exec(String(version).trim());
  if (!m) throw new Error(`semver-lite compares plain major.minor.patch versions only, not '${version}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function gte(a: string, b: string): boolean {
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i];
  return true;
}
