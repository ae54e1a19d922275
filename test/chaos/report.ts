// The report of one or more runs: faults injected by kind, what the operator had to do, the
// application's longest write outage per fault kind, the anomalies (with their seeds), and the
// partition measurements. Text for people, and a JSON summary for files.

import type { RunResult } from './harness.js';
import { FAULT_KINDS } from './schedule.js';
import type { Anomaly, PartitionMeasurement } from './types.js';

export interface Summary {
  runs: number;
  seeds: number[];
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
  harnessErrors: { seed: number; error: string }[];
  aborted: boolean;
}

export function summarize(results: RunResult[]): Summary {
  const s: Summary = {
    runs: results.length,
    seeds: results.map((r) => r.seed),
    faultsByKind: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])),
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
  out.push(`two primaries found by the operator: ${s.twoPrimaries.length}`);
  for (const t of s.twoPrimaries)
    out.push(
      `  seed ${t.seed} fault ${t.fault} (${t.kind}): ${t.lostAcked} acknowledged writes on the demoted side`,
    );
  out.push(`partitions: ${s.partitions.length}`);
  for (const p of s.partitions) {
    out.push(
      `  seed ${p.seed} fault ${p.fault} (${p.mode}, cut ${secs(p.cutMs)}): ` +
        (p.promotedAfterMs === null ? 'no promotion' : `standby promoted after ${secs(p.promotedAfterMs)}`) +
        `; both accepted writes for ${secs(p.bothAcceptedMs)} (${p.ackedByOldAfterSplit} writes acknowledged by the old primary after the split)` +
        `; ${p.lostAcked} acknowledged writes lost` +
        `; the operator found two primaries ${secs(p.twoPrimariesForMs)} after the network healed and demoted the old one`,
    );
  }
  out.push(`anomalies: ${s.anomalies.length}`);
  for (const a of s.anomalies)
    out.push(`  [${a.kind}] seed ${a.seed}, fault ${a.fault ?? '-'} (${a.faultKind ?? 'none'}): ${a.detail}`);
  for (const e of s.harnessErrors)
    out.push(`  [harness error] seed ${e.seed}: ${e.error.split('\n').slice(0, 3).join(' | ')}`);
  out.push(`replay one run with: npm run chaos -- --seed N --faults F (N, F as above)`);
  return out.join('\n');
}
