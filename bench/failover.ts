// Failover benchmark: real PostgreSQL pairs, two real keeper processes (the built CLI), a client
// writing as fast as it can, and SIGKILL.
//
//   npx tsx bench/failover.ts [--runs N] [--keepalive 0.2x3] [--json FILE] [--heartbeats N]
//
// Each run builds two fresh pairs (node1 primary, node2 synchronous standby, a keeper beside each
// node). On the first it measures, in this order:
//   2. standby loss: write loop on node1, SIGKILL of node2 -> the primary's keeper switches to async;
//      the stall is the longest commit latency around the kill;
//   4. heartbeat period: while node2 is down, node1's keeper logs 'heartbeat-failed' at every tick;
//      the intervals between consecutive lines (their count going up by one) give the period;
//   3. return to sync: pair.rebuildAsStandby(node2, node1) while the write loop goes on -> the
//      keeper's restore-sync, and the worst commit latency across it;
// and on the second:
//   1. failover: write loop on node1, SIGKILL of node1 (every process) -> node2's keeper promotes ->
//      the first acknowledged write on node2; then every id node1 acknowledged must be on node2.
// The failover does not reuse the first pair after its rebuild, although that would save an initdb:
// the rebuilt standby is not equivalent. pg_basebackup copies the primary's postgresql.auto.conf,
// which holds the keeper's `synchronous_standby_names = ''` while the primary is asynchronous, so
// the rebuilt node2 starts with replication already asynchronous, and once promoted its commits do
// not wait for the keeper to clear the setting (in trial runs the first write was acknowledged
// 50-95 ms before the keeper logged promote ok, instead of just after its reload).
// ReturnSample.rebuiltStandbySyncNames records what each rebuilt standby started with.
//
// Phases are cut at the keepers' own log timestamps (wall clock, ms) and at the client's wall-clock
// times of sending and acknowledgement. The benchmark reports; it does not assert: it exits 0 even
// when a target is MISSED, 1 when a run itself failed, 2 on bad usage, 130/143 when interrupted.
// Servers and keepers are torn down on every path (error, Ctrl-C, SIGTERM).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { queryOnce, type ConnTarget } from '../src/local-pair/query.js';
import { sleep, waitFor } from '../src/util/wait.js';
import { CLI } from '../test/support/keeper-process.js';
import {
  decision,
  firstLine,
  heartbeatFailed,
  heartbeatIntervals,
  lineTime,
  okEvent,
  scrape,
} from './lib/keeper-log.js';
import { firstPgLog, readPgLog } from './lib/pg-log.js';
import { formatDuration, Progress } from './lib/progress.js';
import { createRig, destroyAll, destroyRig, waitUntilHealthy, type Rig } from './lib/rig.js';
import { round1, summarize, type Summary } from './lib/stats.js';
import { wallNow, WriteLoop, type Ack } from './lib/write-loop.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const WARMUP_MS = 1000;
const AFTER_FAILOVER_MS = 300;
const AFTER_RESTORE_MS = 500;

// ---- command line ----

interface Options {
  runs: number;
  keepaliveTime: number;
  keepaliveCount: number;
  label: string;
  json: string | null;
  /** Failed heartbeats to collect per run while the standby is down (before the rebuild starts). */
  heartbeats: number;
}

const USAGE = `usage: npx tsx bench/failover.ts [--runs N] [--keepalive TIMExCOUNT] [--json FILE] [--heartbeats N]

  --runs N            runs (default 10); each run: standby loss, return to sync, failover
  --keepalive 0.2x3   keepalive_time (seconds) x keepalive_count (default 0.2x3)
  --json FILE         where to write raw samples and summary
                      (default bench/results/failover-<keepalive>-<timestamp>.json)
  --heartbeats N      failed heartbeats to log per run while the standby is down
                      (default: enough for 150 intervals over all runs, at least 25)

Needs the built CLI (npm run build) and PostgreSQL binaries (PG_BIN or /usr/lib/postgresql).`;

