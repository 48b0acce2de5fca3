/**
 * Finds a `__proto__` key in JSON data (an own key, as JSON.parse creates it). Such data is not the same value once
 * written as JavaScript source (an object literal's `__proto__` sets the prototype), so code generated from it
 * (Ajv standalone validators) would judge differently from Ajv at runtime.
 */

/** The JSON pointer (RFC 6901) of the first own `__proto__` key in `value`, or undefined when there is none. */
export function findPrototypeKey(value: unknown, pointer = ''): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findPrototypeKey(value[i], `${pointer}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  for (const key of Object.keys(value)) {
    const here = `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (key === '__proto__') return here;
    const found = findPrototypeKey((value as Record<string, unknown>)[key], here);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Throws, naming the command and the JSON pointer, when a command's JSON Schema holds a `__proto__` key. */
export function refusePrototypeKeys(name: string, schema: unknown): void {
  const pointer = findPrototypeKey(schema);
  if (pointer !== undefined) {
    throw new Error(
      `the JSON Schema of ${name} holds a "__proto__" key at ${pointer}: compiled validation code cannot keep it as a key ` +
        '(it would judge bodies differently from Ajv at runtime); remove it',
    );
  }
}
