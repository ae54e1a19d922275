// `pg-keeper status` as an operator reads it: the members table and the lines that belong to
// the keeper's role, never a guard of another role ("primary seen at never" on a primary).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus, statusUrl } from '../../../src/http/status-command.js';
import type { Status } from '../../../src/http/status.js';

const NOW = Date.parse('2026-01-01T00:00:10.000Z');

function status(over: Partial<Status> = {}): Status {
  return {
    version: '0.1.0',
    cluster: 'main',
    node: 'node1',
    peer: 'node2',
    role: 'primary',
    peer_role: 'standby',
    state: 'primary-with-standby',
    sync_mode: 'sync',
    paused: false,
    alive: true,
    ticks: 10,
    local: {
      up: true,
      error: null,
      timeline: 1,
      wal_receiver: null,
      standbys: [
        {
          name: 'node2',
          state: 'streaming',
          syncState: 'sync',
          replayLagBytes: 2048,
          replayLagSeconds: 0.25,
          replyAgeMs: 100,
          flushLsn: null,
        },
      ],
    },
    peer_reachable: true,
    peer_error: null,
    peer_is_primary: false,
    consecutive_failures: 0,
    keepalive_count: 4,
    keepalive_time: 5,
    seconds_until_action: null,
    reason: 'primary; standby answers heartbeats (synchronous standby node2)',
    severity: 'info',
    decided_at: '2026-01-01T00:00:09.000Z',
    last_tick_at: '2026-01-01T00:00:09.000Z',
    guards: {
      primary_seen_at: null,
      synchronous_at_last_contact: false,
      failover_requires_sync: true,
      stream_timeout: 20,
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
    config: {
      node1_conninfo: 'host=pg1 port=5432 dbname=postgres user=keeper password=********',
      node2_conninfo: 'postgresql://keeper@pg2:5433/postgres',
    },
    ...over,
  };
}

/** The members table's row that starts with `member`, split on runs of two or more spaces. */
function row(text: string, member: string): string[] {
  const line = text.split('\n').find((l) => l.startsWith(member));
  assert.ok(line, `no row for ${member} in:\n${text}`);
  return line.split(/\s{2,}/);
}

test('a healthy primary shows both members, the standby streaming with its lag, and no standby guards', () => {
  const text = formatStatus(status(), NOW);
  assert.deepEqual(row(text, 'node1'), [
    'node1 (this keeper)',
    'pg1:5432',
    'primary',
    'running, replication synchronous',
    '1',
  ]);
  assert.deepEqual(row(text, 'node2'), [
    'node2',
    'pg2:5433',
    'standby',
    'streaming, sync',
    '-',
    '2.0 kB, 0.3 s',
  ]);
  assert.match(text, /^replication +synchronous to node2$/m);
  assert.match(text, /^heartbeats +the peer answers \(every 5 s; acts after 4 failed in a row\)$/m);
  assert.doesNotMatch(text, /never|last contact|primary last seen/);
  assert.doesNotMatch(text, /password|\*{8}/);
});

test('a standby shows its WAL receiver and when it last saw the primary, as its synchronous standby', () => {
  const text = formatStatus(
    status({
      node: 'node2',
      peer: 'node1',
      role: 'standby',
      peer_role: 'primary',
      state: 'standby-with-primary',
      sync_mode: 'unknown',
      local: {
        up: true,
        error: null,
        timeline: 1,
        wal_receiver: { status: 'streaming', lastMessageAgeMs: 300 },
        standbys: [],
      },
      guards: {
        ...status().guards,
        primary_seen_at: '2026-01-01T00:00:08.000Z',
        synchronous_at_last_contact: true,
      },
    }),
    NOW,
  );
  assert.deepEqual(row(text, 'node2').slice(0, 4), [
    'node2 (this keeper)',
    'pg2:5433',
    'standby',
    'streaming, sync (WAL heard 0.3 s ago)',
  ]);
  assert.deepEqual(row(text, 'node1').slice(0, 4), ['node1', 'pg1:5432', 'primary', 'running']);
  assert.match(
    text,
    /^primary last seen +2026-01-01T00:00:08\.000Z \(2\.0 s ago\), as its synchronous standby$/m,
  );
  assert.doesNotMatch(text, /^replication/m);
});

test('a standby that never reached the primary says it will not promote', () => {
  const text = formatStatus(
    status({ role: 'standby', peer_reachable: false, peer_error: 'timeout', peer_role: 'unknown' }),
    NOW,
  );
  assert.match(
    text,
    /^primary last seen +never: this standby will not promote until it has reached the primary$/m,
  );
});

test('after a failover with a dead peer: the peer is unreachable and unknown, the count is past the window', () => {
  const text = formatStatus(
    status({
      node: 'node2',
      peer: 'node1',
      peer_role: 'unknown',
      state: 'primary-lost-standby',
      sync_mode: 'async',
      severity: 'warn',
      local: { up: true, error: null, timeline: 2, wal_receiver: null, standbys: [] },
      peer_reachable: false,
      peer_error: 'connect ECONNREFUSED 10.0.0.11:5432',
      consecutive_failures: 30,
      keepalive_count: 3,
      guards: {
        ...status().guards,
        primary_seen_at: '2026-01-01T00:00:01.000Z',
        saved_synchronous_standby_names: '*',
      },
      last_action: { kind: 'promote', at: '2026-01-01T00:00:02.000Z' },
    }),
    NOW,
  );
  assert.match(text, /^pg-keeper 0\.1\.0, cluster main, on node2: primary-lost-standby \(warn\)$/m);
  assert.deepEqual(row(text, 'node2').slice(2, 5), ['primary', 'running, replication ASYNCHRONOUS', '2']);
  assert.deepEqual(row(text, 'node1').slice(2, 4), ['?', 'UNREACHABLE: connect ECONNREFUSED 10.0.0.11:5432']);
  assert.match(text, /^heartbeats +30 failed in a row, keepalive_count \(3\) reached/m);
  assert.doesNotMatch(text, /30 of 3/);
  assert.match(text, /^sync comes back +synchronous_standby_names = '\*' once the standby streams/m);
  assert.match(text, /^last action +promote at 2026-01-01T00:00:02\.000Z$/m);
  assert.doesNotMatch(text, /primary last seen/);
});

test('failures below the window count down to the action', () => {
  const text = formatStatus(status({ consecutive_failures: 2, seconds_until_action: 10 }), NOW);
  assert.match(text, /^heartbeats +2 of 4 failed in a row; acts in 10\.0 s if they go on/m);
});

test('two primaries and a pause are the first thing said', () => {
  const text = formatStatus(status({ peer_is_primary: true, paused: true }), NOW);
  const [first, second] = text.split('\n');
  assert.match(first ?? '', /^!!! TWO PRIMARIES/);
  assert.match(second ?? '', /^!!! PAUSED/);
});

test('--url takes a URL, HOST:PORT or a bare host (port 9754)', () => {
  assert.equal(statusUrl('http://127.0.0.1:9754').href, 'http://127.0.0.1:9754/status');
  assert.equal(statusUrl('127.0.0.1:9754').href, 'http://127.0.0.1:9754/status');
  assert.equal(statusUrl('pg1').href, 'http://pg1:9754/status');
  assert.equal(statusUrl('[::1]:9000').href, 'http://[::1]:9000/status');
  assert.equal(statusUrl('https://pg1.example.com/').href, 'https://pg1.example.com/status');
  assert.throws(() => statusUrl('http://'), /--url "http:\/\/" is not a URL: give http:\/\/HOST:PORT/);
  assert.throws(() => statusUrl('ftp://pg1'), /http:\/\/ or https:\/\//);
});

test('with the etcd arbiter: who holds the lease and for how long, like Patroni shows its leader lock', () => {
  const text = formatStatus(
    status({
      arbiter: {
        up: true,
        reachable: true,
        endpoint: 'http://127.0.0.1:2379',
        error: null,
        holder: 'node1',
        lease_held: true,
        lease_remaining_seconds: 2.5,
        lease_ttl: 3,
        replication: null,
        renewals: 10,
        renewal_failures: 0,
        leases_lost: 0,
      },
    }),
    NOW,
  );
  assert.match(text, /^arbiter +etcd http:\/\/127\.0\.0\.1:2379 up; lease held by node1 \(2\.5 s left\)$/m);
});

test('a switchover, a refused rejoin and a missing grant are said', () => {
  const text = formatStatus(
    status({
      switchover: {
        id: 'sw-1',
        phase: 'promoting',
        result: 'running',
        reason: '',
        started_at: '2026-01-01T00:00:05.000Z',
        ended_at: null,
      },
      guards: { ...status().guards, may_have_acknowledged_alone: true },
      grants_missing: ['GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgkeeper'],
    }),
    NOW,
  );
  assert.match(text, /^switchover +sw-1 running \(promoting\) since 2026-01-01T00:00:05\.000Z$/m);
  assert.match(text, /^rejoin +REFUSED: this node may have acknowledged commits alone/m);
  assert.match(text, /^MISSING GRANTS +GRANT EXECUTE ON FUNCTION pg_promote/m);
  assert.doesNotMatch(formatStatus(status(), NOW), /switchover|REFUSED|MISSING/);
});
