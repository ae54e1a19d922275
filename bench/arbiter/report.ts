// The arbiter benchmark's report: per scenario a table of its measures over the runs (n, min,
// median, p90, max, and the ratio of median and max to the scenario's target), the targets with
// met / MISSED and the ratio, and the machine it ran on.

import type { Machine } from '../lib/machine.js';
import { summarize, type Summary } from '../lib/stats.js';
import { rigFor, streamTimeoutMs, windowMs, type Options } from './options.js';
import type {
  EtcdLeaderSample,
  EtcdOutageSample,
  HostLossSample,
  IsolateSample,
  PartitionSample,
  ScenarioName,
  ScenarioResult,
  ServerCrashSample,
  StandbyCutSample,
  WriteCheck,
} from './samples.js';

/** Patroni's failover after the loss of the leader's host at its documented minimum (ttl 20 s). */
export const COMPARISON = {
  note: 'Patroni: failover after the loss of the leader host waits for the leader key to expire, ttl 20 s at its documented minimum; measured elsewhere, not by this benchmark',
  patroniHostLossS: 20,
} as const;

export interface Target {
  scenario: ScenarioName;
  name: string;
  value: string;
  /** value / limit where the target is a bound (lower is better). */
  ratio: number | null;
  met: boolean | null;
  note?: string;
}

interface Row {
  label: string;
  values: number[];
  /** Show median and max against this limit (ms). */
  limitMs?: number;
}

const of = <T>(rs: ScenarioResult[], s: ScenarioName): T[] =>
  rs.filter((r) => r.scenario === s && r.sample !== undefined).map((r) => r.sample as T);
const nums = <T>(xs: T[], f: (x: T) => number | null | undefined): number[] =>
  xs.map(f).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
const sumWrites = (ws: WriteCheck[]): { acked: number; lost: number; dual: number; dualMs: number } => ({
  acked: ws.reduce((n, w) => n + w.ackedOld, 0),
  lost: ws.reduce((n, w) => n + w.lost, 0),
  dual: ws.reduce((n, w) => n + w.dualWrites, 0),
  dualMs: ws.reduce((m, w) => Math.max(m, w.dualWritableMs), 0),
});

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(1);
}

function table(title: string, rows: Row[]): string {
  const head = `${'  ms'.padEnd(64)}${['n', 'min', 'median', 'p90', 'max'].map((h) => h.padStart(8)).join('')}  median/limit  max/limit`;
  const lines = [title, head];
  for (const row of rows) {
    const s = summarize(row.values);
    if (!s) {
      lines.push(`  ${row.label.padEnd(62)}${'0'.padStart(8)}   (no samples)`);
      continue;
    }
    const cells = [String(s.n), fmt(s.min), fmt(s.median), fmt(s.p90), fmt(s.max)]
      .map((c) => c.padStart(8))
      .join('');
    const ratio = row.limitMs
      ? `${`${(s.median / row.limitMs).toFixed(2)}x`.padStart(14)}${`${(s.max / row.limitMs).toFixed(2)}x`.padStart(11)}`
      : '';
    lines.push(`  ${row.label.padEnd(62)}${cells}${ratio}`);
  }
  return lines.join('\n');
}

/** Every measure's summary, per scenario, for the JSON file. */
export function summaries(rs: ScenarioResult[]): Record<string, Record<string, Summary | number | null>> {
  const out: Record<string, Record<string, Summary | number | null>> = {};
  for (const [scenario, rows] of Object.entries(tables(rs, null))) {
    out[scenario] = Object.fromEntries(rows.map((r) => [r.label, summarize(r.values)]));
  }
  return out;
}

