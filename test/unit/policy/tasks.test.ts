// The early rows and the bookkeeping around them: a running task's own sentence, the
// rejoin's backoff and pause, a down server's lease, two primaries and the lease, and
// what the keeper remembers of a primary's commits acknowledged alone.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle } from '../../../src/policy/decide.js';
import {
  initialState,
  type ArbiterView,
  type KeeperState,
  type Observation,
  type PeerObservation,
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
  succeeded,
  withArbiter,
} from './fixtures.js';

const said = (state: KeeperState, obs: Observation, r: Rule, now = 1000) => {
  const { situation, actions, severity, reason } = decide(state, obs, now, r);
  return { situation, actions, severity, reason };
};

test("a running task owns the tick, and its sentence names its step and detail, or '?' and nothing", () => {
  const obs = seen(primaryLocal(), peerStandby);
  const task = { step: 'stopping', detail: 'pg_ctl stop -m fast', startedAt: 0 };
  assert.deepEqual(said(initialState(), { ...obs, task: { kind: 'switchover', ...task } }, rule()), {
    situation: 'switching-over',
    actions: [],
    severity: 'warn',
    reason: 'planned switchover: stopping (pg_ctl stop -m fast)',
  });
  assert.deepEqual(said(initialState(), { ...obs, task: { kind: 'rejoin', ...task } }, rule()), {
    situation: 'rejoining',
    actions: [],
    severity: 'warn',
    reason: 'rejoining the primary as its standby: stopping (pg_ctl stop -m fast)',
  });
});

const newer = { ...peerPrimary(), timeline: 2 } as PeerObservation;
const oldPrimary = (state: Partial<KeeperState> = {}): KeeperState => ({
  ...initialState(),
  role: 'primary',
  mayHaveAckedAlone: false,
  ...state,
});
const rejoinRule = (extra: Partial<Rule> = {}) =>
  rule(200, 3, { autoRejoin: true, managesServer: true, ...extra });

test('rejoin-needed: rejoins; waits out the backoff after a failure; paused, it only says so', () => {
  const obs = seen(primaryLocal({ standbys: [] }), newer);
  assert.deepEqual(said(oldPrimary(), obs, rejoinRule()), {
    situation: 'rejoin-needed',
    actions: [{ kind: 'rejoin' }],
    severity: 'warn',
    reason: 'the peer is the primary on a newer timeline: rejoining as its standby',
  });
  assert.deepEqual(said(oldPrimary(), obs, rejoinRule({ paused: true })), {
    situation: 'rejoin-needed',
    actions: [],
    severity: 'warn',
    reason: "paused: would rejoin as the new primary's standby",
  });
  const failed = oldPrimary({ rejoinFailures: 1, rejoinFailedAt: 0 });
  assert.deepEqual(said(failed, obs, rejoinRule(), 2500), {
    situation: 'rejoin-needed',
    actions: [],
    severity: 'error',
    reason: 'the last rejoin failed (1 in a row); trying again in 8 s',
  });
  assert.equal(
    said(
      oldPrimary(),
      seen(primaryLocal({ standbys: [] }), { ...peerPrimary(), timeline: null } as PeerObservation),
      rejoinRule(),
    ).situation,
    'two-primaries',
    'a peer whose timeline is not known is not known to be newer',
  );
});

test('rejoin-refused: a primary that may have acknowledged commits alone is never rejoined silently', () => {
  const obs = seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), newer);
  const d = said(oldPrimary({ mayHaveAckedAlone: true }), obs, rejoinRule());
  assert.equal(d.situation, 'rejoin-refused');
  assert.equal(d.severity, 'error');
  assert.equal(
    d.reason,
    'the peer is the primary on a newer timeline, but this server was asynchronous as a primary and may have ' +
      'acknowledged commits the new primary lacks: a rejoin would discard them; not rejoining (pg-keeper rejoin --force)',
  );
  const down: Observation = {
    ...seen({ up: false, error: 'ECONNREFUSED' }, newer),
    server: { running: false, clusterState: 'in production', timeline: 1 },
  };
  assert.equal(
    said({ ...initialState(), mayHaveAckedAlone: null }, down, rejoinRule()).reason,
    'the peer is the primary on a newer timeline, but this keeper cannot tell whether this server acknowledged ' +
      'commits its standby lacks: not rejoining (pg-keeper rejoin --force rejoins anyway)',
  );
});

