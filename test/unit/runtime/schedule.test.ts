// The tick schedule reports how late a scheduled tick started (pg_keeper_tick_delay_seconds):
// an event loop held up for 100 ms makes the tick due in the meantime at least that late, less
// the wait it had anyway.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '../../../src/runtime/clock.js';
import { TickSchedule } from '../../../src/runtime/schedule.js';

test('a tick held up by a busy event loop is reported late by about as long', async () => {
  const late: number[] = [];
  let ticks = 0;
  let held = false;
  const done = new Promise<void>((resolve) => {
    const schedule = new TickSchedule(
      systemClock,
      20,
      async () => {
        ticks += 1;
        if (ticks === 1 && !held) {
          held = true;
          // After this tick the next is due in about 20 ms: hold the loop for 100 ms first.
          setImmediate(() => {
            const until = performance.now() + 100;
            while (performance.now() < until) {
              // busy
            }
          });
        }
        if (ticks === 3) {
          void schedule.stop(100);
          resolve();
        }
      },
      (ms) => late.push(ms),
    );
    schedule.start();
  });
  await done;
  assert.ok(late.length >= 2, `lateness reported for scheduled ticks: ${late.join(', ')}`);
  assert.ok((late[1] ?? 0) >= 70, `the tick after the 100 ms hold was late: ${late.join(', ')} ms`);
});
