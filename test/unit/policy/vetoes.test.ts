// The arbiter's vetoes, in the words the keeper logs and /status shows: which fact of etcd
// stops a switch to async or a promotion, and what the operator reads about it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide } from '../../../src/policy/decide.js';
import { initialState, type ArbiterView } from '../../../src/policy/types.js';
import {
  peerDown,
  primaryLocal,
  rule,
  seen,
  silentReceiver,
  standbyLocal,
  syncStandbyState,
} from './fixtures.js';

const r = rule(300, 3, { arbiter: { ttlMs: 3000, marginMs: 540 } });
const etcd = (extra: Partial<ArbiterView>): ArbiterView => ({
  reachable: true,
  error: null,
  holder: null,
  leaseRemainingMs: null,
  replication: 'sync',
  replicationRevision: 7,
  ...extra,
});
const down = (error: string | null) => etcd({ reachable: false, error, leaseRemainingMs: 2500 });

const primaryVeto = (a: ArbiterView) => {
  const state = { ...initialState(), role: 'primary' as const, failures: 2 };
  const d = decide(state, { ...seen(primaryLocal({ standbys: [] }), peerDown), arbiter: a }, 1000, r);
  return { situation: d.situation, actions: d.actions, reason: d.reason };
};
const standbyVeto = (a: ArbiterView) => {
  const state = { ...syncStandbyState(), failures: 2 };
  const d = decide(
    state,
    { ...seen(standbyLocal({ walReceiver: silentReceiver }), peerDown), arbiter: a },
    700,
    r,
  );
  return { situation: d.situation, actions: d.actions, reason: d.reason };
};
const primaryMissed = 'standby missed 3 heartbeats in a row (keepalive_count 3)';
const standbyMissed = 'primary missed 3 heartbeats in a row (keepalive_count 3)';

test('a primary without etcd, or without the lease and its margin, keeps synchronous replication', () => {
  assert.deepEqual(primaryVeto(down(null)), {
    situation: 'primary-lost-standby',
    actions: [],
    reason:
      `${primaryMissed}, but etcd does not answer (no answer): a primary may be asynchronous only under ` +
      'the lease, recorded in etcd first; keeping synchronous replication (commits wait)',
  });
  assert.match(
    primaryVeto(down('connect ECONNREFUSED')).reason,
    /etcd does not answer \(connect ECONNREFUSED\)/,
  );
  assert.deepEqual(primaryVeto(etcd({ holder: 'self', leaseRemainingMs: 300 })), {
    situation: 'primary-lost-standby',
    actions: [],
    reason:
      `${primaryMissed}, but this keeper does not hold the lease with more than 540 ms left; ` +
      'keeping synchronous replication (commits wait)',
  });
});

test('a standby without etcd, with the lease held by the primary, or without "sync" recorded, does not promote', () => {
  const cases: [ArbiterView, string][] = [
    [down(null), 'but etcd does not answer (no answer): a standby that cannot take the lease never promotes'],
    [
      down('timed out'),
      'but etcd does not answer (timed out): a standby that cannot take the lease never promotes',
    ],
    [
      etcd({ holder: 'peer' }),
      "but the primary's keeper still holds the lease: the primary may be alive and only cut from this node; " +
        'not promoting until its lease expires',
    ],
    [
      etcd({ replication: 'async' }),
      'but etcd records that replication was asynchronous: promoting could lose acknowledged commits; ' +
        'not promoting (failover_requires_sync: false allows it)',
    ],
    [
      etcd({ replication: null }),
      'but etcd records no synchronous replication: promoting could lose acknowledged commits; ' +
        'not promoting (failover_requires_sync: false allows it)',
    ],
  ];
  for (const [a, why] of cases)
    assert.deepEqual(
      standbyVeto(a),
      { situation: 'standby-lost-primary', actions: [], reason: `${standbyMissed}, ${why}` },
      why,
    );
  assert.deepEqual(
    standbyVeto(etcd({})).actions.map((x) => x.kind),
    ['claim-lease', 'promote', 'run-hook'],
    'with "sync" recorded and the lease free, it promotes',
  );
});
