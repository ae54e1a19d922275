// The packaging with the built CLI and systemd's tools: the CLI runs as the image starts it, it
// accepts the example configurations the compose file and deploy/ ship, and systemd's own
// verifier accepts the unit. What needs neither is in test/unit/packaging.test.ts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';
import { CLI } from '../support/keeper-process.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const at = (...p: string[]): string => path.join(ROOT, ...p);

before(() => {
  assert.ok(fs.existsSync(CLI), `${CLI} is missing: run \`npm run build\` (npm test and test:e2e do)`);
});

function cli(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test("the built CLI, the image's entrypoint, prints the package's version", () => {
  const pkg = JSON.parse(fs.readFileSync(at('package.json'), 'utf8')) as { version: string };
  const version = cli(['--version']);
  assert.equal(version.code, 0, version.out);
  assert.match(version.out, new RegExp(`pg-keeper ${pkg.version.replace(/\./g, '\\.')}`));
});

test('the built CLI keeps the shebang of src/cli.ts, with its Node flags', () => {
  const firstLine = (file: string): string | undefined => fs.readFileSync(file, 'utf8').split('\n')[0];
  assert.equal(firstLine(CLI), firstLine(at('src', 'cli.ts')));
});

test('check-config accepts the configurations the compose example and deploy/ ship', () => {
  for (const file of [
    at('docs', 'examples', 'compose', 'keeper-node1.yml'),
    at('docs', 'examples', 'compose', 'keeper-node2.yml'),
    at('deploy', 'pg-keeper.yml.example'),
  ]) {
    const r = cli(['check-config', '--config', file]);
    assert.equal(r.code, 0, `${path.relative(ROOT, file)}: ${r.out}`);
  }
});

test('systemd-analyze verify accepts the unit', (t) => {
  if (spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status !== 0) {
    t.skip('systemd-analyze is not installed (Debian package systemd: scripts/ensure-deps.sh installs it)');
    return;
  }
  const r = spawnSync('systemd-analyze', ['verify', at('deploy', 'pg-keeper.service')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', r.stderr);
});

describe('the bundle of the image and the package (npm run bundle), away from the repository', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgk-bundle-'));
  const out = path.join(dir, 'pg-keeper.cjs');
  before(() => {
    const b = spawnSync(process.execPath, ['--import', 'tsx', at('scripts', 'bundle.ts'), out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(b.status, 0, b.stderr);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('--version and check-config', () => {
    const pkg = JSON.parse(fs.readFileSync(at('package.json'), 'utf8')) as { version: string };
    // No package.json and no node_modules beside it: the version is written in.
    const r = spawnSync(process.execPath, ['--max-semi-space-size=1', out, '--version'], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `pg-keeper ${pkg.version}`);
    const check = spawnSync(
      process.execPath,
      [out, 'check-config', '--config', at('deploy', 'pg-keeper.yml.example')],
      { cwd: dir, encoding: 'utf8' },
    );
    assert.equal(check.status, 0, check.stderr);
  });

  test('basic authentication verifies passwords: the bcrypt worker is written into the bundle', async () => {
    const port = await freePort();
    const web = path.join(dir, 'web.yml');
    fs.writeFileSync(web, `basic_auth_users:\n  prometheus: '${bcrypt.hashSync('bundle-pw', 4)}'\n`);
    const config = path.join(dir, 'keeper.yml');
    // Servers that do not exist: the keeper runs, and answers, all the same.
    fs.writeFileSync(
      config,
      `node1_conninfo: "host=127.0.0.1 port=1 connect_timeout=1"\nnode2_conninfo: "host=127.0.0.1 port=2 connect_timeout=1"\n` +
        `node: node1\nlisten: "127.0.0.1:${port}"\nweb_config_file: ${web}\n`,
    );
    const child = spawn(process.execPath, [out, 'run', '--config', config], { cwd: dir, stdio: 'ignore' });
    const removeHook = onExit(() => child.kill('SIGKILL'));
    try {
      const ask = (password: string) =>
        fetch(`http://127.0.0.1:${port}/status`, {
          headers: { authorization: `Basic ${Buffer.from(`prometheus:${password}`).toString('base64')}` },
          signal: AbortSignal.timeout(3000),
        }).then((r) => r.status);
      assert.equal(
        await waitFor(() => ask('bundle-pw').catch(() => null), 'the bundled keeper to answer'),
        200,
      );
      assert.equal(await ask('wrong'), 401);
    } finally {
      child.kill('SIGTERM');
      removeHook();
    }
  });
});