/** The rows of each scenario's table; limits need the options (null: without ratios). */
function tables(rs: ScenarioResult[], opts: Options | null): Record<ScenarioName, Row[]> {
  const w = opts ? windowMs(opts) : 0;
  const lim = (s: ScenarioName, f: (ttlMs: number) => number): number | undefined =>
    opts ? f(rigFor(opts, s).ttl * 1000) : undefined;
  const pa = of<PartitionSample>(rs, 'partition');
  const is = of<IsolateSample>(rs, 'isolate-primary');
  const hl = of<HostLossSample>(rs, 'host-loss');
  const sc = of<ServerCrashSample>(rs, 'server-crash');
  const eo = of<EtcdOutageSample>(rs, 'etcd-outage');
  const st = of<StandbyCutSample>(rs, 'standby-cut');
  const el = of<EtcdLeaderSample>(rs, 'etcd-leader').flatMap((x) => x.faults);
  const takeoverLimit = (s: ScenarioName): number | undefined => lim(s, (ttl) => ttl + w + 1000);
  return {
    partition: [
      { label: 'cut -> "async" recorded in etcd', values: nums(pa, (x) => x.recordAsyncMs) },
      { label: 'cut -> switch-to-async ok logged', values: nums(pa, (x) => x.switchOkMs) },
      { label: 'write stall on the primary (longest commit)', values: nums(pa, (x) => x.stallMs) },
      {
        label: 'cut -> commits flow again',
        values: nums(pa, (x) => x.resumedMs),
        limitMs: opts ? w + 1000 : undefined,
      },
      { label: 'healed -> "sync" recorded again', values: nums(pa, (x) => x.healToSyncRecordedMs) },
    ],
    'isolate-primary': [
      { label: 'cut -> the isolated keeper counts its lease gone', values: nums(is, (x) => x.leaseRanOutMs) },
      { label: 'cut -> etcd: lease expired', values: nums(is, (x) => x.etcdExpiryMs) },
      {
        label: "(keeper's count - etcd's expiry; the watch resolves +-20 ms)",
        values: nums(is, (x) => diff(x.leaseRanOutMs, x.etcdExpiryMs)),
      },
      { label: 'cut -> etcd: key deleted', values: nums(is, (x) => x.etcdDeletedMs) },
      { label: 'cut -> standby claimed the lease', values: nums(is, (x) => x.claimOkMs) },
      {
        label: 'cut -> standby promoted (promote ok)',
        values: nums(is, (x) => x.promoteOkMs),
        limitMs: takeoverLimit('isolate-primary'),
      },
      { label: 'cut -> first write on the new primary', values: nums(is, (x) => x.firstWriteMs) },
      {
        label: '(key deleted -> claimed: the standby tick)',
        values: nums(is, (x) => diff(x.claimOkMs, x.etcdDeletedMs)),
      },
      {
        label: 'both /primary 200, longest (cut held 2 s after the takeover)',
        values: nums(is, (x) => x.bothPrimary200Ms),
      },
    ],
    'host-loss': [
      { label: 'kill -> etcd: lease expired (lease left)', values: nums(hl, (x) => x.etcdExpiryMs) },
      {
        label: 'etcd: expired -> key deleted (revocation)',
        values: nums(hl, (x) => diff(x.etcdDeletedMs, x.etcdExpiryMs)),
      },
      {
        label: 'key deleted -> standby claimed (its tick)',
        values: nums(hl, (x) => diff(x.claimOkMs, x.etcdDeletedMs)),
      },
      { label: 'claimed -> promote ok', values: nums(hl, (x) => diff(x.promoteOkMs, x.claimOkMs)) },
      { label: 'promote ok -> first write', values: nums(hl, (x) => diff(x.firstWriteMs, x.promoteOkMs)) },
      {
        label: 'failover: kill -> first write on the new primary',
        values: nums(hl, (x) => x.firstWriteMs),
        limitMs: takeoverLimit('host-loss'),
      },
    ],
    'server-crash': [
      { label: 'kill -> old keeper gave the lease up', values: nums(sc, (x) => x.releaseOkMs) },
      { label: 'kill -> etcd: key deleted', values: nums(sc, (x) => x.etcdDeletedMs) },
      { label: "kill -> standby's promote decision", values: nums(sc, (x) => x.decisionMs) },
      { label: 'kill -> promote ok', values: nums(sc, (x) => x.promoteOkMs) },
      {
        label: 'failover: kill -> first write on the new primary',
        values: nums(sc, (x) => x.firstWriteMs),
        limitMs: opts ? w + 1000 : undefined,
      },
    ],
    'etcd-outage': [
      { label: 'kill -> pg_keeper_arbiter_up 0 (primary)', values: nums(eo, (x) => x.upZeroMs.node1) },
      { label: 'kill -> pg_keeper_arbiter_up 0 (standby)', values: nums(eo, (x) => x.upZeroMs.node2) },
      {
        label: 'restart -> etcd healthy again (its own start)',
        values: nums(eo, (x) => x.etcdHealthyAfterRestartMs),
      },
      {
        label: 'restart -> pg_keeper_arbiter_up 1 (primary)',
        values: nums(eo, (x) => x.upOneAfterRestartMs.node1),
      },
      {
        label: 'restart -> pg_keeper_arbiter_up 1 (standby)',
        values: nums(eo, (x) => x.upOneAfterRestartMs.node2),
      },
      { label: 'restart -> primary holds the lease again', values: nums(eo, (x) => x.reclaimAfterRestartMs) },
      {
        label: 'write stall (longest commit)',
        values: nums(eo, (x) => x.stallMs),
        limitMs: opts ? 1000 : undefined,
      },
      { label: 'longest time without an acknowledged write', values: nums(eo, (x) => x.longestGapMs) },
    ],
    'standby-cut': [
      { label: 'kill -> etcd: key deleted (standby still cut)', values: nums(st, (x) => x.etcdDeletedMs) },
      { label: 'reconnected -> standby claimed the lease', values: nums(st, (x) => x.claimOkMs) },
      { label: 'reconnected -> promote ok', values: nums(st, (x) => x.promoteOkMs) },
      {
        label: 'failover: reconnected -> first write',
        values: nums(st, (x) => x.firstWriteMs),
        limitMs: takeoverLimit('standby-cut'),
      },
    ],
    'etcd-leader': (['kill', 'freeze'] as const).flatMap((f): Row[] => {
      const xs = el.filter((x) => x.fault === f);
      return [
        {
          label: `leader ${f === 'kill' ? 'killed' : 'frozen'} 2 s: -> another member leads`,
          values: nums(xs, (x) => x.newLeaderMs),
        },
        { label: `  renewals failed`, values: nums(xs, (x) => x.renewalFailures) },
        { label: `  least lease left at a failed renewal`, values: nums(xs, (x) => x.minLeaseRemainingMs) },
        { label: `  write stall (longest commit)`, values: nums(xs, (x) => x.stallMs) },
      ];
    }),
  };
}

