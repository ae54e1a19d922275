// What each scenario of the arbiter's benchmark measures in one run. Times are wall-clock ms,
// relative to the fault (the cut, the kill) unless named otherwise; null where the moment did not
// happen (no promotion) or was not seen.

export const SCENARIOS = [
  'partition',
  'isolate-primary',
  'host-loss',
  'server-crash',
  'etcd-outage',
  'standby-cut',
  'etcd-leader',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Acknowledged writes and what became of them. */
export interface WriteCheck {
  /** Acknowledged by the node that was the primary before the fault. */
  ackedOld: number;
  /** ... and missing on the final primary. */
  lost: number;
  lostIds: number[];
  /** Writes the old primary acknowledged that were sent after the new one acknowledged its first. */
  dualWrites: number;
  /** From the new primary's first acknowledgement to the old one's last such write (0: none). */
  dualWritableMs: number;
}

/** 1. The network between the nodes cut; both keepers still reach etcd. */
export interface PartitionSample {
  recordAsyncMs: number | null;
  switchOkMs: number | null;
  /** Longest commit latency on the primary around the cut. */
  stallMs: number;
  /** The cut -> that commit acknowledged (commits flow again). */
  resumedMs: number;
  heldMs: number;
  /** The standby's server was seen out of recovery, or its keeper logged a promotion. */
  promoted: boolean;
  /** The standby's keeper's no-lease vetoes (pg_keeper_promotion_vetoes_total). */
  noLeaseVetoes: number | null;
  /** Network healed -> the primary records "sync" in etcd again. */
  healToSyncRecordedMs: number | null;
  writes: WriteCheck;
  /** The primary's acknowledged writes missing on the standby once "sync" is recorded again. */
  missingOnStandby: number;
}

/** etcd's own view of a lease running out, and the standby taking over. */
export interface TakeoverBreakdown {
  /** etcd's lease expiry (from its TTL readings), relative to the fault: the lease left at it. */
  etcdExpiryMs: number | null;
  /** etcd deleted the key. */
  etcdDeletedMs: number | null;
  claimOkMs: number | null;
  promoteOkMs: number | null;
  /** First write acknowledged by the new primary. */
  firstWriteMs: number | null;
}

/** 2. The primary cut from the standby and from etcd. */
export interface IsolateSample extends TakeoverBreakdown {
  /** The isolated keeper counted its lease gone (ran_out_at). */
  leaseRanOutMs: number | null;
  /** Writes sent to the old primary after the cut that it acknowledged. */
  oldAckedAfterCut: number;
  /** The old primary's keeper reported synchronous replication throughout. */
  oldStayedSync: boolean;
  /**
   * Both keepers answered /primary 200 (polled every 100 ms): longest stretch. The cut is held for
   * 2 s after the new primary's first write, which bounds it here.
   */
  bothPrimary200Ms: number;
  /** After the heal (two ticks): the old primary's /primary and situation. */
  oldPrimaryCheckAfterHeal: number | null;
  oldStateAfterHeal: string | null;
  writes: WriteCheck;
}

/** 3. The primary's whole host lost: server and keeper SIGKILLed. */
export interface HostLossSample extends TakeoverBreakdown {
  decisionMs: number | null;
  writes: WriteCheck;
}

/** 4. The primary's server SIGKILLed, its keeper alive. */
export interface ServerCrashSample extends TakeoverBreakdown {
  releaseOkMs: number | null;
  decisionMs: number | null;
  writes: WriteCheck;
}

/** 5. Every etcd member killed for twice the TTL while the pair is healthy. */
export interface EtcdOutageSample {
  outageMs: number;
  /** pg_keeper_arbiter_up read 0 (after the kill) and 1 again (after the restart, relative to it). */
  upZeroMs: Record<'node1' | 'node2', number | null>;
  upOneAfterRestartMs: Record<'node1' | 'node2', number | null>;
  /** Restart -> every member answers its health check again (etcd's own start). */
  etcdHealthyAfterRestartMs: number;
  /** Longest commit latency on the primary from the kill to 2 s after the restart. */
  stallMs: number;
  /** Longest time without an acknowledged write in that stretch. */
  longestGapMs: number;
  writesDuring: number;
  promoted: boolean;
  leasesLost: number;
  /** Restart -> the primary's keeper holds the lease again. */
  reclaimAfterRestartMs: number | null;
}

/** 6. The standby cut from etcd while the primary's host is lost. */
export interface StandbyCutSample {
  cutHeldMs: number;
  /** Relative to the host's loss. */
  etcdDeletedMs: number | null;
  promotedWhileCut: boolean;
  /** Relative to reaching etcd again. */
  claimOkMs: number | null;
  promoteOkMs: number | null;
  firstWriteMs: number | null;
  writes: WriteCheck;
}

/** 7. One fault on a 3-member etcd's leader (killed, or frozen) for 2 s. */
export interface LeaderFaultSample {
  fault: 'kill' | 'freeze';
  leader: string;
  /** Until some other member names itself leader. */
  newLeaderMs: number | null;
  renewalFailures: number;
  /** The least lease left that a failed renewal reported (null: no renewal failed). */
  minLeaseRemainingMs: number | null;
  leasesLost: number;
  promoted: boolean;
  /** Longest commit latency on the primary from the fault to 2 s after it ended. */
  stallMs: number;
}

export interface EtcdLeaderSample {
  faults: LeaderFaultSample[];
}

export interface ScenarioResult {
  scenario: ScenarioName;
  run: number;
  startedAt: string;
  durationMs: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
  ttl: number;
  members: 1 | 3;
  sample?:
    | PartitionSample
    | IsolateSample
    | HostLossSample
    | ServerCrashSample
    | EtcdOutageSample
    | StandbyCutSample
    | EtcdLeaderSample;
  error?: string;
}

export const r1 = (v: number): number => Math.round(v * 10) / 10;
export const rel = (at: number | null | undefined, from: number): number | null =>
  at === null || at === undefined ? null : r1(at - from);
