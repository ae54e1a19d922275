// /status: the keeper's view as JSON for people and `pg-keeper status`, and the
// Patroni-style health checks, both read from the same snapshot. No passwords: the
// configuration is shown through describeConfig(), which masks them.

import type { NodeName } from '../config/config.js';
import { describeConfig } from '../config/load.js';
import {
  lastAction,
  peerIsAlsoPrimary,
  syncModeOf,
  type Decision,
  type LocalActionKind,
  type ReplicationRecord,
  type Role,
  type Situation,
  type StandbyView,
  type SyncMode,
  type WalReceiverView,
} from '../policy/types.js';
import type { Keeper } from '../runtime/keeper.js';
import { holderName, type KeeperEvent, type Snapshot } from '../runtime/snapshot.js';
import { VERSION } from '../version.js';

export interface Status {
  version: string;
  /** cluster_name: the pair's name. */
  cluster: string;
  node: NodeName;
  peer: NodeName;
  role: Role;
  peer_role: Role;
  /** The policy's situation at the last tick; `starting` before the first. */
  state: Situation | 'starting';
  sync_mode: SyncMode;
  paused: boolean;
  alive: boolean;
  /** Ticks completed since the keeper started. */
  ticks: number;
  local: {
    up: boolean;
    error: string | null;
    timeline: number | null;
    wal_receiver: WalReceiverView | null;
    standbys: StandbyView[];
  };
  peer_reachable: boolean;
  peer_error: string | null;
  peer_is_primary: boolean;
  consecutive_failures: number;
  keepalive_count: number;
  keepalive_time: number;
  seconds_until_action: number | null;
  reason: string | null;
  severity: Decision['severity'] | null;
  decided_at: string | null;
  last_tick_at: string | null;
  guards: {
    primary_seen_at: string | null;
    synchronous_at_last_contact: boolean;
    failover_requires_sync: boolean;
    stream_timeout: number;
    saved_synchronous_standby_names: string | null;
    /** Whether this server, as a primary, may have acknowledged commits its standby lacks: a rejoin would then be refused. */
    may_have_acknowledged_alone: boolean | null;
  };
  last_action: { kind: LocalActionKind; at: string } | null;
  /** A rejoin in progress: its step, and since when; null when none runs. */
  task: { kind: 'rejoin' | 'switchover'; step: string; detail: string; started_at: string } | null;
  /** The last planned switchover this keeper took part in; null when none. */
  switchover: {
    id: string;
    phase: string;
    result: 'running' | 'ok' | 'failed' | 'refused';
    reason: string;
    started_at: string;
    ended_at: string | null;
  } | null;
  /** When the local server last rejoined the pair as a standby (ISO), or null. */
  last_rejoin_at: string | null;
  /** The rights the keeper's database role lacks, with the statement that grants each; null until checked. */
  grants_missing: string[] | null;
  /** The etcd arbiter; null in two-node mode. */
  arbiter: {
    /** The last call to etcd succeeded within the lease's TTL. */
    up: boolean;
    /** The last tick's read of etcd succeeded. */
    reachable: boolean;
    endpoint: string;
    error: string | null;
    /** Who holds the primary's key, as read at the last tick. */
    holder: NodeName | null;
    lease_held: boolean;
    lease_remaining_seconds: number | null;
    lease_ttl: number;
    /** What etcd records about replication. */
    replication: ReplicationRecord | null;
    renewals: number;
    renewal_failures: number;
    leases_lost: number;
  } | null;
  events: (Omit<KeeperEvent, 'at'> & { at: string })[];
  config: ReturnType<typeof describeConfig>;
}

const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();

export function buildStatus(keeper: Keeper): Status {
  const snap = keeper.snapshot();
  const cfg = keeper.config;
  const local = snap.observation?.local;
  const peer = snap.observation?.peer;
  const failures = snap.state.failures;
  const remaining = cfg.keepaliveCount - failures;
  const last = lastAction(snap.state);
  return {
    version: VERSION,
    cluster: cfg.clusterName,
    node: snap.node,
    peer: snap.peer,
    role: snap.state.role,
    // What the peer was at its last answer is not what it is now: unreachable means unknown.
    peer_role: peer?.reachable ? snap.state.peerRole : 'unknown',
    state: snap.decision?.situation ?? 'starting',
    sync_mode: local ? syncModeOf(local) : 'unknown',
    paused: snap.paused,
    alive: keeper.alive(),
    ticks: snap.ticks,
    local: {
      up: local?.up ?? false,
      error: local && !local.up ? local.error : null,
      timeline: local?.up ? local.timeline : null,
      wal_receiver: local?.up ? local.walReceiver : null,
      standbys: local?.up ? local.standbys : [],
    },
    peer_reachable: peer?.reachable ?? false,
    peer_error: peer && !peer.reachable ? peer.error : null,
    peer_is_primary: peerIsAlsoPrimary(snap.observation),
    consecutive_failures: failures,
    keepalive_count: cfg.keepaliveCount,
    keepalive_time: cfg.keepaliveTimeMs / 1000,
    seconds_until_action: failures > 0 && remaining > 0 ? (remaining * cfg.keepaliveTimeMs) / 1000 : null,
    reason: snap.decision?.reason ?? null,
    severity: snap.decision?.severity ?? null,
    decided_at: iso(snap.decision?.at),
    last_tick_at: iso(snap.lastTickAt),
    guards: {
      primary_seen_at: iso(snap.state.primarySeenAt),
      synchronous_at_last_contact: snap.state.syncAtLastContact,
      failover_requires_sync: cfg.failoverRequiresSync,
      stream_timeout: cfg.streamTimeoutMs / 1000,
      saved_synchronous_standby_names: snap.state.savedSyncNames,
      may_have_acknowledged_alone: snap.state.mayHaveAckedAlone,
    },
    last_action: last ? { kind: last.kind, at: iso(last.at) ?? '' } : null,
    task: snap.task
      ? {
          kind: snap.task.kind,
          step: snap.task.step,
          detail: snap.task.detail,
          started_at: iso(snap.task.startedAt) ?? '',
        }
      : null,
    last_rejoin_at: iso(snap.state.done.rejoin),
    switchover: snap.switchover
      ? {
          id: snap.switchover.id,
          phase: snap.switchover.phase,
          result: snap.switchover.result,
          reason: snap.switchover.reason,
          started_at: iso(snap.switchover.startedAt) ?? '',
          ended_at: iso(snap.switchover.endedAt),
        }
      : null,
    grants_missing: snap.missingGrants,
    arbiter: arbiterStatus(snap, cfg.etcdLeaseTtlMs),
    events: snap.events.map((e) => ({ ...e, at: iso(e.at) ?? '' })),
    config: describeConfig(cfg),
  };
}

