// Scenario 3: the primary's whole host lost: its server and its keeper SIGKILLed at once. Nobody
// gives the lease up; the standby's keeper waits until etcd lets it go (the lease left at the kill,
// then etcd's revocation, which runs every 500 ms), takes the key at its next tick, and promotes.
// The failover is the kill -> the first write the new primary acknowledged, as in bench/failover.

import { decision, firstLine, lineTime } from '../lib/keeper-log.js';
import { wallNow } from '../lib/write-loop.js';
import { windowMs } from './options.js';
import { checkWrites, keeper, warmUp, type Rig } from './rig.js';
import { rel, type HostLossSample } from './samples.js';
import { takeover } from './takeover.js';

export async function hostLoss(rig: Rig): Promise<HostLossSample> {
  const { topo, opts } = rig;
  await warmUp(rig);
  const killAt = wallNow();
  await Promise.all([topo.pair.kill(topo.node('node1'), 'SIGKILL'), topo.killKeeper('node1')]);
  const limit = rig.ttl * 1000 + windowMs(opts) + 1000;
  const { firstWriteAt: _, ...t } = await takeover(rig, 'node2', killAt, limit + 20_000);
  const dec = firstLine(keeper(rig, 'node2'), decision('promoting this standby'), killAt);
  return {
    ...t,
    decisionMs: dec ? rel(lineTime(dec), killAt) : null,
    writes: await checkWrites(rig, 'node1', 'node2'),
  };
}
