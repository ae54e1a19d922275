// Everything one demo run starts, and its teardown: a real PostgreSQL pair (PgPair), a TCP proxy in
// front of each server for the path between the nodes (network.ts), etcd with --arbiter (etcd.ts), a
// keeper process beside each server managing it (keepers.ts: data_directory, auto_rejoin), the writer
// (writer.ts), and optionally Prometheus and Alertmanager. stop() undoes whatever start() got to, in
// reverse order, and never throws.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { NODES, type NodeName } from '../config/config.js';
import { lookupUser } from '../local-pair/command.js';
import { onExit } from '../local-pair/exit-hook.js';
import { PgPair, type PgNode } from '../local-pair/pair.js';
import { killServer, releaseStaleSharedMemory } from '../server/procs.js';
import { errorText } from '../util/errors.js';
import { waitFor } from '../util/wait.js';
import { startEtcd } from './etcd.js';
import { startKeeperProcess, stopKeeperProcess, type KeeperChild, type RunAs } from './keepers.js';
import { startMonitoring, stopDaemons, type Daemon } from './monitoring.js';
import { DemoNetwork, readNetworkRequest } from './network.js';
import { CREATE_WRITES_TABLE, Writer } from './writer.js';
import {
  demoFiles,
  newDemoState,
  placementFor,
  prepareDemoDir,
  writeDemoState,
  writeKillRecord,
  type DemoState,
  type KillRecord,
} from './workdir.js';

/** A watchable pace: a failure is acted upon after 3 missed heartbeats, about 3 s. */
export const KEEPALIVE_TIME_S = 1;
export const KEEPALIVE_COUNT = 3;
export const LEASE_TTL_S = 5;
/** pg_rewind needs wal_log_hints, and the WAL back to the fork: a rejoin then takes a second, not a copy. */
const REWINDABLE = { wal_log_hints: 'on', wal_keep_size: '128MB' };
const NETWORK_POLL_MS = 200;

export interface StackOptions {
  dir: string;
  pgBin: string;
  prometheus: boolean;
  arbiter: boolean;
  say: (line: string) => void;
  /** Polled between steps: true once the user asked to stop (Ctrl-C during start-up). */
  cancelled: () => boolean;
}

export class Cancelled extends Error {
  constructor() {
    super('stopped by a signal during start-up');
  }
}

export class DemoStack {
  /** Bearer token for the keepers' POST /pause, /resume and /switchover (also in files.tokenFile). */
  readonly token = randomBytes(16).toString('hex');
  files: ReturnType<typeof demoFiles>;
  /** Where the servers and the keepers' files are, when not in the demo directory (removed at the end). */
  tempRoot: string | null = null;
  pair: PgPair | null = null;
  network: DemoNetwork | null = null;
  etcd: Daemon | null = null;
  /** Prometheus and Alertmanager. */
  daemons: Daemon[] = [];
  writer: Writer | null = null;
  private readonly keepers = new Map<NodeName, KeeperChild>();
  private state: DemoState | null = null;
  private watcher: NodeJS.Timeout | null = null;
  private applying = false;
  private stopping: Promise<void> | null = null;
  private readonly removeExitHooks: (() => void)[] = [];

  constructor(private readonly opts: StackOptions) {
    this.files = demoFiles(opts.dir);
  }

