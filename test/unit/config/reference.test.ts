import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { KEYS } from '../../../src/config/keys.js';
import { configReference, withReference } from '../../../src/config/reference.js';

test("the README's configuration reference is the one the code generates (npm run docs)", () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.equal(withReference(readme), readme);
});

test('the reference lists every key, its aliases and whether SIGHUP reloads it', () => {
  const ref = configReference();
  for (const [key, def] of Object.entries(KEYS)) {
    assert.match(ref, new RegExp(`\\| \`${key}\``));
    for (const alias of def.aliases ?? []) assert.match(ref, new RegExp(`\`${alias}\``));
  }
  assert.match(ref, /\| `keepalive_time` \/ `keepalives_time` \| `5` \| yes \|/);
  assert.match(ref, /\| `node1_conninfo` \| \*\*required\*\* \| no \(restart\) \|/);
});
