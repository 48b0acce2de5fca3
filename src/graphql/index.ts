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
import { graphqlReadModel, readModelStreamArn } from './read-models';
import { generateGraphqlSchema, type GeneratedSchema } from './schema';
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
   * model's IAM-only mutation, which the model's subscription delivers.
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
    // declared indexes), and NONE for the change mutation and the subscriptions' filters.
    const none = this.api.addNoneDataSource('None', { description: 'Change mutations and subscription filters' });
    const dataSources = new Map<string, appsync.CfnDataSource>();
    const domainOf = (name: string) => domains.find((d) => d.domainName === name)!;
    const served = this._generated.models.map((m) => ({ generated: m, model: graphqlReadModel(domainOf(m.domain), m.readModel) }));
    const dataSourceNames = new Set<string>();
    served.forEach(({ generated, model }, i) => {
      const role = new iam.Role(this, `ReadModel${i}Role`, {
        assumedBy: new iam.ServicePrincipal('appsync.amazonaws.com'),
        description: `Skafu GraphQL: read ${generated.domain}.${generated.readModel}`,
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan'],
          resources: [model.table.tableArn, ...model.table.indexNames.map((n) => `${model.table.tableArn}/index/${n}`)],
        }),
      );
      const ds = new appsync.CfnDataSource(this, `ReadModel${i}`, {
        apiId: this.api.apiId,
        name: distinctName(`${pascalName(generated.domain)}_${generated.typeName}`, dataSourceNames),
        description: `Read model ${generated.domain}.${generated.readModel}`,
        type: 'AMAZON_DYNAMODB',
        serviceRoleArn: role.roleArn,
        dynamoDbConfig: { tableName: model.table.tableName, awsRegion: Stack.of(this).region },
      });
      dataSources.set(`${generated.domain}/${generated.readModel}`, ds);
    });
    this._generated.resolvers.forEach((r) => {
      const ds = r.readModel ? dataSources.get(`${r.readModel.domain}/${r.readModel.name}`)! : undefined;
      const resolver = new appsync.CfnResolver(this, `${r.typeName}${r.fieldName.charAt(0).toUpperCase()}${r.fieldName.slice(1)}Resolver`, {
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

  private addChangePublisher(
    props: SkafuGraphqlApiProps,
    served: Array<{ generated: GeneratedSchema['models'][number]; model: ReturnType<typeof graphqlReadModel> }>,
    logRetention: logs.RetentionDays,
    environment: string,
  ): { fn: lambda.IFunction; failed: sqs.Queue } {
    const encoded = deflateRawSync(
      Buffer.from(JSON.stringify(served.map(({ generated }) => ({ keys: generated.keys.map((k) => k.name), ownerAttribute: generated.ownerAttribute, document: generated.mutationDocument }))), 'utf8'),
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
    const failed = skafuQueue(this, 'FailedChanges');
    acknowledgeNag(failed, [{ id: 'AwsSolutions-SQS3', reason: "This queue is itself the on-failure destination of the change publisher's stream mappings (it holds batch metadata, no dead-letter queue of its own)." }]);
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