const diff = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : a - b);

function bound(
  scenario: ScenarioName,
  name: string,
  values: number[],
  limitMs: number,
  pick: 'max' | 'median',
): Target {
  const s = summarize(values);
  if (!s) return { scenario, name, value: '-', ratio: null, met: null, note: 'no samples' };
  const v = pick === 'max' ? s.max : s.median;
  return {
    scenario,
    name,
    value: `${pick} ${Math.round(v)} ms (median ${Math.round(s.median)}, max ${Math.round(s.max)}, n ${s.n})`,
    ratio: v / limitMs,
    met: v <= limitMs,
  };
}

function count(scenario: ScenarioName, name: string, bad: number, of_: number, what: string): Target {
  if (of_ === 0) return { scenario, name, value: '-', ratio: null, met: null, note: 'no samples' };
  return { scenario, name, value: `${bad} ${what} (of ${of_})`, ratio: null, met: bad === 0 };
}

export function evaluateTargets(rs: ScenarioResult[], opts: Options): Target[] {
  const w = windowMs(opts);
  const ttl = (s: ScenarioName): number => rigFor(opts, s).ttl * 1000;
  const t: Target[] = [];
  const pa = of<PartitionSample>(rs, 'partition');
  if (opts.scenarios.includes('partition')) {
    t.push(
      count('partition', 'no promotion', pa.filter((x) => x.promoted).length, pa.length, 'runs promoted'),
    );
    t.push(
      bound(
        'partition',
        `commits flow again <= W + 1 s = ${w + 1000} ms`,
        nums(pa, (x) => x.resumedMs),
        w + 1000,
        'max',
      ),
    );
    const ws = sumWrites(pa.map((x) => x.writes));
    t.push(count('partition', '0 acknowledged writes lost', ws.lost, ws.acked, 'lost'));
    t.push(
      count(
        'partition',
        "the primary's writes all on the standby once sync is back",
        pa.reduce((n, x) => n + Math.max(0, x.missingOnStandby), 0) +
          pa.filter((x) => x.missingOnStandby < 0).length,
        pa.length,
        'missing (or sync not back)',
      ),
    );
  }
  const is = of<IsolateSample>(rs, 'isolate-primary');
  if (opts.scenarios.includes('isolate-primary')) {
    const lim = ttl('isolate-primary') + w + 1000;
    t.push(
      bound(
        'isolate-primary',
        `standby promoted <= TTL + W + 1 s = ${lim} ms`,
        nums(is, (x) => x.promoteOkMs),
        lim,
        'max',
      ),
    );
    t.push(
      count(
        'isolate-primary',
        'promoted in every run',
        is.filter((x) => x.promoteOkMs === null).length,
        is.length,
        'runs without',
      ),
    );
    const ws = sumWrites(is.map((x) => x.writes));
    t.push(count('isolate-primary', '0 acknowledged writes lost', ws.lost, ws.acked, 'lost'));
    t.push(
      count(
        'isolate-primary',
        'no moment both acknowledge writes',
        ws.dual,
        ws.acked,
        `writes (longest ${ws.dualMs} ms)`,
      ),
    );
    t.push(
      count(
        'isolate-primary',
        'the old primary acknowledges nothing after the cut',
        is.reduce((n, x) => n + x.oldAckedAfterCut, 0),
        is.length,
        'writes',
      ),
    );
    t.push(
      count(
        'isolate-primary',
        "after the heal the old primary's /primary is 503",
        is.filter((x) => x.oldPrimaryCheckAfterHeal !== 503).length,
        is.length,
        'runs not 503',
      ),
    );
  }
  const hl = of<HostLossSample>(rs, 'host-loss');
  if (opts.scenarios.includes('host-loss')) {
    const lim = ttl('host-loss') + w + 1000;
    const v = nums(hl, (x) => x.firstWriteMs);
    t.push(bound('host-loss', `failover <= TTL + W + 1 s = ${lim} ms`, v, lim, 'max'));
    if (opts.ttl === 3)
      t.push(bound('host-loss', 'goal: failover median <= 3.5 s at TTL 3', v, 3500, 'median'));
    const s = summarize(v);
    if (s)
      t.push({
        scenario: 'host-loss',
        name: `against Patroni's ${COMPARISON.patroniHostLossS} s`,
        value: `median ${(s.median / 1000).toFixed(2)} s`,
        ratio: s.median / (COMPARISON.patroniHostLossS * 1000),
        met: null,
        note: 'comparison, not a target',
      });
    const ws = sumWrites(hl.map((x) => x.writes));
    t.push(count('host-loss', '0 acknowledged writes lost', ws.lost, ws.acked, 'lost'));
  }
  const sc = of<ServerCrashSample>(rs, 'server-crash');
  if (opts.scenarios.includes('server-crash')) {
    t.push(
      bound(
        'server-crash',
        `failover at TTL ${ttl('server-crash') / 1000} <= W + 1 s = ${w + 1000} ms`,
        nums(sc, (x) => x.firstWriteMs),
        w + 1000,
        'max',
      ),
    );
    const ws = sumWrites(sc.map((x) => x.writes));
    t.push(count('server-crash', '0 acknowledged writes lost', ws.lost, ws.acked, 'lost'));
  }
  const eo = of<EtcdOutageSample>(rs, 'etcd-outage');
  if (opts.scenarios.includes('etcd-outage')) {
    t.push(
      count('etcd-outage', 'no promotion', eo.filter((x) => x.promoted).length, eo.length, 'runs promoted'),
    );
    t.push(
      bound(
        'etcd-outage',
        'no write stall over 1 s',
        nums(eo, (x) => x.stallMs),
        1000,
        'max',
      ),
    );
    t.push(
      count(
        'etcd-outage',
        'pg_keeper_arbiter_up 0, then 1 again (both keepers)',
        eo.filter((x) =>
          [x.upZeroMs.node1, x.upZeroMs.node2, x.upOneAfterRestartMs.node1, x.upOneAfterRestartMs.node2].some(
            (v) => v === null,
          ),
        ).length,
        eo.length,
        'runs without',
      ),
    );
  }
  const st = of<StandbyCutSample>(rs, 'standby-cut');
  if (opts.scenarios.includes('standby-cut')) {
    const lim = ttl('standby-cut') + w + 1000;
    t.push(
      count(
        'standby-cut',
        'no promotion while cut',
        st.filter((x) => x.promotedWhileCut).length,
        st.length,
        'runs promoted',
      ),
    );
    t.push(
      bound(
        'standby-cut',
        `failover after reaching etcd <= TTL + W + 1 s = ${lim} ms`,
        nums(st, (x) => x.firstWriteMs),
        lim,
        'max',
      ),
    );
  }
  const el = of<EtcdLeaderSample>(rs, 'etcd-leader').flatMap((x) => x.faults);
  if (opts.scenarios.includes('etcd-leader')) {
    const ttlS = ttl('etcd-leader') / 1000;
    t.push(
      count(
        'etcd-leader',
        `no lease lost at TTL ${ttlS} (leader killed or frozen 2 s)`,
        el.reduce((n, x) => n + x.leasesLost, 0),
        el.length,
        'leases lost',
      ),
    );
    t.push(
      count('etcd-leader', 'no failover', el.filter((x) => x.promoted).length, el.length, 'faults promoted'),
    );
  }
  return t;
}

