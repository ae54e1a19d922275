// The report's count of what the operator did with pg-keeper: rejoins by method (forced ones and
// hand rebuilds apart), switchovers by outcome, and failovers without the switchovers' promotions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunResult } from './harness.js';
import { formatLifecycle, summarize } from './report.js';
import { startedFault, type FaultRecord, type RejoinRecord, type SwitchoverRecord } from './types.js';

const rejoin = (over: Partial<RejoinRecord>): RejoinRecord => ({
  node: 'node1',
  from: 'node2',
  why: 'old-primary-down',
  at: 0,
  ms: 2000,
  method: 'rewind',
  refused: null,
  forced: false,
  wouldDiscard: null,
  lostIds: [],
  discardedIds: [],
  discarded: 0,
  keeperSaidAckedAlone: false,
  failed: null,
  ...over,
});

const switchover = (over: Partial<SwitchoverRecord>): SwitchoverRecord => ({
  from: 'node2',
  to: 'node1',
  via: 'node2',
  at: 0,
  ms: 1200,
  outcome: 'ok',
  detail: '',
  writeGapMs: 250,
  ...over,
});

function fault(index: number, over: Partial<FaultRecord>): FaultRecord {
  return {
    ...startedFault(
      {
        index,
        kind: 'kill-server',
        target: 'primary',
        mode: null,
        variant: null,
        member: null,
        durationMs: 0,
        quietMs: 0,
      },
      'node1',
      'node1',
      0,
    ),
    ...over,
  };
}

const result = (faults: FaultRecord[]): RunResult => ({
  seed: 1,
  planned: faults.length,
  faults,
  check: null,
  anomalies: [],
  error: null,
  aborted: false,
  durationMs: 0,
  build: { head: 'x', builtAt: 'y' },
  finalPrimary: 'node1',
  walBytes: null,
  logs: null,
  arbiter: null,
  cancelAfterMs: null,
  timing: null,
  manageServers: true,
});

test("the summary counts the operator's rejoins and switchovers, and failovers without the switchovers", () => {
  const s = summarize([
    result([
      fault(1, {
        promotions: [
          { node: 'node2', at: 10, switchover: false },
          { node: 'node1', at: 20, switchover: true },
        ],
        rejoins: [rejoin({ ms: 3000 })],
        switchovers: [switchover({ ms: 1000, writeGapMs: 200 })],
      }),
      fault(2, {
        promotions: [{ node: 'node2', at: 30, switchover: false }],
        rejoins: [
          rejoin({
            method: 'basebackup',
            forced: true,
            refused: 'may have',
            wouldDiscard: 20,
            lostIds: Array.from({ length: 20 }, (_, i) => 101 + i),
            discarded: 42,
            discardedIds: Array.from({ length: 42 }, (_, i) => 101 + i),
          }),
          rejoin({ method: 'by-hand', failed: 'failed: exit 1: pg_rewind failed' }),
        ],
        switchovers: [
          switchover({ outcome: 'refused', detail: 'no standby is synchronous now' }),
          switchover({ ms: 1400, writeGapMs: 300 }),
        ],
      }),
    ]),
  ]);
  assert.equal(s.failovers, 2);
  assert.deepEqual(s.rejoins, {
    msByMethod: { rewind: [3000], basebackup: [2000], restart: [] },
    byHand: 1,
    forced: 1,
    forcedDiscarded: 42,
    forcedLost: [
      {
        seed: 1,
        fault: 2,
        kind: 'kill-server',
        node: 'node1',
        lostIds: Array.from({ length: 20 }, (_, i) => 101 + i),
        discardedIds: Array.from({ length: 42 }, (_, i) => 101 + i),
      },
    ],
    failed: 1,
  });
  assert.deepEqual(s.switchovers, { ok: 2, refused: 1, failed: 0, ms: [1000, 1400], writeGapMs: [200, 300] });
  assert.deepEqual(formatLifecycle(s), [
    'pg-keeper rejoin by the operator: 2 (rewind 1, basebackup 1, restart 0); 1 refused then forced ' +
      '(discarding 42 acknowledged writes), 1 failed or refused, 1 rebuilt by hand instead',
    '  rewind: took 3.0 s median (3.0 s-3.0 s), from the first command to the server streaming',
    '  basebackup: took 2.0 s median (2.0 s-2.0 s), from the first command to the server streaming',
    '  forced: seed 1 fault 2 (kill-server), node1: 20 acknowledged writes not on the new primary before ' +
      '--force (ids 101, 102, 103, 104, 105, 106 ... 118, 119, 120); 42 discarded in all ' +
      '(ids 101, 102, 103, 104, 105, 106 ... 140, 141, 142)',
    'pg-keeper switchover home by the operator: 2 done, 1 refused, 0 failed; took 1.2 s median (1.0 s-1.4 s); ' +
      'longest stretch without an acknowledged write 0.3 s median (0.2 s-0.3 s)',
  ]);
});
