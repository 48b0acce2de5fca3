/**
 * Reads a synthesized cloud assembly (cdk.out): every stack template, nested ones included, with CloudFormation
 * intrinsics resolved to local names, so that the rest of Skafu Local sees plain values.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ACCOUNT = '000000000000';

export interface LocalResource {
  /** Where it is: `Stack/Nested/LogicalId`. */
  readonly path: string;
  readonly logicalId: string;
  readonly type: string;
  readonly properties: Record<string, any>;
  readonly stack: StackContext;
}

/** One template (a stack or a nested stack) and how its references resolve. */
export class StackContext {
  public readonly resources: LocalResource[] = [];
  private readonly physicalIds = new Map<string, string>();

  constructor(
    public readonly name: string,
    public readonly template: Record<string, any>,
    private readonly parameters: Record<string, unknown>,
    private readonly assembly: LocalAssembly,
    /** The assembly directory its files (assets, nested templates) are in. */
    public readonly directory: string,
  ) {}

  /** A resource's local physical id (its name, or one made from the stack and logical id). */
  public physicalId(logicalId: string): string {
    const existing = this.physicalIds.get(logicalId);
    if (existing) return existing;
    const resource = this.template.Resources?.[logicalId];
    if (!resource) throw new Error(`${this.name}: no resource ${logicalId}`);
    const props = resource.Properties ?? {};
    const given = {
      'AWS::DynamoDB::Table': props.TableName,
      'AWS::Events::EventBus': props.Name,
      'AWS::Lambda::Function': props.FunctionName,
      'AWS::SQS::Queue': props.QueueName,
      'AWS::StepFunctions::StateMachine': props.StateMachineName,
      'AWS::Logs::LogGroup': props.LogGroupName,
    }[resource.Type as string];
    let id: string;
    if (given !== undefined && typeof this.resolve(given) === 'string') id = this.resolve(given) as string;
    else if (resource.Type === 'AWS::Cognito::UserPool') id = `${LOCAL_REGION}_${logicalId.replace(/[^A-Za-z0-9]/g, '').slice(0, 20)}`;
    else id = `${this.name}-${logicalId}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 200);
    this.physicalIds.set(logicalId, id);
    return id;
  }

  /** The ARN-like identifier of a resource (used where templates pass ARNs around). */
  public arn(logicalId: string): string {
    const resource = this.template.Resources[logicalId];
    const id = this.physicalId(logicalId);
    const service: Record<string, string> = {
      'AWS::DynamoDB::Table': `dynamodb:${LOCAL_REGION}:${LOCAL_ACCOUNT}:table/${id}`,
      'AWS::Events::EventBus': `events:${LOCAL_REGION}:${LOCAL_ACCOUNT}:event-bus/${id}`,
      'AWS::Lambda::Function': `lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${id}`,
      'AWS::SQS::Queue': `sqs:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${id}`,
      'AWS::StepFunctions::StateMachine': `states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${id}`,
      'AWS::Logs::LogGroup': `logs:${LOCAL_REGION}:${LOCAL_ACCOUNT}:log-group:${id}:*`,
      'AWS::SNS::Topic': `sns:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${id}`,
      'AWS::Cognito::UserPool': `cognito-idp:${LOCAL_REGION}:${LOCAL_ACCOUNT}:userpool/${id}`,
    };
    return `arn:aws:${service[resource.Type] ?? `local:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${resource.Type}/${id}`}`;
  }

  public getAtt(logicalId: string, attribute: string): unknown {
    const resource = this.template.Resources?.[logicalId];
    if (!resource) throw new Error(`${this.name}: GetAtt of unknown resource ${logicalId}`);
    if (resource.Type === 'AWS::CloudFormation::Stack' && attribute.startsWith('Outputs.')) {
      const nested = this.assembly.nestedContext(this, logicalId);
      return nested.resolve(nested.template.Outputs?.[attribute.slice('Outputs.'.length)]?.Value);
    }
    switch (attribute) {
      case 'Arn':
        return this.arn(logicalId);
      case 'StreamArn':
        // The real stream ARN is looked up by table name when a poller starts (tables may not exist yet).
        return `${this.arn(logicalId)}/stream/local`;
      case 'QueueName':
      case 'Name':
        return this.physicalId(logicalId);
      case 'QueueUrl':
        return this.assembly.queueUrl(this.physicalId(logicalId));
      case 'RootResourceId':
        return `${this.physicalId(logicalId)}-root`;
      case 'ProviderURL':
        return `https://cognito-idp.${LOCAL_REGION}.amazonaws.com/${this.physicalId(logicalId)}`;
      default:
        return `${this.physicalId(logicalId)}.${attribute}`;
    }
  }

  /** Resolves Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split and pseudo parameters. */
  public resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, any>;
    const keys = Object.keys(obj);
    if (keys.length === 1) {
      const [fn] = keys;
      const arg = obj[fn];
      switch (fn) {
        case 'Ref':
          return this.ref(arg as string);
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? arg : String(arg).split(/\.(.+)/);
          return this.getAtt(id, attr);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).map(String).join(sep);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [number, unknown];
          return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
        }
        case 'Fn::Split': {
          const [sep, text] = arg as [string, unknown];
          return String(this.resolve(text)).split(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(arg) ? arg : [arg, {}];
          return String(text).replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
            if (vars[name] !== undefined) return String(this.resolve(vars[name]));
            if (name.includes('.')) {
              const [id, attr] = name.split(/\.(.+)/);
              return String(this.getAtt(id, attr));
            }
            return String(this.ref(name));
          });
        }
        default:
          break;
      }
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, this.resolve(v)]));
  }

  private ref(name: string): unknown {
    const pseudo: Record<string, string> = {
      'AWS::Region': LOCAL_REGION,
      'AWS::AccountId': LOCAL_ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': this.name,
      // A stack id as CloudFormation gives it (arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>): a fixed
      // id per stack name here, since nothing local calls CloudFormation with it.
      'AWS::StackId': `arn:aws:cloudformation:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stack/${this.name}/00000000-0000-0000-0000-000000000000`,
      'AWS::NoValue': '',
    };
    if (pseudo[name] !== undefined) return pseudo[name];
    if (name in this.parameters) return this.parameters[name];
    if (this.template.Parameters?.[name]) return this.resolve(this.template.Parameters[name].Default);
    if (!this.template.Resources?.[name]) throw new Error(`${this.name}: Ref to unknown ${name}`);
    const type = this.template.Resources[name].Type;
    if (type === 'AWS::Events::EventBus' || type === 'AWS::DynamoDB::Table' || type === 'AWS::Lambda::Function') return this.physicalId(name);
    if (type === 'AWS::SQS::Queue') return this.assembly.queueUrl(this.physicalId(name));
    if (type === 'AWS::StepFunctions::StateMachine' || type === 'AWS::SNS::Topic') return this.arn(name);
    return this.physicalId(name);
  }
}

