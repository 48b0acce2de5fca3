/**
 * Synth side: a bundled handler whose code asset also holds its declarations (see shipped-files.ts). The bundle
 * in assets/ is shared by every domain, so each function gets its own asset: a directory holding a copy of the
 * bundle plus the files, content-addressed under the assembly's output directory and staged by CDK like any
 * Code.fromAsset directory (so `cdk deploy`, CDK Pipelines and Skafu Local, which runs cdk.out's assets, see one
 * ordinary asset). The environment keeps names and ARNs only.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AspectPriority, Aspects, Lazy, Stage, type CfnResource, type IAspect } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct, IConstruct } from 'constructs';
import { refusePrototypeKeys } from './prototype-keys';

/** The handler bundles projen builds (src/<dir>/<name>.lambda.ts -> assets/<dir>/<name>.lambda/index.js). */
const ASSETS = path.join(__dirname, '..', '..', 'assets');

/**
 * A function of a bundled handler (`domain/command.lambda`) with `files` next to its `index.js`.
 * The runtime settings are those of projen's generated function classes.
 */
export function bundledHandlerWithFiles(
  scope: Construct,
  id: string,
  bundle: string,
  files: Record<string, string>,
  options: lambda.FunctionOptions,
): lambda.Function {
  const fn = new lambda.Function(scope, id, {
    description: `src/${bundle}.ts`,
    ...options,
    runtime: new lambda.Runtime('nodejs22.x', lambda.RuntimeFamily.NODEJS),
    handler: 'index.handler',
    code: lambda.Code.fromAsset(stageHandler(scope, bundle, files)),
  });
  fn.addEnvironment('AWS_NODEJS_CONNECTION_REUSE_ENABLED', '1', { removeInEdge: true });
  return fn;
}

/**
 * A function of a bundled handler whose files are known only when the app synthesizes (the authorizer's route
 * table grows as domains add routes, in any stack). Its asset is made by an aspect, before the tree is locked;
 * until then the Code's location is a Lazy value. `files` runs once.
 */
export function bundledHandlerWithLateFiles(
  scope: Construct,
  id: string,
  bundle: string,
  files: () => Record<string, string>,
  options: lambda.FunctionOptions,
): lambda.Function {
  const code = new LateAssetCode(bundle, files);
  const fn = new lambda.Function(scope, id, {
    description: `src/${bundle}.ts`,
    ...options,
    runtime: new lambda.Runtime('nodejs22.x', lambda.RuntimeFamily.NODEJS),
    handler: 'index.handler',
    code,
  });
  fn.addEnvironment('AWS_NODEJS_CONNECTION_REUSE_ENABLED', '1', { removeInEdge: true });
  Aspects.of(fn).add(new MaterializeLateAsset(fn, code), { priority: AspectPriority.MUTATING });
  return fn;
}

class LateAssetCode extends lambda.Code {
  public readonly isInline = false;
  private scope?: Construct;
  private resource?: CfnResource;
  private asset?: s3assets.Asset;

  constructor(
    private readonly bundle: string,
    private readonly files: () => Record<string, string>,
  ) {
    super();
  }

  public bind(scope: Construct): lambda.CodeConfig {
    if (this.scope && this.scope !== scope) throw new Error(`the ${this.bundle} code of ${this.scope.node.path} cannot be bound twice`);
    this.scope = scope;
    const asset = () => {
      if (!this.asset) throw new Error(`${scope.node.path}: its code asset was not made before synthesis (its aspect did not run)`);
      return this.asset;
    };
    return {
      s3Location: {
        bucketName: Lazy.string({ produce: () => asset().s3BucketName }),
        objectKey: Lazy.string({ produce: () => asset().s3ObjectKey }),
      },
    };
  }

  public bindToResource(resource: CfnResource): void {
    this.resource = resource;
  }

  /** Stages the bundle with the files and makes the asset (once). */
  public materialize(): void {
    if (this.asset || !this.scope) return;
    this.asset = new s3assets.Asset(this.scope, 'Code', { path: stageHandler(this.scope, this.bundle, this.files()), deployTime: true });
    if (this.resource) this.asset.addResourceMetadata(this.resource, 'Code');
  }
}

class MaterializeLateAsset implements IAspect {
  constructor(
    private readonly fn: lambda.Function,
    private readonly code: LateAssetCode,
  ) {}

  public visit(node: IConstruct): void {
    if (node === this.fn) this.code.materialize();
  }
}

/** The directory holding the bundle and the files (created once per content; reused by later synths). */
export function stageHandler(scope: Construct, bundle: string, files: Record<string, string>): string {
  const source = path.join(ASSETS, bundle);
  if (!fs.existsSync(path.join(source, 'index.js'))) {
    throw new Error(`the bundled handler ${source}/index.js is missing (run \`npx projen bundle\`)`);
  }
  const contents = new Map<string, Buffer>();
  for (const name of fs.readdirSync(source).sort()) {
    const file = path.join(source, name);
    if (fs.statSync(file).isFile()) contents.set(name, fs.readFileSync(file));
  }
  for (const [name, text] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
    if (contents.has(name) || name !== path.basename(name)) throw new Error(`cannot ship '${name}' next to the ${bundle} bundle`);
    contents.set(name, Buffer.from(text, 'utf8'));
  }
  const hash = createHash('sha256');
  for (const [name, data] of contents) hash.update(`${name}\0${data.length}\0`).update(data);
  const digest = hash.digest('hex').slice(0, 32);
  const stage = Stage.of(scope);
  if (!stage) throw new Error(`${scope.node.path} is not in a CDK app: its handler's declarations have nowhere to go`);
  const root = path.join(stage.assetOutdir, '.skafu-handlers');
  const dir = path.join(root, digest);
  if (!fs.existsSync(dir)) {
    // Written beside, then renamed: a synth that stops half-way never leaves a partial directory under its name.
    fs.mkdirSync(root, { recursive: true });
    const partial = fs.mkdtempSync(path.join(root, `${digest}-`));
    for (const [name, data] of contents) fs.writeFileSync(path.join(partial, name), data);
    try {
      fs.renameSync(partial, dir);
    } catch (err) {
      fs.rmSync(partial, { recursive: true, force: true });
      if (!fs.existsSync(dir)) throw err;
    }
  }
  return dir;
}

/** The schema compiler (Ajv, bundled into assets/ like the handlers, so that Ajv stays out of the dependencies). */
interface SchemaCompiler {
  compileValidators(schemas: ReadonlyArray<{ name: string; schema: Record<string, unknown> }>): string;
}
let compiler: SchemaCompiler | undefined;

/** The commands' body validators as a CommonJS module (Ajv standalone code), compiled here, at synth. */
export function compileValidators(schemas: ReadonlyArray<{ name: string; schema: Record<string, unknown> }>): string {
  if (!compiler) {
    const file = path.join(ASSETS, 'internal', 'schema-compiler', 'index.js');
    if (!fs.existsSync(file)) throw new Error(`the schema compiler ${file} is missing (run \`npx projen bundle\`)`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    compiler = require(file) as SchemaCompiler;
  }
  for (const { name, schema } of schemas) refusePrototypeKeys(name, schema); // also checked by the compiler itself
  return compiler.compileValidators(schemas);
}
