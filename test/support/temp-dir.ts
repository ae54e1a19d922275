// Temporary directories of the tests and benchmarks: made where the PostgreSQL OS user can reach
// them, and removed at the latest when the process exits or is interrupted.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit } from '../../src/local-pair/exit-hook.js';

const removers = new Map<string, () => void>();

/** A fresh directory under the system's temp directory; rmDir() removes it earlier than the exit. */
export function makeDir(prefix = 'pgk-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755); // the postgres OS user must reach the data directories inside
  removers.set(
    dir,
    onExit(() => rmSync(dir, { recursive: true, force: true })),
  );
  return dir;
}

/** Removes a directory made by makeDir(). */
export function rmDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  removers.get(dir)?.();
  removers.delete(dir);
}
