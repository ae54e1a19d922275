// The whole lifecycle on real servers, with the keepers running as the OS user postgres
// (the data directories' owner): an old primary rejoins as the new primary's standby, by
// `pg-keeper rejoin` or by itself (auto_rejoin); a rejoin that could discard acknowledged
// writes is refused; a planned switchover loses nothing.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import { CLI, cliAsPostgres, type KeeperProcess } from '../support/keeper-process.js';
import { inRecovery, usePair, type Setup } from '../support/setup.js';
import { CREATE_TABLE_SQL, Workload } from '../chaos/workload.js';

/** Rewinding needs wal_log_hints; keeping WAL makes the rewind of a crashed server possible. */
const REWINDABLE = { wal_log_hints: 'on', wal_keep_size: '256MB' };

const lifecycle = (extra: Record<string, unknown> = {}) => ({
  osUser: 'postgres',
  pairOptions: { extraConf: REWINDABLE },
  settingsOf: (pair: Setup['pair'], node: NodeName) => ({ data_directory: pair[node].dataDir, ...extra }),
});

async function failOver(s: Setup): Promise<void> {
  await s.pair.kill(s.pair.node1, 'SIGKILL');
  await waitFor(async () => (await inRecovery(s, 'node2')) === false, 'node2 to be promoted', 30_000);
}

async function syncAgain(k: KeeperProcess, what: string): Promise<void> {
  await waitFor(
    async () => {
      const st = await k.status();
      return (
        st.role === 'primary' &&
        st.sync_mode === 'sync' &&
        st.local.standbys.some((x) => x.syncState === 'sync')
      );
    },
    what,
    60_000,
  );
}

describe('pg-keeper rejoin', () => {
  const s = usePair(lifecycle());

  test("turns the crashed old primary into the new primary's standby, keeping its own configuration", async () => {
    const { pair, k1, k2 } = s();
    await pair.query(pair.node1, 'CREATE TABLE IF NOT EXISTS before_failover (id int)');
    await failOver(s());
    await pair.query(pair.node2, 'CREATE TABLE after_failover (id int)');
    const confBefore = readFileSync(join(pair.node1.dataDir, 'postgresql.conf'), 'utf8');
    const r = cliAsPostgres(['rejoin', '--config', k1.configFile]);
    assert.equal(r.code, 0, r.out);
    assert.match(
      r.out,
      /checkpoint: .*\n(.|\n)*rewinding: (.|\n)*starting: (.|\n)*done in .* \((rewind|basebackup)\)/,
    );
    assert.equal(await inRecovery(s(), 'node1'), true);
    // Its own port, listen_addresses and the rest: pg_rewind copied node2's files over them.
    assert.equal(readFileSync(join(pair.node1.dataDir, 'postgresql.conf'), 'utf8'), confBefore);
    await syncAgain(k2, "node2's keeper to restore sync with node1 as its standby");
    const [t] = await pair.query<{ n: string }>(
      pair.node1,
      "SELECT count(*) AS n FROM pg_class WHERE relname = 'after_failover'",
      [],
      { timeoutMs: 3000 },
    );
    assert.equal(t?.n, '1', 'the rejoined standby has what the new primary wrote');
  });
});

