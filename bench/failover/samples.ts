// What one run of the failover benchmark measures, and the helpers every scenario shares. Times
// are wall-clock milliseconds (keeper log lines, client send and acknowledgement times).

import { round1, summarize } from '../lib/stats.js';
import { wallNow, type Ack, type WriteLoop } from '../lib/write-loop.js';
import { waitFor } from '../../src/util/wait.js';

const WARMUP_MS = 1000;

/** Times in ms relative to the kill unless named otherwise. */
export interface FailoverSample {
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

export interface StandbyLossSample {
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

export interface ReturnSample {
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

export interface HeartbeatSample {
  /** Intervals (ms) between consecutive failed-heartbeat lines of node1's keeper, peer down. */
  intervals: number[];
  /** Cross-check: pg_keeper_heartbeats_total of node1's keeper after its first tick, and ms since that tick. */
  counter: { count: number; elapsedMs: number } | null;
}

export interface RunResult {
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

/** How long a scenario may wait for anything, and where it says what it is doing. */
export interface Pace {
  /** keepalive_time, ms. */
  periodMs: number;
  /** Beyond this, a wait is a failure of the run. */
  slowMs: number;
  phase: (p: string) => void;
}

export const r1 = round1;
export const iso = (ms: number): string => new Date(ms).toISOString();
export const rel = (at: number | null, from: number): number | null => (at === null ? null : r1(at - from));

export function latency(a: Ack): number {
  return a.end - a.start;
}

export function maxLatency(acks: readonly Ack[]): number {
  return acks.reduce((m, a) => Math.max(m, latency(a)), 0);
}

export function median(xs: number[]): number {
  return summarize(xs)?.median ?? Number.NaN;
}

/** f over xs, without the undefined and null answers. */
export function pick<I, T>(xs: readonly I[], f: (x: I) => T | undefined | null): T[] {
  return xs.map(f).filter((v): v is T => v !== undefined && v !== null);
}

/**
 * Writes for WARMUP_MS plus a random part of one keepalive_time. The random part matters: the pair
 * is declared healthy right after a keeper tick, so a fixed warm-up would kill at the same phase of
 * the keepers' schedule in every run, and detection (which depends on that phase) would be sampled
 * at one point of its range instead of over all of it.
 */
export async function warmUp(loop: WriteLoop, node: string, pace: Pace): Promise<void> {
  const t0 = wallNow();
  const ms = WARMUP_MS + Math.random() * pace.periodMs;
  await waitFor(
    () => wallNow() - t0 >= ms && loop.acksOn(node).length >= 20,
    `the write loop to commit on ${node}`,
    pace.slowMs,
    20,
  );
}