  async start(): Promise<void> {
    const { dir, say } = this.opts;
    await prepareDemoDir(dir, say);
    const place = await placementFor(dir);
    const baseDir = place.pgBaseDir;
    this.tempRoot = place.tempRoot;
    this.files = demoFiles(dir, place.keepersDir);
    if (place.why)
      say(`PostgreSQL data and the keepers' files go to ${place.tempRoot ?? baseDir}: ${place.why}`);
    // Written before anything starts, so that a run killed midway is cleaned up by the next one.
    const state = newDemoState(dir, place);
    this.state = state;
    writeDemoState(state);
    this.check();

    say(`creating a PostgreSQL primary (node1) and its synchronous standby (node2) in ${baseDir}`);
    const pair = await PgPair.create({
      baseDir,
      pgBin: this.opts.pgBin,
      log: (m) => say(`  ${m}`),
      extraConf: REWINDABLE,
    });
    this.pair = pair;
    for (const node of NODES) state.nodes[node].port = pair[node].port;
    writeDemoState(state);
    await pair.query(pair.node1, CREATE_WRITES_TABLE);
    this.check();

    const network = await DemoNetwork.start({ node1: pair.node1.port, node2: pair.node2.port });
    this.network = network;
    await this.streamThroughProxy(pair, network);
    state.network = { state: 'connected', changedAt: network.changedAt, request: null };
    writeDemoState(state);
    say(
      `between the nodes: proxy :${network.proxyTo.node1.port} to node1, :${network.proxyTo.node2.port} to node2 (heartbeats, the WAL stream)`,
    );
    this.check();

    if (this.opts.arbiter) {
      const etcd = await startEtcd(dir);
      this.etcd = etcd;
      this.killOnExit(etcd.child);
      state.children.push(etcd.record);
      state.arbiter = etcd.url;
      writeDemoState(state);
      say(`etcd (the arbiter): ${etcd.url}, data in ${dir}/etcd`);
      this.check();
    }

    const runAs = await this.keeperUser();
    this.prepareKeeperFiles(runAs);
    for (const node of NODES) {
      const k = await startKeeperProcess({
        node,
        settings: this.keeperSettings(node, pair, network),
        configFile: this.files.config(node),
        logFile: this.files.log(node),
        runAs,
      });
      this.keepers.set(node, k);
      this.killOnExit(k.child);
      state.children.push(k.record);
      state.nodes[node].keeperUrl = k.url;
      writeDemoState(state);
      say(
        `${node}: keeper started${runAs ? ` as ${runAs.user}` : ''} (pid ${k.child.pid}), ${k.url}/status, log ${k.logFile}`,
      );
      this.check();
    }
    this.watcher = setInterval(() => void this.applyNetworkRequest(), NETWORK_POLL_MS);
    this.watcher.unref();

    this.writer = new Writer({ node1: pair.target(pair.node1), node2: pair.target(pair.node2) });
    this.writer.start();

    if (this.opts.prometheus) {
      const targets = NODES.map((n) => new URL(this.keeper(n).url).host);
      this.daemons = await startMonitoring(dir, targets, say);
      for (const d of this.daemons) {
        this.killOnExit(d.child);
        state.children.push(d.record);
      }
      writeDemoState(state);
      this.check();
    }
  }

  /** Whether start() got far enough to have something to stop. */
  get started(): boolean {
    return this.state !== null;
  }

  keeper(node: NodeName): KeeperChild {
    const k = this.keepers.get(node);
    if (!k) throw new Error(`the keeper of ${node} is not running`);
    return k;
  }

  keeperUrls(): Record<NodeName, string> {
    return { node1: this.keeper('node1').url, node2: this.keeper('node2').url };
  }

