// The checker, run once everything is healed and the workload has stopped.
//
// (1) Lost writes: every acknowledged id must be on the final primary. Under a partition the guards
//     of a two-node pair cannot apply (both sides see the other as dead), so there a write in flight
//     while the network was cut is measured and reported, not an anomaly. With the arbiter
//     (`judgePartitions`) partitions are judged like any other fault: the lease is what makes them
//     safe. Any other missing id is an anomaly, blamed on the fault that began last before it was
//     acknowledged.
// (2) Two writers: acknowledged writes are grouped into eras, one per (server, timeline); a server
//     that becomes primary again after another failover is on a new timeline, so it is a new era.
//     Ordered by their first acknowledgement, an era must have stopped accepting writes before the
//     next began: a write of an earlier era SENT after a later era had already ACKNOWLEDGED one means
//     both servers accepted writes at the same moment. Measured when that overlap falls within a
//     partition, and an anomaly too with the arbiter; an anomaly otherwise.
//     With the arbiter also: a fault that leaves the pair itself alone (etcd's own, or the standby
//     cut from etcd while the primary lives) must not stall writes (`write-stall`).
// (3) Liveness (checkEnd, on the live topology): every keeper process alive, /health 200, one keeper
//     says primary and the other standby, matching pg_is_in_recovery(), nobody sees two primaries;
//     and after_command ran once per promotion.

import { readFileSync } from 'node:fs';
import { SLACK_MS } from './availability.js';
import type { Topology } from './topology.js';
import { NODES, type NodeName } from '../../src/config/config.js';
import { keeperExited } from './topology.js';
import type { Anomaly, FaultRecord, PartitionMeasurement } from './types.js';
import type { WriteRecord } from './workload.js';

export interface Era {
  node: NodeName;
  timeline: number | null;
  firstAck: number;
  lastAck: number;
  writes: number;
}

export interface FaultStats {
  fault: number;
  kind: string;
  /** Longest time without any acknowledged write, from the fault's start to the pair healed. */
  longestWriteGapMs: number;
  lost: number;
}

export interface CheckResult {
  acked: number;
  unacked: number;
  lost: number[];
  /** The lost writes themselves (at most 2000), for looking at them after the run. */
  lostWrites: WriteRecord[];
  eras: Era[];
  anomalies: Anomaly[];
  partitions: PartitionMeasurement[];
  perFault: FaultStats[];
}

/** The fault that began last before `t` (null: before the first). */
function faultAt(faults: FaultRecord[], t: number): FaultRecord | null {
  let found: FaultRecord | null = null;
  for (const f of faults) if (f.startedAt <= t) found = f;
  return found;
}

export function eras(records: WriteRecord[]): Era[] {
  const byKey = new Map<string, Era>();
  for (const r of records) {
    if (r.ackAt === null) continue;
    const key = `${r.node}/${r.timeline}`;
    const e = byKey.get(key);
    if (!e)
      byKey.set(key, { node: r.node, timeline: r.timeline, firstAck: r.ackAt, lastAck: r.ackAt, writes: 1 });
    else {
      e.firstAck = Math.min(e.firstAck, r.ackAt);
      e.lastAck = Math.max(e.lastAck, r.ackAt);
      e.writes += 1;
    }
  }
  return [...byKey.values()].sort((a, b) => a.firstAck - b.firstAck);
}

export interface CheckOptions {
  /**
   * The etcd arbiter was on: partitions (between the nodes, or the primary cut from everything) are
   * judged, not excused, and faults that leave the pair alone must not stall writes.
   */
  arbiter?: boolean;
}

/** Longest write gap tolerated during a fault that leaves the pair itself healthy (arbiter only). */
export const STALL_LIMIT_MS = 1000 + SLACK_MS;

/** Faults that cut the network between the nodes. */
const PARTITION_KINDS: readonly string[] = ['partition', 'isolate-primary'];
/** Arbiter faults that touch neither server, nor the primary's keeper, nor the path between the nodes. */
const PAIR_UNTOUCHED = (f: FaultRecord): boolean =>
  f.planned.kind === 'etcd-kill' ||
  f.planned.kind === 'etcd-freeze' ||
  f.planned.kind === 'etcd-outage' ||
  (f.planned.kind === 'cut-standby-etcd' && f.planned.variant === 'alone');

