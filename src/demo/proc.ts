// Small process helpers for the demo cluster: running a command with an argument array (never a
// shell string), and looking at other processes through /proc (Linux only).
import { execFile } from 'node:child_process';
import fs from 'node:fs';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this uid/gid (only possible when we are root); supplementary groups are dropped. */
  uid?: number;
  gid?: number;
  /** Kill the command with SIGKILL after this long (default: no limit). */
  timeoutMs?: number;
  /** Aborting kills the command with SIGKILL. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command that could not be started, exited non-zero, was killed or timed out. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs `command args...` without a shell; resolves with its output, rejects with a CommandError. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: opts.cwd,
        env: opts.env,
        uid: opts.uid,
        gid: opts.gid,
        timeout: opts.timeoutMs ?? 0,
        killSignal: 'SIGKILL',
        signal: opts.signal,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string | null };
        const exitCode = typeof e.code === 'number' ? e.code : null;
        let how: string;
        if (e.name === 'AbortError') how = 'was aborted';
        else if (e.killed && opts.timeoutMs) how = `timed out after ${opts.timeoutMs} ms`;
        else if (exitCode !== null) how = `exited with code ${exitCode}`;
        else if (e.signal) how = `was killed by ${e.signal}`;
        else how = `could not be run (${e.message})`;
        const detail = (stderr || stdout || '').trim();
        reject(
          new CommandError(
            `${command} ${args.join(' ')} ${how}${detail ? `:\n${detail}` : ''}`,
            command,
            args,
            exitCode,
            stdout ?? '',
            stderr ?? '',
          ),
        );
      },
    );
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks the thread (for exit handlers, where nothing asynchronous runs any more). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls `check` every `intervalMs` until it returns true; rejects after `timeoutMs` with `what` in the message. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(opts.intervalMs ?? 25);
  }
}

export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, T (stopped), t (traced), Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
}

/** Parses /proc/<pid>/stat; null when the process does not exist (any more). */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid ...": comm may itself contain spaces and parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(' ');
  const state = rest[0];
  const ppid = Number(rest[1]);
  if (!state || !Number.isInteger(ppid)) return null;
  return { pid, comm: text.slice(open + 1, close), state, ppid };
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

/** uid and primary gid of an OS user, through `id` (so NSS sources other than /etc/passwd work too). */
export async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  const uid = Number(u.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot resolve OS user ${name}`);
  return { uid, gid };
}
