// Every pg-keeper metric, registered in one place on a registry of our own. Everything but
// the two histograms is computed at scrape time from the keeper's snapshot (its counts, its
// state, its last observation), so a scrape never waits for a database and a counter can
// never disagree with /status. A collect() that throws would fail the whole scrape: each
// one catches. Every known label set exists from the start, at zero: a series that first
// appears at 1 is invisible to increase() and rate(), so a first failure would never alert.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config, NodeName } from '../config/config.js';
import { HOOK_RESULTS } from '../hooks/hooks.js';
import {
  HOOK_NAMES,
  LOCAL_ACTION_KINDS,
  ROLES,
  VETO_REASONS,
  syncModeOf,
  peerIsAlsoPrimary,
  type LocalActionKind,
} from '../policy/types.js';
import { holderName, type Snapshot } from '../runtime/snapshot.js';
import { VERSION } from '../version.js';

export interface KeeperMetrics {
  registry: Registry;
  heartbeatDuration: Histogram<'peer'>;
  hookDuration: Histogram<'hook'>;
  tickDelay: Histogram;
}

type Labels = Record<string, string>;
type Reading = [Labels, number][];

/** `peer` names the histograms' series before the first heartbeat. */
export function createMetrics(snapshot: () => Snapshot, config: () => Config, peer: NodeName): KeeperMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];

  /** A gauge or counter whose samples are read from the snapshot at scrape time. */
  const family = (
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: string[],
    read: (snap: Snapshot) => Reading,
  ): void => {
    const Type = kind === 'gauge' ? Gauge : Counter;
    new Type({
      name,
      help,
      labelNames,
      registers: r,
      collect(this: Gauge | Counter) {
        try {
          this.reset();
          // prom-client's reset() puts an unlabelled family back at 0; a reading that sets nothing
          // (no WAL receiver on a primary, no sync mode on a standby) must leave the family empty.
          if (labelNames.length === 0) this.remove({});
          for (const [labels, value] of read(snapshot())) {
            if (this instanceof Gauge) this.set(labels, value);
            else this.inc(labels, value);
          }
        } catch {
          // A broken reading leaves this family empty; the rest of the scrape goes on.
        }
      },
    });
  };
  const gauge = (name: string, help: string, read: (snap: Snapshot) => number | null): void =>
    family('gauge', name, help, [], (snap) => {
      const v = read(snap);
      return v === null ? [] : [[{}, v]];
    });
  const counter = (name: string, help: string, read: (snap: Snapshot) => number): void =>
    family('counter', name, help, [], (snap) => [[{}, read(snap)]]);
  const seconds = (ms: number | undefined | null): number =>
    ms === null || ms === undefined ? 0 : ms / 1000;
  const done = (kind: LocalActionKind) => (snap: Snapshot) => seconds(snap.state.done[kind]);
  const local = (snap: Snapshot) => snap.observation?.local;

  family('gauge', 'pg_keeper_build_info', 'pg-keeper version; always 1', ['version'], () => [
    [{ version: VERSION }, 1],
  ]);
  // An info metric (Prometheus' convention): the pair's name and the node's reach every view
  // through `* on(instance) group_left(cluster, node) pg_keeper_node_info`, without a label on
  // every series (which would multiply them by nothing, and change every query).
  family(
    'gauge',
    'pg_keeper_node_info',
    'Which pair (cluster_name) and node this keeper runs beside, and its peer; always 1',
    ['cluster', 'node', 'peer'],
    (snap) => [[{ cluster: config().clusterName, node: snap.node, peer: snap.peer }, 1]],
  );

  gauge(
    'pg_keeper_keepalive_time_seconds',
    'Configured seconds between heartbeats',
    () => config().keepaliveTimeMs / 1000,
  );
  gauge(
    'pg_keeper_keepalive_threshold',
    'Configured keepalive_count: failed heartbeats in a row before acting',
    () => config().keepaliveCount,
  );
  gauge(
    'pg_keeper_stream_timeout_seconds',
    'Replication-stream silence after which a lost peer counts as dead',
    () => config().streamTimeoutMs / 1000,
  );

  family('counter', 'pg_keeper_heartbeats_total', 'Heartbeats sent to the peer', ['peer'], (snap) => [
    [{ peer: snap.peer }, snap.counts.heartbeats],
  ]);
  family(
    'counter',
    'pg_keeper_heartbeat_failures_total',
    'Heartbeats to the peer that failed or timed out',
    ['peer'],
    (snap) => [[{ peer: snap.peer }, snap.counts.heartbeatFailures]],
  );
  family(
    'gauge',
    'pg_keeper_heartbeat_consecutive_failures',
    'Heartbeats to the peer that failed in a row (compared with keepalive_count)',
    ['peer'],
    (snap) => [[{ peer: snap.peer }, snap.state.failures]],
  );
  family('gauge', 'pg_keeper_role', 'Role of the local server: 1 for the current one', ['role'], (snap) =>
    ROLES.map((role) => [{ role }, snap.state.role === role ? 1 : 0]),
  );
  family(
    'gauge',
    'pg_keeper_peer_role',
    'Role of the peer at its last answer: 1 for the current one',
    ['role'],
    (snap) => ROLES.map((role) => [{ role }, snap.state.peerRole === role ? 1 : 0]),
  );
  gauge('pg_keeper_synchronous_replication', 'On a primary: 1 synchronous, 0 asynchronous', (snap) => {
    const l = local(snap);
    const mode = l ? syncModeOf(l) : 'unknown';
    return mode === 'unknown' ? null : mode === 'sync' ? 1 : 0;
  });
  gauge('pg_keeper_local_up', '1 when the local server answered at the last tick', (snap) =>
    local(snap)?.up ? 1 : 0,
  );
  gauge('pg_keeper_peer_up', '1 when the last heartbeat to the peer succeeded', (snap) =>
    snap.observation?.peer.reachable ? 1 : 0,
  );
  gauge('pg_keeper_peer_is_primary', '1 when both the local server and the peer are primaries', (snap) =>
    peerIsAlsoPrimary(snap.observation) ? 1 : 0,
  );
  gauge('pg_keeper_paused', '1 while the keeper observes but takes no action', (snap) =>
    snap.paused ? 1 : 0,
  );

  counter(
    'pg_keeper_promotions_total',
    'Promotions this keeper performed',
    (snap) => snap.counts.actions.promote.ok,
  );
  counter(
    'pg_keeper_async_switches_total',
    'Switches from synchronous to asynchronous replication',
    (snap) => snap.counts.actions['switch-to-async'].ok,
  );
  counter(
    'pg_keeper_sync_restores_total',
    'Switches back to synchronous replication once the standby caught up',
    (snap) => snap.counts.actions['restore-sync'].ok,
  );
  family(
    'counter',
    'pg_keeper_action_failures_total',
    'Actions on the local server that failed (retried at the next tick)',
    ['action'],
    (snap) => LOCAL_ACTION_KINDS.map((action) => [{ action }, snap.counts.actions[action].failed]),
  );
  family(
    'counter',
    'pg_keeper_promotion_vetoes_total',
    'Actions a guard refused, once per run of failed heartbeats',
    ['reason'],
    (snap) => VETO_REASONS.map((reason) => [{ reason }, snap.counts.vetoes[reason]]),
  );
  family(
    'counter',
    'pg_keeper_after_command_runs_total',
    'after_command / after_async_command runs by result',
    ['hook', 'result'],
    (snap) =>
      HOOK_NAMES.flatMap((hook) =>
        HOOK_RESULTS.map((result): [Labels, number] => [{ hook, result }, snap.counts.hooks[hook][result]]),
      ),
  );
  family(
    'counter',
    'pg_keeper_after_command_failures_total',
    'after_command / after_async_command runs that exited non-zero, could not start, or timed out',
    ['hook'],
    (snap) =>
      HOOK_NAMES.map((hook) => [{ hook }, snap.counts.hooks[hook].failure + snap.counts.hooks[hook].timeout]),
  );
  family(
    'counter',
    'pg_keeper_config_reloads_total',
    'SIGHUP reloads of the configuration by result',
    ['result'],
    (snap) => [
      [{ result: 'ok' }, snap.counts.reloads.ok],
      [{ result: 'failed' }, snap.counts.reloads.failed],
    ],
  );

  gauge(
    'pg_keeper_last_promotion_timestamp_seconds',
    'When this keeper last promoted its server (0: never)',
    done('promote'),
  );
  gauge(
    'pg_keeper_last_async_switch_timestamp_seconds',
    'When this keeper last switched to asynchronous replication (0: never)',
    done('switch-to-async'),
  );
  gauge(
    'pg_keeper_last_sync_restore_timestamp_seconds',
    'When this keeper last restored synchronous replication (0: never)',
    done('restore-sync'),
  );
  gauge('pg_keeper_last_tick_timestamp_seconds', 'When the keeper loop last completed a tick', (snap) =>
    seconds(snap.lastTickAt),
  );
  gauge('pg_keeper_timeline', 'Timeline of the local server', (snap) => {
    const l = local(snap);
    return l?.up ? l.timeline : null;
  });
  gauge('pg_keeper_replication_lag_bytes', 'On a primary: replay lag of its most lagging standby', (snap) =>
    most(snap, (v) => v.replayLagBytes),
  );
  gauge('pg_keeper_replication_lag_seconds', 'On a primary: replay_lag of its most lagging standby', (snap) =>
    most(snap, (v) => v.replayLagSeconds ?? 0),
  );
  gauge('pg_keeper_streaming_standbys', 'On a primary: standbys in state streaming', (snap) => {
    const l = local(snap);
    return l?.up && !l.inRecovery ? l.standbys.filter((v) => v.state === 'streaming').length : null;
  });
  gauge(
    'pg_keeper_wal_receiver_last_message_age_seconds',
    'On a standby: time since its WAL receiver last heard from the primary',
    (snap) => {
      const l = local(snap);
      const age = l?.up ? l.walReceiver?.lastMessageAgeMs : null;
      return age === null || age === undefined ? null : age / 1000;
    },
  );
  gauge(
    'pg_keeper_standby_synchronous',
    'On a standby: 1 when it was the synchronous standby at last contact with the primary',
    (snap) => (snap.state.role === 'standby' ? (snap.state.syncAtLastContact ? 1 : 0) : null),
  );

  // The lifecycle.
  family(
    'counter',
    'pg_keeper_rejoins_total',
    "Rejoins of the local server as the new primary's standby: ok (by pg_rewind, a base backup, or a restart), failed, refused",
    ['result', 'method'],
    (snap) => {
      const r = snap.counts.rejoins;
      return [
        [{ result: 'ok', method: 'rewind' }, r.rewind],
        [{ result: 'ok', method: 'basebackup' }, r.basebackup],
        [{ result: 'ok', method: 'restart' }, r.restart],
        [{ result: 'failed', method: 'none' }, snap.counts.actions.rejoin.failed],
        [{ result: 'refused', method: 'none' }, r.refused],
      ];
    },
  );
  gauge(
    'pg_keeper_last_rejoin_timestamp_seconds',
    'When the local server last rejoined as a standby (0: never)',
    done('rejoin'),
  );
  family(
    'counter',
    'pg_keeper_switchovers_total',
    'Planned switchovers this keeper handed over (ok, failed) or refused',
    ['result'],
    (snap) => [
      [{ result: 'ok' }, snap.counts.actions.switchover.ok],
      [{ result: 'failed' }, snap.counts.actions.switchover.failed],
      [{ result: 'refused' }, snap.counts.switchoversRefused],
    ],
  );
  gauge(
    'pg_keeper_last_switchover_timestamp_seconds',
    'When this keeper last handed the primary over (0: never)',
    done('switchover'),
  );
  gauge('pg_keeper_switchover_in_progress', '1 while a switchover runs on this keeper', (snap) =>
    snap.switchover?.result === 'running' ? 1 : 0,
  );
  gauge('pg_keeper_rejoin_in_progress', '1 while a rejoin runs', (snap) =>
    snap.task?.kind === 'rejoin' ? 1 : 0,
  );

  // The arbiter (etcd): no sample in two-node mode.
  const arbiter = (snap: Snapshot) => snap.arbiter;
  gauge('pg_keeper_arbiter_up', '1 when the last call to etcd succeeded within the lease TTL', (snap) => {
    const a = arbiter(snap);
    return a === null ? null : a.up ? 1 : 0;
  });
  gauge('pg_keeper_arbiter_lease_held', "1 when this keeper holds the primary's key in etcd", (snap) => {
    const a = arbiter(snap);
    return a === null ? null : a.leaseRemainingMs !== null ? 1 : 0;
  });
  gauge(
    'pg_keeper_arbiter_lease_remaining_seconds',
    "Time left on this keeper's lease by its own clock, from the send time of the last renewal that succeeded",
    (snap) => {
      const left = arbiter(snap)?.leaseRemainingMs;
      return left === null || left === undefined ? null : left / 1000;
    },
  );
  family(
    'gauge',
    'pg_keeper_arbiter_lease_holder',
    "Who holds the primary's key, as etcd said at the last tick: 1 for the holder (none: nobody)",
    ['holder'],
    (snap) => {
      const view = snap.observation?.arbiter;
      if (!arbiter(snap) || !view?.reachable) return [];
      return [[{ holder: holderName(snap) ?? 'none' }, 1]];
    },
  );
  gauge(
    'pg_keeper_arbiter_replication_synchronous',
    'What etcd records about replication: 1 sync, 0 async (no sample: no record yet)',
    (snap) => {
      const r = snap.observation?.arbiter?.replication;
      return !arbiter(snap) || r === null || r === undefined ? null : r === 'sync' ? 1 : 0;
    },
  );
  gauge('pg_keeper_arbiter_lease_ttl_seconds', 'Configured etcd_lease_ttl', () =>
    config().etcdEndpoints.length > 0 ? config().etcdLeaseTtlMs / 1000 : null,
  );
  family(
    'counter',
    'pg_keeper_arbiter_lease_renewals_total',
    'Lease renewals etcd acknowledged',
    [],
    (snap) => {
      const a = arbiter(snap);
      return a === null ? [] : [[{}, a.renewals]];
    },
  );
  family(
    'counter',
    'pg_keeper_arbiter_lease_renewal_failures_total',
    'Lease renewals that failed or timed out',
    [],
    (snap) => {
      const a = arbiter(snap);
      return a === null ? [] : [[{}, a.renewalFailures]];
    },
  );
  family(
    'counter',
    'pg_keeper_arbiter_leases_lost_total',
    'Leases this keeper lost without giving them up (not renewed in time, or expired in etcd)',
    [],
    (snap) => {
      const a = arbiter(snap);
      return a === null ? [] : [[{}, a.leasesLost]];
    },
  );

  const heartbeatDuration = new Histogram({
    name: 'pg_keeper_heartbeat_duration_seconds',
    help: 'Round trip of successful heartbeats',
    labelNames: ['peer'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: r,
  });
  const hookDuration = new Histogram({
    name: 'pg_keeper_after_command_duration_seconds',
    help: 'How long after_command / after_async_command ran',
    labelNames: ['hook'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: r,
  });
  const tickDelay = new Histogram({
    name: 'pg_keeper_tick_delay_seconds',
    help: 'How late each scheduled tick started after its slot (a starved event loop shows here)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: r,
  });
  heartbeatDuration.zero({ peer });
  for (const hook of HOOK_NAMES) hookDuration.zero({ hook });
  return { registry, heartbeatDuration, hookDuration, tickDelay };
}

/** The largest of a value over the local primary's standbys; null on a standby or with none. */
function most(
  snap: Snapshot,
  pick: (v: { replayLagBytes: number | null; replayLagSeconds: number | null }) => number | null,
): number | null {
  const l = snap.observation?.local;
  if (!l?.up || l.inRecovery) return null;
  const values = l.standbys.map(pick).filter((x): x is number => x !== null);
  return values.length > 0 ? Math.max(...values) : null;
}
