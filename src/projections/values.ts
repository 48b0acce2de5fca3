import { Duration } from 'aws-cdk-lib';

/** How a projected value is stored in DynamoDB. */
export enum ValueType {
  /** S */
  STRING = 'STRING',
  /** N */
  NUMBER = 'NUMBER',
  /** BOOL */
  BOOLEAN = 'BOOLEAN',
  /** Any JSON value, stored as its JSON text (S). */
  JSON = 'JSON',
}

const ENVELOPE_FIELDS: Record<string, ValueType> = {
  eventId: ValueType.STRING,
  eventType: ValueType.STRING,
  eventVersion: ValueType.NUMBER,
  aggregateId: ValueType.STRING,
  aggregateType: ValueType.STRING,
  eventSequence: ValueType.NUMBER,
  timestamp: ValueType.STRING,
  timestampEpochSeconds: ValueType.NUMBER,
  correlationId: ValueType.STRING,
  causationId: ValueType.STRING,
  source: ValueType.STRING,
};
const PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * A value a projection writes: a field of the event envelope, a field of its `data` or `metadata`, or a
 * constant. Rendered as a DynamoDB attribute value in the state machine (JSONPath).
 */
export abstract class ProjectionValue {
  /** A field of the envelope: aggregateId, eventId, eventType, eventSequence, timestamp, timestampEpochSeconds, ... */
  public static fromEnvelope(field: string): ProjectionValue {
    const type = ENVELOPE_FIELDS[field];
    if (!type) throw new Error(`ProjectionValue.fromEnvelope: '${field}' is not an envelope field (${Object.keys(ENVELOPE_FIELDS).join(', ')})`);
    return new PathValue(`$.detail.${field}`, type, `envelope.${field}`);
  }

  /** A field of the event's `data`, by dotted path (`amount`, `owner.id`). */
  public static fromData(path: string, type: ValueType = ValueType.STRING): ProjectionValue {
    if (!PATH.test(path)) throw new Error(`ProjectionValue.fromData: '${path}' is not a dotted path of identifiers`);
    return new PathValue(`$.detail.data.${path}`, type, `data.${path}`);
  }

  /** A field of the event's `metadata` (`userId`, `requestId`). */
  public static fromMetadata(path: string, type: ValueType = ValueType.STRING): ProjectionValue {
    if (!PATH.test(path)) throw new Error(`ProjectionValue.fromMetadata: '${path}' is not a dotted path of identifiers`);
    return new PathValue(`$.detail.metadata.${path}`, type, `metadata.${path}`);
  }

  /** The event's whole `data`, as JSON text. */
  public static dataAsJson(): ProjectionValue {
    return new PathValue('$.detail.data', ValueType.JSON, 'data');
  }

  /**
   * A constant string, stored as S.
   * @param value the string
   */
  public static string(value: string): ProjectionValue {
    return new ConstantValue({ S: value }, ValueType.STRING);
  }

  /**
   * A constant number, stored as N. Throws if the number is not finite.
   * @param value the number (finite)
   */
  public static number(value: number): ProjectionValue {
    if (!Number.isFinite(value)) throw new Error('ProjectionValue.number: not a finite number');
    return new ConstantValue({ N: String(value) }, ValueType.NUMBER);
  }

  /**
   * A constant boolean, stored as BOOL.
   * @param value the boolean
   */
  public static boolean(value: boolean): ProjectionValue {
    return new ConstantValue({ BOOL: value }, ValueType.BOOLEAN);
  }

  /** How the value is stored. */
  public abstract readonly type: ValueType;

  /** @internal the DynamoDB attribute value template (JSONPath) */
  public abstract _render(): Record<string, unknown>;
  /** @internal where the value comes from, for messages */
  public abstract _describe(): string;
  /** @internal the JSONPath the value reads, if any (checked before an event is applied) */
  public abstract _path(): string | undefined;
}

class PathValue extends ProjectionValue {
  constructor(
    private readonly path: string,
    public readonly type: ValueType,
    private readonly description: string,
  ) {
    super();
  }
  public _render(): Record<string, unknown> {
    switch (this.type) {
      case ValueType.NUMBER:
        return { 'N.$': `States.Format('{}', ${this.path})` };
      case ValueType.BOOLEAN:
        return { 'BOOL.$': this.path };
      case ValueType.JSON:
        return { 'S.$': `States.JsonToString(${this.path})` };
      default:
        return { 'S.$': this.path };
    }
  }
  public _describe(): string {
    return this.description;
  }
  public _path(): string | undefined {
    return this.path;
  }
}

