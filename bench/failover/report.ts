// The failover benchmark's report: the summary of every measure over the runs, the targets and
// whether they were met, and the text printed at the end (its tables and comparison).

import { formatDuration } from '../lib/progress.js';
import type { Machine } from '../lib/machine.js';
import { summarize, type Summary } from '../lib/stats.js';
import { periodMs as periodOf, windowMs as windowOf, type Options } from './options.js';
import { pick, type FailoverSample, type ReturnSample, type RunResult } from './samples.js';

/** How many rebuilt standbys came up with replication already switched off. */
function inheritedLine(rs: ReturnSample[]): string {
  const seen = pick(rs, (x) => x.rebuiltStandbySyncNames);
  const empty = seen.filter((n) => n.value.trim() === '');
  const files = [...new Set(empty.map((n) => n.file ?? '?'))].join(', ');
  return (
    `  rebuilt node2 started with synchronous_standby_names = '' in ${empty.length} of ${seen.length} runs` +
    (empty.length > 0 ? ` (set in ${files}, copied from the async primary by pg_basebackup)` : '')
  );
}

/** The promotion as node2's server logged it, against the keeper's and the client's times. */
function serverRows(fo: FailoverSample[]): Row[] {
  const d = (f: (x: FailoverSample) => number | null): number[] => pick(fo, f);
  return [
    {
      label: "server: keeper's decision -> 'received promote request'",
      values: d((x) =>
        x.server.promoteRequestMs === null ? null : x.server.promoteRequestMs - x.decisionMs,
      ),
    },
    {
      label: "server: promote request -> 'ready to accept connections'",
      values: d((x) =>
        x.server.readyMs === null || x.server.promoteRequestMs === null
          ? null
          : x.server.readyMs - x.server.promoteRequestMs,
      ),
    },
    {
      label: 'server: ready -> reload (synchronous_standby_names cleared)',
      values: d((x) =>
        x.server.reloadMs === null || x.server.readyMs === null ? null : x.server.reloadMs - x.server.readyMs,
      ),
    },
    {
      label: 'server: ready -> first ack on node2',
      values: d((x) => (x.server.readyMs === null ? null : x.firstWriteMs - x.server.readyMs)),
    },
  ];
}

interface Row {
  label: string;
  values: number[];
  /** Show median and max as multiples of the window. */
  ratio?: boolean;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(1);
}

function table(title: string, rows: Row[], windowMs: number): string {
  const head = `${'  ms'.padEnd(62)}${['n', 'min', 'median', 'p90', 'max'].map((h) => h.padStart(8)).join('')}   median/W   max/W`;
  const lines = [title, head];
  for (const row of rows) {
    const s = summarize(row.values);
    if (!s) {
      lines.push(`  ${row.label.padEnd(60)}${'0'.padStart(8)}   (no samples)`);
      continue;
    }
    const cells = [String(s.n), fmt(s.min), fmt(s.median), fmt(s.p90), fmt(s.max)]
      .map((c) => c.padStart(8))
      .join('');
    const ratio = row.ratio
      ? `   ${`${(s.median / windowMs).toFixed(2)}x`.padStart(8)}${`${(s.max / windowMs).toFixed(2)}x`.padStart(8)}`
      : '';
    lines.push(`  ${row.label.padEnd(60)}${cells}${ratio}`);
  }
  return lines.join('\n');
}

export interface Target {
  name: string;
  value: string;
  met: boolean | null;
  note?: string;
}

export const COMPARISON = {
  note: 'measured elsewhere on the same kind of machine, not by this benchmark',
  failoverMedianS: { repmgr: 4.6, pg_auto_failover: 4.4, Patroni: 20 },
  standbyLossStallS: { repmgr: 1.7, pg_auto_failover: 1.8, Patroni: 1.1 },
} as const;

export type Summaries = ReturnType<typeof summaries>;

