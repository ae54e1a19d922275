// Running a program of the local pair (initdb, pg_ctl, pg_basebackup, id): an argument array,
// never a shell string, and an error that says what ran and what it printed.
import { execFile } from 'node:child_process';

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

/** uid and primary gid of an OS user, through `id` (so NSS sources other than /etc/passwd work too). */
export async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  const uid = Number(u.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot resolve OS user ${name}`);
  return { uid, gid };
}
