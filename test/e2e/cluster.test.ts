// End-to-end tests of the local pair (a real primary + synchronous standby on loopback: src/local-pair,
// with the tests' own moves of test/support/test-pair.ts) and of the TCP proxy the keeper tests use to
// cut network paths. Needs the PostgreSQL server binaries
// (scripts/ensure-deps.sh installs them); fails, rather than skips, without them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { freePort } from '../../src/local-pair/free-port.js';
import { findPgBin } from '../../src/local-pair/pg-bin.js';
import { isProcessAlive } from '../../src/util/procfs.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { waitFor } from '../../src/util/wait.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';
import { makeDir, rmDir } from '../support/temp-dir.js';
import { TestPair } from '../support/test-pair.js';

const execFileP = promisify(execFile);
const TEST_TIMEOUT = 30_000;

test('findPgBin finds the PostgreSQL server binaries', () => {
  const bin = findPgBin();
  assert.ok(bin, 'no PostgreSQL binaries: run scripts/ensure-deps.sh or set PG_BIN');
  assert.ok(fs.existsSync(path.join(bin, 'initdb')));
});

/** Listens on 127.0.0.1:port until the returned close() is called; rejects when the port is taken. */
function bind(port: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () =>
      resolve(() => new Promise((done) => srv.close(() => done()))),
    );
  });
}

test('freePort returns distinct ports that can be bound on 127.0.0.1', async () => {
  const ports = [await freePort(), await freePort()];
  for (const port of ports) assert.ok(Number.isInteger(port) && port > 0 && port < 65536, `port ${port}`);
  // Linux picks an ephemeral port at a random offset: the same one twice in a row is a 1 in
  // ~28,000 chance, and a fixed port (a broken freePort) fails at once.
  assert.notEqual(ports[0], ports[1]);
  const closers = [];
  try {
    for (const port of ports) closers.push(await bind(port));
  } finally {
    await Promise.all(closers.map((close) => close()));
  }
});

test('create rejects a non-empty baseDir and leaves it alone', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = makeDir('pgk-');
  t.after(() => rmDir(dir));
  await fsp.writeFile(path.join(dir, 'precious'), 'x');
  await assert.rejects(TestPair.create({ baseDir: dir }), /not empty/);
  assert.equal(await fsp.readFile(path.join(dir, 'precious'), 'utf8'), 'x');
});

