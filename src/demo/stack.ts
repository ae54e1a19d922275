// Everything one demo run starts, and its teardown: a real PostgreSQL pair (PgPair), a keeper beside
// each server (in this process, logging JSON lines to <dir>/nodeN.log), and optionally Prometheus and
// Alertmanager. stop() undoes whatever start() got to, in reverse order, and never throws.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { pino, type Logger } from 'pino';
import { stringify } from 'yaml';
import { NODES, type Config, type NodeName } from '../config/config.js';
import { parseConfig } from '../config/load.js';
import { buildStatus, type Status } from '../http/status.js';
import { createLogger, startKeeper, type Running } from '../runtime/run.js';
import { freePort } from '../local-pair/free-port.js';
import { PgPair } from '../local-pair/pair.js';
import { killServer, releaseStaleSharedMemory } from '../server/procs.js';
import { startMonitoring, stopDaemons, type Daemon } from './monitoring.js';
import { waitFor } from '../util/wait.js';
import {
  demoFiles,
  newDemoState,
  pgBaseDirFor,
  prepareDemoDir,
  writeDemoState,
  writeKillRecord,
  type DemoState,
  type KillRecord,
} from './workdir.js';

/** A watchable pace: a failure is acted upon after 3 missed heartbeats, about 3 s. */
export const KEEPALIVE_TIME_S = 1;
export const KEEPALIVE_COUNT = 3;

export interface StackOptions {
  dir: string;
  pgBin: string;
  prometheus: boolean;
  say: (line: string) => void;
  /** Polled between steps: true once the user asked to stop (Ctrl-C during start-up). */
  cancelled: () => boolean;
}

export class Cancelled extends Error {
  constructor() {
    super('stopped by a signal during start-up');
  }
}

interface KeeperHandle {
  running: Running;
  url: string;
  logFile: string;
  closeLog: () => void;
}

