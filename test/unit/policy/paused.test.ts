// Each row that may act, once acting and once paused: the exact actions, severity and
// sentence, and what paused turns them into (no action, and a sentence that says what the
// keeper would have done). Also the edges that decide which of these rows applies.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide } from '../../../src/policy/decide.js';
import {
  initialState,
  lsnValue,
  parseSignal,
  signalText,
  type ArbiterView,
  type KeeperState,
  type Observation,
  type Rule,
} from '../../../src/policy/types.js';
import {
  leaseHeld,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  seen,
  standbyLocal,
  standbyView,
  withArbiter,
} from './fixtures.js';

const paused = (r: Rule): Rule => ({ ...r, paused: true });
/** Switched to async by this keeper: what to restore is remembered. */
const keeperAsync = (): KeeperState => ({ ...initialState(), role: 'primary', savedSyncNames: 'node2' });
const asyncPrimary = (a: ArbiterView): Observation => ({
  ...seen(primaryLocal({ syncStandbyNames: '' }), peerStandby),
  arbiter: a,
});

const shown = (state: KeeperState, obs: Observation, r: Rule) => {
  const { situation, actions, severity, reason } = decide(state, obs, 1000, r);
  return { situation, actions, severity, reason };
};

test('primary-fencing: back to sync when the lease is short or not held; paused, it only says so', () => {
  assert.deepEqual(
    shown(keeperAsync(), asyncPrimary(leaseHeld({ leaseRemainingMs: 300.4 })), withArbiter()),
    {
      situation: 'primary-fencing',
      actions: [{ kind: 'restore-sync', value: 'node2' }],
      severity: 'error',
      reason:
        'primary; asynchronous, but its lease has 300 ms left (margin 540 ms): going back to synchronous ' +
        'replication, so that it acknowledges no commit its standby lacks',
    },
  );
  const notHeld = shown(
    keeperAsync(),
    asyncPrimary(leaseHeld({ holder: null, leaseRemainingMs: null })),
    withArbiter(),
  );
  assert.equal(notHeld.situation, 'primary-fencing');
  assert.match(
    notHeld.reason,
    /^primary; asynchronous, but this keeper does not hold the lease \(margin 540 ms\)/,
  );
  assert.deepEqual(
    shown(keeperAsync(), asyncPrimary(leaseHeld({ leaseRemainingMs: 300 })), paused(withArbiter())),
    {
      situation: 'primary-fencing',
      actions: [],
      severity: 'error',
      reason: 'paused: would go back to synchronous replication (its lease has 300 ms left)',
    },
  );
});

test('the lease is held with the margin only above it, and only while it lasts', () => {
  const fencing = (a: ArbiterView) => shown(keeperAsync(), asyncPrimary(a), withArbiter()).situation;
  assert.equal(fencing(leaseHeld({ leaseRemainingMs: 540 })), 'primary-fencing', 'at the margin: not enough');
  assert.notEqual(fencing(leaseHeld({ leaseRemainingMs: 541 })), 'primary-fencing', 'above it: enough');
  assert.equal(fencing(leaseHeld({ leaseRemainingMs: 0, reachable: false })), 'primary-fencing', 'run out');
  assert.notEqual(
    fencing(leaseHeld({ leaseRemainingMs: 2000, reachable: false, holder: null })),
    'primary-fencing',
    'etcd does not answer, but the lease this keeper renewed still lasts',
  );
  assert.equal(
    fencing(leaseHeld({ leaseRemainingMs: 2000, holder: 'peer' })),
    'primary-fencing',
    'etcd answers that the peer holds the key: whatever this keeper counted, it does not hold it',
  );
});

