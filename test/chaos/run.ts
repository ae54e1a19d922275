// Chaos runner: `npm run chaos -- [--seed N] [--faults N] [--runs N] [--duration S] [--json FILE]`
// (the method and the results: docs/RELIABILITY.md)
//
//   --seed N      seed of the first run (default: random, printed); run k uses seed + k
//   --faults N    faults per run (default 8; the first 7 of any schedule are one of each kind)
//   --runs N      number of runs (default 1, or as many as fit in --duration)
//   --duration S  wall-time budget in seconds: no new run or fault starts after it
//   --scale X     multiply fault durations and quiet times (default 1)
//   --json FILE   write the summary and every run's faults, eras and anomalies as JSON
//   --logs DIR    where runs that found something keep their logs (default $TMPDIR/pgk-chaos-logs)
//   --arbiter     with the etcd arbiter: the arbiter's partitions and etcd's faults join the
//                 schedule, and partitions are judged (a lost write or two writers is an anomaly)
//   --members N   etcd members, 1 or 3 (default: 3 for odd seeds, 1 for even ones, so that a series
//                 of runs covers both and a seed replays with its own)
//   --ttl S       the lease's TTL in seconds (default 3; etcd's minimum is 2)
//   --cancel      add a client that cancels (pg_cancel_backend) any write unanswered after 500 ms,
//                 as a driver's query timeout does; what the server then answers counts
//
// Needs the built CLI (`npm run build`) and PostgreSQL binaries. Exit status: 0 no anomaly, 1 an
// anomaly outside a partition (or the harness failed), 2 bad usage, 130 interrupted.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runOnce, type RunResult } from './harness.js';
import { failed, formatRun, formatSummary, summarize } from './report.js';
import { destroyAll } from './topology.js';

function usage(msg: string): never {
  process.stderr.write(
    `${msg}\nusage: npm run chaos -- [--seed N] [--faults N] [--runs N] [--duration S] [--scale X] [--json FILE] [--logs DIR]\n` +
      `                        [--arbiter [--members 1|3] [--ttl S]] [--cancel]\n`,
  );
  process.exit(2);
}

function num(v: string | undefined, name: string, dflt: number | undefined, min = 0): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) usage(`--${name} must be a number >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        seed: { type: 'string' },
        faults: { type: 'string' },
        runs: { type: 'string' },
        duration: { type: 'string' },
        scale: { type: 'string' },
        json: { type: 'string' },
        logs: { type: 'string' },
        arbiter: { type: 'boolean' },
        members: { type: 'string' },
        ttl: { type: 'string' },
        cancel: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  const seed = num(args.seed, 'seed', Math.floor(Math.random() * 1_000_000)) as number;
  const faults = num(args.faults, 'faults', 8, 1) as number;
  const budgetS = num(args.duration, 'duration', undefined, 1);
  const runs = num(args.runs, 'runs', budgetS === undefined ? 1 : Number.MAX_SAFE_INTEGER, 1) as number;
  const scale = num(args.scale, 'scale', 1, 0.05) as number;
  if (!args.arbiter && (args.members !== undefined || args.ttl !== undefined))
    usage('--members and --ttl go with --arbiter');
  const members = num(args.members, 'members', undefined, 1);
  if (members !== undefined && members !== 1 && members !== 3)
    usage(`--members must be 1 or 3, got ${members}`);
  const ttl = num(args.ttl, 'ttl', 3, 2) as number;
  const arbiterOf = (s: number): { members: 1 | 3; ttl: number } | undefined =>
    args.arbiter ? { members: (members ?? (s % 2 === 1 ? 3 : 1)) as 1 | 3, ttl } : undefined;
  const t0 = Date.now();
  const stopAt = budgetS === undefined ? undefined : t0 + budgetS * 1000;
  const log = (msg: string): void => {
    process.stdout.write(`${((Date.now() - t0) / 1000).toFixed(1).padStart(7)}s ${msg}\n`);
  };

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: string): void => {
    interrupts += 1;
    if (interrupts === 1) {
      log(`${sig}: tearing down and stopping (again to force)`);
      abort.abort();
      // A step in progress (a rebuild waiting for sync) may take a while to notice: tear down now,
      // then give the run a moment to report before leaving.
      void destroyAll().finally(() => setTimeout(() => process.exit(130), 5000).unref());
    } else {
      process.exit(130); // the exit hooks of the topology and PgPair kill everything by pid
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  log(
    `chaos: first seed ${seed}, ${faults} faults per run, ${runs === Number.MAX_SAFE_INTEGER ? 'as many runs as fit' : `${runs} run(s)`}` +
      (budgetS ? ` in ${budgetS} s` : '') +
      (args.arbiter
        ? `; arbiter, lease TTL ${ttl} s, ${members ?? '1 or 3 (by seed)'} etcd member(s)`
        : '; two-node'),
  );
  const results: RunResult[] = [];
  for (let i = 0; i < runs && !abort.signal.aborted; i++) {
    if (stopAt !== undefined && Date.now() > stopAt) break;
    const r = await runOnce({
      seed: seed + i,
      faults,
      durationScale: scale,
      log,
      signal: abort.signal,
      stopFaultsAt: stopAt,
      logsDir: args.logs,
      arbiter: arbiterOf(seed + i),
      cancelAfterMs: args.cancel ? 500 : undefined,
    });
    results.push(r);
    log(formatRun(r));
  }
  const summary = summarize(results);
  process.stdout.write(`\n${formatSummary(summary)}\n`);
  if (args.json) {
    const runsOut = results.map((r) => ({
      seed: r.seed,
      arbiter: r.arbiter,
      cancelAfterMs: r.cancelAfterMs,
      timing: r.timing,
      planned: r.planned,
      durationMs: r.durationMs,
      finalPrimary: r.finalPrimary,
      build: r.build,
      error: r.error,
      aborted: r.aborted,
      logs: r.logs,
      anomalies: r.anomalies,
      faults: r.faults,
      check: r.check && { ...r.check, lost: r.check.lost.slice(0, 1000) },
    }));
    writeFileSync(args.json, JSON.stringify({ summary, runs: runsOut }, null, 2));
    log(`JSON written to ${args.json}`);
  }
  if (abort.signal.aborted) return 130;
  return failed(summary) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos runner failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