test('local-down: gives up a lease it holds, even one etcd no longer answers for; paused, it only says so', () => {
  const down = (a: ArbiterView): Observation => ({
    ...seen({ up: false, error: 'ECONNREFUSED' }, peerStandby),
    arbiter: a,
  });
  const base = 'local server unreachable (ECONNREFUSED); peer answers; nothing can be done on this node';
  assert.deepEqual(said(initialState(), down(leaseHeld()), withArbiter()), {
    situation: 'local-down',
    actions: [{ kind: 'release-lease' }],
    severity: 'error',
    reason: `${base}; giving up the lease, so that the standby need not wait for it`,
  });
  assert.deepEqual(
    said(initialState(), down(leaseHeld({ leaseRemainingMs: null, holder: 'self' })), withArbiter()).actions,
    [{ kind: 'release-lease' }],
    'etcd says this node holds the key',
  );
  assert.deepEqual(
    said(initialState(), down(leaseHeld({ leaseRemainingMs: null, holder: 'peer' })), withArbiter()),
    {
      situation: 'local-down',
      actions: [],
      severity: 'error',
      reason: base,
    },
  );
  assert.deepEqual(said(initialState(), down(leaseHeld()), withArbiter({ paused: true })), {
    situation: 'local-down',
    actions: [],
    severity: 'error',
    reason: `${base}; paused: would give up the lease`,
  });
});

test('two primaries: the lease says which must be demoted, and an unreachable etcd or no holder says nothing', () => {
  const reason = (a: ArbiterView) =>
    said(initialState(), { ...seen(primaryLocal(), peerPrimary()), arbiter: a }, withArbiter()).reason;
  const base = 'two primaries: the peer is also a primary; taking no action until one of them is demoted';
  assert.equal(reason(leaseHeld()), `${base}; this node holds the lease: the peer must be demoted`);
  assert.equal(
    reason(leaseHeld({ holder: 'peer' })),
    `${base}; the peer holds the lease: this node must be demoted`,
  );
  assert.equal(reason(leaseHeld({ holder: null })), base);
  assert.equal(reason(leaseHeld({ reachable: false, holder: 'self' })), base);
});

test('a primary may have acknowledged commits alone while async, until a sync standby flushes past the barrier', () => {
  const acked = (state: Partial<KeeperState>, local = primaryLocal()) =>
    decide({ ...initialState(), ...state }, seen(local, peerStandby), 0, rule()).state.mayHaveAckedAlone;
  assert.equal(acked({}, primaryLocal({ syncStandbyNames: ' ' })), true, 'blank names: asynchronous');
  assert.equal(acked({ mayHaveAckedAlone: true }), false, 'a sync standby streams, no barrier');
  const barrier = { mayHaveAckedAlone: true, syncBarrierLsn: '0/3000000' };
  assert.equal(acked(barrier), false, 'flushed to the barrier');
  assert.equal(acked({ ...barrier, syncBarrierLsn: '0/3000001' }), true, 'not yet past it');
  for (const s of [
    standbyView({ state: 'catchup' }),
    standbyView({ syncState: 'async' }),
    standbyView({ flushLsn: null }),
  ])
    assert.equal(acked(barrier, primaryLocal({ standbys: [s] })), true, JSON.stringify(s));
  assert.equal(acked(barrier, primaryLocal({ standbys: [standbyView({ syncState: 'quorum' })] })), false);
  assert.equal(acked({ mayHaveAckedAlone: null, syncBarrierLsn: '0/9000000' }), false, 'nothing seen alone');
  assert.equal(
    acked({ mayHaveAckedAlone: true }, standbyLocal()),
    false,
    'a standby has no commits of its own',
  );
});

test('recording sync clears the barrier; recording async keeps it; a switchover or a signal only dates itself', () => {
  const state = { ...initialState(), syncBarrierLsn: '0/5' };
  const ok = (action: Parameters<typeof succeeded>[0]) => settle(state, succeeded(action, 9));
  assert.equal(ok({ kind: 'record-replication', mode: 'sync' }).syncBarrierLsn, null);
  assert.equal(ok({ kind: 'record-replication', mode: 'async' }).syncBarrierLsn, '0/5');
  assert.deepEqual(ok({ kind: 'switchover', id: 'ab12' }), { ...state, done: { switchover: 9 } });
  assert.deepEqual(ok({ kind: 'release-lease' }), { ...state, done: { 'release-lease': 9 } });
  assert.deepEqual(ok({ kind: 'signal', signal: null }), { ...state, done: { signal: 9 } });
});

test('a contact with the primary records whether this node is among its synchronous standbys', () => {
  const contact = (standbyName: string | null, sync: string[]) =>
    decide(
      { ...initialState(), standbyName: null },
      seen(standbyLocal({ standbyName }), peerPrimary(sync)),
      0,
      rule(),
    ).state.syncAtLastContact;
  assert.equal(contact('node2', ['node2']), true);
  assert.equal(contact('node2', ['node1']), false);
  assert.equal(contact(null, ['node2']), false);
});
