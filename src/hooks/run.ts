// after_command and after_async_command: run through /bin/sh -c as pg_keeper did, but with
// a timeout, the event in environment variables, and the result reported instead of only
// logged. The keeper never waits for a hook inside its heartbeat loop.

import { spawn } from 'node:child_process';

export interface HookResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The tail of stdout and stderr, for the log. */
  output: string;
  /** Set when the command could not be started at all. */
  error?: string;
}

const OUTPUT_LIMIT = 16 * 1024;

export function runHook(
  command: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<HookResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that a timeout kills the command's children too.
      detached: true,
    });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2000).unref();
    }, timeoutMs);
    const done = (r: Omit<HookResult, 'durationMs' | 'output' | 'timedOut'>): void => {
      clearTimeout(timer);
      resolve({ ...r, timedOut, durationMs: performance.now() - started, output: output.trim() });
    };
    child.on('error', (err) => done({ exitCode: null, signal: null, error: err.message }));
    child.on('close', (code, signal) => done({ exitCode: code, signal }));
  });
}

export function hookSucceeded(r: HookResult): boolean {
  return !r.timedOut && r.error === undefined && r.exitCode === 0;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already exited
  }
}
