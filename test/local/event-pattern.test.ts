/**
 * The local buses' event pattern matcher against cases from the EventBridge documentation, with moto's
 * EventPattern (preinstalled in this machine image's Python) as a differential oracle.
 */
import { spawnSync } from 'node:child_process';
import { matchesPattern, UnsupportedPatternError, validatePattern } from '../../local/src/event-pattern';

const event = {
  'version': '0',
  'id': 'e-1',
  'detail-type': 'EC2 Instance State-change Notification',
  'source': 'aws.ec2',
  'account': '111122223333',
  'time': '2017-12-22T18:43:48Z',
  'region': 'us-west-1',
  'resources': ['arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0'],
  'detail': {
    'instance-id': 'i-1234567890abcdef0',
    'state': 'terminated',
    'c-count': 5,
    'd-count': 3,
    'x-limit': 301.8,
    'source-ip': '10.0.0.123',
    'location': 'eu-west-1',
    'nested': { flag: true, empty: '', nothing: null },
    'tags': ['a', 'b'],
  },
};

const cases: Array<[string, Record<string, unknown>, boolean]> = [
  ['exact source', { source: ['aws.ec2'] }, true],
  ['exact source, no match', { source: ['aws.s3'] }, false],
  ['one of several values', { detail: { state: ['running', 'terminated'] } }, true],
  ['nested field', { detail: { nested: { flag: [true] } } }, true],
  ['number exact', { detail: { 'c-count': [5] } }, true],
  ['number versus string', { detail: { 'c-count': ['5'] } }, false],
  ['null value', { detail: { nested: { nothing: [null] } } }, true],
  ['empty string', { detail: { nested: { empty: [''] } } }, true],
  ['array field, any element', { detail: { tags: ['b'] } }, true],
  ['prefix', { 'detail-type': [{ prefix: 'EC2 Instance' }] }, true],
  ['prefix, no match', { 'detail-type': [{ prefix: 'S3' }] }, false],
  ['suffix', { detail: { location: [{ suffix: '-1' }] } }, true],
  ['anything-but value', { detail: { state: [{ 'anything-but': 'running' }] } }, true],
  ['anything-but list', { detail: { state: [{ 'anything-but': ['running', 'terminated'] }] } }, false],
  ['anything-but prefix', { detail: { location: [{ 'anything-but': { prefix: 'us-' } }] } }, true],
  ['numeric range', { detail: { 'c-count': [{ numeric: ['>', 0, '<=', 5] }] } }, true],
  ['numeric range, no match', { detail: { 'x-limit': [{ numeric: ['<', 300] }] } }, false],
  ['numeric equals', { detail: { 'd-count': [{ numeric: ['=', 3] }] } }, true],
  ['exists true', { detail: { state: [{ exists: true }] } }, true],
  ['exists false on a missing field', { detail: { missing: [{ exists: false }] } }, true],
  ['exists false on a present field', { detail: { state: [{ exists: false }] } }, false],
  ['equals-ignore-case', { detail: { state: [{ 'equals-ignore-case': 'TERMINATED' }] } }, true],
  ['wildcard', { detail: { location: [{ wildcard: 'eu-*-1' }] } }, true],
  ['wildcard, no match', { detail: { location: [{ wildcard: 'us-*' }] } }, false],
  ['cidr', { detail: { 'source-ip': [{ cidr: '10.0.0.0/24' }] } }, true],
  ['cidr, no match', { detail: { 'source-ip': [{ cidr: '10.0.1.0/24' }] } }, false],
  ['$or', { $or: [{ source: ['aws.s3'] }, { detail: { 'c-count': [{ numeric: ['>', 4] }] } }] }, true],
  ['$or, no branch', { $or: [{ source: ['aws.s3'] }, { detail: { state: ['running'] } }] }, false],
  ['several fields: all must match', { source: ['aws.ec2'], detail: { state: ['running'] } }, false],
  ['missing field', { detail: { absent: ['x'] } }, false],
];

test.each(cases)('%s', (_name, pattern, expected) => {
  validatePattern(pattern);
  expect(matchesPattern(pattern, event)).toBe(expected);
});

test('the same answers as moto\'s EventPattern (differential oracle)', () => {
  const script = `
import json, sys
from moto.events.models import EventPattern
data = json.load(sys.stdin)
print(json.dumps([EventPattern(json.dumps(p), json.loads(json.dumps(p))).matches_event(data["event"]) for p in data["patterns"]]))
`;
  const run = spawnSync('python3', ['-c', script], { input: JSON.stringify({ event, patterns: cases.map((c) => c[1]) }), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`moto (python3) could not run: ${run.stderr}`);
  const oracle = JSON.parse(run.stdout) as boolean[];
  const ours = cases.map(([, pattern]) => matchesPattern(pattern, event));
  const disagreements = cases.flatMap(([name], i) => (oracle[i] === ours[i] ? [] : [`${name}: moto ${oracle[i]}, ours ${ours[i]}`]));
  expect(disagreements).toEqual([]);
});

test('an operator it does not implement is refused with a clear error, never matched', () => {
  expect(() => validatePattern({ detail: { state: [{ bogus: 'x' }] } }, 'rule R')).toThrow(UnsupportedPatternError);
  expect(() => validatePattern({ detail: { state: [{ bogus: 'x' }] } }, 'rule R')).toThrow(/rule R\.detail\.state: unsupported operator \{"bogus":"x"\}/);
  expect(() => validatePattern({ source: 'aws.ec2' })).toThrow(/must be a list or an object/);
  expect(() => validatePattern({ $or: [{ source: ['a'] }] })).toThrow(/\$or needs a list of at least two/);
});
