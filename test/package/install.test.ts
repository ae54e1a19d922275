// The README's install routes, each from a clean clone of this repository, as an operator runs
// them: `npm run test:package`.
//
//   npm:     npm ci && npm pack, then npm install -g ./pg-keeper-<version>.tgz (into a temporary
//            prefix, not the machine's), and the installed `pg-keeper` runs
//   Debian:  npm ci && npm run package:deb, then apt install ./pg-keeper_<version>_amd64.deb in a
//            clean Debian 12 with no Node.js (the stand-in image of test/support/stand-in-images.ts,
//            under podman), where `pg-keeper --version`, check-config on the shipped example, and a
//            keeper (as the unit runs it: user postgres, STATE_DIRECTORY) that fails a real pair over
//            (the pair on this host, the keeper in the container with host networking)
//
// The clone sees only what is committed: uncommitted work is not tested here.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';
import type { Status } from '../../src/http/status.js';
import { Podman } from '../support/podman.js';
import { makeDir, rmDir } from '../support/temp-dir.js';
import { TestPair } from '../support/test-pair.js';
import { buildDebianImage } from '../support/stand-in-images.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
const TGZ = `pg-keeper-${VERSION}.tgz`;
const DEB = `pg-keeper_${VERSION}_amd64.deb`;

let dir = '';
let clone = '';
const timings: Record<string, number> = {};

/** Runs a command (no shell) and fails with its output unless it exits 0. */
function sh(
  what: string,
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? clone,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  timings[what] = (timings[what] ?? 0) + (Date.now() - t0);
  assert.equal(
    r.status,
    0,
    `${what}: ${cmd} ${args.join(' ')} failed:\n${r.stdout}${r.stderr}${r.error ?? ''}`,
  );
  return r.stdout;
}

before(async () => {
  dir = makeDir();
  clone = path.join(dir, 'pg-keeper');
  sh('git clone', 'git', ['clone', '--quiet', ROOT, clone], { cwd: dir });
  assert.ok(!fs.existsSync(path.join(clone, 'dist')), 'a clean clone has no dist/');
  sh('npm ci', 'npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
});

after(() => {
  if (dir) rmDir(dir);
  const shown = Object.entries(timings).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`);
  process.stdout.write(`# package test timings: ${shown.join(', ')}\n`);
});

describe('npm pack, then npm install -g of the tarball', () => {
  let prefix = '';
  before(() => {
    sh('npm pack', 'npm', ['pack', '--silent']);
    prefix = path.join(dir, 'prefix');
    sh('npm install -g', 'npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', `./${TGZ}`]);
  });

  test('the tarball carries the built CLI', () => {
    const list = sh('tar tzf', 'tar', ['tzf', TGZ]).split('\n');
    for (const f of [
      'package/dist/cli.js',
      'package/deploy/pg-keeper.service',
      'package/alerts/pg-keeper.rules.yml',
    ]) {
      assert.ok(list.includes(f), `${f} is in ${TGZ}`);
    }
  });

  test('the installed pg-keeper runs: --version and check-config on the example it ships', () => {
    const bin = path.join(prefix, 'bin', 'pg-keeper');
    // Away from the clone, with the prefix's bin first on PATH, as after a real install.
    const env = { ...process.env, PATH: `${path.dirname(bin)}:${process.env.PATH ?? ''}` };
    const version = sh('installed --version', 'pg-keeper', ['--version'], { cwd: dir, env });
    assert.equal(version.trim(), `pg-keeper ${VERSION}`);
    const example = path.join(prefix, 'lib', 'node_modules', 'pg-keeper', 'deploy', 'pg-keeper.yml.example');
    const out = sh('installed check-config', 'pg-keeper', ['check-config', '--config', example], {
      cwd: dir,
      env,
    });
    assert.match(out, /: valid$/m);
  });
});

