// The packaging with the built CLI and systemd's tools: the CLI runs as the image starts it, it
// accepts the example configurations the compose file and deploy/ ship, and systemd's own
// verifier accepts the unit. What needs neither is in test/unit/packaging.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
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

test("the image's bundle (npm run bundle) runs away from the repository: --version, check-config", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgk-bundle-'));
  const out = path.join(dir, 'pg-keeper.cjs');
  try {
    const b = spawnSync(process.execPath, ['--import', 'tsx', at('scripts', 'bundle.ts'), out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(b.status, 0, b.stderr);
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
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    assert.equal(check.status, 0, check.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
