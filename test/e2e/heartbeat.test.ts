// The heartbeat against real servers: the conninfo it is given reaches the right server,
// and a peer that hangs or drops packets fails within heartbeat_timeout instead of
// blocking the keeper (pg_keeper 1.0 had no timeout at all). Then reloads (SIGHUP) of a
// running keeper: an invalid file, and a change that needs a restart.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { parseConninfo } from '../../src/config/conninfo.js';
import { freePort } from '../../src/local-pair/free-port.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { toPgClientConfig } from '../../src/postgres/client-config.js';
import { heartbeat } from '../../src/postgres/peer.js';
import { PgSession } from '../../src/postgres/session.js';
import { waitFor } from '../../src/util/wait.js';
import { usePair } from '../support/setup.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';
import { makeDir, rmDir } from '../support/temp-dir.js';
import { TestPair } from '../support/test-pair.js';

/**
 * A heartbeat given a timeout returns within it and at most this much more: room for a busy
 * shared machine's event-loop delays, and still far from what is tested against (no bound at
 * all: a black hole holds a connection for minutes).
 */
const OVERRUN_MS = 800;

describe('heartbeat', () => {
  let dir = '';
  let pair: TestPair | undefined;
  let proxy: TcpProxy | undefined;
  before(async () => {
    dir = makeDir();
    pair = await TestPair.create({ baseDir: join(dir, 'pg') });
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: pair.node2.port });
  });
  after(async () => {
    await proxy?.close();
    await pair?.destroy();
    if (dir) rmDir(dir);
  });

  const sessionTo = (conninfo: string): PgSession =>
    new PgSession(toPgClientConfig(parseConninfo(conninfo)), 'test peer');

  test("a keyword/value conninfo with quoted values reaches the server it names (node-postgres' parser would not)", async () => {
    const p = pair as TestPair;
    const ci = `host=127.0.0.1 port=${p.node2.port} dbname='postgres' application_name='keeper one' user=postgres password='${p.password}'`;
    const s = sessionTo(ci);
    try {
      const [row] = await s.query<{ port: string; app: string; db: string }>(
        "SELECT current_setting('port') AS port, current_setting('application_name') AS app, current_database() AS db",
        [],
        5000,
      );
      assert.deepEqual(row, { port: String(p.node2.port), app: 'keeper one', db: 'postgres' });
    } finally {
      s.close();
    }
  });

  test('a heartbeat tells a primary from a standby, and lists the synchronous standbys', async () => {
    const p = pair as TestPair;
    const toPrimary = sessionTo(p.conninfo(p.node1));
    const toStandby = sessionTo(p.conninfo(p.node2));
    try {
      const primary = await heartbeat(toPrimary, 2000);
      const standby = await heartbeat(toStandby, 2000);
      assert.ok(primary.reachable && standby.reachable);
      assert.equal(primary.inRecovery, false);
      assert.deepEqual(primary.synchronousStandbys, ['node2']);
      assert.equal(standby.inRecovery, true);
    } finally {
      toPrimary.close();
      toStandby.close();
    }
  });

  test('a port that drops packets fails the heartbeat within its timeout, and it recovers', async () => {
    const p = pair as TestPair;
    const px = proxy as TcpProxy;
    const s = sessionTo(p.conninfo(p.node2, { port: String(px.port) }));
    try {
      assert.equal((await heartbeat(s, 2000)).reachable, true);
      await px.cut('blackhole');
      const t0 = performance.now();
      const cut = await heartbeat(s, 200);
      const ms = performance.now() - t0;
      assert.equal(cut.reachable, false);
      assert.ok(ms < 200 + OVERRUN_MS, `the heartbeat took ${Math.round(ms)} ms with a 200 ms timeout`);
      // A new connection to a black hole is bounded too.
      const t1 = performance.now();
      assert.equal((await heartbeat(s, 200)).reachable, false);
      const ms1 = performance.now() - t1;
      assert.ok(
        ms1 < 200 + OVERRUN_MS,
        `the new connection took ${Math.round(ms1)} ms with a 200 ms timeout`,
      );
      await px.restore();
      await waitFor(async () => (await heartbeat(s, 1000)).reachable, 'the heartbeat to succeed again');
    } finally {
      s.close();
    }
  });

  test('a frozen server (every process stopped) fails the heartbeat within its timeout', async () => {
    const p = pair as TestPair;
    const s = sessionTo(p.conninfo(p.node2));
    try {
      assert.equal((await heartbeat(s, 2000)).reachable, true);
      await p.kill(p.node2, 'SIGSTOP');
      const t0 = performance.now();
      const r = await heartbeat(s, 200);
      const ms = performance.now() - t0;
      assert.equal(r.reachable, false);
      // The message gives what was left of the deadline when the query was sent: 200 ms or a little less.
      assert.ok(!r.reachable && /did not answer within (1\d\d|200) ms/.test(r.error), JSON.stringify(r));
      assert.ok(ms < 200 + OVERRUN_MS, `took ${Math.round(ms)} ms`);
    } finally {
      await p.kill(p.node2, 'SIGCONT');
      s.close();
    }
  });
});

