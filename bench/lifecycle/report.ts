// The lifecycle benchmark's report: every measure over its runs, each target with the ratio of
// the measure to it (MISSED where missed), and the growth of a rejoin with the database.

import type { NodeName } from '../../src/config/config.js';
import type { Machine } from '../lib/machine.js';
import { formatDuration } from '../lib/progress.js';
import { fmt, summarize, summaryTable, type Summary, type TableRow } from '../lib/stats.js';
import { pick } from '../failover/samples.js';
import { windowMs, type Options } from './options.js';
import type { RejoinGroup, RejoinSample, SwitchoverSample } from './samples.js';

export interface Target {
  name: string;
  /** The measure compared, in ms (or a count), and the limit it must stay under (or equal, for 0). */
  value: number | null;
  limit: number;
  shown: string;
  met: boolean | null;
  ratio: number | null;
}

/** Below this, the median of kill -> synchronous again after a failover on a small database. */
export const REJOIN_SMALL_MS = 5000;
export const SWITCHOVER_GAP_MS = 500;
export const SWITCHOVER_SYNC_MS = 3000;

export function summaries(switchovers: SwitchoverSample[], rejoins: RejoinSample[], growth: RejoinGroup[]) {
  const s = (xs: number[]): Summary | null => summarize(xs);
  return {
    switchover: {
      longestGap: s(switchovers.map((x) => x.longestGap)),
      firstWriteToSync: s(switchovers.map((x) => x.firstWriteToSync)),
      requestToSync: s(switchovers.map((x) => x.syncMs)),
      requestToPromote: s(pick(switchovers, (x) => x.promoteOkMs)),
      requestToFirstWrite: s(switchovers.map((x) => x.firstWriteMs)),
      reported: s(pick(switchovers, (x) => x.switchoverReportedMs)),
      acked: switchovers.reduce((n, x) => n + x.acked, 0),
      lost: switchovers.reduce((n, x) => n + x.lost, 0),
    },
    rejoin: rejoinSummary(rejoins),
    growth: growth.map((g) => ({
      sizeMB: g.sizeMB,
      method: g.method,
      scale: g.scale,
      fillMs: g.fillMs,
      databaseMB: g.samples[0]?.databaseMB ?? null,
      ...rejoinSummary(g.samples),
      errors: g.errors.length,
    })),
  };
}

