// What the demo says, from samples made by hand: the tracker's notes (a promotion timed from the
// kill that caused it, a rejoin, sync back, a switchover, two primaries, the lease) and the lines
// about the network and the arbiter. The demo itself runs in test/e2e/demo.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeName } from '../../../src/config/config.js';
import type { Status } from '../../../src/http/status.js';
import { Tracker, arbiterLine, networkLine, type DemoSample } from '../../../src/demo/tracker.js';

const T0 = Date.parse('2026-01-01T12:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function status(node: NodeName, over: Partial<Status> = {}): Status {
  const peer = node === 'node1' ? 'node2' : 'node1';
  const base: Status = {
    version: '0',
    cluster: 'demo',
    node,
    peer,
    role: node === 'node1' ? 'primary' : 'standby',
    peer_role: node === 'node1' ? 'standby' : 'primary',
    state: node === 'node1' ? 'primary-with-standby' : 'standby-with-primary',
    sync_mode: node === 'node1' ? 'sync' : 'unknown',
    paused: false,
    alive: true,
    ticks: 1,
    local: { up: true, error: null, timeline: 1, wal_receiver: null, standbys: [] },
    peer_reachable: true,
    peer_error: null,
    peer_is_primary: false,
    consecutive_failures: 0,
    keepalive_count: 3,
    keepalive_time: 1,
    seconds_until_action: null,
    reason: null,
    severity: null,
    decided_at: null,
    last_tick_at: null,
    guards: {
      primary_seen_at: null,
      synchronous_at_last_contact: true,
      failover_requires_sync: true,
      stream_timeout: 3,
      saved_synchronous_standby_names: null,
      may_have_acknowledged_alone: false,
    },
    last_action: null,
    task: null,
    switchover: null,
    last_rejoin_at: null,
    grants_missing: null,
    arbiter: null,
    events: [],
    config: {},
  };
  return { ...base, ...over };
}

const syncStandby = {
  name: 'x',
  state: 'streaming',
  syncState: 'sync',
  replayLagBytes: 0,
  replayLagSeconds: 0,
  replyAgeMs: 0,
  flushLsn: null,
};

function sample(
  at: number,
  s1: Status | null,
  s2: Status | null,
  over: Partial<DemoSample> = {},
): DemoSample {
  return {
    now: at,
    nodes: [
      { node: 'node1', status: s1, heartbeats: null, url: 'http://n1' },
      { node: 'node2', status: s2, heartbeats: null, url: 'http://n2' },
    ],
    network: { state: 'connected', changedAt: T0, proxyPorts: { node1: 1, node2: 2 } },
    arbiter: null,
    writer: null,
    kill: null,
    ...over,
  };
}

const event = (at: number, name: string, detail: string) => ({
  at: iso(at),
  event: name,
  outcome: 'ok' as const,
  detail,
});

test('a promotion after `demo kill` is timed from the kill, asks for a check of the writes, and the rejoin and sync back follow', () => {
  const tr = new Tracker();
  const whole1 = status('node1', {
    local: { up: true, error: null, timeline: 1, wal_receiver: null, standbys: [syncStandby] },
  });
  tr.update(sample(T0, whole1, status('node2')));
  const kill = { node: 'node1' as const, role: 'primary', at: T0 + 1000, pids: [1, 2] };
  const promoted = status('node2', {
    role: 'primary',
    events: [event(T0 + 4000, 'promote', 'primary missed 3 heartbeats in a row: promoting this standby')],
  });
  const lines = tr.update(sample(T0 + 4100, null, promoted, { kill }));
  assert.ok(lines.some((l) => /KILLED: node1 \(the primary\): SIGKILL to 2 PostgreSQL processes/.test(l)));
  assert.ok(lines.some((l) => /PROMOTED: node2 is the new primary, 3000 ms after the kill$/.test(l)));
  assert.deepEqual(tr.checks, ['node2']);

  const rejoined = status('node1', {
    role: 'standby',
    events: [event(T0 + 7000, 'rejoin', 'now a standby of the new primary, by rewind, in 2 s')],
  });
  const whole2 = status('node2', {
    role: 'primary',
    sync_mode: 'sync',
    local: { up: true, error: null, timeline: 2, wal_receiver: null, standbys: [syncStandby] },
    events: promoted.events,
  });
  const later = tr.update(sample(T0 + 9000, rejoined, whole2, { kill }));
  assert.ok(
    later.some((l) =>
      /REJOINED: node1's server rejoined by itself as the new primary's standby \(rewind\), 6000 ms after the kill/.test(
        l,
      ),
    ),
  );
  assert.ok(
    later.some((l) =>
      /SYNC: node2 replicates synchronously to node1 again: the pair is whole, 8000 ms after the kill/.test(
        l,
      ),
    ),
  );
});

