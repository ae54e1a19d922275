// `pg-keeper import-conf`: pg_keeper's settings, read from postgresql.conf the way
// PostgreSQL reads that file, become pg-keeper's keys. The built CLI is run on a real file
// in test/unit/cli.test.ts; this covers the reading itself.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { importConfCommand, importPgKeeperSettings } from '../../../src/config/import-conf.js';

const conf = (...lines: string[]) => importPgKeeperSettings(lines.join('\n'));

test("pg_keeper's keys become ours, under their canonical names", () => {
  const r = conf(
    "pg_keeper.node1_conninfo = 'host=pg1 port=5432'",
    "pg_keeper.node2_conninfo = 'host=pg2 port=5432'",
    'pg_keeper.keepalives_time = 2',
    'pg_keeper.keepalives_count = 3',
    "pg_keeper.after_command = 'sh /path/to/vip.sh'",
  );
  assert.deepEqual(r, {
    settings: {
      node1_conninfo: 'host=pg1 port=5432',
      node2_conninfo: 'host=pg2 port=5432',
      keepalive_time: 2,
      keepalive_count: 3,
      after_command: 'sh /path/to/vip.sh',
    },
    unknown: [],
  });
});

test('keys pg_keeper did not have, and names nobody knows, are reported as having no equivalent', () => {
  const r = conf('pg_keeper.listen = 9754', 'pg_keeper.paused = on', 'pg_keeper.my_setting = 1');
  assert.deepEqual(r, { settings: {}, unknown: ['listen', 'paused', 'my_setting'] });
});

test("postgresql.conf's syntax: optional =, any case, comments, quotes with '' and backslash escapes", () => {
  const r = conf(
    'PG_KEEPER.Keepalive_Time 4   # seconds',
    "  pg_keeper.after_command = 'echo ''it''s'' \\\\done'  # a comment",
    '#pg_keeper.keepalive_count = 9',
    "shared_preload_libraries = 'pg_keeper'",
  );
  assert.deepEqual(r.settings, { keepalive_time: 4, after_command: "echo 'it's' \\done" });
});

test('the blanks around "=" are optional on either side', () => {
  const r = conf('pg_keeper.keepalive_time=2', 'pg_keeper.keepalive_count =3', 'pg_keeper.after_command= x');
  assert.deepEqual(r.settings, { keepalive_time: 2, keepalive_count: 3, after_command: 'x' });
});

test('an unquoted value is taken as written, a quote at its end included', () => {
  assert.deepEqual(conf("pg_keeper.after_command = x'").settings, { after_command: "x'" });
});

test('a value is written as a number only where the key takes that number', () => {
  const r = conf(
    "pg_keeper.keepalive_time = '0.5'",
    'pg_keeper.keepalive_count = 2.5',
    "pg_keeper.after_command = '42'",
    "pg_keeper.node1_conninfo = ''",
  );
  assert.deepEqual(r.settings, {
    keepalive_time: 0.5,
    keepalive_count: '2.5',
    after_command: '42',
    node1_conninfo: '',
  });
});

/** Runs import-conf on a file with these lines; returns its exit code and what it wrote. */
function importConf(lines: string[]): { code: number; out: string; err: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-import-'));
  const file = join(dir, 'postgresql.conf');
  writeFileSync(file, lines.join('\n'));
  const out: string[] = [];
  const err: string[] = [];
  const { stdout, stderr } = process;
  const [writeOut, writeErr] = [stdout.write.bind(stdout), stderr.write.bind(stderr)];
  stdout.write = (s: string | Uint8Array) => out.push(String(s)) > 0;
  stderr.write = (s: string | Uint8Array) => err.push(String(s)) > 0;
  try {
    const code = importConfCommand(file);
    return { code, out: out.join('').replaceAll(file, 'FILE'), err: err.join('').replaceAll(file, 'FILE') };
  } finally {
    stdout.write = writeOut;
    stderr.write = writeErr;
    rmSync(dir, { recursive: true, force: true });
  }
}

test("import-conf prints the YAML with pg_keeper's defaults made explicit, and what it left out", () => {
  const r = importConf([
    "pg_keeper.node1_conninfo = 'host=pg1'",
    'pg_keeper.keepalives_time = 2',
    'pg_keeper.x = 1',
  ]);
  assert.equal(r.code, 0);
  assert.equal(
    r.out,
    [
      '# converted from FILE by pg-keeper import-conf',
      '# set node: to node2 on the second host (or use --node)',
      'keepalive_time: 2',
      'keepalive_count: 1',
      'node1_conninfo: host=pg1',
      'node: node1',
      'listen: 0.0.0.0:9754',
      '',
    ].join('\n'),
  );
  assert.equal(r.err, 'pg-keeper: pg_keeper.x has no equivalent; left out\n');
});

test('import-conf on a file without pg_keeper settings fails and says so', () => {
  const r = importConf(["shared_preload_libraries = 'pg_keeper'"]);
  assert.deepEqual(r, { code: 1, out: '', err: 'pg-keeper: no pg_keeper.* settings found in FILE\n' });
});
