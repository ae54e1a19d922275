// The policy's vocabulary: what a keeper knows when it starts, what recording an outcome
// changes, and the small readings of state and observation that /status and metrics show.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle } from '../../../src/policy/decide.js';
import {
  ROLES,
  assertNever,
  initialState,
  lastAction,
  syncModeOf,
  type KeeperState,
  type Role,
} from '../../../src/policy/types.js';
import {
  peerDown,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  seen,
  standbyLocal,
  succeeded,
} from './fixtures.js';

test('a keeper starts knowing nothing: no role, no contact with the primary, nothing to restore', () => {
  assert.deepEqual(initialState(), {
    role: 'unknown',
    peerRole: 'unknown',
    failures: 0,
    failingSince: null,
    standbyName: null,
    primarySeenAt: null,
    syncAtLastContact: false,
    contactThisRun: false,
    savedSyncNames: null,
    syncBarrierLsn: null,
    mayHaveAckedAlone: null,
    rejoinFailures: 0,
    rejoinFailedAt: null,
    answeredSwitchover: null,
    lastFailoverAt: null,
    vetoed: [],
    done: {},
  });
});

test('every role a decision can give is one of ROLES, the labels metrics export', () => {
  const roles = new Set<Role>();
  for (const local of [primaryLocal(), standbyLocal(), { up: false as const, error: 'x' }]) {
    for (const peer of [peerDown, peerStandby, peerPrimary()]) {
      const { state } = decide(initialState(), seen(local, peer), 0, rule());
      roles.add(state.role).add(state.peerRole);
    }
  }
  assert.deepEqual([...roles].sort(), [...ROLES].sort());
});

test('a switch to async that succeeded records only when it happened and what to restore', () => {
  const before: KeeperState = { ...initialState(), failures: 4, failingSince: 100 };
  const after = settle(before, succeeded({ kind: 'switch-to-async', restore: 'node2' }, 42));
  assert.deepEqual(after, { ...before, savedSyncNames: 'node2', done: { 'switch-to-async': 42 } });
});

test('the last action is the most recent success, whatever its kind', () => {
  assert.deepEqual(lastAction({ ...initialState(), done: { 'switch-to-async': 300, promote: 100 } }), {
    kind: 'switch-to-async',
    at: 300,
  });
  assert.deepEqual(lastAction({ ...initialState(), done: { 'switch-to-async': 100, promote: 300 } }), {
    kind: 'promote',
    at: 300,
  });
  assert.deepEqual(
    lastAction({ ...initialState(), done: { promote: 300, 'restore-sync': 200 } }),
    { kind: 'promote', at: 300 },
    'an earlier success of a later kind does not replace it',
  );
});

test('of two successes at the same instant, the last action is the one listed first in LOCAL_ACTION_KINDS', () => {
  assert.deepEqual(lastAction({ ...initialState(), done: { 'switch-to-async': 100, promote: 100 } }), {
    kind: 'switch-to-async',
    at: 100,
  });
});

test('sync mode: sync or async on a primary, by synchronous_standby_names; unknown on a standby or a dead server', () => {
  assert.equal(syncModeOf(primaryLocal({ syncStandbyNames: '*' })), 'sync');
  assert.equal(syncModeOf(primaryLocal({ syncStandbyNames: '' })), 'async');
  assert.equal(syncModeOf(primaryLocal({ syncStandbyNames: ' ' })), 'async');
  assert.equal(syncModeOf(standbyLocal({ syncStandbyNames: '*' })), 'unknown');
  assert.equal(syncModeOf({ up: false, error: 'connect ECONNREFUSED' }), 'unknown');
});

test('a value that cannot happen is an error that shows it', () => {
  assert.throws(() => assertNever('teleport' as never), { message: 'unexpected value: "teleport"' });
});
