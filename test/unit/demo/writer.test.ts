// The writer's bookkeeping of gaps between acknowledgements, which the demo shows as "writes
// stopped for ..." (the writer itself writes to real servers in test/e2e/demo.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GapMeter, NOTABLE_GAP_MS, longestWithin } from '../../../src/demo/writer.js';

test('a gap is the time between two acknowledgements; the longest is kept, and only long ones are notable', () => {
  const m = new GapMeter();
  assert.equal(m.ack(1000, 'node1'), null, 'the first acknowledgement ends no gap');
  assert.equal(m.ack(1100, 'node1'), null, "the writer's own pace is not news");
  const g = m.ack(1100 + NOTABLE_GAP_MS + 200, 'node2');
  assert.deepEqual(g, {
    from: 1100,
    to: 1100 + NOTABLE_GAP_MS + 200,
    ms: NOTABLE_GAP_MS + 200,
    node: 'node2',
  });
  m.ack(m.lastAckAt! + 100, 'node2');
  assert.equal(m.longest?.ms, NOTABLE_GAP_MS + 200);
  assert.equal(m.notable.length, 1);
  assert.equal(m.current(m.lastAckAt! + 42), 42);
});

test('the longest gap within a span is the longest that overlaps it', () => {
  const gaps = [
    { from: 0, to: 1000, ms: 1000, node: 'node1' as const },
    { from: 5000, to: 5600, ms: 600, node: 'node2' as const },
    { from: 9000, to: 12_000, ms: 3000, node: 'node1' as const },
  ];
  assert.equal(longestWithin(gaps, 4000, 8000)?.ms, 600);
  assert.equal(longestWithin(gaps, 4000, 9500)?.ms, 3000);
  assert.equal(longestWithin(gaps, 1500, 4500), null);
});
