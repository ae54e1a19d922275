// The HTTP contract (docs/HTTP.md) against two real keeper processes on a real pair, through
// every role a keeper can be in: primary with its synchronous standby, the standby, the
// primary after its standby died (async), and both sides of a failover. One pair for the
// whole file; the phases run in order and each one waits for the keepers to settle.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import type { KeeperProcess } from '../support/keeper-process.js';
import { countSeries, documentedSeriesCounts } from '../support/metrics-reference.js';
import { usePair, type Setup } from '../support/setup.js';
import { TcpProxy } from '../../src/local-pair/tcp-proxy.js';

const TOKEN = 'e2e-token-0123456789abcdef';
/** Every /status and /metrics body seen, to look for the password at the end. */
const seen: string[] = [];
/** Settling after a kill takes one window (0.6 s) plus a tick or two; the machine is shared. */
const SETTLE_MS = 20_000;

type Check = 'primary' | 'replica' | 'read-only' | 'sync' | 'async';
/** Every path of each Patroni-style check, aliases included. */
const CHECK_PATHS: Record<Check, string[]> = {
  primary: ['/primary', '/master', '/read-write'],
  replica: ['/replica'],
  'read-only': ['/read-only'],
  sync: ['/sync', '/synchronous'],
  async: ['/async', '/asynchronous'],
};
type Expected = Record<Check, 200 | 503>;

const ALL_DOWN: Expected = { primary: 503, replica: 503, 'read-only': 503, sync: 503, async: 503 };
const SYNC_PRIMARY: Expected = { primary: 200, replica: 503, 'read-only': 200, sync: 503, async: 503 };
const SYNC_STANDBY: Expected = { primary: 503, replica: 200, 'read-only': 200, sync: 200, async: 503 };
/** A primary without standby answers the checks as a synchronous one: they describe the local server. */
const ASYNC_PRIMARY = SYNC_PRIMARY;
const ASYNC_STANDBY: Expected = { primary: 503, replica: 200, 'read-only': 200, sync: 503, async: 200 };

async function waitForSyncPair({ k1, k2 }: Setup): Promise<void> {
  await waitFor(
    async () => {
      const s = await k1.status();
      return s.role === 'primary' && s.sync_mode === 'sync';
    },
    'node1 keeper to see a synchronous primary',
    SETTLE_MS,
  );
  await waitFor(
    async () => {
      const s = await k2.status();
      return (
        s.role === 'standby' &&
        (s.guards as { synchronous_at_last_contact: boolean }).synchronous_at_last_contact
      );
    },
    'node2 keeper to see itself as the synchronous standby',
    SETTLE_MS,
  );
}

/** What differs from `expected` on every check path, with GET, HEAD and OPTIONS; plus /health and friends. */
async function differences(k: KeeperProcess, expected: Expected, health: 200 | 503 = 200): Promise<string[]> {
  const found: string[] = [];
  const probe = async (path: string, method: string, want: number): Promise<void> => {
    const res = await k.get(path, { method });
    const body = await res.text();
    if (res.status !== want) found.push(`${method} ${path} -> ${res.status}, expected ${want}`);
    if (method === 'HEAD' && body !== '') found.push(`HEAD ${path} has a body`);
    if (method !== 'HEAD' && path !== '/metrics') {
      const json = JSON.parse(body) as { ok?: boolean };
      if ('ok' in json && json.ok !== (want === 200)) found.push(`${method} ${path} body says ok=${json.ok}`);
    }
  };
  for (const [check, paths] of Object.entries(CHECK_PATHS) as [Check, string[]][]) {
    for (const path of paths) {
      // HAProxy set-ups written for Patroni probe with any of the three.
      for (const method of ['GET', 'HEAD', 'OPTIONS']) await probe(path, method, expected[check]);
    }
  }
  for (const method of ['GET', 'HEAD', 'OPTIONS']) await probe('/health', method, health);
  for (const path of ['/status', '/metrics']) {
    for (const method of ['GET', 'HEAD']) await probe(path, method, 200);
  }
  return found;
}

/** Polls until every endpoint answers as expected (the keepers settle a tick or two after a change). */
async function expectEndpoints(k: KeeperProcess, expected: Expected, what: string): Promise<void> {
  await waitFor(
    async () => {
      const diff = await differences(k, expected);
      if (diff.length > 0) throw new Error(diff.join('; '));
      return true;
    },
    what,
    SETTLE_MS,
    100,
  );
}

async function remember(s: Setup): Promise<void> {
  for (const k of [s.k1, s.k2]) {
    for (const path of ['/status', '/metrics']) seen.push(await (await k.get(path)).text());
  }
}

