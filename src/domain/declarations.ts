import type { AggregateIdSpec, DataSourceSpec, InputSpec } from '../runtime/domain-spec';

/** What must be true of the aggregate before a command appends to it. */
export enum Precondition {
  /** The aggregate must exist (404 otherwise). */
  MUST_EXIST = 'must-exist',
  /** The aggregate must not exist yet (409 otherwise). */
  MUST_NOT_EXIST = 'must-not-exist',
  /** No check (If-Match still applies). */
  ANY = 'any',
}

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Where a command's aggregate id comes from. */
export abstract class AggregateIdSource {
  /** A path parameter of the command's route, e.g. `alertId` in `alerts/{alertId}/trigger`. */
  public static fromPath(name: string): AggregateIdSource {
    if (!NAME.test(name)) throw new Error(`AggregateIdSource.fromPath: '${name}' is not a parameter name`);
    return AggregateIdSource.of({ kind: 'path', name });
  }
  /** A top-level string field of the body. */
  public static fromBody(field: string): AggregateIdSource {
    if (!FIELD.test(field)) throw new Error(`AggregateIdSource.fromBody: '${field}' is not a field name`);
    return AggregateIdSource.of({ kind: 'body', field });
  }
  /** A new UUID for every command, after an optional prefix (`alert-`). */
  public static generated(prefix: string = ''): AggregateIdSource {
    if (!/^[A-Za-z0-9._:-]{0,32}$/.test(prefix) || (prefix !== '' && !/^[A-Za-z0-9]/.test(prefix))) {
      throw new Error(`AggregateIdSource.generated: prefix '${prefix}' must be up to 32 letters, digits or . _ : -, starting with a letter or digit`);
    }
    return AggregateIdSource.of({ kind: 'generated', prefix });
  }
  private static of(spec: AggregateIdSpec): AggregateIdSource {
    return new (class extends AggregateIdSource {
      public _spec(): AggregateIdSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): AggregateIdSpec;
}

/** A value added to an event's data besides the validated body. */
export abstract class DataSource {
  /** A path parameter of the route. */
  public static pathParameter(name: string): DataSource {
    if (!NAME.test(name)) throw new Error(`DataSource.pathParameter: '${name}' is not a parameter name`);
    return DataSource.of({ kind: 'path', name });
  }
  /** The caller's user id (Cognito `sub`). */
  public static userId(): DataSource {
    return DataSource.of({ kind: 'userId' });
  }
  /** The time the command was handled (ISO-8601). */
  public static requestTime(): DataSource {
    return DataSource.of({ kind: 'requestTime' });
  }
  /** The aggregate id (useful when it was generated or came from the path). */
  public static aggregateId(): DataSource {
    return DataSource.of({ kind: 'aggregateId' });
  }
  /** A constant string. */
  public static constant(value: string): DataSource {
    return DataSource.of({ kind: 'constant', value });
  }
  private static of(spec: DataSourceSpec): DataSource {
    return new (class extends DataSource {
      public _spec(): DataSourceSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): DataSourceSpec;
}

/** The type of a query input. */
export enum QueryInputType {
  /** A string (DynamoDB `S`). */
  STRING = 'S',
  /** A decimal number (DynamoDB `N`, up to 38 significant digits). */
  NUMBER = 'N',
}

/** Options of a query-string input. */
export interface QueryParameterOptions {
  /**
   * Whether the request must give it (400 naming it otherwise).
   * @default true
   */
  readonly required?: boolean;
  /**
   * The type of the value (a number must be a decimal DynamoDB can hold).
   * @default QueryInputType.STRING
   */
  readonly type?: QueryInputType;
}

/** Where a query's key value comes from. */
export abstract class QueryInput {
  /** A path parameter of the query's route. */
  public static pathParameter(name: string, type: QueryInputType = QueryInputType.STRING): QueryInput {
    if (!NAME.test(name)) throw new Error(`QueryInput.pathParameter: '${name}' is not a parameter name`);
    return QueryInput.of({ kind: 'path', name, type });
  }
  /** A query-string parameter. */
  public static queryParameter(name: string, options: QueryParameterOptions = {}): QueryInput {
    if (!NAME.test(name)) throw new Error(`QueryInput.queryParameter: '${name}' is not a parameter name`);
    return QueryInput.of({ kind: 'query', name, type: options.type ?? QueryInputType.STRING, required: options.required ?? true });
  }
  /** A constant. */
  public static constant(value: string): QueryInput {
    return QueryInput.of({ kind: 'constant', value });
  }
  private static of(spec: InputSpec): QueryInput {
    return new (class extends QueryInput {
      public _spec(): InputSpec {
        return spec;
      }
    })();
  }
  /** @internal */
  public abstract _spec(): InputSpec;
}
