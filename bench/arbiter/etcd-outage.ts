// Scenario 5: every etcd member SIGKILLed for twice the TTL while the pair is healthy and the
// application writes; then started again (with its data). Nothing may be promoted or demoted, and
// commits must not stall: synchronous replication goes on without etcd. pg_keeper_arbiter_up (each
// keeper's /metrics, every 100 ms) must read 0 (once the last good call is older than the TTL) and
// 1 again after the restart; the primary's keeper must hold the lease again.

import type { NodeName } from '../../src/config/config.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { wallNow } from '../lib/write-loop.js';
import {
  gauge,
  inRecovery,
  keeper,
  latencyOf,
  longestGap,
  warmUp,
  watchFor,
  worstAck,
  type Rig,
} from './rig.js';
import { type EtcdOutageSample } from './samples.js';

export async function etcdOutage(rig: Rig): Promise<EtcdOutageSample> {
  const { etcd, writers } = rig;
  const k1 = keeper(rig, 'node1');
  await warmUp(rig);
  const lostBefore = (await k1.status()).arbiter?.leases_lost ?? 0;
  const promotion = watchFor(async () => (await inRecovery(rig, 'node2')) === false);
  const upZero: Record<NodeName, number | null> = { node1: null, node2: null };
  const upOne: Record<NodeName, number | null> = { node1: null, node2: null };
  let restartAt: number | null = null;
  let scraping = true;
  const killAt = wallNow();
  const scrape = (async () => {
    while (scraping) {
      await Promise.all(
        (['node1', 'node2'] as const).map(async (n) => {
          const v = await gauge(keeper(rig, n), 'pg_keeper_arbiter_up');
          const at = wallNow();
          if (v === 0 && upZero[n] === null) upZero[n] = Math.round(at - killAt);
          if (v === 1 && restartAt !== null && upOne[n] === null) upOne[n] = Math.round(at - restartAt);
        }),
      );
      await sleep(100);
    }
  })();
  await etcd.kill();
  const outageMs = 2 * rig.ttl * 1000;
  await sleep(Math.max(0, killAt + outageMs - wallNow()));
  const restartCalled = wallNow();
  await etcd.restart();
  const healthyAt = wallNow();
  restartAt = restartCalled;
  const reclaimed = await waitFor(
    async () => ((await k1.status()).arbiter?.lease_held ? wallNow() : null),
    "node1's keeper to hold the lease again",
    30_000,
    50,
  ).catch(() => null);
  await waitFor(
    () => upOne.node1 !== null && upOne.node2 !== null,
    'pg_keeper_arbiter_up 1 on both',
    30_000,
  ).catch(() => null);
  const end = Math.max(wallNow(), restartAt + 2000);
  await sleep(Math.max(0, end - wallNow()));
  scraping = false;
  await scrape;
  const promoted = await promotion.stop();
  const acks = writers.node1.acks;
  return {
    outageMs: Math.round(restartAt - killAt),
    upZeroMs: upZero,
    upOneAfterRestartMs: upOne,
    etcdHealthyAfterRestartMs: Math.round(healthyAt - restartCalled),
    stallMs: latencyOf(worstAck(acks, killAt, end)),
    longestGapMs: Math.round(longestGap(acks, killAt, end)),
    writesDuring: acks.filter((a) => a.end >= killAt && a.end <= end).length,
    promoted,
    leasesLost: ((await k1.status()).arbiter?.leases_lost ?? 0) - lostBefore,
    reclaimAfterRestartMs: reclaimed === null ? null : Math.round(reclaimed - restartAt),
  };
}
