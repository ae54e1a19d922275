// The key table, key by key: what each key fills, what it accepts at the edges of its
// range, and what an operator reads when a value is refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeConfig } from '../../../src/config/load.js';
import { KEY_NAMES, keysOf, parseListen } from '../../../src/config/keys.js';
import { BASE, configWith, problemsOf } from './fixtures.js';

test('each key fills its own field', () => {
  const cfg = configWith(
    [
      'after_command: "sh /etc/vip-up.sh"',
      'after_async_command: "sh /etc/page.sh"',
      'sync_restore_max_lag: 4096',
      'paused: true',
      'http_token: tok-123456',
      'tune_wal_retrieve_retry_interval: true',
      'log_level: debug',
      '',
    ].join('\n'),
  );
  assert.equal(cfg.node1.params.port, '5551');
  assert.equal(cfg.node2.params.port, '5552');
  assert.equal(cfg.afterCommand, 'sh /etc/vip-up.sh');
  assert.equal(cfg.afterAsyncCommand, 'sh /etc/page.sh');
  assert.equal(cfg.syncRestoreMaxLagBytes, 4096);
  assert.equal(cfg.paused, true);
  assert.equal(cfg.httpToken, 'tok-123456');
  assert.equal(cfg.tuneWalRetrieveRetryInterval, true);
  assert.equal(cfg.logLevel, 'debug');
});

test('a conninfo must be a non-empty string', () => {
  assert.deepEqual(problemsOf(BASE.replace(/^node1_conninfo: .*$/m, 'node1_conninfo: 5432')), [
    'key "node1_conninfo" must be a non-empty string, got 5432',
  ]);
  assert.deepEqual(problemsOf(BASE.replace(/^node1_conninfo: .*$/m, 'node1_conninfo: "  "')), [
    'key "node1_conninfo" must be a non-empty string, got "  "',
  ]);
});

test('a missing node2_conninfo says what to give', () => {
  assert.deepEqual(problemsOf(BASE.replace(/^node2_conninfo: .*$/m, '')), [
    'key "node2_conninfo" is required: a libpq connection string such as "host=pg2 port=5432 dbname=postgres"',
  ]);
});

test('a command key left empty, or blank, means no command', () => {
  assert.equal(configWith('after_command:\n').afterCommand, null);
  assert.equal(configWith('after_command: "  "\n').afterCommand, null);
});

test('a command must be a string', () => {
  assert.deepEqual(problemsOf(`${BASE}after_command: 5\n`), [
    'key "after_command" must be a string (or empty), got 5',
  ]);
});

test('a switch takes true and false, nothing else', () => {
  assert.equal(configWith('paused: true\n').paused, true);
  assert.equal(configWith('paused: false\n').paused, false);
  assert.deepEqual(problemsOf(`${BASE}paused: 1\n`), ['key "paused" must be true or false, got 1']);
});

test('a number written in quotes is not a number', () => {
  assert.deepEqual(problemsOf(`${BASE}keepalive_time: "5"\n`), [
    'key "keepalive_time" must be a number from 0.05 to 3600 seconds, got "5"',
  ]);
});

test('a range includes both of its ends', () => {
  assert.equal(configWith('keepalive_time: 0.05\nheartbeat_timeout: 0.01\n').keepaliveTimeMs, 50);
  assert.equal(configWith('keepalive_count: 1000\n').keepaliveCount, 1000);
  assert.deepEqual(problemsOf(`${BASE}keepalive_count: 1001\n`), [
    'key "keepalive_count" must be an integer from 1 to 1000, got 1001',
  ]);
});

test('sync_restore_max_lag is a whole number of bytes', () => {
  assert.deepEqual(problemsOf(`${BASE}sync_restore_max_lag: 1.5\n`), [
    `key "sync_restore_max_lag" must be an integer from 0 to ${2 ** 50} bytes, got 1.5`,
  ]);
});

test('a choice among more than two lists them all', () => {
  assert.deepEqual(problemsOf(`${BASE}log_level: verbose\n`), [
    'key "log_level" must be one of debug, info, warn, error, got "verbose"',
  ]);
});

test('heartbeat_timeout below keepalive_time is accepted; at or above it, the message gives both in seconds', () => {
  assert.equal(configWith('keepalive_time: 1\nheartbeat_timeout: 0.5\n').heartbeatTimeoutMs, 500);
  assert.deepEqual(problemsOf(`${BASE}keepalive_time: 1\nheartbeat_timeout: 1.5\n`), [
    'key "heartbeat_timeout" must be below keepalive_time (1 s), got 1.5 s: a heartbeat must end before the next one is due',
  ]);
});

test('listen takes HOST:PORT, a bracketed IPv6 address, or :PORT for every address', () => {
  assert.deepEqual(parseListen('127.0.0.1:9754'), { host: '127.0.0.1', port: 9754 });
  assert.deepEqual(parseListen('[::1]:9754'), { host: '::1', port: 9754 });
  assert.deepEqual(parseListen(':9754'), { host: '0.0.0.0', port: 9754 });
  assert.deepEqual(parseListen(' localhost:65535\n'), { host: 'localhost', port: 65535 });
});

test('listen refuses a port above 65535, an unbracketed IPv6 address and trailing text', () => {
  for (const bad of ['127.0.0.1:65536', '127.0.0.1:123456', '::1:9754', 'a:b:9754', 'localhost:9754x']) {
    assert.equal(parseListen(bad), null, bad);
  }
  assert.deepEqual(problemsOf(`${BASE}listen: 9754\n`), [
    'key "listen" must be HOST:PORT with a port 0-65535, got 9754',
  ]);
});

test('check-config shows a token as ******** and no token as null, under http_token only', () => {
  const shown = describeConfig(configWith('http_token: tok-123456\n'));
  assert.equal(shown.http_token, '********');
  assert.equal(describeConfig(configWith()).http_token, null);
  assert.deepEqual(
    Object.keys(shown),
    KEY_NAMES.filter((k) => k !== 'http_token_file'),
    'every field once, under the first key that fills it',
  );
});

test('the keys that fill a field are the ones that name it', () => {
  assert.deepEqual(keysOf('httpToken'), ['http_token', 'http_token_file']);
  assert.deepEqual(keysOf('keepaliveTimeMs'), ['keepalive_time']);
});

void test('http_token_file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  await t.test('left empty means no token', () => {
    assert.equal(configWith('http_token_file:\n').httpToken, null);
  });

  await t.test('a file with only blanks is an error naming it', () => {
    const file = join(dir, 'blank');
    writeFileSync(file, ' \n\n');
    assert.deepEqual(problemsOf(`${BASE}http_token_file: ${file}\n`), [
      `key "http_token_file": the file ${file} is empty`,
    ]);
  });

  await t.test('a missing file is an error with its errno code', () => {
    const file = join(dir, 'none');
    assert.deepEqual(problemsOf(`${BASE}http_token_file: ${file}\n`), [
      `key "http_token_file": cannot read ${file}: ENOENT`,
    ]);
  });

  await t.test('must be a string', () => {
    assert.deepEqual(problemsOf(`${BASE}http_token_file: 5\n`), [
      'key "http_token_file" must be a string (or empty), got 5',
    ]);
  });

  await t.test('cannot be given with http_token', () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'from-file\n');
    assert.deepEqual(problemsOf(`${BASE}http_token: x\nhttp_token_file: ${file}\n`), [
      'keys "http_token" and "http_token_file": give only one',
    ]);
  });
});
