// One chaos run: a fresh topology, the workload, the seed's faults one after the other with the
// operator healing in between, then the checker. Always tears down, including on errors and aborts.

import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { timingFromConfig, type Timing } from './availability.js';
import { checkEnd, check, type CheckResult } from './checker.js';
import { runFault } from './faults.js';
import { NotHealed, heal } from './operator.js';
import { describeFault, makeSchedule } from './schedule.js';
import { NODES, type NodeName } from '../../src/config/config.js';
import { Topology } from './topology.js';
import { pause, type Anomaly, type FaultRecord, type RunContext } from './types.js';
import { Workload } from './workload.js';
import { waitFor } from '../../src/util/wait.js';
import { CLI } from '../support/keeper-process.js';

export interface RunOptions {
  seed: number;
  faults: number;
  /** Scales fault durations and quiet times (default 1). */
  durationScale?: number;
  log: (msg: string) => void;
  signal: AbortSignal;
  /** Wall-clock ms after which no new fault starts (the run still heals, checks and tears down). */
  stopFaultsAt?: number;
  /** Where the logs of a run that found something are kept (a subdirectory per run). */
  logsDir?: string;
  /** The etcd arbiter: members, and the lease's TTL in seconds. Absent: two-node mode. */
  arbiter?: { members: 1 | 3; ttl: number };
  /** A client that cancels writes unanswered after this long (workload.ts, the cancel loop). */
  cancelAfterMs?: number;
}

export interface RunResult {
  seed: number;
  planned: number;
  faults: FaultRecord[];
  check: CheckResult | null;
  anomalies: Anomaly[];
  /** The harness itself failed (not a finding about pg-keeper unless an anomaly says so). */
  error: string | null;
  aborted: boolean;
  durationMs: number;
  /** The keeper build this run used: git HEAD and when dist/cli.js was built (it is rebuilt by others). */
  build: { head: string; builtAt: string };
  finalPrimary: NodeName | null;
  /** Keeper and server logs, kept when the run found an anomaly or failed. */
  logs: string | null;
  arbiter: { members: 1 | 3; ttl: number } | null;
  /** The cancel loop's delay, when the run had one. */
  cancelAfterMs: number | null;
  /** The keepers' timing the availability checks were derived from (null if the run never started). */
  timing: Timing | null;
}

export async function runOnce(o: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const schedule = makeSchedule({
    seed: o.seed,
    faults: o.faults,
    durationScale: o.durationScale,
    arbiter: o.arbiter && { members: o.arbiter.members, ttlMs: o.arbiter.ttl * 1000 },
  });
  const mode = o.arbiter
    ? `arbiter: etcd with ${o.arbiter.members} member(s), lease TTL ${o.arbiter.ttl} s`
    : 'two-node';
  const cancel = o.cancelAfterMs === undefined ? '' : `; a client cancels writes after ${o.cancelAfterMs} ms`;
  o.log(`[seed ${o.seed}] ${mode}${cancel}; ${schedule.length} faults planned:`);
  for (const f of schedule) o.log(`    ${f.index}. ${f.kind}: ${describeFault(f)}`);
  const result: RunResult = {
    seed: o.seed,
    planned: schedule.length,
    faults: [],
    check: null,
    anomalies: [],
    error: null,
    aborted: false,
    durationMs: 0,
    finalPrimary: null,
    build: buildInfo(),
    logs: null,
    arbiter: o.arbiter ?? null,
    cancelAfterMs: o.cancelAfterMs ?? null,
    timing: null,
  };
  const topo = await Topology.create(o.log, o.arbiter ? { arbiter: o.arbiter } : {});
  let timing: Timing;
  try {
    timing = timingFromConfig((await topo.keepers.node1.status()).config);
    result.timing = timing;
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  const workload = new Workload({
    targets: { node1: topo.pair.target(topo.pair.node1), node2: topo.pair.target(topo.pair.node2) },
    first: 'node1',
    cancelAfterMs: o.cancelAfterMs,
  });
  const ctx: RunContext = {
    seed: o.seed,
    topo,
    timing,
    workload,
    log: o.log,
    anomalies: result.anomalies,
    signal: o.signal,
    fault: null,
  };
  try {
    workload.start();
    await heal(ctx);
    await waitFor(() => workload.acked().length >= 20, 'the first acknowledged writes', 30_000);
    o.log(`[seed ${o.seed}] pair healthy, workload running; faults begin`);
    for (const planned of schedule) {
      if (o.signal.aborted) break;
      if (o.stopFaultsAt !== undefined && Date.now() > o.stopFaultsAt) {
        o.log(`[seed ${o.seed}] time budget used: skipping faults ${planned.index}-${schedule.length}`);
        break;
      }
      result.faults.push(await runFault(ctx, planned, schedule.length));
      await pause(planned.quietMs, o.signal);
    }
    o.signal.throwIfAborted();
    // Hooks run beside the keepers; let the last ones finish before counting them.
    await waitFor(() => topo.hookPids().length === 0, 'after_command runs to finish', 15_000).catch(() => {});
    await workload.stop();
    const primary = await finalPrimary(topo);
    result.finalPrimary = primary;
    const ids = await topo.idsOn(primary);
    result.check = check(o.seed, workload.records, result.faults, ids, { arbiter: o.arbiter !== undefined });
    result.anomalies.push(...result.check.anomalies, ...(await checkEnd(o.seed, topo, result.faults)));
  } catch (err) {
    if (o.signal.aborted) result.aborted = true;
    else if (!(err instanceof NotHealed)) result.error = (err as Error).stack ?? String(err);
    // NotHealed is already an anomaly; the run cannot go on from an unknown state.
  } finally {
    await workload.stop();
    if (result.anomalies.length > 0 || result.error) {
      result.logs = join(o.logsDir ?? join(tmpdir(), 'pgk-chaos-logs'), `seed-${o.seed}-${t0}`);
      try {
        topo.saveLogs(result.logs);
        o.log(`[seed ${o.seed}] logs kept in ${result.logs}`);
      } catch (err) {
        o.log(`[seed ${o.seed}] could not keep the logs: ${(err as Error).message}`);
        result.logs = null;
      }
    }
    await topo.destroy();
    result.durationMs = Date.now() - t0;
  }
  return result;
}

async function finalPrimary(topo: Topology): Promise<NodeName> {
  for (const n of NODES) {
    const v = await topo.inspect(n);
    if (v.up && v.inRecovery === false) return n;
  }
  throw new Error('no primary at the end of the run');
}

function buildInfo(): { head: string; builtAt: string } {
  const root = join(import.meta.dirname, '..', '..');
  let head = 'unknown';
  try {
    head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  let builtAt = 'not built';
  try {
    builtAt = statSync(CLI).mtime.toISOString();
  } catch {
    // KeeperProcess.start will say so
  }
  return { head, builtAt };
}
