// Chaos, short mode for CI: fixed seeds whose schedules hold every fault kind once (the first
// FAULT_KINDS.length faults of any schedule are a shuffle of all kinds), on a real pair with two real
// keepers, the workload running throughout. Fails on any anomaly outside a partition, a keeper that
// died, or a harness failure. What the partition cost (both sides accepting writes, writes lost) is
// printed as diagnostics: it is the documented price of a two-node pair, not a failure.
//
// Replay: npm run chaos -- --seed 21 --faults 7   (or --seed 22)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runOnce } from './harness.js';
import { formatSummary, summarize } from './report.js';
import { FAULT_KINDS } from './schedule.js';

// Two schedules, each with every kind once; between them both partition modes (blackhole, refuse),
// faults aimed at the primary and at the standby, and two variants of the cascade (the standby's
// server killed; its whole host paused).
const SEEDS = [21, 22];
const FAULTS = FAULT_KINDS.length;

for (const seed of SEEDS) {
  test(
    `chaos: seed ${seed}, ${FAULTS} faults (every kind once), no anomaly`,
    { timeout: 8 * 60_000 },
    async (t) => {
      t.diagnostic(`seed ${seed}; replay with: npm run chaos -- --seed ${seed} --faults ${FAULTS}`);
      const progress: string[] = [];
      const started = Date.now();
      const result = await runOnce({
        seed,
        faults: FAULTS,
        signal: new AbortController().signal,
        log: (msg) => progress.push(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s ${msg}`),
      });
      const summary = summarize([result]);
      for (const p of summary.partitions) {
        t.diagnostic(
          `partition (${p.mode}, cut ${p.cutMs} ms): standby promoted after ${p.promotedAfterMs ?? '-'} ms; ` +
            `both servers accepted writes for ${p.bothAcceptedMs} ms; ${p.lostAcked} acknowledged writes lost`,
        );
      }
      t.diagnostic(
        `${summary.ackedWrites} writes acknowledged; run took ${Math.round(result.durationMs / 1000)} s`,
      );
      const report = `${formatSummary(summary)}\n--- progress ---\n${progress.join('\n')}`;
      assert.equal(result.error, null, `the harness failed (seed ${seed}):\n${report}`);
      assert.equal(result.faults.length, FAULTS, `not every fault ran (seed ${seed}):\n${report}`);
      for (const kind of FAULT_KINDS) assert.ok(summary.faultsByKind[kind], `${kind} did not run`);
      assert.deepEqual(
        summary.anomalies.map((a) => `${a.kind}: fault ${a.fault} (${a.faultKind}): ${a.detail}`),
        [],
        `anomalies (seed ${seed}; logs in ${result.logs}):\n${report}`,
      );
    },
  );
}