  pgNode(node: NodeName): PgNode {
    if (!this.pair) throw new Error('the PostgreSQL pair is not running');
    return this.pair[node];
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
        say(`stopping: ${what}: ${errorText(err)}`);
      }
    };
    if (this.watcher) clearInterval(this.watcher);
    const writer = this.writer;
    if (writer) await step('the writer', () => writer.stop());
    // The keepers first: nothing may act on the servers while they are being stopped.
    await Promise.all(
      [...this.keepers.entries()].map(([node, k]) => step(`keeper ${node}`, () => stopKeeperProcess(k))),
    );
    await step('Prometheus and Alertmanager', () => stopDaemons(this.daemons));
    const network = this.network;
    if (network) await step('the proxies', () => network.close());
    const etcd = this.etcd;
    if (etcd) await step('etcd', () => stopDaemons([etcd]));
    if (this.pair) {
      const pair = this.pair;
      await step('PostgreSQL', () => pair.destroy());
      for (const node of NODES) releaseStaleSharedMemory(pair[node].dataDir);
    }
    const tempRoot = this.tempRoot;
    if (tempRoot) await step(tempRoot, () => fs.promises.rm(tempRoot, { recursive: true, force: true }));
    for (const remove of this.removeExitHooks) remove();
    // Gone with the processes it lists: `demo kill` and the next run then know that none runs.
    await step('state.json', () => fs.promises.rm(this.files.state, { force: true }));
  }

  private check(): void {
    if (this.opts.cancelled()) throw new Cancelled();
  }

  /** Should this process exit without stop() (an uncaught error), its children go with it. */
  private killOnExit(child: ChildProcess): void {
    this.removeExitHooks.push(
      onExit(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }),
    );
  }

  /**
   * Points node2's WAL receiver at the proxy in front of node1, as a standby on another host streams
   * across the network (PostgreSQL 13 and later restart the receiver on reload), and waits until it
   * streams synchronously through it.
   */
  private async streamThroughProxy(pair: PgPair, network: DemoNetwork): Promise<void> {
    const proxyPort = network.proxyTo.node1.port;
    const ci = pair.conninfo(pair.node1, { port: String(proxyPort), application_name: 'node2' });
    try {
      await pair.query(pair.node2, `ALTER SYSTEM SET primary_conninfo = '${ci.replace(/'/g, "''")}'`);
      await pair.query(pair.node2, 'SELECT pg_reload_conf()');
    } catch (err) {
      // The statement holds the password: never let it reach a message (so no `cause` either).
      const message = errorText(err).split(pair.password).join('********');
      // eslint-disable-next-line preserve-caught-error
      throw new Error(`pointing node2's primary_conninfo at the proxy failed: ${message}`);
    }
    await waitFor(
      async () => {
        const [r] = await pair.query<{ port: number | null; status: string | null }>(
          pair.node2,
          'SELECT sender_port AS port, status FROM pg_stat_wal_receiver',
          [],
          { timeoutMs: 2000 },
        );
        return r?.status === 'streaming' && r.port === proxyPort;
      },
      'node2 to stream from node1 through the proxy',
      30_000,
      50,
    );
    await pair.waitForSync(pair.node2, pair.node1);
  }

  /** As root, the keepers run as the OS user PostgreSQL runs as: they stop, rewind and start its servers. */
  private async keeperUser(): Promise<RunAs | null> {
    if (process.getuid?.() !== 0) return null;
    const { uid, gid } = await lookupUser('postgres');
    return { user: 'postgres', uid, gid };
  }

  /** The keepers' directory, token file and after_command log, theirs to write; the after_command script. */
  private prepareKeeperFiles(runAs: RunAs | null): void {
    const own = (p: string): void => {
      if (runAs) fs.chownSync(p, runAs.uid, runAs.gid);
    };
    fs.mkdirSync(this.files.keepers, { mode: 0o700 });
    own(this.files.keepers);
    fs.writeFileSync(this.files.tokenFile, `${this.token}\n`, { mode: 0o600 });
    own(this.files.tokenFile);
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
    fs.writeFileSync(this.files.afterCommandLog, '', { mode: 0o644 });
    own(this.files.afterCommandLog);
  }

  /**
   * A keeper reaches its own server directly and its peer's through the proxy in front of it, so that
   * a partition cuts its heartbeats; its rejoins write that conninfo into primary_conninfo, so that a
   * rejoined standby streams through the proxy too.
   */
  private keeperSettings(node: NodeName, pair: PgPair, network: DemoNetwork): Record<string, unknown> {
    const conninfo = (of: NodeName): string =>
      of === node
        ? pair.conninfo(pair[of])
        : pair.conninfo(pair[of], { port: String(network.proxyTo[of].port) });
    return {
      cluster_name: 'demo',
      node1_conninfo: conninfo('node1'),
      node2_conninfo: conninfo('node2'),
      node,
      keepalive_time: KEEPALIVE_TIME_S,
      keepalive_count: KEEPALIVE_COUNT,
      after_command: `sh ${shellQuote(this.files.afterCommandScript)}`,
      after_command_timeout: 10,
      state_file: this.files.keeperState(node),
      http_token_file: this.files.tokenFile,
      // Promotion right after a reload would otherwise wait out the default 5 s (see the README).
      tune_wal_retrieve_retry_interval: true,
      // The lifecycle: the keeper stops, rewinds and starts its own server.
      data_directory: pair[node].dataDir,
      pg_bin_dir: this.opts.pgBin,
      auto_rejoin: true,
      ...(this.etcd
        ? { etcd_endpoints: [this.etcd.url], etcd_lease_ttl: LEASE_TTL_S, etcd_prefix: '/pg-keeper/demo' }
        : {}),
    };
  }

  /** Applies the last `demo partition` / `demo heal` request once, and records it in state.json. */
  private async applyNetworkRequest(): Promise<void> {
    const network = this.network;
    const state = this.state;
    if (this.applying || !network || !state?.network) return;
    const request = readNetworkRequest(this.opts.dir);
    if (!request || request.at === state.network.request) return;
    this.applying = true;
    try {
      await network.set(request.want);
      state.network = { state: network.state, changedAt: network.changedAt, request: request.at };
      writeDemoState(state);
    } catch (err) {
      this.opts.say(`applying "${request.want}" to the network failed: ${errorText(err)}`);
    } finally {
      this.applying = false;
    }
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
