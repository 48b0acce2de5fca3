import { deflateRawSync } from 'node:zlib';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as appsync from 'aws-cdk-lib/aws-appsync';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { ChangePublisherFunction } from './change-publisher-function';
import { graphqlReadModel, readModelStreamArn, type GraphqlReadModel } from './read-models';
import { generateGraphqlSchema, versionFunctions, type GeneratedSchema } from './schema';
import type { EventSourcedDomain } from '../domain';
import { queueNotEmptyAlarm } from '../internal/alarms';
import { acknowledgeHandlerRole, handlerOptions } from '../internal/handler';
import { acknowledgeNag } from '../internal/nag';
import { skafuQueue } from '../internal/queues';

/** Properties of a SkafuGraphqlApi. */
export interface SkafuGraphqlApiProps {
  /** The domains whose bundled queries and read models the API serves. */
  readonly domains: EventSourcedDomain[];
  /** The user pool whose access and ID tokens the API accepts (its groups are the RBAC groups). */
  readonly userPool: cognito.IUserPool;
  /**
   * Only tokens issued to this app client are accepted.
   * @default - tokens of every client of the user pool
   */
  readonly userPoolClient?: cognito.IUserPoolClient;
  /**
   * The API's name.
   * @default 'skafu-<environment>-graphql'
   */
  readonly name?: string;
  /**
   * The environment, used in the default name.
   * @default 'development'
   */
  readonly environment?: string;
  /**
   * Retention of the API's log group (`/aws/appsync/apis/<apiId>`) and of the change publisher's logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What AppSync logs per field: ERROR logs failed fields only; ALL also logs every resolver's input and output
   * (the items read, which may be personal data).
   * @default appsync.FieldLogLevel.ERROR
   */
  readonly fieldLogLevel?: appsync.FieldLogLevel;
  /**
   * Whether request logs include verbose content (request headers, the caller's identity claims, evaluated
   * mapping templates).
   * @default false
   */
  readonly verboseLogging?: boolean;
  /**
   * X-Ray tracing of the API.
   * @default true
   */
  readonly xrayEnabled?: boolean;
  /**
   * A WAFv2 web ACL (REGIONAL scope) associated with the API.
   * @default - none
   */
  readonly webAclArn?: string;
  /**
   * Live updates: a stream on each served read model's table feeds a function that publishes each change as the
   * model's IAM-only mutation, which the model's subscription delivers. A read model being rebuilt into a new
   * version publishes nothing until queries switch to the new version, then the new version's changes.
   * @default true
   */
  readonly liveUpdates?: boolean;
  /**
   * How many times a batch of changes that could not be published is retried before its metadata goes to the
   * failed-changes queue.
   * @default 3
   */
  readonly publishRetryAttempts?: number;
  /**
   * Changes older than this are not published any more (a live update that late is no longer live); they go to
   * the failed-changes queue.
   * @default Duration.hours(1)
   */
  readonly maxChangeAge?: Duration;
}

/**
 * The read side over GraphQL: an AWS AppSync API generated from the domains' declarations, with a type per read
 * model, a get or list query per bundled query (the REST routes' groups, page sizes, filters and object-level
 * rules, VTL resolvers reading DynamoDB directly), and a subscription per read model fed after every projection
 * write by a stream on the read model's table (an IAM-only mutation, sent by the change publisher function).
 * Cognito user pool authorization by default, IAM for the publisher; X-Ray, logs with retention, optional WAF.
 *
 * A read model raised to a new version while its previous version is kept (`ReadModelTable.version`,
 * `retainPreviousVersion`) is answered from its active version: its queries are pipeline resolvers that read the
 * active-version pointer in the domain's checkpoint table, then query the previous version until the pointer names
 * the new one, and the new one from then on (page tokens name the version that issued them; a token of the other
 * version is refused with `InvalidNextToken`). Its live updates come from the new version's table only and start at
 * the switch: while it is rebuilt, subscribers receive nothing of it.
 */
export class SkafuGraphqlApi extends Construct {
  /** The AppSync API. */
  public readonly api: appsync.GraphqlApi;
  /** The generated schema (SDL). */
  public readonly schema: string;
  /** The GraphQL endpoint URL. */
  public readonly graphqlUrl: string;
  /** The API's log group (`/aws/appsync/apis/<apiId>`). */
  public readonly logGroup: logs.LogGroup;
  /** The function publishing read-model changes to the subscriptions (absent without live updates). */
  public readonly changePublisher?: lambda.IFunction;
  /** Metadata of change batches that could not be published after every retry (absent without live updates). */
  public readonly failedChangesQueue?: sqs.Queue;
  /** The API's alarms (5XX answers; changes not published). */
  public readonly alarms: cloudwatch.Alarm[] = [];

