/**
 * Skafu Local's AppSync runs VTL pipeline resolvers as AppSync does (developer guide, "Pipeline resolvers"; resolver
 * mapping template reference, "Directives"): the before template's output is the first function's
 * `$ctx.prev.result`, each function's output the next one's, the last one's the after template's; one `$ctx.stash`
 * per resolver run; `#return(data)` (or a bare `#return`, data null) in a function's request template skips its
 * data source and response template, in the before template ends the resolver; `$util.error` fails the field.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AppSync, type AppSyncFunctionConfig, type AppSyncIdentity, type AppSyncResolverConfig } from '../../local/src/appsync';

const SDL = 'schema { query: Query }\ntype Out { n: Int, s: String, trace: [String] }\ntype Query { run(x: Int): Out }\n';
const who: AppSyncIdentity = { kind: 'cognito', sub: 'u', username: 'u', groups: [], claims: {}, issuer: 'local' };

/** A function on a NONE data source answering `payload`, or on a "table" whose client records and refuses every call. */
const fn = (name: string, requestTemplate: string, responseTemplate = '$util.toJson($ctx.result)', tableName?: string): AppSyncFunctionConfig => ({ name, requestTemplate, responseTemplate, tableName });

function api(before: string, functions: AppSyncFunctionConfig[], after: string) {
  const sent: string[] = [];
  const client = {
    send: async (command: any) => {
      sent.push(`${command.constructor.name} ${command.input.TableName}`);
      throw Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' });
    },
  } as unknown as DynamoDBClient;
  const resolver: AppSyncResolverConfig = { typeName: 'Query', fieldName: 'run', requestTemplate: before, responseTemplate: after, functions };
  const appsync = new AppSync({ sdl: SDL, resolvers: [resolver], client });
  return { sent, run: (x: number) => appsync.execute({ query: `{ run(x: ${x}) { n s trace } }` }, who) };
}

const add = (name: string) => fn(name, `$util.qr($ctx.stash.trace.add(${JSON.stringify(name)}))\n{"version": "2018-05-29", "payload": {"n": $util.toJson($ctx.prev.result.n)}}`, '{"n": $ctx.result.n}');

test('$ctx.prev.result carries the before template\'s output through each function to the after template; one stash throughout', async () => {
  const { run } = api(
    "$util.qr($ctx.stash.put('trace', ['before']))\n{\"n\": $ctx.args.x}",
    [
      fn('double', "$util.qr($ctx.stash.trace.add('double'))\n#set($d = $ctx.prev.result.n * 2)\n{\"version\": \"2018-05-29\", \"payload\": {\"n\": $d}}"),
      fn('plusOne', "$util.qr($ctx.stash.trace.add('plusOne'))\n#set($p = $ctx.prev.result.n + 1)\n{\"version\": \"2018-05-29\", \"payload\": {\"n\": $p}}"),
    ],
    "$util.qr($ctx.stash.trace.add('after'))\n$util.toJson({\"n\": $ctx.prev.result.n, \"s\": \"$ctx.result.n\", \"trace\": $ctx.stash.trace})",
  );
  expect(await run(5)).toEqual({ data: { run: { n: 11, s: '11', trace: ['before', 'double', 'plusOne', 'after'] } } });
  // A fresh stash for every run.
  expect(await run(1)).toEqual({ data: { run: { n: 3, s: '3', trace: ['before', 'double', 'plusOne', 'after'] } } });
});

test('#return in a function\'s request template: no data source call, no response template; its data (or null) is the next $ctx.prev.result', async () => {
  const { run, sent } = api(
    "$util.qr($ctx.stash.put('trace', []))\n{\"n\": $ctx.args.x}",
    [
      fn('maybeSkip', '#if($ctx.args.x > 10)\n  #return({"n": 100})\n#end\n{"version": "2018-05-29", "operation": "GetItem", "key": {}}', "$util.error('the response template ran', 'Ran')", 'some-table'),
      add('next'),
    ],
    '$util.toJson({"n": $ctx.prev.result.n, "trace": $ctx.stash.trace})',
  );
  expect(await run(50)).toEqual({ data: { run: { n: 100, s: null, trace: ['next'] } } });
  expect(sent).toEqual([]);
  // The same compiled templates again, this time without #return: the data source is called and its error reaches the response template.
  expect(await run(1)).toEqual({ data: { run: null }, errors: [expect.objectContaining({ message: 'the response template ran', errorType: 'Ran', path: ['run'] })] });
  expect(sent).toEqual(['GetItemCommand some-table']);
  // And with #return once more (velocityjs keeps a stop flag per compiled template: it is reset every render).
  expect(await run(20)).toEqual({ data: { run: { n: 100, s: null, trace: ['next'] } } });
  expect(sent).toHaveLength(1);
});

test('a bare #return gives null; #return in the before template ends the resolver without running a function', async () => {
  const bare = api('{}', [fn('skip', '#if(true)\n  #return\n#end\n{"version": "2018-05-29", "payload": {"n": 1}}'), fn('seen', '{"version": "2018-05-29", "payload": {"n": $util.isNull($ctx.prev.result)}}', '{"s": "$ctx.result.n"}')], '$util.toJson($ctx.prev.result)');
  expect(await bare.run(1)).toEqual({ data: { run: { n: null, s: 'true', trace: null } } });
  const early = api('#if($ctx.args.x == 0)\n  #return({"s": "early"})\n#end\n{}', [fn('never', "$util.error('a function ran', 'Ran')")], '$util.toJson({"s": "late"})');
  expect(await early.run(0)).toEqual({ data: { run: { n: null, s: 'early', trace: null } } });
  expect(await early.run(1)).toEqual({ data: { run: null }, errors: [expect.objectContaining({ message: 'a function ran', errorType: 'Ran' })] });
});

test('$util.error in a function fails the field, and the functions after it do not run', async () => {
  const { run } = api(
    "$util.qr($ctx.stash.put('trace', []))\n{}",
    [fn('fails', '{"version": "2018-05-29", "payload": {}}', "$util.error('refused', 'Refused')"), fn('after', "$util.qr($ctx.stash.trace.add('after'))\n$util.error('ran after the error', 'Wrong')")],
    '$util.toJson({"s": "done"})',
  );
  expect(await run(1)).toEqual({ data: { run: null }, errors: [expect.objectContaining({ message: 'refused', errorType: 'Refused', path: ['run'] })] });
});
