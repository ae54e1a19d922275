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
