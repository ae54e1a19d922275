// How the operator reads pg-keeper rejoin and switchover (their exit status and their words, as
// rejoin-command.ts and switchover-command.ts print them), and the figures it keeps.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ackedSince,
  classifyRejoin,
  classifySwitchover,
  formatIds,
  longestAckGap,
  promotedBySwitchover,
  spread,
  type CliRun,
} from './lifecycle.js';
import type { WriteRecord } from './workload.js';

const run = (code: number | null, lines: string[], over: Partial<CliRun> = {}): CliRun => ({
  code,
  out: lines.map((l) => `${l}\n`).join(''),
  ms: 1234,
  timedOut: false,
  ...over,
});

const R = 'pg-keeper rejoin: ';
const S = 'pg-keeper switchover: ';

describe('pg-keeper rejoin, as the operator reads it', () => {
  test('done: the method from the last line', () => {
    const out = [
      `${R}checking: is the peer the primary, on a newer timeline?`,
      `${R}rewinding: pg_rewind from the new primary`,
      `${R}done in 2.3 s (rewind): node1 streams from node2`,
    ];
    assert.deepEqual(classifyRejoin(run(0, out)), { kind: 'ok', method: 'rewind' });
    const bb = [
      `${R}basebackup: pg_rewind could not (...)`,
      `${R}done in 9.0 s (basebackup): node2 streams from node1`,
    ];
    assert.deepEqual(classifyRejoin(run(0, bb)), { kind: 'ok', method: 'basebackup' });
    const nothing = [`${R}the server already streams from the peer: nothing to do`];
    assert.deepEqual(classifyRejoin(run(0, nothing)), { kind: 'ok', method: 'restart' });
  });

  test("refused by the keeper's state: what --force is for", () => {
    const out = [
      `${R}this server was asynchronous as a primary and may have acknowledged commits its standby lacks: a rejoin would discard them; not rejoining (--force rejoins anyway, discarding what only this server has)`,
    ];
    assert.deepEqual(classifyRejoin(run(1, out)), {
      kind: 'refused-unsafe',
      reason:
        'this server was asynchronous as a primary and may have acknowledged commits its standby lacks: a rejoin would discard them',
    });
    const unknown = [
      `${R}the state file /x/node1.state.json does not say whether this server acknowledged commits alone; not rejoining (--force rejoins anyway, discarding what only this server has)`,
    ];
    assert.equal(classifyRejoin(run(1, unknown)).kind, 'refused-unsafe');
  });

  test('refused by the arbiter: never forced', () => {
    const key = [
      `${R}node1 holds the primary's key in etcd: it is the primary; not rejoining (--force rejoins anyway, discarding what only this server has)`,
    ];
    assert.equal(classifyRejoin(run(1, key)).kind, 'refused-arbiter');
    const etcd = [
      `${R}etcd does not answer (timeout): cannot check who holds the primary's key; not rejoining (--force rejoins anyway, discarding what only this server has)`,
    ];
    assert.equal(classifyRejoin(run(1, etcd)).kind, 'refused-arbiter');
  });

  test('refused by rejoin() itself, failed, and killed at the deadline', () => {
    const refused = [
      `${R}checking: ...`,
      `${R}refused: the peer is not a primary: there is nothing to rejoin`,
    ];
    assert.deepEqual(classifyRejoin(run(1, refused)), {
      kind: 'refused',
      reason: 'the peer is not a primary: there is nothing to rejoin',
    });
    const failed = [
      `${R}rewinding: pg_rewind from the new primary`,
      `${R}failed: pg_ctl timed out after 60000 ms`,
    ];
    assert.deepEqual(classifyRejoin(run(1, failed)), {
      kind: 'failed',
      reason: `exit 1: failed: pg_ctl timed out after 60000 ms`,
    });
    const killed = classifyRejoin(
      run(null, [`${R}rewinding: pg_rewind from the new primary`], { timedOut: true }),
    );
    assert.equal(killed.kind, 'failed');
    assert.match(killed.kind === 'failed' ? killed.reason : '', /no answer within 1234 ms; last: rewinding/);
    // exit 0 without the line that says it is done is not taken for success
    assert.equal(classifyRejoin(run(0, [`${R}starting: ...`])).kind, 'failed');
  });
});

