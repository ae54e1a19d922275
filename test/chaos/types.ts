// What a chaos run records: the faults as they happened, what the operator did about them, and the
// anomalies found along the way and by the checker.

import type { AvailabilityCheck, Timing } from './availability.js';
import type { Topology } from './topology.js';
import type { CutMode, FaultKind, PlannedFault } from './schedule.js';
import type { NodeName } from '../../src/config/config.js';
import type { RejoinMethod } from '../../src/lifecycle/rejoin.js';
import type { Workload } from './workload.js';

export const ANOMALY_KINDS = [
  /** An acknowledged write is not on the final primary (outside a partition). */
  'lost-write',
  /** Two servers accepted writes at the same time (outside a partition). */
  'two-writers',
  /** A keeper process exited although nobody killed it. */
  'keeper-died',
  /** A keeper answered /health with something other than 200, twice in a row. */
  'keeper-unhealthy',
  /** At the end: keepers disagree with each other or with pg_is_in_recovery(), or two primaries. */
  'roles-inconsistent',
  /** The operator could not get back to one synchronous primary with both keepers agreeing. */
  'not-healed',
  /** The primary was gone long enough and the (synchronous) standby was not promoted. */
  'no-failover',
  /** Arbiter: writes stalled during a fault that left the pair itself alone (etcd's, the standby's path to it). */
  'write-stall',
  /** A primary kept replication asynchronous although its standby streamed and had caught up. */
  'sync-not-restored',
  /** Both servers were standbys for a long time. */
  'no-primary',
  /** A keeper promoted while no fault was active (the pair was healthy). */
  'spurious-promotion',
  /** A hung after_command was not reported as timed out, or left processes behind. */
  'hook-not-timed-out',
  /** after_command did not run exactly once per promotion, or failed when it should not. */
  'after-command',
  /** The fault could not be carried out as planned (e.g. the primary never went async). */
  'fault-failed',
  /** `pg-keeper rejoin` failed, timed out, or refused an old primary it should have taken (the operator then rebuilt it by hand). */
  'rejoin-failed',
  /** `pg-keeper rejoin`, without --force, discarded writes the server had acknowledged. */
  'rejoin-discarded',
  /** `pg-keeper switchover` back to the home node failed, or was refused although the pair was healthy. */
  'switchover-failed',
] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

export interface Anomaly {
  kind: AnomalyKind;
  seed: number;
  /** The fault it followed (1-based), null before the first. */
  fault: number | null;
  faultKind: FaultKind | null;
  detail: string;
}

/** Both servers were primaries when the operator looked. */
export interface TwoPrimaries {
  detectedAt: number;
  winner: NodeName;
  loser: NodeName;
  winnerTimeline: number | null;
  loserTimeline: number | null;
  /** Writes the loser acknowledged on its timeline that the winner does not have: lost by the rebuild. */
  lostIds: number[];
  /** Arbiter: who etcd said holds the lease, and what each keeper's /primary answered then. */
  leaseHolder?: NodeName | null;
  primaryCheck?: Record<NodeName, number | string>;
}

/** One old primary (or stuck standby) the operator turned into a standby of the primary. */
export interface RejoinRecord {
  node: NodeName;
  /** The primary it now streams from. */
  from: NodeName;
  /** What made it necessary: an old primary down, two primaries, a standby that does not stream or start. */
  why: 'old-primary-down' | 'two-primaries' | 'not-streaming' | 'start-failed';
  at: number;
  /** From the first `pg-keeper rejoin` to the server streaming (or the hand rebuild done). */
  ms: number;
  /**
   * pg-keeper's method; `by-hand`: pg-keeper could not (or the keepers do not manage their
   * servers), and the operator ran pg_basebackup itself; null: not done (the step failed).
   */
  method: RejoinMethod | 'by-hand' | null;
  /** Why `pg-keeper rejoin` refused without --force (then forced), or null. */
  refused: string | null;
  forced: boolean;
  /** Writes of its era acknowledged here and missing on `from`: measured before, and after the rejoin. */
  wouldDiscard: number | null;
  /**
   * The lostIds: the ids of those writes, measured before `rejoin --force` (empty when it was not
   * forced), so that a report names what the forced rejoin threw away.
   */
  lostIds: number[];
  discarded: number | null;
  /**
   * The ids of `discarded`, measured once it streams: more than lostIds after a forced rejoin of a
   * running old primary, which went on acknowledging writes until the rejoin stopped it.
   */
  discardedIds: number[] | null;
  /** What the node's keeper said before (guards.may_have_acknowledged_alone in /status). */
  keeperSaidAckedAlone: boolean | null;
  /** pg-keeper rejoin's failure when it failed (the operator then rebuilt it by hand). */
  failed: string | null;
}

