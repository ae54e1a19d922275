// Failover benchmark: real PostgreSQL pairs, two real keeper processes (the built CLI), a client
// writing as fast as it can, and SIGKILL.
//
//   npm run bench:failover -- [--runs N] [--keepalive 0.2x3] [--json FILE] [--heartbeats N]
//
// Each run (run.ts) measures, on fresh pairs:
//   1. failover: write loop on node1, SIGKILL of node1 (every process) -> node2's keeper promotes ->
//      the first acknowledged write on node2; then every id node1 acknowledged must be on node2
//      (failover.ts);
//   2. standby loss: write loop on node1, SIGKILL of node2 -> the primary's keeper switches to async;
//      the stall is the longest commit latency around the kill (standby-loss.ts);
//   3. return to sync: pair.rebuildAsStandby(node2, node1) while the write loop goes on -> the
//      keeper's restore-sync, and the worst commit latency across it (return-to-sync.ts);
//   4. heartbeat period: while node2 is down, node1's keeper logs 'heartbeat-failed' at every tick;
//      the intervals between consecutive lines (their count going up by one) give the period
//      (heartbeats.ts).
//
// Phases are cut at the keepers' own log timestamps (wall clock, ms) and at the client's wall-clock
// times of sending and acknowledgement. The benchmark reports (report.ts); it does not assert: it
// exits 0 even when a target is MISSED, 1 when a run itself failed, 2 on bad usage, 130/143 when
// interrupted. Servers and keepers are torn down on every path (error, Ctrl-C, SIGTERM).

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkBuild, MissingBuild } from '../lib/build.js';
import { countPostgresProcesses, loadAverage, machineInfo } from '../lib/machine.js';
import { Progress } from '../lib/progress.js';
import { destroyAll } from '../lib/rig.js';
import { parseArgs, periodMs, USAGE, UsageError, windowMs, type Options } from './options.js';
import { COMPARISON, evaluateTargets, report, summaries } from './report.js';
import { oneRun } from './run.js';
import type { RunResult } from './samples.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

async function writeJson(file: string, data: unknown): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  let text = `${JSON.stringify(data, null, 2)}\n`;
  // Formatted as the repository's prettier would.
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    text = await prettier.format(text, { ...config, parser: 'json' });
  } catch {
    // prettier is a dev dependency; without it the plain JSON is kept
  }
  writeFileSync(file, text);
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
    checkBuild();
  } catch (err) {
    if (err instanceof UsageError || err instanceof MissingBuild) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonFile = path.resolve(
    opts.json ?? path.join(ROOT, 'bench', 'results', `failover-${opts.label}-${stamp}.json`),
  );
  const loadStart = loadAverage();
  const machine = machineInfo(countPostgresProcesses());
  const progress = new Progress(opts.runs, `failover ${opts.label}`);

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    // Again: at once. The exit hooks of the keepers, pairs and directories SIGKILL by pid.
    if (interrupted) process.exit(code);
    interrupted = true;
    progress.finish();
    process.stderr.write(`\n${signal}: tearing down servers and keepers (again to force)...\n`);
    const force = setTimeout(() => process.exit(code), 30_000);
    force.unref();
    void destroyAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const runs: RunResult[] = [];
  for (let i = 1; i <= opts.runs && !interrupted; i++) {
    const r = await oneRun(i, opts, progress);
    if (interrupted) break;
    runs.push(r);
    const f = r.failover;
    const s = r.standbyLoss;
    const note = r.error
      ? `run ${i} FAILED: ${r.error.split('\n')[0]}`
      : `run ${i}: failover ${f ? Math.round(f.total) : '-'} ms (lost ${f?.lost ?? '-'}), stall ${s ? Math.round(s.stall) : '-'} ms, load ${r.loadavgAfter[0]}`;
    if (r.error || process.stderr.isTTY) progress.log(note);
    progress.runDone(r.error ? 'failed' : note);
  }
  progress.finish();
  if (interrupted) return 130;

  const loadEnd = loadAverage();
  const sum = summaries(runs, periodMs(opts));
  const completedFailovers = runs.filter((r) => r.failover).length;
  const targets = evaluateTargets(sum, opts, completedFailovers);
  process.stdout.write(`${report(runs, opts, sum, targets, machine, { start: loadStart, end: loadEnd })}\n`);

  await writeJson(jsonFile, {
    benchmark: 'pg-keeper failover',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    config: {
      keepaliveTime: opts.keepaliveTime,
      keepaliveCount: opts.keepaliveCount,
      windowMs: windowMs(opts),
      runs: opts.runs,
      heartbeatsPerRun: opts.heartbeats,
      pairs:
        "two fresh pairs per run: one for standby loss + heartbeats + return to sync, one for the failover (a standby rebuilt while the primary is async inherits synchronous_standby_names = '' from postgresql.auto.conf)",
      units:
        'milliseconds; times named *Ms in samples are relative to the kill (or to the rebuild finishing)',
    },
    machine,
    loadavg: {
      start: loadStart,
      end: loadEnd,
      perRun: runs.map((r) => ({ before: r.loadavgBefore, after: r.loadavgAfter })),
    },
    summary: sum,
    targets,
    comparison: COMPARISON,
    runs,
  });
  process.stdout.write(`\nraw samples and summary: ${path.relative(process.cwd(), jsonFile) || jsonFile}\n`);
  return runs.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    await destroyAll();
    process.exitCode = 1;
  },
);