test('a planned switchover is not timed from an earlier kill, and says how long the writer waited', () => {
  const tr = new Tracker();
  const kill = { node: 'node1' as const, role: 'primary', at: T0, pids: [1] };
  tr.update(sample(T0 + 100, status('node1'), status('node2'), { kill }));
  const sw = {
    id: 'ab12',
    phase: 'done',
    result: 'ok' as const,
    reason: '',
    started_at: iso(T0 + 60_000),
    ended_at: iso(T0 + 62_000),
  };
  const oldPrimary = status('node2', { role: 'standby', switchover: sw });
  const newPrimary = status('node1', {
    events: [
      event(
        T0 + 61_000,
        'promote',
        'switchover ab12: the primary stopped cleanly at 0/3000000, replayed past it: promoting',
      ),
    ],
  });
  const gap = { from: T0 + 60_500, to: T0 + 61_400, ms: 900, node: 'node1' as const };
  const writer = {
    acked: 10,
    ackedBy: { node1: 5, node2: 5 },
    target: 'node1' as const,
    lastAckAt: gap.to,
    waitingMs: null,
    longest: gap,
    lastError: null,
    notable: [gap],
  };
  const lines = tr.update(sample(T0 + 62_100, newPrimary, oldPrimary, { kill, writer }));
  assert.ok(lines.some((l) => /PROMOTED: node1 is the new primary \(planned switchover\)$/.test(l)));
  assert.ok(
    lines.some((l) =>
      /SWITCHED OVER in 2\.0 s: node1 is the primary, node2 its standby; the writer's longest gap during it: 900 ms/.test(
        l,
      ),
    ),
  );
  assert.ok(lines.some((l) => /WRITER: no write acknowledged for 900 ms/.test(l)));
});

test('without the arbiter, a promotion during a partition is two primaries, and the heal asks for a check of the promoted node', () => {
  const tr = new Tracker();
  const cut = { state: 'partitioned' as const, changedAt: T0 + 1000, proxyPorts: { node1: 1, node2: 2 } };
  tr.update(sample(T0, status('node1'), status('node2')));
  const partitioned = tr.update(sample(T0 + 1100, status('node1'), status('node2'), { network: cut }));
  assert.ok(
    partitioned.some((l) =>
      /PARTITIONED: .*without an arbiter.*two primaries.*--arbiter` prevents this/.test(l),
    ),
  );
  const promoted = status('node2', {
    role: 'primary',
    events: [event(T0 + 5000, 'promote', 'promoting this standby')],
  });
  const lines = tr.update(sample(T0 + 5100, status('node1'), promoted, { network: cut }));
  assert.ok(
    lines.some((l) => /PROMOTED: node2 is the new primary$/.test(l)),
    'not timed from any kill',
  );
  assert.ok(lines.some((l) => /TWO PRIMARIES: node1 and node2 both accept writes/.test(l)));
  tr.checks.length = 0;
  const healed = { state: 'connected' as const, changedAt: T0 + 9000, proxyPorts: { node1: 1, node2: 2 } };
  tr.update(sample(T0 + 9100, status('node1'), promoted, { network: healed }));
  assert.deepEqual(tr.checks, ['node2']);
});

test('the network line says what a partition leads to, with the arbiter and without', () => {
  const cut = { state: 'partitioned' as const, changedAt: T0, proxyPorts: { node1: 1, node2: 2 } };
  const withArbiter = networkLine(
    sample(T0 + 2500, null, null, { network: cut, arbiter: 'http://127.0.0.1:2379' }),
  );
  assert.match(withArbiter, /PARTITIONED for 2\.5 s: .*cannot take the primary's lease.*does not promote/);
  const without = networkLine(sample(T0 + 2500, null, null, { network: cut }));
  assert.match(without, /promotes, and both servers accept writes \(two primaries\)/);
});

test('the lease holder is who the keepers agree holds it, and the tracker notes it only once they agree', () => {
  const arbiter = (holder: NodeName | null, held: boolean): Status['arbiter'] => ({
    up: true,
    reachable: true,
    endpoint: 'http://127.0.0.1:2379',
    error: null,
    holder,
    lease_held: held,
    lease_remaining_seconds: held ? 4.2 : null,
    lease_ttl: 5,
    replication: 'sync',
    renewals: 1,
    renewal_failures: 0,
    leases_lost: 0,
  });
  const s = (h1: NodeName | null, h2: NodeName | null): DemoSample =>
    sample(
      T0,
      status('node1', { arbiter: arbiter(h1, h1 === 'node1') }),
      status('node2', { arbiter: arbiter(h2, false) }),
      {
        arbiter: 'http://127.0.0.1:2379',
      },
    );
  assert.match(arbiterLine(s('node1', 'node1')), /node1 holds the primary's lease \(4\.2 s left/);
  const tr = new Tracker();
  assert.ok(tr.update(s('node1', 'node1')).some((l) => /LEASE: node1 holds/.test(l)));
  assert.ok(!tr.update(s(null, 'node1')).some((l) => /LEASE:/.test(l)), 'the keepers disagree: not news yet');
  assert.ok(tr.update(s(null, null)).some((l) => /LEASE: nobody holds/.test(l)));
});
