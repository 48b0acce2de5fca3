/**
 * The bundled handlers as shipped in assets/: each loads on its own (everything but the AWS SDK is bundled) and
 * exports a handler. The build bundles before it tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const assets = path.join(__dirname, '..', 'assets');
const bundles = fs.existsSync(assets)
  ? fs.readdirSync(assets).flatMap((dir) => fs.readdirSync(path.join(assets, dir)).filter((b) => b.endsWith('.lambda')).map((b) => path.join(assets, dir, b, 'index.js')))
  : [];

test('every *.lambda.ts has its bundle', () => {
  const sources = fs
    .readdirSync(path.join(__dirname, '..', 'src'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.lambda.ts'));
  expect(bundles.map((b) => path.relative(assets, b).replace(/\/index\.js$/, '.ts').replace(/\.lambda\.ts$/, '.lambda.ts')).sort()).toEqual(
    sources.map((s) => s.replace(/\.ts$/, '.ts')).sort(),
  );
});

test.each(bundles.map((b) => [path.relative(assets, b), b]))('%s loads and exports handler', (_name, file) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(file) as { handler?: unknown };
  expect(typeof mod.handler).toBe('function');
  const source = fs.readFileSync(file, 'utf8');
  expect(source).not.toMatch(/require\("(aws-jwt-verify|ajv|@aws-lambda-powertools\/[a-z]+)"\)/); // bundled, not external
});
