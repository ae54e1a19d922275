// The keeper with the least it needs: connected as the role deploy/pg-keeper-role.sql
// creates (no superuser), on real servers. The main cases of the failover suite work with
// it (the stream heartbeat the stream-alive veto relies on, switch to async and back,
// promotion, a rejoin with the rejoin rights); it cannot do what it does not need; and a
// missing grant is named.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { NodeName } from '../../src/config/config.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { cliAsPostgres } from '../support/keeper-process.js';
import { inRecovery, usePair } from '../support/setup.js';
import type { TestPair } from '../support/test-pair.js';

const ROLE_SQL = join(import.meta.dirname, '..', '..', 'deploy', 'pg-keeper-role.sql');
const PASSWORD = 'keeper-role-password-for-tests';

/** psql as the superuser, as an operator applies the shipped file. */
function psql(pair: TestPair, node: NodeName, args: string[]): string {
  const r = spawnSync(
    join(pair.pgBin, 'psql'),
    [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      String(pair[node].port),
      '-U',
      'postgres',
      '-d',
      'postgres',
      ...args,
    ],
    { encoding: 'utf8', env: { ...process.env, PGPASSWORD: pair.password }, timeout: 30_000 },
  );
  assert.equal(r.status, 0, `psql ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function asRole<R extends Record<string, unknown>>(
  pair: TestPair,
  node: NodeName,
  sql: string,
): Promise<R[]> {
  const { queryOnce } = await import('../../src/local-pair/query.js');
  return queryOnce<R>({ ...pair.target(pair[node]), user: 'pgkeeper', password: PASSWORD }, sql, [], 5000);
}

describe('the keeper as the shipped non-superuser role', () => {
  // node2's keeper reaches node1 through a proxy (the veto test cuts it); replication goes direct.
  let proxy: TcpProxy | undefined;
  after(() => proxy?.close());
  const s = usePair({
    osUser: 'postgres',
    pairOptions: { extraConf: { wal_log_hints: 'on', wal_keep_size: '256MB' } },
    prepare: async (pair) => {
      psql(pair, 'node1', ['-v', 'rejoin=on', '-f', ROLE_SQL]);
      psql(pair, 'node1', ['-f', ROLE_SQL, '-v', 'rejoin=on']); // idempotent: a second run is fine
      psql(pair, 'node1', ['-c', `ALTER ROLE pgkeeper PASSWORD '${PASSWORD}'`]);
      psql(pair, 'node1', ['-c', 'CREATE TABLE app_secrets (secret text)']);
      proxy = await TcpProxy.start({ host: '127.0.0.1', port: pair.node1.port });
      await waitFor(
        async () => (await asRole(pair, 'node2', 'SELECT 1 AS one').catch(() => []))[0],
        'the role on node2',
      );
    },
    conninfo: (pair, node) => pair.conninfo(pair[node], { user: 'pgkeeper', password: PASSWORD }),
    peerConninfo: (pair, of) =>
      pair.conninfo(pair[of], {
        user: 'pgkeeper',
        password: PASSWORD,
        ...(of === 'node1' ? { port: String(proxy?.port) } : {}),
      }),
    settingsOf: (pair, node) => ({ data_directory: pair[node].dataDir }),
  });

  test('runs the pair with no missing grant, the stream heartbeat included', async () => {
    const { k1, k2 } = s();
    for (const k of [k1, k2]) {
      const st = await waitFor(async () => {
        const x = await k.status();
        return x.grants_missing !== null ? x : null;
      }, 'the grant check');
      assert.deepEqual(st.grants_missing, [], `${k.node}: ${JSON.stringify(st.grants_missing)}`);
    }
    const st2 = await k2.status();
    assert.ok(
      (st2.local.wal_receiver?.lastMessageAgeMs ?? 1e9) < 2000,
      'the stream heartbeat reaches the standby',
    );
    assert.equal(st2.guards.synchronous_at_last_contact, true);
  });

  test('cannot do what it does not need: read an application table, change another setting', async () => {
    const { pair } = s();
    await assert.rejects(
      asRole(pair, 'node1', 'SELECT * FROM app_secrets'),
      /permission denied for table app_secrets/,
    );
    await assert.rejects(
      asRole(pair, 'node1', "ALTER SYSTEM SET work_mem = '1GB'"),
      /permission denied to set parameter "work_mem"/,
    );
    await assert.rejects(asRole(pair, 'node1', 'CREATE ROLE intruder'), /permission denied to create role/);
    const [r] = await asRole<{ s: boolean }>(
      pair,
      'node1',
      'SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user',
    );
    assert.equal(r?.s, false);
  });

  test('names a missing grant, with the statement that gives it', async () => {
    const { pair } = s();
    psql(pair, 'node1', ['-c', 'REVOKE EXECUTE ON FUNCTION pg_promote(boolean, integer) FROM pgkeeper']);
    try {
      // A second keeper of node1, paused and with a state file of its own: it only checks.
      const k = await s().startKeeper('node1', {
        paused: true,
        state_file: join(s().dir, 'check.state.json'),
      });
      const st = await waitFor(async () => {
        const x = await k.status();
        return x.grants_missing !== null ? x : null;
      }, 'the grant check');
      assert.deepEqual(st.grants_missing, [
        'role pgkeeper cannot promote the standby: GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgkeeper (deploy/pg-keeper-role.sql)',
      ]);
      assert.ok(k.events('missing-grant').length === 1);
      await k.kill();
    } finally {
      psql(pair, 'node1', ['-c', 'GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgkeeper']);
    }
  });

  test('the stream-alive veto reads what it needs: heartbeat path cut, stream alive, no promotion', async () => {
    const { k2 } = s();
    const vetoes = async (): Promise<number> => {
      const m = /^pg_keeper_promotion_vetoes_total\{reason="stream-alive"\} (\d+)$/m.exec(
        await (await k2.get('/metrics')).text(),
      );
      return Number(m?.[1] ?? 0);
    };
    const beats = async (): Promise<number> =>
      Number(
        /^pg_keeper_heartbeats_total\{peer="node1"\} (\d+)$/m.exec(
          await (await k2.get('/metrics')).text(),
        )?.[1] ?? 0,
      );
    await proxy?.cut('blackhole');
    try {
      await waitFor(async () => (await vetoes()) >= 1, 'a stream-alive veto');
      // Watched for two more windows (3 ticks each) and a margin: still a standby.
      const until = (await beats()) + 8;
      const deadline = Date.now() + 30_000;
      while ((await beats()) < until) {
        assert.equal(await inRecovery(s(), 'node2'), true, "node2's server was promoted");
        assert.ok(Date.now() < deadline, "node2's keeper stopped ticking after the veto");
        await sleep(100);
      }
      assert.equal(await inRecovery(s(), 'node2'), true, "node2's server was promoted");
      assert.equal(k2.events('promote').length, 0);
      assert.match((await k2.status()).reason ?? '', /only the heartbeat path is broken/);
    } finally {
      await proxy?.restore();
    }
    await waitFor(async () => (await k2.status()).guards.synchronous_at_last_contact, 'heartbeats again');
  });

  test('switches to async when the standby dies, and back to sync when it returns', async () => {
    const { pair, k1 } = s();
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(async () => (await k1.status()).sync_mode === 'async', 'node1 to go async', 15_000);
    await pair.start(pair.node2);
    await waitFor(async () => (await k1.status()).sync_mode === 'sync', 'sync again', 30_000);
  });

  test('the promotion works, and the old primary rejoins with the rejoin rights (pg_rewind as pgkeeper)', async () => {
    const { pair, k1, k2 } = s();
    await waitFor(async () => (await k2.status()).guards.synchronous_at_last_contact, 'node2 synchronous');
    // The async spell of the test before is covered once the standby flushed past it.
    await waitFor(
      async () => (await k1.status()).guards.may_have_acknowledged_alone === false,
      'the spell covered',
    );
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(async () => (await inRecovery(s(), 'node2')) === false, 'node2 promoted', 30_000);
    assert.equal(k2.events('promote').filter((l) => l.outcome === 'ok').length, 1);
    const r = cliAsPostgres(['rejoin', '--config', k1.configFile]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done in .* \(rewind\)/, 'pg_rewind ran as pgkeeper');
    assert.equal(await inRecovery(s(), 'node1'), true);
  });
});