export function check(
  seed: number,
  records: WriteRecord[],
  faults: FaultRecord[],
  finalIds: Set<number>,
  opts: CheckOptions = {},
): CheckResult {
  const anomalies: Anomaly[] = [];
  const acked = records.filter((r) => r.ackAt !== null);
  const lostRecs = acked.filter((r) => !finalIds.has(r.id));
  const isPartition = (f: FaultRecord | null): f is FaultRecord =>
    f !== null && PARTITION_KINDS.includes(f.planned.kind);
  /** The partition whose window (cut to healed) overlaps [from, to], if any. */
  const partitionDuring = (from: number, to: number): FaultRecord | null =>
    faults.find((f) => isPartition(f) && from <= f.healedAt && to >= f.startedAt) ?? null;
  /** A partition that excuses what happened in it: only without the arbiter. */
  const excusedBy = (from: number, to: number): FaultRecord | null =>
    opts.arbiter ? null : partitionDuring(from, to);
  const rel = (f: FaultRecord | null, t: number): string =>
    f ? `+${t - f.startedAt} ms` : new Date(t).toISOString();

  // (1) lost writes. A write in flight while the network was cut (sent before, acknowledged during)
  // belongs to the partition; any other is an anomaly, blamed on the fault that began last before it
  // was acknowledged (a write sent just before a fault is often acknowledged during it).
  const lostByFault = new Map<FaultRecord | null, WriteRecord[]>();
  const lostInPartition = new Map<FaultRecord, number>();
  for (const r of lostRecs) {
    const p = partitionDuring(r.sentAt, r.ackAt as number);
    if (p) lostInPartition.set(p, (lostInPartition.get(p) ?? 0) + 1);
    if (excusedBy(r.sentAt, r.ackAt as number)) continue;
    const f = faultAt(faults, r.ackAt as number);
    lostByFault.set(f, [...(lostByFault.get(f) ?? []), r]);
  }
  for (const [f, recs] of lostByFault) {
    const sample = recs
      .slice(0, 15)
      .map(
        (r) =>
          `${r.id} (${r.loop} on ${r.node} tl ${r.timeline}, sent ${rel(f, r.sentAt)}, acked ${rel(f, r.ackAt ?? 0)})`,
      )
      .join(', ');
    anomalies.push({
      kind: 'lost-write',
      seed,
      fault: f?.planned.index ?? null,
      faultKind: f?.planned.kind ?? null,
      detail: `${recs.length} acknowledged writes are not on the final primary: ${sample}${recs.length > 15 ? ', ...' : ''}`,
    });
  }

  // (2) two writers: a write of an earlier era sent after a later era's first acknowledgement
  const all = eras(records);
  const overlaps: { earlier: Era; later: Era; late: WriteRecord[] }[] = [];
  for (let i = 0; i < all.length; i++) {
    const earlier = all[i] as Era;
    for (let j = i + 1; j < all.length; j++) {
      const later = all[j] as Era;
      const late = acked.filter(
        (r) => r.node === earlier.node && r.timeline === earlier.timeline && r.sentAt > later.firstAck,
      );
      if (late.length > 0) overlaps.push({ earlier, later, late });
    }
  }
  const lastLate = (o: (typeof overlaps)[number]): number => Math.max(...o.late.map((r) => r.ackAt ?? 0));
  for (const o of overlaps) {
    if (excusedBy(o.later.firstAck, lastLate(o))) continue;
    const f = faultAt(faults, o.later.firstAck);
    const last = o.late[o.late.length - 1] as WriteRecord;
    anomalies.push({
      kind: 'two-writers',
      seed,
      fault: f?.planned.index ?? null,
      faultKind: f?.planned.kind ?? null,
      detail:
        `${o.later.node} (timeline ${o.later.timeline}) acknowledged a write at ${rel(f, o.later.firstAck)}, ` +
        `and ${o.earlier.node} (timeline ${o.earlier.timeline}) still acknowledged ${o.late.length} writes sent after that, ` +
        `the last at ${rel(f, last.ackAt ?? 0)}`,
    });
  }

  // Partitions: measured
  const partitions: PartitionMeasurement[] = [];
  for (const f of faults) {
    if (!isPartition(f)) continue;
    const inside = overlaps.filter((o) => partitionDuring(o.later.firstAck, lastLate(o)) === f);
    let bothMs = 0;
    let afterSplit = 0;
    for (const o of inside) {
      bothMs = Math.max(bothMs, lastLate(o) - o.later.firstAck);
      afterSplit += o.late.length;
    }
    const promoted = f.promotions.find((p) => p.at <= f.endedAt);
    const two = f.twoPrimaries[0];
    partitions.push({
      seed,
      fault: f.planned.index,
      kind: f.planned.kind,
      mode: f.planned.mode ?? 'blackhole',
      cutMs: f.endedAt - f.startedAt,
      promotedAfterMs: promoted ? promoted.at - f.startedAt : null,
      bothAcceptedMs: bothMs,
      ackedByOldAfterSplit: afterSplit,
      lostAcked: lostInPartition.get(f) ?? 0,
      twoPrimariesForMs: two ? two.detectedAt - f.endedAt : null,
    });
  }

  // Per fault: the longest stretch without an acknowledged write (what the application felt)
  const ackTimes = acked.map((r) => r.ackAt as number).sort((a, b) => a - b);
  const perFault = faults.map((f): FaultStats => {
    let prev = f.startedAt;
    let gap = 0;
    for (const t of ackTimes) {
      if (t < f.startedAt) continue;
      if (t > f.healedAt) break;
      gap = Math.max(gap, t - prev);
      prev = t;
    }
    gap = Math.max(gap, Math.min(f.healedAt, ackTimes.find((t) => t > f.healedAt) ?? f.healedAt) - prev);
    return {
      fault: f.planned.index,
      kind: f.planned.kind,
      longestWriteGapMs: gap,
      lost: (lostByFault.get(f)?.length ?? 0) + (opts.arbiter ? 0 : (lostInPartition.get(f) ?? 0)),
    };
  });
  if (opts.arbiter) {
    for (const [i, f] of faults.entries()) {
      const gap = perFault[i]?.longestWriteGapMs ?? 0;
      if (PAIR_UNTOUCHED(f) && gap > STALL_LIMIT_MS)
        anomalies.push({
          kind: 'write-stall',
          seed,
          fault: f.planned.index,
          faultKind: f.planned.kind,
          detail: `no write was acknowledged for ${gap} ms during ${f.planned.kind}, which leaves the pair itself alone (limit ${STALL_LIMIT_MS} ms)`,
        });
    }
  }

  return {
    acked: acked.length,
    unacked: records.length - acked.length,
    lost: lostRecs.map((r) => r.id),
    lostWrites: lostRecs.slice(0, 2000),
    eras: all,
    anomalies,
    partitions,
    perFault,
  };
}