/** The whole assembly: every stack and nested stack, each with its resources. */
export class LocalAssembly {
  public readonly stacks: StackContext[] = [];
  private readonly nested = new Map<string, StackContext>();
  private queueBase = 'http://127.0.0.1:0/queue';

  /** The absolute, real path of the assembly (a relative path or a symlink resolved once, here). */
  public readonly directory: string;

  constructor(directory: string) {
    const absolute = path.resolve(directory);
    if (!fs.existsSync(path.join(absolute, 'manifest.json'))) {
      throw new Error(`${directory} (${absolute}) is not a cloud assembly: it has no manifest.json (run \`cdk synth\` first, or give the cdk.out directory)`);
    }
    this.directory = fs.realpathSync(absolute);
    this.load(this.directory);
    if (this.stacks.length === 0) throw new Error(`${this.directory} holds no CloudFormation stack: is it a cdk.out directory?`);
  }

  /** Reads a manifest's stacks, and those of the nested assemblies it names (CDK Stages: `assembly-<stage>/`). */
  private load(directory: string): void {
    const manifest = JSON.parse(fs.readFileSync(path.join(directory, 'manifest.json'), 'utf8'));
    for (const [name, artifact] of Object.entries((manifest.artifacts ?? {}) as Record<string, any>)) {
      if (artifact.type === 'cdk:cloud-assembly' && artifact.properties?.directoryName) {
        this.load(path.join(directory, artifact.properties.directoryName));
        continue;
      }
      if (artifact.type !== 'aws:cloudformation:stack') continue;
      const template = JSON.parse(fs.readFileSync(path.join(directory, artifact.properties.templateFile), 'utf8'));
      this.stacks.push(new StackContext(artifact.properties.stackName ?? name, template, {}, this, directory));
    }
  }