describe('auto_rejoin', () => {
  const s = usePair(lifecycle({ auto_rejoin: true }));

  test('a crashed primary whose keeper lived rejoins by itself, and sync comes back', async (t) => {
    const { k1, k2 } = s();
    const killedAt = Date.now();
    await failOver(s());
    await waitFor(
      async () => (await inRecovery(s(), 'node1')) === true,
      'node1 to come back as a standby',
      90_000,
    );
    await syncAgain(k2, "node2's keeper to restore sync");
    t.diagnostic(`kill -> node1 streaming synchronously from node2: ${Date.now() - killedAt} ms`);
    const done = await waitFor(() => k1.events('rejoin').find((l) => l.outcome === 'ok'), 'the rejoin event');
    assert.match(String(done.reason), /now a standby of the new primary, by (rewind|basebackup)/);
    const m = await (await k1.get('/metrics')).text();
    assert.match(m, /^pg_keeper_rejoins_total\{result="ok",method="(rewind|basebackup)"\} 1$/m);
    assert.equal((await k1.status()).role, 'standby');
  });

  test('an old primary started again by hand, on the old timeline, rejoins by itself', async () => {
    const { pair, k1, k2 } = s();
    // node2 is the primary since the test before, asynchronous at first: wait until the commits
    // of that spell are on node1 too (else a rejoin would rightly be refused).
    await waitFor(
      async () => (await k2.status()).guards.may_have_acknowledged_alone === false,
      "node2's async spell to be covered",
    );
    // node2 is the primary now. Its whole host goes (server and keeper); node1 takes over;
    // then node2's server is started again by hand, as what it was: a primary on the old
    // timeline, and its keeper after it.
    await Promise.all([pair.kill(pair.node2, 'SIGKILL'), k2.kill()]);
    await waitFor(async () => (await inRecovery(s(), 'node1')) === false, 'node1 to be promoted', 30_000);
    await pair.start(pair.node2);
    assert.equal(await inRecovery(s(), 'node2'), false, 'a stale primary');
    const again = await s().startKeeper('node2');
    await waitFor(
      async () => (await inRecovery(s(), 'node2')) === true,
      'node2 to rejoin as a standby',
      90_000,
    ).catch((err: Error) => {
      const tail = again.lines.slice(-20).map((l) => `${String(l.event)}: ${l.msg}`);
      throw new Error(`${err.message}\n${tail.join('\n')}`);
    });
    await syncAgain(k1, "node1's keeper to restore sync");
    assert.ok(again.events('rejoin').some((l) => l.outcome === 'ok'));
  });
});

describe('a rejoin that would discard acknowledged writes', () => {
  const s = usePair(lifecycle({ auto_rejoin: true }));

  test('is refused and counted, and `pg-keeper rejoin --force` then rejoins', async () => {
    const { pair, k1 } = s();
    // The standby dies; the primary goes async and acknowledges a write alone; then it dies
    // too, and the standby, started again, is promoted by hand (an operator accepting the loss).
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(async () => (await k1.status()).sync_mode === 'async', 'node1 to go async', 15_000);
    await pair.query(pair.node1, 'CREATE TABLE acked_alone (id int)', [], { timeoutMs: 5000 });
    await pair.kill(pair.node1, 'SIGKILL');
    await pair.start(pair.node2);
    await pair.query(pair.node2, 'SELECT pg_promote()', [], { timeoutMs: 10_000 });
    await waitFor(async () => (await inRecovery(s(), 'node2')) === false, 'node2 promoted by hand', 15_000);
    const refused = await waitFor(
      async () => {
        const st = await k1.status();
        return st.state === 'rejoin-refused' ? st : null;
      },
      "node1's keeper to refuse the rejoin",
      15_000,
    );
    assert.match(refused.reason ?? '', /may have acknowledged commits the new primary lacks/);
    const m = await (await k1.get('/metrics')).text();
    assert.match(m, /^pg_keeper_rejoins_total\{result="refused",method="none"\} 1$/m);
    assert.equal(k1.events('rejoin-start').length, 0, 'no rejoin was started');
    const plain = cliAsPostgres(['rejoin', '--config', k1.configFile]);
    assert.equal(plain.code, 1);
    assert.match(
      plain.out,
      /may have acknowledged commits its standby lacks: a rejoin would discard them; not rejoining/,
    );
    const forced = cliAsPostgres(['rejoin', '--config', k1.configFile, '--force']);
    assert.equal(forced.code, 0, forced.out);
    assert.equal(await inRecovery(s(), 'node1'), true);
  });
});

describe('rejoin by a base backup', () => {
  // No wal_log_hints: pg_rewind cannot, and the rejoin falls back to a fresh copy.
  const s = usePair({ ...lifecycle(), pairOptions: { extraConf: {} } });

  test("falls back to pg_basebackup, and the server's own configuration survives it", async () => {
    const { pair, k1, k2 } = s();
    await failOver(s());
    const own = ['postgresql.conf', 'pg_hba.conf'].map((f) =>
      readFileSync(join(pair.node1.dataDir, f), 'utf8'),
    );
    const r = cliAsPostgres(['rejoin', '--config', k1.configFile]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /basebackup: pg_rewind could not .*\n(.|\n)*done in .* \(basebackup\)/);
    const after = ['postgresql.conf', 'pg_hba.conf'].map((f) =>
      readFileSync(join(pair.node1.dataDir, f), 'utf8'),
    );
    assert.deepEqual(after, own);
    assert.equal(await inRecovery(s(), 'node1'), true);
    await syncAgain(k2, "node2's keeper to restore sync");
  });
});

