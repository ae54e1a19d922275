// Other processes, seen through /proc (Linux only): the one parser of /proc/<pid>/stat, and
// the one test of whether a process is alive. Processes are always known by pid; nothing is
// ever looked up or signalled by name.
import fs from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, T (stopped), t (traced), Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  /** Process group id. */
  pgrp: number;
  /** CPU time in user and in kernel mode, in clock ticks (`getconf CLK_TCK` of them a second). */
  utime: number;
  stime: number;
  /** Clock ticks since boot when it started: with the pid, it names one process for good. */
  startTime: number;
}

/** Parses /proc/<pid>/stat (fields as in proc(5)); null when the process does not exist (any more). */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp ...": comm may itself contain spaces and parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // rest[0] is field 3 (state), so field N of proc(5) is rest[N - 3].
  const rest = text.slice(close + 2).split(' ');
  const field = (n: number): number => Number(rest[n - 3]);
  const state = rest[0];
  const ppid = field(4);
  if (!state || !Number.isInteger(ppid)) return null;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    ppid,
    pgrp: field(5),
    utime: field(14),
    stime: field(15),
    startTime: field(22),
  };
}

/** Every pid currently in /proc. */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(name)) pids.push(Number(name));
  }
  return pids;
}

/** The working directory of a process, or null when it is gone or not ours to look at. */
export function readProcCwd(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** The arguments a process was started with, or null when it is gone. */
export function readProcCmdline(pid: number): string[] | null {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return null;
  }
}

/** True when the process exists and is not a zombie (a zombie has exited; only its parent has not reaped it). */
export function isProcessAlive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/** process.kill that ignores "no such process"; returns whether the signal was sent. */
export function trySignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** When the process started (see ProcStat.startTime), or null when it is gone. */
export function processStartTime(pid: number): number | null {
  const start = readProcStat(pid)?.startTime;
  return start !== undefined && Number.isFinite(start) ? start : null;
}

/** True while the process that had `pid` and `startTime` still runs (not a zombie, not a reused pid). */
export function isSameProcessAlive(pid: number, startTime: number | null): boolean {
  if (!isProcessAlive(pid)) return false;
  return startTime === null || processStartTime(pid) === startTime;
}

/** SIGKILLs a process recorded earlier, if it is still that process. Returns whether it was signalled. */
export function killRecorded(pid: number, startTime: number | null): boolean {
  return isSameProcessAlive(pid, startTime) && trySignal(pid, 'SIGKILL');
}
