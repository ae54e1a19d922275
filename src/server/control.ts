// The local server's processes and files: every pg_ctl, pg_controldata, pg_rewind and
// pg_basebackup the keeper runs, and the few files it writes in the data directory
// (standby.signal, primary_conninfo). Each step can be repeated after a crash half-way: a
// rejoin interrupted between two steps starts again from the first.
//
// The keeper runs as the data directory's owner (as PostgreSQL itself must); every program
// gets an argument array (never a shell string, except the operator's own start and stop
// commands), a deadline, and a password through PGPASSWORD, never on a command line.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errorText } from '../util/errors.js';
import { clearStaleLocks, postmasterPid } from './procs.js';

export interface ServerControlOptions {
  dataDir: string;
  /** null: found from the data directory's PG_VERSION, else pg_config. */
  binDir: string | null;
  startCommand: string | null;
  stopCommand: string | null;
}

/** What pg_controldata says, plus whether a postmaster runs. */
export interface ServerState {
  running: boolean;
  /** "in production", "shut down", "shut down in recovery", "in crash recovery", ... */
  clusterState: string;
  timeline: number | null;
  /** Latest checkpoint location (pg_lsn text): after a clean shutdown, the shutdown checkpoint. */
  checkpointLsn: string | null;
}

/** A connection for a program: libpq keywords without the password, and the password apart. */
export interface ProgramConninfo {
  conninfo: string;
  password: string | null;
}

/** The files that are this server's own, which pg_rewind and pg_basebackup would overwrite with the peer's. */
const OWN_CONFIG = ['postgresql.conf', 'pg_hba.conf', 'pg_ident.conf', 'postgresql.auto.conf'];

export class CommandFailed extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
    this.name = 'CommandFailed';
  }
}

export class ServerControl {
  readonly binDir: string;

  constructor(private readonly o: ServerControlOptions) {
    this.binDir = o.binDir ?? findBinDir(o.dataDir);
  }

  get dataDir(): string {
    return this.o.dataDir;
  }

  /** Where pg_ctl start sends the server's output when no start command is configured. */
  get logFile(): string {
    return join(dirname(this.o.dataDir), `${basename(this.o.dataDir)}.log`);
  }

  /** The keeper must run as the data directory's owner: PostgreSQL's programs insist on it. */
  ownerProblem(): string | null {
    const uid = process.getuid?.();
    if (uid === undefined) return null;
    const owner = statSync(this.o.dataDir).uid;
    return owner === uid
      ? null
      : `data_directory ${this.o.dataDir} belongs to uid ${owner}, and the keeper runs as uid ${uid}: ` +
          "run the keeper as the data directory's owner (the OS user postgres, as the systemd unit does)";
  }

  async state(timeoutMs = 10_000): Promise<ServerState> {
    const control = await this.run('pg_controldata', ['-D', this.o.dataDir], timeoutMs);
    const field = (name: string): string | null =>
      new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(control.stdout)?.[1]?.trim() ?? null;
    const tl = field("Latest checkpoint's TimeLineID");
    return {
      // By /proc, not pg_ctl status: a killed postmaster that nobody reaped is a zombie, which
      // pg_ctl (kill(pid, 0)) takes for a running server.
      running: postmasterPid(this.o.dataDir) !== null,
      clusterState: field('Database cluster state') ?? 'unknown',
      timeline: tl === null ? null : Number(tl),
      checkpointLsn: field('Latest checkpoint location'),
    };
  }

  async start(timeoutMs = 120_000): Promise<void> {
    clearStaleLocks(this.o.dataDir);
    if (this.o.startCommand !== null) {
      await this.shell(this.o.startCommand, timeoutMs);
      return;
    }
    const seconds = String(Math.max(1, Math.floor(timeoutMs / 1000) - 5));
    await this.run(
      'pg_ctl',
      ['start', '-w', '-t', seconds, '-D', this.o.dataDir, '-l', this.logFile],
      timeoutMs,
    );
  }

  /** A clean stop (fast: PostgreSQL sends every WAL record to its standby first); immediate only if asked. */
  async stop(mode: 'fast' | 'immediate' = 'fast', timeoutMs = 120_000): Promise<void> {
    if (this.o.stopCommand !== null && mode === 'fast') {
      await this.shell(this.o.stopCommand, timeoutMs);
      return;
    }
    const seconds = String(Math.max(1, Math.floor(timeoutMs / 1000) - 5));
    await this.run('pg_ctl', ['stop', '-w', '-t', seconds, '-m', mode, '-D', this.o.dataDir], timeoutMs, {
      // 3: not running, which is what was asked.
      okCodes: [0, 3],
    });
  }

  /** The local configuration files as they are now, to put back after pg_rewind or pg_basebackup. */
  saveOwnConfig(dir = this.o.dataDir): Map<string, Buffer> {
    const saved = new Map<string, Buffer>();
    for (const name of OWN_CONFIG) {
      const file = join(dir, name);
      if (existsSync(file)) saved.set(name, readFileSync(file));
    }
    return saved;
  }

  restoreOwnConfig(saved: Map<string, Buffer>, dir = this.o.dataDir): void {
    for (const [name, content] of saved) writeFileSync(join(dir, name), content, { mode: 0o600 });
  }

