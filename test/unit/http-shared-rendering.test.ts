import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sharedRendering } from '../../src/http/server.js';

test('scrapes that arrive together share one rendering', async () => {
  let renders = 0;
  let release: (v: string) => void = () => {};
  const render = sharedRendering(
    () => {
      renders++;
      return new Promise<string>((r) => (release = r));
    },
    100,
    () => 'v1',
  );
  const all = Promise.all(Array.from({ length: 50 }, () => render()));
  release('text');
  assert.deepEqual(new Set(await all), new Set(['text']));
  assert.equal(renders, 1);
});

test('a rendering is reused only within the reuse window (a fake clock: no timing on a busy machine)', async () => {
  let renders = 0;
  let clock = 1000;
  const render = sharedRendering(
    async () => `r${++renders}`,
    100,
    () => 'v1',
    () => clock,
  );
  assert.equal(await render(), 'r1');
  clock += 99;
  assert.equal(await render(), 'r1');
  clock += 1;
  assert.equal(await render(), 'r2');
});

test('a failed rendering is not kept: the next scrape renders again', async () => {
  let renders = 0;
  const render = sharedRendering(
    async () => {
      renders++;
      if (renders === 1) throw new Error('collect failed');
      return 'ok';
    },
    1000,
    () => 'v1',
  );
  await assert.rejects(render(), /collect failed/);
  assert.equal(await render(), 'ok');
});

test("a change of the keeper's state is never hidden by a reused rendering", async () => {
  let renders = 0;
  let version = { paused: false };
  const render = sharedRendering(
    async () => `r${++renders} paused=${version.paused}`,
    10_000,
    () => version,
  );
  assert.equal(await render(), 'r1 paused=false');
  assert.equal(await render(), 'r1 paused=false');
  version = { paused: true };
  assert.equal(await render(), 'r2 paused=true');
});
