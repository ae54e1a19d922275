// Scenario 4, heartbeat period: while node2 is down, node1's keeper logs 'heartbeat-failed' at every
// tick; the intervals between consecutive lines (their count going up by one) give the period, and
// pg_keeper_heartbeats_total cross-checks it.

import { heartbeatFailed, heartbeatIntervals, lineTime, scrape } from '../lib/keeper-log.js';
import type { Rig } from '../lib/rig.js';
import { waitFor } from '../../src/util/wait.js';
import type { HeartbeatSample, Pace } from './samples.js';

/** Waits until node1's keeper has logged `count` failed heartbeats since `since`. */
export async function collectFailedBeats(rig: Rig, count: number, since: number, pace: Pace): Promise<void> {
  pace.phase(`heartbeats: collecting ${count} failed beats`);
  await waitFor(
    () => rig.k1.lines.filter((l) => heartbeatFailed(l) && lineTime(l) >= since).length >= count,
    `${count} failed heartbeats from node1's keeper`,
    pace.slowMs + count * pace.periodMs * 2,
    50,
  );
}

/** The intervals logged in [from, to], and the counter's view. */
export async function heartbeatSample(rig: Rig, from: number, to: number): Promise<HeartbeatSample> {
  return { intervals: heartbeatIntervals(rig.k1, from, to), counter: await heartbeatCounter(rig) };
}

/**
 * pg_keeper_heartbeats_total of node1's keeper: beats after its first tick, and the time since that
 * tick (its first decision line; the first tick comes one keepalive_time after the start line).
 */
async function heartbeatCounter(rig: Rig): Promise<HeartbeatSample['counter']> {
  const first = rig.k1.lines.find((l) => l.event === 'decision');
  if (!first) return null;
  const count = await scrape(rig.k1, 'pg_keeper_heartbeats_total', 'peer="node2"').catch(() => null);
  const at = Date.now();
  return count === null || count < 2 ? null : { count: count - 1, elapsedMs: at - lineTime(first) };
}
