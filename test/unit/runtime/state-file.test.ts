// The state file is written to `${file}.${pid}.tmp`, fsynced, then renamed over the file: a reader
// sees the old file or the new one, never half of one, and a writer killed between the write and
// the rename leaves a stray temporary file that does not break reading.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readStateFile, writeStateFile } from '../../../src/runtime/state-file.js';
import { sleep, waitFor } from '../../../src/util/wait.js';
import { makeDir, rmDir } from '../../support/temp-dir.js';

const dir = makeDir('pgk-state-');
after(() => rmDir(dir));

/**
 * What a keeper remembers, read back from a file in the first format (written by hand so that
 * this test does not depend on the shape of the type): a keeper that saw the primary while
 * synchronous, and promoted.
 */
function remembered(file: string, seenAt: number): NonNullable<ReturnType<typeof readStateFile>> {
  writeFileSync(
    file,
    JSON.stringify({
      version: 1,
      primarySeenAt: seenAt,
      syncAtLastContact: true,
      savedSyncNames: '*',
      lastAction: { kind: 'promote', at: seenAt + 1 },
    }),
  );
  const state = readStateFile(file);
  assert.ok(state);
  return state;
}

test('a temporary file left by a writer killed before its rename does not break reading', () => {
  const file = join(dir, 'stray.state.json');
  const state = remembered(file, 1000);
  writeStateFile(file, state);
  // What a SIGKILL between writeSync and renameSync leaves: half a file under the temporary name.
  const stray = `${file}.424242.tmp`;
  writeFileSync(stray, JSON.stringify({ version: 1, ...state }).slice(0, 20));
  assert.deepEqual(readStateFile(file), state);
  // The next write (same pid as the one that died, the worst case) replaces it whole.
  writeFileSync(`${file}.${process.pid}.tmp`, '{"version": 1, "primaryS');
  writeStateFile(file, remembered(join(dir, 'other.json'), 2000));
  assert.equal(readStateFile(file)?.primarySeenAt, 2000);
});

test('a reader never sees half a file while a writer rewrites it, or when the writer is SIGKILLed', async (t) => {
  const file = join(dir, 'busy.state.json');
  writeStateFile(file, remembered(join(dir, 'seed.json'), 0));
  // A writer process rewriting the file as fast as it can, each time with a large value, so that
  // a write takes long enough to be caught half-way if it were not atomic.
  const writer = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { readStateFile, writeStateFile } = await import(${JSON.stringify(new URL('../../../src/runtime/state-file.ts', import.meta.url).href)});
       const file = ${JSON.stringify(file)};
       const base = readStateFile(file);
       process.stdout.write('ready\\n');
       for (let i = 1; ; i++) writeStateFile(file, { ...base, primarySeenAt: i, savedSyncNames: 'x'.repeat(64 * 1024) });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => writer.once('exit', resolve));
  try {
    let ready = false;
    writer.stdout.on('data', () => (ready = true));
    await waitFor(() => ready, 'the writer to start', 10_000, 10);
    let reads = 0;
    let last = 0;
    for (const until = Date.now() + 300; Date.now() < until; reads++) {
      const seen = readStateFile(file)?.primarySeenAt ?? -1; // throws on a half file
      assert.ok(seen >= last, `read ${seen} after ${last}`);
      last = seen;
      if (reads % 50 === 0) await sleep(0);
    }
    t.diagnostic(`${reads} reads while the writer wrote ${last} times`);
    assert.ok(last > 0 && reads > 10, `${reads} reads, last saw write ${last}`);
  } finally {
    writer.kill('SIGKILL');
    await exited;
  }
  // Killed wherever it was: the file is whole, at most one temporary file is left beside it.
  assert.ok((readStateFile(file)?.primarySeenAt ?? 0) > 0);
  const strays = readdirSync(dir).filter((f) => f.startsWith('busy.state.json.') && f.endsWith('.tmp'));
  assert.ok(strays.length <= 1, strays.join(', '));
});
