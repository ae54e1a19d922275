// The whole lifecycle on real servers, with the keepers running as the OS user postgres
// (the data directories' owner): an old primary rejoins as the new primary's standby, by
// `pg-keeper rejoin` or by itself (auto_rejoin); a rejoin that could discard acknowledged
// writes is refused; a planned switchover loses nothing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import { CLI, KEEPER_NODE_FLAGS, type KeeperProcess } from '../support/keeper-process.js';
import { usePair, type Setup } from '../support/setup.js';

/** Rewinding needs wal_log_hints; keeping WAL makes the rewind of a crashed server possible. */
const REWINDABLE = { wal_log_hints: 'on', wal_keep_size: '256MB' };

const lifecycle = (extra: Record<string, unknown> = {}) => ({
  osUser: 'postgres',
  pairOptions: { extraConf: REWINDABLE },
  settingsOf: (pair: Setup['pair'], node: NodeName) => ({ data_directory: pair[node].dataDir, ...extra }),
});

/** `pg-keeper <args>` as the OS user postgres, as an operator on the host runs it. */
function cliAsPostgres(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(
    'setpriv',
    [
      '--reuid=postgres',
      '--regid=postgres',
      '--init-groups',
      process.execPath,
      ...KEEPER_NODE_FLAGS,
      CLI,
      ...args,
    ],
    { encoding: 'utf8', timeout: 180_000, env: { ...process.env, PGPASSWORD: '' } },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

async function inRecovery(s: Setup, node: NodeName): Promise<boolean | null> {
  try {
    const [r] = await s.pair.query<{ r: boolean }>(s.pair[node], 'SELECT pg_is_in_recovery() AS r', [], {
      timeoutMs: 3000,
    });
    return r?.r ?? null;
  } catch {
    return null;
  }
}

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
    );
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
