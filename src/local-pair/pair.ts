// A real PostgreSQL pair on loopback: node1 primary, node2 its synchronous standby. What
// `pg-keeper demo` runs, and what the end-to-end tests and benchmarks build on (their extra
// moves, such as freezing a node or rebuilding one, are in test/support/test-pair.ts).
//
// It has no test-framework dependency, prints nothing unless given `log`, and runs every program with
// an argument array (never a shell string).
//
//   const pair = await PgPair.create({ baseDir: await fsp.mkdtemp(path.join(os.tmpdir(), 'pgk-')) });
//   try { await pair.query(pair.node1, 'select 1'); } finally { await pair.destroy(); }
//
// Layout under baseDir (keep it short: the unix socket path must fit in 107 bytes):
//   <baseDir>/node1/            the node's own directory, also its unix socket directory
//   <baseDir>/node1/data/       PGDATA
//   <baseDir>/node1/postgres.log
//
// PostgreSQL refuses to run as root. When this process is root, initdb, pg_ctl and pg_basebackup run as
// the OS user `postgres` (PairOptions.osUser), and baseDir is chowned to it; otherwise they run as the
// current user. Servers listen on 127.0.0.1 only, on ports picked by freePort().
//
// Processes of a server are found by pid only (server-procs.ts). Nothing is ever signalled by name.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { NodeName } from '../config/config.js';
import { errorText } from '../util/errors.js';
import { waitFor } from '../util/wait.js';
import { CommandError, lookupUser, run } from './command.js';
import { onExit } from './exit-hook.js';
import { freePort } from './free-port.js';
import { findPgBin } from './pg-bin.js';
import { trySignal } from '../util/procfs.js';
import { queryOnce, type ConnTarget } from './query.js';
import {
  clearStaleLocks,
  killServer,
  killServerSync,
  postmasterPid,
  releaseStaleSharedMemory,
  serverPids,
} from '../server/procs.js';

export interface PgNode {
  readonly name: NodeName;
  /** The node's own directory: holds dataDir and logFile, and is its unix socket directory. */
  readonly dir: string;
  readonly dataDir: string;
  /** TCP port on 127.0.0.1. Picked at creation; fixed afterwards (also across a rebuild). */
  port: number;
  readonly logFile: string;
}

export interface PairOptions {
  /** Created if missing; must be empty. Removed by destroy(). Use a short path, e.g. under os.tmpdir(). */
  baseDir: string;
  /** Password of the superuser `postgres` (default: random). */
  superPassword?: string;
  /** Directory holding initdb, pg_ctl, pg_basebackup, postgres (default: findPgBin()). */
  pgBin?: string;
  /** Progress messages; nothing is printed without it. */
  log?: (msg: string) => void;
  /** postgresql.conf settings applied last, on both nodes. Values are quoted for you: { wal_receiver_timeout: '5s' }. */
  extraConf?: Record<string, string>;
  /** OS user that runs PostgreSQL when this process is root (default `postgres`). Ignored when not root. */
  osUser?: string;
}

export interface QueryOptions {
  /** Overall limit for connecting and running the query (default 5000 ms). */
  timeoutMs?: number;
}

/** What create() found out before building the pair: only create() makes one. */
export interface PairInit {
  baseDir: string;
  pgBin: string;
  password: string;
  /** uid/gid PostgreSQL runs as when we are root; null when we are not root. */
  runAs: { uid: number; gid: number } | null;
  opts: PairOptions;
}

const CONF_MARKER = '# ---- pg-keeper demo pair: generated, everything below this line is rewritten ----';
const SOCKET_NAME_MAX = '/.s.PGSQL.65535'.length;
const SUN_PATH_MAX = 107;

function quoteConfValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function quoteConninfoValue(value: string): string {
  if (value !== '' && !/[\s'\\]/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function buildConninfo(params: Record<string, string | number>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${quoteConninfoValue(String(v))}`)
    .join(' ');
}

/**
 * A primary (node1) and a synchronous standby (node2) on 127.0.0.1. Create with PgPair.create(); always
 * call destroy() (an exit hook kills the servers if the process exits without it, but that cannot run
 * when Node itself is killed).
 */
export class PgPair {
  readonly node1: PgNode;
  readonly node2: PgNode;
  /** Password of the superuser `postgres`. */
  readonly password: string;
  readonly baseDir: string;
  readonly pgBin: string;

  protected readonly log: (msg: string) => void;
  readonly #extraConf: Record<string, string>;
  readonly #runAs: { uid: number; gid: number } | null;
  readonly #abort = new AbortController();
  #destroying: Promise<void> | null = null;
  #removeExitHook: () => void = () => {};

  /** Use create(), which checks the environment and builds the servers. */
  constructor(init: PairInit) {
    this.baseDir = init.baseDir;
    this.pgBin = init.pgBin;
    this.password = init.password;
    this.#runAs = init.runAs;
    this.log = init.opts.log ?? (() => {});
    this.#extraConf = { ...init.opts.extraConf };
    const mk = (name: NodeName): PgNode => {
      const dir = path.join(init.baseDir, name);
      return { name, dir, dataDir: path.join(dir, 'data'), port: 0, logFile: path.join(dir, 'postgres.log') };
    };
    this.node1 = mk('node1');
    this.node2 = mk('node2');
  }

  /**
   * initdb node1, configure and start it; pg_basebackup node2 from it with -R (application_name=node2),
   * start node2; resolves once node1's pg_stat_replication shows node2 streaming and 'sync'.
   * On failure everything it started is torn down and baseDir removed before it rejects.
   * Called on a subclass, it makes one of the subclass.
   */
  static async create<P extends PgPair>(this: new (init: PairInit) => P, opts: PairOptions): Promise<P> {
    const t0 = Date.now();
    const pgBin = opts.pgBin ?? findPgBin();
    if (!pgBin) throw new Error('PostgreSQL binaries not found: set PG_BIN or install postgresql');
    for (const prog of ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres']) {
      if (!fs.existsSync(path.join(pgBin, prog))) throw new Error(`${prog} not found in ${pgBin}`);
    }
    for (const key of Object.keys(opts.extraConf ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key))
        throw new Error(`invalid postgresql.conf setting name: ${key}`);
    }
    const baseDir = path.resolve(opts.baseDir);
    const longest = Buffer.byteLength(path.join(baseDir, 'node1')) + SOCKET_NAME_MAX;
    if (longest > SUN_PATH_MAX) {
      throw new Error(
        `baseDir ${baseDir} is too long: unix socket paths are limited to ${SUN_PATH_MAX} bytes; use a short directory under os.tmpdir()`,
      );
    }

    let runAs: { uid: number; gid: number } | null = null;
    if (process.getuid?.() === 0) {
      const user = opts.osUser ?? 'postgres';
      try {
        runAs = await lookupUser(user);
      } catch (err) {
        throw new Error(
          `running as root, so PostgreSQL must run as OS user ${user}, which cannot be resolved: ${errorText(err)}`,
          { cause: err },
        );
      }
    }

    await fsp.mkdir(baseDir, { recursive: true, mode: 0o700 });
    const existing = await fsp.readdir(baseDir);
    if (existing.length > 0) throw new Error(`baseDir ${baseDir} is not empty`);

    const password = opts.superPassword ?? crypto.randomBytes(24).toString('base64url');
    const pair = new this({ baseDir, pgBin, password, runAs, opts });
    pair.#removeExitHook = onExit(() => pair.emergencyStop());
    try {
      await pair.#init();
      pair.log(
        `pair ready in ${Date.now() - t0} ms: node1 :${pair.node1.port} primary, node2 :${pair.node2.port} sync standby`,
      );
      return pair;
    } catch (err) {
      await pair.destroy();
      throw err;
    }
  }

  async #init(): Promise<void> {
    const { node1, node2 } = this;
    await this.#chown(this.baseDir);
    if (this.#runAs) {
      try {
        await run('test', ['-w', this.baseDir, '-a', '-x', this.baseDir], { ...this.#runAs, cwd: '/' });
      } catch (err) {
        throw new Error(
          `baseDir ${this.baseDir} is not usable by the OS user PostgreSQL runs as: every parent directory must be searchable by it (use a directory under os.tmpdir())`,
          { cause: err },
        );
      }
    }
    for (const node of [node1, node2]) {
      await fsp.mkdir(node.dir, { mode: 0o700 });
      await this.#chown(node.dir);
    }
    node1.port = await freePort();
    do node2.port = await freePort();
    while (node2.port === node1.port);

    // initdb; the password goes through a file readable only by its owner, deleted right after.
    let t = Date.now();
    const pwfile = path.join(this.baseDir, '.pwfile');
    await fsp.writeFile(pwfile, `${this.password}\n`, { mode: 0o600 });
    await this.#chown(pwfile);
    try {
      await this.runPg('initdb', [
        '-D',
        node1.dataDir,
        '-U',
        'postgres',
        `--pwfile=${pwfile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ]);
    } finally {
      await fsp.rm(pwfile, { force: true });
    }
    await this.#writeFile(
      path.join(node1.dataDir, 'pg_hba.conf'),
      [
        '# generated by pg-keeper demo pair',
        '# TYPE  DATABASE     USER  ADDRESS       METHOD',
        'local   all          all                 trust',
        'local   replication  all                 trust',
        'host    all          all   127.0.0.1/32  scram-sha-256',
        'host    replication  all   127.0.0.1/32  scram-sha-256',
        '',
      ].join('\n'),
    );
    await this.writeConf(node1);
    this.log(`node1: initdb in ${Date.now() - t} ms`);

    t = Date.now();
    await this.#startPickingPort(node1);
    this.log(`node1: started on port ${node1.port} in ${Date.now() - t} ms`);

    t = Date.now();
    await this.basebackup(node2, node1);
    await this.writeConf(node2);
    this.log(`node2: pg_basebackup in ${Date.now() - t} ms`);

    t = Date.now();
    await this.#startPickingPort(node2);
    await this.waitForSync(node2, node1);
    this.log(`node2: started on port ${node2.port} and sync in ${Date.now() - t} ms`);
  }

  /** libpq keyword/value connection string for a node, e.g. for the keeper's config or psql. `extra` wins. */
  conninfo(node: PgNode, extra: Record<string, string> = {}): string {
    return buildConninfo({
      host: '127.0.0.1',
      port: node.port,
      dbname: 'postgres',
      user: 'postgres',
      password: this.password,
      ...extra,
    });
  }

  /** Connection parameters of a node for queryOnce / pg.Client. */
  target(node: PgNode): ConnTarget {
    return {
      host: '127.0.0.1',
      port: node.port,
      user: 'postgres',
      password: this.password,
      database: 'postgres',
    };
  }

  /**
   * pg_ctl start -w (waits until it accepts connections, at most 30 s). A postmaster.pid left by a
   * killed server is removed first when none of its processes is alive (see #clearStaleLock).
   */
  async start(node: PgNode): Promise<void> {
    this.assertUsable();
    this.#clearStaleLock(node);
    await this.runPg('pg_ctl', ['-D', node.dataDir, '-l', node.logFile, '-w', '-t', '30', 'start'], {
      node,
      timeoutMs: 40_000,
    });
  }

  /**
   * Every live process of the node's server, postmaster first: the postmaster from postmaster.pid, its
   * children by ppid, and orphaned `postgres` processes whose working directory is the data directory.
   * Zombies count as gone. Empty when the server is not running.
   */
  pids(node: PgNode): number[] {
    return serverPids(node.dataDir);
  }

  /** Resolves once `primary`'s pg_stat_replication lists `standby` (by application_name) streaming and sync. */
  async waitForSync(standby: PgNode, primary: PgNode, timeoutMs = 30_000): Promise<void> {
    let last = 'not listed';
    try {
      await waitFor(
        async () => {
          try {
            const rows = await this.query<{ state: string; sync_state: string }>(
              primary,
              'select state, sync_state from pg_stat_replication where application_name = $1',
              [standby.name],
              { timeoutMs: 2000 },
            );
            const row = rows[0];
            last = row ? `state=${row.state} sync_state=${row.sync_state}` : 'not listed';
            return row?.state === 'streaming' && row.sync_state === 'sync';
          } catch (err) {
            last = `query failed: ${errorText(err)}`;
            return false;
          }
        },
        `${standby.name} to stream synchronously from ${primary.name}`,
        timeoutMs,
        20,
      );
    } catch (err) {
      throw new Error(
        `${errorText(err)} (last seen: ${last})${await this.logTailSection(standby)}${await this.logTailSection(primary)}`,
        { cause: err },
      );
    }
  }

  /** One query on a node over TCP as `postgres`, on a short-lived connection that is always closed. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    node: PgNode,
    sql: string,
    params: unknown[] = [],
    opts: QueryOptions = {},
  ): Promise<R[]> {
    return queryOnce<R>(this.target(node), sql, params, opts.timeoutMs ?? 5000);
  }

  /**
   * Tears everything down: SIGCONT anything stopped, pg_ctl stop -m immediate, SIGKILL leftovers by pid,
   * remove leaked shared memory, remove baseDir. Idempotent and never throws (problems go to `log`).
   */
  destroy(): Promise<void> {
    this.#destroying ??= this.#destroy();
    return this.#destroying;
  }

  async #destroy(): Promise<void> {
    this.#abort.abort(); // kills an initdb / pg_basebackup / pg_ctl still running
    for (const node of [this.node1, this.node2]) {
      const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          this.log(`destroy ${node.name}: ${what}: ${errorText(err)}`);
        }
      };
      // A frozen server (SIGSTOP) could not stop.
      await step('SIGCONT', async () => {
        for (const pid of this.pids(node)) trySignal(pid, 'SIGCONT');
      });
      if (postmasterPid(node.dataDir) !== null) {
        await step('pg_ctl stop', () =>
          this.runPg('pg_ctl', ['-D', node.dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop'], {
            timeoutMs: 15_000,
            abortable: false,
          }),
        );
      }
      await step('SIGKILL', () => killServer(node.dataDir));
      await step('shared memory', async () => releaseStaleSharedMemory(node.dataDir));
    }
    try {
      await fsp.rm(this.baseDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch (err) {
      this.log(`destroy: removing ${this.baseDir}: ${errorText(err)}`);
    }
    this.#removeExitHook();
  }

  /**
   * Synchronous, best-effort teardown for exit handlers: SIGKILL every server process, remove leaked
   * shared memory and baseDir. Prefer destroy().
   */
  emergencyStop(): void {
    this.#removeExitHook();
    try {
      this.#abort.abort();
      for (const node of [this.node1, this.node2]) {
        killServerSync(node.dataDir);
        releaseStaleSharedMemory(node.dataDir);
      }
      fs.rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort: the process is exiting anyway
    }
  }

  // ---- for subclasses (test/support/test-pair.ts) ----

  protected assertUsable(): void {
    if (this.#destroying) throw new Error('this PgPair has been destroyed');
  }

  /** Runs a PostgreSQL program (as the PostgreSQL OS user when root); errors carry stderr and the log tail. */
  protected async runPg(
    prog: string,
    args: string[],
    opts: { node?: PgNode; env?: Record<string, string>; timeoutMs?: number; abortable?: boolean } = {},
  ): Promise<void> {
    try {
      await run(path.join(this.pgBin, prog), args, {
        cwd: this.baseDir,
        env: this.#env(opts.env),
        ...(this.#runAs ?? {}),
        timeoutMs: opts.timeoutMs ?? 120_000,
        signal: opts.abortable === false ? undefined : this.#abort.signal,
      });
    } catch (err) {
      const msg = err instanceof CommandError ? err.message : String(err);
      throw new Error(`${msg}${opts.node ? await this.logTailSection(opts.node) : ''}`, { cause: err });
    }
  }

  /** A new data directory for `node`, copied from `from` with -R: a standby of it named after the node. */
  protected async basebackup(node: PgNode, from: PgNode): Promise<void> {
    // The password reaches pg_basebackup through PGPASSWORD only; -R writes it, with application_name,
    // into the new standby's primary_conninfo (postgresql.auto.conf, mode 0600).
    const source = buildConninfo({
      host: '127.0.0.1',
      port: from.port,
      user: 'postgres',
      application_name: node.name,
    });
    await this.runPg(
      'pg_basebackup',
      ['-D', node.dataDir, '-d', source, '-R', '-X', 'stream', '-c', 'fast', '--no-sync', '-w'],
      { node: from, env: { PGPASSWORD: this.password }, timeoutMs: 120_000 },
    );
  }

  /** Rewrites the generated block at the end of the node's postgresql.conf (a base backup copies the other node's). */
  protected async writeConf(node: PgNode): Promise<void> {
    const file = path.join(node.dataDir, 'postgresql.conf');
    const current = await fsp.readFile(file, 'utf8');
    const markerAt = current.indexOf(CONF_MARKER);
    let head = markerAt >= 0 ? current.slice(0, markerAt) : current;
    if (!head.endsWith('\n')) head += '\n';
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      port: String(node.port),
      unix_socket_directories: node.dir,
      wal_level: 'replica',
      max_wal_senders: '5',
      hot_standby: 'on',
      synchronous_standby_names: '*',
      // fsync=off: test and demo speed only. A crash of the OS (not of PostgreSQL) could corrupt data.
      fsync: 'off',
      logging_collector: 'off',
      log_line_prefix: '%m [%p] %q%a ',
      shared_buffers: '16MB',
      max_connections: '30',
      ...this.#extraConf,
    };
    const block = Object.entries(settings)
      .map(([k, v]) => `${k} = ${quoteConfValue(v)}`)
      .join('\n');
    await this.#writeFile(file, `${head}${CONF_MARKER}\n${block}\n`);
  }

  /** The last lines of a node's server log, as a section to append to an error message. */
  protected async logTailSection(node: PgNode, lines = 25): Promise<string> {
    const text = await readFrom(node.logFile, 0);
    const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
    return tail ? `\n--- last lines of ${node.logFile} ---\n${tail}` : '';
  }

  // ---- internals ----

  /** The environment for PostgreSQL programs: ours without PG* variables (PGHOST etc. must not leak in). */
  #env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
    // As root, HOME is root's; libpq would look for ~/.pgpass there as another user.
    if (this.#runAs) env.HOME = this.baseDir;
    return { ...env, ...extra };
  }

  /** Starts a freshly created node; if its port was taken meanwhile, picks another and retries. */
  async #startPickingPort(node: PgNode): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const logStart = await fsp.stat(node.logFile).then(
        (s) => s.size,
        () => 0,
      );
      try {
        await this.start(node);
        return;
      } catch (err) {
        const log = await readFrom(node.logFile, logStart);
        if (attempt >= 3 || !/could not bind|Address already in use/i.test(log)) throw err;
        const other = node === this.node1 ? this.node2 : this.node1;
        do node.port = await freePort();
        while (node.port === other.port);
        this.log(`${node.name}: port taken, retrying on ${node.port}`);
        await this.writeConf(node);
      }
    }
  }

  async #writeFile(file: string, content: string): Promise<void> {
    await fsp.writeFile(file, content, { mode: 0o600 });
    await this.#chown(file);
  }

  async #chown(p: string): Promise<void> {
    if (this.#runAs) await fsp.chown(p, this.#runAs.uid, this.#runAs.gid);
  }

  /** A killed server's lock files, removed when none of its processes is alive (server/procs.ts). */
  #clearStaleLock(node: PgNode): void {
    for (const what of clearStaleLocks(node.dataDir, node.dir, node.port))
      this.log(`${node.name}: removed stale ${what}`);
  }
}

/** The end of a file from `offset` on (at most its last 64 KB); '' when it cannot be read. */
async function readFrom(file: string, offset: number): Promise<string> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(offset, size - 64 * 1024);
      const buf = Buffer.alloc(Math.max(0, size - start));
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}
