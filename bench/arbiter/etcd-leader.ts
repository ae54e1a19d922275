// Scenario 7: a 3-member etcd (TTL 5 s) whose raft leader is SIGKILLed for 2 s and started again;
// once the primary's keeper has renewed its lease twice since, the (new) leader is SIGSTOPped for
// 2 s and resumed. The keeper's client moves to another member (a frozen one accepts connections
// and never answers: each member gets its share of the call's deadline), etcd elects a new leader
// and keeps the lease: none may be lost, nothing promoted. Per fault: the time to a new leader,
// the renewals that failed and the least lease they reported left.

import { lineTime } from '../lib/keeper-log.js';
import { wallNow } from '../lib/write-loop.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { inRecovery, keeper, latencyOf, warmUp, watchFor, worstAck, type Rig } from './rig.js';
import type { EtcdLeaderSample, LeaderFaultSample } from './samples.js';

const FAULT_MS = 2000;

export async function etcdLeader(rig: Rig): Promise<EtcdLeaderSample> {
  const { etcd } = rig;
  const k1 = keeper(rig, 'node1');
  await warmUp(rig);
  const faults: LeaderFaultSample[] = [];
  for (const fault of ['kill', 'freeze'] as const) {
    const before = (await k1.status()).arbiter;
    const leader = await waitFor(() => etcd.leader().catch(() => null), 'an etcd leader', 15_000);
    const promotion = watchFor(async () => (await inRecovery(rig, 'node2')) === false);
    const at = wallNow();
    if (fault === 'kill') await etcd.kill(leader);
    else etcd.freeze(true, leader);
    const elected = waitFor(
      async () => ((await etcd.leader().catch(() => leader)) !== leader ? wallNow() : null),
      'another etcd member to lead',
      FAULT_MS + 10_000,
      50,
    ).catch(() => null);
    await sleep(FAULT_MS);
    if (fault === 'kill') await etcd.restart(leader);
    else {
      etcd.freeze(false, leader);
      await etcd.waitHealthy();
    }
    const newLeaderAt = await elected;
    const ended = wallNow();
    // Two renewals since: the lease came through.
    const renewals = before?.renewals ?? 0;
    await waitFor(
      async () => ((await k1.status()).arbiter?.renewals ?? 0) >= renewals + 2,
      'two renewals of the lease after the fault',
      30_000,
    ).catch(() => null);
    await sleep(Math.max(0, ended + 2000 - wallNow()));
    const after = (await k1.status()).arbiter;
    const failed = k1.events('lease-renewal-failed').filter((l) => lineTime(l) >= at);
    const left = failed.map((l) => Number(l.lease_remaining_ms)).filter((v) => Number.isFinite(v));
    faults.push({
      fault,
      leader,
      newLeaderMs: newLeaderAt === null ? null : Math.round(newLeaderAt - at),
      renewalFailures: (after?.renewal_failures ?? 0) - (before?.renewal_failures ?? 0),
      minLeaseRemainingMs: left.length > 0 ? Math.min(...left) : null,
      leasesLost: (after?.leases_lost ?? 0) - (before?.leases_lost ?? 0),
      promoted: await promotion.stop(),
      stallMs: latencyOf(worstAck(rig.writers.node1.acks, at, ended + 2000)),
    });
  }
  return { faults };
}
