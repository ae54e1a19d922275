// Scenario 4: the primary's server SIGKILLed, its keeper alive (TTL twice the default, 6 s). The
// keeper sees its server down at its next tick and gives the lease up (`local-down`); the standby
// takes it once its window has passed: failover in the two-node time, the TTL never waited out.

import { decision, firstLine, lineTime, okEvent } from '../lib/keeper-log.js';
import { wallNow } from '../lib/write-loop.js';
import { windowMs } from './options.js';
import { checkWrites, keeper, warmUp, type Rig } from './rig.js';
import { rel, type ServerCrashSample } from './samples.js';
import { takeover } from './takeover.js';

export async function serverCrash(rig: Rig): Promise<ServerCrashSample> {
  const { topo, opts } = rig;
  await warmUp(rig);
  const killAt = wallNow();
  await topo.pair.kill(topo.node('node1'), 'SIGKILL');
  const { firstWriteAt: _, ...t } = await takeover(
    rig,
    'node2',
    killAt,
    rig.ttl * 1000 + windowMs(opts) + 20_000,
  );
  const released = firstLine(keeper(rig, 'node1'), okEvent('release-lease'), killAt);
  const dec = firstLine(keeper(rig, 'node2'), decision('promoting this standby'), killAt);
  return {
    ...t,
    etcdExpiryMs: null, // given up (revoked), not run out
    releaseOkMs: released ? rel(lineTime(released), killAt) : null,
    decisionMs: dec ? rel(lineTime(dec), killAt) : null,
    writes: await checkWrites(rig, 'node1', 'node2'),
  };
}
