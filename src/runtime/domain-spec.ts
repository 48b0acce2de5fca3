import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { AggregateStateSpec, StateValueSpec, UpcasterSpec } from './state-fold';

/** Where a command's aggregate id comes from. */
export type AggregateIdSpec =
  | { readonly kind: 'path'; readonly name: string }
  | { readonly kind: 'body'; readonly field: string }
  | { readonly kind: 'generated'; readonly prefix: string };

/** A value added to an event's data besides the validated body. */
export type DataSourceSpec =
  | { readonly kind: 'path'; readonly name: string }
  | { readonly kind: 'userId' }
  | { readonly kind: 'requestTime' }
  | { readonly kind: 'aggregateId' }
  | { readonly kind: 'constant'; readonly value: string | number | boolean };

export type PreconditionSpec = 'must-exist' | 'must-not-exist' | 'any';

export interface CommandSpec {
  readonly name: string;
  readonly method: string;
  /** The API resource path, e.g. `/api/v1/observability/alerts/{alertId}/trigger`. */
  readonly resource: string;
  readonly aggregateType: string;
  readonly eventType: string;
  readonly eventVersion: number;
  readonly aggregateId: AggregateIdSpec;
  readonly precondition: PreconditionSpec;
  /** JSON Schema of the body. */
  readonly schema: Record<string, unknown>;
  readonly extraData: Record<string, DataSourceSpec>;
  readonly maxBodyBytes: number;
  /** Conditions over `{ state, body, user, stream }` checked before appending (see guards.ts). */
  readonly guards?: ReadonlyArray<{ readonly name: string; readonly message: string; readonly expression: string }>;
  /** Only the aggregate's creator (or a member of an override group) may run the command. */
  readonly ownership?: { readonly overrideGroups: string[] };
  /** Events appended after the first one, in the same atomic commit. */
  readonly additionalEvents?: ReadonlyArray<{
    readonly eventType: string;
    readonly eventVersion: number;
    readonly includeBody: boolean;
    readonly extraData: Record<string, DataSourceSpec>;
  }>;
}

/** A value of a reaction's command input, read from the triggering event. */
export type ReactionValueSpec = StateValueSpec;

/** An event of another domain that issues one of this domain's commands. */
export interface ReactionSpec {
  /** The rule's name in the domain, also part of the command id. */
  readonly name: string;
  readonly source: string;
  readonly eventType: string;
  /** The command's name (a bundled command of this domain). */
  readonly command: string;
  readonly pathParameters: Record<string, ReactionValueSpec>;
  readonly body: Record<string, ReactionValueSpec>;
}

/** A query input: a path parameter, a query-string parameter, or a constant. */
export type InputSpec =
  | { readonly kind: 'path'; readonly name: string; readonly type: 'S' | 'N' }
  | { readonly kind: 'query'; readonly name: string; readonly type: 'S' | 'N'; readonly required: boolean }
  | { readonly kind: 'constant'; readonly value: string | number };

export interface QuerySpec {
  readonly name: string;
  readonly resource: string;
  /** The read model's name in the domain (its table name is in SKAFU_READ_MODEL_<NAME>). */
  readonly readModel: string;
  readonly kind: 'get' | 'list';
  /** get: the item's key. */
  readonly key?: Record<string, InputSpec>;
  /** list: the partition key condition (absent: scan). */
  readonly partitionKey?: { readonly attribute: string; readonly input: InputSpec };
  /** list: a sort key range from two query-string parameters. */
  readonly sortKeyRange?: { readonly attribute: string; readonly fromParameter?: string; readonly toParameter?: string; readonly type: 'S' | 'N' };
  readonly index?: string;
  /** list: equality filters from query-string parameters (applied when the parameter is given). */
  readonly filters: Array<{ readonly attribute: string; readonly parameter: string; readonly type: 'S' | 'N' }>;
  readonly pageSize: number;
  readonly maxPageSize: number;
  readonly newestFirst: boolean;
  /**
   * The read model's key attributes with their types, partition key first: the table's keys, then the index's when
   * the query reads one. A list's `nextToken` must hold exactly these. Absent in specs made before it existed.
   */
  readonly startKey?: Array<{ readonly name: string; readonly type: 'S' | 'N' | 'B' }>;
  /** Object-level authorization: the item attribute holding its owner's user id. */
  readonly ownerAttribute?: string;
  /** Groups that see and read every item. */
  readonly ownerOverrideGroups?: string[];
}

export interface DomainSpec {
  readonly domain: string;
  readonly commands: CommandSpec[];
  readonly queries: QuerySpec[];
  /** Declared aggregate states. */
  readonly aggregates?: AggregateStateSpec[];
  /** Event schema upgrades. */
  readonly upcasters?: UpcasterSpec[];
  /** The current schema version of each event type the domain's commands emit. */
  readonly eventVersions?: Record<string, number>;
  /** Events of other domains that issue this domain's commands. */
  readonly reactions?: ReactionSpec[];
}

/** Compressed for an environment variable (Lambda allows 4 KB of them in all). */
export function encodeDomainSpec(spec: DomainSpec): string {
  return deflateRawSync(Buffer.from(JSON.stringify(spec), 'utf8'), { level: 9 }).toString('base64');
}

export function decodeDomainSpec(encoded: string): DomainSpec {
  return JSON.parse(inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8')) as DomainSpec;
}

/** The environment variable holding a read model's table name. */
export function readModelEnvName(readModel: string): string {
  return `SKAFU_READ_MODEL_${readModel.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * The environment variable holding a read model's versions (ActiveVersionConfig as JSON), set when its previous
 * version is kept: queries follow the active-version pointer (read-model-version.ts). Its prefix is not
 * `SKAFU_READ_MODEL_`, so that no read model's table variable can be mistaken for it.
 */
export function activeVersionEnvName(readModel: string): string {
  return `SKAFU_ACTIVE_VERSION_${readModel.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}