export function summaries(runs: RunResult[], periodMs: number) {
  const fo = pick(runs, (r) => r.failover);
  const sl = pick(runs, (r) => r.standbyLoss);
  const rs = pick(runs, (r) => r.returnToSync);
  const hb = pick(runs, (r) => r.heartbeats);
  const intervals = hb.flatMap((h) => h.intervals);
  const hbSummary = summarize(intervals);
  const jitter = summarize(intervals.map((v) => Math.abs(v - periodMs)));
  const counted = hb.map((h) => h.counter).filter((c): c is NonNullable<typeof c> => c !== null);
  const beats = counted.reduce((s, c) => s + c.count, 0);
  const elapsed = counted.reduce((s, c) => s + c.elapsedMs, 0);
  const s = (xs: number[]): Summary | null => summarize(xs);
  return {
    failover: {
      detection: s(fo.map((x) => x.detection)),
      promotion: s(fo.map((x) => x.promotion)),
      firstWrite: s(fo.map((x) => x.firstWrite)),
      decisionToWrite: s(fo.map((x) => x.decisionToWrite)),
      total: s(fo.map((x) => x.total)),
      promoteReported: s(pick(fo, (x) => x.promoteReportedMs)),
      firstMiss: s(pick(fo, (x) => x.firstMissMs)),
      ackedOnOldPrimary: fo.reduce((n, x) => n + x.ackedOnOldPrimary, 0),
      lost: fo.reduce((n, x) => n + x.lost, 0),
    },
    standbyLoss: {
      decision: s(sl.map((x) => x.decisionMs)),
      switchOk: s(sl.map((x) => x.switchOkMs)),
      stall: s(sl.map((x) => x.stall)),
      release: s(sl.map((x) => x.release)),
      releaseAfterSwitch: s(sl.map((x) => x.releaseAfterSwitch)),
      baselineLatency: s(sl.map((x) => x.baselineLatencyMs)),
    },
    returnToSync: {
      rebuild: s(rs.map((x) => x.rebuild)),
      upToStreaming: s(pick(rs, (x) => x.upToStreaming)),
      upToRestore: s(rs.map((x) => x.upToRestore)),
      upToSyncSeen: s(rs.map((x) => x.upToSyncSeen)),
      maxLatencyDuringRestore: s(rs.map((x) => x.maxLatencyDuringRestore)),
      maxLatencyDuringRebuild: s(rs.map((x) => x.maxLatencyDuringRebuild)),
    },
    heartbeats: {
      method:
        "intervals between consecutive 'heartbeat-failed' log lines of node1's keeper while node2 is down",
      intervals: hbSummary,
      meanPeriodMs: hbSummary?.mean ?? null,
      driftPct: hbSummary ? ((hbSummary.mean - periodMs) / periodMs) * 100 : null,
      jitterP99Ms: jitter?.p99 ?? null,
      jitter,
      counterCrossCheck:
        beats > 0
          ? {
              method:
                'time since the first tick / (pg_keeper_heartbeats_total - 1 + 0.5), summed over runs: a scrape falls on average half a period after the last completed beat',
              beats,
              elapsedMs: elapsed,
              periodMs: elapsed / (beats + counted.length / 2),
              driftPct: ((elapsed / (beats + counted.length / 2) - periodMs) / periodMs) * 100,
            }
          : null,
    },
  };
}

export function evaluateTargets(sum: Summaries, opts: Options, completedFailovers: number): Target[] {
  const applicable = opts.keepaliveTime === 0.2 && opts.keepaliveCount === 3;
  const na = applicable ? undefined : 'targets are set for keepalive 0.2 x 3';
  const t = (
    name: string,
    value: number | null | undefined,
    ok: (v: number) => boolean,
    shown: string,
    scoped = true,
  ): Target => {
    if (value === null || value === undefined || !Number.isFinite(value))
      return { name, value: '-', met: null, note: 'no samples' };
    if (scoped && !applicable) return { name, value: shown, met: null, note: na };
    return { name, value: shown, met: ok(value) };
  };
  const fo = sum.failover;
  const sl = sum.standbyLoss;
  const ms = (v: number | undefined): string => (v === undefined ? '-' : `${Math.round(v)} ms`);
  return [
    t(
      'failover (kill -> first write on the new primary) median < 1000 ms',
      fo.total?.median,
      (v) => v < 1000,
      ms(fo.total?.median),
    ),
    t('failover max < 1500 ms', fo.total?.max, (v) => v < 1500, ms(fo.total?.max)),
    t(
      'no acknowledged write lost',
      completedFailovers > 0 ? fo.lost : null,
      (v) => v === 0,
      `${fo.lost} lost of ${fo.ackedOnOldPrimary} acknowledged`,
      false,
    ),
    t(
      'standby-loss stall (longest commit) median < 1000 ms',
      sl.stall?.median,
      (v) => v < 1000,
      `${ms(sl.stall?.median)} (max ${ms(sl.stall?.max)})`,
    ),
    t(
      "keeper's decision -> first committed write median < 250 ms",
      fo.decisionToWrite?.median,
      (v) => v < 250,
      ms(fo.decisionToWrite?.median),
    ),
    t(
      'heartbeat period drift < 1 %',
      sum.heartbeats.driftPct,
      (v) => Math.abs(v) < 1,
      sum.heartbeats.driftPct === null ? '-' : `${sum.heartbeats.driftPct.toFixed(3)} %`,
      false,
    ),
  ];
}

