// The policy's rejoin (auto_rejoin): when the old primary turns itself into the new
// primary's standby, when it refuses because that could discard an acknowledged commit,
// and how a failed rejoin waits before the next attempt.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle } from '../../../src/policy/decide.js';
import {
  initialState,
  type KeeperState,
  type Observation,
  type ReachablePeer,
  type Rule,
} from '../../../src/policy/types.js';
import {
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  seen,
  standbyLocal,
  standbyView,
  succeeded,
} from './fixtures.js';

const auto = (extra: Partial<Rule> = {}): Rule => rule(200, 3, { autoRejoin: true, ...extra });
/** The peer promoted: a primary on timeline 2. */
const newPrimary: ReachablePeer = {
  reachable: true,
  inRecovery: false,
  synchronousStandbys: [],
  timeline: 2,
  rttMs: 1,
};
const down = { up: false as const, error: 'connect ECONNREFUSED 127.0.0.1:5551' };
const crashed: Observation = {
  ...seen(down, newPrimary),
  server: { running: false, clusterState: 'in production', timeline: 1 },
};
/** An old primary started again by hand, on the old timeline. */
const stale: Observation = seen(primaryLocal({ timeline: 1, standbys: [] }), newPrimary);
const wasSync: KeeperState = { ...initialState(), role: 'primary', mayHaveAckedAlone: false };

test('a crashed old primary whose keeper lives rejoins the new primary, when nothing acknowledged can be lost', () => {
  const d = decide(wasSync, crashed, 0, auto());
  assert.equal(d.situation, 'rejoin-needed');
  assert.deepEqual(d.actions, [{ kind: 'rejoin' }]);
  assert.match(d.reason, /the peer is the primary on a newer timeline: rejoining as its standby/);
});

test('an old primary started again by hand, on the old timeline, rejoins too', () => {
  const d = decide(wasSync, stale, 0, auto());
  assert.equal(d.situation, 'rejoin-needed');
  assert.deepEqual(d.actions, [{ kind: 'rejoin' }]);
});

test('a rejoin that could discard acknowledged commits is refused, and says why', () => {
  const ackedAlone = { ...wasSync, mayHaveAckedAlone: true };
  for (const obs of [crashed, stale]) {
    const d = decide(ackedAlone, obs, 0, auto());
    assert.equal(d.situation, 'rejoin-refused');
    assert.deepEqual(d.actions, []);
    assert.equal(d.severity, 'error');
    assert.match(d.reason, /may have acknowledged commits the new primary lacks: .*pg-keeper rejoin --force/);
  }
  const unknown = decide({ ...wasSync, mayHaveAckedAlone: null }, crashed, 0, auto());
  assert.equal(unknown.situation, 'rejoin-refused');
  assert.match(unknown.reason, /cannot tell whether/);
});

test('a primary seen asynchronous may have acknowledged commits alone, until a synchronous standby flushed past the point sync came back', () => {
  const asyncPrimary = seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peerStandby);
  let st = decide(initialState(), asyncPrimary, 0, rule()).state;
  assert.equal(st.mayHaveAckedAlone, true);
  st = { ...st, syncBarrierLsn: '0/5000000' };
  const behind = seen(primaryLocal({ standbys: [standbyView({ flushLsn: '0/4000000' })] }), peerStandby);
  st = decide(st, behind, 200, rule()).state;
  assert.equal(st.mayHaveAckedAlone, true, 'the standby has not flushed past the barrier');
  const past = seen(primaryLocal({ standbys: [standbyView({ flushLsn: '0/5000000' })] }), peerStandby);
  assert.equal(decide(st, past, 400, rule()).state.mayHaveAckedAlone, false);
  assert.equal(
    decide(initialState(), seen(primaryLocal(), peerStandby), 0, rule()).state.mayHaveAckedAlone,
    false,
  );
  assert.equal(
    decide({ ...st, mayHaveAckedAlone: true }, seen(standbyLocal(), peerPrimary()), 0, rule()).state
      .mayHaveAckedAlone,
    false,
    'a standby has no commits of its own',
  );
});