describe('SIGHUP', () => {
  const s = usePair();

  test('a change of restart-only keys (listen, state_file) is kept out, and the reload line names them', async () => {
    const { dir, k1 } = s();
    const original = readFileSync(k1.configFile, 'utf8');
    const cfg = parse(original) as Record<string, unknown>;
    writeFileSync(
      k1.configFile,
      stringify({
        ...cfg,
        listen: `127.0.0.1:${await freePort()}`,
        state_file: join(dir, 'moved.state.json'),
      }),
    );
    try {
      const reloads = k1.events('reload').length;
      k1.child.kill('SIGHUP');
      const line = await waitFor(() => k1.events('reload')[reloads], 'the reload line');
      const ignored = line.ignored as string[];
      assert.ok(Array.isArray(ignored), `the reload line's "ignored" field: ${JSON.stringify(line)}`);
      assert.ok(ignored.includes('listen'), `ignored: ${ignored.join(', ')}`);
      // Kept: the keeper still answers where it listened, and goes on ticking.
      assert.equal((await k1.get('/health')).status, 200);
      const before = Date.parse((await k1.status()).last_tick_at as string);
      await waitFor(
        async () => Date.parse((await k1.status()).last_tick_at as string) > before,
        'a tick after the reload',
      );
    } finally {
      writeFileSync(k1.configFile, original);
    }
  });

  test('the reload line names a restart-only key as it is written in the file (state_file)', () => {
    const { k1 } = s();
    const line = k1.events('reload')[0];
    assert.ok((line?.ignored as string[] | undefined)?.includes('state_file'), JSON.stringify(line));
    assert.match(String(line?.msg), /these need a restart and were kept: .*state_file/);
  });

  test('an invalid file keeps the running configuration and says why', async () => {
    const { k1, pair } = s();
    const good = readFileSync(k1.configFile, 'utf8');
    assert.match(good, /^keepalive_count: 3$/m);
    writeFileSync(k1.configFile, good.replace(/^keepalive_count: 3$/m, 'keepalive_count: many'));
    k1.child.kill('SIGHUP');
    const failed = await waitFor(() => k1.events('reload-failed')[0], 'the reload-failed line');
    assert.match(String(failed.msg), /keeping the old one: .*key "keepalive_count"/);
    const st = await k1.status();
    assert.equal(st.keepalive_count, 3);
    assert.equal(st.alive, true);
    // Still acting on the old rule: the standby's loss is handled.
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(async () => (await k1.status()).sync_mode === 'async', 'the switch to async');
    const [row] = await queryOnce<{ n: string }>(pair.target(pair.node1), 'SELECT 1::text AS n');
    assert.equal(row?.n, '1');
  });
});
