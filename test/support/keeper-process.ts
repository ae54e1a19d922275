// A real `pg-keeper run` process for end-to-end tests: the built CLI (dist/cli.js, as a
// user runs it), its JSON log lines captured, its HTTP answers polled with deadlines. A keeper
// is SIGKILLed by pid if the test process exits, or is interrupted, before it was stopped.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { NodeName } from '../../src/config/config.js';
import { keeperRequest, type ClientOptions } from '../../src/http/client.js';
import type { Status } from '../../src/http/status.js';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
/** The Node flags of the CLI's shebang line: a keeper under test runs as it does when deployed. */
export const KEEPER_NODE_FLAGS = ['--max-semi-space-size=1'];

export interface LogLine {
  level: number;
  event?: string;
  msg: string;
  [k: string]: unknown;
}

export interface KeeperOptions {
  dir: string;
  node: NodeName;
  node1: string;
  node2: string;
  settings?: Record<string, unknown>;
  /**
   * Run the keeper as this OS user (a keeper that manages its server runs as the data
   * directory's owner): through setpriv, which execs without a process in between, so that
   * a signal to the child's pid reaches the keeper itself. Its config and state files must be
   * readable and writable by that user.
   */
  osUser?: string;
  /** A keeper with a web_config_file: HTTPS or not, and the credentials status() and get() present. */
  http?: KeeperHttp;
}

export interface KeeperHttp extends ClientOptions {
  tls: boolean;
}

export class KeeperProcess {
  readonly lines: LogLine[] = [];
  /** Everything the process printed, raw, to look for leaked secrets. */
  raw = '';
  exitCode: number | null = null;
  private exited: Promise<number | null>;

  private constructor(
    readonly node: NodeName,
    readonly child: ChildProcess,
    readonly url: string,
    readonly configFile: string,
    readonly http: KeeperHttp | null = null,
  ) {
    let buf = '';
    const take = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      this.raw += text;
      buf += text;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line (a crash trace): kept in raw
        }
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', (c: Buffer) => (this.raw += c.toString('utf8')));
    const removeExitHook = onExit(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        removeExitHook();
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  static async start(o: KeeperOptions): Promise<KeeperProcess> {
    const port = await freePort();
    const configFile = join(o.dir, `keeper-${o.node}.yml`);
    writeFileSync(
      configFile,
      stringify({
        node1_conninfo: o.node1,
        node2_conninfo: o.node2,
        node: o.node,
        keepalive_time: 0.2,
        keepalive_count: 3,
        listen: `127.0.0.1:${port}`,
        state_file: join(o.dir, `${o.node}.state.json`),
        ...o.settings,
      }),
    );
    if (o.osUser) chownForUser(o.osUser, [configFile, o.dir]);
    const argv = [...KEEPER_NODE_FLAGS, CLI, 'run', '--config', configFile];
    const child = o.osUser
      ? spawn(
          'setpriv',
          [`--reuid=${o.osUser}`, `--regid=${o.osUser}`, '--init-groups', process.execPath, ...argv],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, PGPASSWORD: '', HOME: o.dir },
          },
        )
      : spawn(process.execPath, argv, {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, PGPASSWORD: '' },
        });
    const scheme = o.http?.tls ? 'https' : 'http';
    const k = new KeeperProcess(o.node, child, `${scheme}://127.0.0.1:${port}`, configFile, o.http ?? null);
    await waitFor(
      () => k.exitCode === null && k.lines.some((l) => l.event === 'listen'),
      `keeper ${o.node} to listen`,
      10_000,
    ).catch((err: Error) => {
      child.kill('SIGKILL');
      throw new Error(`${err.message}\n${k.raw}`);
    });
    return k;
  }

  async status(): Promise<Status> {
    const res = await this.get('/status');
    return (await res.json()) as Status;
  }

  /** fetch() on the keeper's port; through the test's client options when it has a web_config_file. */
  async get(path: string, init: RequestInit = {}): Promise<Response> {
    if (!this.http) return fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(2000), ...init });
    const method = init.method === 'POST' ? 'POST' : 'GET';
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    const r = await keeperRequest(new URL(this.url), path, this.http, method, 2000, headers);
    const answer = new Headers();
    for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string') answer.set(k, v);
    return new Response(r.text, { status: r.status, headers: answer });
  }

  events(name: string): LogLine[] {
    return this.lines.filter((l) => l.event === name);
  }

  /**
   * SIGTERM (or SIGINT, as Ctrl-C sends) and wait; SIGKILL if it takes longer than `graceMs`.
   * Returns the exit code and how long it took.
   */
  async stop(
    signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM',
    graceMs = 3000,
  ): Promise<{ code: number | null; ms: number }> {
    const started = Date.now();
    if (this.exitCode !== null) return { code: this.exitCode, ms: 0 };
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return { code, ms: Date.now() - started };
  }

  kill(): Promise<number | null> {
    if (this.exitCode === null) this.child.kill('SIGKILL');
    return this.exited;
  }
}

/** Gives an OS user the keeper's files (as root in tests): its config, and the directory for its state. */
/** `pg-keeper <args>` as the OS user postgres (setpriv, no process in between), as an operator runs it. */
export function cliAsPostgres(args: string[], timeoutMs = 180_000): { code: number | null; out: string } {
  const r = spawnSync(
    'setpriv',
    [
      '--reuid=postgres',
      '--regid=postgres',
      '--init-groups',
      process.execPath,
      ...KEEPER_NODE_FLAGS,
      CLI,
      ...args,
    ],
    { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, PGPASSWORD: '' } },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

export function chownForUser(user: string, paths: string[]): void {
  const r = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  const uid = Number(r.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`no OS user ${user}`);
  for (const p of paths) chownSync(p, uid, gid);
}
