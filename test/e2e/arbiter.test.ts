// The etcd arbiter on real servers: a real pair, two real keepers, a real etcd, and TCP
// proxies on every path that a partition can cut (between the nodes: heartbeats and the
// replication stream; and each keeper's own path to etcd). A workload writes all the time
// and records every acknowledged write; the checker of the fault-injection suite judges it.
// Timings are asserted with margins that hold on a busy two-core machine: bench/arbiter
// measures them.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { check, eras } from '../chaos/checker.js';
import { Topology } from '../chaos/topology.js';
import { Workload } from '../chaos/workload.js';
import { waitFor } from '../../src/util/wait.js';
import type { Status } from '../../src/http/status.js';
import type { NodeName } from '../../src/config/config.js';

const TTL_S = 3;
const KEEPALIVE = { keepalive_time: 0.3, keepalive_count: 3 };
const WINDOW_MS = 900;
/** Two busy cores: what the targets allow, plus this. */
const SLACK_MS = 2500;

const topologies: Topology[] = [];
after(async () => {
  await Promise.all(topologies.map((t) => t.destroy()));
});

async function arbiterPair(
  o: { ttl?: number; members?: 1 | 3; settings?: Record<string, unknown> } = {},
): Promise<Topology> {
  const t = await Topology.create(() => {}, {
    arbiter: { members: o.members ?? 1, ttl: o.ttl ?? TTL_S },
    keeperSettings: { ...KEEPALIVE, ...o.settings },
  });
  topologies.push(t);
  await waitFor(async () => {
    const [s1, s2] = await Promise.all([t.keepers.node1.status(), t.keepers.node2.status()]);
    return (
      s1.arbiter?.lease_held === true &&
      s1.arbiter.replication === 'sync' &&
      s1.sync_mode === 'sync' &&
      s2.role === 'standby' &&
      s2.guards.synchronous_at_last_contact &&
      s2.arbiter?.holder === 'node1'
    );
  }, 'node1 to hold the lease with "sync" recorded, and node2 to see it');
  return t;
}

function workload(t: Topology): Workload {
  const w = new Workload({
    targets: { node1: t.pair.target(t.pair.node1), node2: t.pair.target(t.pair.node2) },
    first: 'node1',
  });
  w.start();
  return w;
}

/**
 * The fault-injection suite's checker, on this run: every acknowledged write must be on the
 * final primary, and no moment may have two servers acknowledging writes (no partition is
 * excused here: with the arbiter, partitions are judged, not only reported).
 */
async function judge(t: Topology, w: Workload, primary: NodeName): Promise<{ acked: number }> {
  await w.stop();
  const result = check(0, w.records, [], await t.idsOn(primary));
  assert.deepEqual(result.lost, [], 'acknowledged writes lost');
  assert.deepEqual(
    result.anomalies.map((a) => a.detail),
    [],
  );
  assert.equal(eras(w.records).filter((e) => e.writes > 0).length <= 2, true);
  return { acked: result.acked };
}

/** Resolves once `n`'s server is a writable primary. */
async function waitPrimary(t: Topology, n: NodeName, what: string, timeoutMs: number): Promise<number> {
  await waitFor(async () => (await inRecovery(t, n)) === false, what, timeoutMs, 50);
  return Date.now();
}

const status = (t: Topology, n: NodeName): Promise<Status> => t.keepers[n].status();
const inRecovery = async (t: Topology, n: NodeName): Promise<boolean | null> =>
  (await t.inspect(n)).inRecovery;

