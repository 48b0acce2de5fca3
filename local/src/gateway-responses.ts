/**
 * API Gateway's gateway responses (REST), rendered as AWS documents them, in pure functions used by Skafu Local
 * and by the tests that prove every Skafu template renders to valid JSON:
 * - the template is plain variable substitution, not VTL ("x-amazon-apigateway-gateway-responses.responseTemplates",
 *   aws-behaviours.md section 1 [A9]);
 * - `$context.error.messageString` is the message already in double quotes: it is embedded bare. How AWS escapes
 *   a quote inside the message is not documented (unverified); it is modelled here as a JSON string, and Skafu's
 *   templates only use it for API Gateway's own messages;
 * - `$context.error.validationErrorString` and every other variable (`$context.requestId`,
 *   `$context.authorizer.<key>`, ...) are substituted raw: a template must quote them itself, and they are only
 *   safe inside a JSON string if they cannot hold a quote, a backslash or a control character [A8];
 * - header mappings take a static value (`'value'`) or a request parameter (`method.request.header.<name>`,
 *   `.querystring.<name>`, `.path.<name>`) ("x-amazon-apigateway-gateway-responses.gatewayResponse"). A request
 *   parameter the request does not have gives no header (assumption, unverified).
 * - without a gateway response of its type (nor DEFAULT_4XX / DEFAULT_5XX), API Gateway answers
 *   `{"message":$context.error.messageString}`.
 */

/** A gateway response as the template defines it (AWS::ApiGateway::GatewayResponse). */
export interface GatewayResponseDefinition {
  readonly responseType: string;
  readonly statusCode?: string;
  readonly templates: Record<string, string>;
  readonly parameters: Record<string, string>;
}

/** What API Gateway knows when it answers with a gateway response. */
export interface GatewayResponseInput {
  readonly responseType: string;
  /** The status API Gateway uses when the definition names none. */
  readonly defaultStatus: number;
  /** `$context.error.message`. */
  readonly message: string;
  /** `$context.error.validationErrorString`. @default '' */
  readonly validationErrorString?: string;
  readonly requestId: string;
  /** `$context.authorizer.*` (the authorizer's context, when it ran or was cached). */
  readonly authorizer?: Record<string, unknown>;
  /** Other `$context.*` values (stage, resourcePath, httpMethod...). */
  readonly context?: Record<string, string>;
  readonly request: {
    readonly headers: Record<string, string | undefined>;
    readonly query?: Record<string, string | undefined>;
    readonly path?: Record<string, string | undefined>;
  };
}

export interface RenderedResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A gateway response from a template resource's (resolved) properties. */
export function gatewayResponseFromCfn(properties: Record<string, any>): GatewayResponseDefinition {
  return {
    responseType: String(properties.ResponseType),
    statusCode: properties.StatusCode === undefined ? undefined : String(properties.StatusCode),
    templates: { ...(properties.ResponseTemplates ?? {}) },
    parameters: { ...(properties.ResponseParameters ?? {}) },
  };
}

function own(record: Record<string, string | undefined> | undefined, name: string, caseInsensitive: boolean): string | undefined {
  if (!record) return undefined;
  const key = Object.keys(record).find((k) => (caseInsensitive ? k.toLowerCase() === name.toLowerCase() : k === name));
  return key === undefined ? undefined : record[key];
}

/** The template with API Gateway's substitutions made. */
export function renderTemplate(template: string, input: GatewayResponseInput): string {
  return template.replace(/\$(context|stageVariables)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)/g, (_m, root: string, name: string) => {
    if (root === 'stageVariables') return '';
    if (name === 'error.messageString') return JSON.stringify(input.message);
    if (name === 'error.message') return input.message;
    if (name === 'error.validationErrorString') return input.validationErrorString ?? '';
    if (name === 'error.responseType') return input.responseType;
    if (name === 'requestId' || name === 'extendedRequestId') return input.requestId;
    if (name.startsWith('authorizer.')) {
      const key = name.slice('authorizer.'.length);
      const value = input.authorizer && Object.prototype.hasOwnProperty.call(input.authorizer, key) ? input.authorizer[key] : undefined;
      return value === undefined || value === null ? '' : String(value);
    }
    return own(input.context, name, false) ?? '';
  });
}

/**
 * The response API Gateway sends: the definition of the response type, else DEFAULT_4XX or DEFAULT_5XX (by the
 * default status), else API Gateway's built-in body.
 */
export function renderGatewayResponse(definitions: ReadonlyMap<string, GatewayResponseDefinition>, input: GatewayResponseInput): RenderedResponse {
  const definition = definitions.get(input.responseType) ?? definitions.get(input.defaultStatus >= 500 ? 'DEFAULT_5XX' : 'DEFAULT_4XX');
  const template = definition?.templates['application/json'] ?? '{"message":$context.error.messageString}';
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  for (const [key, source] of Object.entries(definition?.parameters ?? {})) {
    const name = key.replace(/^gatewayresponse\.header\./, '');
    let value: string | undefined;
    const s = String(source);
    if (/^'.*'$/s.test(s)) value = s.slice(1, -1);
    else if (s.startsWith('method.request.header.')) value = own(input.request.headers, s.slice('method.request.header.'.length), true);
    else if (s.startsWith('method.request.querystring.')) value = own(input.request.query, s.slice('method.request.querystring.'.length), false);
    else if (s.startsWith('method.request.path.')) value = own(input.request.path, s.slice('method.request.path.'.length), false);
    if (value !== undefined) headers[name] = value;
  }
  return { statusCode: Number(definition?.statusCode ?? input.defaultStatus), headers, body: renderTemplate(template, input) };
}
