// The system under test: a real pair, a keeper beside each server, and a TCP proxy in front of each
// server for everything that travels BETWEEN the nodes.
//
//          workload (direct to both)
//           |                    |
//        node1 <--- proxyTo1 <--- node2's keeper, and node2's WAL receiver while node2 is a standby
//        node2 <--- proxyTo2 <--- node1's keeper, and node1's WAL receiver while node1 is a standby
//
// A keeper talks to its own server directly. Cutting both proxies is a network partition between
// the nodes; the application still reaches both servers, which is what makes a partition dangerous.
//
// Everything started here is torn down by destroy() (keepers by their child pid, servers through
// the pair, hook processes found by a marker in their command line), and by emergencyStop() when
// the process exits or is interrupted (src/local-pair/exit-hook.ts).

import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseConninfo } from '../../src/config/conninfo.js';
import { NODES, type NodeName } from '../../src/config/config.js';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { listPids, readProcCmdline, readProcStat } from '../../src/util/procfs.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { waitFor } from '../../src/util/wait.js';
import { KeeperProcess } from '../support/keeper-process.js';
import { EtcdCluster } from '../support/etcd.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';
import { TestPair, type PgNode } from '../support/test-pair.js';
import { CREATE_TABLE_SQL } from './workload.js';

export const KEEPER_SETTINGS = { keepalive_time: 0.2, keepalive_count: 3, after_command_timeout: 2 };

/** KeeperProcess.exitCode stays null when a signal ended the process: ask the child itself. */
export const keeperExited = (k: KeeperProcess): boolean =>
  k.child.exitCode !== null || k.child.signalCode !== null;

/** A server as the operator sees it. */
export interface ServerView {
  node: NodeName;
  /** Some process of the server exists. */
  running: boolean;
  /** It answered a query. */
  up: boolean;
  inRecovery: boolean | null;
  /** On a primary: the timeline it writes on. */
  timeline: number | null;
  /** standby.signal in the data directory: it starts as a standby. */
  standbySignal: boolean;
  error: string | null;
}

export interface TopologyOptions {
  /** With the etcd arbiter: how many members, and the lease's TTL in seconds. */
  arbiter?: { members: 1 | 3; ttl: number };
  /** On top of KEEPER_SETTINGS, for every keeper. */
  keeperSettings?: Record<string, unknown>;
}

const live = new Set<Topology>();

/** Tears down every live topology now (for signal handlers: do not wait for a step in progress). */
export async function destroyAll(): Promise<void> {
  await Promise.all([...live].map((t) => t.destroy()));
}

export class Topology {
  readonly keepers: Record<NodeName, KeeperProcess>;
  /** Every keeper process started, in order, for their logs. */
  readonly keeperHistory: { node: NodeName; k: KeeperProcess; startedAt: number }[] = [];
  /** Keepers this harness killed on purpose (any other exit is an anomaly). */
  readonly killedOnPurpose = new Set<KeeperProcess>();
  /** Keepers this harness stopped with SIGSTOP (their /health cannot answer). */
  readonly frozenOnPurpose = new Set<KeeperProcess>();
  readonly afterCommandFile: string;
  readonly normalAfterCommand: string;
  /** A string put in every hook command line, to find leftover hook processes by pid. */
  readonly hookMarker: string;
  #destroyed = false;
  #removeExitHook: () => void = () => {};

  /** The arbiter, when the topology has one: etcd, and each keeper's own proxies to its members. */
  arbiter: {
    etcd: EtcdCluster;
    proxiesOf: Record<NodeName, TcpProxy[]>;
    settings: Record<string, unknown>;
  } | null = null;