  /** @internal the generated schema and resolvers */
  public readonly _generated: GeneratedSchema;

  /**
   * @param scope the construct it belongs to
   * @param id its id, unique in `scope`
   * @param props its properties (SkafuGraphqlApiProps)
   */
  constructor(scope: Construct, id: string, props: SkafuGraphqlApiProps) {
    super(scope, id);
    validate(this.node.path, props);
    const environment = props.environment ?? 'development';
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const domains = props.domains;
    const declarations = domains.map((d) => ({ name: d.domainName, queries: d.declaredQueries, readModels: d.declaredReadModels }));
    this._generated = generateGraphqlSchema(declarations);
    if (this._generated.models.length === 0) {
      throw new Error(`SkafuGraphqlApi ${this.node.path}: no bundled query reads a read model of ${domains.map((d) => d.domainName).join(', ')}: the API would be empty`);
    }
    this.schema = this._generated.sdl;
    const sdl = this.schema;

    // AppSync writes its logs to /aws/appsync/apis/<apiId>: made here, with retention, written only by a role
    // scoped to it (the role CDK would make carries the AWSAppSyncPushToCloudWatchLogs managed policy).
    const logsRole = new iam.Role(this, 'LogsRole', { assumedBy: new iam.ServicePrincipal('appsync.amazonaws.com'), description: `Skafu GraphQL API logs (${environment})` });
    this.api = new appsync.GraphqlApi(this, 'Api', {
      name: props.name ?? `skafu-${environment}-graphql`,
      definition: appsync.Definition.fromSchema({ bind: (api: appsync.IGraphqlApi) => ({ apiId: api.apiId, definition: sdl }) }),
      authorizationConfig: {
        defaultAuthorization: {
          authorizationType: appsync.AuthorizationType.USER_POOL,
          userPoolConfig: {
            userPool: props.userPool,
            appIdClientRegex: props.userPoolClient ? `^${props.userPoolClient.userPoolClientId}$` : undefined,
            // With an additional authorization mode AppSync requires ALLOW; every field names its groups anyway.
            defaultAction: appsync.UserPoolDefaultAction.ALLOW,
          },
        },
        additionalAuthorizationModes: [{ authorizationType: appsync.AuthorizationType.IAM }],
      },
      xrayEnabled: props.xrayEnabled ?? true,
      introspectionConfig: appsync.IntrospectionConfig.ENABLED,
    });
    // Set on the L1: the L2's logConfig always adds a LogRetention custom resource (a Lambda with a managed policy)
    // that would own the same log group as the one made below.
    (this.api.node.defaultChild as appsync.CfnGraphQLApi).logConfig = {
      cloudWatchLogsRoleArn: logsRole.roleArn,
      fieldLogLevel: props.fieldLogLevel ?? appsync.FieldLogLevel.ERROR,
      excludeVerboseContent: !(props.verboseLogging ?? false),
    };
    this.graphqlUrl = this.api.graphqlUrl;
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/appsync/apis/${this.api.apiId}`,
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logsRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:*`] }));
    acknowledgeNag(logsRole, [
      {
        id: 'AwsSolutions-IAM5',
        reason: "AppSync creates its own log streams in the API's log group: the streams of that one group (`<group ARN>:*`) are what the role may write.",
        appliesTo: ['Resource::<ApiLogs0C1E5AAF.Arn>:*'].map((r) => r.replace('ApiLogs0C1E5AAF', Stack.of(this).getLogicalId(this.logGroup.node.defaultChild as logs.CfnLogGroup))),
      },
    ]);
    if (props.verboseLogging !== true) {
      acknowledgeNag(this.api, [
        {
          id: 'AwsSolutions-ASC3',
          reason: "Request-level logging is on (field log level, the role above); only its verbose content (headers, the caller's token claims, evaluated templates with item data) is left out by default (verboseLogging).",
        },
      ]);
    }

    // Data sources: each served read model's table, read-only (GetItem, Query, Scan on the table and its
    // declared indexes), and NONE for the change mutation and the subscriptions' filters. A read model kept in two
    // versions also gets its previous version's table and, per domain, the pointer items of the checkpoint table.
    const none = this.api.addNoneDataSource('None', { description: 'Change mutations and subscription filters' });
    const dataSources = new Map<string, appsync.CfnDataSource>();
    const pipelines = new Map<string, appsync.CfnFunctionConfiguration[]>();
    const domainOf = (name: string) => domains.find((d) => d.domainName === name)!;
    const served = this._generated.models.map((m) => ({ generated: m, model: graphqlReadModel(domainOf(m.domain), m.readModel) }));
    const dataSourceNames = new Set<string>();
    const tableDataSource = (dsId: string, table: dynamodb.ITable, indexNames: string[], name: string, what: string, version?: number) => {
      const role = new iam.Role(this, `${dsId}Role`, {
        assumedBy: new iam.ServicePrincipal('appsync.amazonaws.com'),
        description: `Skafu GraphQL: read ${what}${version ? `, version ${version}` : ''}`,
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan'],
          resources: [table.tableArn, ...indexNames.map((n) => `${table.tableArn}/index/${n}`)],
        }),
      );
      return new appsync.CfnDataSource(this, dsId, {
        apiId: this.api.apiId,
        name: distinctName(name, dataSourceNames),
        description: `Read model ${what}${version ? `, version ${version}` : ''}`,
        type: 'AMAZON_DYNAMODB',
        serviceRoleArn: role.roleArn,
        dynamoDbConfig: { tableName: table.tableName, awsRegion: Stack.of(this).region },
      });
    };
    const pointerSources = this.pointerDataSources(served, dataSourceNames);
    served.forEach(({ generated, model }, i) => {
      const base = `${pascalName(generated.domain)}_${generated.typeName}`;
      const what = `${generated.domain}.${generated.readModel}`;
      const versions = model.versions;
      const ds = tableDataSource(`ReadModel${i}`, model.table.table, model.table.indexNames, base, what, versions?.current);
      dataSources.set(`${generated.domain}/${generated.readModel}`, ds);
      if (!versions) return;
      // Version N-1 until the pointer names version N, then version N (see versionFunctions).
      const previous = tableDataSource(`ReadModel${i}Previous`, versions.previousTable, model.table.indexNames, `${base}_v${versions.previous}`, what, versions.previous);
      const templates = versionFunctions(generated, versions.pointerKey, versions.previous, versions.current);
      const fn = (role: string, source: appsync.CfnDataSource, t: { requestTemplate: string; responseTemplate: string }, description: string) => {
        const f = new appsync.CfnFunctionConfiguration(this, `ReadModel${i}${role}`, {
          apiId: this.api.apiId,
          name: `${base}_${role}`.replace(/[^_A-Za-z0-9]/g, ''),
          description,
          dataSourceName: source.attrName,
          functionVersion: '2018-05-29',
          requestMappingTemplate: t.requestTemplate,
          responseMappingTemplate: t.responseTemplate,
        });
        f.addDependency(source);
        return f;
      };
      pipelines.set(`${generated.domain}/${generated.readModel}`, [
        fn('ActiveVersion', pointerSources.get(generated.domain)!, templates.activeVersion, `Read model ${what}: which version answers (the active-version pointer)`),
        fn('ReadPrevious', previous, templates.readPrevious, `Read model ${what}: version ${versions.previous}, until the switch`),
        fn('ReadCurrent', ds, templates.readCurrent, `Read model ${what}: version ${versions.current}, from the switch on`),
      ]);
    });
    this._generated.resolvers.forEach((r) => {
      const key = r.readModel ? `${r.readModel.domain}/${r.readModel.name}` : undefined;
      const ds = key ? dataSources.get(key)! : undefined;
      const functions = key ? pipelines.get(key) : undefined;
      const resolverId = `${r.typeName}${r.fieldName.charAt(0).toUpperCase()}${r.fieldName.slice(1)}Resolver`;
      if (functions && r.pipeline) {
        const resolver = new appsync.CfnResolver(this, resolverId, {
          apiId: this.api.apiId,
          typeName: r.typeName,
          fieldName: r.fieldName,
          kind: 'PIPELINE',
          pipelineConfig: { functions: functions.map((f) => f.attrFunctionId) },
          requestMappingTemplate: r.pipeline.requestTemplate,
          responseMappingTemplate: r.pipeline.responseTemplate,
        });
        this.api.addSchemaDependency(resolver);
        return;
      }
      const resolver = new appsync.CfnResolver(this, resolverId, {
        apiId: this.api.apiId,
        typeName: r.typeName,
        fieldName: r.fieldName,
        kind: 'UNIT',
        dataSourceName: ds ? ds.attrName : none.name,
        requestMappingTemplate: r.requestTemplate,
        responseMappingTemplate: r.responseTemplate,
      });
      if (ds) resolver.addDependency(ds);
      else resolver.node.addDependency(none);
      this.api.addSchemaDependency(resolver);
    });

    if (props.webAclArn) {
      new wafv2.CfnWebACLAssociation(this, 'WebAcl', { resourceArn: this.api.arn, webAclArn: props.webAclArn });
    }
    this.alarms.push(
      new cloudwatch.Alarm(this, 'ServerErrorsAlarm', {
        alarmDescription: 'GraphQL API 5XX answers',
        metric: new cloudwatch.Metric({ namespace: 'AWS/AppSync', metricName: '5XXError', dimensionsMap: { GraphQLAPIId: this.api.apiId }, statistic: 'Sum', period: Duration.minutes(5) }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    if (props.liveUpdates ?? true) {
      const live = this.addChangePublisher(props, served, logRetention, environment);
      this.changePublisher = live.fn;
      this.failedChangesQueue = live.failed;
    }
  }

  /**
   * Per domain with a read model kept in two versions: a data source on the domain's checkpoint table whose role
   * may GetItem the active-version pointers of those read models and nothing else (dynamodb:LeadingKeys; no Query
   * or Scan, which a LeadingKeys condition would not confine).
   */
  private pointerDataSources(served: Array<{ generated: GeneratedSchema['models'][number]; model: GraphqlReadModel }>, names: Set<string>): Map<string, appsync.CfnDataSource> {
    const byDomain = new Map<string, GraphqlReadModel[]>();
    for (const { model } of served) if (model.versions) byDomain.set(model.domain, [...(byDomain.get(model.domain) ?? []), model]);
    const pointerSources = new Map<string, appsync.CfnDataSource>();
    const ids = new Set<string>();
    for (const [domain, models] of byDomain) {
      const table = models[0].versions!.checkpointTable;
      const id = `ActiveVersions${distinctName(pascalName(domain), ids, '')}`;
      const role = new iam.Role(this, `${id}Role`, { assumedBy: new iam.ServicePrincipal('appsync.amazonaws.com'), description: `Skafu GraphQL: read the active-version pointers of ${domain}'s read models` });
      role.addToPrincipalPolicy(pointerReadStatement(table, models));
      pointerSources.set(
        domain,
        new appsync.CfnDataSource(this, id, {
          apiId: this.api.apiId,
          name: distinctName(`${pascalName(domain)}_ActiveVersions`, names),
          description: `Active-version pointers of ${domain}'s read models (checkpoint table)`,
          type: 'AMAZON_DYNAMODB',
          serviceRoleArn: role.roleArn,
          dynamoDbConfig: { tableName: table.tableName, awsRegion: Stack.of(this).region },
        }),
      );
    }
    return pointerSources;
  }

  private addChangePublisher(
    props: SkafuGraphqlApiProps,
    served: Array<{ generated: GeneratedSchema['models'][number]; model: ReturnType<typeof graphqlReadModel> }>,
    logRetention: logs.RetentionDays,
    environment: string,
  ): { fn: lambda.IFunction; failed: sqs.Queue } {
    const encoded = deflateRawSync(
      Buffer.from(
        JSON.stringify(
          served.map(({ generated, model }) => ({
            keys: generated.keys.map((k) => k.name),
            ownerAttribute: generated.ownerAttribute,
            document: generated.mutationDocument,
            activeVersion: model.versions ? { key: model.versions.pointerKey, version: model.versions.current } : undefined,
          })),
        ),
        'utf8',
      ),
      { level: 9 },
    ).toString('base64');
    if (encoded.length > 3000) {
      throw new Error(`SkafuGraphqlApi ${this.node.path}: the change mutations encode to ${encoded.length} bytes, over the 3000 the publisher's environment allows; split the domains over two APIs`);
    }
    const options = handlerOptions(this, 'ChangePublisher', {
      logRetention,
      description: `Skafu GraphQL change publisher (${environment})`,
      serviceName: 'skafu-graphql-changes',
      timeout: Duration.seconds(60),
      environment: {
        SKAFU_GRAPHQL_URL: this.api.graphqlUrl,
        SKAFU_GRAPHQL_MODELS: encoded,
        ...Object.fromEntries(served.map(({ model }, i) => [`SKAFU_GRAPHQL_TABLE_${i}`, model.table.tableName])),
        ...Object.fromEntries(served.flatMap(({ model }, i) => (model.versions ? [[`SKAFU_GRAPHQL_CHECKPOINTS_${i}`, model.versions.checkpointTable.tableName]] : []))),
      },
    });
    const fn = new ChangePublisherFunction(this, 'ChangePublisher', options);
    acknowledgeHandlerRole(options.role);
    acknowledgeNag(options.role, [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'dynamodb:ListStreams has no resource type in IAM: it can only be granted on "*" (reading the read-model tables\' streams needs it).',
        appliesTo: ['Resource::*'],
      },
    ]);
    // Only the change mutations, nothing else of the API.
    options.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['appsync:GraphQL'],
        resources: served.map(({ generated }) => `${this.api.arn}/types/Mutation/fields/${generated.mutationField}`),
      }),
    );
    // Read models kept in two versions: their active-version pointers, which gate their live updates.
    const versioned = served.filter(({ model }) => model.versions).map(({ model }) => model);
    for (const table of new Set(versioned.map((m) => m.versions!.checkpointTable))) {
      options.role.addToPrincipalPolicy(pointerReadStatement(table, versioned.filter((m) => m.versions!.checkpointTable === table)));
    }
    const failed = skafuQueue(this, 'FailedChanges');
    acknowledgeNag(failed, [{ id: 'AwsSolutions-SQS3', reason: "This queue is itself the on-failure destination of the change publisher's stream mappings (it holds batch metadata, no dead-letter queue of its own)." }]);
    // A change AppSync refuses for good is parked there alone by the function (the rest of its batch goes on).
    failed.grantSendMessages(fn);
    fn.addEnvironment('SKAFU_GRAPHQL_FAILED_CHANGES_QUEUE_URL', failed.queueUrl);
    const streamIds = new Set<string>();
    served.forEach(({ generated, model }) => {
      const streamArn = readModelStreamArn(model);
      fn.addEventSource(
        new sources.DynamoEventSource(
          // The stream ARN of the table (turned on above); `fromTableAttributes` gives the event source its ARN.
          importedTableWithStream(this, distinctName(`Stream${pascalName(generated.domain)}${generated.typeName}`, streamIds, ''), model.table.tableName, streamArn),
          {
            startingPosition: lambda.StartingPosition.LATEST,
            batchSize: 100,
            retryAttempts: props.publishRetryAttempts ?? 3,
            maxRecordAge: props.maxChangeAge ?? Duration.hours(1),
            bisectBatchOnError: false,
            reportBatchItemFailures: true,
            onFailure: new sources.SqsDlq(failed),
          },
        ),
      );
    });
    this.alarms.push(queueNotEmptyAlarm(this, 'FailedChangesAlarm', failed, 'GraphQL changes not published to subscribers (read models are unaffected)'));
    return { fn, failed };
  }
}

