// What pg_keeper got wrong, proven fixed on real servers: sync comes back by itself, the
// promotion guards hold (and are counted), two primaries are reported, pause holds, and a
// restarted keeper neither forgets a guard nor repeats an action.

import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { peerOf, type NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import type { KeeperProcess } from '../support/keeper-process.js';
import { metric, setUp, tearDown, usePair, waitForEvent, type Setup } from '../support/setup.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';
import type { TestPair } from '../support/test-pair.js';

/** keepalive_time 0.2 s × keepalive_count 3, the keepers' settings (test/support/keeper-process.ts). */
const WINDOW_MS = 200 * 3;
/** Generous on purpose: two cores shared by two servers, two keepers and the test. */
const MARGIN_MS = 2000;

const setting = async (pair: TestPair, node: NodeName, name: string): Promise<string> => {
  const [r] = await queryOnce<{ v: string }>(pair.target(pair[node]), 'SELECT current_setting($1) AS v', [
    name,
  ]);
  return r?.v ?? '';
};
const inRecovery = async (pair: TestPair, node: NodeName): Promise<boolean> => {
  const [r] = await queryOnce<{ r: boolean }>(pair.target(pair[node]), 'SELECT pg_is_in_recovery() AS r');
  return r?.r ?? false;
};
/** Waits until a keeper has completed `n` more ticks: time passing, measured in ticks. */
async function moreTicks(k: KeeperProcess, n: number): Promise<void> {
  const now = (await k.status()).ticks;
  await waitFor(async () => (await k.status()).ticks >= now + n, `${n} more ticks`);
}
/**
 * After a veto: for a whole window plus a margin, and at least keepalive_count + 2 more ticks, the
 * standby's own server stays in recovery and its keeper logs no promotion. A promotion one tick
 * after the veto would be seen here, on the server itself.
 */
async function staysStandby(pair: TestPair, k: KeeperProcess, node: NodeName): Promise<void> {
  // One heartbeat a tick: the counter counts ticks whatever the keeper logs.
  const beats = async (): Promise<number> =>
    (await metric(k, 'pg_keeper_heartbeats_total', `peer="${peerOf(node)}"`)) ?? 0;
  const until = Date.now() + WINDOW_MS + MARGIN_MS;
  const ticks = (await beats()) + 3 + 2;
  const deadline = until + 20_000;
  while (Date.now() < until || (await beats()) < ticks) {
    assert.equal(await inRecovery(pair, node), true, `${node}'s server left recovery: it was promoted`);
    assert.deepEqual(k.events('promote'), [], `${node}'s keeper logged a promotion`);
    assert.ok(Date.now() < deadline, `${node}'s keeper stopped ticking after the veto`);
    await sleep(100);
  }
}
/** Changes settings in a keeper's file and sends SIGHUP; waits for the reload to be logged. */
async function reconfigure(k: KeeperProcess, changes: Record<string, unknown>): Promise<void> {
  writeFileSync(
    k.configFile,
    stringify({ ...(parse(readFileSync(k.configFile, 'utf8')) as object), ...changes }),
  );
  const before = k.events('reload').length;
  k.child.kill('SIGHUP');
  await waitFor(() => k.events('reload').length > before, 'the reload');
}

describe('synchronous replication comes back by itself', () => {
  const s = usePair({
    // Succeeds only when the event reached the command's environment.
    node1Settings: { after_async_command: "env | grep -q '^PG_KEEPER_EVENT=switch-to-async$'" },
  });

  test('after_async_command runs after the switch to async, with the event in its environment', async () => {
    const { pair, k1 } = s();
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(async () => (await k1.status()).sync_mode === 'async', 'the primary to go async');
    await waitFor(() => k1.events('hook-done').length > 0, 'after_async_command to finish');
    const done = k1.events('hook-done')[0];
    assert.equal(done?.hook, 'after_async_command');
    assert.equal(done?.result, 'success');
  });

  test('a rebuilt standby gets sync back once caught up, without a long commit stall', async (t) => {
    const { pair, k1 } = s();
    await queryOnce(pair.target(pair.node1), 'CREATE TABLE IF NOT EXISTS beat (id serial, at timestamptz)');
    const client = new pg.Client({ ...pair.target(pair.node1), connectionTimeoutMillis: 5000 });
    await client.connect();
    let worst = 0;
    let writes = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const t0 = performance.now();
        await client.query('INSERT INTO beat (at) VALUES (now())');
        worst = Math.max(worst, performance.now() - t0);
        writes++;
        await sleep(10);
      }
    })();
    try {
      await pair.rebuildAsStandby(pair.node2, pair.node1);
      await waitForEvent(k1, 'restore-sync');
      const restoredWrites = writes;
      await waitFor(() => writes >= restoredWrites + 20, '20 more synchronous commits');
    } finally {
      stop = true;
      await loop;
      await client.end();
    }
    t.diagnostic(`${writes} commits during the rebuild and restore; worst commit ${Math.round(worst)} ms`);
    assert.ok(worst < 1000, `a commit stalled ${Math.round(worst)} ms`);
    assert.equal(await setting(pair, 'node1', 'synchronous_standby_names'), '*');
    // Reset, not pinned in postgresql.auto.conf: a later edit of postgresql.conf still counts.
    const [pinned] = await queryOnce<{ n: string }>(
      pair.target(pair.node1),
      "SELECT count(*) AS n FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND sourcefile LIKE '%auto.conf'",
    );
    assert.equal(pinned?.n, '0');
    assert.equal(await metric(k1, 'pg_keeper_sync_restores_total'), 1);
    await waitFor(async () => (await k1.status()).sync_mode === 'sync', 'the keeper to report sync');
  });

  test('that standby, cloned while the primary was async, gets sync back after its own promotion', async () => {
    const { pair, k2 } = s();
    // pg_basebackup copied node1's postgresql.auto.conf, where the switch to async wrote ''.
    assert.equal(await setting(pair, 'node2', 'synchronous_standby_names'), '');
    await waitFor(async () => (await k2.status()).guards.synchronous_at_last_contact, 'node2 to be sync');
    await pair.kill(pair.node1, 'SIGKILL');
    await waitForEvent(k2, 'promote');
    assert.equal((await k2.status()).guards.saved_synchronous_standby_names, '*');
    // rebuildAsStandby resolves only once node2 lists node1 as its synchronous standby.
    await pair.rebuildAsStandby(pair.node1, pair.node2);
    await waitForEvent(k2, 'restore-sync');
    assert.equal(await setting(pair, 'node2', 'synchronous_standby_names'), '*');
  });
});

