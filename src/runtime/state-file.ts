// What the keeper must not forget across a restart: that it saw the primary, whether it
// was the synchronous standby then, what synchronous_standby_names to restore, and when
// each of its actions last succeeded. Written atomically (temporary file, fsync, rename)
// and only on change.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LOCAL_ACTION_KINDS, type KeeperState, type LocalActionKind } from '../policy/types.js';
import type { Logger } from 'pino';
import { errnoCode, errorText } from '../util/errors.js';

export type Remembered = Pick<
  KeeperState,
  'primarySeenAt' | 'syncAtLastContact' | 'savedSyncNames' | 'done' | 'syncBarrierLsn' | 'mayHaveAckedAlone'
>;

/** primarySeenAt is refreshed in the file at most this often: it only needs to be non-null and recent. */
const SEEN_PERSIST_MS = 60_000;

export function remembered(s: KeeperState): Remembered {
  return {
    primarySeenAt: s.primarySeenAt,
    syncAtLastContact: s.syncAtLastContact,
    savedSyncNames: s.savedSyncNames,
    done: s.done,
    syncBarrierLsn: s.syncBarrierLsn,
    mayHaveAckedAlone: s.mayHaveAckedAlone,
  };
}

/** Whether `next` differs from what the file holds in a way worth a write (an fsync per tick is not). */
export function worthWriting(prev: Remembered | null, next: Remembered): boolean {
  return (
    prev === null ||
    prev.syncAtLastContact !== next.syncAtLastContact ||
    prev.savedSyncNames !== next.savedSyncNames ||
    prev.syncBarrierLsn !== next.syncBarrierLsn ||
    prev.mayHaveAckedAlone !== next.mayHaveAckedAlone ||
    JSON.stringify(prev.done) !== JSON.stringify(next.done) ||
    (prev.primarySeenAt === null) !== (next.primarySeenAt === null) ||
    (next.primarySeenAt ?? 0) - (prev.primarySeenAt ?? 0) >= SEEN_PERSIST_MS
  );
}

/** Reads the state file; a missing file is a fresh start, a corrupt one an error to report. */
export function readStateFile(file: string): Remembered | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
  const v = JSON.parse(text) as {
    version?: number;
    primarySeenAt?: unknown;
    syncAtLastContact?: unknown;
    savedSyncNames?: unknown;
    done?: Record<string, unknown>;
    syncBarrierLsn?: unknown;
    mayHaveAckedAlone?: unknown;
    /** version 1 kept only the last action */
    lastAction?: { kind?: unknown; at?: unknown } | null;
  };
  if (v.version !== 1 && v.version !== 2)
    throw new Error(`${file}: unknown state file version ${String(v.version)}`);
  const done: Partial<Record<LocalActionKind, number>> = {};
  const given =
    v.version === 2 ? (v.done ?? {}) : v.lastAction ? { [String(v.lastAction.kind)]: v.lastAction.at } : {};
  for (const kind of LOCAL_ACTION_KINDS) {
    const at = given[kind];
    if (typeof at === 'number') done[kind] = at;
  }
  return {
    primarySeenAt: typeof v.primarySeenAt === 'number' ? v.primarySeenAt : null,
    syncAtLastContact: v.syncAtLastContact === true,
    savedSyncNames: typeof v.savedSyncNames === 'string' ? v.savedSyncNames : null,
    done,
    syncBarrierLsn: typeof v.syncBarrierLsn === 'string' ? v.syncBarrierLsn : null,
    mayHaveAckedAlone: typeof v.mayHaveAckedAlone === 'boolean' ? v.mayHaveAckedAlone : null,
  };
}

export function writeStateFile(file: string, state: Remembered): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify({ version: 2, ...state }, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** The state file as the keeper uses it: read once at start, written when worth it. */
export class StateStore {
  private written: Remembered | null = null;

  constructor(
    readonly file: string | null,
    private readonly log: Pick<Logger, 'info' | 'error'>,
  ) {}

  /** What the file remembers, or null (no file, a fresh start, or an unreadable file, reported). */
  load(): Remembered | null {
    if (this.file === null) return null;
    try {
      const saved = readStateFile(this.file);
      this.written = saved;
      if (saved) this.log.info({ event: 'state-restored', ...saved }, `state restored from ${this.file}`);
      return saved;
    } catch (err) {
      this.log.error(
        { event: 'state-unreadable', error: errorText(err) },
        `cannot read state file ${this.file}: starting fresh (guards start from "never saw the primary")`,
      );
      return null;
    }
  }

  save(state: KeeperState, force = false): void {
    if (this.file === null) return;
    const next = remembered(state);
    if (!force && !worthWriting(this.written, next)) return;
    try {
      writeStateFile(this.file, next);
      this.written = next;
    } catch (err) {
      this.log.error(
        { event: 'state-write-failed', error: errorText(err) },
        `cannot write state file: ${errorText(err)}`,
      );
    }
  }
}
