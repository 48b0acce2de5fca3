/**
 * No personal data leaks into error events (issue 10): request bodies arrive as the handlers pass them, real
 * strings, and are parsed and redacted by key or dropped; headers are kept from an allow-list only. The bundled
 * command handler's 500 path is driven for real against DynamoDB Local (a table that does not exist);
 * EventBridge (the error bus) has no local engine: PutEvents is mocked and the error event read from the call.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { createCommandHandler } from '../../src/domain/command.lambda';
import { powertools } from '../../src/internal/powertools';
import { ErrorReporter, EventStore, allowedHeaders, sanitizeForError, type ErrorEventDetail } from '../../src/runtime';
import { apiEvent } from '../support/api-events';
import { exampleDomain } from '../support/example';
import { localClient } from '../support/tables';

const eventBridge = mockClient(EventBridgeClient);

describe('sanitizeForError with real string bodies', () => {
  test('a JSON body string is parsed and redacted by key, at any depth', () => {
    const body = JSON.stringify({ name: 'Ada', password: 'hunter2', profile: { email: 'ada@example.com', phone: '+44 1', apiKey: 'k' }, items: [{ token: 't' }] });
    const { value } = sanitizeForError({ path: '/x', body });
    expect(value).toEqual({
      path: '/x',
      body: { name: 'Ada', password: '[REDACTED]', profile: { email: '[REDACTED]', phone: '[REDACTED]', apiKey: '[REDACTED]' }, items: [{ token: '[REDACTED]' }] },
    });
    expect(JSON.stringify(value)).not.toMatch(/hunter2|ada@example.com/);
  });

  test.each([
    ['a form body', 'user=ada&password=hunter2'],
    ['plain text', 'my password is hunter2'],
    ['a JSON string literal', '"password=hunter2"'],
    ['broken JSON', '{"password":"hunter2"'],
  ])('%s cannot be redacted by key: it is dropped, with its size', (_label, body) => {
    const { value } = sanitizeForError({ body });
    expect(JSON.stringify(value)).not.toContain('hunter2');
    expect((value as { body: string }).body).toMatch(/^\[body of \d+ bytes dropped/);
  });

  test('a __proto__ key in a body is kept as data and reaches no prototype', () => {
    const { value } = sanitizeForError({ body: '{"__proto__":{"polluted":true},"password":"x"}' });
    const body = (value as { body: Record<string, unknown> }).body;
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
    expect(Object.keys(body)).toEqual(['__proto__', 'password']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('headers: only the allow-list survives', () => {
    expect(
      allowedHeaders({ 'Authorization': 'Bearer x', 'Cookie': 'c', 'X-Api-Token': 't', 'X-Forwarded-For': '1.2.3.4', 'Content-Type': 'application/json', 'X-Correlation-Id': 'c1', 'If-Match': '"2"' }),
    ).toEqual({ 'Content-Type': 'application/json', 'X-Correlation-Id': 'c1', 'If-Match': '"2"' });
  });
});

test('the command handler\'s 500: the error event carries a redacted body and allow-listed headers only', async () => {
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
  const client = localClient();
  const handler = createCommandHandler({
    ...exampleDomain('observability'),
    store: new EventStore({ tableName: 'no-such-table', domain: 'observability', client }),
    tools: powertools('test'),
    reporter: new ErrorReporter({ component: 'projects', busName: 'errors', client: new EventBridgeClient({ region: 'us-east-1' }), log: () => undefined }),
  });
  const body = { name: 'cpu', value: 1, unit: 'Percent', source: 'agent', tags: { host: 'web-1', apiToken: 's3cr3t', ownerEmail: 'ada@example.com' } };
  const res = await handler(apiEvent('POST', '/api/v1/observability/metrics', { body, headers: { 'Authorization': 'Bearer eyJhbGciOi.secret.sig', 'Cookie': 'session=abc', 'X-Forwarded-For': '203.0.113.7' } }));
  expect(res.statusCode).toBe(500);
  const [call] = eventBridge.commandCalls(PutEventsCommand);
  const detail = JSON.parse(call.args[0].input.Entries![0].Detail!) as ErrorEventDetail;
  const original = detail.metadata.original as { headers: Record<string, string>; body: Record<string, unknown> };
  expect(original.headers).toEqual({ 'Content-Type': 'application/json' });
  expect(original.body).toEqual({ name: 'cpu', value: 1, unit: 'Percent', source: 'agent', tags: { host: 'web-1', apiToken: '[REDACTED]', ownerEmail: '[REDACTED]' } });
  const text = JSON.stringify(detail);
  for (const leak of ['s3cr3t', 'ada@example.com', 'eyJhbGciOi', 'session=abc', '203.0.113.7']) expect(text).not.toContain(leak);
  client.destroy();
});
