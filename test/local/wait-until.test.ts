/**
 * SkafuLocal.waitUntil without a running pipeline: an immediate answer when the condition already holds, false at
 * the timeout, a timeout too long for a Node.js timer kept waiting (not answered at once), every pending wait
 * answered false by stop(), and a condition that throws at once rejects. Its checks on bus events and execution
 * ends are exercised end to end in skafu-local.e2e.test.ts.
 */
import { writeAssembly } from './support/assembly';
import { SkafuLocal } from '../../local/src/skafu-local';

const local = () => new SkafuLocal({ assembly: writeAssembly({ Stack: {} }), log: () => undefined });

test('true at once, false at the timeout, a throwing condition rejects', async () => {
  const l = local();
  await expect(l.waitUntil(() => true, 10)).resolves.toBe(true);
  const started = Date.now();
  await expect(l.waitUntil(() => false, 100)).resolves.toBe(false);
  expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  await expect(
    l.waitUntil(() => {
      throw new Error('no such read model');
    }),
  ).rejects.toThrow('no such read model');
});

test('stop() answers every pending wait false, one with an infinite timeout too (not answered before)', async () => {
  const l = local();
  const answers: boolean[] = [];
  const forever = l.waitUntil(() => false, Infinity).then((v) => answers.push(v));
  const long = l.waitUntil(() => false, 60_000).then((v) => answers.push(v));
  await new Promise((r) => setTimeout(r, 50));
  expect(answers).toEqual([]); // an infinite timeout is not a timer that fires at once
  await l.stop();
  await Promise.all([forever, long]);
  expect(answers).toEqual([false, false]);
});
