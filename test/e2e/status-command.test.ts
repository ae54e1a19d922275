// `pg-keeper status` against real keepers on a real pair: what it says in each role, and
// after a failover whose old primary is dead. The CLI is run as a user runs it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/http/status.js';
import { waitFor } from '../../src/util/wait.js';
import { CLI, type KeeperProcess } from '../support/keeper-process.js';
import { setUp, tearDown, type Setup } from '../support/setup.js';

function status(k: KeeperProcess, ...args: string[]): string {
  // --url as people type it: HOST:PORT, no scheme.
  const r = spawnSync(process.execPath, [CLI, 'status', '--url', k.url.replace('http://', ''), ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The members table's row of `member`, split on runs of two or more spaces. */
function row(text: string, member: string): string[] {
  const line = text.split('\n').find((l) => l.startsWith(member));
  assert.ok(line, `no row for ${member} in:\n${text}`);
  return line.split(/\s{2,}/);
}

describe('pg-keeper status', () => {
  let s: Setup | undefined;
  before(async () => {
    s = await setUp();
  });
  after(() => tearDown(s));

  test('on the primary: both members, the standby streaming synchronously, no standby guards', () => {
    const { pair, k1 } = s as Setup;
    const text = status(k1);
    assert.deepEqual(row(text, 'node1').slice(1, 5), [
      `127.0.0.1:${pair.node1.port}`,
      'primary',
      'running, replication synchronous',
      '1',
    ]);
    assert.deepEqual(row(text, 'node2').slice(1, 4), [
      `127.0.0.1:${pair.node2.port}`,
      'standby',
      'streaming, sync',
    ]);
    // PostgreSQL shows replay_lag NULL once an idle standby has caught up: bytes alone then.
    assert.match(
      row(text, 'node2')[5] ?? '',
      /^\d+(\.\d)? (B|kB|MB)(, \d+\.\d s)?$/,
      'lag in bytes, and in seconds while PostgreSQL measures it',
    );
    assert.match(text, /^replication +synchronous to node2$/m);
    assert.match(text, /^heartbeats +the peer answers/m);
    assert.doesNotMatch(text, /never|primary last seen|false/);
  });

  test('on the standby: its WAL receiver, and the primary last seen with it synchronous', () => {
    const { k2 } = s as Setup;
    const text = status(k2);
    assert.deepEqual(row(text, 'node2').slice(2, 3), ['standby']);
    assert.match(row(text, 'node2')[3] ?? '', /^streaming, sync \(WAL heard \d+\.\d s ago\)$/);
    assert.deepEqual(row(text, 'node1').slice(2, 4), ['primary', 'running']);
    assert.match(text, /^primary last seen +\S+Z \(\d+\.\d s ago\), as its synchronous standby$/m);
    assert.doesNotMatch(text, /^replication/m);
  });

  test('after a failover with a dead old primary: unreachable, role unknown, the count past the window', async () => {
    const { pair, k2 } = s as Setup;
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(async () => {
      const st = await k2.status();
      return st.role === 'primary' && st.consecutive_failures > st.keepalive_count + 3;
    }, 'node2 promoted, and its heartbeats to node1 failing well past keepalive_count');
    const json = JSON.parse(status(k2, '--json')) as Status;
    assert.equal(json.peer_reachable, false);
    assert.equal(json.peer_role, 'unknown', 'a dead peer is not reported as the primary it was');
    const text = status(k2);
    assert.deepEqual(row(text, 'node2').slice(2, 5), ['primary', 'running, replication ASYNCHRONOUS', '2']);
    assert.deepEqual(row(text, 'node1').slice(2, 3), ['?']);
    assert.match(row(text, 'node1')[3] ?? '', /^UNREACHABLE: /);
    assert.match(text, /^heartbeats +\d+ failed in a row, keepalive_count \(3\) reached/m);
    assert.doesNotMatch(text, /\d+ of 3 in a row/);
    assert.match(text, /^last action +promote at /m);
    assert.match(text, /^sync comes back +synchronous_standby_names = /m);
    assert.doesNotMatch(text, /primary last seen/);
  });
});