/** (3) on the live topology, at the end of a run. */
export async function checkEnd(seed: number, topo: Topology, faults: FaultRecord[]): Promise<Anomaly[]> {
  const out: Anomaly[] = [];
  const add = (kind: Anomaly['kind'], detail: string): void => {
    out.push({ kind, seed, fault: null, faultKind: null, detail });
  };
  for (const { node, k } of topo.keeperHistory) {
    if (keeperExited(k) && !topo.killedOnPurpose.has(k))
      add('keeper-died', `${node}'s keeper exited: ${k.raw.slice(-600)}`);
  }
  const roles: Partial<Record<NodeName, string>> = {};
  for (const n of NODES) {
    const k = topo.keepers[n];
    try {
      const health = await k.get('/health');
      if (health.status !== 200)
        add('keeper-unhealthy', `${n}'s keeper answers /health with ${health.status} at the end`);
      const s = await k.status();
      roles[n] = s.role;
      const v = await topo.inspect(n);
      const actual = v.inRecovery === null ? 'unknown' : v.inRecovery ? 'standby' : 'primary';
      if (s.role !== actual)
        add('roles-inconsistent', `${n}'s keeper says ${s.role}, the server is ${actual}`);
      if (s.peer_is_primary) add('roles-inconsistent', `${n}'s keeper sees two primaries at the end`);
    } catch (err) {
      add('keeper-unhealthy', `${n}'s keeper does not answer at the end: ${(err as Error).message}`);
    }
  }
  const r = Object.values(roles).sort().join('+');
  if (r !== 'primary+standby')
    add('roles-inconsistent', `keepers report ${r || 'nothing'}, not one primary and one standby`);
  // The arbiter: the primary holds the lease, and /primary answers 200 there only.
  const primary = NODES.find((n) => roles[n] === 'primary');
  if (topo.arbiter && primary) {
    try {
      const a = (await topo.keepers[primary].status()).arbiter;
      if (!a?.lease_held || a.holder !== primary)
        add(
          'roles-inconsistent',
          `the final primary ${primary}'s keeper: lease_held=${a?.lease_held}, holder=${a?.holder}`,
        );
      for (const n of NODES) {
        const code = (await topo.keepers[n].get('/primary')).status;
        if ((code === 200) !== (n === primary))
          add(
            'roles-inconsistent',
            `${n}'s keeper answers /primary with ${code} at the end (primary: ${primary})`,
          );
      }
    } catch (err) {
      add(
        'keeper-unhealthy',
        `the keepers do not answer about the lease at the end: ${(err as Error).message}`,
      );
    }
  }

  // after_command: one line per promotion, except promotions whose hook was made to hang; and no
  // promotion at all outside a fault (between faults the pair is healthy)
  const within = (t: number, kind?: string): FaultRecord | undefined =>
    faults.find(
      (f) => t >= f.startedAt && t <= f.healedAt && (kind === undefined || f.planned.kind === kind),
    );
  let expected = 0;
  for (const { node, k } of topo.keeperHistory) {
    for (const l of k.events('promote')) {
      if (l.outcome !== 'ok') continue;
      const at = Date.parse(String(l.time));
      if (!within(at, 'hung-hook')) expected += 1;
      if (!within(at))
        add('spurious-promotion', `${node} promoted at ${String(l.time)}, while no fault was active`);
    }
  }
  const lines = readFileSync(topo.afterCommandFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('promote '));
  if (lines.length !== expected) {
    add(
      'after-command',
      `after_command ran ${lines.length} times for ${expected} promotions (not counting hung ones)`,
    );
  }
  for (const { node, k } of topo.keeperHistory) {
    for (const l of k.events('hook-done')) {
      const at = Date.parse(String(l.time));
      const hung = faults.some(
        (f) => f.planned.kind === 'hung-hook' && at >= f.startedAt && at <= f.healedAt,
      );
      if (!hung && l.result !== 'success')
        add('after-command', `${node}'s ${String(l.hook)} ended with ${String(l.result)}: ${String(l.msg)}`);
    }
  }
  return out;
}