const TOKEN = 'switchover-token-for-tests';

/** `pg-keeper switchover` against a keeper, as an operator runs it (any OS user: it only speaks HTTP). */
function switchoverCli(
  url: string,
  tokenFile: string,
  extra: string[] = [],
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [CLI, 'switchover', '--url', url, '--token-file', tokenFile, ...extra],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('planned switchover', () => {
  const s = usePair(lifecycle({ http_token: TOKEN }));
  let tokenFile = '';
  before(() => {
    tokenFile = join(s().dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
  });

  test('is refused, with the reason, while the standby is behind', async () => {
    const { pair, k1 } = s();
    await pair.query(pair.node2, 'SELECT pg_wal_replay_pause()');
    try {
      await pair.query(pair.node1, 'CREATE TABLE IF NOT EXISTS filler (x text)');
      await pair.query(
        pair.node1,
        "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 5000)",
        [],
        { timeoutMs: 30_000 },
      );
      await waitFor(async () => {
        const st = await k1.status();
        return (st.local.standbys[0]?.replayLagBytes ?? 0) > 1024 * 1024;
      }, 'the standby to fall behind');
      const r = await switchoverCli(k1.url, tokenFile);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /refused: standby node2 is \d+ bytes behind/);
      assert.equal(await inRecovery(s(), 'node1'), false, 'nothing moved');
    } finally {
      await pair.query(pair.node2, 'SELECT pg_wal_replay_resume()');
    }
    await waitFor(
      async () => ((await k1.status()).local.standbys[0]?.replayLagBytes ?? 1e9) < 1024 * 1024,
      'the standby to catch up',
    );
  });

  test('hands the primary over under a continuous write load: nothing lost, and sync again', async (t) => {
    const { pair, k1, k2 } = s();
    // The test before this one has a switchover refused on purpose (logged as failed): only
    // what the keepers log from here on counts at the end.
    const linesBefore = { node1: k1.lines.length, node2: k2.lines.length };
    await pair.query(pair.node1, CREATE_TABLE_SQL);
    const w = new Workload({
      targets: { node1: pair.target(pair.node1), node2: pair.target(pair.node2) },
      first: 'node1',
    });
    w.start();
    try {
      await waitFor(() => w.acked().length > 50, 'writes before the switchover');
      // On a busy machine the standby's replay can fall behind sync_restore_max_lag under the
      // load, and the switchover is then refused, rightly: ask again, as an operator would.
      const r = await waitFor(
        async () => {
          const answer = await switchoverCli(k2.url, tokenFile);
          return /refused: standby node2 is \d+ bytes behind/.test(answer.out) ? null : answer;
        },
        'a switchover not refused for a standby behind',
        60_000,
        500,
      );
      assert.equal(r.code, 0, r.out);
      await waitFor(() => w.acked().some((x) => x.node === 'node2'), 'writes on node2');
      await waitFor(() => w.acked().filter((x) => x.node === 'node2').length > 50, 'more writes on node2');
    } finally {
      await w.stop();
    }
    const acked = w.acked();
    const onNode2 = await idsOn(s(), 'node2');
    const lost = acked.filter((x) => !onNode2.has(x.id)).map((x) => x.id);
    assert.deepEqual(lost, [], 'acknowledged writes lost');
    const main = acked.filter((x) => x.loop === 'main').sort((a, b) => (a.ackAt ?? 0) - (b.ackAt ?? 0));
    const gap = Math.max(...main.slice(1).map((x, i) => (x.ackAt ?? 0) - (main[i]?.ackAt ?? 0)));
    t.diagnostic(`${acked.length} writes acknowledged, none lost; longest write gap ${gap} ms`);
    assert.equal(await inRecovery(s(), 'node1'), true);
    assert.equal(await inRecovery(s(), 'node2'), false);
    await syncAgain(k2, "node2's keeper to be a synchronous primary");
    const m = await (await k1.get('/metrics')).text();
    assert.match(m, /^pg_keeper_switchovers_total\{result="ok"\} 1$/m);
    assert.equal(k2.events('promote').filter((l) => l.outcome === 'ok').length, 1);
    // node2's keeper promoted for the switchover: a promotion, and no failover (PgKeeperFailover
    // is built on these, and must not page).
    const promoted = await (await k2.get('/metrics')).text();
    assert.match(promoted, /^pg_keeper_promotions_total 1$/m);
    assert.match(promoted, /^pg_keeper_failovers_total 0$/m);
    assert.match(promoted, /^pg_keeper_last_failover_timestamp_seconds 0$/m);
    assert.equal(
      k1.events('rejoin').filter((l) => l.outcome === 'ok').length,
      0,
      'no rejoin: the switchover itself brought node1 back',
    );
    // The keeper it was asked of (the standby's) ends its report too, and takes the next one.
    const report = await waitFor(async () => {
      const r = (await k2.status()).switchover;
      return r?.result === 'ok' ? r : null;
    }, "node2's keeper to end its switchover report");
    assert.notEqual(report.ended_at, null);
    assert.match(await (await k2.get('/metrics')).text(), /^pg_keeper_switchover_in_progress 0$/m);
    const back = await switchoverCli(k1.url, tokenFile);
    assert.equal(back.code, 0, `the switch back, asked of node1's keeper: ${back.out}`);
    assert.equal(await inRecovery(s(), 'node1'), false);
    await syncAgain(k1, "node1's keeper to be a synchronous primary again");
    const back1 = await (await k1.get('/metrics')).text();
    assert.match(back1, /^pg_keeper_promotions_total 1$/m);
    assert.match(back1, /^pg_keeper_failovers_total 0$/m, 'the switch back is no failover either');
    // A planned switchover is not a failure: no action failed on either side (an alert would page).
    for (const k of [k1, k2]) {
      const failed = k.lines.slice(linesBefore[k.node]).filter((l) => l.outcome === 'failed');
      assert.deepEqual(failed, [], `actions that failed on ${k.node}'s keeper during the switchovers`);
    }
  });
});

describe('a switchover whose primary dies in the middle', () => {
  const s = usePair(lifecycle({ http_token: TOKEN }));

  test('still ends with one primary and nothing lost', async () => {
    const { pair, k1, k2 } = s();
    await pair.query(pair.node1, CREATE_TABLE_SQL);
    const w = new Workload({
      targets: { node1: pair.target(pair.node1), node2: pair.target(pair.node2) },
      first: 'node1',
    });
    w.start();
    try {
      await waitFor(() => w.acked().length > 50, 'writes');
      const asked = await k1.get('/switchover', {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(asked.status, 202);
      // node1's host goes as soon as the switchover is announced: server and keeper.
      await waitFor(
        async () => (await k2.status()).state === 'switchover-expected',
        "node2's keeper to expect the switchover",
        10_000,
        5,
      );
      await Promise.all([pair.kill(pair.node1, 'SIGKILL'), k1.kill()]);
      await waitFor(async () => (await inRecovery(s(), 'node2')) === false, 'node2 to take over', 30_000);
      await waitFor(() => w.acked().some((x) => x.node === 'node2'), 'writes on node2');
    } finally {
      await w.stop();
    }
    const onNode2 = await idsOn(s(), 'node2');
    assert.deepEqual(
      w
        .acked()
        .filter((x) => !onNode2.has(x.id))
        .map((x) => x.id),
      [],
      'acknowledged writes lost',
    );
  });
});

async function idsOn(s: Setup, node: NodeName): Promise<Set<number>> {
  const rows = await s.pair.query<{ id: string }>(s.pair[node], 'SELECT id FROM chaos_writes', [], {
    timeoutMs: 30_000,
  });
  return new Set(rows.map((r) => Number(r.id)));
}