export class DemoStack {
  /** Bearer token for the keepers' POST /pause and /resume. */
  readonly token = randomBytes(16).toString('hex');
  readonly files: ReturnType<typeof demoFiles>;
  pair: PgPair | null = null;
  daemons: Daemon[] = [];
  private readonly keepers = new Map<NodeName, KeeperHandle>();
  private state: DemoState | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly opts: StackOptions) {
    this.files = demoFiles(opts.dir);
  }

  async start(): Promise<void> {
    const { dir, say } = this.opts;
    await prepareDemoDir(dir, say);
    const { baseDir, why } = await pgBaseDirFor(dir);
    if (why) say(`PostgreSQL data goes to ${baseDir}: ${why}`);
    // Written before anything starts, so that a run killed midway is cleaned up by the next one.
    this.state = newDemoState(dir, baseDir);
    writeDemoState(this.state);
    this.check();

    say(`creating a PostgreSQL primary (node1) and its synchronous standby (node2) in ${baseDir}`);
    this.pair = await PgPair.create({ baseDir, pgBin: this.opts.pgBin, log: (m) => say(`  ${m}`) });
    this.check();

    this.writeAfterCommand();
    for (const node of NODES) {
      const handle = await this.startKeeper(node, await freePort());
      this.keepers.set(node, handle);
      this.state.nodes[node] = {
        dataDir: this.pgNode(node).dataDir,
        port: this.pgNode(node).port,
        keeperUrl: handle.url,
      };
      writeDemoState(this.state);
      say(`${node}: keeper started, ${handle.url}/status, log ${handle.logFile}`);
    }
    this.check();

    if (this.opts.prometheus) {
      const targets = NODES.map((n) => new URL(this.keeper(n).url).host);
      this.daemons = await startMonitoring(dir, targets, say);
      this.state.children = this.daemons.map((d) => d.record);
      writeDemoState(this.state);
      process.once('exit', () => {
        for (const d of this.daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
      });
      this.check();
    }
  }

  /** Whether start() got far enough to have something to stop. */
  get started(): boolean {
    return this.state !== null;
  }

  keeper(node: NodeName): KeeperHandle {
    const k = this.keepers.get(node);
    if (!k) throw new Error(`the keeper of ${node} is not running`);
    return k;
  }

  status(node: NodeName): Status {
    return buildStatus(this.keeper(node).running.keeper);
  }

  config(node: NodeName): Config {
    return this.keeper(node).running.keeper.config;
  }

  /** Resolves once node1's keeper sees a primary with a synchronous standby and node2's sees itself as that standby. */
  async waitUntilPaired(timeoutMs = 30_000): Promise<void> {
    // A Ctrl-C ends the wait at once: waitFor would retry a check that throws Cancelled.
    const outcome = await waitFor(
      () => {
        if (this.opts.cancelled()) return 'cancelled';
        const [s1, s2] = NODES.map((n) => this.status(n));
        const paired =
          s1?.role === 'primary' &&
          s1.sync_mode === 'sync' &&
          s1.peer_reachable &&
          s2?.role === 'standby' &&
          s2.peer_reachable &&
          s2.guards.synchronous_at_last_contact;
        return paired && 'paired';
      },
      'both keepers to see the primary and its synchronous standby',
      timeoutMs,
      100,
    );
    if (outcome === 'cancelled') throw new Cancelled();
  }

  /** SIGKILLs every process of a node's server, as `pg-keeper demo kill` does from another terminal. */
  async killServer(node: NodeName, role: string): Promise<KillRecord> {
    const pids = await killServer(this.pgNode(node).dataDir);
    const record: KillRecord = { node, role, at: Date.now(), pids };
    writeKillRecord(this.opts.dir, record);
    return record;
  }

  /** Idempotent; never throws. */
  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const say = this.opts.say;
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        say(`stopping: ${what}: ${(err as Error).message}`);
      }
    };
    await Promise.all(
      [...this.keepers.entries()].map(([node, k]) =>
        step(`keeper ${node}`, async () => {
          await k.running.stop();
          k.closeLog();
        }),
      ),
    );
    await step('Prometheus and Alertmanager', () => stopDaemons(this.daemons));
    if (this.pair) {
      const pair = this.pair;
      await step('PostgreSQL', () => pair.destroy());
      for (const node of NODES) releaseStaleSharedMemory(this.pgNode(node).dataDir);
    }
    // Gone with the processes it lists: `demo kill` and the next run then know that none runs.
    await step('state.json', () => fs.promises.rm(this.files.state, { force: true }));
  }

  private check(): void {
    if (this.opts.cancelled()) throw new Cancelled();
  }

  private pgNode(node: NodeName) {
    if (!this.pair) throw new Error('the PostgreSQL pair is not running');
    return node === 'node1' ? this.pair.node1 : this.pair.node2;
  }

  /** The after_command of both keepers: appends the PG_KEEPER_* variables it was given to a file. */
  private writeAfterCommand(): void {
    const script = [
      '#!/bin/sh',
      '# after_command of the pg-keeper demo: records what the keeper tells it, nothing else.',
      'set -eu',
      'log="$(dirname "$0")/after_command.log"',
      '{',
      '  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ): after_command of $PG_KEEPER_NODE"',
      "  env | grep '^PG_KEEPER_' | sort",
      '  echo',
      '} >>"$log"',
      'echo "$PG_KEEPER_EVENT on $PG_KEEPER_NODE recorded in $log"',
      '',
    ].join('\n');
    fs.writeFileSync(this.files.afterCommandScript, script, { mode: 0o755 });
  }

  private async startKeeper(node: NodeName, port: number): Promise<KeeperHandle> {
    const pair = this.pair as PgPair;
    const file = this.files.config(node);
    const settings = {
      node1_conninfo: pair.conninfo(pair.node1),
      node2_conninfo: pair.conninfo(pair.node2),
      node,
      keepalive_time: KEEPALIVE_TIME_S,
      keepalive_count: KEEPALIVE_COUNT,
      listen: `127.0.0.1:${port}`,
      after_command: `sh ${shellQuote(this.files.afterCommandScript)}`,
      after_command_timeout: 10,
      state_file: this.files.keeperState(node),
      http_token: this.token,
      // Promotion right after a reload would otherwise wait out the default 5 s (see the README).
      tune_wal_retrieve_retry_interval: true,
    };
    const text = `# keeper of ${node} in the pg-keeper demo (generated at every start)\n${stringify(settings)}`;
    fs.writeFileSync(file, text, { mode: 0o600 }); // it holds the superuser's password
    const cfg = parseConfig(text, file, {}, {});
    const logFile = this.files.log(node);
    const { logger, close } = fileLogger(cfg, logFile);
    const running = await startKeeper(cfg, logger);
    const addr = running.server.address();
    const actual = typeof addr === 'object' && addr ? addr.port : port;
    return { running, url: `http://127.0.0.1:${actual}`, logFile, closeLog: close };
  }
}

/** The keeper's logger (the same as `pg-keeper run`'s), writing JSON lines to a file. */
function fileLogger(cfg: Config, file: string): { logger: Logger; close: () => void } {
  const dest = pino.destination({ dest: file, sync: true, mkdir: true });
  return { logger: createLogger(cfg, dest), close: () => dest.end() };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
