// The report of one or more runs: faults injected by kind, what the operator had to do, the
// application's longest write outage per fault kind, the anomalies (with their seeds), and the
// partition measurements. Text for people, and a JSON summary for files.

import type { AvailabilityCheck } from './availability.js';
import type { RunResult } from './harness.js';
import { ALL_FAULT_KINDS, FAULT_KINDS } from './schedule.js';
import type { Anomaly, PartitionMeasurement } from './types.js';

export interface Summary {
  runs: number;
  seeds: number[];
  /** Per run: two-node, or the arbiter's members and TTL. */
  modes: string[];
  faultsByKind: Record<string, number>;
  faultsByVariant: Record<string, number>;
  failovers: number;
  twoPrimaries: { seed: number; fault: number; kind: string; lostAcked: number }[];
  rebuilds: number;
  ackedWrites: number;
  unackedWrites: number;
  lostAcked: number;
  longestWriteGapMsByKind: Record<string, number>;
  anomalies: Anomaly[];
  partitions: PartitionMeasurement[];
  /** Every fault that owed (or could have owed) a promotion, and what it saw. */
  availability: (AvailabilityCheck & { seed: number; fault: number; kind: string })[];
  /** Arbiter: leases a keeper counted lost, per fault kind. */
  leasesLostByKind: Record<string, number>;
  /** Arbiter: faults during which both keepers answered /primary 200 (first to last such poll). */
  bothPrimaryOk: {
    seed: number;
    fault: number;
    kind: string;
    fromMs: number;
    forMs: number;
    polls: number;
  }[];
  harnessErrors: { seed: number; error: string }[];
  aborted: boolean;
}

export function summarize(results: RunResult[]): Summary {
  const arbiter = results.some((r) => r.arbiter !== null);
  const s: Summary = {
    runs: results.length,
    seeds: results.map((r) => r.seed),
    modes: results.map(
      (r) =>
        (r.arbiter ? `arbiter (${r.arbiter.members} etcd member(s), TTL ${r.arbiter.ttl} s)` : 'two-node') +
        (r.cancelAfterMs === null ? '' : `, a client cancelling writes after ${r.cancelAfterMs} ms`),
    ),
    faultsByKind: Object.fromEntries((arbiter ? ALL_FAULT_KINDS : FAULT_KINDS).map((k) => [k, 0])),
    faultsByVariant: {},
    failovers: 0,
    twoPrimaries: [],
    rebuilds: 0,
    ackedWrites: 0,
    unackedWrites: 0,
    lostAcked: 0,
    longestWriteGapMsByKind: {},
    anomalies: [],
    partitions: [],
    availability: [],
    leasesLostByKind: {},
    bothPrimaryOk: [],
    harnessErrors: [],
    aborted: results.some((r) => r.aborted),
  };
  for (const r of results) {
    for (const f of r.faults) {
      const k = f.planned.kind;
      s.faultsByKind[k] = (s.faultsByKind[k] ?? 0) + 1;
      const variant = `${k} ${f.planned.mode ?? f.planned.variant ?? f.planned.target ?? ''}`.trim();
      s.faultsByVariant[variant] = (s.faultsByVariant[variant] ?? 0) + 1;
      s.failovers += f.promotions.length;
      s.rebuilds += f.operatorActions.filter((a) => /^rebuil(t|d of) /.test(a)).length;
      for (const t of f.twoPrimaries)
        s.twoPrimaries.push({ seed: r.seed, fault: f.planned.index, kind: k, lostAcked: t.lostIds.length });
      if (f.availability)
        s.availability.push({ ...f.availability, seed: r.seed, fault: f.planned.index, kind: k });
      if (r.arbiter) s.leasesLostByKind[k] = (s.leasesLostByKind[k] ?? 0) + f.leasesLost.length;
      const b = f.bothPrimaryOk;
      if (b)
        s.bothPrimaryOk.push({
          seed: r.seed,
          fault: f.planned.index,
          kind: k,
          fromMs: b.firstAt - f.startedAt,
          forMs: b.lastAt - b.firstAt,
          polls: b.polls,
        });
    }
    if (r.check) {
      s.ackedWrites += r.check.acked;
      s.unackedWrites += r.check.unacked;
      s.lostAcked += r.check.lost.length;
      s.partitions.push(...r.check.partitions);
      for (const pf of r.check.perFault)
        s.longestWriteGapMsByKind[pf.kind] = Math.max(
          s.longestWriteGapMsByKind[pf.kind] ?? 0,
          pf.longestWriteGapMs,
        );
    }
    s.anomalies.push(...r.anomalies);
    if (r.error) s.harnessErrors.push({ seed: r.seed, error: r.error });
  }
  return s;
}

/** Failures that make the run fail: anomalies (never partition measurements) and harness errors. */
export function failed(s: Summary): boolean {
  return s.anomalies.length > 0 || s.harnessErrors.length > 0;
}

const secs = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);