  public setQueueBase(url: string): void {
    this.queueBase = url;
  }

  public queueUrl(name: string): string {
    return `${this.queueBase}/${LOCAL_ACCOUNT}/${name}`;
  }

  /** Every resource of every template, nested stacks walked. */
  public allResources(): LocalResource[] {
    const out: LocalResource[] = [];
    const walk = (ctx: StackContext) => {
      for (const [logicalId, r] of Object.entries(ctx.template.Resources ?? {}) as Array<[string, any]>) {
        out.push({ path: `${ctx.name}/${logicalId}`, logicalId, type: r.Type, properties: r.Properties ?? {}, stack: ctx });
        if (r.Type === 'AWS::CloudFormation::Stack') walk(this.nestedContext(ctx, logicalId));
      }
    };
    this.stacks.forEach(walk);
    return out;
  }

  public nestedContext(parent: StackContext, logicalId: string): StackContext {
    const key = `${parent.name}/${logicalId}`;
    let ctx = this.nested.get(key);
    if (!ctx) {
      const resource = parent.template.Resources[logicalId];
      const file = resource.Metadata?.['aws:asset:path'] ?? this.assetFileFor(parent.directory, String(parent.resolve(resource.Properties?.TemplateURL ?? '')));
      if (!file) throw new Error(`${key}: nested stack without a template in the assembly`);
      const template = JSON.parse(fs.readFileSync(path.join(parent.directory, file), 'utf8'));
      const params = Object.fromEntries(Object.entries(resource.Properties?.Parameters ?? {}).map(([k, v]) => [k, parent.resolve(v)]));
      ctx = new StackContext(`${parent.name}-${logicalId.replace(/NestedStack.*$/, '')}`, template, params, this, parent.directory);
      this.nested.set(key, ctx);
    }
    return ctx;
  }

  /** The assembly file behind an asset URL (`.../<hash>.json`), from the assets manifests. */
  private assetFileFor(directory: string, url: string): string | undefined {
    for (const manifest of fs.readdirSync(directory).filter((f) => f.endsWith('.assets.json'))) {
      const files = JSON.parse(fs.readFileSync(path.join(directory, manifest), 'utf8')).files ?? {};
      for (const [hash, entry] of Object.entries(files as Record<string, any>)) {
        if (url.includes(hash)) return entry.source?.path;
      }
    }
    return undefined;
  }

  /** The absolute directory of a Lambda function's code asset. */
  public assetDirectory(code: Record<string, any>, directory: string = this.directory): string {
    const key = String(code.S3Key ?? '');
    const hash = key.replace(/\.zip$/, '');
    const candidates = fs.readdirSync(directory).filter((f) => f.startsWith(`asset.${hash}`) && fs.statSync(path.join(directory, f)).isDirectory());
    if (candidates.length === 0) throw new Error(`its code asset ${key} is not in ${directory} (is the assembly complete?)`);
    return path.join(directory, candidates[0]);
  }
}
