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
      // A check that never settles (a request with no timeout of its own) must not outlive
      // the deadline: the wait ends then all the same.
      const v = await beforeDeadline(check(), deadline);
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

/** `value`, or a rejection once `deadline` (epoch ms) has passed. */
function beforeDeadline<T>(value: T | Promise<T>, deadline: number): Promise<T> {
  if (!(value instanceof Promise)) return Promise.resolve(value);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('the check itself did not answer before the deadline')),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([value, late]).finally(() => clearTimeout(timer));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
