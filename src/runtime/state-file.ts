// What the keeper must not forget across a restart: that it saw the primary, whether it
// was the synchronous standby then, what synchronous_standby_names to restore, and its
// last action. Written atomically (temporary file, fsync, rename) and only on change.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeeperState } from '../policy/types.js';

export type Remembered = Pick<
  KeeperState,
  'primarySeenAt' | 'syncAtLastContact' | 'savedSyncNames' | 'lastAction'
>;

export function remembered(s: KeeperState): Remembered {
  return {
    primarySeenAt: s.primarySeenAt,
    syncAtLastContact: s.syncAtLastContact,
    savedSyncNames: s.savedSyncNames,
    lastAction: s.lastAction,
  };
}

/** Reads the state file; a missing file is a fresh start, a corrupt one an error to report. */
export function readStateFile(file: string): Remembered | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const v = JSON.parse(text) as Partial<Remembered> & { version?: number };
  if (v.version !== 1) throw new Error(`${file}: unknown state file version ${String(v.version)}`);
  return {
    primarySeenAt: typeof v.primarySeenAt === 'number' ? v.primarySeenAt : null,
    syncAtLastContact: v.syncAtLastContact === true,
    savedSyncNames: typeof v.savedSyncNames === 'string' ? v.savedSyncNames : null,
    lastAction: v.lastAction ?? null,
  };
}

export function writeStateFile(file: string, state: Remembered): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify({ version: 1, ...state }, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
