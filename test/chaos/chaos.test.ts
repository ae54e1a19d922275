// Chaos, short mode for CI: fixed seeds on a real pair with two real keepers, the workload running
// throughout. Fails on any anomaly, a keeper that died, or a harness failure.
//
// Two-node rounds: each schedule holds every fault kind once (the first FAULT_KINDS.length faults of
// any schedule are a shuffle of all kinds). What a partition cost (both sides accepting writes,
// writes lost) is printed as diagnostics: it is the documented price of a two-node pair, not a
// failure.
//
// Arbiter round: etcd with three members and a 3 s lease; the schedule begins with every kind the
// arbiter adds, and there partitions are judged: a lost write or two servers accepting writes is
// an anomaly.
//
// Each round also checks availability where the schedule owes it (a primary lost for longer than
// the keepers' timing allows, availability.ts), and says which faults did.
//
// Replay: npm run chaos -- --seed 21 --faults 7   (or --seed 22)
//         npm run chaos -- --arbiter --members 3 --ttl 3 --seed 661 --faults 8

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { runOnce, type RunOptions } from './harness.js';
import { formatSummary, summarize, type Summary } from './report.js';
import { ARBITER_FAULT_KINDS, FAULT_KINDS, type FaultKind } from './schedule.js';

interface Round {
  name: string;
  seed: number;
  faults: number;
  arbiter?: RunOptions['arbiter'];
  /** Kinds the round must have injected. */
  kinds: readonly FaultKind[];
  /** Faults (index kind) whose availability check must have run: the schedule owes a promotion there. */
  owed: string[];
  replay: string;
}

const ROUNDS: Round[] = [
  // Between them both partition modes (blackhole, refuse), faults aimed at the primary and at the
  // standby, and two variants of the cascade (the standby's server killed; its whole host paused).
  {
    name: 'seed 21, 7 faults (every kind once)',
    seed: 21,
    faults: FAULT_KINDS.length,
    kinds: FAULT_KINDS,
    // The hung hook kills the primary; fault 5 freezes it for 3.5 s.
    owed: ['2 hung-hook', '5 freeze-server'],
    replay: 'npm run chaos -- --seed 21 --faults 7',
  },
  {
    name: 'seed 22, 7 faults (every kind once)',
    seed: 22,
    faults: FAULT_KINDS.length,
    kinds: FAULT_KINDS,
    // Fault 4 kills the primary's server for 3.5 s; the hung hook kills it too.
    owed: ['4 kill-server', '5 hung-hook'],
    replay: 'npm run chaos -- --seed 22 --faults 7',
  },
  // The primary isolated for 6.2 s (black hole: owes the failover after the lease), the standby
  // cut from etcd while the primary's host is lost, a partition between the nodes of 4.9 s (the
  // primary goes async under its lease), etcd down for 9 s, its leader frozen then killed; then a
  // cascade (the standby's host paused) and a hung hook.
  {
    name: 'arbiter, seed 661, 8 faults (every arbiter kind once, a cascade, a hung hook)',
    seed: 661,
    faults: 8,
    arbiter: { members: 3, ttl: 3 },
    kinds: ['partition', ...ARBITER_FAULT_KINDS, 'cascade-kill', 'hung-hook'],
    owed: ['1 isolate-primary', '2 cut-standby-etcd', '8 hung-hook'],
    replay: 'npm run chaos -- --arbiter --members 3 --ttl 3 --seed 661 --faults 8',
  },
];

function diagnostics(t: TestContext, summary: Summary): void {
  for (const p of summary.partitions) {
    t.diagnostic(
      `${p.kind} (${p.mode}, cut ${p.cutMs} ms): ` +
        (p.promotedAfterMs === null ? 'no promotion; ' : `standby promoted after ${p.promotedAfterMs} ms; `) +
        `both servers accepted writes for ${p.bothAcceptedMs} ms; ${p.lostAcked} acknowledged writes lost`,
    );
  }
  for (const a of summary.availability)
    t.diagnostic(
      `availability, fault ${a.fault} (${a.kind}, ${a.loss}): ` +
        (a.checked
          ? `owed within ${a.deadlineMs} ms, promoted after ${a.promotedAfterMs ?? '-'} ms`
          : `lost ${a.lostForMs} ms, under the ${a.deadlineMs} ms a promotion may take: not owed`),
    );
  for (const b of summary.bothPrimaryOk)
    t.diagnostic(`fault ${b.fault} (${b.kind}): both keepers answered /primary 200 for ${b.forMs} ms`);
}

for (const round of ROUNDS) {
  test(`chaos: ${round.name}, no anomaly`, { timeout: 8 * 60_000 }, async (t) => {
    t.diagnostic(`replay with: ${round.replay}`);
    const progress: string[] = [];
    const started = Date.now();
    const result = await runOnce({
      seed: round.seed,
      faults: round.faults,
      arbiter: round.arbiter,
      signal: new AbortController().signal,
      log: (msg) => progress.push(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s ${msg}`),
    });
    const summary = summarize([result]);
    diagnostics(t, summary);
    t.diagnostic(
      `${summary.ackedWrites} writes acknowledged; run took ${Math.round(result.durationMs / 1000)} s`,
    );
    const report = `${formatSummary(summary)}\n--- progress ---\n${progress.join('\n')}`;
    const seed = round.seed;
    assert.equal(result.error, null, `the harness failed (seed ${seed}):\n${report}`);
    assert.equal(result.faults.length, round.faults, `not every fault ran (seed ${seed}):\n${report}`);
    for (const kind of round.kinds) assert.ok(summary.faultsByKind[kind], `${kind} did not run`);
    assert.deepEqual(
      summary.anomalies.map((a) => `${a.kind}: fault ${a.fault} (${a.faultKind}): ${a.detail}`),
      [],
      `anomalies (seed ${seed}; logs in ${result.logs}):\n${report}`,
    );
    // The failover-after-loss checks must have run, not been skipped as too short.
    assert.deepEqual(
      summary.availability.filter((a) => a.checked).map((a) => `${a.fault} ${a.kind}`),
      round.owed,
      `the availability checks that ran (seed ${seed}):\n${report}`,
    );
  });
}