export function report(
  rs: ScenarioResult[],
  opts: Options,
  targets: Target[],
  machine: Machine & { etcd: string },
  load: { start: number[]; end: number[] },
): string {
  const w = windowMs(opts);
  const ok = rs.filter((r) => !r.error).length;
  const runLoads = rs.flatMap((r) => [r.loadavgBefore[0] ?? 0, r.loadavgAfter[0] ?? 0]);
  const out: string[] = [
    `pg-keeper arbiter benchmark: keepalive_time ${opts.keepaliveTime} s x keepalive_count ${opts.keepaliveCount} = W = ${w} ms; etcd_lease_ttl ${opts.ttl} s ` +
      `(server-crash ${rigFor(opts, 'server-crash').ttl} s, etcd-leader ${rigFor(opts, 'etcd-leader').ttl} s on 3 members)`,
    `${rs.length} scenario runs (${ok} completed), ${opts.runs} of each; every one on a fresh pair, keepers and etcd`,
    `machine: ${machine.cpus} x ${machine.cpuModel}${machine.cpuMHz ? ` @ ${machine.cpuMHz} MHz` : ''}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}, etcd ${machine.etcd}`,
    `load average (1/5/15 min): start ${load.start.join(' ')}, end ${load.end.join(' ')}; 1-min over the runs ${Math.min(...runLoads).toFixed(2)}..${Math.max(...runLoads).toFixed(2)}` +
      ` (${machine.foreignPostgresAtStart} postgres processes not ours at start)`,
    '',
  ];
  const titles: Record<ScenarioName, string> = {
    partition:
      '1. Partition between the nodes (black hole), both reach etcd: no promotion; the primary writes on once ' +
      `its standby has been silent for stream_timeout (${streamTimeoutMs(opts)} ms; W had connections been reset)`,
    'isolate-primary':
      '2. The primary cut from the standby and from etcd: the standby promotes after the lease',
    'host-loss':
      "3. Loss of the primary's whole host (server and keeper SIGKILLed): failover after the lease",
    'server-crash': `4. The primary's server SIGKILLed, its keeper alive, TTL ${rigFor(opts, 'server-crash').ttl} s: the lease handed over`,
    'etcd-outage': `5. etcd killed for twice the TTL (${2 * opts.ttl} s) while the pair is healthy`,
    'standby-cut':
      "6. The standby cut from etcd while the primary's host is lost: failover once it reaches etcd again",
    'etcd-leader': `7. A 3-member etcd's leader killed, then frozen, for 2 s (TTL ${rigFor(opts, 'etcd-leader').ttl} s)`,
  };
  const tabs = tables(rs, opts);
  for (const s of opts.scenarios) {
    out.push(table(titles[s], tabs[s]));
    const extra = extraLine(rs, s);
    if (extra) out.push(extra);
    out.push('');
  }
  out.push('Targets:');
  for (const t of targets) {
    const verdict = t.met === null ? `${t.note ?? 'n/a'}` : t.met ? 'met' : 'MISSED';
    const ratio = t.ratio === null ? '' : ` (${t.ratio.toFixed(2)}x)`;
    out.push(`  ${`[${t.scenario}] ${t.name}`.padEnd(78)} ${`${t.value}${ratio}`.padEnd(56)} ${verdict}`);
  }
  const failed = rs.filter((r) => r.error);
  if (failed.length > 0) {
    out.push('', `${failed.length} scenario run(s) failed:`);
    for (const r of failed) out.push(`  ${r.scenario} run ${r.run}: ${(r.error ?? '').split('\n')[0]}`);
  }
  return out.join('\n');
}

