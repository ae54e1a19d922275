// The policy's side of a planned switchover: the primary's keeper takes a request only for
// a synchronous, caught-up, replying standby; the standby's keeper answers through a signal,
// does not fail over while the primary stops as announced, and promotes once it has replayed
// the shutdown checkpoint. Plain values: the signals are the application_names a keeper
// reads in pg_stat_activity.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle } from '../../../src/policy/decide.js';
import {
  initialState,
  isFailover,
  SITUATIONS,
  parseSignal,
  signalText,
  type Observation,
  type Rule,
} from '../../../src/policy/types.js';
import {
  peerDown,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  seen,
  standbyLocal,
  standbyView,
  succeeded,
  syncStandbyState,
} from './fixtures.js';

const asPrimary = (extra: Partial<Rule> = {}): Rule =>
  rule(200, 3, { self: 'node1', managesServer: true, ...extra });
const asStandby = (extra: Partial<Rule> = {}): Rule =>
  rule(200, 3, { self: 'node2', managesServer: true, ...extra });
const request = { id: 'ab12', to: null, at: 0 };

test('signals are application_names that say who, what, which switchover', () => {
  const s = { from: 'node1' as const, word: 'stopped' as const, id: 'ab12', arg: '0/3000060' };
  assert.equal(signalText(s), 'pg-keeper:node1:stopped:ab12:0/3000060');
  assert.deepEqual(parseSignal(signalText(s)), s);
  for (const bad of [
    'pg-keeper-node1',
    'pg-keeper:node3:ready:ab12',
    'pg-keeper:node1:shout:ab12',
    'pg-keeper:node1:ready:AB!',
    'psql',
  ])
    assert.equal(parseSignal(bad), null, bad);
});

test('the primary takes a switchover request for a synchronous, caught-up standby', () => {
  const d = decide(initialState(), { ...seen(primaryLocal(), peerStandby), request }, 0, asPrimary());
  assert.equal(d.situation, 'switchover-requested');
  assert.deepEqual(d.actions, [{ kind: 'switchover', id: 'ab12' }]);
  assert.deepEqual(d.switchover, { id: 'ab12', refused: null });
  assert.equal(d.state.answeredSwitchover, 'ab12', 'a request is answered once');
  const again = decide(d.state, { ...seen(primaryLocal(), peerStandby), request }, 200, asPrimary());
  assert.notEqual(again.situation, 'switchover-requested');
});

test('the primary refuses, saying why: behind, not replying, asynchronous, paused, no data_directory, itself', () => {
  const cases: [Observation, Rule, RegExp][] = [
    [
      { ...seen(primaryLocal({ standbys: [standbyView({ replayLagBytes: 5e6 })] }), peerStandby), request },
      asPrimary(),
      /standby node2 is 5000000 bytes behind/,
    ],
    [
      { ...seen(primaryLocal({ standbys: [standbyView({ replyAgeMs: 9000 })] }), peerStandby), request },
      asPrimary(),
      /has not replied for 9000 ms/,
    ],
    [
      { ...seen(primaryLocal({ syncStandbyNames: '' }), peerStandby), request },
      asPrimary(),
      /no standby is synchronous now/,
    ],
    [
      { ...seen(primaryLocal({ standbys: [] }), peerStandby), request },
      asPrimary(),
      /no standby is synchronous now/,
    ],
    [{ ...seen(primaryLocal(), peerDown), request }, asPrimary(), /does not answer heartbeats/],
    [{ ...seen(primaryLocal(), peerStandby), request }, asPrimary({ paused: true }), /paused/],
    [
      { ...seen(primaryLocal(), peerStandby), request },
      asPrimary({ managesServer: false }),
      /no data_directory/,
    ],
    [
      { ...seen(primaryLocal(), peerStandby), request: { ...request, to: 'node1' } },
      asPrimary(),
      /node1 is already the primary/,
    ],
  ];
  for (const [obs, r, why] of cases) {
    const d = decide(initialState(), obs, 0, r);
    assert.equal(d.situation, 'switchover-requested');
    assert.deepEqual(d.actions, []);
    assert.match(d.switchover?.refused ?? '', why);
  }
});