  private constructor(
    readonly dir: string,
    readonly pair: TestPair,
    readonly proxyTo: Record<NodeName, TcpProxy>,
    readonly log: (msg: string) => void,
    private readonly keeperSettings: Record<string, unknown> = {},
  ) {
    this.keepers = {} as Record<NodeName, KeeperProcess>;
    this.afterCommandFile = join(dir, 'after_command.log');
    this.hookMarker = `chaos-hook-${process.pid}-${dir.slice(-6)}`;
    // One line per run: event, node, time. `: marker` is a no-op that keeps the marker in the command line.
    this.normalAfterCommand =
      `printf '%s %s %s\\n' "$PG_KEEPER_EVENT" "$PG_KEEPER_NODE" "$(date +%s%3N)" >> ${this.afterCommandFile}; ` +
      `: ${this.hookMarker}`;
  }

  static async create(log: (msg: string) => void, opts: TopologyOptions = {}): Promise<Topology> {
    const dir = mkdtempSync(join(tmpdir(), 'pgk-chaos-'));
    chmodSync(dir, 0o755); // PostgreSQL runs as the OS user postgres and must reach the data directories
    let pair: TestPair | null = null;
    const proxies: TcpProxy[] = [];
    try {
      pair = await TestPair.create({ baseDir: join(dir, 'pg') });
      const proxyTo1 = await TcpProxy.start({ host: '127.0.0.1', port: pair.node1.port });
      proxies.push(proxyTo1);
      const proxyTo2 = await TcpProxy.start({ host: '127.0.0.1', port: pair.node2.port });
      proxies.push(proxyTo2);
      const t = new Topology(dir, pair, { node1: proxyTo1, node2: proxyTo2 }, log, opts.keeperSettings ?? {});
      live.add(t);
      t.#removeExitHook = onExit(() => t.emergencyStop());
      try {
        if (opts.arbiter) await t.startArbiter(opts.arbiter);
        writeFileSync(t.afterCommandFile, '');
        await pair.query(pair.node1, CREATE_TABLE_SQL);
        await t.repoint('node2', 'node1');
        await t.waitStreaming('node2', 'node1', 30_000);
        for (const n of NODES) await t.startKeeper(n);
        return t;
      } catch (err) {
        await t.destroy();
        throw err;
      }
    } catch (err) {
      for (const p of proxies) await p.close();
      await pair?.destroy();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  node(n: NodeName): PgNode {
    return this.pair[n];
  }

  /** etcd (1 or 3 members), and a proxy per keeper per member, so that each keeper's path to etcd can be cut alone. */
  private async startArbiter(o: NonNullable<TopologyOptions['arbiter']>): Promise<void> {
    const etcd = await EtcdCluster.start({ members: o.members });
    const proxiesOf = { node1: [] as TcpProxy[], node2: [] as TcpProxy[] };
    this.arbiter = { etcd, proxiesOf, settings: {} };
    for (const n of NODES) {
      for (const endpoint of etcd.endpoints) {
        const url = new URL(endpoint);
        proxiesOf[n].push(await TcpProxy.start({ host: url.hostname, port: Number(url.port) }));
      }
    }
    this.arbiter.settings = {
      etcd_lease_ttl: o.ttl,
      etcd_prefix: `/pg-keeper/${this.dir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x')}`,
    };
  }

  /** Cut (or restore) one keeper's every path to etcd. */
  async cutArbiter(n: NodeName, cut: boolean, mode: 'blackhole' | 'refuse' = 'blackhole'): Promise<void> {
    const proxies = this.arbiter?.proxiesOf[n] ?? [];
    await Promise.all(proxies.map((p) => (cut ? p.cut(mode) : p.restore())));
  }

  #arbiterSettings(n: NodeName): Record<string, unknown> {
    if (!this.arbiter) return {};
    return {
      ...this.arbiter.settings,
      etcd_endpoints: this.arbiter.proxiesOf[n].map((p) => `http://127.0.0.1:${p.port}`),
    };
  }

  /** The conninfo a keeper on `self` uses for `of`: direct for its own server, the proxy for the peer. */
  #keeperConninfo(self: NodeName, of: NodeName): string {
    const node = this.node(of);
    return self === of
      ? this.pair.conninfo(node)
      : this.pair.conninfo(node, { port: String(this.proxyTo[of].port) });
  }

