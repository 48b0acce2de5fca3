/**
 * CloudFormation custom resources in tests. CloudFormation has no local engine, so the response a custom resource
 * handler PUTs to the request's pre-signed `ResponseURL` (the custom resource response object, CloudFormation User
 * Guide, "Custom resource response objects") is captured instead: `node:https`'s `request` is stubbed, nothing is
 * sent, and each PUT body is kept, parsed, with the URL it was sent to. Also: the request CloudFormation sends to
 * the read model version guard (`Custom::SkafuReadModelVersionGuard`, answered by the backfill function).
 */
import { randomUUID } from 'node:crypto';

/** The pre-signed URL the requests below carry (a name that resolves nowhere: nothing is sent). */
export const RESPONSE_URL = 'https://cloudformation-custom-resource-response.example/answer';

/** A custom resource handler as the tests call it. */
export type CustomResourceHandler = (event: any) => Promise<unknown>;

export interface CapturedResponses {
  /** Every response PUT since the capture started, oldest first: the parsed body and `url`. */
  readonly answers: Array<Record<string, any>>;
  /**
   * Runs `handler` on `event`, then returns the last response captured. It does not check that this call sent one
   * (a handler that sent none would show the previous response), as the tests it replaced did not.
   */
  answer(handler: CustomResourceHandler, event: object): Promise<Record<string, any>>;
  /** Puts `node:https`'s `request` back. Call it in a `finally`. */
  restore(): void;
}

/**
 * Stubs `node:https`'s `request` until `restore()`: the stub's response ends at once (the handler's `resume()` and
 * `on('end')` are honoured), and the body given to `end()` is captured.
 */
export function captureCloudFormationResponses(): CapturedResponses {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const httpsModule = require('node:https') as typeof import('node:https');
  const answers: Array<Record<string, any>> = [];
  const spy = jest.spyOn(httpsModule, 'request').mockImplementation(((url: string, _options: unknown, callback: (res: unknown) => void) => ({
    on: () => undefined,
    end: (payload: string) => {
      answers.push({ url, ...JSON.parse(payload) });
      callback({ resume: () => undefined, on: (event: string, fn: () => void) => (event === 'end' ? fn() : undefined) });
    },
  })) as never);
  return {
    answers,
    answer: async (handler, event) => {
      await handler(event);
      return answers[answers.length - 1];
    },
    restore: () => spy.mockRestore(),
  };
}

export interface VersionGuardRequestOptions {
  readonly requestType: 'Create' | 'Update' | 'Delete';
  /** `ReadModelName`; also names the physical resource (`version-guard-<name>`) of an Update or a Delete. */
  readonly readModelName: string;
  readonly stackId: string;
  /** The other `ResourceProperties` (strings, as CloudFormation sends them), after `ServiceToken` and `ReadModelName`. */
  readonly properties: Record<string, string>;
  /** `OldResourceProperties`, sent as given. @default - none */
  readonly oldProperties?: Record<string, string>;
}

/** The request CloudFormation sends to the version guard: a fresh RequestId, no PhysicalResourceId on a Create. */
export function versionGuardRequest(options: VersionGuardRequestOptions): Record<string, unknown> {
  const { requestType, readModelName, oldProperties } = options;
  return {
    RequestType: requestType,
    ResponseURL: RESPONSE_URL,
    StackId: options.stackId,
    RequestId: randomUUID(),
    ResourceType: 'Custom::SkafuReadModelVersionGuard',
    LogicalResourceId: 'ProjectionsVersionGuardTotals',
    ...(requestType === 'Create' ? {} : { PhysicalResourceId: `version-guard-${readModelName}` }),
    ResourceProperties: { ServiceToken: 'arn', ReadModelName: readModelName, ...options.properties },
    ...(oldProperties ? { OldResourceProperties: oldProperties } : {}),
  };
}