describe('heartbeat path cut while replication still streams', () => {
  let proxy: TcpProxy | undefined;
  const s = usePair({
    prepare: async (pair) => {
      proxy = await TcpProxy.start({ host: '127.0.0.1', port: pair.node1.port });
    },
    // node2's keeper reaches node1 only through the proxy; replication goes direct.
    peerConninfo: (pair, of) =>
      of === 'node1' ? pair.conninfo(pair.node1, { port: String(proxy?.port) }) : pair.conninfo(pair.node2),
  });
  after(() => proxy?.close());

  test('the standby does not promote, and counts one veto', async () => {
    const { pair, k2 } = s();
    await proxy?.cut('blackhole');
    await waitFor(() => k2.events('veto').length > 0, 'a veto');
    await staysStandby(pair, k2, 'node2');
    const st = await k2.status();
    assert.equal(st.role, 'standby');
    assert.match(st.reason ?? '', /WAL receiver heard from the primary .* only the heartbeat path is broken/);
    assert.equal(await inRecovery(pair, 'node2'), true);
    assert.equal(await inRecovery(pair, 'node1'), false);
    assert.equal(await metric(k2, 'pg_keeper_promotion_vetoes_total', 'reason="stream-alive"'), 1);
    assert.equal(k2.events('promote').length, 0);
  });

  test('once the primary freezes too, the standby promotes within stream_timeout', async (t) => {
    const { pair, k2 } = s();
    const frozenAt = Date.now();
    await pair.kill(pair.node1, 'SIGSTOP');
    const ms = (await waitForEvent(k2, 'promote')) - frozenAt;
    t.diagnostic(`promoted ${ms} ms after the freeze (stream_timeout 1.2 s)`);
    assert.ok(ms < 1200 + MARGIN_MS, `took ${ms} ms`);
  });
});

describe('primary degraded to async, then killed', () => {
  const s = usePair();

  test('the standby that was not synchronous does not promote by default', async () => {
    const { pair, k2 } = s();
    await queryOnce(pair.target(pair.node1), "ALTER SYSTEM SET synchronous_standby_names = ''");
    await queryOnce(pair.target(pair.node1), 'SELECT pg_reload_conf()');
    await waitFor(
      async () => !(await k2.status()).guards.synchronous_at_last_contact,
      'node2 to see itself async',
    );
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(() => k2.events('veto').length > 0, 'a veto');
    await staysStandby(pair, k2, 'node2');
    assert.equal((await k2.status()).role, 'standby');
    assert.equal(await metric(k2, 'pg_keeper_promotion_vetoes_total', 'reason="not-synchronous"'), 1);
    assert.match((await k2.status()).reason ?? '', /could lose acknowledged commits/);
  });

  test('failover_requires_sync: false (by SIGHUP) lets it promote', async () => {
    const { pair, k2 } = s();
    await reconfigure(k2, { failover_requires_sync: false });
    await waitForEvent(k2, 'promote');
    assert.equal(await inRecovery(pair, 'node2'), false);
  });
});