test('primary-claiming-lease: a primary with no lease takes it; paused, it only says so', () => {
  const obs = {
    ...seen(primaryLocal(), peerStandby),
    arbiter: leaseHeld({ holder: null, leaseRemainingMs: null }),
  };
  assert.deepEqual(shown(initialState(), obs, withArbiter()), {
    situation: 'primary-claiming-lease',
    actions: [{ kind: 'claim-lease', replicationRevision: null, recordAsync: false }],
    severity: 'info',
    reason: 'primary; taking the lease',
  });
  const runOut = { ...obs, arbiter: leaseHeld({ leaseRemainingMs: 0 }) };
  assert.equal(
    shown(initialState(), runOut, withArbiter()).situation,
    'primary-claiming-lease',
    'a lease run out',
  );
  assert.deepEqual(shown(initialState(), { ...obs, arbiter: leaseHeld({ holder: 'peer' }) }, withArbiter()), {
    situation: 'primary-without-lease',
    actions: [],
    severity: 'error',
    reason:
      'primary, but the peer holds the lease: this server is not the primary to anyone (/primary answers 503) ' +
      "and its commits wait; make it the peer's standby",
  });
  assert.deepEqual(shown(initialState(), obs, paused(withArbiter())), {
    situation: 'primary-claiming-lease',
    actions: [],
    severity: 'warn',
    reason: 'paused: would take the lease for this primary',
  });
});

test('primary-recording-sync: only a synchronous primary with the lease and nothing to restore records sync', () => {
  const obs = (a: ArbiterView = leaseHeld({ replication: null })): Observation => ({
    ...seen(primaryLocal(), peerStandby),
    arbiter: a,
  });
  assert.deepEqual(shown(initialState(), obs(), withArbiter()), {
    situation: 'primary-recording-sync',
    actions: [{ kind: 'record-replication', mode: 'sync' }],
    severity: 'info',
    reason: 'standby node2 is synchronous and has every commit: recording that replication is synchronous',
  });
  assert.deepEqual(shown(initialState(), obs(), paused(withArbiter())), {
    situation: 'primary-recording-sync',
    actions: [],
    severity: 'warn',
    reason: 'paused: would record that replication is synchronous',
  });
  assert.notEqual(
    shown(initialState(), obs(leaseHeld()), withArbiter()).situation,
    'primary-recording-sync',
    'recorded',
  );
  const behind = { ...initialState(), syncBarrierLsn: '0/4000000' };
  assert.notEqual(
    shown(behind, obs(), withArbiter()).situation,
    'primary-recording-sync',
    'before the barrier',
  );
  assert.equal(
    shown({ ...behind, syncBarrierLsn: '0/3000000' }, obs(), withArbiter()).situation,
    'primary-recording-sync',
  );
  const quorum = { ...seen(primaryLocal({ standbys: [standbyView({ syncState: 'quorum' })] }), peerStandby) };
  assert.equal(
    shown(initialState(), { ...quorum, arbiter: leaseHeld({ replication: null }) }, withArbiter()).situation,
    'primary-recording-sync',
  );
  for (const s of [
    standbyView({ syncState: 'async' }),
    standbyView({ state: 'catchup' }),
    standbyView({ flushLsn: null }),
  ]) {
    const o = {
      ...seen(primaryLocal({ standbys: [s] }), peerStandby),
      arbiter: leaseHeld({ replication: null }),
    };
    assert.notEqual(
      shown({ ...initialState(), syncBarrierLsn: '0/1' }, o, withArbiter()).situation,
      'primary-recording-sync',
      JSON.stringify(s),
    );
  }
});

const stopped = (arg: string | null, id = 'ab12') => signalText({ from: 'node1', word: 'stopped', id, arg });
const ready = (id = 'ab12') => ({ kind: 'signal', signal: { from: 'node2', word: 'ready', id, arg: null } });
const refused = (id = 'ab12') => ({
  kind: 'signal',
  signal: { from: 'node2', word: 'refused', id, arg: null },
});
const standbyWith = (signals: string[], extra = {}): Observation =>
  seen(standbyLocal({ signals, replayLsn: '0/3000060', ...extra }), peerPrimary());

