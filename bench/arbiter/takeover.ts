// The takeover as each party saw it: etcd (its lease's expiry and the key's deletion, from the
// watch), the new primary's keeper (claim, promote, from its log) and the new primary's writer
// (its first acknowledged write). Shared by every scenario in which the standby takes over.

import { firstLine, lineTime, okEvent } from '../lib/keeper-log.js';
import type { NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import { keeper, type Rig } from './rig.js';
import { rel, type TakeoverBreakdown } from './samples.js';

/** Waits (up to `timeoutMs`) for `node`'s first acknowledged write after `from`; then reads the rest. */
export async function takeover(
  rig: Rig,
  node: NodeName,
  from: number,
  timeoutMs: number,
): Promise<TakeoverBreakdown & { firstWriteAt: number | null }> {
  const first = await waitFor(
    () => rig.writers[node].acks.find((a) => a.end >= from),
    `the first write acknowledged by ${node}`,
    timeoutMs,
    5,
  ).catch(() => null);
  const k = keeper(rig, node);
  if (first) {
    // The keeper logs promote ok just after the server accepts writes: give it a moment.
    await waitFor(
      () => firstLine(k, okEvent('promote'), from),
      `${node}'s keeper to log promote ok`,
      10_000,
      10,
    ).catch(() => null);
  }
  const claim = firstLine(k, okEvent('claim-lease'), from);
  const promote = firstLine(k, okEvent('promote'), from);
  return {
    etcdExpiryMs: rel(rig.watch.expiryOf(from), from),
    etcdDeletedMs: rel(rig.watch.goneAt(from), from),
    claimOkMs: claim ? rel(lineTime(claim), from) : null,
    promoteOkMs: promote ? rel(lineTime(promote), from) : null,
    firstWriteMs: first ? rel(first.end, from) : null,
    firstWriteAt: first?.end ?? null,
  };
}
