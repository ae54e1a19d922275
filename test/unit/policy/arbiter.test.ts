// The policy with the etcd arbiter: what the lease allows, what it forbids, and what the
// replication record in etcd must say. Plain values and a fake clock: the lease's time
// left shrinks tick by tick as a keeper that cannot renew it would see it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle } from '../../../src/policy/decide.js';
import {
  initialState,
  type ArbiterView,
  type KeeperState,
  type LocalAction,
  type Observation,
} from '../../../src/policy/types.js';
import {
  leaseHeld,
  peerDown,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  seen,
  silentReceiver,
  standbyLocal,
  standbyView,
  succeeded,
  syncStandbyState,
  withArbiter,
} from './fixtures.js';

const free = (extra: Partial<ArbiterView> = {}): ArbiterView =>
  leaseHeld({ holder: null, leaseRemainingMs: null, ...extra });
const heldByPeer = (extra: Partial<ArbiterView> = {}): ArbiterView =>
  leaseHeld({ holder: 'peer', leaseRemainingMs: null, ...extra });
const unreachable = (leaseRemainingMs: number | null): ArbiterView => ({
  reachable: false,
  error: 'etcd did not answer: 127.0.0.1:2379: connect ECONNREFUSED',
  holder: null,
  leaseRemainingMs,
  replication: null,
  replicationRevision: 0,
});

const at = (o: Observation, arbiter: ArbiterView): Observation => ({ ...o, arbiter });

/** Runs ticks, each with its own arbiter view; every local action succeeds. */
function run(state: KeeperState, obs: Observation, views: ArbiterView[], r = withArbiter()) {
  const out = [];
  let s = state;
  for (const [i, view] of views.entries()) {
    const now = i * r.keepaliveTimeMs;
    const d = decide(s, at(obs, view), now, r);
    out.push(d);
    s = d.actions
      .filter((a): a is LocalAction => a.kind !== 'run-hook')
      .reduce((st, a) => settle(st, { ...succeeded(a, now), lsn: '0/5000000' }), d.state);
  }
  return { decisions: out, state: s };
}

const lostStandby = seen(primaryLocal({ standbys: [] }), peerDown);
const lostPrimary = seen(standbyLocal({ walReceiver: silentReceiver }), peerDown);
/** The primary after its keeper switched to async (it remembers what to restore). */
const asyncPrimaryState: KeeperState = {
  ...initialState(),
  role: 'primary',
  savedSyncNames: '*',
  failures: 3,
};
const asyncPrimary = (peer = peerDown) => seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peer);

test('a primary without the lease takes it when nobody holds it', () => {
  const d = decide(initialState(), at(seen(primaryLocal(), peerStandby), free()), 0, withArbiter());
  assert.equal(d.situation, 'primary-claiming-lease');
  assert.deepEqual(d.actions, [{ kind: 'claim-lease', replicationRevision: null, recordAsync: false }]);
});

test('a primary whose key the peer holds is a primary to nobody, and does nothing', () => {
  const d = decide(initialState(), at(seen(primaryLocal(), peerDown), heldByPeer()), 0, withArbiter());
  assert.equal(d.situation, 'primary-without-lease');
  assert.deepEqual(d.actions, []);
  assert.equal(d.severity, 'error');
  assert.match(d.reason, /the peer holds the lease: this server is not the primary to anyone/);
});

