import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { situationsReference, withSituations } from '../../../src/policy/reference.js';
import { SITUATIONS } from '../../../src/policy/types.js';

test("docs/SITUATIONS.md's table is the one the policy generates (npm run docs)", () => {
  const doc = readFileSync(new URL('../../../docs/SITUATIONS.md', import.meta.url), 'utf8');
  assert.equal(withSituations(doc), doc);
});

test('the table lists every situation in classification order, with its actions and guards', () => {
  const lines = situationsReference()
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l));
  assert.deepEqual(
    lines.map((l) => /`([a-z-]+)`/.exec(l)?.[1]),
    [...SITUATIONS],
  );
  const lost = lines.find((l) => l.includes('`standby-lost-primary`')) ?? '';
  assert.match(
    lost,
    /`claim-lease`, `promote`, `run-hook` \| `never-saw-primary`, `not-synchronous`, `stream-alive`, `paused`, `arbiter-unreachable`, `no-lease` \|$/,
  );
});
