import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../../src/config/config.js';
import { describeConfig, loadConfig, parseConfig } from '../../../src/config/load.js';
import { BASE, problemsOf } from './fixtures.js';

test('defaults: keepalive 5 s × 4, listen 0.0.0.0:9754, sync required for failover', () => {
  const cfg = parseConfig(BASE, 'f.yml', {}, {});
  assert.equal(cfg.keepaliveTimeMs, 5000);
  assert.equal(cfg.keepaliveCount, 4);
  assert.equal(cfg.heartbeatTimeoutMs, 4000);
  assert.equal(cfg.streamTimeoutMs, 20000);
  assert.deepEqual(cfg.listen, { host: '0.0.0.0', port: 9754 });
  assert.equal(cfg.failoverRequiresSync, true);
  assert.equal(cfg.afterCommandTimeoutMs, 30000);
  assert.equal(cfg.stateFile, null);
});

test('fractional keepalive_time is accepted', () => {
  const cfg = parseConfig(`${BASE}keepalive_time: 0.2\nkeepalive_count: 3\n`, 'f.yml', {}, {});
  assert.equal(cfg.keepaliveTimeMs, 200);
  assert.equal(cfg.heartbeatTimeoutMs, 160);
  assert.equal(cfg.streamTimeoutMs, 1200, 'never below keepalive_time + 1 s');
});

test("pg_keeper's spellings keepalives_time and keepalives_count are aliases", () => {
  const cfg = parseConfig(`${BASE}keepalives_time: 2\nkeepalives_count: 7\n`, 'f.yml', {}, {});
  assert.equal(cfg.keepaliveTimeMs, 2000);
  assert.equal(cfg.keepaliveCount, 7);
});

test('giving a key and its alias is an error', () => {
  const p = problemsOf(`${BASE}keepalive_time: 2\nkeepalives_time: 3\n`);
  assert.match(p.join('\n'), /"keepalives_time" repeats "keepalive_time"/);
});

test('unknown keys are rejected, naming the key and the allowed ones', () => {
  const p = problemsOf(`${BASE}keepalive_tme: 2\n`);
  assert.match(p[0] ?? '', /unknown key "keepalive_tme": allowed keys are node1_conninfo, node2_conninfo/);
});

test('wrong types and out-of-range values name the key and what is allowed', () => {
  const p = problemsOf(
    `${BASE}keepalive_time: fast\nkeepalive_count: 2.5\nafter_command_timeout: -1\npaused: "yes"\n`,
  );
  const text = p.join('\n');
  assert.match(text, /key "keepalive_time" must be a number from 0\.05 to 3600 seconds, got "fast"/);
  assert.match(text, /key "keepalive_count" must be an integer from 1 to 1000, got 2\.5/);
  assert.match(text, /key "after_command_timeout" must be a number/);
  assert.match(text, /key "paused" must be true or false/);
});

test('a missing conninfo is reported', () => {
  const p = problemsOf('node2_conninfo: "host=b"\nnode: node1\n');
  assert.match(p.join('\n'), /key "node1_conninfo" is required/);
});

test('a node that is neither node1 nor node2 is rejected, from the file or --node', () => {
  assert.match(
    problemsOf(BASE.replace('node: node1', 'node: node3')).join('\n'),
    /"node" .*must be node1 or node2, got "node3"/,
  );
  assert.match(problemsOf(BASE, { node: 'primary' }).join('\n'), /must be node1 or node2, got "primary"/);
  assert.match(problemsOf(BASE.replace('node: node1', '')).join('\n'), /key "node" is required/);
});

test('--node and --listen override the file', () => {
  const cfg = parseConfig(BASE, 'f.yml', { node: 'node2', listen: '127.0.0.1:0' }, {});
  assert.equal(cfg.node, 'node2');
  assert.deepEqual(cfg.listen, { host: '127.0.0.1', port: 0 });
});

test('a bad conninfo names the key and never shows the password', () => {
  const p = problemsOf(BASE.replace('dbname=postgres user', 'dbname=postgres bogus=1 user'));
  const text = p.join('\n');
  assert.match(text, /key "node1_conninfo": .*bogus/);
  assert.doesNotMatch(text, /s3cret-pw/);
});

test('a YAML syntax error names the line', () => {
  const p = problemsOf(`${BASE}keepalive_time: [1,\nkeepalive_count: 3\n`);
  assert.match(p[0] ?? '', /YAML syntax error at line \d+/);
});

test('a file that is not a mapping is rejected', () => {
  assert.match(problemsOf('- a\n- b\n')[0] ?? '', /must be a mapping/);
});

test('heartbeat_timeout must be below keepalive_time', () => {
  assert.match(
    problemsOf(`${BASE}keepalive_time: 1\nheartbeat_timeout: 1\n`).join('\n'),
    /must be below keepalive_time/,
  );
});

