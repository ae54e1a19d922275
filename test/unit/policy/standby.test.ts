// The standby's side of the table, row by row: each guard at the edge of the setting it
// compares with, and the sentence an operator reads in /status when it holds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide } from '../../../src/policy/decide.js';
import { initialState, type KeeperState, type WalReceiverView } from '../../../src/policy/types.js';
import {
  peerDown,
  peerPrimary,
  peerStandby,
  rule,
  run,
  said,
  seen,
  silentReceiver,
  standbyLocal,
  syncStandbyState,
} from './fixtures.js';

/** The primary stopped answering heartbeats; the standby's WAL receiver looks like this. */
const primaryGone = (walReceiver: WalReceiverView | null) => seen(standbyLocal({ walReceiver }), peerDown);
const lostPrimary = primaryGone(silentReceiver);

test('a healthy standby says whether it is the synchronous one', () => {
  const d = decide(initialState(), seen(standbyLocal(), peerPrimary(['node2'])), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'standby-with-primary',
    severity: 'info',
    actions: [],
    reason: 'standby; primary answers heartbeats; this standby is synchronous',
  });
});

test('standby says how many heartbeats the primary missed while it waits for keepalive_count', () => {
  const ds = run(syncStandbyState(), lostPrimary, 2);
  assert.deepEqual(said(ds[1]), {
    situation: 'standby-missing-primary',
    severity: 'warn',
    actions: [],
    reason: 'standby; primary missed 2 of 3 heartbeats in a row',
  });
});

test('a standby beside another standby says there is no primary', () => {
  const d = decide(syncStandbyState(), seen(standbyLocal(), peerStandby), 0, rule());
  assert.deepEqual(said(d), {
    situation: 'standby-with-standby',
    severity: 'warn',
    actions: [],
    reason: 'standby; the peer is a standby too, so there is no primary; taking no action',
  });
});

test('standby promoting says the primary missed the whole window', () => {
  const ds = run(syncStandbyState(), lostPrimary, 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'standby-lost-primary',
    severity: 'warn',
    actions: [
      { kind: 'promote', restore: '*' },
      { kind: 'run-hook', hook: 'after_command', event: 'promote' },
    ],
    reason: 'primary missed 3 heartbeats in a row (keepalive_count 3): promoting this standby',
  });
});

test('a standby that was asynchronous at last contact says promoting could lose commits', () => {
  const ds = run({ ...syncStandbyState(), syncAtLastContact: false }, lostPrimary, 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'standby-lost-primary',
    severity: 'warn',
    actions: [],
    reason:
      'primary missed 3 heartbeats in a row (keepalive_count 3), but this standby was not synchronous at last ' +
      'contact: promoting could lose acknowledged commits; not promoting (failover_requires_sync: false allows it)',
    veto: 'not-synchronous',
  });
});

test('a contact remembered from before this keeper started does not let the standby promote', () => {
  // The state file says synchronous at last contact, but nobody watched the primary since.
  const remembered: KeeperState = { ...syncStandbyState(), contactThisRun: false };
  const ds = run(remembered, lostPrimary, 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'standby-lost-primary',
    severity: 'warn',
    actions: [],
    reason:
      'primary missed 3 heartbeats in a row (keepalive_count 3), but the last contact with the primary was made ' +
      'before this keeper started: this keeper was not watching, and the primary may have gone asynchronous ' +
      'meanwhile; not promoting (failover_requires_sync: false allows it)',
    veto: 'not-synchronous',
  });
  const anyway = run(remembered, lostPrimary, 3, rule(200, 3, { failoverRequiresSync: false }));
  assert.equal(anyway[2]?.actions[0]?.kind, 'promote', 'failover_requires_sync: false accepts the risk');
});

test('a contact older than the allowed gap says how old it was when the primary became unreachable', () => {
  const stale: KeeperState = { ...syncStandbyState(), primarySeenAt: 1000 };
  const d = decide(stale, primaryGone(null), 6000, rule(200, 1));
  assert.deepEqual(said(d), {
    situation: 'standby-lost-primary',
    severity: 'warn',
    actions: [],
    reason:
      'primary missed 1 heartbeats in a row (keepalive_count 1), but the last contact with the primary was ' +
      '5000 ms before it became unreachable: this keeper was not watching, and the primary may have gone ' +
      'asynchronous meanwhile; not promoting (failover_requires_sync: false allows it)',
    veto: 'not-synchronous',
  });
});

