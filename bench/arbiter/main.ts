// The etcd arbiter's benchmark: real PostgreSQL pairs, two real keeper processes (the built CLI),
// a real etcd (one member, or three), TCP proxies on every path a partition can cut, a writer per
// node, and a watch on etcd from outside.
//
//   npm run bench:arbiter -- [--runs N] [--scenarios a,b] [--keepalive 0.3x3] [--ttl 3] [--json FILE]
//
// One file per scenario (partition.ts, isolate-primary.ts, host-loss.ts, server-crash.ts,
// etcd-outage.ts, standby-cut.ts, etcd-leader.ts), each run on a fresh system; runs are
// interleaved (run 1 of every scenario, then run 2, ...) so that a change in the machine's load
// spreads over all of them. The report (report.ts) prints every measure and every target with
// its ratio, MISSED where missed; it never asserts: exit 0 even when a target is missed, 1 when a
// scenario run failed, 2 on bad usage, 130/143 when interrupted. Everything is torn down on every
// path (error, Ctrl-C, SIGTERM).

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkBuild, MissingBuild } from '../lib/build.js';
import { countPostgresProcesses, etcdVersion, loadAverage, machineInfo } from '../lib/machine.js';
import { Progress } from '../lib/progress.js';
import { etcdLeader } from './etcd-leader.js';
import { etcdOutage } from './etcd-outage.js';
import { hostLoss } from './host-loss.js';
import { isolatePrimary } from './isolate-primary.js';
import { label, parseArgs, rigFor, USAGE, UsageError, windowMs, type Options } from './options.js';
import { partition } from './partition.js';
import { COMPARISON, evaluateTargets, report, summaries } from './report.js';
import { createRig, destroyAll, destroyRig, type Rig } from './rig.js';
import type { ScenarioName, ScenarioResult } from './samples.js';
import { serverCrash } from './server-crash.js';
import { standbyCut } from './standby-cut.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

const RUNNERS: Record<ScenarioName, (rig: Rig) => Promise<NonNullable<ScenarioResult['sample']>>> = {
  partition,
  'isolate-primary': isolatePrimary,
  'host-loss': hostLoss,
  'server-crash': serverCrash,
  'etcd-outage': etcdOutage,
  'standby-cut': standbyCut,
  'etcd-leader': etcdLeader,
};

async function writeJson(file: string, data: unknown): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  let text = `${JSON.stringify(data, null, 2)}\n`;
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    text = await prettier.format(text, { ...config, parser: 'json' });
  } catch {
    // prettier is a dev dependency; without it the plain JSON is kept
  }
  writeFileSync(file, text);
}

async function oneScenario(
  s: ScenarioName,
  run: number,
  opts: Options,
  progress: Progress,
): Promise<ScenarioResult> {
  const t0 = Date.now();
  const rc = rigFor(opts, s);
  const { ttl, members } = rc;
  const result: ScenarioResult = {
    scenario: s,
    run,
    startedAt: new Date(t0).toISOString(),
    durationMs: 0,
    loadavgBefore: loadAverage(),
    loadavgAfter: [],
    ttl,
    members,
  };
  progress.setPhase(`${s} run ${run}: creating the pair, keepers and etcd`);
  let rig: Rig | null = null;
  try {
    rig = await createRig(opts, rc);
    progress.setPhase(`${s} run ${run}: measuring`);
    result.sample = await RUNNERS[s](rig);
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
  } finally {
    progress.setPhase(`${s} run ${run}: teardown`);
    if (rig) await destroyRig(rig).catch(() => {});
  }
  result.durationMs = Date.now() - t0;
  result.loadavgAfter = loadAverage();
  return result;
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
    opts.json ?? path.join(ROOT, 'bench', 'results', `arbiter-${label(opts)}-${stamp}.json`),
  );
  const loadStart = loadAverage();
  const machine = { ...machineInfo(countPostgresProcesses()), etcd: etcdVersion() };
  const total = opts.runs * opts.scenarios.length;
  const progress = new Progress(total, `arbiter ${label(opts)}`);

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (interrupted) process.exit(code);
    interrupted = true;
    progress.finish();
    process.stderr.write(`\n${signal}: tearing down servers, keepers and etcd (again to force)...\n`);
    setTimeout(() => process.exit(code), 30_000).unref();
    void destroyAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: ScenarioResult[] = [];
  for (let run = 1; run <= opts.runs && !interrupted; run++) {
    for (const s of opts.scenarios) {
      if (interrupted) break;
      const r = await oneScenario(s, run, opts, progress);
      if (interrupted) break;
      results.push(r);
      const note = r.error
        ? `${s} run ${run} FAILED: ${r.error.split('\n')[0]}`
        : `${s} run ${run} done in ${Math.round(r.durationMs / 1000)} s, load ${r.loadavgAfter[0]}`;
      if (r.error || process.stderr.isTTY) progress.log(note);
      progress.runDone(r.error ? 'failed' : note);
    }
  }
  progress.finish();
  if (interrupted) return 130;

  const loadEnd = loadAverage();
  const targets = evaluateTargets(results, opts);
  process.stdout.write(`${report(results, opts, targets, machine, { start: loadStart, end: loadEnd })}\n`);
  await writeJson(jsonFile, {
    benchmark: 'pg-keeper etcd arbiter',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    config: {
      keepaliveTime: opts.keepaliveTime,
      keepaliveCount: opts.keepaliveCount,
      windowMs: windowMs(opts),
      ttl: opts.ttl,
      runs: opts.runs,
      scenarios: Object.fromEntries(opts.scenarios.map((s) => [s, rigFor(opts, s)])),
      units: 'milliseconds, relative to the fault (cut, kill) unless the name says otherwise',
    },
    machine,
    loadavg: { start: loadStart, end: loadEnd },
    summary: summaries(results),
    targets,
    comparison: COMPARISON,
    runs: results,
  });
  process.stdout.write(`\nraw samples and summary: ${path.relative(process.cwd(), jsonFile) || jsonFile}\n`);
  return results.some((r) => r.error) ? 1 : 0;
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
