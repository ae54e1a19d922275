import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, settle, situationRows } from '../../../src/policy/decide.js';
import { SITUATIONS, initialState, lastAction, type KeeperState } from '../../../src/policy/types.js';
import {
  acted,
  peerDown,
  peerPrimary,
  peerStandby,
  primaryLocal,
  rule,
  run,
  seen,
  silentReceiver,
  standbyLocal,
  standbyView,
  stateAfter,
  succeeded,
  syncStandbyState,
} from './fixtures.js';

const lostStandby = seen(primaryLocal({ standbys: [] }), peerDown);
const lostPrimary = seen(standbyLocal({ walReceiver: silentReceiver }), peerDown);

test('primary switches to async on the count-th failed heartbeat, not before', () => {
  const ds = run(initialState(), lostStandby, 3, rule(200, 3));
  assert.deepEqual(ds[0]?.actions, []);
  assert.deepEqual(ds[1]?.actions, []);
  assert.deepEqual(ds[2]?.actions, [
    { kind: 'switch-to-async', restore: '*' },
    { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
  ]);
  assert.match(ds[2]?.reason ?? '', /missed 3 heartbeats in a row/);
  assert.equal(ds[2]?.state.savedSyncNames, null, 'nothing to restore until the switch succeeded');
});

test('one successful heartbeat resets the count', () => {
  let s = run(initialState(), lostStandby, 2).at(-1)?.state ?? initialState();
  assert.equal(s.failures, 2);
  s = decide(s, seen(primaryLocal(), peerStandby), 400, rule()).state;
  assert.equal(s.failures, 0);
  const d = decide(s, lostStandby, 600, rule());
  assert.equal(d.state.failures, 1);
  assert.deepEqual(d.actions, []);
});

test('a primary whose standby is down from the start is switched one window after start', () => {
  const ds = run(initialState(), lostStandby, 4, rule(200, 4));
  assert.equal(
    ds.findIndex((d) => d.actions.length > 0),
    3,
  );
});

test('keepalive_count 1 acts on the first failure', () => {
  const [d] = run(initialState(), lostStandby, 1, rule(200, 1));
  assert.equal(d?.actions[0]?.kind, 'switch-to-async');
});

test('fractional keepalive_time changes nothing in the counting', () => {
  const ds = run(initialState(), lostStandby, 3, rule(150, 3));
  assert.deepEqual(
    ds.map((d) => d.actions.length > 0),
    [false, false, true],
  );
});

test('a primary already asynchronous does not switch again', () => {
  const async = seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peerDown);
  const ds = run(initialState(), async, 6);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.match(ds[5]?.reason ?? '', /already asynchronous/);
});

