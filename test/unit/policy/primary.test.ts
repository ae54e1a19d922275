// The primary's side of the table, row by row: what it says at each tick, at the edges of
// each setting it compares with, and the sentence an operator reads in /status.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide } from '../../../src/policy/decide.js';
import { initialState, type KeeperState } from '../../../src/policy/types.js';
import { peerDown, peerStandby, primaryLocal, rule, run, said, seen, standbyView } from './fixtures.js';

/** A primary whose keeper switched it to async, remembering '*' to put back. */
const switched: KeeperState = {
  ...initialState(),
  role: 'primary',
  peerRole: 'standby',
  savedSyncNames: '*',
};
/** Such a primary, now asynchronous, seeing its standby answer again with this view of it. */
const standbyBack = (extra: Parameters<typeof standbyView>[0]) =>
  seen(primaryLocal({ syncStandbyNames: '', standbys: [standbyView(extra)] }), peerStandby);
/** The standby stopped answering heartbeats; the primary still lists it with this view. */
const standbyGone = (extra: Parameters<typeof standbyView>[0]) =>
  seen(primaryLocal({ standbys: [standbyView(extra)] }), peerDown);

test('a healthy synchronous primary names its synchronous standby', () => {
  const d = decide(initialState(), seen(primaryLocal(), peerStandby), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'primary-with-standby',
    severity: 'info',
    actions: [],
    reason: 'primary; standby answers heartbeats (synchronous standby node2)',
  });
});

test('a primary names only the standbys whose sync_state is sync or quorum', () => {
  const standbys = [
    standbyView({ name: 'node2', syncState: 'quorum' }),
    standbyView({ name: 'node3', syncState: 'async' }),
    standbyView({ name: 'node4', syncState: 'sync' }),
  ];
  const d = decide(initialState(), seen(primaryLocal({ standbys }), peerStandby), 0, rule());
  assert.equal(d.reason, 'primary; standby answers heartbeats (synchronous standby node2, node4)');
});

test('a synchronous primary without a synchronous standby streaming says so', () => {
  const local = primaryLocal({ syncStandbyNames: 'node9', standbys: [standbyView({ syncState: 'async' })] });
  const d = decide(initialState(), seen(local, peerStandby), 0, rule());
  assert.equal(d.reason, 'primary; standby answers heartbeats (no synchronous standby streams)');
  assert.equal(d.severity, 'info');
});

test('an operator-chosen asynchronous primary is healthy and says replication is asynchronous', () => {
  const local = primaryLocal({ syncStandbyNames: '', standbys: [standbyView({ syncState: 'async' })] });
  const d = decide(initialState(), seen(local, peerStandby), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'primary-with-standby',
    severity: 'info',
    actions: [],
    reason: 'primary; standby answers heartbeats (replication asynchronous)',
  });
});

test('a blank synchronous_standby_names is read as empty: asynchronous', () => {
  const blank = primaryLocal({ syncStandbyNames: ' ', standbys: [standbyView({ syncState: 'async' })] });
  const healthy = decide(initialState(), seen(blank, peerStandby), 0, rule());
  assert.equal(healthy.reason, 'primary; standby answers heartbeats (replication asynchronous)');
  const lost = decide({ ...switched, failures: 2 }, seen(blank, peerDown), 0, rule());
  assert.deepEqual(said(lost), {
    situation: 'primary-lost-standby',
    severity: 'warn',
    actions: [],
    reason:
      'primary; standby missed 3 heartbeats in a row (keepalive_count 3); replication is already asynchronous; ' +
      'synchronous replication comes back once the standby answers again and has caught up',
  });
  assert.equal(lost.state.savedSyncNames, '*', 'still asynchronous: the value to restore is kept');
});

test('primary says how many heartbeats its standby missed while it waits for keepalive_count', () => {
  const ds = run(initialState(), seen(primaryLocal({ standbys: [] }), peerDown), 2);
  assert.deepEqual(said(ds[1]), {
    situation: 'primary-missing-standby',
    severity: 'warn',
    actions: [],
    reason: 'primary; standby missed 2 of 3 heartbeats in a row',
  });
});

test('primary switching to async says the standby missed the whole window', () => {
  const ds = run(initialState(), seen(primaryLocal({ standbys: [] }), peerDown), 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'primary-lost-standby',
    severity: 'warn',
    actions: [
      { kind: 'switch-to-async', restore: '*' },
      { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
    ],
    reason:
      'standby missed 3 heartbeats in a row (keepalive_count 3): switching to asynchronous replication so that ' +
      'commits stop waiting',
  });
});