describe('pg-keeper switchover, as the operator reads it', () => {
  test('done', () => {
    const out = [
      `${S}switchover 1a2b to node1 asked of node2's keeper`,
      `${S}0.1 s  node2: primary, primary; switchover stopping`,
      `${S}done in 1.2 s: node1 is the primary, and the other node streams from it synchronously`,
    ];
    assert.deepEqual(classifySwitchover(run(0, out)), { kind: 'ok' });
  });

  test('refused, by HTTP or by the keeper once asked; failed; timed out', () => {
    assert.deepEqual(classifySwitchover(run(1, [`${S}refused (HTTP 409): no standby is synchronous now`])), {
      kind: 'refused',
      reason: 'no standby is synchronous now',
    });
    assert.deepEqual(
      classifySwitchover(
        run(1, [`${S}switchover 1a2b to node1 asked of node1's keeper`, `${S}refused: the keeper is paused`]),
      ),
      { kind: 'refused', reason: 'the keeper is paused' },
    );
    assert.equal(
      classifySwitchover(
        run(1, [`${S}failed: node1 did not promote within 15000 ms; this server is the primary again`]),
      ).kind,
      'failed',
    );
    assert.equal(classifySwitchover(run(null, [], { timedOut: true })).kind, 'failed');
    assert.equal(
      classifySwitchover(run(1, [`${S}not done after 120 s; see both keepers' /status and logs`])).kind,
      'failed',
    );
  });
});

describe('what the operator measures', () => {
  const w = (id: number, node: 'node1' | 'node2', ackAt: number | null): WriteRecord => ({
    id,
    loop: 'main',
    node,
    sentAt: (ackAt ?? 0) - 5,
    ackAt,
    timeline: ackAt === null ? null : 1,
    error: null,
  });

  test("a node's writes since its last rejoin: acknowledged ones only, its own only", () => {
    const records = [
      w(1, 'node1', 100),
      w(2, 'node1', 200),
      w(3, 'node2', 250),
      w(4, 'node1', null),
      w(5, 'node1', 300),
    ];
    assert.deepEqual(ackedSince(records, 'node1', 0), [1, 2, 5]);
    assert.deepEqual(ackedSince(records, 'node1', 200), [5]);
    assert.deepEqual(ackedSince(records, 'node2', 0), [3]);
  });

  test('the longest stretch without an acknowledged write, edges included', () => {
    const records = [
      w(1, 'node1', 110),
      w(2, 'node1', 120),
      w(3, 'node2', 400),
      w(4, 'node2', null),
      w(5, 'node2', 450),
    ];
    assert.equal(longestAckGap(records, 100, 500), 280);
    assert.equal(longestAckGap(records, 100, 1000), 550, 'nothing acknowledged since 450');
    assert.equal(longestAckGap([], 100, 300), 200);
  });

  test("a switchover's promotion is told from a failover's by the keeper's reason", () => {
    assert.ok(
      promotedBySwitchover({
        event: 'promote',
        reason:
          'switchover 287fa218: the primary stopped cleanly at 0/30508D8, replayed past it: promoting; promoted in 27 ms',
      }),
    );
    assert.ok(
      !promotedBySwitchover({
        event: 'promote',
        reason: 'primary missed 3 of 3 heartbeats in a row: promoting this standby; promoted in 40 ms',
      }),
    );
    assert.ok(!promotedBySwitchover({ event: 'promote' }));
  });

  test('spread: min, median, max', () => {
    assert.equal(spread([]), null);
    assert.deepEqual(spread([3]), { n: 1, min: 3, median: 3, max: 3 });
    assert.deepEqual(spread([5, 1, 3, 9]), { n: 4, min: 1, median: 4, max: 9 });
  });
});

test('lostIds as a report names them: a short list whole, a long one by its ends', () => {
  assert.equal(formatIds([]), '');
  assert.equal(formatIds([3, 4, 9]), '3, 4, 9');
  const twelve = Array.from({ length: 12 }, (_, i) => i + 1);
  assert.equal(formatIds(twelve), twelve.join(', '));
  assert.equal(formatIds([...twelve, 13]), '1, 2, 3, 4, 5, 6 ... 11, 12, 13');
});