test('primary keeps sync while the standby still replies on the replication stream', () => {
  const talking = seen(primaryLocal({ standbys: [standbyView({ replyAgeMs: 100 })] }), peerDown);
  const ds = run(initialState(), talking, 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.match(ds[4]?.reason ?? '', /replied on the replication stream/);
});

test('primary restores sync once the standby streams and has caught up', () => {
  let s = stateAfter(initialState(), lostStandby, 3);
  const back = seen(
    primaryLocal({ syncStandbyNames: '', standbys: [standbyView({ replayLagBytes: 100 })] }),
    peerStandby,
  );
  const d = decide(s, back, 1000, rule());
  assert.deepEqual(d.actions, [{ kind: 'restore-sync', value: '*' }]);
  assert.equal(d.situation, 'primary-restoring-sync');
  assert.match(d.reason, /restoring synchronous replication/);
  s = acted(d.state, d.actions, 1000);
  assert.equal(s.savedSyncNames, null, 'restored: nothing left to restore');
  assert.equal(s.done['restore-sync'], 1000);
  // Once the setting is back, there is nothing left to restore.
  const after = decide(s, seen(primaryLocal(), peerStandby), 1200, rule());
  assert.equal(after.state.savedSyncNames, null);
  assert.deepEqual(after.actions, []);
});

test('primary does not restore sync to a standby that is still far behind', () => {
  const s = stateAfter(initialState(), lostStandby, 3);
  const behind = seen(
    primaryLocal({ syncStandbyNames: '', standbys: [standbyView({ replayLagBytes: 50 * 1024 * 1024 })] }),
    peerStandby,
  );
  const d = decide(s, behind, 1000, rule());
  assert.deepEqual(d.actions, []);
  assert.match(d.reason, /52428800 bytes behind/);
});

test('primary does not restore sync to a standby that streams in name only (frozen: no recent reply)', () => {
  const s = stateAfter(initialState(), lostStandby, 3);
  // pg_stat_replication keeps state 'streaming' for a frozen standby until wal_sender_timeout.
  const frozen = seen(
    primaryLocal({ syncStandbyNames: '', standbys: [standbyView({ replayLagBytes: 0, replyAgeMs: 5000 })] }),
    peerStandby,
  );
  const ds = run(s, frozen, 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'would flap between sync and async',
  );
  assert.match(ds[4]?.reason ?? '', /has not replied for 5000 ms/);
});

test('an operator-chosen asynchronous primary is never switched to sync', () => {
  const d = decide(initialState(), seen(primaryLocal({ syncStandbyNames: '' }), peerStandby), 0, rule());
  assert.deepEqual(d.actions, []);
});

test('standby promotes on the count-th failed heartbeat, not before', () => {
  const ds = run(syncStandbyState(), lostPrimary, 3);
  assert.deepEqual(ds[1]?.actions, []);
  assert.deepEqual(ds[2]?.actions, [
    { kind: 'promote', restore: '*' },
    { kind: 'run-hook', hook: 'after_command', event: 'promote' },
  ]);
  assert.match(ds[2]?.reason ?? '', /promoting this standby/);
  const promoted = acted(ds[2]?.state ?? syncStandbyState(), ds[2]?.actions ?? [], 400);
  assert.equal(promoted.savedSyncNames, '*', 'remembers the value to restore once the old primary returns');
  assert.equal(promoted.role, 'primary');
});

test('a standby cloned from an async primary remembers the configured value to restore after promoting', () => {
  // pg_basebackup copied the primary's postgresql.auto.conf, where the switch to async wrote ''.
  const cloned = seen(
    standbyLocal({ syncStandbyNames: '', configuredSyncStandbyNames: 'node1', walReceiver: null }),
    peerDown,
  );
  const ds = run(syncStandbyState(), cloned, 3);
  assert.deepEqual(ds[2]?.actions[0], { kind: 'promote', restore: 'node1' });
});

test('a standby configured for asynchronous replication has nothing to restore after promoting', () => {
  const asyncPair = seen(
    standbyLocal({ syncStandbyNames: '', configuredSyncStandbyNames: '', walReceiver: null }),
    peerDown,
  );
  const ds = run(syncStandbyState(), asyncPair, 3);
  assert.deepEqual(ds[2]?.actions[0], { kind: 'promote', restore: null });
});

test('a standby whose server is down keeps watching the primary: dropped from its sync list, it will not promote', () => {
  // The standby's server dies; its keeper still reaches the primary, which goes async.
  let st = decide(syncStandbyState(), seen(standbyLocal(), peerPrimary(['node2'])), 0, rule()).state;
  st = decide(st, seen({ up: false, error: 'ECONNREFUSED' }, peerPrimary([])), 200, rule()).state;
  assert.equal(st.syncAtLastContact, false);
  assert.equal(st.primarySeenAt, 200);
  // The server comes back after the primary died: promoting would lose the async commits.
  const ds = run(st, seen(standbyLocal({ walReceiver: null }), peerDown), 3);
  assert.deepEqual(ds[2]?.actions, []);
  assert.equal(ds[2]?.veto, 'not-synchronous');
});

test('a contact older than two ticks and a heartbeat timeout when the primary became unreachable is stale', () => {
  // This keeper was frozen (or down) for 5 s: the primary may have gone async meanwhile.
  const frozen: KeeperState = { ...syncStandbyState(), primarySeenAt: 1000 };
  const r = rule(200, 3);
  let st = frozen;
  const ds = [];
  for (const t of [6000, 6200, 6400]) {
    const d = decide(st, seen(standbyLocal({ walReceiver: null }), peerDown), t, r);
    ds.push(d);
    st = d.state;
  }
  assert.deepEqual(ds[2]?.actions, []);
  assert.equal(ds[2]?.veto, 'not-synchronous');
  assert.match(ds[2]?.reason ?? '', /last contact with the primary was 5000 ms before it became unreachable/);
  const anyway = decide(
    frozen,
    seen(standbyLocal({ walReceiver: null }), peerDown),
    6000,
    rule(200, 1, { failoverRequiresSync: false }),
  );
  assert.equal(anyway.actions[0]?.kind, 'promote', 'failover_requires_sync: false accepts the risk');
});

test('a contact one tick (plus a timed-out heartbeat) before the primary became unreachable is fresh', () => {
  const st = { ...syncStandbyState(), primarySeenAt: 5640 };
  const d = decide(st, seen(standbyLocal({ walReceiver: null }), peerDown), 6000, rule(200, 1));
  assert.equal(d.actions[0]?.kind, 'promote');
  const late = decide(
    { ...st, primarySeenAt: 5400 },
    seen(standbyLocal({ walReceiver: null }), peerDown),
    6000,
    rule(200, 1),
  );
  assert.equal(late.veto, 'not-synchronous', '600 ms: a tick was missed');
});

test('standby that never saw the primary does not promote, and says so once', () => {
  const fresh = { ...initialState(), role: 'standby' as const };
  const ds = run(fresh, lostPrimary, 6);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.deepEqual(
    ds.map((d) => d.veto),
    [undefined, undefined, 'never-saw-primary', undefined, undefined, undefined],
  );
  assert.match(ds[2]?.reason ?? '', /never reached the primary/);
});

test('standby that was asynchronous at last contact does not promote by default', () => {
  const asyncStandby = { ...syncStandbyState(), syncAtLastContact: false };
  const ds = run(asyncStandby, lostPrimary, 3);
  assert.deepEqual(ds[2]?.actions, []);
  assert.equal(ds[2]?.veto, 'not-synchronous');
});

test('failover_requires_sync: false promotes an asynchronous standby', () => {
  const asyncStandby = { ...syncStandbyState(), syncAtLastContact: false };
  const ds = run(asyncStandby, lostPrimary, 3, rule(200, 3, { failoverRequiresSync: false }));
  assert.equal(ds[2]?.actions[0]?.kind, 'promote');
});

test('standby does not promote while its WAL receiver still hears from the primary', () => {
  const pathCut = seen(
    standbyLocal({ walReceiver: { status: 'streaming', lastMessageAgeMs: 150 } }),
    peerDown,
  );
  const ds = run(syncStandbyState(), pathCut, 8);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.equal(ds.filter((d) => d.veto === 'stream-alive').length, 1, 'one veto per run of failures');
  assert.match(ds[7]?.reason ?? '', /only the heartbeat path is broken/);
});

test('standby promotes once the stream, too, has been silent for the window', () => {
  let s = run(syncStandbyState(), seen(standbyLocal(), peerDown), 3).at(-1)?.state ?? syncStandbyState();
  const d = decide(
    s,
    seen(standbyLocal({ walReceiver: { status: 'streaming', lastMessageAgeMs: 650 } }), peerDown),
    600,
    rule(),
  );
  assert.equal(d.actions[0]?.kind, 'promote');
  s = acted(d.state, d.actions, 600);
  assert.deepEqual(lastAction(s), { kind: 'promote', at: 600 });
});

test('a stopped WAL receiver does not veto promotion', () => {
  const stopped = seen(standbyLocal({ walReceiver: null }), peerDown);
  const ds = run(syncStandbyState(), stopped, 3);
  assert.equal(ds[2]?.actions[0]?.kind, 'promote');
});

test('a successful heartbeat starts a new run of failures: vetoes are reported again', () => {
  const pathCut = seen(standbyLocal(), peerDown);
  let s = run(syncStandbyState(), pathCut, 4).at(-1)?.state ?? syncStandbyState();
  s = decide(s, seen(standbyLocal(), peerPrimary()), 0, rule()).state;
  const ds = run(s, pathCut, 3);
  assert.equal(ds[2]?.veto, 'stream-alive');
});

test('standby records whether it was the synchronous standby at each contact', () => {
  const sync = decide(initialState(), seen(standbyLocal(), peerPrimary(['node2'])), 1234, rule());
  assert.equal(sync.state.primarySeenAt, 1234);
  assert.equal(sync.state.syncAtLastContact, true);
  const other = decide(sync.state, seen(standbyLocal(), peerPrimary(['someone-else'])), 1500, rule());
  assert.equal(other.state.syncAtLastContact, false);
  assert.match(other.reason, /asynchronous/);
});

test('two primaries: no action, error every tick', () => {
  const ds = run(initialState(), seen(primaryLocal(), peerPrimary()), 3);
  for (const d of ds) {
    assert.deepEqual(d.actions, []);
    assert.equal(d.severity, 'error');
    assert.equal(d.situation, 'two-primaries');
    assert.match(d.reason, /two primaries/);
  }
});

test('two standbys: no promotion', () => {
  const ds = run(syncStandbyState(), seen(standbyLocal(), peerStandby), 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0 && d.situation === 'standby-with-standby'),
    'standby-with-standby, without action, at every tick',
  );
});