test('an operator-chosen asynchronous primary that loses its standby has nothing to come back to', () => {
  const ds = run(initialState(), seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peerDown), 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'primary-lost-standby',
    severity: 'warn',
    actions: [],
    reason:
      'primary; standby missed 3 heartbeats in a row (keepalive_count 3); replication is already asynchronous',
  });
});

test('primary keeping sync for a standby that still replies says when it last replied', () => {
  const ds = run(initialState(), standbyGone({ replyAgeMs: 100 }), 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'primary-lost-standby',
    severity: 'warn',
    actions: [],
    reason:
      'primary; standby missed 3 heartbeats in a row (keepalive_count 3), but standby node2 replied on the ' +
      'replication stream 100 ms ago; keeping synchronous replication',
  });
});

test('a standby that never replied on the replication stream does not keep the primary synchronous', () => {
  const ds = run(initialState(), standbyGone({ replyAgeMs: null }), 3);
  assert.equal(ds[2]?.actions[0]?.kind, 'switch-to-async');
});

test('a reply exactly stream_timeout old no longer keeps the primary synchronous', () => {
  const ds = run(initialState(), standbyGone({ replyAgeMs: 600 }), 3, rule(200, 3));
  assert.equal(ds[2]?.actions[0]?.kind, 'switch-to-async');
});

test('paused: a primary that would switch to async reports the paused veto', () => {
  const ds = run(
    initialState(),
    seen(primaryLocal({ standbys: [] }), peerDown),
    3,
    rule(200, 3, { paused: true }),
  );
  assert.deepEqual(said(ds[2]), {
    situation: 'primary-lost-standby',
    severity: 'warn',
    actions: [],
    reason:
      'paused: would switch to asynchronous replication (standby missed 3 heartbeats in a row (keepalive_count 3))',
    veto: 'paused',
  });
});

test('primary restoring sync says how far behind the standby is', () => {
  const d = decide(switched, standbyBack({ replayLagBytes: 100 }), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'primary-restoring-sync',
    severity: 'info',
    actions: [{ kind: 'restore-sync', value: '*' }],
    reason: 'standby node2 streams and is 100 bytes behind: restoring synchronous replication',
  });
});

test('a standby exactly sync_restore_max_lag behind has caught up', () => {
  const d = decide(switched, standbyBack({ replayLagBytes: 1024 * 1024 }), 0, rule());
  assert.deepEqual(d.actions, [{ kind: 'restore-sync', value: '*' }]);
});

test('primary does not restore sync to a standby whose replay lag is unknown', () => {
  const d = decide(switched, standbyBack({ replayLagBytes: null }), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'primary-with-standby',
    severity: 'warn',
    actions: [],
    reason:
      'primary; standby answers heartbeats (replication asynchronous); synchronous replication stays off: ' +
      'standby node2 streams but is an unknown number of bytes behind (sync_restore_max_lag 1048576)',
  });
});

test('primary does not restore sync to a standby that is still catching up', () => {
  const d = decide(switched, standbyBack({ state: 'catchup' }), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'primary-with-standby',
    severity: 'warn',
    actions: [],
    reason:
      'primary; standby answers heartbeats (replication asynchronous); synchronous replication stays off: ' +
      'no standby streams',
  });
});

test('primary does not restore sync to a streaming standby that has never replied, and says so', () => {
  const d = decide(switched, standbyBack({ replyAgeMs: null }), 0, rule());
  assert.deepEqual(d.actions, []);
  assert.equal(
    d.reason,
    'primary; standby answers heartbeats (replication asynchronous); synchronous replication stays off: ' +
      'standby node2 has not replied for ? ms (stream_timeout 600)',
  );
});

test('paused: a primary that would restore sync names the standby that caught up', () => {
  const d = decide(switched, standbyBack({}), 0, rule(200, 3, { paused: true }));
  assert.deepEqual(said(d), {
    situation: 'primary-restoring-sync',
    severity: 'warn',
    actions: [],
    reason: 'paused: would restore synchronous replication (standby node2 caught up)',
  });
});

test('a primary whose synchronous replication was turned back on by hand forgets what it would restore', () => {
  const d = decide(switched, seen(primaryLocal(), peerStandby), 0, rule());
  assert.equal(d.state.savedSyncNames, null);
  assert.equal(d.reason, 'primary; standby answers heartbeats (synchronous standby node2)');
});