test('every problem is reported at once', () => {
  assert.equal(problemsOf('keepalive_time: x\nkeepalive_count: 0\nfoo: 1\n').length, 6);
});

test('check-config output masks passwords and tokens', () => {
  const cfg = parseConfig(`${BASE}http_token: tok-123456\n`, 'f.yml', {}, {});
  const shown = JSON.stringify(describeConfig(cfg));
  assert.doesNotMatch(shown, /s3cret-pw/);
  assert.doesNotMatch(shown, /tok-123456/);
  assert.match(shown, /\*{8}/);
});

test('state_file defaults into systemd STATE_DIRECTORY', () => {
  const cfg = parseConfig(BASE, 'f.yml', {}, { STATE_DIRECTORY: '/var/lib/pg-keeper' });
  assert.equal(cfg.stateFile, '/var/lib/pg-keeper/node1.state.json');
});

test('http_token_file is read; an unreadable one is a named error', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'from-file\n');
  assert.equal(parseConfig(`${BASE}http_token_file: ${tokenFile}\n`, 'f.yml', {}, {}).httpToken, 'from-file');
  assert.match(
    problemsOf(`${BASE}http_token_file: ${join(dir, 'nope')}\n`).join('\n'),
    /key "http_token_file": cannot read/,
  );
});

test('a missing file is a ConfigError naming it', () => {
  assert.throws(
    () => loadConfig('/nonexistent/pg-keeper.yml'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, /\/nonexistent\/pg-keeper\.yml: .*cannot read the file/s);
      return true;
    },
  );
});

test('a file is read as UTF-8 text', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pg-keeper.yml');
  writeFileSync(file, `${BASE}after_command: "logger 'bascule → node1'"\n`);
  const cfg = loadConfig(file, {}, {});
  assert.equal(cfg.file, file);
  assert.equal(cfg.afterCommand, "logger 'bascule → node1'");
});

test('an empty file is a file that lacks the required keys', () => {
  assert.deepEqual(problemsOf(''), [
    'key "node1_conninfo" is required: a libpq connection string such as "host=pg1 port=5432 dbname=postgres"',
    'key "node2_conninfo" is required: a libpq connection string such as "host=pg2 port=5432 dbname=postgres"',
    'key "node" is required (or --node): which node is local to this keeper, node1 or node2',
  ]);
});

test('a scalar, or an ordered map (!!omap), is not a mapping of keys to values', () => {
  for (const text of ['hello\n', '!!omap\n- node: node1\n']) {
    assert.deepEqual(
      problemsOf(text),
      ['the file must be a mapping of keys to values (key: value lines)'],
      text,
    );
  }
});

test("cluster_name: a pair's short printable name; by default 'default', or etcd_prefix's last part", () => {
  assert.equal(parseConfig(BASE, 'f.yml', {}, {}).clusterName, 'default');
  assert.equal(parseConfig(`${BASE}cluster_name: orders\n`, 'f.yml', {}, {}).clusterName, 'orders');
  const arbiter = `${BASE}etcd_endpoints: ["http://127.0.0.1:2379"]\netcd_prefix: /pg-keeper/billing\n`;
  assert.equal(parseConfig(arbiter, 'f.yml', {}, {}).clusterName, 'billing');
  assert.equal(parseConfig(`${arbiter}cluster_name: other\n`, 'f.yml', {}, {}).clusterName, 'other');
  assert.equal(
    parseConfig(`${BASE}etcd_prefix: /pg-keeper/billing\n`, 'f.yml', {}, {}).clusterName,
    'default',
    'a prefix without the arbiter names nothing',
  );
  for (const bad of ['"two words"', '"-lead"', `"${'x'.repeat(64)}"`, '"a/b"', '3']) {
    assert.match(
      problemsOf(`${BASE}cluster_name: ${bad}\n`).join('\n'),
      /key "cluster_name" must be a short name/,
    );
  }
});

test('a key written twice in the file is a YAML error naming the line, in one line', () => {
  assert.deepEqual(problemsOf(`${BASE}keepalive_time: 1\nkeepalive_time: 2\n`), [
    'YAML syntax error at line 6: Map keys must be unique at line 6, column 1:',
  ]);
});

test('an invalid value of a required key is reported once, not also as missing', () => {
  assert.deepEqual(problemsOf(BASE.replace('node: node1', 'node: node3')), [
    'key "node" must be node1 or node2, got "node3"',
  ]);
});

test('a bad --node names the option and the key', () => {
  assert.deepEqual(problemsOf(BASE, { node: 'primary' }), [
    'key "node" (--node) must be node1 or node2, got "primary"',
  ]);
});

test('the stream_timeout default follows keepalive_count', () => {
  const cfg = parseConfig(`${BASE}keepalive_time: 1\nkeepalive_count: 10\n`, 'f.yml', {}, {});
  assert.equal(cfg.streamTimeoutMs, 10_000);
});