test('paused: a primary says what it would have done and does nothing', () => {
  const ds = run(initialState(), lostStandby, 3, rule(200, 3, { paused: true }));
  assert.deepEqual(ds[2]?.actions, []);
  assert.match(ds[2]?.reason ?? '', /paused: would switch to asynchronous/);
});

test('paused: a standby says it would promote and does not', () => {
  const ds = run(syncStandbyState(), lostPrimary, 3, rule(200, 3, { paused: true }));
  assert.deepEqual(ds[2]?.actions, []);
  assert.equal(ds[2]?.veto, 'paused');
  assert.match(ds[2]?.reason ?? '', /paused: would promote/);
});

test('local server down: no action, the heartbeat count goes on', () => {
  const down = seen({ up: false, error: 'connect ECONNREFUSED' }, peerDown);
  const ds = run(syncStandbyState(), down, 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0 && d.situation === 'local-down'),
    'local-down, without action, at every tick',
  );
  assert.equal(ds[4]?.state.failures, 5);
  assert.equal(ds[4]?.state.role, 'unknown');
});

test('the role comes from the server, not from the configuration', () => {
  const asPrimary = decide(
    { ...initialState(), role: 'standby' },
    seen(primaryLocal(), peerStandby),
    0,
    rule(),
  );
  assert.equal(asPrimary.state.role, 'primary');
  const asStandby = decide(
    { ...initialState(), role: 'primary' },
    seen(standbyLocal(), peerPrimary()),
    0,
    rule(),
  );
  assert.equal(asStandby.state.role, 'standby');
});

