// SIGHUP: a reload takes the reloadable settings at once and keeps the others until a
// restart, and says which is which in the configuration's own key names.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/config/load.js';
import { reloadedConfig } from '../../../src/config/reload.js';

const BASE = `
node1_conninfo: "host=127.0.0.1 port=5551 password=s3cret-pw"
node2_conninfo: "host=127.0.0.1 port=5552"
node: node1
`;
const config = (extra = '') => parseConfig(`${BASE}${extra}`, 'f.yml', {}, {});

test('an unchanged file changes nothing', () => {
  const running = config('keepalive_time: 2\n');
  const r = reloadedConfig(running, config('keepalive_time: 2\n'));
  assert.deepEqual(r.changed, []);
  assert.deepEqual(r.kept, []);
  assert.deepEqual(r.config, running);
});

test('a reloadable setting is taken, and said as key old -> new, as check-config shows it', () => {
  const r = reloadedConfig(config('after_command_timeout: 10\n'), config('after_command_timeout: 2.5\n'));
  assert.deepEqual(r.changed, [{ key: 'after_command_timeout', text: 'after_command_timeout 10 -> 2.5' }]);
  assert.deepEqual(r.kept, []);
  assert.equal(r.config.afterCommandTimeoutMs, 2500);
});

test('a default derived from a reloaded setting changes with it', () => {
  const r = reloadedConfig(config('keepalive_time: 2\n'), config('keepalive_time: 0.5\n'));
  assert.deepEqual(r.changed, [
    { key: 'keepalive_time', text: 'keepalive_time 2 -> 0.5' },
    { key: 'heartbeat_timeout', text: 'heartbeat_timeout 1.6 -> 0.4' },
    { key: 'stream_timeout', text: 'stream_timeout 8 -> 2' },
  ]);
});

test('a restart-only setting is kept at its running value, and said so', () => {
  const running = config('listen: "127.0.0.1:9000"\n');
  const r = reloadedConfig(running, config('listen: "127.0.0.1:9001"\npaused: true\n'));
  assert.deepEqual(r.kept, [{ key: 'listen', text: 'listen 127.0.0.1:9000 -> 127.0.0.1:9001' }]);
  assert.deepEqual(r.changed, [{ key: 'paused', text: 'paused false -> true' }]);
  assert.deepEqual(r.config.listen, running.listen);
  assert.equal(r.config.paused, true);
});

test('a changed secret is said without its values', () => {
  const token = reloadedConfig(config('http_token: one\n'), config('http_token: two\n'));
  assert.deepEqual(token.changed, [{ key: 'http_token', text: 'http_token (changed)' }]);
  const running = config();
  const pw = reloadedConfig(running, parseConfig(BASE.replace('s3cret-pw', 'n3w-pw'), 'f.yml', {}, {}));
  assert.deepEqual(pw.kept, [{ key: 'node1_conninfo', text: 'node1_conninfo (changed)' }]);
  assert.equal(pw.config.node1, running.node1, 'restart only: the running conninfo stays');
});

test('a field filled by two keys is compared once, under the first key', () => {
  const r = reloadedConfig(config('http_token: one\n'), config('http_token: two\n'));
  assert.equal(r.changed.length, 1);
  assert.equal(r.changed[0]?.key, 'http_token');
});
