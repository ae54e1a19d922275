// Scenario 2: the primary cut from the standby and from etcd (black hole; the application still
// reaches it). Its keeper cannot renew the lease, never records "async", and keeps commits waiting
// (synchronous replication is the fence); once the lease has expired in etcd the standby takes the
// key, reads "sync", and promotes. Nothing the old primary acknowledged may be missing on the new
// one, and it may acknowledge no write sent after the new one acknowledged its first. Both keepers'
// /primary are polled every 100 ms meanwhile: what a load balancer would have been told. Healed once
// the new primary has written for 2 s; two ticks later the old primary's keeper must see the peer
// holding the lease (/primary 503).

import { lineTime } from '../lib/keeper-log.js';
import { wallNow } from '../lib/write-loop.js';
import { NODES } from '../../src/config/config.js';
import { sleep } from '../../src/util/wait.js';
import { windowMs } from './options.js';
import { checkWrites, keeper, warmUp, type Rig } from './rig.js';
import { rel, type IsolateSample } from './samples.js';
import { takeover } from './takeover.js';

const AFTER_TAKEOVER_MS = 2000;

export async function isolatePrimary(rig: Rig): Promise<IsolateSample> {
  const { topo, writers, opts } = rig;
  const k1 = keeper(rig, 'node1');
  const k2 = keeper(rig, 'node2');
  await warmUp(rig);
  const cutAt = wallNow();
  await Promise.all([...NODES.map((n) => topo.proxyTo[n].cut('blackhole')), topo.cutArbiter('node1', true)]);
  // /primary of both, every 100 ms, and node1's replication mode
  let both = 0;
  let bothSince: number | null = null;
  let stayedSync = true;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const at = wallNow();
      const [c1, c2, s1] = await Promise.all([
        k1.get('/primary').then(
          (r) => r.status,
          () => 0,
        ),
        k2.get('/primary').then(
          (r) => r.status,
          () => 0,
        ),
        k1.status().catch(() => null),
      ]);
      if (s1 && s1.sync_mode !== 'sync') stayedSync = false;
      if (c1 === 200 && c2 === 200) {
        bothSince ??= at;
        both = Math.max(both, wallNow() - bothSince);
      } else bothSince = null;
      await sleep(100);
    }
  })();
  const limit = rig.ttl * 1000 + windowMs(opts) + 1000;
  const { firstWriteAt, ...t } = await takeover(rig, 'node2', cutAt, limit + 20_000);
  if (firstWriteAt !== null) await sleep(AFTER_TAKEOVER_MS);
  polling = false;
  await poll;
  await Promise.all([...NODES.map((n) => topo.proxyTo[n].restore()), topo.cutArbiter('node1', false)]);
  await sleep(2 * opts.keepaliveTime * 1000 + 500);
  // After the heal too: the old primary must not acknowledge what it held back.
  const writes = await checkWrites(rig, 'node1', 'node2');
  const after = await k1.status().catch(() => null);
  const code = await k1.get('/primary').then(
    (r) => r.status,
    () => null,
  );
  const lost = k1.events('lease-lost').find((l) => lineTime(l) >= cutAt);
  return {
    ...t,
    leaseRanOutMs: lost ? rel(Date.parse(String(lost.ran_out_at)), cutAt) : null,
    oldAckedAfterCut: writers.node1.acks.filter((a) => a.start > cutAt).length,
    oldStayedSync: stayedSync,
    bothPrimary200Ms: Math.round(both),
    oldPrimaryCheckAfterHeal: code,
    oldStateAfterHeal: after?.state ?? null,
    writes,
  };
}