test('after promotion, the new primary does not switch to async again for the dead old primary', () => {
  const promoted = { ...syncStandbyState(), failures: 3, savedSyncNames: '*' };
  const ds = run(promoted, seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peerDown), 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.equal(ds[4]?.state.savedSyncNames, '*', 'keeps the value to restore when the old primary returns');
  assert.equal(
    ds[4]?.reason,
    'primary; standby missed 8 heartbeats in a row (keepalive_count 3); replication is already asynchronous; ' +
      'synchronous replication comes back once the standby answers again and has caught up',
  );
});

test('sync is never restored while heartbeats to the standby fail, even if it streams', () => {
  const s = stateAfter(initialState(), lostStandby, 3);
  const streamingButSilent = seen(
    primaryLocal({ syncStandbyNames: '', standbys: [standbyView({ replayLagBytes: 0 })] }),
    peerDown,
  );
  const ds = run(s, streamingButSilent, 5);
  assert.ok(
    ds.every((d) => d.actions.length === 0),
    'no action at any tick',
  );
  assert.deepEqual(
    ds.map((d) => d.situation),
    [
      'primary-lost-standby',
      'primary-lost-standby',
      'primary-lost-standby',
      'primary-lost-standby',
      'primary-lost-standby',
    ],
  );
  // Below the count, too: "wait for keepalive_count" never restores.
  const fresh = { ...s, failures: 0 };
  const d = decide(fresh, streamingButSilent, 0, rule());
  assert.equal(d.situation, 'primary-missing-standby');
  assert.deepEqual(d.actions, []);
});

