// The two nodes of a pair, and how a configuration error reads.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, conninfoOf, peerOf } from '../../../src/config/config.js';
import { parseConninfo } from '../../../src/config/conninfo.js';

test("each node's peer is the other one", () => {
  assert.equal(peerOf('node1'), 'node2');
  assert.equal(peerOf('node2'), 'node1');
});

test("a node's conninfo is the one its key names", () => {
  const pair = { node1: parseConninfo('host=pg1'), node2: parseConninfo('host=pg2') };
  assert.equal(conninfoOf(pair, 'node1'), pair.node1);
  assert.equal(conninfoOf(pair, 'node2'), pair.node2);
});

test('a configuration error names the file and lists every problem on its own line', () => {
  const err = new ConfigError('/etc/pg-keeper.yml', ['key "a" is wrong', 'key "b" is wrong']);
  assert.equal(err.name, 'ConfigError');
  assert.equal(
    err.message,
    '/etc/pg-keeper.yml: invalid configuration:\n  - key "a" is wrong\n  - key "b" is wrong',
  );
  assert.deepEqual(err.problems, ['key "a" is wrong', 'key "b" is wrong']);
});
