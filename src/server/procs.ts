// The processes of a PostgreSQL server known only by its data directory: for the pair's own
// teardown, for `pg-keeper demo kill` (second terminal) and for cleaning up after a demo whose
// process was killed. Linux only (/proc).
//
// A server's processes are its postmaster (from postmaster.pid, checked to be a `postgres` process whose
// working directory is the data directory, so a reused pid does not count), the postmaster's children,
// and orphaned `postgres` processes working in the data directory (a postmaster killed on its own leaves
// its children behind). Nothing is ever signalled by name.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { sleep, sleepSync } from '../util/wait.js';
import { isProcessAlive, listPids, readProcCwd, readProcStat, trySignal } from '../util/procfs.js';

function realDir(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** The lines of the data directory's postmaster.pid, or null when there is none. */
export function pidFileLines(dataDir: string): string[] | null {
  try {
    return fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
}

/** The live postmaster of the server in `dataDir` (a stale postmaster.pid or a reused pid does not count). */
export function postmasterPid(dataDir: string): number | null {
  const pid = Number(pidFileLines(dataDir)?.[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (!isProcessAlive(pid) || readProcStat(pid)?.comm !== 'postgres') return null;
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
    if (killRound(dataDir, signalled)) return [...signalled];
    if (Date.now() > deadline) throw survivors(dataDir);
    await sleep(10);
  }
}

/** killServer for exit handlers, where nothing asynchronous runs any more. Best effort: never throws. */
export function killServerSync(dataDir: string, timeoutMs = 2000): void {
  const deadline = Date.now() + timeoutMs;
  try {
    while (!killRound(dataDir, new Set()) && Date.now() <= deadline) sleepSync(10);
  } catch {
    // the process is exiting: nothing more can be done
  }
}

/** One SIGKILL to each process of the server; true when there was none left to signal. */
function killRound(dataDir: string, signalled: Set<number>): boolean {
  const pids = serverPids(dataDir);
  for (const pid of pids) if (trySignal(pid, 'SIGKILL')) signalled.add(pid);
  return pids.length === 0;
}

function survivors(dataDir: string): Error {
  return new Error(`processes ${serverPids(dataDir).join(' ')} of the server in ${dataDir} survived SIGKILL`);
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
 * PostgreSQL treats its lock files as stale only when the pid in them no longer exists. A
 * SIGKILLed postmaster is reparented to init, and where init does not reap (some containers
 * and sandboxes) it stays a zombie for ever, so the server could never start again. When no
 * process of the server is alive, the locks are stale: release the shared memory they name,
 * and remove postmaster.pid and the socket's lock file (in `socketDir`, or the one
 * postmaster.pid names). Returns what it removed, for the log.
 */
export function clearStaleLocks(dataDir: string, socketDir?: string, port?: number): string[] {
  if (serverPids(dataDir).length > 0) return [];
  const removed: string[] = [];
  const lines = pidFileLines(dataDir);
  if (lines) {
    releaseStaleSharedMemory(dataDir);
    fs.rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
    removed.push(`postmaster.pid (pid ${lines[0]} is gone)`);
  }
  // The socket lock file names the same pid and is refused the same way; it outlives a data
  // directory that a rebuild deleted, so it is checked on its own.
  const dir = socketDir ?? lines?.[4]?.trim();
  const p = Number(lines?.[3]) || port;
  if (dir && p) {
    const lock = path.join(dir, `.s.PGSQL.${p}.lock`);
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(lock, 'utf8').split('\n')[0]);
    } catch {
      // no lock file
    }
    if (Number.isInteger(owner) && owner > 0 && !isProcessAlive(owner)) {
      fs.rmSync(lock, { force: true });
      removed.push(path.basename(lock));
    }
  }
  return removed;
}