class UsageError extends Error {}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    runs: 10,
    keepaliveTime: 0.2,
    keepaliveCount: 3,
    label: '0.2x3',
    json: null,
    heartbeats: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--runs': {
        const v = value();
        opts.runs = Number(v);
        if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new UsageError(`--runs: not a count: ${v}`);
        break;
      }
      case '--keepalive': {
        const v = value();
        const m = /^(\d+(?:\.\d+)?|\.\d+)x(\d+)$/.exec(v);
        const t = Number(m?.[1]);
        const c = Number(m?.[2]);
        if (!m || !(t > 0) || !(c >= 1))
          throw new UsageError(`--keepalive: expected TIMExCOUNT, e.g. 0.2x3, got ${v}`);
        opts.keepaliveTime = t;
        opts.keepaliveCount = c;
        opts.label = `${t}x${c}`;
        break;
      }
      case '--json':
        opts.json = value();
        break;
      case '--heartbeats': {
        const v = value();
        opts.heartbeats = Number(v);
        if (!Number.isInteger(opts.heartbeats) || opts.heartbeats < 2)
          throw new UsageError(`--heartbeats: need an integer >= 2, got ${v}`);
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument: ${arg}`);
    }
  }
  if (opts.heartbeats === 0) opts.heartbeats = Math.max(25, Math.ceil(150 / opts.runs));
  return opts;
}

// ---- samples ----

/** Times in ms relative to the kill unless named otherwise. */
interface FailoverSample {
  killAt: string;
  /** node2's keeper: first failed heartbeat after the kill. */
  firstMissMs: number | null;
  /** node2's keeper logs the decision "... promoting this standby". */
  decisionMs: number;
  /** node2's keeper logs promote ok. */
  promoteOkMs: number;
  /** What the keeper itself reports for pg_promote + clearing synchronous_standby_names + check. */
  promoteReportedMs: number | null;
  /** The client's first acknowledged write on node2 (acknowledgement time). */
  firstWriteMs: number;
  /** When that first write was sent. */
  firstWriteSentMs: number;
  detection: number;
  promotion: number;
  firstWrite: number;
  decisionToWrite: number;
  total: number;
  /** Last acknowledgement received from node1 (may arrive just after the kill). */
  lastOldPrimaryAckMs: number | null;
  ackedOnOldPrimary: number;
  ackedOnNewPrimary: number;
  lost: number;
  lostIds: number[];
  /** Rows on node2 whose INSERT was never acknowledged (in flight at the kill): allowed. */
  unacknowledgedPresent: number;
  writeErrors: number;
  /** From node2's postgres.log, relative to the kill (null when the line is missing). */
  server: {
    promoteRequestMs: number | null;
    readyMs: number | null;
    reloadMs: number | null;
  };
}

interface StandbyLossSample {
  killAt: string;
  /** Median commit latency over the second before the kill (synchronous commits). */
  baselineLatencyMs: number;
  firstMissMs: number | null;
  decisionMs: number;
  switchOkMs: number;
  /** The longest commit latency of the writes around the kill. */
  stall: number;
  /** That write: sent at (relative to the kill), acknowledged at. */
  stalledSentMs: number;
  /** Kill -> first commit completed after the stall. */
  release: number;
  /** Keeper's switch-to-async logged -> that commit acknowledged. */
  releaseAfterSwitch: number;
  /** node1's postgres.log: the reload that cleared synchronous_standby_names, relative to the kill. */
  serverReloadMs: number | null;
}

interface ReturnSample {
  rebuildStartAt: string;
  /**
   * rebuildAsStandby() start -> the rebuilt node2 runs ("rebuild finished"): the first of its WAL
   * receiver streaming (node1's pg_stat_replication) and its accepting connections.
   */
  rebuild: number;
  /** Rebuild finished -> node1's pg_stat_replication shows its WAL receiver streaming. */
  upToStreaming: number | null;
  /** Rebuild finished -> the keeper logs restore-sync ok. */
  upToRestore: number;
  /** Rebuild finished -> node1's pg_stat_replication shows node2 as sync. */
  upToSyncSeen: number;
  /** Max commit latency from rebuild finished to sync seen + AFTER_RESTORE_MS. */
  maxLatencyDuringRestore: number;
  commitsDuringRestore: number;
  /** Max commit latency over the whole rebuild (pg_basebackup included). */
  maxLatencyDuringRebuild: number;
  /** node2's synchronous_standby_names once rebuilt, and the file that sets it. */
  rebuiltStandbySyncNames: { value: string; file: string | null } | null;
}

interface HeartbeatSample {
  /** Intervals (ms) between consecutive failed-heartbeat lines of node1's keeper, peer down. */
  intervals: number[];
  /** Cross-check: pg_keeper_heartbeats_total of node1's keeper after its first tick, and ms since that tick. */
  counter: { count: number; elapsedMs: number } | null;
}

interface RunResult {
  index: number;
  startedAt: string;
  durationMs: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
  standbyLoss?: StandbyLossSample;
  returnToSync?: ReturnSample;
  heartbeats?: HeartbeatSample;
  failover?: FailoverSample;
  error?: string;
}

// ---- helpers ----

const r1 = round1;
const iso = (ms: number): string => new Date(ms).toISOString();
const rel = (at: number | null, from: number): number | null => (at === null ? null : r1(at - from));

function targetsOf(rig: Rig): { t1: ConnTarget; t2: ConnTarget } {
  return { t1: rig.pair.target(rig.pair.node1), t2: rig.pair.target(rig.pair.node2) };
}

function latency(a: Ack): number {
  return a.end - a.start;
}

function maxLatency(acks: readonly Ack[]): number {
  return acks.reduce((m, a) => Math.max(m, latency(a)), 0);
}

function median(xs: number[]): number {
  return summarize(xs)?.median ?? Number.NaN;
}

/**
 * Writes for WARMUP_MS plus a random part of one keepalive_time. The random part matters: the pair
 * is declared healthy right after a keeper tick, so a fixed warm-up would kill at the same phase of
 * the keepers' schedule in every run, and detection (which depends on that phase) would be sampled
 * at one point of its range instead of over all of it.
 */
async function warmUp(loop: WriteLoop, node: string, slowMs: number, periodMs: number): Promise<void> {
  const t0 = wallNow();
  const ms = WARMUP_MS + Math.random() * periodMs;
  await waitFor(
    () => wallNow() - t0 >= ms && loop.acksOn(node).length >= 20,
    `the write loop to commit on ${node}`,
    slowMs,
    20,
  );
}

// ---- scenario 2 (standby loss), 4 (heartbeats), 3 (return to sync) ----

async function standbyLossAndReturn(
  rig: Rig,
  opts: Options,
  slowMs: number,
  phase: (p: string) => void,
): Promise<{ standbyLoss: StandbyLossSample; heartbeats: HeartbeatSample; returnToSync: ReturnSample }> {
  const { pair, k1 } = rig;
  const { t1, t2 } = targetsOf(rig);
  const periodMs = Math.round(opts.keepaliveTime * 1000);
  await queryOnce(t1, 'CREATE TABLE bench_standby (id bigint PRIMARY KEY)');
  const loop = new WriteLoop(
    [
      { name: 'node1', target: t1 },
      { name: 'node2', target: t2 },
    ],
    'bench_standby',
  );
  loop.start();
  try {
    phase('standby loss: warming up');
    await warmUp(loop, 'node1', slowMs, periodMs);

    phase('standby loss: SIGKILL node2');
    const killAt = wallNow();
    await pair.kill(pair.node2, 'SIGKILL');
    const switched = await waitFor(
      () => firstLine(k1, okEvent('switch-to-async'), killAt),
      "node1's keeper to switch to async",
      slowMs,
      10,
    );
    const switchAt = lineTime(switched);
    // Commits flow again: 20 sent after the switch was logged.
    await waitFor(
      () => loop.acks.filter((a) => a.start > switchAt).length >= 20,
      'commits to resume after the switch to async',
      slowMs,
      10,
    );
    const around = loop.acks.filter((a) => a.end >= killAt && a.start <= switchAt + 1000);
    const stalled = around.reduce<Ack | null>(
      (w, a) => (w === null || latency(a) > latency(w) ? a : w),
      null,
    );
    if (!stalled) throw new Error('no commit completed around the kill of the standby');
    const before = loop.acks.filter((a) => a.end < killAt && a.end >= killAt - 1000).map(latency);
    const dec = firstLine(k1, decision('switching to asynchronous'), killAt);
    const miss = firstLine(k1, heartbeatFailed, killAt);
    const standbyLoss: StandbyLossSample = {
      killAt: iso(killAt),
      baselineLatencyMs: r1(median(before)),
      firstMissMs: miss ? r1(lineTime(miss) - killAt) : null,
      decisionMs: r1((dec ? lineTime(dec) : switchAt) - killAt),
      switchOkMs: r1(switchAt - killAt),
      stall: r1(latency(stalled)),
      stalledSentMs: r1(stalled.start - killAt),
      release: r1(stalled.end - killAt),
      releaseAfterSwitch: r1(stalled.end - switchAt),
      serverReloadMs: rel(firstPgLog(readPgLog(pair.node1.logFile), 'received SIGHUP', killAt), killAt),
    };

    phase(`heartbeats: collecting ${opts.heartbeats} failed beats`);
    await waitFor(
      () => k1.lines.filter((l) => heartbeatFailed(l) && lineTime(l) >= killAt).length >= opts.heartbeats,
      `${opts.heartbeats} failed heartbeats from node1's keeper`,
      slowMs + opts.heartbeats * periodMs * 2,
      50,
    );

    phase('return to sync: rebuilding node2');
    const rebuildStart = wallNow();
    let standbyUpAt: number | null = null;
    let streamingAt: number | null = null;
    let syncSeenAt: number | null = null;
    let watching = true;
    // node2 up: connection attempts are refused (cheaply) until it accepts them.
    const watchUp = (async () => {
      while (watching && standbyUpAt === null) {
        try {
          await queryOnce(t2, 'SELECT pg_is_in_recovery()', [], 1000);
          standbyUpAt = wallNow();
        } catch {
          await sleep(20);
        }
      }
    })();
    // node1's view, on one kept connection (reopened if it breaks). replay_lsn is null for
    // pg_basebackup's own WAL stream (also named node2), so it tells the rebuilt server's WAL
    // receiver apart.
    const watchRepl = (async () => {
      let c: pg.Client | null = null;
      while (watching && syncSeenAt === null) {
        try {
          if (!c) {
            c = new pg.Client({
              ...t1,
              application_name: 'pg-keeper-bench-watch',
              connectionTimeoutMillis: 2000,
            });
            c.on('error', () => {});
            await c.connect();
          }
          const { rows } = await c.query<{ sync_state: string }>(
            `SELECT sync_state FROM pg_stat_replication
              WHERE application_name = 'node2' AND state = 'streaming' AND replay_lsn IS NOT NULL`,
          );
          const row = rows[0];
          if (row) {
            streamingAt ??= wallNow();
            if (row.sync_state === 'sync') syncSeenAt = wallNow();
          }
        } catch {
          await c?.end().catch(() => {});
          c = null;
        }
        if (syncSeenAt === null) await sleep(20);
      }
      await c?.end().catch(() => {});
    })();
    try {
      await pair.rebuildAsStandby(pair.node2, pair.node1);
      await waitFor(
        () => syncSeenAt !== null && standbyUpAt !== null,
        'the watchers to see node2 sync',
        5000,
        10,
      );
    } finally {
      watching = false;
      await Promise.allSettled([watchUp, watchRepl]);
    }
    const streamAt = streamingAt as number | null;
    const acceptsAt = standbyUpAt as number | null;
    // The rebuilt server runs from whichever is seen first: its WAL receiver streaming (often
    // before hot standby lets clients in) or its accepting connections.
    const upAt = acceptsAt === null ? null : Math.min(acceptsAt, streamAt ?? acceptsAt);
    const syncAt = syncSeenAt as number | null;
    if (upAt === null || syncAt === null) throw new Error('node2 was not seen up and sync after the rebuild');
    const restored = await waitFor(
      () => firstLine(k1, okEvent('restore-sync'), rebuildStart),
      "node1's keeper to log restore-sync",
      slowMs,
      10,
    );
    const restoreAt = lineTime(restored);
    phase('return to sync: writing on');
    await sleep(AFTER_RESTORE_MS);
    const [names] = await queryOnce<{ value: string; file: string | null }>(
      t2,
      `SELECT current_setting('synchronous_standby_names') AS value,
              (SELECT sourcefile FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND applied) AS file`,
      [],
      5000,
    ).catch(() => []);
    const inRestore = loop.acks.filter((a) => a.end >= upAt && a.start <= syncAt + AFTER_RESTORE_MS);
    const inRebuild = loop.acks.filter((a) => a.end >= rebuildStart && a.start <= syncAt + AFTER_RESTORE_MS);
    const returnToSync: ReturnSample = {
      rebuildStartAt: iso(rebuildStart),
      rebuild: r1(upAt - rebuildStart),
      upToStreaming: streamAt === null ? null : r1(streamAt - upAt),
      upToRestore: r1(restoreAt - upAt),
      upToSyncSeen: r1(syncAt - upAt),
      maxLatencyDuringRestore: r1(maxLatency(inRestore)),
      commitsDuringRestore: inRestore.length,
      maxLatencyDuringRebuild: r1(maxLatency(inRebuild)),
      rebuiltStandbySyncNames: names
        ? { value: names.value, file: names.file && path.basename(names.file) }
        : null,
    };
    const heartbeats: HeartbeatSample = {
      intervals: heartbeatIntervals(k1, killAt, upAt),
      counter: await heartbeatCounter(rig),
    };
    return { standbyLoss, heartbeats, returnToSync };
  } finally {
    await loop.stop();
  }
}