class ConstantValue extends ProjectionValue {
  constructor(
    private readonly value: Record<string, unknown>,
    public readonly type: ValueType,
  ) {
    super();
  }
  public _render(): Record<string, unknown> {
    return this.value;
  }
  public _describe(): string {
    return JSON.stringify(this.value);
  }
  public _path(): string | undefined {
    return undefined;
  }
}

/** Options of a put: the whole item is replaced. */
export interface PutItemOptions {
  /** The item's key attributes (exactly the read model's keys). */
  readonly key: Record<string, ProjectionValue>;
  /**
   * The item's other attributes, by name. An attribute named like a key attribute is overwritten by `key`.
   * @default - only the key
   */
  readonly attributes?: Record<string, ProjectionValue>;
  /**
   * Expire the item this long after the event's timestamp (written to the read model's TTL attribute).
   * @default - never
   */
  readonly ttl?: Duration;
}

/** Options of an update: attributes changed in place. */
export interface UpdateItemOptions {
  /** The item's key attributes (exactly the read model's keys). */
  readonly key: Record<string, ProjectionValue>;
  /**
   * Attributes set to values, by name (created if missing).
   * @default - none
   */
  readonly set?: Record<string, ProjectionValue>;
  /** Numbers added to counters (created at 0). @default - none */
  readonly add?: Record<string, ProjectionValue>;
  /** Values appended to lists (created empty). @default - none */
  readonly append?: Record<string, ProjectionValue>;
  /**
   * Names of attributes removed from the item.
   * @default - none
   */
  readonly remove?: string[];
  /**
   * Set the item to expire this long after the event's timestamp (written to the read model's TTL attribute).
   * @default - the TTL is not touched
   */
  readonly ttl?: Duration;
}

/** Options of a delete. */
export interface DeleteItemOptions {
  /** The key attributes of the item deleted (exactly the read model's keys). */
  readonly key: Record<string, ProjectionValue>;
}

/** What a projection does to its read model for one event. */
export abstract class ProjectionAction {
  /** Puts an item built from the event (replacing any item with the same key). */
  public static putItem(options: PutItemOptions): ProjectionAction {
    return new PutAction(options);
  }
  /** Updates an item's attributes: set, add to counters, append to lists, remove. */
  public static updateItem(options: UpdateItemOptions): ProjectionAction {
    const names = [options.set, options.add, options.append].flatMap((m) => Object.keys(m ?? {})).concat(options.remove ?? []);
    if (names.length === 0 && !options.ttl) throw new Error('ProjectionAction.updateItem: give at least one of set, add, append, remove, ttl');
    for (const [name, value] of Object.entries(options.add ?? {})) {
      if (value.type !== ValueType.NUMBER) throw new Error(`ProjectionAction.updateItem: add '${name}' must be a NUMBER value`);
    }
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new Error(`ProjectionAction.updateItem: attribute '${twice}' is changed twice`);
    return new UpdateAction(options);
  }
  /** Deletes the item. */
  public static deleteItem(options: DeleteItemOptions): ProjectionAction {
    return new DeleteAction(options);
  }

  /** The key the action addresses. */
  public abstract readonly key: Record<string, ProjectionValue>;
  /** The TTL it writes, if any. */
  public abstract readonly ttl?: Duration;

  /** @internal every value the action reads (for synth-time checks) */
  public abstract _values(): ProjectionValue[];

  /**
   * @internal the attributes the action writes, with how each is stored (`list` for appended values), for
   * schemas generated from the declarations (GraphQL)
   */
  public abstract _attributes(): Array<{ name: string; type: ValueType; list: boolean }>;

  /**
   * @internal one TransactWriteItems action (JSONPath template)
   */
  public abstract _render(tableName: string, ttlAttribute: string | undefined): Record<string, unknown>;
}

function renderMap(values: Record<string, ProjectionValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v._render()]));
}

function ttlValue(ttl: Duration): Record<string, unknown> {
  return { 'N.$': `States.Format('{}', States.MathAdd($.detail.timestampEpochSeconds, ${Math.round(ttl.toSeconds())}))` };
}