function arbiterStatus(snap: Snapshot, ttlMs: number): Status['arbiter'] {
  const a = snap.arbiter;
  if (a === null) return null;
  const view = snap.observation?.arbiter;
  return {
    up: a.up,
    reachable: view?.reachable ?? false,
    endpoint: a.endpoint,
    error: view?.error ?? a.lastError,
    holder: holderName(snap),
    lease_held: a.leaseRemainingMs !== null,
    lease_remaining_seconds: a.leaseRemainingMs === null ? null : Math.round(a.leaseRemainingMs) / 1000,
    lease_ttl: ttlMs / 1000,
    replication: view?.replication ?? null,
    renewals: a.renewals,
    renewal_failures: a.renewalFailures,
    leases_lost: a.leasesLost,
  };
}

export const CHECK_NAMES = ['primary', 'replica', 'read-only', 'sync', 'async'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** What a health check needs, read from the snapshot (an HAProxy probe never builds /status). */
export interface CheckView {
  role: Role;
  localUp: boolean;
  peerIsPrimary: boolean;
  walReceiverStatus: string | null;
  synchronousAtLastContact: boolean;
  peerReachable: boolean;
  /**
   * Arbiter: who etcd said holds the lease at the last tick; 'lost' when etcd does not answer
   * and this keeper's own lease has run out (or it had none); 'unknown' in two-node mode or
   * when not read.
   */
  leaseHolder: 'self' | 'peer' | 'nobody' | 'lost' | 'unknown';
}

export function checkView(snap: Snapshot): CheckView {
  const local = snap.observation?.local;
  return {
    role: snap.state.role,
    localUp: local?.up ?? false,
    peerIsPrimary: peerIsAlsoPrimary(snap.observation),
    walReceiverStatus: local?.up ? (local.walReceiver?.status ?? null) : null,
    synchronousAtLastContact: snap.state.syncAtLastContact,
    peerReachable: snap.observation?.peer.reachable ?? false,
    leaseHolder: leaseHolderOf(snap),
  };
}

function leaseHolderOf(snap: Snapshot): CheckView['leaseHolder'] {
  const a = snap.observation?.arbiter;
  if (!a) return 'unknown';
  if (a.reachable) return a.holder ?? 'nobody';
  return a.leaseRemainingMs !== null ? 'self' : 'lost';
}

/**
 * A primary that clients may write to: up, and not a second primary, unless the arbiter says
 * it is the one holding the lease; never one whose lease the peer holds, nor one cut off from
 * both etcd and its peer after its lease ran out (the standby may have taken over: the load
 * balancer must stop sending clients to it). An etcd outage alone changes nothing: the peer
 * still answers, and a lone primary stays a primary.
 */
const writablePrimary = (v: CheckView): boolean =>
  v.role === 'primary' &&
  v.localUp &&
  v.leaseHolder !== 'peer' &&
  !(v.leaseHolder === 'lost' && !v.peerReachable) &&
  (!v.peerIsPrimary || v.leaseHolder === 'self');
const streamingStandby = (v: CheckView): boolean =>
  v.role === 'standby' && v.localUp && v.walReceiverStatus === 'streaming';
const synchronousStandby = (v: CheckView): boolean =>
  streamingStandby(v) && v.synchronousAtLastContact && v.peerReachable;

/** Patroni's meanings: HAProxy configurations written for Patroni work unchanged. */
export const checks: Record<CheckName, (v: CheckView) => boolean> = {
  primary: writablePrimary,
  replica: streamingStandby,
  'read-only': (v) => writablePrimary(v) || streamingStandby(v),
  sync: synchronousStandby,
  async: (v) => streamingStandby(v) && !synchronousStandby(v),
};
