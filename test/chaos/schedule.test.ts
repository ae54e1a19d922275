// The schedules: a two-node seed keeps the schedule it always had (older results replay), and an
// arbiter schedule covers the arbiter's kinds first, with durations around the lease's TTL.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ARBITER_FAULT_KINDS, FAULT_KINDS, makeSchedule } from './schedule.js';

describe('chaos schedules', () => {
  test('a two-node seed gives the schedule it always gave', () => {
    const s = makeSchedule({ seed: 21, faults: 7 });
    assert.deepEqual(
      s.map((f) => `${f.kind}/${f.target}/${f.durationMs}/${f.mode ?? f.variant ?? '-'}`),
      [
        'kill-server/standby/2402/-',
        'hung-hook/primary/0/-',
        'cascade-kill/null/2361/server',
        'partition/null/1484/blackhole',
        'freeze-server/primary/3460/-',
        'restart-server/primary/733/-',
        'kill-keeper/standby/2596/-',
      ],
    );
    assert.ok(s.every((f) => f.member === null));
  });

  test('an arbiter schedule begins with every arbiter kind, then every other kind', () => {
    const arbiterKinds = ['partition', ...ARBITER_FAULT_KINDS];
    const s = makeSchedule({ seed: 5, faults: 14, arbiter: { members: 3, ttlMs: 3000 } });
    assert.deepEqual(
      s
        .slice(0, arbiterKinds.length)
        .map((f) => f.kind)
        .sort(),
      [...arbiterKinds].sort(),
    );
    const next = s
      .slice(arbiterKinds.length, arbiterKinds.length + FAULT_KINDS.length - 1)
      .map((f) => f.kind);
    assert.deepEqual(next.sort(), FAULT_KINDS.filter((k) => k !== 'partition').sort());
  });

  test("the arbiter's faults last around the TTL, and member faults pick a leader or a follower of three", () => {
    for (const seed of [1, 2, 3, 4]) {
      for (const f of makeSchedule({ seed, faults: 30, arbiter: { members: 3, ttlMs: 3000 } })) {
        if (f.kind === 'isolate-primary') assert.ok(f.durationMs >= 1500 && f.durationMs <= 9000);
        if (f.kind === 'etcd-kill' || f.kind === 'etcd-freeze') assert.ok(f.member !== null);
      }
      for (const f of makeSchedule({ seed, faults: 30, arbiter: { members: 1, ttlMs: 3000 } }))
        assert.equal(f.member, null);
    }
  });
});