test('a healthy asynchronous primary says why sync is not back yet', () => {
  const s = stateAfter(initialState(), lostStandby, 3);
  const d = decide(s, seen(primaryLocal({ syncStandbyNames: '', standbys: [] }), peerStandby), 1000, rule());
  assert.equal(d.situation, 'primary-with-standby');
  assert.equal(d.severity, 'warn');
  assert.match(d.reason, /synchronous replication stays off: no standby streams/);
});

test('paused: a primary says it would restore sync and does not', () => {
  const s = stateAfter(initialState(), lostStandby, 3);
  const back = seen(primaryLocal({ syncStandbyNames: '', standbys: [standbyView()] }), peerStandby);
  const d = decide(s, back, 1000, rule(200, 3, { paused: true }));
  assert.equal(d.situation, 'primary-restoring-sync');
  assert.deepEqual(d.actions, []);
  assert.match(d.reason, /paused: would restore synchronous replication/);
});

test('a standby with a slow wal_retrieve_retry_interval is tuned when told to, and only warned otherwise', () => {
  const slow = seen(standbyLocal({ walRetrieveRetryIntervalMs: 5000 }), peerPrimary());
  const tuned = decide(initialState(), slow, 0, rule(200, 3, { tuneWalRetrieveRetryInterval: true }));
  assert.equal(tuned.situation, 'standby-untuned');
  assert.deepEqual(tuned.actions, [{ kind: 'tune-wal-retrieve-retry-interval', ms: 1000 }]);
  assert.equal(tuned.state.primarySeenAt, 0, 'the contact is recorded all the same');
  assert.equal(
    settle(tuned.state, succeeded({ kind: 'tune-wal-retrieve-retry-interval', ms: 1000 }, 5)).done[
      'tune-wal-retrieve-retry-interval'
    ],
    5,
  );
  const warned = decide(initialState(), slow, 0, rule());
  assert.deepEqual(warned.actions, []);
  assert.equal(warned.severity, 'warn');
  assert.match(
    warned.reason,
    /wal_retrieve_retry_interval is 5000 ms: .*tune_wal_retrieve_retry_interval: true/,
  );
  const paused = decide(
    initialState(),
    slow,
    0,
    rule(200, 3, { tuneWalRetrieveRetryInterval: true, paused: true }),
  );
  assert.deepEqual(paused.actions, []);
  assert.match(paused.reason, /paused: would shorten it/);
  const fast = decide(
    initialState(),
    seen(standbyLocal({ walRetrieveRetryIntervalMs: 1000 }), peerPrimary()),
    0,
    rule(),
  );
  assert.equal(fast.situation, 'standby-with-primary');
});

test('a failed action changes nothing the keeper remembers: the next tick decides again', () => {
  const d = run(syncStandbyState(), lostPrimary, 3)[2];
  const promote = d?.actions[0];
  assert.equal(promote?.kind, 'promote');
  const st = settle(d?.state ?? syncStandbyState(), {
    action: { kind: 'promote', restore: '*' },
    ok: false,
    at: 400,
    durationMs: 30_000,
    error: 'pg_promote() did not complete',
  });
  assert.equal(st, d?.state, 'the same state object');
  assert.equal(lastAction(st), null, 'last_action is never a promotion that failed');
  const again = decide(st, lostPrimary, 600, rule());
  assert.equal(again.actions[0]?.kind, 'promote', 'retried at the next tick');
});