  async startKeeper(n: NodeName, afterCommand = this.normalAfterCommand): Promise<KeeperProcess> {
    const k = await KeeperProcess.start({
      dir: this.dir,
      node: n,
      node1: this.#keeperConninfo(n, 'node1'),
      node2: this.#keeperConninfo(n, 'node2'),
      settings: {
        ...KEEPER_SETTINGS,
        after_command: afterCommand,
        ...this.keeperSettings,
        ...this.#arbiterSettings(n),
      },
    });
    this.keepers[n] = k;
    this.keeperHistory.push({ node: n, k, startedAt: Date.now() });
    return k;
  }

  async killKeeper(n: NodeName): Promise<void> {
    const k = this.keepers[n];
    this.killedOnPurpose.add(k);
    await k.kill();
  }

  /** SIGSTOP (true) or SIGCONT (false) a keeper process, by its pid. */
  freezeKeeper(n: NodeName, frozen: boolean): void {
    const k = this.keepers[n];
    k.child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
    if (frozen) this.frozenOnPurpose.add(k);
    else this.frozenOnPurpose.delete(k);
  }

  /** Changes settings in a keeper's file and sends SIGHUP; resolves once the reload is logged. */
  async reconfigureKeeper(n: NodeName, changes: Record<string, unknown>): Promise<void> {
    const k = this.keepers[n];
    const current = parse(readFileSync(k.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(k.configFile, stringify({ ...current, ...changes }));
    const before = k.events('reload').length + k.events('reload-failed').length;
    k.child.kill('SIGHUP');
    await waitFor(
      () => k.events('reload').length + k.events('reload-failed').length > before,
      `${n}'s keeper to reload`,
      15_000,
    );
    if (k.events('reload-failed').length > 0) throw new Error(`${n}'s keeper refused the new configuration`);
  }

  /**
   * Points a standby's WAL receiver at the proxy in front of `primary` (with application_name = its
   * own name, as pg_basebackup -R wrote it). PostgreSQL 15 restarts the receiver on reload.
   */
  async repoint(standby: NodeName, primary: NodeName): Promise<void> {
    const ci = this.pair.conninfo(this.node(primary), {
      port: String(this.proxyTo[primary].port),
      application_name: standby,
    });
    try {
      await this.pair.query(
        this.node(standby),
        `ALTER SYSTEM SET primary_conninfo = '${ci.replace(/'/g, "''")}'`,
        [],
        { timeoutMs: 5000 },
      );
      await this.pair.query(this.node(standby), 'SELECT pg_reload_conf()', [], { timeoutMs: 5000 });
    } catch (err) {
      // The statement holds the password: never let it reach a message (so no `cause` either).
      // eslint-disable-next-line preserve-caught-error
      throw new Error(
        `re-pointing ${standby}'s primary_conninfo failed: ${this.#scrub((err as Error).message)}`,
      );
    }
  }

  /** The port in a standby's primary_conninfo (null when unreadable). */
  async primaryConninfoPort(standby: NodeName): Promise<number | null> {
    const [r] = await this.pair.query<{ ci: string }>(
      this.node(standby),
      "SELECT current_setting('primary_conninfo') AS ci",
      [],
      { timeoutMs: 3000 },
    );
    try {
      const port = parseConninfo(r?.ci ?? '').params['port'];
      return port ? Number(port) : null;
    } catch {
      return null;
    }
  }

  /** Replication as `primary` sees it: the standby's state and sync_state, or null when not listed. */
  async replicationOf(
    standby: NodeName,
    primary: NodeName,
  ): Promise<{ state: string; syncState: string; lagBytes: number | null } | null> {
    const rows = await this.pair.query<{ state: string; sync_state: string; lag: number | null }>(
      this.node(primary),
      `SELECT state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag
         FROM pg_stat_replication WHERE application_name = $1`,
      [standby],
      { timeoutMs: 3000 },
    );
    const r = rows[0];
    return r ? { state: r.state, syncState: r.sync_state, lagBytes: r.lag } : null;
  }

  async waitStreaming(standby: NodeName, primary: NodeName, timeoutMs: number): Promise<void> {
    await waitFor(
      async () => (await this.replicationOf(standby, primary))?.state === 'streaming',
      `${standby} to stream from ${primary}`,
      timeoutMs,
      100,
    );
  }

  async inspect(n: NodeName): Promise<ServerView> {
    const node = this.node(n);
    const view: ServerView = {
      node: n,
      running: this.pair.pids(node).length > 0,
      up: false,
      inRecovery: null,
      timeline: null,
      standbySignal: existsSync(join(node.dataDir, 'standby.signal')),
      error: null,
    };
    if (!view.running) return view;
    try {
      const [r] = await queryOnce<{ r: boolean; tl: number | null }>(
        this.pair.target(node),
        `SELECT pg_is_in_recovery() AS r,
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tl`,
        [],
        3000,
      );
      view.up = true;
      view.inRecovery = r?.r ?? null;
      view.timeline = r?.tl ?? null;
    } catch (err) {
      view.error = this.#scrub((err as Error).message);
    }
    return view;
  }

  /** Every id in the table on a server. */
  async idsOn(n: NodeName): Promise<Set<number>> {
    const rows = await this.pair.query<{ id: string }>(this.node(n), 'SELECT id FROM chaos_writes', [], {
      timeoutMs: 30_000,
    });
    return new Set(rows.map((r) => Number(r.id)));
  }

  /** Pids of hook processes (after_command and its children) still alive, found by the marker. */
  hookPids(marker = this.hookMarker): number[] {
    return listPids().filter((pid) => readProcCmdline(pid)?.some((arg) => arg.includes(marker)));
  }

  /** Pids of processes in the process group `pgid` (a hook runs in its own group). */
  static groupPids(pgid: number): number[] {
    return listPids().filter((pid) => {
      const st = readProcStat(pid);
      return st !== null && st.state !== 'Z' && st.pgrp === pgid;
    });
  }

  /**
   * Copies what explains a run into `into`: every keeper process's output, the after_command log and
   * both servers' logs, with the password masked. For runs that found something.
   */
  saveLogs(into: string): void {
    mkdirSync(into, { recursive: true });
    this.keeperHistory.forEach(({ node, k }, i) =>
      writeFileSync(join(into, `keeper-${String(i + 1).padStart(2, '0')}-${node}.log`), this.#scrub(k.raw)),
    );
    copyFileSync(this.afterCommandFile, join(into, 'after_command.log'));
    for (const n of NODES) {
      try {
        writeFileSync(
          join(into, `postgres-${n}.log`),
          this.#scrub(readFileSync(this.node(n).logFile, 'utf8')),
        );
      } catch {
        // a node being rebuilt has no log yet
      }
    }
  }

  #scrub(text: string): string {
    return text.split(this.pair.password).join('********');
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(this.keeperHistory.map(({ k }) => k.kill()));
    this.#killHooks();
    for (const p of Object.values(this.proxyTo)) await p.close();
    for (const p of [...(this.arbiter?.proxiesOf.node1 ?? []), ...(this.arbiter?.proxiesOf.node2 ?? [])])
      await p.close();
    await this.arbiter?.etcd.destroy();
    await this.pair.destroy();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
    this.#removeExitHook();
  }

  /**
   * Synchronous, for the exit hook: SIGKILL hook processes by pid (the keepers' own exit hooks
   * have killed them by then), the servers, and remove the directory.
   */
  emergencyStop(): void {
    this.#killHooks();
    this.arbiter?.etcd.emergencyStop();
    this.pair.emergencyStop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A hook runs in its own process group (led by the shell that has the marker): kill the group. */
  #killHooks(): void {
    for (const pid of this.hookPids()) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}