export function formatRun(r: RunResult): string {
  const c = r.check;
  const parts = [
    `seed ${r.seed}: ${r.faults.length}/${r.planned} faults in ${secs(r.durationMs)} (build ${r.build.head}, dist ${r.build.builtAt})`,
    c
      ? `${c.acked} writes acknowledged (${c.unacked} not), ${c.lost.length} acknowledged missing`
      : 'not checked',
    `${r.anomalies.length} anomalies`,
  ];
  if (r.error) parts.push(`HARNESS ERROR: ${r.error.split('\n')[0]}`);
  if (r.aborted) parts.push('ABORTED');
  if (r.logs) parts.push(`logs in ${r.logs}`);
  return parts.join('; ');
}

export function formatSummary(s: Summary): string {
  const out: string[] = [];
  out.push('==== chaos report ====');
  out.push(`runs: ${s.runs} (seeds ${s.seeds.join(', ')})${s.aborted ? ' - ABORTED' : ''}`);
  const modes = [...new Set(s.modes)];
  out.push(`mode: ${modes.join('; ')}`);
  const arbiter = s.modes.some((m) => m.startsWith('arbiter'));
  out.push(
    `writes: ${s.ackedWrites} acknowledged, ${s.unackedWrites} not acknowledged (never counted as lost), ` +
      `${s.lostAcked} acknowledged and missing at the end (partitions included)`,
  );
  out.push('faults injected by kind:');
  for (const [k, n] of Object.entries(s.faultsByKind)) {
    const gap = s.longestWriteGapMsByKind[k];
    out.push(
      `  ${k.padEnd(15)} ${String(n).padStart(3)}   longest write outage ${gap === undefined ? '-' : secs(gap)}`,
    );
  }
  out.push(
    `  variants: ${Object.entries(s.faultsByVariant)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  out.push(`promotions: ${s.failovers}; rebuilds by the operator: ${s.rebuilds}`);
  const owed = s.availability.filter((a) => a.checked);
  out.push(
    `availability (a promotion owed after the primary's loss, from the keepers' timing): ${owed.length} checked, ` +
      `${owed.filter((a) => !a.ok).length} missed; ${s.availability.length - owed.length} losses too short to owe one`,
  );
  for (const a of s.availability)
    out.push(
      `  seed ${a.seed} fault ${a.fault} (${a.kind}, ${a.loss}): lost ${secs(a.lostForMs)}, owed within ${secs(a.deadlineMs)}: ` +
        (a.checked
          ? a.ok
            ? `promoted after ${secs(a.promotedAfterMs)}`
            : `MISSED (${a.promotedAfterMs === null ? 'no promotion' : `promoted after ${secs(a.promotedAfterMs)}`})`
          : `not owed${a.promotedAfterMs === null ? '' : ` (promoted after ${secs(a.promotedAfterMs)})`}`),
    );
  if (arbiter)
    out.push(
      `leases lost (keepers' own count) by fault kind: ${
        Object.entries(s.leasesLostByKind)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ') || 'none'
      }`,
      `both keepers answered /primary 200 while a fault was held: ${s.bothPrimaryOk.length} fault(s)`,
      ...s.bothPrimaryOk.map(
        (b) =>
          `  seed ${b.seed} fault ${b.fault} (${b.kind}): from +${secs(b.fromMs)} for ${secs(b.forMs)} (${b.polls} polls, every 0.25 s)`,
      ),
    );
  out.push(`two primaries found by the operator: ${s.twoPrimaries.length}`);
  for (const t of s.twoPrimaries)
    out.push(
      `  seed ${t.seed} fault ${t.fault} (${t.kind}): ${t.lostAcked} acknowledged writes on the demoted side`,
    );
  out.push(
    `partitions: ${s.partitions.length}` +
      (arbiter ? ' (judged: any loss or overlap is an anomaly above)' : ''),
  );
  for (const p of s.partitions) {
    out.push(
      `  seed ${p.seed} fault ${p.fault} (${p.kind}, ${p.mode}, cut ${secs(p.cutMs)}): ` +
        (p.promotedAfterMs === null ? 'no promotion' : `standby promoted after ${secs(p.promotedAfterMs)}`) +
        `; both accepted writes for ${secs(p.bothAcceptedMs)} (${p.ackedByOldAfterSplit} writes acknowledged by the old primary after the split)` +
        `; ${p.lostAcked} acknowledged writes lost` +
        (p.twoPrimariesForMs === null
          ? '; one primary throughout'
          : `; the operator found two primaries ${secs(p.twoPrimariesForMs)} after the network healed and demoted the old one`),
    );
  }
  out.push(`anomalies: ${s.anomalies.length}`);
  for (const a of s.anomalies)
    out.push(`  [${a.kind}] seed ${a.seed}, fault ${a.fault ?? '-'} (${a.faultKind ?? 'none'}): ${a.detail}`);
  for (const e of s.harnessErrors)
    out.push(`  [harness error] seed ${e.seed}: ${e.error.split('\n').slice(0, 3).join(' | ')}`);
  out.push(
    `replay one run with: npm run chaos -- ${arbiter ? '--arbiter --members M --ttl T ' : ''}--seed N --faults F (as above)`,
  );
  return out.join('\n');
}
