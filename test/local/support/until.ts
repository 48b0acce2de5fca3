/** Repeats `probe` every `intervalMs` until `ready` holds or `timeoutMs` has passed; returns the last value (the caller asserts on it). */
export async function until<T>(probe: () => Promise<T>, ready: (value: T) => boolean, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ready(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    last = await probe();
  }
  return last;
}
