// What holds across the table: the local-down row, what the heartbeat count remembers
// about the peer, and what the runtime's decision log takes from each row.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commentOf, decide, isLoud, situationRows } from '../../../src/policy/decide.js';
import { SITUATIONS } from '../../../src/policy/types.js';
import {
  peerDown,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  run,
  said,
  seen,
  standbyLocal,
  syncStandbyState,
} from './fixtures.js';

const localDown = { up: false as const, error: 'connect ECONNREFUSED 127.0.0.1:5552' };

test('a keeper whose server is down says so, and how many heartbeats the peer missed', () => {
  const ds = run(syncStandbyState(), seen(localDown, peerDown), 2);
  assert.deepEqual(said(ds[1]), {
    situation: 'local-down',
    severity: 'error',
    actions: [],
    reason:
      'local server unreachable (connect ECONNREFUSED 127.0.0.1:5552); peer missed 2 heartbeats in a row; ' +
      'nothing can be done on this node',
  });
});

test('a keeper whose server is down says when the peer answers', () => {
  const d = decide(syncStandbyState(), seen(localDown, peerStandby), 0, rule());
  assert.equal(
    d.reason,
    'local server unreachable (connect ECONNREFUSED 127.0.0.1:5552); peer answers; nothing can be done on this node',
  );
});

test('with its server down, only a peer answering as a primary counts as a contact with the primary', () => {
  const before = syncStandbyState();
  for (const peer of [peerDown, peerStandby]) {
    const d = decide(before, seen(localDown, peer), 5000, rule());
    assert.equal(d.state.primarySeenAt, before.primarySeenAt, `peer ${peer.reachable ? 'standby' : 'down'}`);
    assert.equal(d.state.syncAtLastContact, true);
  }
  const d = decide(before, seen(localDown, peerPrimary([])), 5000, rule());
  assert.equal(d.state.primarySeenAt, 5000);
});

test("the peer's role is what it answered at the last successful heartbeat", () => {
  const asStandby = decide(syncStandbyState(), seen(primaryLocal(), peerStandby), 0, rule());
  assert.equal(asStandby.state.peerRole, 'standby');
  const asPrimary = decide(asStandby.state, seen(standbyLocal(), peerPrimary()), 200, rule());
  assert.equal(asPrimary.state.peerRole, 'primary');
  const gone = decide(asPrimary.state, seen(standbyLocal(), peerDown), 400, rule());
  assert.equal(gone.state.peerRole, 'primary', 'a failed heartbeat does not change it');
});

test('a successful heartbeat forgets the vetoes of the run of failures it ends', () => {
  const vetoed = run(syncStandbyState(), seen(standbyLocal(), peerDown), 3).at(-1)?.state;
  assert.deepEqual(vetoed?.vetoed, ['stream-alive']);
  const d = decide(vetoed ?? syncStandbyState(), seen(standbyLocal(), peerPrimary()), 600, rule());
  assert.deepEqual(d.state.vetoed, []);
});

test('two primaries is the one situation logged at every tick', () => {
  assert.deepEqual(
    SITUATIONS.filter((s) => isLoud(s)),
    ['two-primaries'],
  );
});

test("the comment logged when the keeper enters a situation is the row's documented one", () => {
  const rows = situationRows();
  for (const s of SITUATIONS) {
    assert.equal(commentOf(s), rows.find((r) => r.situation === s)?.comment, s);
  }
  assert.match(commentOf('local-down'), /^nothing can be done on this node/);
});