/** GetItem on the given read models' active-version pointers only (dynamodb:LeadingKeys, ForAllValues). */
function pointerReadStatement(table: dynamodb.ITable, models: GraphqlReadModel[]): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: ['dynamodb:GetItem'],
    resources: [table.tableArn],
    conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': models.map((m) => m.versions!.pointerKey) } },
  });
}

function importedTableWithStream(scope: Construct, id: string, tableName: string, streamArn: string): dynamodb.ITable {
  return dynamodb.Table.fromTableAttributes(scope, id.replace(/[^A-Za-z0-9]/g, ''), { tableName, tableStreamArn: streamArn });
}

/**
 * `base`, or `base_2`, `base_3`... (with `separator`) when taken: names made from dash-stripped declarations (`billing` + `v2-invoices`,
 * `billing-v2` + `invoices`) can be equal, and AppSync data source names and construct ids must be unique.
 */
function distinctName(base: string, used: Set<string>, separator = '_'): string {
  let name = base;
  for (let n = 2; used.has(name); n++) name = `${base}${separator}${n}`;
  used.add(name);
  return name;
}

function pascalName(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([a-z0-9])/g, (_m, _s, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '');
}

function validate(path: string, props: SkafuGraphqlApiProps): void {
  const errors: string[] = [];
  if (props.domains.length === 0) errors.push("'domains' is empty");
  const names = props.domains.map((d) => d.domainName);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) errors.push(`domain '${twice}' is given twice`);
  const retries = props.publishRetryAttempts;
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 10000)) {
    errors.push("'publishRetryAttempts' must be an integer from 0 to 10000");
  }
  if (props.maxChangeAge && (props.maxChangeAge.toSeconds() < 60 || props.maxChangeAge.toSeconds() > 604800)) errors.push("'maxChangeAge' must be from 1 minute to 7 days");
  if (props.liveUpdates === false && (props.publishRetryAttempts !== undefined || props.maxChangeAge !== undefined)) {
    errors.push("'publishRetryAttempts' and 'maxChangeAge' configure live updates, which 'liveUpdates: false' turns off");
  }
  if (errors.length > 0) throw new Error(`SkafuGraphqlApi ${path}: ${errors.join('; ')}`);
}
