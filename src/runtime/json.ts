/** A JSON value as stored in an event: what JSON.parse(JSON.stringify(x)) gives back unchanged. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonObject | JsonValue[];
export interface JsonObject {
  [key: string]: JsonValue;
}