test('switchover-promoting: promotes past the clean stop, restoring the sync names it finds; paused, it only says so', () => {
  const obs = standbyWith([stopped('0/3000028')]);
  assert.deepEqual(shown(initialState(), obs, rule()), {
    situation: 'switchover-promoting',
    actions: [
      { kind: 'promote', restore: '*' },
      { kind: 'run-hook', hook: 'after_command', event: 'promote' },
      ready(),
    ],
    severity: 'warn',
    reason: 'switchover ab12: the primary stopped cleanly at 0/3000028, replayed past it: promoting',
  });
  assert.deepEqual(shown(initialState(), obs, paused(rule())), {
    situation: 'switchover-promoting',
    actions: [refused()],
    severity: 'warn',
    reason: 'paused: would promote for the switchover',
  });
  const restore = (syncStandbyNames: string, configuredSyncStandbyNames: string | null) =>
    decide(
      initialState(),
      standbyWith([stopped('0/3000028')], { syncStandbyNames, configuredSyncStandbyNames }),
      0,
      rule(),
    ).actions.find((a) => a.kind === 'promote');
  assert.deepEqual(restore(' ', 'node1'), { kind: 'promote', restore: 'node1' }, 'blank names are none');
  assert.deepEqual(restore('', null), { kind: 'promote', restore: null });
});

test('switchover-promoting needs a stop point and a replay position past it', () => {
  const situation = (o: Observation) => decide(initialState(), o, 0, rule()).situation;
  assert.equal(
    situation(standbyWith([stopped('0/3000060')])),
    'switchover-expected',
    'at the point, not past',
  );
  assert.equal(situation(standbyWith([stopped(null)])), 'switchover-expected', 'no stop point');
  assert.equal(situation(standbyWith([stopped('0/3000028')], { replayLsn: null })), 'switchover-expected');
});

test('switchover-expected: waits for the clean stop, and answers only the request with the same id', () => {
  const announce = signalText({ from: 'node1', word: 'switchover', id: 'ab12', arg: 'node2' });
  const obs = standbyWith([announce]);
  assert.deepEqual(shown(initialState(), obs, rule()), {
    situation: 'switchover-expected',
    actions: [ready()],
    severity: 'warn',
    reason: "switchover ab12: the primary's keeper is handing over to this node; waiting for its clean stop",
  });
  const answer = (id: string) =>
    decide(initialState(), { ...obs, request: { id, to: null, at: 0 } }, 0, rule()).switchover;
  assert.deepEqual(answer('ab12'), { id: 'ab12', refused: null });
  assert.equal(answer('cd34'), undefined);
  const toOther = signalText({ from: 'node1', word: 'switchover', id: 'ab12', arg: 'node1' });
  assert.notEqual(decide(initialState(), standbyWith([toOther]), 0, rule()).situation, 'switchover-expected');
  const toAnyone = signalText({ from: 'node1', word: 'switchover', id: 'ab12', arg: null });
  assert.equal(decide(initialState(), standbyWith([toAnyone]), 0, rule()).situation, 'switchover-expected');
  const fromSelf = signalText({ from: 'node2', word: 'switchover', id: 'ab12', arg: null });
  assert.notEqual(
    decide(initialState(), standbyWith([fromSelf]), 0, rule()).situation,
    'switchover-expected',
  );
});