describe('the local pair', { timeout: 60_000 }, () => {
  let pair: TestPair;
  let baseDir: string;
  let createdInMs = 0;

  before(async () => {
    baseDir = makeDir('pgk-');
    const t0 = Date.now();
    pair = await TestPair.create({ baseDir });
    createdInMs = Date.now() - t0;
  });

  after(async () => {
    // Normally already destroyed by the last test; destroy() is idempotent.
    await pair?.destroy();
    if (baseDir) rmDir(baseDir);
  });

  test(
    'node1 is primary, node2 a streaming sync standby named node2',
    { timeout: TEST_TIMEOUT },
    async (t) => {
      t.diagnostic(`pair created in ${createdInMs} ms`);
      const [p1] = await pair.query<{ r: boolean }>(pair.node1, 'select pg_is_in_recovery() as r');
      const [p2] = await pair.query<{ r: boolean }>(pair.node2, 'select pg_is_in_recovery() as r');
      assert.equal(p1?.r, false);
      assert.equal(p2?.r, true);
      const rep = await pair.query(
        pair.node1,
        'select application_name, state, sync_state from pg_stat_replication',
      );
      assert.deepEqual(rep, [{ application_name: 'node2', state: 'streaming', sync_state: 'sync' }]);
      assert.notEqual(pair.node1.port, pair.node2.port);
    },
  );

  test('conninfo works with libpq (psql)', { timeout: TEST_TIMEOUT }, async () => {
    const psql = path.join(pair.pgBin, 'psql');
    const { stdout } = await execFileP(psql, ['-XAtc', 'select current_user', pair.conninfo(pair.node2)], {
      env: { PATH: process.env.PATH ?? '' },
      timeout: 10_000,
    });
    assert.equal(stdout.trim(), 'postgres');
    assert.match(pair.conninfo(pair.node1, { application_name: 'x y' }), /application_name='x y'$/);
  });

  test('a commit on node1 is visible on node2', { timeout: TEST_TIMEOUT }, async () => {
    await pair.query(pair.node1, 'create table t (id int primary key, v text)');
    await pair.query(pair.node1, 'insert into t values ($1, $2)', [1, 'hello']);
    await waitFor(
      async () =>
        (await pair.query(pair.node2, 'select v from t where id = 1').catch(() => []))[0]?.v === 'hello',
      'the row on node2',
      5000,
    );
  });

  test(
    'kill(node2, SIGKILL) leaves no process of node2; start() brings it back as sync',
    {
      timeout: TEST_TIMEOUT,
    },
    async () => {
      const before = pair.pids(pair.node2);
      assert.ok(before.length >= 3, `expected postmaster + children, got ${before.join(',')}`);
      await pair.kill(pair.node2, 'SIGKILL');
      assert.deepEqual(
        before.filter((pid) => isProcessAlive(pid)),
        [],
      );
      assert.deepEqual(pair.pids(pair.node2), []);
      await assert.rejects(pair.query(pair.node2, 'select 1', [], { timeoutMs: 1000 }));

      await pair.start(pair.node2);
      await pair.waitForSync(pair.node2, pair.node1, 10_000);
      await pair.query(pair.node1, 'insert into t values (2, $1)', ['after restart']);
    },
  );

  test('kill(node1, SIGSTOP) freezes it; SIGCONT thaws it', { timeout: TEST_TIMEOUT }, async () => {
    await pair.kill(pair.node1, 'SIGSTOP');
    let thawed = false;
    try {
      const t0 = Date.now();
      await assert.rejects(pair.query(pair.node1, 'select 1', [], { timeoutMs: 1000 }), /timed out|timeout/i);
      assert.ok(Date.now() - t0 < 3000, 'the timeout must hold against a frozen server');
      await pair.kill(pair.node1, 'SIGCONT');
      thawed = true;
      assert.deepEqual(await pair.query(pair.node1, 'select 1 as one', [], { timeoutMs: 5000 }), [
        { one: 1 },
      ]);
    } finally {
      if (!thawed) await pair.kill(pair.node1, 'SIGCONT');
    }
  });

  test('the TCP proxy forwards, black-holes and refuses', { timeout: TEST_TIMEOUT }, async (t) => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: pair.node1.port });
    t.after(() => proxy.close());
    const via = { ...pair.target(pair.node1), port: proxy.port };
    assert.deepEqual(await queryOnce(via, 'select 2 as two', [], 3000), [{ two: 2 }]);

    // A connection opened before the cut: its query hangs while black-holed and completes on restore.
    const held = new pg.Client({ ...via, connectionTimeoutMillis: 3000 });
    held.on('error', () => {});
    t.after(() => held.end().catch(() => {}));
    await held.connect();

    await proxy.cut('blackhole');
    const t0 = Date.now();
    await assert.rejects(queryOnce(via, 'select 1', [], 1000), /timed out|timeout/i);
    assert.ok(Date.now() - t0 < 3000);
    const pending = held.query('select 3 as three');
    const early = await Promise.race([
      pending.then(() => 'answered'),
      new Promise((r) => setTimeout(r, 300, 'hung')),
    ]);
    assert.equal(early, 'hung');

    await proxy.restore();
    assert.deepEqual((await pending).rows, [{ three: 3 }]);
    assert.deepEqual(await queryOnce(via, 'select 4 as four', [], 3000), [{ four: 4 }]);

    await proxy.cut('refuse');
    await assert.rejects(queryOnce(via, 'select 1', [], 3000), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ECONNREFUSED');
      return true;
    });
    await proxy.restore();
    assert.deepEqual(await queryOnce(via, 'select 5 as five', [], 3000), [{ five: 5 }]);

    // Replication does not go through the proxy: it kept streaming throughout.
    const rep = await pair.query(pair.node1, 'select state, sync_state from pg_stat_replication');
    assert.deepEqual(rep, [{ state: 'streaming', sync_state: 'sync' }]);
  });

  test('failover: node2 promoted, node1 rebuilt as its sync standby', { timeout: TEST_TIMEOUT }, async () => {
    await pair.stop(pair.node1, 'immediate');
    assert.deepEqual(pair.pids(pair.node1), []);
    await pair.query(pair.node2, 'select pg_promote(true, 20)');
    const [p2] = await pair.query<{ r: boolean }>(pair.node2, 'select pg_is_in_recovery() as r');
    assert.equal(p2?.r, false);

    await pair.rebuildAsStandby(pair.node1, pair.node2);
    const [p1] = await pair.query<{ r: boolean; ci: string }>(
      pair.node1,
      "select pg_is_in_recovery() as r, current_setting('primary_conninfo') as ci",
    );
    assert.equal(p1?.r, true);
    assert.match(p1?.ci ?? '', /application_name=node1\b/);
    assert.match(p1?.ci ?? '', new RegExp(`port=${pair.node2.port}\\b`));
    const rep = await pair.query(pair.node2, 'select application_name, sync_state from pg_stat_replication');
    assert.deepEqual(rep, [{ application_name: 'node1', sync_state: 'sync' }]);

    await pair.query(pair.node2, 'insert into t values (3, $1)', ['after failover']);
    await waitFor(
      async () => (await pair.query(pair.node1, 'select count(*)::int as n from t'))[0]?.n === 3,
      'the rows on node1',
      5000,
    );
  });

  test('destroy() kills every process and removes baseDir', { timeout: TEST_TIMEOUT }, async () => {
    const pids = [...pair.pids(pair.node1), ...pair.pids(pair.node2)];
    assert.ok(pids.length >= 6);
    await pair.kill(pair.node2, 'SIGSTOP'); // destroy must cope with a frozen server
    await pair.destroy();
    assert.deepEqual(
      pids.filter((pid) => isProcessAlive(pid)),
      [],
    );
    assert.equal(fs.existsSync(baseDir), false);
    await pair.destroy(); // idempotent
    await assert.rejects(pair.start(pair.node1), /destroyed/);
  });
});