/** Watches for `ms` that node2's server stays a standby, and returns the veto reasons its keeper counted. */
async function staysStandby(t: Topology, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    assert.equal(await inRecovery(t, 'node2'), true, 'node2 was promoted');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('arbiter: the pair at rest', () => {
  test('the primary holds the lease, etcd records "sync", and both keepers show it', async () => {
    const t = await arbiterPair();
    const [s1, s2] = await Promise.all([status(t, 'node1'), status(t, 'node2')]);
    assert.equal(s1.arbiter?.up, true);
    assert.equal(s1.arbiter?.holder, 'node1');
    assert.ok((s1.arbiter?.lease_remaining_seconds ?? 0) > 0);
    assert.equal(s2.arbiter?.lease_held, false);
    assert.equal(s2.arbiter?.replication, 'sync');
    const metrics = await (await t.keepers.node1.get('/metrics')).text();
    assert.match(metrics, /^pg_keeper_arbiter_up 1$/m);
    assert.match(metrics, /^pg_keeper_arbiter_lease_held 1$/m);
    assert.match(metrics, /^pg_keeper_arbiter_lease_holder\{holder="node1"\} 1$/m);
    assert.equal((await t.keepers.node1.get('/primary')).status, 200);
    assert.equal((await t.keepers.node2.get('/primary')).status, 503);
  });
});

describe('arbiter: partitions', () => {
  test('between the nodes, both reaching etcd: no promotion, the primary writes on after one window, nothing lost', async (tc) => {
    const t = await arbiterPair();
    const w = workload(t);
    await waitFor(() => w.acked().length > 20, 'writes before the cut');
    const cutAt = Date.now();
    await Promise.all([t.proxyTo.node1.cut('blackhole'), t.proxyTo.node2.cut('blackhole')]);
    // The primary goes async (under its lease), and commits flow again.
    await waitFor(async () => (await status(t, 'node1')).sync_mode === 'async', 'node1 to go async', 15_000);
    const resumed = await waitFor(
      () => w.records.find((r) => r.ackAt !== null && r.sentAt > cutAt + WINDOW_MS),
      'a write acknowledged after the window',
    );
    assert.ok(
      (resumed.ackAt ?? 0) - cutAt < WINDOW_MS + SLACK_MS,
      `writes resumed ${(resumed.ackAt ?? 0) - cutAt} ms after the cut`,
    );
    await staysStandby(t, 4000);
    const s2 = await status(t, 'node2');
    assert.match(s2.reason ?? '', /still holds the lease/);
    assert.equal(s2.state, 'standby-lost-primary');
    const m2 = await (await t.keepers.node2.get('/metrics')).text();
    assert.match(m2, /^pg_keeper_promotion_vetoes_total\{reason="no-lease"\} 1$/m);
    await Promise.all([t.proxyTo.node1.restore(), t.proxyTo.node2.restore()]);
    await waitFor(
      async () => (await status(t, 'node1')).arbiter?.replication === 'sync',
      'sync to be recorded again',
      30_000,
    );
    const { acked } = await judge(t, w, 'node1');
    tc.diagnostic(`${acked} writes acknowledged, none lost`);
    assert.ok(acked > 100);
  });

  test('the primary cut from the standby and from etcd: the standby promotes after the lease, and nothing acknowledged is lost', async (tc) => {
    const t = await arbiterPair();
    const w = workload(t);
    await waitFor(() => w.acked().length > 20, 'writes before the cut');
    const cutAt = Date.now();
    await Promise.all([
      t.proxyTo.node1.cut('blackhole'),
      t.proxyTo.node2.cut('blackhole'),
      t.cutArbiter('node1', true),
    ]);
    const promotedAt = await waitPrimary(t, 'node2', 'node2 to be promoted', 30_000);
    tc.diagnostic(`promoted ${promotedAt - cutAt} ms after the cut (TTL ${TTL_S} s, window ${WINDOW_MS} ms)`);
    assert.ok(
      promotedAt - cutAt < TTL_S * 1000 + WINDOW_MS + 1000 + SLACK_MS,
      `promoted ${promotedAt - cutAt} ms after the cut`,
    );
    // The isolated old primary never went async: it kept its commits waiting. Its lease ran
    // out while it reached neither etcd nor its peer: it no longer tells HAProxy it is the
    // primary, so clients go to node2 alone, even before the network heals.
    assert.equal((await status(t, 'node1')).sync_mode, 'sync');
    assert.equal((await t.keepers.node1.get('/primary')).status, 503, 'the isolated old primary');
    assert.equal((await t.keepers.node2.get('/primary')).status, 200);
    await waitFor(
      () => w.current === 'node2' && w.acked().some((r) => r.node === 'node2'),
      'writes on node2',
    );
    // Healed: the old primary is a primary to nobody, and says who holds the lease.
    await Promise.all([t.proxyTo.node1.restore(), t.proxyTo.node2.restore(), t.cutArbiter('node1', false)]);
    const s1 = await waitFor(
      async () => {
        const s = await status(t, 'node1');
        return s.state === 'primary-without-lease' ||
          (s.state === 'two-primaries' && s.arbiter?.holder === 'node2')
          ? s
          : null;
      },
      "node1's keeper to see node2 holding the lease",
      15_000,
    );
    assert.equal(s1.arbiter?.holder, 'node2');
    assert.equal((await t.keepers.node1.get('/primary')).status, 503);
    assert.equal((await t.keepers.node2.get('/primary')).status, 200);
    await judge(t, w, 'node2');
  });

  test('the standby cut from etcd while the primary is lost: no promotion while cut, failover once it reaches etcd again', async (tc) => {
    const t = await arbiterPair();
    await t.cutArbiter('node2', true);
    await t.pair.kill(t.pair.node1, 'SIGKILL');
    await t.killKeeper('node1');
    await staysStandby(t, (TTL_S + 2) * 1000);
    assert.match((await status(t, 'node2')).reason ?? '', /cannot take the lease never promotes/);
    const reachedAt = Date.now();
    await t.cutArbiter('node2', false);
    const promotedAt = await waitPrimary(t, 'node2', 'node2 to be promoted', 30_000);
    tc.diagnostic(`promoted ${promotedAt - reachedAt} ms after reaching etcd again`);
    assert.ok(
      promotedAt - reachedAt < TTL_S * 1000 + WINDOW_MS + 1000 + SLACK_MS,
      `${promotedAt - reachedAt} ms`,
    );
  });
});

describe("arbiter: the lease by the keeper's own clock", () => {
  test('a keeper cut from etcd counts its lease as gone before etcd itself lets it go', async (tc) => {
    const t = await arbiterPair();
    const etcd = t.arbiter?.etcd;
    assert.ok(etcd);
    const prefix = String(t.arbiter?.settings.etcd_prefix);
    const leaderKey = Buffer.from(`${prefix}/leader`).toString('base64');
    const held = async (): Promise<boolean> => {
      const r = await fetch(`${etcd.endpoints[0]}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key: leaderKey }),
        signal: AbortSignal.timeout(1000),
      });
      return Array.isArray(((await r.json()) as { kvs?: unknown[] }).kvs);
    };
    assert.equal(await held(), true);
    await t.cutArbiter('node1', true);
    const cutAt = Date.now();
    const goneInEtcd = await waitFor(
      async () => ((await held()) ? null : Date.now()),
      'etcd to let the lease go',
      15_000,
      10,
    );
    const lost = await waitFor(
      () => t.keepers.node1.events('lease-lost')[0],
      "node1's keeper to count its lease lost",
    );
    const ranOut = Date.parse(String(lost.ran_out_at));
    const loggedAt = Date.parse(String(lost.time));
    tc.diagnostic(
      `keeper: lease ran out ${ranOut - cutAt} ms after the cut (logged at ${loggedAt - cutAt} ms); ` +
        `etcd: deleted the key ${goneInEtcd - cutAt} ms after it`,
    );
    assert.ok(
      ranOut <= goneInEtcd,
      `the keeper counted the lease ${ranOut - goneInEtcd} ms after etcd let it go`,
    );
    // Known at that moment (a timer at the deadline), not at the next tick or renewal.
    assert.ok(loggedAt - ranOut < 250, `learnt ${loggedAt - ranOut} ms late`);
  });
});

describe('arbiter: losing the primary', () => {
  test("the primary's whole host lost (server and keeper): failover after the lease's TTL", async (tc) => {
    const t = await arbiterPair();
    const w = workload(t);
    await waitFor(() => w.acked().length > 20, 'writes');
    const killedAt = Date.now();
    await Promise.all([t.pair.kill(t.pair.node1, 'SIGKILL'), t.killKeeper('node1')]);
    const promotedAt = await waitPrimary(t, 'node2', 'node2 to be promoted', 30_000);
    tc.diagnostic(`promoted ${promotedAt - killedAt} ms after the host was lost`);
    assert.ok(
      promotedAt - killedAt < TTL_S * 1000 + WINDOW_MS + 1000 + SLACK_MS,
      `${promotedAt - killedAt} ms`,
    );
    await waitFor(() => w.acked().some((r) => r.node === 'node2'), 'writes on node2');
    await judge(t, w, 'node2');
  });

  test('the primary server crashed, its keeper alive: the lease is handed over, not waited out (TTL 6)', async (tc) => {
    const t = await arbiterPair({ ttl: 6 });
    const killedAt = Date.now();
    await t.pair.kill(t.pair.node1, 'SIGKILL');
    const promotedAt = await waitPrimary(t, 'node2', 'node2 to be promoted', 30_000);
    tc.diagnostic(`promoted ${promotedAt - killedAt} ms after the kill`);
    assert.ok(promotedAt - killedAt < 6000, `${promotedAt - killedAt} ms: the lease was waited out`);
    const released = t.keepers.node1.events('release-lease').find((l) => l.outcome === 'ok');
    assert.ok(released, "node1's keeper gave the lease up");
  });
});

describe('arbiter: etcd faults', () => {
  test('etcd killed for twice the TTL while the pair is healthy: nothing is promoted or demoted, writes go on', async (tc) => {
    const t = await arbiterPair();
    const etcd = t.arbiter?.etcd;
    assert.ok(etcd);
    const w = workload(t);
    await waitFor(() => w.acked().length > 20, 'writes');
    const from = w.records.length;
    await etcd.kill();
    await waitFor(
      async () => /^pg_keeper_arbiter_up 0$/m.test(await (await t.keepers.node1.get('/metrics')).text()),
      'arbiter_up 0',
      15_000,
    );
    await staysStandby(t, Math.max(0, TTL_S * 2000 - 1000));
    assert.equal((await t.keepers.node1.get('/primary')).status, 200, 'an etcd outage alone demotes nothing');
    await etcd.restart();
    await waitFor(
      async () => /^pg_keeper_arbiter_up 1$/m.test(await (await t.keepers.node1.get('/metrics')).text()),
      'arbiter_up 1',
      30_000,
    );
    const during = w.records.slice(from).filter((r) => r.ackAt !== null && r.node === 'node1');
    const gaps = during.slice(1).map((r, i) => (r.ackAt ?? 0) - (during[i]?.ackAt ?? 0));
    const worst = Math.max(...gaps);
    tc.diagnostic(`${during.length} writes during the outage; longest gap ${worst} ms`);
    assert.ok(worst < 1000 + 500, `a write waited ${worst} ms`);
    assert.equal(await inRecovery(t, 'node1'), false);
    await judge(t, w, 'node1');
  });

  test('a 3-member etcd whose leader is killed, then one frozen, for 2 s: no lease lost at TTL 5, no failover', async () => {
    const t = await arbiterPair({ members: 3, ttl: 5 });
    const etcd = t.arbiter?.etcd;
    assert.ok(etcd);
    const lost = (): Promise<number> => status(t, 'node1').then((s) => s.arbiter?.leases_lost ?? -1);
    /** Two faults, apart: each starts once the lease was renewed after the previous one. */
    const renewedSince = async (count: number): Promise<void> => {
      await waitFor(async () => ((await status(t, 'node1')).arbiter?.renewals ?? 0) > count + 1, 'renewals');
    };
    const leader = await etcd.leader();
    await etcd.kill(leader);
    await new Promise((r) => setTimeout(r, 2000)); // the fault itself lasts 2 s
    await etcd.restart(leader);
    await renewedSince((await status(t, 'node1')).arbiter?.renewals ?? 0);
    const next = await waitFor(() => etcd.leader().catch(() => null), 'a leader');
    etcd.freeze(true, next);
    await new Promise((r) => setTimeout(r, 2000));
    etcd.freeze(false, next);
    await etcd.waitHealthy();
    await renewedSince((await status(t, 'node1')).arbiter?.renewals ?? 0);
    await staysStandby(t, 3000);
    const why = t.keepers.node1.lines
      .filter((l) => /^lease-/.test(String(l.event)))
      .map((l) => `${String(l.time)} ${l.msg}`);
    assert.equal(await lost(), 0, `the primary lost its lease:\n${why.join('\n')}`);
    assert.equal((await status(t, 'node1')).arbiter?.lease_held, true);
  });
});
