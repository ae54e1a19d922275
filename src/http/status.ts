// /status: the keeper's view as JSON for people and `pg-keeper status`, and the
// Patroni-style health checks derived from the same view. No passwords: the
// configuration is shown through describeConfig(), which masks them.

import { describeConfig } from '../config/load.js';
import { VERSION } from '../metrics/metrics.js';
import { syncModeOf, type SyncMode } from '../policy/types.js';
import type { Keeper } from '../runtime/keeper.js';
import type { KeeperEvent } from '../runtime/snapshot.js';

export interface Status {
  version: string;
  node: string;
  peer: string;
  role: string;
  peer_role: string;
  state: string;
  sync_mode: SyncMode;
  paused: boolean;
  alive: boolean;
  local: {
    up: boolean;
    error: string | null;
    timeline: number | null;
    wal_receiver: unknown;
    standbys: unknown[];
  };
  peer_reachable: boolean;
  peer_error: string | null;
  peer_is_primary: boolean;
  consecutive_failures: number;
  keepalive_count: number;
  keepalive_time: number;
  seconds_until_action: number | null;
  reason: string | null;
  decided_at: string | null;
  last_tick_at: string | null;
  guards: {
    primary_seen_at: string | null;
    synchronous_at_last_contact: boolean;
    failover_requires_sync: boolean;
    stream_timeout: number;
    saved_synchronous_standby_names: string | null;
  };
  last_action: { kind: string; at: string } | null;
  events: (Omit<KeeperEvent, 'at'> & { at: string })[];
  config: ReturnType<typeof describeConfig>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function buildStatus(keeper: Keeper): Status {
  const snap = keeper.snapshot();
  const cfg = keeper.config;
  const o = snap.observation;
  const local = o?.local;
  const peer = o?.peer;
  const failures = snap.state.failures;
  const remaining = cfg.keepaliveCount - failures;
  return {
    version: VERSION,
    node: snap.node,
    peer: snap.peer,
    role: snap.state.role,
    peer_role: snap.state.peerRole,
    state: snap.decision?.situation ?? 'starting',
    sync_mode: local ? syncModeOf(local) : 'unknown',
    paused: snap.paused,
    alive: keeper.alive(),
    local: {
      up: local?.up ?? false,
      error: local && !local.up ? local.error : null,
      timeline: local?.up ? local.timeline : null,
      wal_receiver: local?.up ? local.walReceiver : null,
      standbys: local?.up ? local.standbys : [],
    },
    peer_reachable: peer?.reachable ?? false,
    peer_error: peer && !peer.reachable ? peer.error : null,
    peer_is_primary: !!(local?.up && !local.inRecovery && peer?.reachable && !peer.inRecovery),
    consecutive_failures: failures,
    keepalive_count: cfg.keepaliveCount,
    keepalive_time: cfg.keepaliveTimeMs / 1000,
    seconds_until_action: failures > 0 && remaining > 0 ? (remaining * cfg.keepaliveTimeMs) / 1000 : null,
    reason: snap.decision?.reason ?? null,
    decided_at: iso(snap.decision?.at ?? null),
    last_tick_at: iso(snap.lastTickAt),
    guards: {
      primary_seen_at: iso(snap.state.primarySeenAt),
      synchronous_at_last_contact: snap.state.syncAtLastContact,
      failover_requires_sync: cfg.failoverRequiresSync,
      stream_timeout: cfg.streamTimeoutMs / 1000,
      saved_synchronous_standby_names: snap.state.savedSyncNames,
    },
    last_action: snap.state.lastAction
      ? { kind: snap.state.lastAction.kind, at: iso(snap.state.lastAction.at) ?? '' }
      : null,
    events: snap.events.map((e) => ({ ...e, at: iso(e.at) ?? '' })),
    config: describeConfig(cfg),
  };
}

export type CheckName = 'primary' | 'replica' | 'read-only' | 'sync' | 'async';

const streamingStandby = (s: Status): boolean =>
  s.role === 'standby' &&
  s.local.up &&
  (s.local.wal_receiver as { status?: string } | null)?.status === 'streaming';

/** Patroni's meanings: HAProxy configurations written for Patroni work unchanged. */
export const checks: Record<CheckName, (s: Status) => boolean> = {
  primary: (s) => s.role === 'primary' && s.local.up && !s.peer_is_primary,
  replica: streamingStandby,
  'read-only': (s) => (s.role === 'primary' && s.local.up && !s.peer_is_primary) || streamingStandby(s),
  sync: (s) => streamingStandby(s) && s.guards.synchronous_at_last_contact && s.peer_reachable,
  async: (s) => streamingStandby(s) && !(s.guards.synchronous_at_last_contact && s.peer_reachable),
};