test('a primary holding the lease records "async" in etcd before it switches, after the window', () => {
  const { decisions } = run(initialState(), lostStandby, [leaseHeld(), leaseHeld(), leaseHeld()]);
  assert.deepEqual(decisions[1]?.actions, []);
  assert.deepEqual(decisions[2]?.actions, [
    { kind: 'record-replication', mode: 'async' },
    { kind: 'switch-to-async', restore: '*' },
    { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
  ]);
});

test('a primary whose lease has less than the margin left keeps synchronous replication', () => {
  const { decisions } = run(initialState(), lostStandby, [
    leaseHeld(),
    leaseHeld(),
    leaseHeld({ leaseRemainingMs: 500 }),
  ]);
  const d = decisions[2];
  assert.deepEqual(d?.actions, []);
  assert.equal(d?.veto, 'no-lease');
  assert.match(
    d?.reason ?? '',
    /does not hold the lease with more than 540 ms left; keeping synchronous replication/,
  );
});

test('a primary that cannot reach etcd never switches to async, and says so once per run', () => {
  const { decisions } = run(initialState(), lostStandby, [2500, 2200, 1900, 1600, 1300].map(unreachable));
  assert.ok(decisions.every((d) => d.actions.length === 0));
  assert.deepEqual(
    decisions.map((d) => d.veto),
    [undefined, undefined, 'arbiter-unreachable', undefined, undefined],
  );
  assert.match(decisions[2]?.reason ?? '', /etcd does not answer \(etcd did not answer: .*ECONNREFUSED\)/);
});

test('an asynchronous primary goes back to sync before its lease could expire: the fence', () => {
  // A fake clock of ticks: the lease is not renewed (etcd cut), its time left shrinks.
  const views = [2400, 2100, 1800, 1500, 1200, 900, 600, 500, 200, null].map(unreachable);
  const { decisions } = run(asyncPrimaryState, asyncPrimary(), views);
  const fenced = decisions.findIndex((d) => d.situation === 'primary-fencing');
  assert.equal(fenced, 7, 'at the first tick with less than the margin left, not before');
  assert.ok(decisions.slice(0, 7).every((d) => d.actions.length === 0));
  assert.deepEqual(decisions[7]?.actions, [{ kind: 'restore-sync', value: '*' }]);
  assert.match(
    decisions[7]?.reason ?? '',
    /its lease has 500 ms left \(margin 540 ms\): going back to synchronous/,
  );
});

test('an asynchronous primary that does not hold the lease at all is fenced, whoever holds it', () => {
  for (const view of [unreachable(null), heldByPeer(), free()]) {
    const d = decide(asyncPrimaryState, at(asyncPrimary(), view), 0, withArbiter());
    assert.equal(d.situation, 'primary-fencing', JSON.stringify(view));
    assert.deepEqual(d.actions, [{ kind: 'restore-sync', value: '*' }]);
  }
});

test("an operator-chosen asynchronous primary is not the keeper's to fence", () => {
  const operatorAsync = { ...initialState(), role: 'primary' as const };
  const d = decide(operatorAsync, at(asyncPrimary(peerStandby), unreachable(null)), 0, withArbiter());
  assert.notEqual(d.situation, 'primary-fencing');
  assert.deepEqual(d.actions, []);
});

test('"sync" is recorded only once a synchronous standby has flushed past the point where sync came back', () => {
  const restored = settle(asyncPrimaryState, {
    ...succeeded({ kind: 'restore-sync', value: '*' }, 0),
    lsn: '0/5000000',
  });
  assert.equal(restored.syncBarrierLsn, '0/5000000');
  const behind = seen(primaryLocal({ standbys: [standbyView({ flushLsn: '0/4FFFFFF' })] }), peerStandby);
  const d1 = decide(restored, at(behind, leaseHeld({ replication: 'async' })), 0, withArbiter());
  assert.equal(d1.situation, 'primary-with-standby');
  assert.deepEqual(d1.actions, []);
  const past = seen(primaryLocal({ standbys: [standbyView({ flushLsn: '0/5000000' })] }), peerStandby);
  const d2 = decide(restored, at(past, leaseHeld({ replication: 'async' })), 300, withArbiter());
  assert.equal(d2.situation, 'primary-recording-sync');
  assert.deepEqual(d2.actions, [{ kind: 'record-replication', mode: 'sync' }]);
  const after = settle(d2.state, succeeded({ kind: 'record-replication', mode: 'sync' }, 300));
  assert.equal(after.syncBarrierLsn, null);
});

test('a primary records "sync" at start when etcd has no record, once a standby is synchronous', () => {
  const d = decide(
    initialState(),
    at(seen(primaryLocal(), peerStandby), leaseHeld({ replication: null })),
    0,
    withArbiter(),
  );
  assert.equal(d.situation, 'primary-recording-sync');
  assert.deepEqual(d.actions, [{ kind: 'record-replication', mode: 'sync' }]);
  const none = seen(primaryLocal({ standbys: [standbyView({ syncState: 'async' })] }), peerStandby);
  assert.deepEqual(
    decide(initialState(), at(none, leaseHeld({ replication: null })), 0, withArbiter()).actions,
    [],
  );
});

test('a standby promotes only after taking the lease, checking that etcd still says "sync"', () => {
  const { decisions } = run(syncStandbyState(), lostPrimary, [free(), free(), free()]);
  assert.deepEqual(decisions[2]?.actions, [
    { kind: 'claim-lease', replicationRevision: 7, recordAsync: true },
    { kind: 'promote', restore: '*' },
    { kind: 'run-hook', hook: 'after_command', event: 'promote' },
  ]);
});

test('a standby does not promote while the primary still holds the lease: a partition between the nodes', () => {
  const { decisions } = run(syncStandbyState(), lostPrimary, [
    heldByPeer(),
    heldByPeer(),
    heldByPeer(),
    heldByPeer(),
  ]);
  assert.ok(decisions.every((d) => d.actions.length === 0));
  assert.deepEqual(
    decisions.map((d) => d.veto),
    [undefined, undefined, 'no-lease', undefined],
  );
  assert.match(decisions[3]?.reason ?? '', /still holds the lease: the primary may be alive/);
});

test("once the primary's lease is gone, the standby takes it at the next tick", () => {
  const { decisions } = run(syncStandbyState(), lostPrimary, [
    heldByPeer(),
    heldByPeer(),
    heldByPeer(),
    heldByPeer(),
    free(),
  ]);
  assert.equal(decisions[4]?.actions[0]?.kind, 'claim-lease');
  assert.equal(decisions[4]?.actions[1]?.kind, 'promote');
});

test('a standby that cannot reach etcd never promotes', () => {
  const { decisions } = run(syncStandbyState(), lostPrimary, [null, null, null, null, null].map(unreachable));
  assert.ok(decisions.every((d) => d.actions.length === 0));
  assert.equal(decisions[2]?.veto, 'arbiter-unreachable');
  assert.match(decisions[2]?.reason ?? '', /cannot take the lease never promotes/);
});

test('a standby does not promote when etcd records that replication was asynchronous, or records nothing', () => {
  for (const replication of ['async', null] as const) {
    const { decisions } = run(syncStandbyState(), lostPrimary, [
      free({ replication }),
      free({ replication }),
      free({ replication }),
    ]);
    assert.deepEqual(decisions[2]?.actions, [], String(replication));
    assert.equal(decisions[2]?.veto, 'not-synchronous');
  }
  // failover_requires_sync: false accepts the risk, but still takes the lease first.
  const { decisions } = run(
    syncStandbyState(),
    lostPrimary,
    [free({ replication: 'async' }), free(), free({ replication: 'async' })],
    withArbiter({ failoverRequiresSync: false }),
  );
  assert.deepEqual(decisions[2]?.actions[0], {
    kind: 'claim-lease',
    replicationRevision: null,
    recordAsync: true,
  });
});

test('a standby holding the lease while the primary answers gives it back', () => {
  const d = decide(
    syncStandbyState(),
    at(seen(standbyLocal(), peerPrimary()), leaseHeld()),
    0,
    withArbiter(),
  );
  assert.equal(d.situation, 'standby-releasing-lease');
  assert.deepEqual(d.actions, [{ kind: 'release-lease' }]);
  assert.equal(d.state.primarySeenAt, 0, 'the contact is recorded all the same');
});

test('a keeper whose server is down gives the lease up at once, and only if it holds it', () => {
  const down = seen({ up: false, error: 'connect ECONNREFUSED' }, peerStandby);
  const d = decide(initialState(), at(down, leaseHeld()), 0, withArbiter());
  assert.equal(d.situation, 'local-down');
  assert.deepEqual(d.actions, [{ kind: 'release-lease' }]);
  assert.match(d.reason, /giving up the lease, so that the standby need not wait for it/);
  assert.deepEqual(decide(initialState(), at(down, free()), 0, withArbiter()).actions, []);
  assert.deepEqual(decide(initialState(), at(down, heldByPeer()), 0, withArbiter()).actions, []);
  // Even with etcd unreachable, the keeper tries: its lease may still be alive there.
  assert.deepEqual(decide(initialState(), at(down, unreachable(1200)), 0, withArbiter()).actions, [
    { kind: 'release-lease' },
  ]);
  assert.deepEqual(
    decide(initialState(), at(down, leaseHeld()), 0, withArbiter({ paused: true })).actions,
    [],
  );
});

test('an etcd outage alone changes nothing for a healthy pair', () => {
  const healthyPrimary = seen(primaryLocal(), peerStandby);
  const healthyStandby = seen(standbyLocal(), peerPrimary());
  for (const view of [unreachable(2000), unreachable(null)]) {
    const p = decide(initialState(), at(healthyPrimary, view), 0, withArbiter());
    assert.deepEqual(p.actions, [], `primary: ${p.situation}`);
    assert.equal(p.situation, 'primary-with-standby');
  }
  const s = decide(syncStandbyState(), at(healthyStandby, unreachable(null)), 0, withArbiter());
  assert.deepEqual(s.actions, []);
  assert.equal(s.situation, 'standby-with-primary');
});

test('two primaries: the reason says which one holds the lease', () => {
  const two = seen(primaryLocal(), peerPrimary());
  assert.match(
    decide(initialState(), at(two, leaseHeld()), 0, withArbiter()).reason,
    /this node holds the lease: the peer must be demoted/,
  );
  assert.match(
    decide(initialState(), at(two, heldByPeer()), 0, withArbiter()).reason,
    /the peer holds the lease: this node must be demoted/,
  );
});

test('without the arbiter configured, an arbiter view changes nothing', () => {
  const d = decide(initialState(), at(lostStandby, unreachable(null)), 0, rule(300, 1));
  assert.deepEqual(d.actions, [
    { kind: 'switch-to-async', restore: '*' },
    { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
  ]);
});