test("the standby's keeper passes a request on, with a signal, and gives up after 10 s", () => {
  const d = decide(syncStandbyState(), { ...seen(standbyLocal(), peerPrimary()), request }, 0, asStandby());
  assert.equal(d.situation, 'switchover-relaying');
  assert.deepEqual(d.actions, [
    { kind: 'signal', signal: { from: 'node2', word: 'request', id: 'ab12', arg: null } },
  ]);
  const held = { from: 'node2' as const, word: 'request' as const, id: 'ab12', arg: null };
  const later = decide(
    syncStandbyState(),
    { ...seen(standbyLocal(), peerPrimary()), request, held },
    10_001,
    asStandby(),
  );
  assert.match(later.switchover?.refused ?? '', /did not take it within 10 s/);
  // The primary's keeper sees the signal as a request from node2.
  const p = decide(
    initialState(),
    seen(primaryLocal({ signals: [signalText(held)] }), peerStandby),
    0,
    asPrimary(),
  );
  assert.equal(p.situation, 'switchover-requested');
  assert.deepEqual(p.actions, [{ kind: 'switchover', id: 'ab12' }]);
});

test('an announced switchover is not a failure: the standby answers ready and waits, whatever the heartbeats say', () => {
  const announced = standbyLocal({ signals: ['pg-keeper:node1:switchover:ab12:node2'], walReceiver: null });
  let st = syncStandbyState();
  for (const [i, peer] of [peerPrimary(), peerDown, peerDown, peerDown, peerDown].entries()) {
    const d = decide(st, seen(announced, peer), i * 200, asStandby());
    assert.equal(d.situation, 'switchover-expected', `tick ${i}`);
    assert.ok(!d.actions.some((a) => a.kind === 'promote'));
    st = d.state;
    if (i === 0)
      assert.deepEqual(d.actions, [
        { kind: 'signal', signal: { from: 'node2', word: 'ready', id: 'ab12', arg: null } },
      ]);
  }
  const paused = decide(syncStandbyState(), seen(announced, peerPrimary()), 0, asStandby({ paused: true }));
  assert.deepEqual(paused.actions, [
    { kind: 'signal', signal: { from: 'node2', word: 'refused', id: 'ab12', arg: null } },
  ]);
});

test('the standby promotes once it has replayed past the shutdown checkpoint the primary signals', () => {
  const stopped = (replayLsn: string) =>
    seen(
      standbyLocal({ signals: ['pg-keeper:node1:stopped:ab12:0/3000060'], replayLsn, walReceiver: null }),
      peerDown,
    );
  const held = { from: 'node2' as const, word: 'ready' as const, id: 'ab12', arg: null };
  const early = decide(syncStandbyState(), { ...stopped('0/3000060'), held }, 0, asStandby());
  assert.equal(early.situation, 'switchover-expected', 'not yet past the checkpoint record');
  const d = decide(syncStandbyState(), { ...stopped('0/30000D8'), held }, 0, asStandby());
  assert.equal(d.situation, 'switchover-promoting');
  assert.deepEqual(d.actions, [
    { kind: 'promote', restore: '*' },
    { kind: 'run-hook', hook: 'after_command', event: 'promote' },
  ]);
  const withArbiter = decide(
    syncStandbyState(),
    {
      ...stopped('0/30000D8'),
      held,
      arbiter: {
        reachable: true,
        error: null,
        holder: null,
        leaseRemainingMs: null,
        replication: 'sync',
        replicationRevision: 9,
      },
    },
    0,
    asStandby({ arbiter: { ttlMs: 3000, marginMs: 400 } }),
  );
  assert.deepEqual(withArbiter.actions[0], {
    kind: 'claim-lease',
    replicationRevision: 9,
    recordAsync: true,
  });
});