/**
 * pg_keeper_heartbeats_total of node1's keeper: beats after its first tick, and the time since that
 * tick (its first decision line; the first tick comes one keepalive_time after the start line).
 */
async function heartbeatCounter(rig: Rig): Promise<HeartbeatSample['counter']> {
  const first = rig.k1.lines.find((l) => l.event === 'decision');
  if (!first) return null;
  const count = await scrape(rig.k1, 'pg_keeper_heartbeats_total', 'peer="node2"').catch(() => null);
  const at = Date.now();
  return count === null || count < 2 ? null : { count: count - 1, elapsedMs: at - lineTime(first) };
}

// ---- scenario 1 (failover) ----

async function failover(
  rig: Rig,
  opts: Options,
  slowMs: number,
  phase: (p: string) => void,
): Promise<FailoverSample> {
  const periodMs = opts.keepaliveTime * 1000;
  const { pair, k2 } = rig;
  const { t1, t2 } = targetsOf(rig);
  phase('failover: waiting for a healthy pair');
  await waitUntilHealthy(rig);
  await queryOnce(t1, 'CREATE TABLE bench_failover (id bigint PRIMARY KEY)');
  const loop = new WriteLoop(
    [
      { name: 'node1', target: t1 },
      { name: 'node2', target: t2 },
    ],
    'bench_failover',
  );
  loop.start();
  let killAt = 0;
  let first: Ack;
  try {
    phase('failover: warming up');
    await warmUp(loop, 'node1', slowMs, periodMs);
    phase('failover: SIGKILL node1');
    killAt = wallNow();
    await pair.kill(pair.node1, 'SIGKILL');
    first = await waitFor(
      () => loop.acks.find((a) => a.node === 'node2'),
      'the first acknowledged write on node2',
      slowMs,
      5,
    );
    phase('failover: writing on');
    await sleep(AFTER_FAILOVER_MS);
  } finally {
    await loop.stop();
  }
  const promoted = await waitFor(
    () => firstLine(k2, okEvent('promote'), killAt),
    "node2's keeper to log promote ok",
    slowMs,
    10,
  );
  const promoteAt = lineTime(promoted);
  const dec = firstLine(k2, decision('promoting this standby'), killAt);
  const decisionAt = dec ? lineTime(dec) : promoteAt;
  const miss = firstLine(k2, heartbeatFailed, killAt);
  const reported = /promoted in (\d+) ms/.exec(String(promoted.reason ?? ''));
  const pgLog = readPgLog(pair.node2.logFile);
  const promoteRequestAt = firstPgLog(pgLog, 'received promote request', killAt);

  phase('failover: checking for lost writes');
  const old = loop.acksOn('node1');
  const rows = await queryOnce<{ id: string }>(t2, 'SELECT id FROM bench_failover', [], 15_000);
  const present = new Set(rows.map((r) => Number(r.id)));
  const lostIds = old.filter((a) => !present.has(a.id)).map((a) => a.id);
  const acked = new Set(loop.acks.map((a) => a.id));
  const lastOld = old[old.length - 1];
  return {
    killAt: iso(killAt),
    firstMissMs: miss ? r1(lineTime(miss) - killAt) : null,
    decisionMs: r1(decisionAt - killAt),
    promoteOkMs: r1(promoteAt - killAt),
    promoteReportedMs: reported ? Number(reported[1]) : null,
    firstWriteMs: r1(first.end - killAt),
    firstWriteSentMs: r1(first.start - killAt),
    detection: r1(decisionAt - killAt),
    promotion: r1(promoteAt - decisionAt),
    firstWrite: r1(first.end - promoteAt),
    decisionToWrite: r1(first.end - decisionAt),
    total: r1(first.end - killAt),
    lastOldPrimaryAckMs: lastOld ? r1(lastOld.end - killAt) : null,
    ackedOnOldPrimary: old.length,
    ackedOnNewPrimary: loop.acksOn('node2').length,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 100),
    unacknowledgedPresent: [...present].filter((id) => !acked.has(id)).length,
    writeErrors: loop.errors.length,
    server: {
      promoteRequestMs: rel(promoteRequestAt, killAt),
      readyMs: rel(firstPgLog(pgLog, 'ready to accept connections', promoteRequestAt ?? killAt), killAt),
      reloadMs: rel(firstPgLog(pgLog, 'received SIGHUP', promoteRequestAt ?? killAt), killAt),
    },
  };
}