test('the state_file default is named after the node, from the file or --node', () => {
  const env = { STATE_DIRECTORY: '/var/lib/pg-keeper:/var/lib/other' };
  const fromFile = parseConfig(BASE.replace('node: node1', 'node: node2'), 'f.yml', {}, env);
  assert.equal(fromFile.stateFile, '/var/lib/pg-keeper/node2.state.json');
  assert.equal(
    parseConfig(BASE, 'f.yml', { node: 'node2' }, env).stateFile,
    '/var/lib/pg-keeper/node2.state.json',
  );
});

test('the arbiter keys: endpoints, TTL, prefix, TLS and auth pairs are checked, naming the keys', () => {
  const ok = parseConfig(
    `${BASE}etcd_endpoints: "http://127.0.0.1:2379, http://127.0.0.1:2381"\netcd_lease_ttl: 3\n`,
    'f.yml',
    {},
    {},
  );
  assert.deepEqual(ok.etcdEndpoints, ['http://127.0.0.1:2379', 'http://127.0.0.1:2381']);
  assert.equal(ok.etcdLeaseTtlMs, 3000);
  assert.equal(ok.etcdPrefix, '/pg-keeper/default');
  assert.deepEqual(parseConfig(BASE, 'f.yml', {}, {}).etcdEndpoints, [], 'absent: two-node mode');
  const p = (extra: string): string => problemsOf(`${BASE}${extra}`).join('\n');
  assert.match(
    p('etcd_endpoints: ["ftp://x:1"]\n'),
    /key "etcd_endpoints" must be a list of http:\/\/ or https:\/\/ URLs/,
  );
  assert.match(p('etcd_endpoints: ["http://u:secret@x:1"]\n'), /must not carry credentials/);
  assert.doesNotMatch(p('etcd_endpoints: ["http://u:secret@x:1"]\n'), /secret/);
  assert.match(p('etcd_endpoints: ["http://x:1/v3"]\n'), /without a path/);
  assert.match(p('etcd_endpoints: ["http://x:1", "https://y:1"]\n'), /one scheme/);
  assert.match(p('etcd_endpoints: []\n'), /list of 1 to 7/);
  assert.match(p('etcd_lease_ttl: 1\n'), /key "etcd_lease_ttl" must be a number from 2 to 300 seconds/);
  assert.match(p('etcd_prefix: pg-keeper\n'), /key "etcd_prefix" must be a path/);
  assert.match(p('etcd_prefix: /pg-keeper/\n'), /key "etcd_prefix" must be a path/);
  assert.match(
    p('etcd_cacert: /nonexistent/ca.crt\n'),
    /key "etcd_cacert": cannot read \/nonexistent\/ca.crt: ENOENT/,
  );
  const withEndpoints = 'etcd_endpoints: ["https://x:2379"]\n';
  const file = join(mkdtempSync(join(tmpdir(), 'pgk-etcd-cfg-')), 'x.pem');
  writeFileSync(file, 'pem');
  assert.match(p(`${withEndpoints}etcd_cert: ${file}\n`), /keys "etcd_cert" and "etcd_key": give both/);
  assert.match(
    p(`${withEndpoints}etcd_user: keeper\n`),
    /keys "etcd_user" and "etcd_password_file": give both/,
  );
  assert.match(p(`etcd_user: keeper\netcd_password_file: ${file}\n`), /key "etcd_user" needs etcd_endpoints/);
  assert.match(
    p(`etcd_endpoints: ["http://x:1"]\netcd_cacert: ${file}\n`),
    /etcd_cacert and etcd_cert are for https/,
  );
});

test('the etcd password is read from its file and never shown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-etcd-pw-'));
  writeFileSync(join(dir, 'pw'), 'etcd-s3cret\n');
  const cfg = parseConfig(
    `${BASE}etcd_endpoints: ["http://x:2379"]\netcd_user: keeper\netcd_password_file: ${join(dir, 'pw')}\n`,
    'f.yml',
    {},
    {},
  );
  assert.equal(cfg.etcdPassword, 'etcd-s3cret');
  const shown = JSON.stringify(describeConfig(cfg));
  assert.doesNotMatch(shown, /s3cret/);
  assert.match(shown, /"etcd_password_file":"\*{8}"/);
});

test('web_config_file: a file that does not load is named with its key and its own problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-webcfg-'));
  try {
    const web = join(dir, 'web.yml');
    writeFileSync(web, 'basic_auth_users:\n  prometheus: plain-password\n');
    const problems = problemsOf(`${BASE}web_config_file: ${web}\n`);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /web_config_file/);
    assert.ok(problems[0]?.includes(web), problems[0]);
    assert.match(problems[0] ?? '', /basic_auth_users\.prometheus" must be a bcrypt hash/);
    assert.ok(!problems[0]?.includes('plain-password'));
    writeFileSync(web, '');
    assert.equal(parseConfig(`${BASE}web_config_file: ${web}\n`, 'f.yml', {}, {}).webConfigFile, web);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