describe('a keeper restarted mid-way', () => {
  const s = usePair();
  const hookCommand = (): string => `touch ${join(s().dir, 'hooks')}/ran.$$`;
  before(async () => {
    mkdirSync(join(s().dir, 'hooks'));
    await reconfigure(s().k2, { after_command: hookCommand() });
  });

  const restartK2 = (extraSettings: Record<string, unknown> = {}): Promise<KeeperProcess> =>
    s().startKeeper('node2', { ...extraSettings, after_command: hookCommand() });

  test('without its state file, a keeper that never saw the primary does not promote', async () => {
    const { dir, pair, k2 } = s();
    await waitFor(() => existsSync(join(dir, 'node2.state.json')), 'the state file');
    await k2.kill();
    copyFileSync(join(dir, 'node2.state.json'), join(dir, 'saved.json'));
    rmSync(join(dir, 'node2.state.json'));
    await pair.kill(pair.node1, 'SIGKILL');
    const k = await restartK2();
    await waitFor(
      () => k.events('veto').find((l) => String(l.reason).startsWith('never-saw-primary')),
      'the veto',
    );
    await staysStandby(pair, k, 'node2');
    assert.equal(await metric(k, 'pg_keeper_promotion_vetoes_total', 'reason="never-saw-primary"'), 1);
    await k.kill();
  });

  test('with its state file it remembers the primary, but a contact from before its restart is stale', async () => {
    const { dir, pair } = s();
    copyFileSync(join(dir, 'saved.json'), join(dir, 'node2.state.json'));
    const k = await restartK2();
    const veto = await waitFor(() => k.events('veto')[0], 'the veto');
    assert.match(String(veto.reason), /^not-synchronous: .*this keeper was not watching/);
    await staysStandby(pair, k, 'node2');
    assert.notEqual((await k.status()).guards.primary_seen_at, null, 'the contact was remembered');
    await k.kill();
  });

  test('told to accept the risk, it promotes once; killed and restarted, it does not promote again', async () => {
    const { dir } = s();
    const k = await restartK2({ failover_requires_sync: false });
    await waitForEvent(k, 'promote');
    assert.equal(k.events('promote').length, 1);
    await waitFor(() => readdirSync(join(dir, 'hooks')).length > 0, 'after_command');
    await k.kill(); // SIGKILL right after acting
    const again = await restartK2({ failover_requires_sync: false });
    await waitFor(
      async () => (await again.status()).role === 'primary',
      'the restarted keeper to see a primary',
    );
    await moreTicks(again, 10);
    assert.equal(again.events('promote').length, 0, 'no second promotion');
    assert.equal(readdirSync(join(dir, 'hooks')).length, 1, 'after_command ran once');
    const saved = JSON.parse(readFileSync(join(dir, 'node2.state.json'), 'utf8')) as {
      done: { promote?: number };
    };
    assert.equal(typeof saved.done.promote, 'number', 'the state file remembers the promotion');
    assert.equal((await again.status()).last_action?.kind, 'promote');
  });
});

describe('the primary went async while the standby was away, then died (cascade)', () => {
  test("standby's server down, its keeper watching: the keeper learns it is no longer synchronous", async (t) => {
    const s = await setUp();
    t.after(() => tearDown(s));
    const { pair, k2 } = s;
    await pair.kill(pair.node2, 'SIGKILL');
    await queryOnce(pair.target(pair.node1), 'CREATE TABLE acked_alone (id int)');
    await primaryAloneThenKilledAfter(s, 'acked_alone');
    await pair.start(pair.node2);
    await waitFor(() => k2.events('veto').length > 0, 'a veto');
    // Promoting would lose the write node1 acknowledged alone.
    await staysStandby(pair, k2, 'node2');
    assert.equal((await k2.status()).role, 'standby');
    assert.equal(await metric(k2, 'pg_keeper_promotion_vetoes_total', 'reason="not-synchronous"'), 1);
  });

  test('standby host frozen (server and keeper): its stale contact does not count', async (t) => {
    const s = await setUp();
    t.after(() => tearDown(s));
    const { pair, k2 } = s;
    await pair.kill(pair.node2, 'SIGSTOP');
    k2.child.kill('SIGSTOP');
    try {
      await queryOnce(pair.target(pair.node1), 'CREATE TABLE acked_alone (id int)', [], 15_000);
      await primaryAloneThenKilledAfter(s, 'acked_alone');
    } finally {
      await pair.kill(pair.node2, 'SIGCONT');
      k2.child.kill('SIGCONT');
    }
    await waitFor(() => k2.events('veto').length > 0, 'a veto');
    await staysStandby(pair, k2, 'node2');
    const st = await k2.status();
    assert.equal(st.role, 'standby');
    assert.match(st.reason ?? '', /this keeper was not watching/);
  });
});

