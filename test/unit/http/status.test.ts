// /status as a function of the keeper's snapshot: what `pg-keeper status` and people
// read, before the first tick and in the middle of a failure. The HTTP answer itself is
// proven against running keepers in test/e2e/http.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeConfig } from '../../../src/config/load.js';
import { buildStatus } from '../../../src/http/status.js';
import { initialState } from '../../../src/policy/types.js';
import type { Keeper } from '../../../src/runtime/keeper.js';
import { initialSnapshot, type Snapshot } from '../../../src/runtime/snapshot.js';
import { VERSION } from '../../../src/version.js';
import { configWith } from '../config/fixtures.js';
import { peerDown, peerPrimary, standbyLocal } from '../policy/fixtures.js';

const cfg = configWith('keepalive_time: 0.2\nkeepalive_count: 3\n');

/** A keeper showing this snapshot: buildStatus reads its snapshot, configuration and liveness. */
const keeperShowing = (snap: Snapshot, alive = true): Keeper =>
  ({ snapshot: () => snap, config: cfg, alive: () => alive }) as unknown as Keeper;

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const iso = (ms: number) => new Date(ms).toISOString();

test('before its first tick, /status says starting and knows nothing of either server', () => {
  const status = buildStatus(keeperShowing(initialSnapshot('node2', initialState(), T0, false), false));
  assert.deepEqual(status, {
    version: VERSION,
    cluster: 'default',
    node: 'node2',
    peer: 'node1',
    role: 'unknown',
    peer_role: 'unknown',
    state: 'starting',
    sync_mode: 'unknown',
    paused: false,
    alive: false,
    ticks: 0,
    local: { up: false, error: null, timeline: null, wal_receiver: null, standbys: [] },
    peer_reachable: false,
    peer_error: null,
    peer_is_primary: false,
    consecutive_failures: 0,
    keepalive_count: 3,
    keepalive_time: 0.2,
    seconds_until_action: null,
    reason: null,
    severity: null,
    decided_at: null,
    last_tick_at: null,
    guards: {
      primary_seen_at: null,
      synchronous_at_last_contact: false,
      failover_requires_sync: true,
      stream_timeout: 1.2,
      saved_synchronous_standby_names: null,
      may_have_acknowledged_alone: null,
    },
    last_action: null,
    task: null,
    last_rejoin_at: null,
    switchover: null,
    grants_missing: null,
    arbiter: null,
    events: [],
    config: describeConfig(cfg),
  });
});

/** A standby one heartbeat into losing its primary, after a promotion it remembers from before. */
function losingPrimary(failures: number): Snapshot {
  const state = {
    ...initialState(),
    role: 'standby' as const,
    peerRole: 'primary' as const,
    failures,
    primarySeenAt: T0 - 200,
    syncAtLastContact: true,
    savedSyncNames: 'node1',
    done: { promote: T0 - 60_000 },
  };
  return {
    ...initialSnapshot('node2', state, T0 - 120_000, true),
    ticks: 600,
    lastTickAt: T0,
    observation: { local: standbyLocal(), peer: peerDown },
    decision: {
      reason: 'standby; primary missed 1 of 3 heartbeats in a row',
      severity: 'warn',
      situation: 'standby-missing-primary',
      at: T0 - 1,
    },
    events: [{ at: T0 - 60_000, event: 'promote', outcome: 'ok', detail: 'promoted' }],
  };
}

test('a standby losing its primary shows the failures, the time left before it acts, and its guards', () => {
  const status = buildStatus(keeperShowing(losingPrimary(1)));
  const { version: _v, config: _c, ...shown } = status;
  assert.deepEqual(shown, {
    cluster: 'default',
    node: 'node2',
    peer: 'node1',
    role: 'standby',
    peer_role: 'unknown', // the peer does not answer: its role is not known, whatever state remembers
    state: 'standby-missing-primary',
    sync_mode: 'unknown',
    paused: true,
    alive: true,
    ticks: 600,
    local: {
      up: true,
      error: null,
      timeline: 1,
      wal_receiver: { status: 'streaming', lastMessageAgeMs: 100 },
      standbys: [],
    },
    peer_reachable: false,
    peer_error: 'connect ECONNREFUSED 127.0.0.1:5551',
    peer_is_primary: false,
    consecutive_failures: 1,
    keepalive_count: 3,
    keepalive_time: 0.2,
    seconds_until_action: 0.4,
    reason: 'standby; primary missed 1 of 3 heartbeats in a row',
    severity: 'warn',
    decided_at: iso(T0 - 1),
    last_tick_at: iso(T0),
    guards: {
      primary_seen_at: iso(T0 - 200),
      synchronous_at_last_contact: true,
      failover_requires_sync: true,
      stream_timeout: 1.2,
      saved_synchronous_standby_names: 'node1',
      may_have_acknowledged_alone: null,
    },
    last_action: { kind: 'promote', at: iso(T0 - 60_000) },
    task: null,
    last_rejoin_at: null,
    switchover: null,
    grants_missing: null,
    arbiter: null,
    events: [{ at: iso(T0 - 60_000), event: 'promote', outcome: 'ok', detail: 'promoted' }],
  });
});

test('no time before action is shown without failures, nor once the window has passed', () => {
  assert.equal(buildStatus(keeperShowing(losingPrimary(0))).seconds_until_action, null);
  assert.equal(buildStatus(keeperShowing(losingPrimary(2))).seconds_until_action, 0.2);
  assert.equal(buildStatus(keeperShowing(losingPrimary(3))).seconds_until_action, null);
});

test('a local server that is down shows its error; a primary peer that answers shows none', () => {
  const snap = {
    ...losingPrimary(0),
    observation: { local: { up: false as const, error: 'ECONNREFUSED' }, peer: peerPrimary() },
  };
  const status = buildStatus(keeperShowing(snap));
  assert.deepEqual(status.local, {
    up: false,
    error: 'ECONNREFUSED',
    timeline: null,
    wal_receiver: null,
    standbys: [],
  });
  assert.equal(status.peer_reachable, true);
  assert.equal(status.peer_error, null);
});