const post = (k: KeeperProcess, path: string, init: RequestInit = {}): Promise<Response> =>
  k.get(path, { method: 'POST', ...init });
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
async function metricsText(k: KeeperProcess): Promise<string> {
  return (await k.get('/metrics')).text();
}

describe('HTTP endpoints of running keepers', { timeout: 120_000 }, () => {
  const s = usePair({ node2Settings: { http_token: TOKEN } });

  test('primary keeper (sync) and standby keeper: every check, with GET, HEAD and OPTIONS', async () => {
    const x = s();
    await expectEndpoints(x.k1, SYNC_PRIMARY, 'node1 keeper to answer as a synchronous primary');
    await expectEndpoints(x.k2, SYNC_STANDBY, 'node2 keeper to answer as the synchronous standby');
    // The body says what the check saw.
    const body = (await (await x.k1.get('/primary')).json()) as Record<string, unknown>;
    assert.deepEqual(body, { check: 'primary', ok: true, node: 'node1', role: 'primary', sync_mode: 'sync' });
    const health = await x.k2.get('/health');
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', node: 'node2' });
    await remember(x);
  });

  test('/status holds the keeper view as JSON', async () => {
    const { k1, k2 } = s();
    const res = await k1.get('/status');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const st = (await res.json()) as Record<string, unknown>;
    for (const key of [
      'node',
      'role',
      'state',
      'sync_mode',
      'peer_reachable',
      'consecutive_failures',
      'reason',
      'events',
      'config',
      'last_tick_at',
    ]) {
      assert.ok(key in st, `/status has no "${key}"`);
    }
    assert.equal(st.node, 'node1');
    assert.equal(st.peer, 'node2');
    assert.equal(st.role, 'primary');
    assert.equal(st.state, 'primary-with-standby');
    assert.equal(st.sync_mode, 'sync');
    assert.equal(st.peer_reachable, true);
    assert.equal(st.consecutive_failures, 0);
    assert.equal(st.keepalive_count, 3);
    assert.equal(st.keepalive_time, 0.2);
    assert.equal(typeof st.reason, 'string');
    assert.ok(Array.isArray(st.events));
    assert.ok(!Number.isNaN(Date.parse(st.last_tick_at as string)));
    const config = st.config as Record<string, unknown>;
    assert.equal(config.node, 'node1');
    assert.match(config.node1_conninfo as string, /password=\*+/);
    assert.match(config.node2_conninfo as string, /password=\*+/);
    assert.equal(config.http_token, null);

    const st2 = await k2.status();
    assert.equal(st2.role, 'standby');
    // The test pair keeps PostgreSQL's default wal_retrieve_retry_interval (5 s): a warning.
    assert.equal(st2.state, 'standby-untuned');
    assert.equal((st2.config as Record<string, unknown>).http_token, '********');
  });

  test('pause and resume: off without http_token, bearer token required with one', async () => {
    const x = s();
    const { k1, k2 } = x;
    // node1's keeper has no token: the state-changing endpoints are off, whatever is sent.
    for (const path of ['/pause', '/resume']) {
      assert.equal((await post(k1, path)).status, 403, `${path} without http_token`);
      assert.equal((await post(k1, path, { headers: bearer(TOKEN) })).status, 403, `${path} with a token`);
    }
    assert.equal((await k1.status()).paused, false);

    // node2's keeper has one.
    const none = await post(k2, '/pause');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await post(k2, '/pause', { headers: bearer(`${TOKEN}x`) })).status, 401, 'wrong token');
    assert.equal((await post(k2, '/pause', { headers: bearer(TOKEN.slice(0, -1)) })).status, 401, 'prefix');
    assert.equal((await post(k2, '/pause', { headers: { authorization: TOKEN } })).status, 401, 'no scheme');
    assert.equal((await k2.status()).paused, false, 'a refused request changed nothing');

    try {
      const ok = await post(k2, '/pause', { headers: bearer(TOKEN) });
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), { paused: true });
      const st = await k2.status();
      assert.equal(st.paused, true);
      assert.ok(
        (st.events as { event: string }[]).some((e) => e.event === 'pause'),
        'the pause is in the events',
      );
      assert.match(await metricsText(k2), /^pg_keeper_paused 1$/m);
      await remember(x);
    } finally {
      const resumed = await post(k2, '/resume', { headers: bearer(TOKEN) });
      assert.equal(resumed.status, 200);
      assert.deepEqual(await resumed.json(), { paused: false });
    }
    assert.equal((await k2.status()).paused, false);
    assert.match(await metricsText(k2), /^pg_keeper_paused 0$/m);
  });

  test('bad input: 404, 405 with Allow, 431, 413, 400, and the loop keeps ticking', async () => {
    const { k2 } = s();
    const before = (await k2.status()).last_tick_at as string;

    const unknown = await k2.get('/no-such-path');
    assert.equal(unknown.status, 404);
    assert.equal((await post(k2, '/no-such-path', { headers: bearer(TOKEN) })).status, 404);

    const wrong: [string, string, string][] = [
      ['POST', '/metrics', 'GET, HEAD'],
      ['DELETE', '/status', 'GET, HEAD'],
      ['GET', '/pause', 'POST'],
      ['GET', '/resume', 'POST'],
      ['PUT', '/primary', 'GET, HEAD, OPTIONS'],
      ['POST', '/replica', 'GET, HEAD, OPTIONS'],
      ['POST', '/health', 'GET, HEAD, OPTIONS'],
    ];
    for (const [method, path, allow] of wrong) {
      const res = await k2.get(path, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow, `Allow of ${path}`);
    }

    // Node's header limit is set to 16 KB.
    const bigHeader = await k2.get('/health', { headers: { 'x-filler': 'a'.repeat(20 * 1024) } });
    assert.equal(bigHeader.status, 431);

    const json = { 'content-type': 'application/json', ...bearer(TOKEN) };
    const bigBody = await post(k2, '/pause', {
      headers: json,
      body: JSON.stringify({ note: 'x'.repeat(1024 * 1024) }),
    });
    assert.equal(bigBody.status, 413);
    const malformed = await post(k2, '/pause', { headers: json, body: '{"note": ' });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'entity.parse.failed');
    assert.equal((await k2.status()).paused, false, 'a rejected body did not pause');
    // Without the token the body is never read: 401 first.
    assert.equal(
      (await post(k2, '/pause', { headers: { 'content-type': 'application/json' }, body: '{' })).status,
      401,
    );

    assert.equal((await k2.get('/health')).status, 200);
    await waitFor(
      async () => Date.parse((await k2.status()).last_tick_at as string) > Date.parse(before),
      'the loop to tick after the bad requests',
      5000,
    );
    await expectEndpoints(k2, SYNC_STANDBY, 'node2 keeper to answer as before the bad requests');
  });

  test('before its first tick, a keeper fails every check and /health answers 200', async () => {
    const { dir, pair, startKeeper } = s();
    // Its first tick cannot end: its own server is behind a black hole, and the tick waits out
    // heartbeat_timeout (8 s) for it.
    const hole = await TcpProxy.start({ host: '127.0.0.1', port: pair.node2.port });
    try {
      await hole.cut('blackhole');
      const early = await startKeeper('node2', {
        node2_conninfo: pair.conninfo(pair.node2, { port: String(hole.port) }),
        keepalive_time: 10,
        state_file: join(dir, 'early.state.json'),
      });
      try {
        assert.deepEqual(await differences(early, ALL_DOWN), []);
        const st = await early.status();
        assert.equal(st.last_tick_at, null, 'the first tick has not ended');
        assert.equal(st.role, 'unknown');
        assert.equal(st.state, 'starting');
        const text = await metricsText(early);
        assert.match(text, /^pg_keeper_last_tick_timestamp_seconds 0$/m);
        assert.equal(
          countSeries(text),
          documentedSeriesCounts().beforeFirstTick,
          'docs/METRICS.md series count',
        );
      } finally {
        await early.kill();
      }
    } finally {
      await hole.close();
    }
  });

  test('a streaming standby that is not synchronous: /async 200, /sync 503', async () => {
    const x = s();
    const primary = x.pair.target(x.pair.node1);
    // The operator's setting, not the keeper's switch: the keeper leaves it alone.
    await queryOnce(primary, "ALTER SYSTEM SET synchronous_standby_names = ''");
    await queryOnce(primary, 'SELECT pg_reload_conf()');
    try {
      await expectEndpoints(x.k2, ASYNC_STANDBY, 'node2 keeper to answer as an asynchronous standby');
      await expectEndpoints(x.k1, ASYNC_PRIMARY, 'node1 keeper to answer as a primary');
    } finally {
      await queryOnce(primary, 'ALTER SYSTEM RESET synchronous_standby_names');
      await queryOnce(primary, 'SELECT pg_reload_conf()');
    }
    await waitForSyncPair(x);
    await expectEndpoints(x.k2, SYNC_STANDBY, 'node2 keeper to answer as the synchronous standby again');
  });

  test('a stalled loop: /health answers 503 until a tick completes again', async (t) => {
    const { k1 } = s();
    // /health is 503 once the last tick ended more than max(5 × keepalive_time, 3 s) ago. A
    // stopped process cannot answer, so the request is sent while the keeper is stopped
    // (SIGSTOP): the kernel queues it, and the keeper reads it as soon as it runs again, before
    // its overdue tick, which needs round trips to both servers, can end. The keeper is stopped
    // just after a tick ended; should it still have been inside one (its answer then comes after
    // a fresh tick, 200), the attempt is made again.
    const pid = k1.child.pid as number;
    const answers: number[] = [];
    for (let attempt = 1; attempt <= 3 && !answers.includes(503); attempt++) {
      const last = (await k1.status()).last_tick_at;
      await waitFor(async () => (await k1.status()).last_tick_at !== last, 'a tick to end', 5000, 5);
      process.kill(pid, 'SIGSTOP');
      let health: Promise<Response>;
      try {
        await sleep(3000 + 1000);
        health = fetch(`${k1.url}/health`, { signal: AbortSignal.timeout(10_000) });
        await sleep(200); // the request reaches the listening socket's queue
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const res = await health;
      answers.push(res.status);
      if (res.status === 503) assert.deepEqual(await res.json(), { status: 'stalled', node: 'node1' });
      else t.diagnostic(`attempt ${attempt}: /health answered ${res.status} (a tick ended first)`);
    }
    assert.ok(answers.includes(503), `/health answered ${answers.join(', ')} after each stall`);
    await waitFor(async () => (await k1.get('/health')).status === 200, 'the loop to tick again');
  });

  test('standby killed: the primary keeper goes async and stays /primary 200; the standby keeper fails its checks', async () => {
    const x = s();
    const { pair, k1, k2 } = x;
    await pair.kill(pair.node2, 'SIGKILL');
    await waitFor(
      async () => (await k1.status()).sync_mode === 'async',
      'node1 keeper to go async',
      SETTLE_MS,
    );
    await expectEndpoints(k1, ASYNC_PRIMARY, 'node1 keeper to answer as an async primary');
    const body = (await (await k1.get('/primary')).json()) as Record<string, unknown>;
    assert.equal(body.sync_mode, 'async');
    // Its own server is dead: every check fails, /health stays 200 (the loop lives).
    await expectEndpoints(k2, ALL_DOWN, 'node2 keeper, server dead, to fail every check');
    const st = await k2.status();
    assert.equal((st.local as { up: boolean }).up, false);
    await remember(x);

    // The standby comes back; the primary's keeper restores synchronous replication.
    await pair.start(pair.node2);
    await pair.waitForSync(pair.node2, pair.node1);
    await waitForSyncPair(x);
    await expectEndpoints(k1, SYNC_PRIMARY, 'node1 keeper to answer as a synchronous primary again');
    await expectEndpoints(k2, SYNC_STANDBY, 'node2 keeper to answer as the synchronous standby again');
  });

  test('after a failover: the promoted keeper is /primary 200, the old primary keeper 503 with /health 200', async () => {
    const x = s();
    const { pair, k1, k2 } = x;
    await pair.kill(pair.node1, 'SIGKILL');
    await waitFor(async () => (await k2.status()).role === 'primary', 'node2 to be promoted', SETTLE_MS);
    await expectEndpoints(k2, ASYNC_PRIMARY, 'node2 keeper to answer as the new primary');
    await expectEndpoints(k1, ALL_DOWN, 'node1 keeper, server dead, to fail every check');
    // The loop of the dead server's keeper goes on: /health stays 200 tick after tick.
    const before = Date.parse((await k1.status()).last_tick_at as string);
    await waitFor(
      async () => Date.parse((await k1.status()).last_tick_at as string) > before + 1000,
      "node1 keeper's loop to keep ticking",
      10_000,
    );
    assert.equal((await k1.get('/health')).status, 200);
    assert.equal((await k1.get('/health', { method: 'HEAD' })).status, 200);
    await remember(x);
  });

  test('no password (nor the token) in /status, /metrics or the logs', async () => {
    const x = s();
    await remember(x);
    assert.ok(seen.length >= 8);
    for (const [i, text] of seen.entries()) {
      assert.ok(!text.includes(x.pair.password), `a /status or /metrics body (#${i}) holds the password`);
      assert.ok(!text.includes(TOKEN), `a /status or /metrics body (#${i}) holds the token`);
    }
    for (const k of [x.k1, x.k2]) {
      assert.ok(k.raw.length > 0);
      assert.ok(!k.raw.includes(x.pair.password), 'a log line holds the password');
      assert.ok(!k.raw.includes(TOKEN), 'a log line holds the token');
    }
  });
});
