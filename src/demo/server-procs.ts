// The processes of a PostgreSQL server known only by its data directory, and of other programs known
// only by a pid written down earlier: for `pg-keeper demo kill` (second terminal) and for cleaning up
// after a demo whose process was killed. Linux only (/proc).
//
// A server's processes are its postmaster (from postmaster.pid, checked to be a `postgres` process whose
// working directory is the data directory, so a reused pid does not count), the postmaster's children,
// and orphaned `postgres` processes working in the data directory (a postmaster killed on its own leaves
// its children behind). Nothing is ever signalled by name.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { listPids, readProcCwd, readProcStat, sleep, trySignal } from './proc.js';

function realDir(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

function pidFileLines(dataDir: string): string[] | null {
  try {
    return fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
}

const alive = (pid: number): boolean => {
  const st = readProcStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
};

/** The live postmaster of the server in `dataDir` (a stale postmaster.pid or a reused pid does not count). */
export function postmasterPid(dataDir: string): number | null {
  const pid = Number(pidFileLines(dataDir)?.[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const st = readProcStat(pid);
  if (!st || !alive(pid) || st.comm !== 'postgres') return null;
  return readProcCwd(pid) === realDir(dataDir) ? pid : null;
}

/** Every live process of the server whose data directory is `dataDir`, postmaster first; [] when none. */
export function serverPids(dataDir: string): number[] {
  const dir = realDir(dataDir);
  const postmaster = postmasterPid(dataDir);
  const found: number[] = [];
  for (const pid of listPids()) {
    if (pid === postmaster) continue;
    const st = readProcStat(pid);
    if (!st || st.state === 'Z' || st.state === 'X') continue;
    const child = postmaster !== null && st.ppid === postmaster;
    if (child || (st.comm === 'postgres' && readProcCwd(pid) === dir)) found.push(pid);
  }
  return postmaster !== null ? [postmaster, ...found] : found;
}

/**
 * SIGKILLs every process of the server (rescanning for anything forked meanwhile) until none is left.
 * Returns the pids it signalled; rejects when some survive `timeoutMs`.
 */
export async function killServer(dataDir: string, timeoutMs = 10_000): Promise<number[]> {
  const signalled = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = serverPids(dataDir);
    if (pids.length === 0) return [...signalled];
    if (Date.now() > deadline) {
      throw new Error(`processes ${pids.join(' ')} of the server in ${dataDir} survived SIGKILL`);
    }
    for (const pid of pids) if (trySignal(pid, 'SIGKILL')) signalled.add(pid);
    await sleep(10);
  }
}

/**
 * A server killed with SIGKILL leaves its SysV shared memory segment behind. PostgreSQL reclaims it on
 * the next start in the same data directory, but not once the directory is deleted: release it here
 * when no process is attached. Returns whether a segment was removed.
 */
export function releaseStaleSharedMemory(dataDir: string): boolean {
  if (serverPids(dataDir).length > 0) return false;
  const [key, id] = (pidFileLines(dataDir)?.[6] ?? '').trim().split(/\s+/).map(Number);
  if (key === undefined || id === undefined || !Number.isInteger(key) || !Number.isInteger(id)) return false;
  let table: string;
  try {
    table = fs.readFileSync('/proc/sysvipc/shm', 'utf8');
  } catch {
    return false;
  }
  for (const line of table.split('\n').slice(1)) {
    // columns: key shmid perms size cpid lpid nattch ...
    const f = line.trim().split(/\s+/).map(Number);
    if (f[0] === key && f[1] === id && f[6] === 0) {
      return spawnSync('ipcrm', ['-m', String(id)], { stdio: 'ignore' }).status === 0;
    }
  }
  return false;
}

/**
 * When the process started (clock ticks since boot, /proc/<pid>/stat field 22), or null when it is gone.
 * A pid and its start time name one process for good: a pid alone may be reused.
 */
export function processStartTime(pid: number): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after "(comm)" start at field 3 (state); starttime is field 22.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : null;
}

/** True while the process that had `pid` and `startTime` still runs (not a zombie, not a reused pid). */
export function isSameProcessAlive(pid: number, startTime: number | null): boolean {
  if (!alive(pid)) return false;
  return startTime === null || processStartTime(pid) === startTime;
}

/** SIGKILLs a process recorded earlier, if it is still that process. Returns whether it was signalled. */
export function killRecorded(pid: number, startTime: number | null): boolean {
  return isSameProcessAlive(pid, startTime) && trySignal(pid, 'SIGKILL');
}
