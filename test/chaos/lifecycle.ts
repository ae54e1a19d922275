// What the operator makes of `pg-keeper rejoin` and `pg-keeper switchover` (the built CLI, run
// by Topology.pgKeeper as the OS user postgres, as a person on the host runs them): the outcome
// read from the exit status and the command's own words, and the figures the report gives.
// Pure functions, tested in lifecycle.test.ts.

import type { NodeName } from '../../src/config/config.js';
import type { RejoinMethod } from '../../src/lifecycle/rejoin.js';
import type { WriteRecord } from './workload.js';

/** One run of a pg-keeper command: exit status (null: killed), everything it printed, how long. */
export interface CliRun {
  code: number | null;
  out: string;
  ms: number;
  /** Killed at its deadline (or because the run was aborted). */
  timedOut: boolean;
}

export type RejoinOutcome =
  | { kind: 'ok'; method: RejoinMethod }
  /** The keeper's state says the server may have acknowledged commits alone, or cannot say: --force. */
  | { kind: 'refused-unsafe'; reason: string }
  /** With the arbiter: this node holds the primary's key, or etcd cannot be asked. */
  | { kind: 'refused-arbiter'; reason: string }
  /** rejoin() itself: the peer is not a primary, or not on a newer timeline. */
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; reason: string };

const lines = (out: string, prefix: string): string[] =>
  out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => (l.startsWith(prefix) ? l.slice(prefix.length) : l));

const last = (ls: string[]): string => ls[ls.length - 1] ?? '(no output)';

/** What `pg-keeper rejoin` did, from its exit status and its last words (rejoin-command.ts). */
export function classifyRejoin(run: CliRun): RejoinOutcome {
  const ls = lines(run.out, 'pg-keeper rejoin: ');
  if (run.timedOut) return { kind: 'failed', reason: `no answer within ${run.ms} ms; last: ${last(ls)}` };
  if (run.code === 0) {
    if (ls.some((l) => /already streams from the peer: nothing to do/.test(l)))
      return { kind: 'ok', method: 'restart' };
    const done = ls.map((l) => /^done in .* \((rewind|basebackup)\)/.exec(l)).find((m) => m !== null);
    if (done) return { kind: 'ok', method: done[1] as RejoinMethod };
    return { kind: 'failed', reason: `exit 0 but no "done" line: ${last(ls)}` };
  }
  const refusal = ls.find((l) => /; not rejoining \(--force rejoins anyway/.test(l));
  if (refusal) {
    const reason = refusal.replace(/; not rejoining \(--force.*$/, '');
    return /primary's key/.test(reason)
      ? { kind: 'refused-arbiter', reason }
      : { kind: 'refused-unsafe', reason };
  }
  const refused = ls.find((l) => l.startsWith('refused: '));
  if (refused) return { kind: 'refused', reason: refused.slice('refused: '.length) };
  return { kind: 'failed', reason: `exit ${run.code}: ${last(ls)}` };
}

export type SwitchoverOutcome =
  | { kind: 'ok' }
  /** The keeper would not take it (HTTP refusal, or the switchover's own "refused"). */
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; reason: string };

/** What `pg-keeper switchover` did (switchover-command.ts). */
export function classifySwitchover(run: CliRun): SwitchoverOutcome {
  const ls = lines(run.out, 'pg-keeper switchover: ');
  if (run.timedOut) return { kind: 'failed', reason: `no answer within ${run.ms} ms; last: ${last(ls)}` };
  if (run.code === 0) {
    return ls.some((l) => /^done in /.test(l))
      ? { kind: 'ok' }
      : { kind: 'failed', reason: `exit 0 but no "done" line: ${last(ls)}` };
  }
  const refused = ls.find((l) => /^refused( \(HTTP \d+\))?: /.test(l));
  if (refused) return { kind: 'refused', reason: refused.replace(/^refused( \(HTTP \d+\))?: /, '') };
  return { kind: 'failed', reason: `exit ${run.code}: ${last(ls)}` };
}

/**
 * A keeper's `promote` log line for a planned switchover's promotion, not a failover: its reason
 * names the switchover ("switchover <id>: the primary stopped cleanly at <lsn>, ...").
 */
export function promotedBySwitchover(line: Record<string, unknown>): boolean {
  return /^switchover \S+: the primary stopped cleanly/.test(String(line.reason ?? ''));
}

/**
 * Ids `node` acknowledged since `since` (its last rejoin; 0: ever): those the new primary lacks are
 * what rejoining it discards. Only its own era counts: before its last rejoin, what it had alone was
 * already gone.
 */
export function ackedSince(records: readonly WriteRecord[], node: NodeName, since: number): number[] {
  return records.filter((r) => r.node === node && r.ackAt !== null && r.ackAt > since).map((r) => r.id);
}

/** The longest stretch in [from, to] without an acknowledged write (what the application felt). */
export function longestAckGap(records: readonly WriteRecord[], from: number, to: number): number {
  const acks = records
    .map((r) => r.ackAt)
    .filter((t): t is number => t !== null && t >= from && t <= to)
    .sort((a, b) => a - b);
  let prev = from;
  let gap = 0;
  for (const t of acks) {
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  return Math.max(gap, to - prev);
}

/** Ids as a report names them: all of a short list, the first six and the last three of a long one. */
export function formatIds(ids: readonly number[]): string {
  if (ids.length <= 12) return ids.join(', ');
  return `${ids.slice(0, 6).join(', ')} ... ${ids.slice(-3).join(', ')}`;
}

/** min, median and max, or null for nothing. */
export function spread(
  values: readonly number[],
): { n: number; min: number; median: number; max: number } | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { n: s.length, min: s[0] as number, median, max: s[s.length - 1] as number };
}
