// One run of the failover benchmark. Each run builds two fresh pairs (node1 primary, node2
// synchronous standby, a keeper beside each node). On the first it measures, in this order:
// standby loss (standby-loss.ts), the heartbeat period while node2 is down (heartbeats.ts), and the
// return to sync (return-to-sync.ts), under one write loop; on the second, the failover
// (failover.ts).
//
// The failover does not reuse the first pair after its rebuild, although that would save an initdb:
// the rebuilt standby is not equivalent. pg_basebackup copies the primary's postgresql.auto.conf,
// which holds the keeper's `synchronous_standby_names = ''` while the primary is asynchronous, so
// the rebuilt node2 starts with replication already asynchronous, and once promoted its commits do
// not wait for the keeper to clear the setting (in trial runs the first write was acknowledged
// 50-95 ms before the keeper logged promote ok, instead of just after its reload).
// ReturnSample.rebuiltStandbySyncNames records what each rebuilt standby started with.

import { loadAverage } from '../lib/machine.js';
import type { Progress } from '../lib/progress.js';
import { createRig, destroyRig, type Rig } from '../lib/rig.js';
import { WriteLoop } from '../lib/write-loop.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { errorText } from '../../src/util/errors.js';
import { failover } from './failover.js';
import { collectFailedBeats, heartbeatSample } from './heartbeats.js';
import { periodMs, windowMs, type Options } from './options.js';
import { returnToSync } from './return-to-sync.js';
import { iso, type Pace, type RunResult } from './samples.js';
import { standbyLoss } from './standby-loss.js';

export async function oneRun(index: number, opts: Options, progress: Progress): Promise<RunResult> {
  const t0 = Date.now();
  const result: RunResult = {
    index,
    startedAt: iso(t0),
    durationMs: 0,
    loadavgBefore: loadAverage(),
    loadavgAfter: [],
  };
  const pace: Pace = {
    periodMs: periodMs(opts),
    slowMs: Math.max(30_000, 10 * windowMs(opts)),
    phase: (p) => progress.setPhase(`run ${index}: ${p}`),
  };
  const settings = {
    keepalive_time: opts.keepaliveTime,
    keepalive_count: opts.keepaliveCount,
    // Scenario 4 times the 'heartbeat-failed' line of every tick; a keeper may log all but the
    // first of a run of failures at debug level only.
    log_level: 'debug',
  };
  const withRig = async (what: string, body: (rig: Rig) => Promise<void>): Promise<void> => {
    pace.phase(`${what}: creating the pair and keepers`);
    let rig: Rig;
    try {
      rig = await createRig(settings);
    } catch (err) {
      throw new Error(`${what}: setting up the pair: ${(err as Error).stack ?? errorText(err)}`, {
        cause: err,
      });
    }
    try {
      await body(rig);
    } finally {
      pace.phase(`${what}: teardown`);
      await destroyRig(rig);
    }
  };
  try {
    await withRig('standby loss', async (rig) => {
      const { pair } = rig;
      const t1 = pair.target(pair.node1);
      await queryOnce(t1, 'CREATE TABLE bench_standby (id bigint PRIMARY KEY)');
      const loop = new WriteLoop(
        [
          { name: 'node1', target: t1 },
          { name: 'node2', target: pair.target(pair.node2) },
        ],
        'bench_standby',
      );
      loop.start();
      try {
        const lost = await standbyLoss(rig, loop, pace);
        await collectFailedBeats(rig, opts.heartbeats, lost.killAt, pace);
        const back = await returnToSync(rig, loop, pace);
        const beats = await heartbeatSample(rig, lost.killAt, back.upAt);
        // Kept only when all three completed: a run that failed half-way counts for none of them.
        result.standbyLoss = lost.sample;
        result.heartbeats = beats;
        result.returnToSync = back.sample;
      } finally {
        await loop.stop();
      }
    });
    await withRig('failover', async (rig) => {
      result.failover = await failover(rig, pace);
    });
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
  }
  result.durationMs = Date.now() - t0;
  result.loadavgAfter = loadAverage();
  return result;
}