/** What a table cannot show: writes, promotions, and states after the fact. */
function extraLine(rs: ScenarioResult[], s: ScenarioName): string | null {
  const w = (xs: { writes: WriteCheck }[]): string => {
    const t = sumWrites(xs.map((x) => x.writes));
    return `acknowledged writes lost: ${t.lost} of ${t.acked}; written by both at once: ${t.dual} (longest ${t.dualMs} ms)`;
  };
  switch (s) {
    case 'partition': {
      const xs = of<PartitionSample>(rs, s);
      return `  promoted in ${xs.filter((x) => x.promoted).length} of ${xs.length} runs; standby's no-lease vetoes ${xs.map((x) => x.noLeaseVetoes ?? '-').join(', ')}; ${w(xs)}; missing on the standby once sync is back: ${xs.map((x) => x.missingOnStandby).join(', ')}`;
    }
    case 'isolate-primary': {
      const xs = of<IsolateSample>(rs, s);
      return (
        `  ${w(xs)}; old primary acknowledged after the cut: ${xs.reduce((n, x) => n + x.oldAckedAfterCut, 0)}; stayed synchronous in ${xs.filter((x) => x.oldStayedSync).length} of ${xs.length}\n` +
        `  after the heal, the old primary's keeper: ${xs.map((x) => `${x.oldStateAfterHeal} (/primary ${x.oldPrimaryCheckAfterHeal})`).join(', ')}`
      );
    }
    case 'host-loss':
    case 'server-crash':
    case 'standby-cut': {
      const xs = of<{ writes: WriteCheck }>(rs, s);
      const cut =
        s === 'standby-cut'
          ? `; promoted while cut in ${of<StandbyCutSample>(rs, s).filter((x) => x.promotedWhileCut).length} of ${xs.length}`
          : '';
      return `  ${w(xs)}${cut}`;
    }
    case 'etcd-outage': {
      const xs = of<EtcdOutageSample>(rs, s);
      return `  promoted in ${xs.filter((x) => x.promoted).length} of ${xs.length}; leases lost by the primary's keeper (expected: the outage outlasts the TTL): ${xs.map((x) => x.leasesLost).join(', ')}; writes during: ${xs.map((x) => x.writesDuring).join(', ')}`;
    }
    case 'etcd-leader': {
      const xs = of<EtcdLeaderSample>(rs, s).flatMap((x) => x.faults);
      return `  leases lost: ${xs.reduce((n, x) => n + x.leasesLost, 0)}; promoted in ${xs.filter((x) => x.promoted).length} of ${xs.length} faults`;
    }
  }
}