// ---- one run ----

async function oneRun(index: number, opts: Options, progress: Progress): Promise<RunResult> {
  const t0 = Date.now();
  const result: RunResult = {
    index,
    startedAt: iso(t0),
    durationMs: 0,
    loadavgBefore: os.loadavg().map((v) => Math.round(v * 100) / 100),
    loadavgAfter: [],
  };
  const windowMs = Math.round(opts.keepaliveTime * opts.keepaliveCount * 1000);
  const slowMs = Math.max(30_000, 10 * windowMs);
  const phase = (p: string): void => progress.setPhase(`run ${index}: ${p}`);
  const settings = { keepalive_time: opts.keepaliveTime, keepalive_count: opts.keepaliveCount };
  // A fresh pair for each of the two parts: see the header comment for why the failover does not
  // reuse the pair whose standby was rebuilt.
  const withRig = async (what: string, body: (rig: Rig) => Promise<void>): Promise<void> => {
    phase(`${what}: creating the pair and keepers`);
    let rig: Rig;
    try {
      rig = await createRig(settings);
    } catch (err) {
      throw new Error(`${what}: setting up the pair: ${(err as Error).stack ?? String(err)}`, { cause: err });
    }
    try {
      await body(rig);
    } finally {
      phase(`${what}: teardown`);
      await destroyRig(rig);
    }
  };
  try {
    await withRig('standby loss', async (rig) => {
      const a = await standbyLossAndReturn(rig, opts, slowMs, phase);
      result.standbyLoss = a.standbyLoss;
      result.heartbeats = a.heartbeats;
      result.returnToSync = a.returnToSync;
    });
    await withRig('failover', async (rig) => {
      result.failover = await failover(rig, opts, slowMs, phase);
    });
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
  }
  result.durationMs = Date.now() - t0;
  result.loadavgAfter = os.loadavg().map((v) => Math.round(v * 100) / 100);
  return result;
}

