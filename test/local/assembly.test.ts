/**
 * The assembly is found however the user names it: relative, `./`, absolute, through a symlink; its assets are
 * absolute paths (a relative one broke every handler once); stacks of CDK stages (`assembly-*`) are read too; a
 * directory that is not an assembly is refused with a message that says so.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeAssembly } from './support/assembly';
import { LocalAssembly } from '../../local/src/assembly';
import { SkafuLocal } from '../../local/src/skafu-local';

const fnTemplate = { Fn: { Type: 'AWS::Lambda::Function', Properties: { Code: { S3Key: 'abc.zip' }, Handler: 'index.handler' } } };

test.each([
  ['relative', (dir: string) => path.relative(process.cwd(), dir)],
  ['./relative', (dir: string) => `.${path.sep}${path.relative(process.cwd(), dir)}`],
  ['absolute', (dir: string) => dir],
  ['symlinked', (dir: string) => {
    const link = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-link-')), 'cdk.out');
    fs.symlinkSync(dir, link);
    return link;
  }],
])('a %s assembly path: its stacks are read and its assets are absolute', (_kind, name) => {
  const dir = writeAssembly({ StackA: fnTemplate, StackB: fnTemplate }, { 'asset.abc/index.js': 'exports.handler = async () => 1;' });
  const assembly = new LocalAssembly(name(dir));
  expect(assembly.stacks.map((s) => s.name)).toEqual(['StackA', 'StackB']);
  const fn = assembly.allResources().find((r) => r.type === 'AWS::Lambda::Function')!;
  const asset = assembly.assetDirectory(fn.properties.Code, fn.stack.directory);
  expect(path.isAbsolute(asset)).toBe(true);
  expect(fs.existsSync(path.join(asset, 'index.js'))).toBe(true);
});

test('stacks of a CDK stage (a nested cloud assembly) are read, with their own assets', () => {
  const stage = writeAssembly({ 'Prod-Api': fnTemplate }, { 'asset.abc/index.js': '' });
  const root = writeAssembly({ Root: {} });
  fs.renameSync(stage, path.join(root, 'assembly-Prod'));
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'manifest.json'), 'utf8'));
  manifest.artifacts['assembly-Prod'] = { type: 'cdk:cloud-assembly', properties: { directoryName: 'assembly-Prod' } };
  fs.writeFileSync(path.join(root, 'manifest.json'), JSON.stringify(manifest));
  const assembly = new LocalAssembly(root);
  expect(assembly.stacks.map((s) => s.name)).toEqual(['Root', 'Prod-Api']);
  const fn = assembly.allResources().find((r) => r.type === 'AWS::Lambda::Function')!;
  expect(assembly.assetDirectory(fn.properties.Code, fn.stack.directory)).toBe(path.join(fs.realpathSync(root), 'assembly-Prod', 'asset.abc'));
});

test('a directory that is not a cloud assembly, and a missing asset, are refused with the reason', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'skafu-not-assembly-'));
  expect(() => new LocalAssembly(empty)).toThrow(/is not a cloud assembly: it has no manifest\.json/);
  const dir = writeAssembly({ S: fnTemplate });
  expect(() => new LocalAssembly(dir).assetDirectory({ S3Key: 'abc.zip' })).toThrow(/its code asset abc\.zip is not in/);
});

test('a Python function and a Kinesis mapping are named at start as not emulated, with the reason', async () => {
  const dir = writeAssembly({
    S: {
      Py: { Type: 'AWS::Lambda::Function', Properties: { Runtime: 'python3.12', Code: { S3Key: 'abc.zip' }, Handler: 'app.handler' } },
      Kin: { Type: 'AWS::Lambda::EventSourceMapping', Properties: { EventSourceArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/clicks', FunctionName: 'S-Py' } },
    },
  });
  const local = new SkafuLocal({ assembly: dir, dynamoDbEndpoint: process.env.SKAFU_TEST_DYNAMODB_ENDPOINT, log: () => undefined });
  try {
    await local.start();
    expect(local.unsupported).toEqual(
      expect.arrayContaining([
        { type: 'AWS::Lambda::EventSourceMapping', count: 1, why: 'S/Kin: only DynamoDB stream and SQS sources are read locally, not arn:aws:kinesis:us-east-1:000000000000:stream/clicks' },
        { type: 'AWS::Lambda::Function (python3.12)', count: 1, why: 'S/Py: only Node.js functions run locally; its invocations fail' },
      ]),
    );
  } finally {
    await local.stop();
  }
});

test('pseudo parameters resolve as CloudFormation gives them, AWS::StackId included (a nested stack may get it as a parameter)', () => {
  const dir = writeAssembly({
    Ids: { Fn: { ...fnTemplate.Fn, Properties: { ...fnTemplate.Fn.Properties, Environment: { Variables: { ID: { Ref: 'AWS::StackId' }, NAME: { Ref: 'AWS::StackName' } } } } } },
  }, { 'asset.abc/index.js': '' });
  const fn = new LocalAssembly(dir).allResources().find((r) => r.type === 'AWS::Lambda::Function')!;
  const vars = fn.stack.resolve(fn.properties.Environment.Variables) as Record<string, string>;
  expect(vars.NAME).toBe('Ids');
  expect(vars.ID).toMatch(/^arn:aws:cloudformation:[a-z0-9-]+:\d{12}:stack\/Ids\/[0-9a-f-]{36}$/);
});
