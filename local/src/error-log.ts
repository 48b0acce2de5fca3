/**
 * Where Skafu Local reports what went wrong: the console and `<work dir>/errors.log` (one JSON object a line).
 * Error events from the error bus, handler crashes (with the request's correlation id), handlers that cannot
 * load, and streams that cannot be read all end here, so that no failure is silent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LocalError {
  /** What failed: `Application Error` (an error event), `HandlerCrash`, `HandlerLoadFailed`, `StreamReadFailed`, ... */
  readonly kind: string;
  /** The resource (`Stack/LogicalId` or a local name). */
  readonly resource?: string;
  readonly message: string;
  readonly correlationId?: string;
  /** Anything else worth keeping (the event, the stack trace). */
  readonly [key: string]: unknown;
}

export class ErrorLog {
  public readonly file: string;
  /** Every entry of this run, in order. */
  public readonly entries: LocalError[] = [];

  constructor(
    workDirectory: string,
    private readonly log: (line: string) => void,
  ) {
    fs.mkdirSync(workDirectory, { recursive: true });
    this.file = path.join(workDirectory, 'errors.log');
  }

  /** Records an entry: one console line, one JSON line in errors.log. */
  public report(entry: LocalError, consoleLine?: string): void {
    this.entries.push(entry);
    const where = entry.resource ? ` ${entry.resource}` : '';
    const correlation = entry.correlationId ? ` [correlationId ${entry.correlationId}]` : '';
    this.log(consoleLine ?? `[${entry.kind}]${where}: ${entry.message}${correlation}`);
    fs.appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  }
}