test('switchover-relaying: passes the request on for 10 s; refuses one for the primary, or while paused', () => {
  const obs = (to: 'node1' | 'node2' | null, at = 0): Observation => ({
    ...standbyWith([]),
    request: { id: 'cd34', to, at },
  });
  const request = { kind: 'signal', signal: { from: 'node2', word: 'request', id: 'cd34', arg: null } };
  assert.deepEqual(shown(initialState(), obs(null), rule()), {
    situation: 'switchover-relaying',
    actions: [request],
    severity: 'info',
    reason: "switchover cd34: asking the primary's keeper to hand over to this node",
  });
  assert.deepEqual(shown(initialState(), obs('node2'), rule()), {
    situation: 'switchover-relaying',
    actions: [request],
    severity: 'info',
    reason: "switchover cd34: asking the primary's keeper to hand over to this node",
  });
  const refusal = (o: Observation, r: Rule) => {
    const d = decide(initialState(), o, 1000, r);
    return { actions: d.actions, severity: d.severity, reason: d.reason, switchover: d.switchover };
  };
  assert.deepEqual(refusal(obs('node1'), rule()), {
    actions: [],
    severity: 'warn',
    reason: 'switchover cd34 refused: node1 is already the primary',
    switchover: { id: 'cd34', refused: 'node1 is already the primary' },
  });
  assert.deepEqual(
    refusal(obs(null), paused(rule())).reason,
    'switchover cd34 refused: the keeper is paused',
  );
  assert.equal(
    decide(initialState(), obs(null, 0), 10_000, rule()).severity,
    'info',
    'at 10 s: still passed on',
  );
  assert.equal(
    decide(initialState(), obs(null, 0), 10_001, rule()).reason,
    "switchover cd34 refused: the primary's keeper did not take it within 10 s (see its log)",
  );
  assert.equal(
    decide(initialState(), obs(null, 5000), 12_000, rule()).severity,
    'info',
    'its age, from when it came',
  );
});

test('standby-releasing-lease: a standby holding the lease gives it back to the primary; paused, it only says so', () => {
  const obs = (a: ArbiterView): Observation => ({ ...seen(standbyLocal(), peerPrimary()), arbiter: a });
  assert.deepEqual(shown(initialState(), obs(leaseHeld()), withArbiter()), {
    situation: 'standby-releasing-lease',
    actions: [{ kind: 'release-lease' }],
    severity: 'warn',
    reason: 'standby holding the lease while the primary answers heartbeats: giving it back',
  });
  assert.deepEqual(shown(initialState(), obs(leaseHeld()), paused(withArbiter())), {
    situation: 'standby-releasing-lease',
    actions: [],
    severity: 'warn',
    reason: 'paused: would give the lease back to the primary',
  });
  const situation = (a: ArbiterView) => decide(initialState(), obs(a), 0, withArbiter()).situation;
  assert.equal(
    situation(leaseHeld({ leaseRemainingMs: null })),
    'standby-releasing-lease',
    'etcd says it holds the key',
  );
  assert.equal(
    situation(leaseHeld({ reachable: false, holder: null })),
    'standby-releasing-lease',
    'its lease lasts',
  );
  assert.notEqual(
    situation(leaseHeld({ reachable: false, holder: null, leaseRemainingMs: null })),
    'standby-releasing-lease',
  );
  assert.notEqual(
    situation(leaseHeld({ holder: 'peer', leaseRemainingMs: null })),
    'standby-releasing-lease',
  );
  assert.notEqual(situation(leaseHeld({ holder: null, leaseRemainingMs: null })), 'standby-releasing-lease');
});

test('a signal without an argument ends with its id; parsing keeps an argument whole and refuses a foreign tag or id', () => {
  assert.equal(
    signalText({ from: 'node2', word: 'ready', id: 'ab12', arg: null }),
    'pg-keeper:node2:ready:ab12',
  );
  assert.deepEqual(parseSignal('pg-keeper:node2:ready:ab12'), {
    from: 'node2',
    word: 'ready',
    id: 'ab12',
    arg: null,
  });
  assert.equal(parseSignal('pg-keeper:node1:stopped:ab12:0/3:x')?.arg, '0/3:x');
  for (const bad of [
    'pgkeeper:node1:ready:ab12',
    'pg-keeper:node1:ready:!ab12',
    'pg-keeper:node1:ready:ab12!',
  ])
    assert.equal(parseSignal(bad), null, bad);
});

test('LSNs compare as PostgreSQL orders them: the high half first, a missing low half is zero', () => {
  assert.equal(lsnValue('1/0'), 2n ** 32n);
  assert.equal(lsnValue('0/FF'), 255n);
  assert.equal(lsnValue('1'), 2n ** 32n);
  assert.ok(lsnValue('1/0') > lsnValue('0/FFFFFFFF'), 'the high half counts first');
});