  /**
   * pg_rewind from the new primary. It needs wal_log_hints = on (or data checksums) and the
   * WAL back to the last common checkpoint on both sides; it fails otherwise, and the
   * caller falls back to a base backup. A target that crashed is first taken through crash
   * recovery by pg_rewind itself.
   */
  async rewind(source: ProgramConninfo, timeoutMs: number): Promise<string> {
    clearStaleLocks(this.o.dataDir);
    const r = await this.run(
      'pg_rewind',
      ['--target-pgdata', this.o.dataDir, '--source-server', source.conninfo, '--progress'],
      timeoutMs,
      { password: source.password },
    );
    return `${r.stdout}${r.stderr}`;
  }

  /**
   * A fresh copy of the new primary, made beside the data directory and swapped in only
   * once complete; the old directory is kept aside (`<data_directory>.pg-keeper-old`) until
   * the caller drops it. A copy left by an interrupted run is removed first.
   */
  async basebackup(source: ProgramConninfo, timeoutMs: number): Promise<void> {
    const fresh = `${this.o.dataDir}.pg-keeper-new`;
    rmSync(fresh, { recursive: true, force: true });
    try {
      await this.run(
        'pg_basebackup',
        ['-D', fresh, '-d', source.conninfo, '-X', 'stream', '-c', 'fast', '--progress'],
        timeoutMs,
        { password: source.password },
      );
    } catch (err) {
      rmSync(fresh, { recursive: true, force: true });
      throw err;
    }
    const old = this.asideDir;
    rmSync(old, { recursive: true, force: true });
    renameSync(this.o.dataDir, old);
    renameSync(fresh, this.o.dataDir);
  }

  /** Where a base backup keeps the data directory it replaced. */
  get asideDir(): string {
    return `${this.o.dataDir}.pg-keeper-old`;
  }

  /** An interrupted swap left no data directory but the old one aside: put it back. */
  recoverInterruptedSwap(): boolean {
    if (existsSync(this.o.dataDir) || !existsSync(this.asideDir)) return false;
    renameSync(this.asideDir, this.o.dataDir);
    return true;
  }

  dropAside(): void {
    rmSync(this.asideDir, { recursive: true, force: true });
  }

  /**
   * Make the server start as a standby of `primaryConninfo`: standby.signal, and
   * primary_conninfo in postgresql.auto.conf (mode 0600, as pg_basebackup -R writes it).
   * Every other line of postgresql.auto.conf, the server's own, stays as it is.
   */
  writeStandbyConfig(primaryConninfo: string): void {
    const auto = join(this.o.dataDir, 'postgresql.auto.conf');
    const lines = existsSync(auto) ? readFileSync(auto, 'utf8').split('\n') : [];
    const kept = lines.filter((l) => !/^\s*primary_conninfo\s*=/.test(l) && l !== '');
    const quoted = `'${primaryConninfo.replace(/'/g, "''")}'`;
    writeFileSync(auto, [...kept, `primary_conninfo = ${quoted}`, ''].join('\n'), { mode: 0o600 });
    writeFileSync(join(this.o.dataDir, 'standby.signal'), '', { mode: 0o600 });
  }

  private shell(
    command: string,
    timeoutMs: number,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.exec('/bin/sh', ['-c', command], timeoutMs, {}, [0], command);
  }

  private run(
    prog: string,
    args: string[],
    timeoutMs: number,
    opts: { okCodes?: number[]; password?: string | null } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const env: Record<string, string> = opts.password ? { PGPASSWORD: opts.password } : {};
    return this.exec(join(this.binDir, prog), args, timeoutMs, env, opts.okCodes ?? [0], prog);
  }

  private exec(
    file: string,
    args: string[],
    timeoutMs: number,
    extraEnv: Record<string, string>,
    okCodes: number[],
    what: string,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(
        file,
        args,
        {
          env: { ...process.env, LC_ALL: 'C', PGDATA: this.o.dataDir, ...extraEnv },
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
          encoding: 'utf8',
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          if (!err || okCodes.includes(code)) {
            resolve({ code, stdout, stderr });
            return;
          }
          const output = `${stderr}${stdout}`.trim();
          const how = (err as { killed?: boolean }).killed
            ? `timed out after ${timeoutMs} ms`
            : `failed (${errorText(err)})`;
          reject(new CommandFailed(`${what} ${how}${output ? `: ${lastLines(output)}` : ''}`, output));
        },
      );
    });
  }
}

/** /usr/lib/postgresql/<PG_VERSION>/bin (Debian), else pg_config's bindir, else an error that says what to set. */
export function findBinDir(dataDir: string): string {
  let version: string | null = null;
  try {
    version = readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim();
  } catch {
    // an empty or missing data directory: try pg_config
  }
  const debian = version ? `/usr/lib/postgresql/${version}/bin` : null;
  if (debian && existsSync(join(debian, 'pg_ctl'))) return debian;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'pg_ctl')) && existsSync(join(dir, 'pg_rewind'))) return dir;
  }
  throw new Error(
    `cannot find PostgreSQL ${version ?? ''} programs (pg_ctl, pg_rewind): set pg_bin_dir ` +
      `(on Debian, install postgresql-${version ?? '<version>'})`,
  );
}

function lastLines(text: string, n = 6): string {
  return text.split('\n').slice(-n).join(' | ');
}