// ---- report ----

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

interface Target {
  name: string;
  value: string;
  met: boolean | null;
  note?: string;
}

const COMPARISON = {
  note: 'measured elsewhere on the same kind of machine, not by this benchmark',
  failoverMedianS: { repmgr: 4.6, pg_auto_failover: 4.4, Patroni: 20 },
  standbyLossStallS: { repmgr: 1.7, pg_auto_failover: 1.8, Patroni: 1.1 },
} as const;

/** f over xs, without the undefined and null answers. */
function pick<I, T>(xs: readonly I[], f: (x: I) => T | undefined | null): T[] {
  return xs.map(f).filter((v): v is T => v !== undefined && v !== null);
}

function summaries(runs: RunResult[], periodMs: number) {
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

function evaluateTargets(
  sum: ReturnType<typeof summaries>,
  opts: Options,
  completedFailovers: number,
): Target[] {
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

function report(
  runs: RunResult[],
  opts: Options,
  sum: ReturnType<typeof summaries>,
  targets: Target[],
  machine: Machine,
  load: { start: number[]; end: number[] },
): string {
  const windowMs = Math.round(opts.keepaliveTime * opts.keepaliveCount * 1000);
  const periodMs = Math.round(opts.keepaliveTime * 1000);
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

// ---- machine ----

interface Machine {
  cpus: number;
  cpuModel: string;
  cpuMHz: number;
  memGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  foreignPostgresAtStart: number;
}

function countPostgresProcesses(): number {
  let n = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.includes('(postgres)')) n++;
    } catch {
      // gone
    }
  }
  return n;
}

