// runHook (after_command, after_async_command): /bin/sh -c in a process group of its own, so that
// a timeout ends the command and everything it started, not only the shell.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hookSucceeded, runHook } from '../../../src/hooks/run.js';
import { isProcessAlive } from '../../../src/util/procfs.js';
import { waitFor } from '../../../src/util/wait.js';
import { makeDir, rmDir } from '../../support/temp-dir.js';

const dir = makeDir('pgk-hook-');
after(() => rmDir(dir));

test('a hook that times out has its whole process group killed, background children included', async () => {
  const pids = join(dir, 'pids');
  // The shell starts a background child, writes both pids down, and waits far past the timeout.
  const r = await runHook(`sleep 30 & echo "$$ $!" > ${pids}; sleep 30`, {}, 300);
  assert.equal(r.timedOut, true);
  assert.equal(hookSucceeded(r), false);
  assert.ok(r.durationMs < 5000, `took ${Math.round(r.durationMs)} ms`);
  const [shell, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
  assert.ok(shell && child && shell !== child, `pids: ${shell} ${child}`);
  // Gone (or a zombie that only its parent, init, has not reaped yet).
  await waitFor(
    () => !isProcessAlive(shell) && !isProcessAlive(child),
    'both processes to be gone',
    3000,
    20,
  );
});

test('a hook gets the event in its environment, and its output is kept', async () => {
  const r = await runHook('echo "event=$PG_KEEPER_EVENT"; exit 3', { PG_KEEPER_EVENT: 'promote' }, 5000);
  assert.equal(r.exitCode, 3);
  assert.equal(r.timedOut, false);
  assert.equal(r.output, 'event=promote');
  assert.equal(hookSucceeded(r), false);
  assert.equal(hookSucceeded(await runHook('true', {}, 5000)), true);
});