class PutAction extends ProjectionAction {
  public readonly key: Record<string, ProjectionValue>;
  public readonly ttl?: Duration;
  constructor(private readonly options: PutItemOptions) {
    super();
    this.key = options.key;
    this.ttl = options.ttl;
  }
  public _values(): ProjectionValue[] {
    return [...Object.values(this.key), ...Object.values(this.options.attributes ?? {})];
  }
  public _attributes(): Array<{ name: string; type: ValueType; list: boolean }> {
    return Object.entries({ ...(this.options.attributes ?? {}), ...this.key }).map(([name, v]) => ({ name, type: v.type, list: false }));
  }
  public _render(tableName: string, ttlAttribute: string | undefined): Record<string, unknown> {
    const item = { ...renderMap(this.options.attributes ?? {}), ...renderMap(this.key) };
    if (this.ttl && ttlAttribute) item[ttlAttribute] = ttlValue(this.ttl);
    return { Put: { TableName: tableName, Item: item } };
  }
}

class UpdateAction extends ProjectionAction {
  public readonly key: Record<string, ProjectionValue>;
  public readonly ttl?: Duration;
  constructor(private readonly options: UpdateItemOptions) {
    super();
    this.key = options.key;
    this.ttl = options.ttl;
  }
  public _values(): ProjectionValue[] {
    return [this.options.set, this.options.add, this.options.append, this.key].flatMap((m) => Object.values(m ?? {}));
  }
  public _attributes(): Array<{ name: string; type: ValueType; list: boolean }> {
    return [
      ...Object.entries({ ...(this.options.set ?? {}), ...(this.options.add ?? {}), ...this.key })
        .map(([name, v]) => ({ name, type: v.type, list: false })),
      ...Object.entries(this.options.append ?? {}).map(([name, v]) => ({ name, type: v.type, list: true })),
    ];
  }
  public _render(tableName: string, ttlAttribute: string | undefined): Record<string, unknown> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets: string[] = [];
    const adds: string[] = [];
    const removes: string[] = [];
    let n = 0;
    const name = (attr: string) => {
      const placeholder = `#a${n}`;
      names[placeholder] = attr;
      return placeholder;
    };
    const value = (v: Record<string, unknown>) => {
      const placeholder = `:v${n}`;
      values[placeholder] = v;
      return placeholder;
    };
    for (const [attr, v] of Object.entries(this.options.set ?? {})) {
      sets.push(`${name(attr)} = ${value(v._render())}`);
      n++;
    }
    if (this.ttl && ttlAttribute) {
      sets.push(`${name(ttlAttribute)} = ${value(ttlValue(this.ttl))}`);
      n++;
    }
    for (const [attr, v] of Object.entries(this.options.append ?? {})) {
      const a = name(attr);
      const item = value({ L: [v._render()] });
      values[':empty'] = { L: [] };
      sets.push(`${a} = list_append(if_not_exists(${a}, :empty), ${item})`);
      n++;
    }
    for (const [attr, v] of Object.entries(this.options.add ?? {})) {
      adds.push(`${name(attr)} ${value(v._render())}`);
      n++;
    }
    for (const attr of this.options.remove ?? []) {
      removes.push(name(attr));
      n++;
    }
    const expression = [
      sets.length ? `SET ${sets.join(', ')}` : '',
      adds.length ? `ADD ${adds.join(', ')}` : '',
      removes.length ? `REMOVE ${removes.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    return {
      Update: {
        TableName: tableName,
        Key: renderMap(this.key),
        UpdateExpression: expression,
        ExpressionAttributeNames: names,
        ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      },
    };
  }
}

class DeleteAction extends ProjectionAction {
  public readonly key: Record<string, ProjectionValue>;
  public readonly ttl?: Duration = undefined;
  constructor(options: DeleteItemOptions) {
    super();
    this.key = options.key;
  }
  public _values(): ProjectionValue[] {
    return Object.values(this.key);
  }
  public _attributes(): Array<{ name: string; type: ValueType; list: boolean }> {
    return [];
  }
  public _render(tableName: string): Record<string, unknown> {
    return { Delete: { TableName: tableName, Key: renderMap(this.key) } };
  }
}