test('once the announcement is gone (the primary keeper aborted or died), the ordinary rules apply again', () => {
  const held = { from: 'node2' as const, word: 'ready' as const, id: 'ab12', arg: null };
  const d = decide(syncStandbyState(), { ...seen(standbyLocal(), peerPrimary()), held }, 0, asStandby());
  assert.equal(d.situation, 'standby-with-primary');
  assert.deepEqual(d.actions, [{ kind: 'signal', signal: null }], 'the answer is withdrawn');
});

test("a promotion is a failover in every situation but a switchover's, and only a failover's time is remembered", () => {
  assert.deepEqual(
    SITUATIONS.filter((s) => !isFailover(s)),
    ['switchover-promoting'],
  );
  const promoted = succeeded({ kind: 'promote', restore: '*' }, 5000);
  const planned = settle(syncStandbyState(), promoted, 'switchover-promoting');
  assert.equal(planned.done.promote, 5000);
  assert.equal(planned.lastFailoverAt, null, 'a switchover is no failover');
  const failover = settle(syncStandbyState(), promoted, 'standby-lost-primary');
  assert.equal(failover.done.promote, 5000);
  assert.equal(failover.lastFailoverAt, 5000);
  const later = settle(failover, succeeded({ kind: 'promote', restore: '*' }, 9000), 'switchover-promoting');
  assert.equal(later.lastFailoverAt, 5000, "a later switchover leaves the failover's time");
  const failed = settle(
    syncStandbyState(),
    { ...promoted, ok: false, error: 'timed out' },
    'standby-lost-primary',
  );
  assert.equal(failed.lastFailoverAt, null, 'a failed promotion is no failover');
});

test('the primary hands over in these words, to a quorum standby too, and says what it does not know', () => {
  const asked = (local: Parameters<typeof primaryLocal>[0]) =>
    decide(initialState(), { ...seen(primaryLocal(local), peerStandby), request }, 0, asPrimary());
  const d = asked({});
  assert.deepEqual(
    { actions: d.actions, severity: d.severity, reason: d.reason },
    {
      actions: [{ kind: 'switchover', id: 'ab12' }],
      severity: 'warn',
      reason: 'switchover ab12: handing the primary over to synchronous standby node2',
    },
  );
  assert.deepEqual(asked({ standbys: [standbyView({ syncState: 'quorum' })] }).actions, [
    { kind: 'switchover', id: 'ab12' },
  ]);
  const refusal = (local: Parameters<typeof primaryLocal>[0]) => {
    const r = asked(local);
    return { actions: r.actions, severity: r.severity, reason: r.reason };
  };
  assert.deepEqual(refusal({ standbys: [standbyView({ state: 'catchup' })] }), {
    actions: [],
    severity: 'warn',
    reason: 'switchover ab12 refused: no standby is synchronous now',
  });
  assert.equal(
    refusal({ standbys: [standbyView({ syncState: 'potential' })] }).reason,
    'switchover ab12 refused: no standby is synchronous now',
  );
  assert.equal(
    refusal({ standbys: [standbyView({ replyAgeMs: null })] }).reason,
    'switchover ab12 refused: standby node2 has not replied for ? ms',
  );
  assert.equal(
    refusal({ standbys: [standbyView({ replayLagBytes: null })] }).reason,
    'switchover ab12 refused: standby node2 is an unknown number of bytes behind (sync_restore_max_lag 1048576)',
  );
});

test("the primary takes a standby's request signal once, and never its own", () => {
  const signal = (from: 'node1' | 'node2') => signalText({ from, word: 'request', id: 'ef56', arg: null });
  const p = (signals: string[], answered: string | null = null) =>
    decide(
      { ...initialState(), answeredSwitchover: answered },
      seen(primaryLocal({ signals }), peerStandby),
      0,
      asPrimary(),
    ).situation;
  assert.equal(p([signal('node2')]), 'switchover-requested');
  assert.notEqual(p([signal('node2')], 'ef56'), 'switchover-requested', 'answered already');
  assert.notEqual(p([signal('node1')]), 'switchover-requested', "this keeper's own signal");
  assert.equal(p(['psql', signal('node2')]), 'switchover-requested', 'other application_names are skipped');
});
