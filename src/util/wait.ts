// Waiting, the one way the project does it: for a condition, with a deadline, never a
// bare sleep that hopes. Used by the local pair, the demo, the tests and the benchmarks.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks the thread (for exit handlers, where nothing asynchronous runs any more). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Polls `check` until it returns a truthy value, and returns that value. A check that
 * throws is retried (a server not up yet), and its last error is named in the timeout's
 * message; but a failed assertion is rethrown at once: an `assert` inside a check must
 * fail the test, not be retried until the deadline hides it.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_ASSERTION') throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last === undefined ? '' : ` (last error: ${errorMessage(last)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
