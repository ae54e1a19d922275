// One scenario's system: the fault-injection suite's topology (a real pair, two real keepers from
// the built CLI, a real etcd, and a TCP proxy on every path a partition can cut: between the nodes,
// and each keeper's own path to each etcd member), a writer per node, and a watch on etcd from
// outside. Everything is torn down by destroyRig(), or destroyAll() on a signal; the topology's
// own exit hooks kill by pid if the process ends first.

import type { NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { destroyAll as destroyTopologies, Topology } from '../../test/chaos/topology.js';
import type { KeeperProcess } from '../../test/support/keeper-process.js';
import { idCounter, wallNow, WriteLoop, type Ack } from '../lib/write-loop.js';
import { EtcdWatch } from './etcd-watch.js';
import type { Options } from './options.js';
import type { WriteCheck } from './samples.js';

export const TABLE = 'bench_arbiter';
/**
 * A write unanswered for this long is given up (not acknowledged) and the writer tries again. Long
 * by default, so that a stall is measured whole as one commit's latency; scenarios where the old
 * primary holds commits back for good (the fence) give up sooner.
 */
const WRITE_TIMEOUT_MS = 30_000;
const WARMUP_MS = 1000;

export interface Rig {
  topo: Topology;
  etcd: NonNullable<Topology['arbiter']>['etcd'];
  prefix: string;
  watch: EtcdWatch;
  /** One writer per node, sharing the ids: each writes only to its own node, as fast as it can. */
  writers: Record<NodeName, WriteLoop>;
  opts: Options;
  ttl: number;
}

export interface RigConfig {
  ttl: number;
  members: 1 | 3;
  writeTimeoutMs?: number;
}

const live = new Set<Rig>();

export const keeper = (rig: Rig, n: NodeName): KeeperProcess => rig.topo.keepers[n];

export async function createRig(opts: Options, c: RigConfig): Promise<Rig> {
  const topo = await Topology.create(() => {}, {
    arbiter: { members: c.members, ttl: c.ttl },
    keeperSettings: { keepalive_time: opts.keepaliveTime, keepalive_count: opts.keepaliveCount },
  });
  const arbiter = topo.arbiter;
  if (!arbiter) throw new Error('the topology has no arbiter');
  const prefix = String(arbiter.settings.etcd_prefix);
  const ids = idCounter();
  const writer = (n: NodeName): WriteLoop =>
    new WriteLoop([{ name: n, target: topo.pair.target(topo.node(n)) }], TABLE, {
      writeTimeoutMs: c.writeTimeoutMs ?? WRITE_TIMEOUT_MS,
      nextId: ids,
    });
  const rig: Rig = {
    topo,
    etcd: arbiter.etcd,
    prefix,
    watch: new EtcdWatch(arbiter.etcd.endpoints, prefix),
    writers: { node1: writer('node1'), node2: writer('node2') },
    opts,
    ttl: c.ttl,
  };
  live.add(rig);
  try {
    await waitHealthy(rig);
    await queryOnce(topo.pair.target(topo.node('node1')), `CREATE TABLE ${TABLE} (id bigint PRIMARY KEY)`);
    rig.watch.start();
    rig.writers.node1.start();
    rig.writers.node2.start();
    return rig;
  } catch (err) {
    await destroyRig(rig);
    throw err;
  }
}

/** node1's keeper holds the lease with "sync" recorded; node2's keeper is its synchronous standby and sees it. */
export async function waitHealthy(rig: Rig, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const [s1, s2] = await Promise.all([keeper(rig, 'node1').status(), keeper(rig, 'node2').status()]);
      return (
        s1.arbiter?.lease_held === true &&
        s1.arbiter.replication === 'sync' &&
        s1.sync_mode === 'sync' &&
        s2.role === 'standby' &&
        s2.guards.synchronous_at_last_contact &&
        s2.arbiter?.holder === 'node1' &&
        s2.arbiter.replication === 'sync'
      );
    },
    'node1 to hold the lease with "sync" recorded, and node2 to see it',
    timeoutMs,
  );
}

export async function destroyRig(rig: Rig): Promise<void> {
  await Promise.all([rig.writers.node1.stop(), rig.writers.node2.stop(), rig.watch.stop()]);
  await rig.topo.destroy();
  live.delete(rig);
}

/** For signal handlers: every live topology down now. */
export async function destroyAll(): Promise<void> {
  await destroyTopologies();
  live.clear();
}

/**
 * Writes on node1 for a second plus a random part of a tick and of a lease renewal period, so that
 * faults do not always fall at the same phase of the keepers' ticks and of the lease's renewals
 * (both decide how long a takeover waits).
 */