describe('npm run package:deb, then apt install in a clean Debian 12', () => {
  let podman: Podman | undefined;
  let image = '';
  const INSTALLED = 'localhost/pgk-test/debian-with-pg-keeper:latest';
  const p = (): Podman => {
    assert.ok(podman);
    return podman;
  };

  before(() => {
    sh('npm run package:deb', 'npm', ['run', 'package:deb', '--silent']);
    podman = Podman.create();
    const t0 = Date.now();
    image = buildDebianImage(p());
    timings['stand-in Debian image'] = Date.now() - t0;
  });
  after(() => podman?.destroySync());

  test('it has the files where Debian puts them', () => {
    const list = sh('dpkg-deb -c', 'dpkg-deb', ['-c', DEB]);
    for (const f of [
      './usr/bin/pg-keeper',
      './lib/systemd/system/pg-keeper.service',
      './usr/share/doc/pg-keeper/examples/pg-keeper.yml.example',
      './usr/share/doc/pg-keeper/examples/move-vip.sh',
      './etc/pg-keeper/',
    ]) {
      assert.match(list, new RegExp(` ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `${f} in ${DEB}`);
    }
    const size = fs.statSync(path.join(clone, DEB)).size;
    process.stdout.write(`# ${DEB}: ${(size / 1e6).toFixed(1)} MB\n`);
  });

  test('apt installs it on a Debian 12 without Node.js; it runs and checks the shipped example', () => {
    const t0 = Date.now();
    const out = p().must(
      [
        'run',
        '--name',
        'pgk-test-deb-install',
        '--network=host',
        '--volume',
        `${path.join(clone, DEB)}:/tmp/${DEB}:ro`,
        image,
        'sh',
        '-c',
        [
          'set -e',
          'if command -v node; then echo "this Debian has a Node.js: it must not need one"; exit 1; fi',
          `apt-get install -y -q /tmp/${DEB} >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }`,
          'echo "command: $(command -v pg-keeper)"',
          'pg-keeper --version',
          'pg-keeper check-config --config /usr/share/doc/pg-keeper/examples/pg-keeper.yml.example | head -1',
          'echo "user: $(id -un postgres) $(stat -c "%U:%G %a" /var/lib/pg-keeper)"',
          'test -f /lib/systemd/system/pg-keeper.service',
        ].join('\n'),
      ],
      { timeoutMs: 120_000 },
    );
    timings['apt install in the container'] = Date.now() - t0;
    assert.match(out, /^command: \/usr\/bin\/pg-keeper$/m);
    assert.match(out, new RegExp(`^pg-keeper ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(out, /^\/usr\/share\/doc\/pg-keeper\/examples\/pg-keeper\.yml\.example: valid$/m);
    assert.match(out, /^user: postgres postgres:postgres 750$/m);
    p().must(['commit', '--quiet', 'pgk-test-deb-install', INSTALLED]);
  });

  describe('the installed keeper, beside a real pair', () => {
    let pair: TestPair | undefined;
    let base = '';
    const NAME = 'pgk-test-deb-keeper';
    const status = async (): Promise<Status> => {
      const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(2000) });
      return (await res.json()) as Status;
    };

    before(async () => {
      pair = await TestPair.create({ baseDir: path.join(dir, 'pg') });
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      const config = path.join(dir, 'pg-keeper.yml');
      fs.writeFileSync(
        config,
        stringify({
          node1_conninfo: pair.conninfo(pair.node1),
          node2_conninfo: pair.conninfo(pair.node2),
          node: 'node2',
          keepalive_time: 0.2,
          keepalive_count: 3,
          listen: `127.0.0.1:${port}`,
          after_command:
            'echo "$PG_KEEPER_EVENT $(id -un) NODE_OPTIONS=${NODE_OPTIONS-unset}" >> /var/lib/pg-keeper/after_command.log',
        }),
      );
      fs.chmodSync(config, 0o644);
      // As the unit runs it: user postgres, the state directory in STATE_DIRECTORY.
      p().must([
        'run',
        '--detach',
        '--name',
        NAME,
        '--network=host',
        '--user',
        'postgres',
        '--env',
        'STATE_DIRECTORY=/var/lib/pg-keeper',
        '--volume',
        `${config}:/etc/pg-keeper/pg-keeper.yml:ro`,
        INSTALLED,
        '/usr/bin/pg-keeper',
        'run',
        '--config',
        '/etc/pg-keeper/pg-keeper.yml',
      ]);
    });
    after(async () => {
      p().run(['rm', '--force', '--time', '1', NAME]);
      await pair?.destroy();
    });

    test('sees node2 as the synchronous standby, and runs with the V8 flag of the CLI', async () => {
      await waitFor(
        async () => {
          const s = await status();
          return s.role === 'standby' && s.guards.synchronous_at_last_contact;
        },
        'the installed keeper to see node2 as the synchronous standby',
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${p().run(['logs', NAME]).out}`);
      });
      // The wrapper execs the executable as the container's first process, with the flag.
      const environ = p().must(['exec', NAME, 'cat', '/proc/1/environ']).split('\0');
      assert.ok(environ.includes('NODE_OPTIONS=--max-semi-space-size=1'), environ.join(' '));
      const cmdline = p().must(['exec', NAME, 'cat', '/proc/1/cmdline']).split('\0');
      assert.equal(cmdline[0], '/usr/lib/pg-keeper/pg-keeper');
    });

    test('fails a SIGKILLed primary over and runs after_command once, as postgres, without the flag', async () => {
      const a = pair as TestPair;
      await a.kill(a.node1, 'SIGKILL');
      await waitFor(
        async () => {
          const s = await status();
          return s.role === 'primary' && s.last_action?.kind === 'promote';
        },
        'the installed keeper to promote node2',
        30_000,
      );
      const read = (): string => p().run(['exec', NAME, 'cat', '/var/lib/pg-keeper/after_command.log']).out;
      await waitFor(() => read().length > 0, 'after_command to write its log', 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(read().trim().split('\n'), ['promote postgres NODE_OPTIONS=unset']);
      const files = p().must(['exec', NAME, 'stat', '-c', '%U %n', '/var/lib/pg-keeper/node2.state.json']);
      assert.equal(files.trim(), 'postgres /var/lib/pg-keeper/node2.state.json');
    });
  });
});