function machineInfo(foreignPostgres: number): Machine {
  const cpus = os.cpus();
  let postgres = 'unknown';
  try {
    const bin = process.env.PG_BIN ?? newestPgBin();
    if (bin)
      postgres = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' })
        .trim()
        .replace(/^postgres \(PostgreSQL\) /, '');
  } catch {
    // reported as unknown
  }
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuMHz: cpus[0]?.speed || cpuinfoMHz(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    postgres,
    foreignPostgresAtStart: foreignPostgres,
  };
}

/** Some virtual machines report speed 0 to os.cpus(); /proc/cpuinfo usually knows. */
function cpuinfoMHz(): number {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1])) : 0;
  } catch {
    return 0;
  }
}

function newestPgBin(): string | null {
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    const v = versions[0];
    return v ? path.join('/usr/lib/postgresql', v, 'bin') : null;
  } catch {
    return null;
  }
}

/** Refuse to measure a CLI older than the sources it is built from. */
function checkBuild(): void {
  if (!existsSync(CLI))
    throw new UsageError(`${path.relative(ROOT, CLI)} not found: run \`npm run build\` first`);
  const built = statSync(CLI).mtimeMs;
  const newer: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && statSync(p).mtimeMs > built) newer.push(path.relative(ROOT, p));
    }
  };
  walk(path.join(ROOT, 'src'));
  if (newer.length > 0) {
    process.stderr.write(
      `warning: ${newer.length} file(s) in src/ are newer than the built CLI (${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', ...' : ''}); run \`npm run build\` to measure them\n`,
    );
  }
}

async function writeJson(file: string, data: unknown): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  let text = `${JSON.stringify(data, null, 2)}\n`;
  // Formatted as the repository's prettier would, so that `prettier --check .` stays clean.
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    text = await prettier.format(text, { ...config, parser: 'json' });
  } catch {
    // prettier is a dev dependency; without it the plain JSON is kept
  }
  writeFileSync(file, text);
}

// ---- main ----

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
    checkBuild();
  } catch (err) {
    if (err instanceof UsageError) {
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
  const loadStart = os.loadavg().map((v) => Math.round(v * 100) / 100);
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

  const loadEnd = os.loadavg().map((v) => Math.round(v * 100) / 100);
  const periodMs = Math.round(opts.keepaliveTime * 1000);
  const sum = summaries(runs, periodMs);
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
      windowMs: Math.round(opts.keepaliveTime * opts.keepaliveCount * 1000),
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