/** Waits for the primary to go async, commits one row alone, then kills the primary. */
async function primaryAloneThenKilledAfter(x: Setup, table: string): Promise<void> {
  const { pair, k1 } = x;
  await waitFor(async () => (await k1.status()).sync_mode === 'async', 'the primary to go async');
  await queryOnce(pair.target(pair.node1), `INSERT INTO ${table} VALUES (7)`, [], 5000);
  await pair.kill(pair.node1, 'SIGKILL');
}

describe('two primaries', () => {
  const s = usePair();

  test('an old primary restarted after a failover is reported by both keepers, and nobody acts', async () => {
    const { pair, k1, k2 } = s();
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(async () => (await k2.status()).role === 'primary', 'the failover');
    await pair.start(pair.node1); // comes back as a primary: the split brain an operator must fix
    await waitFor(async () => (await k2.status()).peer_is_primary, 'node2 keeper to see two primaries');
    await waitFor(async () => (await k1.status()).peer_is_primary, 'node1 keeper to see two primaries');
    const errorsBefore = k2.lines.filter((l) => l.level >= 50 && /two primaries/.test(l.msg)).length;
    await waitFor(
      () => k2.lines.filter((l) => l.level >= 50 && /two primaries/.test(l.msg)).length >= errorsBefore + 3,
      'an error line at each tick',
    );
    assert.equal(await metric(k2, 'pg_keeper_peer_is_primary'), 1);
    assert.equal(await metric(k1, 'pg_keeper_peer_is_primary'), 1);
    assert.equal((await k2.get('/primary')).status, 503);
    assert.equal((await k1.get('/primary')).status, 503);
    assert.equal(await metric(k1, 'pg_keeper_async_switches_total'), 0);
    assert.equal(await inRecovery(pair, 'node1'), false);
  });
});

describe('paused', () => {
  const s = usePair({
    node1Settings: { paused: true },
    node2Settings: { tune_wal_retrieve_retry_interval: true },
  });

  test('the standby keeper shortened wal_retrieve_retry_interval at start-up, as configured', async () => {
    const { pair, k2 } = s();
    await waitFor(() => k2.events('tune-wal-retrieve-retry-interval').length > 0, 'the tune event');
    await waitFor(
      async () => (await setting(pair, 'node2', 'wal_retrieve_retry_interval')) === '1s',
      'the new value',
    );
  });

  test('a paused primary keeper says what it would do and does not do it; resuming by SIGHUP acts', async () => {
    const { pair, k1 } = s();
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(
      async () => /paused: would switch to asynchronous/.test((await k1.status()).reason ?? ''),
      'the reason',
    );
    await moreTicks(k1, 5);
    assert.equal(await setting(pair, 'node1', 'synchronous_standby_names'), '*');
    assert.equal(await metric(k1, 'pg_keeper_paused'), 1);
    assert.equal(await metric(k1, 'pg_keeper_promotion_vetoes_total', 'reason="paused"'), 1);
    await reconfigure(k1, { paused: false });
    await waitFor(async () => (await k1.status()).sync_mode === 'async', 'the switch after resuming');
  });
});

describe('a standby keeper with the default settings', () => {
  const s = usePair();

  test('warns at start-up when wal_retrieve_retry_interval could delay promotion', async () => {
    const warned = await waitFor(
      () =>
        s()
          .k2.events('decision')
          .find((l) => l.situation === 'standby-untuned'),
      'the warning',
    );
    assert.equal(warned.level, 40);
    assert.match(String(warned.reason), /wal_retrieve_retry_interval is 5000 ms/);
  });

  test('paused (by SIGHUP), it does not promote when its primary dies, and counts the skip as a paused veto', async () => {
    const { pair, k2 } = s();
    await reconfigure(k2, { paused: true });
    await waitFor(async () => (await k2.status()).paused, 'the keeper to report paused');
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(() => k2.events('veto').length > 0, 'a veto');
    await staysStandby(pair, k2, 'node2');
    assert.match((await k2.status()).reason ?? '', /^paused: would promote this standby/);
    assert.equal(await metric(k2, 'pg_keeper_promotion_vetoes_total', 'reason="paused"'), 1);
  });
});