test('a contact exactly two ticks and a heartbeat timeout before the first failure is still fresh', () => {
  // rule(200, 1): max_contact_gap 2 × 200 ms + 160 ms = 560 ms.
  const d = decide({ ...syncStandbyState(), primarySeenAt: 5440 }, primaryGone(null), 6000, rule(200, 1));
  assert.equal(d.actions[0]?.kind, 'promote');
});

test('a standby whose WAL receiver still hears from the primary says the heartbeat path is broken', () => {
  const ds = run(syncStandbyState(), primaryGone({ status: 'streaming', lastMessageAgeMs: 150 }), 3);
  assert.deepEqual(said(ds[2]), {
    situation: 'standby-lost-primary',
    severity: 'warn',
    actions: [],
    reason:
      'primary missed 3 heartbeats in a row (keepalive_count 3), but the WAL receiver heard from the primary ' +
      '150 ms ago: the primary is alive and only the heartbeat path is broken; not promoting',
    veto: 'stream-alive',
  });
});

test('a WAL receiver that is not streaming does not veto promotion, however recent its last message', () => {
  const ds = run(syncStandbyState(), primaryGone({ status: 'waiting', lastMessageAgeMs: 10 }), 3);
  assert.equal(ds[2]?.actions[0]?.kind, 'promote');
});

test('a streaming WAL receiver that never heard from the primary does not veto promotion', () => {
  const ds = run(syncStandbyState(), primaryGone({ status: 'streaming', lastMessageAgeMs: null }), 3);
  assert.equal(ds[2]?.actions[0]?.kind, 'promote');
});

test('a last message exactly stream_timeout old no longer vetoes promotion', () => {
  const ds = run(syncStandbyState(), primaryGone({ status: 'streaming', lastMessageAgeMs: 600 }), 3);
  assert.equal(ds[2]?.actions[0]?.kind, 'promote');
});

test('a standby that cannot tell its configured value and runs asynchronously has nothing to restore', () => {
  const local = standbyLocal({ syncStandbyNames: '', configuredSyncStandbyNames: null, walReceiver: null });
  const ds = run(syncStandbyState(), seen(local, peerDown), 3);
  assert.deepEqual(ds[2]?.actions[0], { kind: 'promote', restore: null });
});

test('a blank synchronous_standby_names is nothing to restore: the configured value is', () => {
  const local = standbyLocal({
    syncStandbyNames: ' ',
    configuredSyncStandbyNames: 'node1',
    walReceiver: null,
  });
  const ds = run(syncStandbyState(), seen(local, peerDown), 3);
  assert.deepEqual(ds[2]?.actions[0], { kind: 'promote', restore: 'node1' });
});

test('a standby with a slow wal_retrieve_retry_interval that may not tune it says how to fix it', () => {
  const slow = seen(standbyLocal({ walRetrieveRetryIntervalMs: 5000 }), peerPrimary());
  const d = decide(initialState(), slow, 0, rule());
  assert.deepEqual(said(d), {
    situation: 'standby-untuned',
    severity: 'warn',
    actions: [],
    reason:
      'standby; primary answers heartbeats; this standby is synchronous; wal_retrieve_retry_interval is 5000 ms: ' +
      'a configuration reload just before a promotion can delay it by that long ' +
      '(set it to 1s, or tune_wal_retrieve_retry_interval: true)',
  });
});

test('a standby tuning its wal_retrieve_retry_interval says from what to what', () => {
  const slow = seen(standbyLocal({ walRetrieveRetryIntervalMs: 5000 }), peerPrimary());
  const d = decide(initialState(), slow, 0, rule(200, 3, { tuneWalRetrieveRetryInterval: true }));
  assert.deepEqual(said(d), {
    situation: 'standby-untuned',
    severity: 'info',
    actions: [{ kind: 'tune-wal-retrieve-retry-interval', ms: 1000 }],
    reason:
      'standby; primary answers heartbeats; this standby is synchronous; shortening wal_retrieve_retry_interval ' +
      'from 5000 ms to 1000 ms',
  });
});

test('a standby keeps the value its promotion is to restore while its server still reports recovery', () => {
  const promoting: KeeperState = { ...syncStandbyState(), savedSyncNames: 'node1' };
  const d = decide(promoting, seen(standbyLocal({ syncStandbyNames: '*' }), peerDown), 0, rule());
  assert.equal(d.state.savedSyncNames, 'node1');
});