test('no rejoin without auto_rejoin, nor towards a peer that is not on a newer timeline', () => {
  assert.equal(decide(wasSync, crashed, 0, rule()).situation, 'local-down');
  const sameTimeline: Observation = { ...crashed, peer: { ...newPrimary, timeline: 1 } };
  assert.equal(decide(wasSync, sameTimeline, 0, auto()).situation, 'local-down');
  const peerStandbyToo: Observation = { ...crashed, peer: peerStandby };
  assert.equal(decide(wasSync, peerStandbyToo, 0, auto()).situation, 'local-down');
  const unknownTimeline: Observation = seen(down, newPrimary);
  assert.equal(decide(wasSync, unknownTimeline, 0, auto()).situation, 'local-down', 'no data directory read');
});

test("with the arbiter, the node that holds the primary's key never rejoins", () => {
  const arbiterRule = auto({ arbiter: { ttlMs: 3000, marginMs: 540 } });
  const view = { reachable: true, error: null, replication: 'sync' as const, replicationRevision: 3 };
  const holding = { ...crashed, arbiter: { ...view, holder: 'self' as const, leaseRemainingMs: 2000 } };
  assert.notEqual(decide(wasSync, holding, 0, arbiterRule).situation, 'rejoin-needed');
  const peerHolds = { ...crashed, arbiter: { ...view, holder: 'peer' as const, leaseRemainingMs: null } };
  assert.equal(decide(wasSync, peerHolds, 0, arbiterRule).situation, 'rejoin-needed');
  const unreachable = {
    ...crashed,
    arbiter: { ...view, reachable: false, error: 'x', holder: null, leaseRemainingMs: null },
  };
  assert.notEqual(
    decide(wasSync, unreachable, 0, arbiterRule).situation,
    'rejoin-needed',
    'cannot check: not now',
  );
});

test('while a rejoin runs, nothing else is decided; its outcome goes back to the policy', () => {
  const running = {
    ...crashed,
    task: { kind: 'rejoin' as const, step: 'rewinding', detail: 'pg_rewind', startedAt: 0 },
  };
  const d = decide(wasSync, running, 0, auto());
  assert.equal(d.situation, 'rejoining');
  assert.deepEqual(d.actions, []);
  assert.match(d.reason, /rewinding \(pg_rewind\)/);
  const ok = settle(
    { ...wasSync, mayHaveAckedAlone: true, rejoinFailures: 2 },
    { ...succeeded({ kind: 'rejoin' }, 5000), method: 'rewind' },
  );
  assert.equal(ok.mayHaveAckedAlone, false);
  assert.equal(ok.rejoinFailures, 0);
  assert.equal(ok.done.rejoin, 5000);
});

test('a failed rejoin waits before the next attempt, longer each time', () => {
  const failed = (st: KeeperState, at: number): KeeperState =>
    settle(st, { action: { kind: 'rejoin' }, ok: false, at, durationMs: 100, error: 'pg_rewind failed' });
  let st = failed(wasSync, 0);
  assert.equal(st.rejoinFailures, 1);
  assert.deepEqual(decide(st, crashed, 9_000, auto()).actions, [], 'within the first 10 s');
  assert.match(decide(st, crashed, 9_000, auto()).reason, /failed \(1 in a row\); trying again in 1 s/);
  assert.deepEqual(decide(st, crashed, 10_000, auto()).actions, [{ kind: 'rejoin' }]);
  st = failed(st, 10_000);
  assert.deepEqual(decide(st, crashed, 29_000, auto()).actions, [], 'then 20 s');
  assert.deepEqual(decide(st, crashed, 30_000, auto()).actions, [{ kind: 'rejoin' }]);
  assert.deepEqual(decide(st, crashed, 30_000, auto({ paused: true })).actions, [], 'paused');
});
