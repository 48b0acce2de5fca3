/**
 * The domains of the original Skafu platform, built only by declaration (no custom code), business rules
 * included: projects fold into a declared state, guard their status and belong to their creator (Admins
 * override); observability reacts to a project's archival by disabling the project's alerts. ProjectCreated is
 * at schema v2: stored v1 events are upgraded when folded and when projected.
 */
import { Duration } from 'aws-cdk-lib';
import {
  AggregateIdSource,
  DataSource,
  Precondition,
  ProjectionAction,
  ProjectionValue,
  QueryInput,
  StateUpdate,
  StateValue,
  UpcastStep,
  ValueType,
  type DomainDeclaration,
} from '../../src';

const WRITERS = ['Admin', 'Developer'];
const READERS = ['Admin', 'Developer', 'Viewer'];
const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });

export const observability: DomainDeclaration = {
  name: 'observability',
  commands: [
    {
      name: 'CollectMetric',
      path: 'metrics',
      allowedGroups: WRITERS,
      aggregateType: 'Metric',
      aggregateId: AggregateIdSource.generated('metric-'),
      eventType: 'MetricCollected',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'value', 'unit', 'source'],
        properties: {
          name: { ...text(128), pattern: '^[A-Za-z0-9_.:/-]+$' },
          value: { type: 'number' },
          unit: text(32),
          tags: { type: 'object', maxProperties: 20, additionalProperties: { type: 'string', maxLength: 256 } },
          timestamp: { type: 'string', format: 'date-time' },
          source: text(128),
        },
      },
      extraData: { collectedAt: DataSource.requestTime(), collectedBy: DataSource.userId() },
    },
    {
      name: 'CreateAlert',
      path: 'alerts',
      allowedGroups: WRITERS,
      aggregateType: 'Alert',
      aggregateId: AggregateIdSource.generated('alert-'),
      eventType: 'AlertCreated',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'metricName', 'threshold', 'condition', 'severity'],
        properties: {
          name: text(100),
          description: { type: 'string', maxLength: 500 },
          metricName: text(128),
          threshold: { type: 'number' },
          condition: { enum: ['GreaterThan', 'GreaterThanOrEqual', 'LessThan', 'LessThanOrEqual'] },
          severity: { enum: ['low', 'medium', 'high', 'critical'] },
        },
      },
      extraData: { alertId: DataSource.aggregateId(), createdBy: DataSource.userId() },
    },
    {
      name: 'TriggerAlert',
      path: 'alerts/{alertId}/trigger',
      allowedGroups: WRITERS,
      aggregateType: 'Alert',
      aggregateId: AggregateIdSource.fromPath('alertId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'AlertTriggered',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['metricValue'],
        properties: { metricValue: { type: 'number' }, message: { type: 'string', maxLength: 500 } },
      },
      extraData: { alertId: DataSource.pathParameter('alertId'), triggeredAt: DataSource.requestTime() },
    },
    {
      // Issued by the ProjectArchived reaction below (and open to Admins over HTTP).
      name: 'DisableProjectAlerts',
      path: 'project-alerts/{projectAlertsId}/disable',
      allowedGroups: ['Admin'],
      aggregateType: 'ProjectAlerts',
      aggregateId: AggregateIdSource.fromPath('projectAlertsId'),
      // An upsert: the first disable creates the project's alerts aggregate (a path id defaults to MUST_EXIST).
      precondition: Precondition.ANY,
      eventType: 'ProjectAlertsDisabled',
      bodySchema: {
        type: 'object',
        additionalProperties: false,
        required: ['projectId'],
        properties: { projectId: text(300), reason: { type: 'string', maxLength: 200 } },
      },
      extraData: { disabledAt: DataSource.requestTime() },
      guards: [{ name: 'AlertsAlreadyDisabled', condition: "state.status != 'DISABLED'", message: "the project's alerts are already disabled" }],
    },
  ],
  rules: {
    aggregates: [
      {
        aggregateType: 'ProjectAlerts',
        initialState: { status: 'ENABLED' },
        events: [{ eventType: 'ProjectAlertsDisabled', updates: [StateUpdate.set('status', StateValue.string('DISABLED'))] }],
      },
    ],
    reactions: [
      {
        name: 'DisableAlertsOfArchivedProject',
        sourceDomain: 'projects',
        eventType: 'ProjectArchived',
        command: 'DisableProjectAlerts',
        // The alerts of a project are an aggregate of their own: their id is not the project's.
        pathParameters: { projectAlertsId: StateValue.fromData('projectId', 'project-alerts-') },
        body: { projectId: StateValue.fromData('projectId'), reason: StateValue.string('project archived') },
      },
    ],
  },
  readModels: [
    {
      name: 'metrics',
      partitionKey: { name: 'name' },
      sortKey: { name: 'collectedAt' },
      timeToLiveAttribute: 'expiresAt',
      projections: [
        {
          eventType: 'MetricCollected',
          action: ProjectionAction.putItem({
            key: { name: ProjectionValue.fromData('name'), collectedAt: ProjectionValue.fromData('collectedAt') },
            attributes: {
              metricId: ProjectionValue.fromEnvelope('aggregateId'),
              value: ProjectionValue.fromData('value', ValueType.NUMBER),
              unit: ProjectionValue.fromData('unit'),
              source: ProjectionValue.fromData('source'),
              // tags are optional in the body: keep the whole data (always present) rather than reading a path.
              details: ProjectionValue.dataAsJson(),
            },
            ttl: Duration.days(30),
          }),
        },
      ],
    },
    {
      name: 'alerts',
      partitionKey: { name: 'alertId' },
      projections: [
        {
          eventType: 'AlertCreated',
          action: ProjectionAction.putItem({
            key: { alertId: ProjectionValue.fromEnvelope('aggregateId') },
            attributes: {
              name: ProjectionValue.fromData('name'),
              metricName: ProjectionValue.fromData('metricName'),
              threshold: ProjectionValue.fromData('threshold', ValueType.NUMBER),
              condition: ProjectionValue.fromData('condition'),
              severity: ProjectionValue.fromData('severity'),
              createdAt: ProjectionValue.fromEnvelope('timestamp'),
              triggerCount: ProjectionValue.number(0),
              version: ProjectionValue.fromEnvelope('eventSequence'),
            },
          }),
        },
        {
          eventType: 'AlertTriggered',
          action: ProjectionAction.updateItem({
            key: { alertId: ProjectionValue.fromEnvelope('aggregateId') },
            set: {
              lastTriggeredAt: ProjectionValue.fromData('triggeredAt'),
              lastValue: ProjectionValue.fromData('metricValue', ValueType.NUMBER),
              version: ProjectionValue.fromEnvelope('eventSequence'),
            },
            add: { triggerCount: ProjectionValue.number(1) },
          }),
        },
      ],
    },
  ],
  queries: [
    {
      name: 'QueryMetrics',
      path: 'metrics',
      allowedGroups: READERS,
      readModel: 'metrics',
      partitionKey: { attribute: 'name', input: QueryInput.queryParameter('name') },
      sortKeyRange: { attribute: 'collectedAt', fromParameter: 'from', toParameter: 'to' },
      newestFirst: true,
    },
    { name: 'ListAlerts', path: 'alerts', allowedGroups: READERS, readModel: 'alerts', filters: [{ attribute: 'severity', parameter: 'severity' }] },
    { name: 'GetAlert', path: 'alerts/{alertId}', allowedGroups: READERS, readModel: 'alerts', key: { alertId: QueryInput.pathParameter('alertId') } },
  ],
};

const projectBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'description'],
  properties: { name: text(100), description: { type: 'string', maxLength: 500 } },
};

export const projectManagement: DomainDeclaration = {
  name: 'projects',
  commands: [
    {
      name: 'CreateProject',
      path: 'projects',
      allowedGroups: WRITERS,
      aggregateType: 'Project',
      aggregateId: AggregateIdSource.generated('project-'),
      eventType: 'ProjectCreated',
      // v1 called the description `summary` and had no template; see the upcaster in rules.
      eventVersion: 2,
      bodySchema: {
        ...projectBody,
        required: ['name', 'description', 'templateId'],
        properties: { ...projectBody.properties, templateId: text(64) },
      },
      extraData: { projectId: DataSource.aggregateId(), ownerId: DataSource.userId(), status: DataSource.constant('ACTIVE') },
    },
    {
      name: 'UpdateProject',
      method: 'PUT',
      path: 'projects/{projectId}',
      allowedGroups: WRITERS,
      aggregateType: 'Project',
      aggregateId: AggregateIdSource.fromPath('projectId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'ProjectUpdated',
      bodySchema: projectBody,
      extraData: { projectId: DataSource.pathParameter('projectId'), updatedBy: DataSource.userId() },
      ownership: { overrideGroups: ['Admin'] },
      guards: [{ name: 'ProjectArchived', condition: "state.status == 'ACTIVE'", message: 'an archived project cannot be updated' }],
    },
    {
      name: 'ArchiveProject',
      path: 'projects/{projectId}/archive',
      allowedGroups: WRITERS,
      aggregateType: 'Project',
      aggregateId: AggregateIdSource.fromPath('projectId'),
      precondition: Precondition.MUST_EXIST,
      eventType: 'ProjectArchived',
      bodySchema: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 200 } } },
      extraData: { projectId: DataSource.pathParameter('projectId'), archivedBy: DataSource.userId(), archivedAt: DataSource.requestTime() },
      ownership: { overrideGroups: ['Admin'] },
      guards: [{ name: 'ProjectAlreadyArchived', condition: "state.status != 'ARCHIVED'", message: 'the project is already archived' }],
    },
  ],
  rules: {
    aggregates: [
      {
        aggregateType: 'Project',
        initialState: { status: 'NONE' },
        events: [
          { eventType: 'ProjectCreated', updates: [StateUpdate.set('status', StateValue.string('ACTIVE'))] },
          { eventType: 'ProjectArchived', updates: [StateUpdate.set('status', StateValue.string('ARCHIVED'))] },
        ],
        // Guards and ownership fold the stream on every command: a snapshot every 100 events bounds that read.
        snapshotEvery: 100,
      },
    ],
    // Stored v1 ProjectCreated events read as v2, in the state and in the projects read model.
    upcasters: [{ eventType: 'ProjectCreated', fromVersion: 1, steps: [UpcastStep.rename('summary', 'description'), UpcastStep.setDefault('templateId', 'none')] }],
  },
  readModels: [
    {
      name: 'projects',
      partitionKey: { name: 'projectId' },
      indexes: [{ indexName: 'byStatus', partitionKey: { name: 'status' }, sortKey: { name: 'createdAt' } }],
      projections: [
        {
          eventType: 'ProjectCreated',
          action: ProjectionAction.putItem({
            key: { projectId: ProjectionValue.fromEnvelope('aggregateId') },
            attributes: {
              name: ProjectionValue.fromData('name'),
              description: ProjectionValue.fromData('description'),
              templateId: ProjectionValue.fromData('templateId'),
              ownerId: ProjectionValue.fromData('ownerId'),
              status: ProjectionValue.string('ACTIVE'),
              createdAt: ProjectionValue.fromEnvelope('timestamp'),
              updatedAt: ProjectionValue.fromEnvelope('timestamp'),
              version: ProjectionValue.fromEnvelope('eventSequence'),
            },
          }),
        },
        {
          eventType: 'ProjectUpdated',
          action: ProjectionAction.updateItem({
            key: { projectId: ProjectionValue.fromEnvelope('aggregateId') },
            set: {
              name: ProjectionValue.fromData('name'),
              description: ProjectionValue.fromData('description'),
              updatedAt: ProjectionValue.fromEnvelope('timestamp'),
              version: ProjectionValue.fromEnvelope('eventSequence'),
            },
          }),
        },
        {
          eventType: 'ProjectArchived',
          action: ProjectionAction.updateItem({
            key: { projectId: ProjectionValue.fromEnvelope('aggregateId') },
            set: {
              status: ProjectionValue.string('ARCHIVED'),
              archivedAt: ProjectionValue.fromData('archivedAt'),
              updatedAt: ProjectionValue.fromEnvelope('timestamp'),
              version: ProjectionValue.fromEnvelope('eventSequence'),
            },
          }),
        },
      ],
    },
  ],
  queries: [
    {
      name: 'ListProjects',
      path: 'projects',
      allowedGroups: READERS,
      readModel: 'projects',
      filters: [{ attribute: 'status', parameter: 'status' }],
    },
    { name: 'GetProject', path: 'projects/{projectId}', allowedGroups: READERS, readModel: 'projects', key: { projectId: QueryInput.pathParameter('projectId') } },
    // The caller's own projects (Admins see all).
    { name: 'ListMyProjects', path: 'my-projects', allowedGroups: WRITERS, readModel: 'projects', ownership: { ownerAttribute: 'ownerId', overrideGroups: ['Admin'] } },
  ],
};

