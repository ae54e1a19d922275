// Scenario 1: the network between the nodes is cut (heartbeats and the replication stream), and
// both keepers still reach etcd. The primary's keeper holds the lease: it records "async" in
// etcd, switches, and commits flow again after one window; the standby's keeper cannot take the
// key and does not promote. Held for twice the TTL (at least the window plus 2 s), then healed,
// until the primary records "sync" again; then every write the primary acknowledged must be on
// the standby too.

import { firstLine, lineTime, okEvent } from '../lib/keeper-log.js';
import { wallNow } from '../lib/write-loop.js';
import { NODES } from '../../src/config/config.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { windowMs } from './options.js';
import {
  checkWrites,
  counter,
  idsOn,
  inRecovery,
  keeper,
  latencyOf,
  quiesce,
  warmUp,
  watchFor,
  worstAck,
  type Rig,
} from './rig.js';
import { rel, type PartitionSample } from './samples.js';

export async function partition(rig: Rig): Promise<PartitionSample> {
  const { topo, writers } = rig;
  const k1 = keeper(rig, 'node1');
  const k2 = keeper(rig, 'node2');
  await warmUp(rig);
  const promotion = watchFor(async () => (await inRecovery(rig, 'node2')) === false);
  const cutAt = wallNow();
  await Promise.all(NODES.map((n) => topo.proxyTo[n].cut('blackhole')));
  const switched = await waitFor(
    () => firstLine(k1, okEvent('switch-to-async'), cutAt),
    "node1's keeper to switch to async",
    30_000,
    10,
  );
  const switchAt = lineTime(switched);
  await waitFor(
    () => writers.node1.acks.filter((a) => a.start > switchAt).length >= 20,
    'commits to flow again on node1',
    30_000,
    10,
  );
  const heldMs = Math.max(2 * rig.ttl * 1000, windowMs(rig.opts) + 2000);
  await sleep(Math.max(0, cutAt + heldMs - wallNow()));
  const healAt = wallNow();
  await Promise.all(NODES.map((n) => topo.proxyTo[n].restore()));
  const promoted =
    (await promotion.stop()) || k2.events('promote').some((l) => l.outcome === 'ok' && lineTime(l) >= cutAt);
  const synced = await waitFor(
    async () => {
      const s = await k1.status();
      return s.arbiter?.replication === 'sync' && s.sync_mode === 'sync' ? wallNow() : null;
    },
    'node1 to record "sync" again',
    60_000,
    20,
  ).catch(() => null);
  const stalled = worstAck(writers.node1.acks, cutAt, switchAt + 1000);
  const recordAsync = firstLine(k1, okEvent('record-replication'), cutAt);
  let missingOnStandby = -1;
  if (synced !== null) {
    await quiesce(rig, 'node1', 'node2');
    const onStandby = await idsOn(rig, 'node2');
    missingOnStandby = writers.node1.acks.filter((a) => !onStandby.has(a.id)).length;
  }
  return {
    recordAsyncMs: recordAsync ? rel(lineTime(recordAsync), cutAt) : null,
    switchOkMs: rel(switchAt, cutAt),
    stallMs: latencyOf(stalled),
    resumedMs: stalled === null ? -1 : Math.round(stalled.end - cutAt),
    heldMs: Math.round(healAt - cutAt),
    promoted,
    noLeaseVetoes: await counter(k2, 'pg_keeper_promotion_vetoes_total', 'reason="no-lease"').catch(
      () => null,
    ),
    healToSyncRecordedMs: synced === null ? null : Math.round(synced - healAt),
    writes: await checkWrites(rig, 'node1', 'node1'),
    missingOnStandby,
  };
}