function rejoinSummary(rs: RejoinSample[]) {
  const s = (xs: number[]): Summary | null => summarize(xs);
  return {
    total: s(rs.map((x) => x.total)),
    promote: s(pick(rs, (x) => x.promoteOkMs)),
    rejoinStart: s(pick(rs, (x) => x.rejoinStartMs)),
    rejoin: s(pick(rs, (x) => x.rejoin)),
    rejoinToSync: s(pick(rs, (x) => (x.rejoinOkMs === null ? null : x.total - x.rejoinOkMs))),
    methods: countBy(rs.map((x) => x.method ?? 'unknown')),
    acked: rs.reduce((n, x) => n + x.acked, 0),
    lost: rs.reduce((n, x) => n + x.lost, 0),
  };
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

export type Summaries = ReturnType<typeof summaries>;

export function evaluateTargets(sum: Summaries): Target[] {
  const t = (
    name: string,
    value: number | null | undefined,
    limit: number,
    shown: (v: number) => string,
    zero = false,
  ): Target => {
    if (value === null || value === undefined || !Number.isFinite(value))
      return { name, value: null, limit, shown: '-', met: null, ratio: null };
    return {
      name,
      value,
      limit,
      shown: shown(value),
      met: zero ? value === 0 : value < limit,
      ratio: zero ? null : value / limit,
    };
  };
  const ms = (v: number): string => `${Math.round(v)} ms`;
  const sw = sum.switchover;
  const targets = [
    t('switchover: longest write gap, median < 500 ms', sw.longestGap?.median, SWITCHOVER_GAP_MS, ms),
    t(
      'switchover: acknowledged writes lost = 0 (id by id)',
      sw.longestGap ? sw.lost : null,
      0,
      (v) => `${v} of ${sw.acked}`,
      true,
    ),
    t(
      'switchover: synchronous again within 3 s (max over runs)',
      sw.firstWriteToSync?.max,
      SWITCHOVER_SYNC_MS,
      ms,
    ),
    t(
      'rejoin, small database: kill -> sync standby, median < 5 s',
      sum.rejoin.total?.median,
      REJOIN_SMALL_MS,
      ms,
    ),
  ];
  // A rewind costs what changed, not the database's size: the small database's target holds at every size.
  for (const g of sum.growth.filter((x) => x.method === 'rewind'))
    targets.push(
      t(
        `rejoin by rewind, ${g.databaseMB ?? g.sizeMB} MB: kill -> sync standby, median < 5 s`,
        g.total?.median,
        REJOIN_SMALL_MS,
        ms,
      ),
    );
  return targets;
}

type Row = TableRow;

function table(title: string, rows: Row[]): string {
  return summaryTable(title, rows, 62);
}

function rejoinRows(rs: RejoinSample[]): Row[] {
  return [
    { label: 'kill -> promote ok (new primary keeper)', values: pick(rs, (x) => x.promoteOkMs) },
    { label: 'kill -> rejoin-start (old primary keeper)', values: pick(rs, (x) => x.rejoinStartMs) },
    { label: 'rejoin: rejoin-start -> rejoin ok logged', values: pick(rs, (x) => x.rejoin) },
    { label: '  of which pg_rewind or pg_basebackup', values: pick(rs, copyStep) },
    {
      label: 'rejoin ok -> the new primary lists it as sync',
      values: pick(rs, (x) => (x.rejoinOkMs === null ? null : x.total - x.rejoinOkMs)),
    },
    { label: 'total: kill -> old primary is the sync standby', values: rs.map((x) => x.total) },
  ];
}

/** From the rewinding (or basebackup) step to the next one, as the keeper logged them. */
function copyStep(x: RejoinSample): number | null {
  const i = x.steps.findIndex((s) => s.step === 'rewinding');
  const next = x.steps.findIndex((s, j) => j > i && s.step !== 'rewinding' && s.step !== 'basebackup');
  if (i < 0 || next < 0) return null;
  return (x.steps[next]?.atMs ?? 0) - (x.steps[i]?.atMs ?? 0);
}

export function report(
  opts: Options,
  sum: Summaries,
  targets: Target[],
  data: { switchovers: SwitchoverSample[]; rejoins: RejoinSample[]; growth: RejoinGroup[]; errors: string[] },
  machine: Machine,
  load: { start: number[]; end: number[] },
  durations: Record<string, number>,
): string {
  const out: string[] = [];
  out.push(
    `pg-keeper lifecycle benchmark: keepalive_time ${opts.keepaliveTime} s x keepalive_count ${opts.keepaliveCount} (window ${windowMs(opts)} ms), keepers as the OS user postgres with data_directory`,
    `machine: ${machine.cpus} x ${machine.cpuModel}${machine.cpuMHz ? ` @ ${machine.cpuMHz} MHz` : ''}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}`,
    `load average (1/5/15 min): start ${load.start.join(' ')}, end ${load.end.join(' ')} (${machine.foreignPostgresAtStart} postgres processes not ours at start)`,
    `time taken: ${Object.entries(durations)
      .map(([part, ms]) => `${part} ${formatDuration(ms)}`)
      .join(', ')}`,
    '',
  );
  const sw = data.switchovers;
  if (sw.length > 0) {
    out.push(
      table(
        `1. Planned switchover under a client writing all the time (${sw.length} runs, alternating; times from POST /switchover)`,
        [
          { label: 'longest write gap (consecutive acknowledgements)', values: sw.map((x) => x.longestGap) },
          { label: 'request -> promote ok (new primary keeper)', values: pick(sw, (x) => x.promoteOkMs) },
          {
            label: 'request -> first acknowledged write on the new primary',
            values: sw.map((x) => x.firstWriteMs),
          },
          {
            label: 'request -> switchover ok (old primary keeper)',
            values: pick(sw, (x) => x.switchoverOkMs),
          },
          { label: 'request -> new primary lists the old one as sync', values: sw.map((x) => x.syncMs) },
          {
            label: 'first write on the new primary -> synchronous again',
            values: sw.map((x) => x.firstWriteToSync),
          },
        ],
      ),
      `  acknowledged writes lost: ${sum.switchover.lost} of ${sum.switchover.acked}, checked id by id on the new primary`,
    );
    const stuck = sw.flatMap((x) =>
      (Object.entries(x.inProgressAfter) as [NodeName, number | null][])
        .filter(([, v]) => v !== 0)
        .map(([n, v]) => `${n} (${v ?? 'no sample'}) after a switchover asked of ${x.askedOf}'s keeper`),
    );
    if (stuck.length > 0)
      out.push(`  pg_keeper_switchover_in_progress not back to 0 two seconds after: ${stuck.join('; ')}`);
    out.push('');
  }
  if (data.rejoins.length > 0) {
    out.push(
      table(
        `2. Rejoin after a failover, small database (${data.rejoins.length} runs; SIGKILL of the primary's server, its keeper lives; auto_rejoin)`,
        rejoinRows(data.rejoins),
      ),
      `  methods: ${Object.entries(sum.rejoin.methods)
        .map(([m, n]) => `${m} ${n}`)
        .join(', ')}; acknowledged writes lost in the failovers: ${sum.rejoin.lost} of ${sum.rejoin.acked}` +
        `; WAL in the new primary's pg_wal at the kill (pg_rewind copies it all): median ${fmt(summarize(pick(data.rejoins, (x) => x.sourceWalMB))?.median ?? Number.NaN)} MB`,
      '',
    );
  }
  if (data.growth.length > 0) {
    out.push(
      '3. Rejoin against the database size (pgbench -i -s N; a pair without wal_log_hints cannot rewind: base backup)',
    );
    out.push(
      `  ${'size'.padEnd(9)}${'method'.padEnd(12)}${'n'.padStart(3)}${'kill->sync median'.padStart(19)}${'max'.padStart(8)}${'copy step median'.padStart(18)}${'vs rewind'.padStart(11)}${'vs smallest'.padStart(13)}${'WAL MB'.padStart(8)}${'fill'.padStart(8)}`,
    );
    const smallest = Math.min(...data.growth.map((g) => g.sizeMB));
    for (const g of data.growth) {
      const total = summarize(g.samples.map((x) => x.total));
      const copy = summarize(pick(g.samples, copyStep));
      const rewind = data.growth.find((x) => x.sizeMB === g.sizeMB && x.method === 'rewind');
      const base = data.growth.find((x) => x.sizeMB === smallest && x.method === g.method);
      const med = (grp: RejoinGroup | undefined): number =>
        summarize(grp?.samples.map((x) => x.total) ?? [])?.median ?? Number.NaN;
      const ratio = (a: number, b: number): string =>
        Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : '-';
      const methods = [...new Set(g.samples.map((x) => x.method ?? '?'))].join('+') || g.method;
      out.push(
        `  ${`${g.samples[0]?.databaseMB ?? g.sizeMB} MB`.padEnd(9)}${methods.padEnd(12)}${String(total?.n ?? 0).padStart(3)}` +
          `${fmt(total?.median ?? Number.NaN).padStart(19)}${fmt(total?.max ?? Number.NaN).padStart(8)}${fmt(copy?.median ?? Number.NaN).padStart(18)}` +
          `${ratio(total?.median ?? Number.NaN, med(rewind)).padStart(11)}${ratio(total?.median ?? Number.NaN, med(base)).padStart(13)}` +
          `${fmt(summarize(pick(g.samples, (x) => x.sourceWalMB))?.median ?? Number.NaN).padStart(8)}` +
          `${formatDuration(g.fillMs).padStart(8)}${g.errors.length > 0 ? `  ${g.errors.length} error(s)` : ''}`,
      );
    }
    out.push(
      "  WAL MB: the new primary's pg_wal at the kill, which pg_rewind copies in full besides the changed blocks",
      '',
    );
  }
  out.push('Targets:');
  for (const t of targets) {
    const verdict = t.met === null ? 'n/a (no samples)' : t.met ? 'met' : 'MISSED';
    const ratio = t.ratio === null ? '' : `${t.ratio.toFixed(2)}x`;
    out.push(`  ${t.name.padEnd(66)} ${t.shown.padStart(14)} ${ratio.padStart(7)}  ${verdict}`);
  }
  if (data.errors.length > 0) {
    out.push('', `${data.errors.length} error(s):`);
    for (const e of data.errors) out.push(`  ${e.split('\n')[0]}`);
  }
  return out.join('\n');
}
