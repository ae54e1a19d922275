// Scenario 2, standby loss: the write loop commits on node1, node2 is SIGKILLed, and node1's keeper
// switches to async. The stall is the longest commit latency around the kill.

import { decision, firstLine, heartbeatFailed, lineTime, waitForOkEvent } from '../lib/keeper-log.js';
import { firstPgLog, readPgLog } from '../lib/pg-log.js';
import type { Rig } from '../lib/rig.js';
import { wallNow, type Ack, type WriteLoop } from '../lib/write-loop.js';
import { waitFor } from '../../src/util/wait.js';
import { iso, latency, median, r1, rel, warmUp, type Pace, type StandbyLossSample } from './samples.js';

/** Kills the standby under `loop`'s writes; resolves once commits flow again, with the kill's time. */
export async function standbyLoss(
  rig: Rig,
  loop: WriteLoop,
  pace: Pace,
): Promise<{ sample: StandbyLossSample; killAt: number }> {
  const { pair, k1 } = rig;
  pace.phase('standby loss: warming up');
  await warmUp(loop, 'node1', pace);

  pace.phase('standby loss: SIGKILL node2');
  const killAt = wallNow();
  await pair.kill(pair.node2, 'SIGKILL');
  const switched = await waitForOkEvent(
    k1,
    'switch-to-async',
    killAt,
    "node1's keeper to switch to async",
    pace.slowMs,
  );
  const switchAt = lineTime(switched);
  // Commits flow again: 20 sent after the switch was logged.
  await waitFor(
    () => loop.acks.filter((a) => a.start > switchAt).length >= 20,
    'commits to resume after the switch to async',
    pace.slowMs,
    10,
  );
  const around = loop.acks.filter((a) => a.end >= killAt && a.start <= switchAt + 1000);
  const stalled = around.reduce<Ack | null>((w, a) => (w === null || latency(a) > latency(w) ? a : w), null);
  if (!stalled) throw new Error('no commit completed around the kill of the standby');
  const before = loop.acks.filter((a) => a.end < killAt && a.end >= killAt - 1000).map(latency);
  const dec = firstLine(k1, decision('switching to asynchronous'), killAt);
  const miss = firstLine(k1, heartbeatFailed, killAt);
  const sample: StandbyLossSample = {
    killAt: iso(killAt),
    baselineLatencyMs: r1(median(before)),
    firstMissMs: miss ? r1(lineTime(miss) - killAt) : null,
    decisionMs: r1((dec ? lineTime(dec) : switchAt) - killAt),
    switchOkMs: r1(switchAt - killAt),
    stall: r1(latency(stalled)),
    stalledSentMs: r1(stalled.start - killAt),
    release: r1(stalled.end - killAt),
    releaseAfterSwitch: r1(stalled.end - switchAt),
    serverReloadMs: rel(firstPgLog(readPgLog(pair.node1.logFile), 'received SIGHUP', killAt), killAt),
  };
  return { sample, killAt };
}