test('a switch to async that succeeded remembers what to restore', () => {
  const st = settle(initialState(), succeeded({ kind: 'switch-to-async', restore: 'node2' }, 42));
  assert.equal(st.savedSyncNames, 'node2');
  assert.deepEqual(lastAction(st), { kind: 'switch-to-async', at: 42 });
});

test('every observation falls into exactly one row of the table', () => {
  const locals = {
    down: { up: false as const, error: 'x' },
    laggingPrimary: primaryLocal({ standbys: [standbyView({ syncState: 'async' })] }),
    requestedPrimary: primaryLocal({ signals: ['pg-keeper:node1:request:ab12'] }),
    announcedStandby: standbyLocal({ signals: ['pg-keeper:node1:switchover:ab12:node2'] }),
    stoppedStandby: standbyLocal({
      signals: ['pg-keeper:node1:stopped:ab12:0/2000000'],
      replayLsn: '0/3000000',
    }),
    primary: primaryLocal(),
    asyncPrimary: primaryLocal({ syncStandbyNames: '' }),
    standby: standbyLocal(),
    slowStandby: standbyLocal({ walRetrieveRetryIntervalMs: 5000 }),
  };
  const peers = { down: peerDown, standby: peerStandby, primary: peerPrimary() };
  const view = { reachable: true, error: null, replication: null, replicationRevision: 0 } as const;
  const arbiterViews = [
    undefined,
    { ...view, holder: 'self' as const, leaseRemainingMs: 2500 },
    { ...view, holder: 'self' as const, leaseRemainingMs: 100 },
    { ...view, holder: 'peer' as const, leaseRemainingMs: null },
    { ...view, holder: null, leaseRemainingMs: null },
    { ...view, reachable: false, error: 'x', holder: null, leaseRemainingMs: null },
  ];
  const task = { kind: 'rejoin' as const, step: 'rewinding', detail: '', startedAt: 0 };
  const lifecycles = [
    null,
    { newerPeer: true, ackedAlone: false, task: null },
    { newerPeer: true, ackedAlone: true, task: null },
    { newerPeer: false, ackedAlone: false, task },
    { newerPeer: false, ackedAlone: false, task: { ...task, kind: 'switchover' as const } },
    { newerPeer: false, ackedAlone: false, task: null, request: true },
  ];
  const seenSituations = new Set<string>();
  for (const local of Object.values(locals)) {
    for (const peer of Object.values(peers)) {
      for (const failures of [0, 2, 3, 9]) {
        for (const savedSyncNames of [null, '*']) {
          for (const arbiter of arbiterViews) {
            for (const lifecycle of lifecycles) {
              const r = rule(200, 3, {
                ...(arbiter ? { arbiter: { ttlMs: 3000, marginMs: 540 } } : {}),
                autoRejoin: lifecycle !== null,
              });
              const obs = {
                ...seen(
                  local,
                  lifecycle?.newerPeer && peer.reachable && !peer.inRecovery
                    ? { ...peer, timeline: 2 }
                    : peer,
                ),
                ...(arbiter ? { arbiter } : {}),
                ...(lifecycle?.task ? { task: lifecycle.task } : {}),
                ...(lifecycle?.request ? { request: { id: 'cd34', to: null, at: 1000 } } : {}),
                ...(!local.up && lifecycle
                  ? { server: { running: false, clusterState: 'in production', timeline: 1 } }
                  : {}),
              };
              const state = {
                ...syncStandbyState(),
                failures,
                savedSyncNames,
                mayHaveAckedAlone: lifecycle?.ackedAlone ?? null,
              };
              const d = decide(state, obs, 1000, r);
              assert.ok(SITUATIONS.includes(d.situation), d.situation);
              seenSituations.add(d.situation);
            }
          }
        }
      }
    }
  }
  assert.deepEqual([...seenSituations].sort(), [...SITUATIONS].sort(), 'every row is reachable');
  assert.deepEqual(
    situationRows().map((r) => r.situation),
    [...SITUATIONS],
    'the documented table lists every situation, in classification order',
  );
});
