// Scenario 6: the standby's keeper cut from etcd, then the primary's host lost (server and keeper
// SIGKILLed). The standby must not promote while it cannot reach etcd (it cannot take the key),
// however long; the cut is held for the TTL plus the window plus 2 s, so that the lease has surely
// run out in etcd. Once its keeper reaches etcd again, it must fail over within the TTL plus the
// window plus 1 s (here the lease is already gone: it needs one tick).

import { wallNow } from '../lib/write-loop.js';
import { sleep } from '../../src/util/wait.js';
import { windowMs } from './options.js';
import { checkWrites, inRecovery, warmUp, watchFor, type Rig } from './rig.js';
import { rel, type StandbyCutSample } from './samples.js';
import { takeover } from './takeover.js';

export async function standbyCut(rig: Rig): Promise<StandbyCutSample> {
  const { topo, opts } = rig;
  await warmUp(rig);
  await topo.cutArbiter('node2', true);
  const promotion = watchFor(async () => (await inRecovery(rig, 'node2')) === false);
  const killAt = wallNow();
  await Promise.all([topo.pair.kill(topo.node('node1'), 'SIGKILL'), topo.killKeeper('node1')]);
  const heldMs = rig.ttl * 1000 + windowMs(opts) + 2000;
  await sleep(Math.max(0, killAt + heldMs - wallNow()));
  const promotedWhileCut = await promotion.stop();
  const reconnectAt = wallNow();
  await topo.cutArbiter('node2', false);
  const { firstWriteAt: _, ...t } = await takeover(
    rig,
    'node2',
    reconnectAt,
    rig.ttl * 1000 + windowMs(opts) + 20_000,
  );
  return {
    cutHeldMs: Math.round(reconnectAt - killAt),
    etcdDeletedMs: rel(rig.watch.goneAt(killAt), killAt),
    promotedWhileCut,
    claimOkMs: t.claimOkMs,
    promoteOkMs: t.promoteOkMs,
    firstWriteMs: t.firstWriteMs,
    writes: await checkWrites(rig, 'node1', 'node2'),
  };
}