export async function warmUp(rig: Rig): Promise<void> {
  const t0 = wallNow();
  const renewEveryMs = Math.min(2000, Math.max(250, (rig.ttl * 1000) / 4));
  const ms = WARMUP_MS + Math.random() * Math.max(rig.opts.keepaliveTime * 1000, renewEveryMs);
  const w = rig.writers.node1;
  await waitFor(
    () => wallNow() - t0 >= ms && w.acks.length >= 20,
    'the writer to commit on node1',
    30_000,
    20,
  );
}

export async function inRecovery(rig: Rig, n: NodeName): Promise<boolean | null> {
  return (await rig.topo.inspect(n)).inRecovery;
}

/** Polls a condition every `everyMs` in the background until stopped; `seen` says whether it ever held. */
export function watchFor(check: () => Promise<boolean>, everyMs = 100): { stop: () => Promise<boolean> } {
  let stopped = false;
  let seen = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (await check()) seen = true;
      } catch {
        // not answering is not the condition
      }
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return seen;
    },
  };
}

/** The value of an unlabelled gauge on a keeper's /metrics; null when absent or unreachable. */
export async function gauge(k: KeeperProcess, name: string): Promise<number | null> {
  try {
    const text = await (await k.get('/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : null;
  } catch {
    return null;
  }
}

/** A labelled counter's value (e.g. vetoes by reason); null when absent. */
export async function counter(k: KeeperProcess, name: string, labels: string): Promise<number | null> {
  const text = await (await k.get('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : null;
}

/** Every id on a node's table. */
export async function idsOn(rig: Rig, n: NodeName): Promise<Set<number>> {
  const rows = await queryOnce<{ id: string }>(
    rig.topo.pair.target(rig.topo.node(n)),
    `SELECT id FROM ${TABLE}`,
    [],
    15_000,
  );
  return new Set(rows.map((r) => Number(r.id)));
}

/**
 * What became of the writes: every one the old primary acknowledged must be on the final primary,
 * and no write it acknowledged may have been sent after the new primary acknowledged its first
 * (that would be two servers acknowledging writes at the same moment).
 */
export async function checkWrites(
  rig: Rig,
  oldPrimary: NodeName,
  finalPrimary: NodeName,
): Promise<WriteCheck> {
  const old = rig.writers[oldPrimary].acks;
  const present = await idsOn(rig, finalPrimary);
  const lostIds = old.filter((a) => !present.has(a.id)).map((a) => a.id);
  const newAcks = oldPrimary === finalPrimary ? [] : rig.writers[finalPrimary].acks;
  const firstNew = newAcks[0]?.end ?? Number.POSITIVE_INFINITY;
  const late: Ack[] = old.filter((a) => a.start > firstNew);
  const lastLate = late.reduce((m, a) => Math.max(m, a.end), firstNew);
  return {
    ackedOld: old.length,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 100),
    dualWrites: late.length,
    dualWritableMs: late.length > 0 ? Math.round(lastLate - firstNew) : 0,
  };
}

/** The write with the longest commit latency among those acknowledged after `from` and sent before `to`. */
export function worstAck(acks: readonly Ack[], from: number, to: number): Ack | null {
  let worst: Ack | null = null;
  for (const a of acks)
    if (a.end >= from && a.start <= to && (worst === null || a.end - a.start > worst.end - worst.start))
      worst = a;
  return worst;
}

export const latencyOf = (a: Ack | null): number => (a === null ? 0 : Math.round(a.end - a.start));

/**
 * Stops both writers and waits until `standby` has replayed everything `primary` wrote: a
 * synchronous commit is flushed on the standby, not yet visible there.
 */
export async function quiesce(rig: Rig, primary: NodeName, standby: NodeName): Promise<void> {
  await Promise.all([rig.writers.node1.stop(), rig.writers.node2.stop()]);
  // The primary's keeper writes a WAL message at every tick: wait for this position, not for no lag.
  const target = rig.topo.pair.target(rig.topo.node(primary));
  const [at] = await queryOnce<{ lsn: string }>(target, 'SELECT pg_current_wal_lsn()::text AS lsn', [], 5000);
  await waitFor(
    async () => {
      const [r] = await queryOnce<{ done: boolean }>(
        target,
        'SELECT pg_wal_lsn_diff(replay_lsn, $1::pg_lsn) >= 0 AS done FROM pg_stat_replication WHERE application_name = $2',
        [at?.lsn, standby],
        5000,
      );
      return r?.done === true;
    },
    `${standby} to replay everything ${primary} wrote`,
    30_000,
    50,
  );
}

/** The longest stretch without an acknowledgement in [from, to]. */
export function longestGap(acks: readonly Ack[], from: number, to: number): number {
  let prev = from;
  let gap = 0;
  for (const a of acks) {
    if (a.end < from) continue;
    if (a.end > to) break;
    gap = Math.max(gap, a.end - prev);
    prev = a.end;
  }
  return Math.max(gap, to - prev);
}