export function report(
  runs: RunResult[],
  opts: Options,
  sum: Summaries,
  targets: Target[],
  machine: Machine,
  load: { start: number[]; end: number[] },
): string {
  const windowMs = windowOf(opts);
  const periodMs = periodOf(opts);
  const fo = pick(runs, (r) => r.failover);
  const sl = pick(runs, (r) => r.standbyLoss);
  const rs = pick(runs, (r) => r.returnToSync);
  const ok = runs.filter((r) => !r.error).length;
  const runLoads = runs.map((r) => r.loadavgBefore[0] ?? 0).concat(runs.map((r) => r.loadavgAfter[0] ?? 0));
  const out: string[] = [];
  out.push(
    `pg-keeper failover benchmark: keepalive_time ${opts.keepaliveTime} s x keepalive_count ${opts.keepaliveCount} = window W = ${windowMs} ms`,
    `${runs.length} runs (${ok} completed); per run two fresh pairs: one for standby loss, heartbeats and return to sync, one for the failover`,
    `machine: ${machine.cpus} x ${machine.cpuModel}${machine.cpuMHz ? ` @ ${machine.cpuMHz} MHz` : ''}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}`,
    `load average (1/5/15 min): start ${load.start.join(' ')}, end ${load.end.join(' ')}; 1-min over the runs ${Math.min(...runLoads).toFixed(2)}..${Math.max(...runLoads).toFixed(2)}` +
      ` (other work on this machine counts: ${machine.foreignPostgresAtStart} postgres processes not ours at start)`,
    '',
  );
  out.push(
    table(
      '1. Failover: SIGKILL of the primary (every process) -> first committed write on the new primary',
      [
        {
          label: "detection: kill -> keeper's promote decision",
          values: fo.map((x) => x.detection),
          ratio: true,
        },
        { label: 'promotion: decision -> promote ok logged', values: fo.map((x) => x.promotion) },
        { label: 'first write: promote ok -> first ack on node2', values: fo.map((x) => x.firstWrite) },
        { label: 'decision -> first ack on node2', values: fo.map((x) => x.decisionToWrite) },
        { label: 'total: kill -> first ack on node2', values: fo.map((x) => x.total), ratio: true },
        {
          label: '(kill -> first failed heartbeat of node2 keeper)',
          values: pick(fo, (x) => x.firstMissMs),
        },
        {
          label: '(promote as timed by the keeper itself)',
          values: pick(fo, (x) => x.promoteReportedMs),
        },
        ...serverRows(fo),
      ],
      windowMs,
    ),
    `  acknowledged writes lost: ${sum.failover.lost} of ${sum.failover.ackedOnOldPrimary} acknowledged by the old primary over ${fo.length} failovers` +
      `; in-flight (unacknowledged) writes found on the new primary: ${fo.reduce((n, x) => n + x.unacknowledgedPresent, 0)}`,
    '',
    table(
      '2. Standby loss: SIGKILL of the standby -> commits flow again on the primary',
      [
        { label: "kill -> keeper's switch decision", values: sl.map((x) => x.decisionMs), ratio: true },
        { label: 'kill -> switch-to-async ok logged', values: sl.map((x) => x.switchOkMs), ratio: true },
        { label: 'write stall (longest commit latency)', values: sl.map((x) => x.stall), ratio: true },
        {
          label: 'kill -> first commit completed after the stall',
          values: sl.map((x) => x.release),
          ratio: true,
        },
        { label: 'switch-to-async logged -> that commit acked', values: sl.map((x) => x.releaseAfterSwitch) },
        { label: '(commit latency before the kill, median)', values: sl.map((x) => x.baselineLatencyMs) },
        {
          label: '(server log: kill -> reload on node1)',
          values: pick(sl, (x) => x.serverReloadMs),
        },
      ],
      windowMs,
    ),
    '',
    table(
      '3. Return to sync: rebuildAsStandby(node2, node1) while writing -> synchronous replication restored',
      [
        { label: 'rebuild: pg_basebackup + start, until node2 runs', values: rs.map((x) => x.rebuild) },
        {
          label: 'rebuild finished -> streaming (pg_stat_replication)',
          values: pick(rs, (x) => x.upToStreaming),
        },
        {
          label: 'rebuild finished -> restore-sync ok logged',
          values: rs.map((x) => x.upToRestore),
          ratio: true,
        },
        {
          label: 'rebuild finished -> node2 sync in pg_stat_replication',
          values: rs.map((x) => x.upToSyncSeen),
          ratio: true,
        },
        { label: 'max commit latency during the restore', values: rs.map((x) => x.maxLatencyDuringRestore) },
        {
          label: '(max commit latency during the whole rebuild)',
          values: rs.map((x) => x.maxLatencyDuringRebuild),
        },
      ],
      windowMs,
    ),
    inheritedLine(rs),
    '',
  );
  const hb = sum.heartbeats;
  const hs = hb.intervals;
  out.push(
    `4. Heartbeat period (configured ${periodMs} ms), from node1's keeper log while its peer is down: ${hs?.n ?? 0} intervals`,
    hs
      ? `  mean period ${hs.mean.toFixed(2)} ms, drift ${(hb.driftPct ?? 0).toFixed(3)} %, jitter |interval - ${periodMs}| p99 ${fmt(hb.jitterP99Ms ?? Number.NaN)} ms` +
          ` (intervals min ${fmt(hs.min)} / median ${fmt(hs.median)} / p90 ${fmt(hs.p90)} / max ${fmt(hs.max)} ms)`
      : '  no samples',
    hb.counterCrossCheck
      ? `  cross-check, pg_keeper_heartbeats_total over ${formatDuration(hb.counterCrossCheck.elapsedMs)} of keeper time: ${hb.counterCrossCheck.beats} beats,` +
          ` period ${hb.counterCrossCheck.periodMs.toFixed(2)} ms (${hb.counterCrossCheck.driftPct.toFixed(2)} %, coarse: each run's count is known to +-0.5 beat)`
      : '  (no /metrics cross-check)',
    '',
  );
  out.push(
    'Targets' + (opts.keepaliveTime === 0.2 && opts.keepaliveCount === 3 ? ':' : ' (set for 0.2 x 3):'),
  );
  for (const t of targets) {
    const verdict = t.met === null ? `n/a${t.note ? ` (${t.note})` : ''}` : t.met ? 'met' : 'MISSED';
    out.push(`  ${t.name.padEnd(66)} ${t.value.padEnd(26)} ${verdict}`);
  }
  out.push(
    '',
    `Comparison (${COMPARISON.note}):`,
    `  ${''.padEnd(34)}${'failover median'.padStart(17)}${'standby-loss stall'.padStart(20)}`,
  );
  for (const tool of ['repmgr', 'pg_auto_failover', 'Patroni'] as const) {
    out.push(
      `  ${tool.padEnd(34)}${`${COMPARISON.failoverMedianS[tool]} s`.padStart(17)}${`${COMPARISON.standbyLossStallS[tool]} s`.padStart(20)}`,
    );
  }
  const sec = (v: number | undefined): string => (v === undefined ? '-' : `${(v / 1000).toFixed(2)} s`);
  out.push(
    `  ${`pg-keeper ${opts.label} (this benchmark)`.padEnd(34)}${sec(sum.failover.total?.median).padStart(17)}${sec(sum.standbyLoss.stall?.median).padStart(20)}`,
  );
  const failed = runs.filter((r) => r.error);
  if (failed.length > 0) {
    out.push('', `${failed.length} run(s) failed:`);
    for (const r of failed) out.push(`  run ${r.index}: ${(r.error ?? '').split('\n')[0]}`);
  }
  return out.join('\n');
}