/** A `pg-keeper switchover` the operator ran to bring the primary home. */
export interface SwitchoverRecord {
  from: NodeName;
  to: NodeName;
  /** The keeper asked (the primary's, or the standby's, which relays it). */
  via: NodeName;
  at: number;
  ms: number;
  outcome: 'ok' | 'refused' | 'failed';
  detail: string;
  /** Longest stretch without an acknowledged write while it ran. */
  writeGapMs: number;
}

export interface FaultRecord {
  planned: PlannedFault;
  /** The node the fault was aimed at (null: a partition, between both). */
  node: NodeName | null;
  primaryBefore: NodeName;
  startedAt: number;
  /** When the fault itself was removed (server started or thawed, keeper restarted, network healed). */
  endedAt: number;
  /** When the pair was healthy again. */
  healedAt: number;
  /** Every promotion in the fault's window; `switchover`: the operator's planned one, not a failover. */
  promotions: { node: NodeName; at: number; switchover: boolean }[];
  /** Arbiter: leases a keeper counted lost between the fault's start and the pair healed. */
  leasesLost: { node: NodeName; at: number; reason: string }[];
  /** Moments inside the fault (wall-clock ms): when the primary was lost, when a cut path came back. */
  marks: { lostAt?: number; reconnectedAt?: number };
  /** Arbiter: polls (every 250 ms while the fault was held) at which both keepers answered /primary 200. */
  bothPrimaryOk?: { firstAt: number; lastAt: number; polls: number };
  /** Set when the fault owed a promotion (the primary lost for long enough), or could have. */
  availability: AvailabilityCheck | null;
  twoPrimaries: TwoPrimaries[];
  operatorActions: string[];
  /** Servers the operator rejoined (pg-keeper rejoin, or by hand), and its switchovers home. */
  rejoins: RejoinRecord[];
  switchovers: SwitchoverRecord[];
  notes: string[];
}

export interface PartitionMeasurement {
  seed: number;
  fault: number;
  /** `partition` (between the nodes) or, with the arbiter, `isolate-primary`. */
  kind: FaultKind;
  mode: CutMode;
  cutMs: number;
  /** The standby promoted during the cut, this long after it started. */
  promotedAfterMs: number | null;
  /** From the first write the new primary acknowledged to the last one the old primary acknowledged. */
  bothAcceptedMs: number;
  /** Writes the old primary acknowledged after the new primary had acknowledged one. */
  ackedByOldAfterSplit: number;
  /** Acknowledged writes missing from the final primary. */
  lostAcked: number;
  /** From healing the network to a single primary again (the operator rebuilt the old one). */
  twoPrimariesForMs: number | null;
}

/** Everything a fault, the operator and the checker need while a run is going on. */
export interface RunContext {
  seed: number;
  topo: Topology;
  /** The keepers' timing as they report it; with the arbiter, its TTL. */
  timing: Timing;
  workload: Workload;
  log: (msg: string) => void;
  anomalies: Anomaly[];
  signal: AbortSignal;
  /** The fault being injected or healed; null before the first. */
  fault: FaultRecord | null;
  /** When the operator last rejoined each node (0: never): its acknowledged writes before are no longer its own. */
  rejoinedAt: Record<NodeName, number>;
}

/** A fault's record as it starts: nothing seen yet. */
export function startedFault(
  planned: PlannedFault,
  node: NodeName | null,
  primaryBefore: NodeName,
  startedAt: number,
): FaultRecord {
  return {
    planned,
    node,
    primaryBefore,
    startedAt,
    endedAt: 0,
    healedAt: 0,
    promotions: [],
    leasesLost: [],
    marks: {},
    availability: null,
    twoPrimaries: [],
    operatorActions: [],
    rejoins: [],
    switchovers: [],
    notes: [],
  };
}

export function anomaly(ctx: RunContext, kind: AnomalyKind, detail: string): void {
  const a: Anomaly = {
    kind,
    seed: ctx.seed,
    fault: ctx.fault?.planned.index ?? null,
    faultKind: ctx.fault?.planned.kind ?? null,
    detail,
  };
  ctx.anomalies.push(a);
  ctx.log(`  ANOMALY ${kind} (seed ${ctx.seed}, fault ${a.fault ?? '-'}): ${detail}`);
}

/** Waits `ms` (a fault's duration or a poll interval), or less when the run is aborted. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
