// Every pg-keeper metric, registered in one place on a registry of our own. Counters and
// histograms are updated by the runtime as things happen; gauges are computed at scrape
// time from the keeper's snapshot, so a scrape never waits for a database. A collect()
// that throws would fail the whole scrape: each one catches.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/config.js';
import type { Snapshot } from '../runtime/snapshot.js';
import { syncModeOf, type Role } from '../policy/types.js';

export const VERSION = '0.1.0';
const ROLES: Role[] = ['primary', 'standby', 'unknown'];

export interface KeeperMetrics {
  registry: Registry;
  heartbeats: Counter<'peer'>;
  heartbeatFailures: Counter<'peer'>;
  heartbeatDuration: Histogram<'peer'>;
  promotions: Counter;
  asyncSwitches: Counter;
  syncRestores: Counter;
  vetoes: Counter<'reason'>;
  actionFailures: Counter<'action'>;
  hookRuns: Counter<'hook' | 'result'>;
  hookFailures: Counter<'hook'>;
  hookDuration: Histogram<'hook'>;
  configReloads: Counter<'result'>;
}

export function createMetrics(snapshot: () => Snapshot, config: () => Config): KeeperMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  const s = snapshot;

  const gauge = (
    name: string,
    help: string,
    read: (g: Gauge, snap: Snapshot) => void,
    labelNames: string[] = [],
  ): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: r,
      collect() {
        try {
          this.reset();
          // prom-client's reset() puts an unlabelled gauge back at 0; a reading that sets nothing
          // (no WAL receiver on a primary, no sync mode on a standby) must leave the family empty.
          if (labelNames.length === 0) this.remove({});
          read(this, s());
        } catch {
          // A broken reading leaves this family empty; the rest of the scrape goes on.
        }
      },
    });
  };
  const seconds = (ms: number | null): number => (ms === null ? 0 : ms / 1000);

  gauge('pg_keeper_build_info', 'pg-keeper version; always 1', (g) => g.set({ version: VERSION }, 1), [
    'version',
  ]);
  gauge(
    'pg_keeper_node_info',
    'Which node this keeper runs beside, and its peer; always 1',
    (g, snap) => g.set({ node: snap.node, peer: snap.peer }, 1),
    ['node', 'peer'],
  );
  gauge('pg_keeper_keepalive_time_seconds', 'Configured seconds between heartbeats', (g) =>
    g.set(config().keepaliveTimeMs / 1000),
  );
  gauge(
    'pg_keeper_keepalive_threshold',
    'Configured keepalive_count: failed heartbeats in a row before acting',
    (g) => g.set(config().keepaliveCount),
  );
  gauge(
    'pg_keeper_stream_timeout_seconds',
    'Replication-stream silence after which a lost peer counts as dead',
    (g) => g.set(config().streamTimeoutMs / 1000),
  );
  gauge(
    'pg_keeper_heartbeat_consecutive_failures',
    'Heartbeats to the peer that failed in a row (compared with keepalive_count)',
    (g, snap) => g.set({ peer: snap.peer }, snap.state.failures),
    ['peer'],
  );
  gauge(
    'pg_keeper_role',
    'Role of the local server: 1 for the current one',
    (g, snap) => {
      for (const role of ROLES) g.set({ role }, snap.state.role === role ? 1 : 0);
    },
    ['role'],
  );
  gauge(
    'pg_keeper_peer_role',
    'Role of the peer at its last answer: 1 for the current one',
    (g, snap) => {
      for (const role of ROLES) g.set({ role }, snap.state.peerRole === role ? 1 : 0);
    },
    ['role'],
  );
  gauge('pg_keeper_synchronous_replication', 'On a primary: 1 synchronous, 0 asynchronous', (g, snap) => {
    const mode = snap.observation ? syncModeOf(snap.observation.local) : 'unknown';
    if (mode !== 'unknown') g.set(mode === 'sync' ? 1 : 0);
  });
  gauge('pg_keeper_local_up', '1 when the local server answered at the last tick', (g, snap) =>
    g.set(snap.observation?.local.up ? 1 : 0),
  );
  gauge('pg_keeper_peer_up', '1 when the last heartbeat to the peer succeeded', (g, snap) =>
    g.set(snap.observation?.peer.reachable ? 1 : 0),
  );
  gauge('pg_keeper_peer_is_primary', '1 when both the local server and the peer are primaries', (g, snap) => {
    const o = snap.observation;
    g.set(o && o.local.up && !o.local.inRecovery && o.peer.reachable && !o.peer.inRecovery ? 1 : 0);
  });
  gauge('pg_keeper_paused', '1 while the keeper observes but takes no action', (g, snap) =>
    g.set(snap.paused ? 1 : 0),
  );
  gauge(
    'pg_keeper_last_promotion_timestamp_seconds',
    'When this keeper last promoted its server (0: never)',
    (g, snap) => g.set(seconds(snap.lastPromotionAt)),
  );
  gauge(
    'pg_keeper_last_async_switch_timestamp_seconds',
    'When this keeper last switched to asynchronous replication (0: never)',
    (g, snap) => g.set(seconds(snap.lastAsyncSwitchAt)),
  );
  gauge(
    'pg_keeper_last_sync_restore_timestamp_seconds',
    'When this keeper last restored synchronous replication (0: never)',
    (g, snap) => g.set(seconds(snap.lastSyncRestoreAt)),
  );
  gauge('pg_keeper_last_tick_timestamp_seconds', 'When the keeper loop last completed a tick', (g, snap) =>
    g.set(seconds(snap.lastTickAt)),
  );
  gauge('pg_keeper_timeline', 'Timeline of the local server', (g, snap) => {
    const l = snap.observation?.local;
    if (l?.up && l.timeline !== null) g.set(l.timeline);
  });
  gauge(
    'pg_keeper_replication_lag_bytes',
    'On a primary: replay lag of its most lagging standby',
    (g, snap) => {
      const lags = standbyValues(snap, (v) => v.replayLagBytes);
      if (lags.length > 0) g.set(Math.max(...lags));
    },
  );
  gauge(
    'pg_keeper_replication_lag_seconds',
    'On a primary: replay_lag of its most lagging standby',
    (g, snap) => {
      const lags = standbyValues(snap, (v) => v.replayLagSeconds ?? 0);
      if (lags.length > 0) g.set(Math.max(...lags));
    },
  );
  gauge('pg_keeper_streaming_standbys', 'On a primary: standbys in state streaming', (g, snap) => {
    const l = snap.observation?.local;
    if (l?.up && !l.inRecovery) g.set(l.standbys.filter((v) => v.state === 'streaming').length);
  });
  gauge(
    'pg_keeper_wal_receiver_last_message_age_seconds',
    'On a standby: time since its WAL receiver last heard from the primary',
    (g, snap) => {
      const rx = snap.observation?.local.up ? snap.observation.local.walReceiver : null;
      if (rx && rx.lastMessageAgeMs !== null) g.set(rx.lastMessageAgeMs / 1000);
    },
  );
  gauge(
    'pg_keeper_standby_synchronous',
    'On a standby: 1 when it was the synchronous standby at last contact with the primary',
    (g, snap) => {
      if (snap.state.role === 'standby') g.set(snap.state.syncAtLastContact ? 1 : 0);
    },
  );

  return {
    registry,
    heartbeats: new Counter({
      name: 'pg_keeper_heartbeats_total',
      help: 'Heartbeats sent to the peer',
      labelNames: ['peer'],
      registers: r,
    }),
    heartbeatFailures: new Counter({
      name: 'pg_keeper_heartbeat_failures_total',
      help: 'Heartbeats to the peer that failed or timed out',
      labelNames: ['peer'],
      registers: r,
    }),
    heartbeatDuration: new Histogram({
      name: 'pg_keeper_heartbeat_duration_seconds',
      help: 'Round trip of successful heartbeats',
      labelNames: ['peer'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    }),
    promotions: new Counter({
      name: 'pg_keeper_promotions_total',
      help: 'Promotions this keeper performed',
      registers: r,
    }),
    asyncSwitches: new Counter({
      name: 'pg_keeper_async_switches_total',
      help: 'Switches from synchronous to asynchronous replication',
      registers: r,
    }),
    syncRestores: new Counter({
      name: 'pg_keeper_sync_restores_total',
      help: 'Switches back to synchronous replication once the standby caught up',
      registers: r,
    }),
    vetoes: new Counter({
      name: 'pg_keeper_promotion_vetoes_total',
      help: 'Actions a guard refused, once per run of failed heartbeats',
      labelNames: ['reason'],
      registers: r,
    }),
    actionFailures: new Counter({
      name: 'pg_keeper_action_failures_total',
      help: 'Actions on the local server that failed (retried at the next tick)',
      labelNames: ['action'],
      registers: r,
    }),
    hookRuns: new Counter({
      name: 'pg_keeper_after_command_runs_total',
      help: 'after_command / after_async_command runs by result',
      labelNames: ['hook', 'result'],
      registers: r,
    }),
    hookFailures: new Counter({
      name: 'pg_keeper_after_command_failures_total',
      help: 'after_command / after_async_command runs that exited non-zero, could not start, or timed out',
      labelNames: ['hook'],
      registers: r,
    }),
    hookDuration: new Histogram({
      name: 'pg_keeper_after_command_duration_seconds',
      help: 'How long after_command / after_async_command ran',
      labelNames: ['hook'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: r,
    }),
    configReloads: new Counter({
      name: 'pg_keeper_config_reloads_total',
      help: 'SIGHUP reloads of the configuration by result',
      labelNames: ['result'],
      registers: r,
    }),
  };
}

function standbyValues(
  snap: Snapshot,
  pick: (v: { replayLagBytes: number | null; replayLagSeconds: number | null }) => number | null,
): number[] {
  const l = snap.observation?.local;
  if (!l?.up || l.inRecovery) return [];
  return l.standbys.map(pick).filter((x): x is number => x !== null);
}
