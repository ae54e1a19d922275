// The command line as a user meets it: the built CLI, exit statuses 0 / 1 / 2.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLI } from '../support/keeper-process.js';

const dir = mkdtempSync(join(tmpdir(), 'pgk-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const GOOD = `node1_conninfo: "host=127.0.0.1 port=5551 dbname=postgres user=keeper password=hunter2-secret"
node2_conninfo: "postgresql://keeper:hunter2-secret@127.0.0.1:5552/postgres"
keepalive_time: 0.2
keepalive_count: 3
`;

function cli(args: string[], yaml?: string): { code: number | null; out: string; err: string } {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yml`);
  if (yaml !== undefined) writeFileSync(file, yaml);
  const r = spawnSync(process.execPath, [CLI, ...args.map((a) => (a === 'FILE' ? file : a))], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const badConfigs: [string, string, RegExp][] = [
  ['unknown key', `${GOOD}keepalive_tme: 1\n`, /unknown key "keepalive_tme"/],
  [
    'wrong type',
    `${GOOD.replace('keepalive_time: 0.2', 'keepalive_time: soon')}`,
    /key "keepalive_time" must be a number/,
  ],
  [
    'out of range',
    `${GOOD.replace('keepalive_count: 3', 'keepalive_count: 0')}`,
    /key "keepalive_count" must be an integer from 1/,
  ],
  ['missing conninfo', GOOD.split('\n').slice(1).join('\n'), /key "node1_conninfo" is required/],
  ['node neither node1 nor node2', `${GOOD}node: node3\n`, /key "node" .*must be node1 or node2/],
  [
    'unknown conninfo keyword',
    GOOD.replace('dbname=postgres user', 'dbname=postgres colour=blue user'),
    /node1_conninfo.*colour/,
  ],
  ['YAML syntax error', `${GOOD}after_command: [oops\n`, /YAML syntax error at line \d+/],
];

for (const [what, yaml, message] of badConfigs) {
  test(`run rejects a bad configuration with status 2: ${what}`, () => {
    const r = cli(['run', '--config', 'FILE', '--node', 'node1'], yaml);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
    assert.match(r.err, /pgk-cli-.*\.yml/, 'the message names the file');
    assert.doesNotMatch(r.err + r.out, /hunter2-secret/);
  });
}

test('check-config prints the effective settings, passwords masked, status 0', () => {
  const r = cli(['check-config', '--config', 'FILE', '--node', 'node2'], GOOD);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^node: node2$/m);
  assert.match(r.out, /^keepalive_time: 0\.2$/m);
  assert.match(r.out, /^node1_conninfo: .*password=\*{8}/m);
  assert.doesNotMatch(r.out, /hunter2-secret/);
});

test('check-config on an invalid file exits 2', () => {
  assert.equal(cli(['check-config', '--config', 'FILE'], GOOD).code, 2, 'node is missing');
});

test('usage errors exit 2 and print the usage', () => {
  const r = cli(['run']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--config FILE is required/);
  assert.equal(cli(['frobnicate']).code, 2);
  assert.equal(cli(['run', '--bogus']).code, 2);
});

test('--version prints the version', () => {
  const r = cli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^pg-keeper \d+\.\d+\.\d+$/m);
});

test('status against no keeper fails with status 1 and says where it looked', () => {
  const r = cli(['status', '--url', 'http://127.0.0.1:9']);
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot read http:\/\/127\.0\.0\.1:9\/status/);
});

test("import-conf turns pg_keeper's postgresql.conf settings into our YAML", () => {
  const conf = join(dir, 'postgresql.conf');
  writeFileSync(
    conf,
    [
      "shared_preload_libraries = 'pg_keeper'",
      "pg_keeper.node1_conninfo = 'host=pgserver1 port=5432 dbname=postgres'",
      "pg_keeper.node2_conninfo = 'host=pgserver2 port=5432 dbname=postgres'",
      'pg_keeper.keepalives_time = 5   # seconds',
      'pg_keeper.keepalives_count = 4',
      "pg_keeper.after_command = 'sh /path/to/shell'",
    ].join('\n'),
  );
  const r = cli(['import-conf', conf]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^node1_conninfo: host=pgserver1 port=5432 dbname=postgres$/m);
  assert.match(r.out, /^keepalive_time: 5$/m);
  assert.match(r.out, /^keepalive_count: 4$/m);
  assert.match(r.out, /^after_command: sh \/path\/to\/shell$/m);
  // What it prints is a configuration pg-keeper accepts.
  const yaml = join(dir, 'imported.yml');
  writeFileSync(yaml, r.out);
  assert.equal(cli(['check-config', '--config', yaml]).code, 0);
});

test('status --url takes HOST:PORT as people type it, and says what it accepts otherwise', () => {
  const bare = cli(['status', '--url', '127.0.0.1:9']);
  assert.equal(bare.code, 1, bare.err);
  assert.match(bare.err, /cannot read http:\/\/127\.0\.0\.1:9\/status/);
  const bad = cli(['status', '--url', 'http://']);
  assert.equal(bad.code, 2, bad.err);
  assert.match(bad.err, /--url "http:\/\/" is not a URL: give http:\/\/HOST:PORT, or HOST:PORT/);
  assert.doesNotMatch(bad.err, /^Invalid URL$/m);
});

// A reader that stops early (`| head -1`) closes the pipe. Here it is closed before the
// command writes anything (`head -c 0` exits at once, the command starts 0.3 s later), so
// every write meets a closed pipe: the command must stop with status 0 and no stack trace.
for (const [what, args] of [
  ['check-config', ['check-config', '--config', 'FILE', '--node', 'node1']],
  ['--help', ['--help']],
  ['import-conf', ['import-conf', 'FILE']],
] as const) {
  test(`${what} into a closed pipe exits 0 without a stack trace`, () => {
    const file = join(dir, 'closed-pipe.conf');
    const conf = "pg_keeper.node1_conninfo = 'host=a'\npg_keeper.node2_conninfo = 'host=b'\n";
    writeFileSync(file, what === 'import-conf' ? conf : GOOD);
    const argv = [process.execPath, CLI, ...args.map((a) => (a === 'FILE' ? file : a))]
      .map((a) => `'${a}'`)
      .join(' ');
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `{ sleep 0.3; ${argv}; } | head -c 0`], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });
}
