// The demo's screen fits the terminal: a short one loses the footer's first lines, never the
// hints at its end, and no line is wider than the terminal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tracker, type DemoSample } from '../../../src/demo/tracker.js';
import { painter, renderScreen } from '../../../src/demo/view.js';

const sample: DemoSample = {
  now: Date.parse('2026-01-01T12:00:00Z'),
  nodes: [
    { node: 'node1', status: null, heartbeats: null, url: 'http://127.0.0.1:1' },
    { node: 'node2', status: null, heartbeats: null, url: 'http://127.0.0.1:2' },
  ],
  network: {
    state: 'partitioned',
    changedAt: Date.parse('2026-01-01T11:59:58Z'),
    proxyPorts: { node1: 3, node2: 4 },
  },
  arbiter: null,
  writer: null,
  kill: null,
};

test("on a short terminal the screen keeps the footer's last lines, and fits", () => {
  const footer = [
    ...Array.from({ length: 12 }, (_, i) => `info ${i}`),
    'to watch the keepers at work',
    'Ctrl-C stops everything',
  ];
  const text = renderScreen(
    { title: 'pg-keeper demo', sample, tracker: new Tracker(), footer },
    80,
    30,
    painter(false),
  );
  const lines = text.split('\n');
  assert.ok(lines.length <= 30, `${lines.length} lines on a 30-line terminal`);
  assert.equal(lines.at(-1), 'Ctrl-C stops everything');
  assert.ok(lines.includes('to watch the keepers at work'));
  // eslint-disable-next-line no-control-regex -- terminal escape sequences take no room
  assert.ok(lines.every((l) => l.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').length <= 80));
  assert.ok(lines.some((l) => l.startsWith('network   PARTITIONED for 2.0 s')));
});
