// `npm run package:deb`: pg-keeper_<version>_amd64.deb, built with Debian's own dpkg-deb and
// no network, for hosts that need no Node.js at all (Debian 12's own is 18, too old).
//
// The command is a single executable: Node's single-executable applications (the Node.js that
// runs this script, `node --experimental-sea-config`, then postject) carrying the one-file
// bundle of scripts/bundle.ts. Node 20 gives such an executable no way to set V8 flags of its
// own (the SEA config's execArgv came later) and v8.setFlagsFromString() is too late for the
// heap's sizes, so /usr/bin/pg-keeper is a two-line sh wrapper that passes
// --max-semi-space-size=1 (src/cli.ts's shebang says why) through NODE_OPTIONS and execs
// /usr/lib/pg-keeper/pg-keeper; the keeper puts the caller's NODE_OPTIONS back before anything
// else runs, so its hooks do not inherit the flag.
//
// Layout: /usr/bin/pg-keeper, /usr/lib/pg-keeper/pg-keeper, /lib/systemd/system/pg-keeper.service,
// /usr/share/doc/pg-keeper/examples/ (configuration, move-vip.sh, Prometheus and Alertmanager),
// /usr/share/pg-keeper/ (alert rules, dashboard), /etc/pg-keeper/; the maintainer scripts create
// the OS user postgres when the host has none yet, and the state directory /var/lib/pg-keeper.
//
//   tsx scripts/package-deb.ts [--out DIR] [--xz]
//     --out DIR  where the .deb goes (default: the repository's root)
//     --xz       xz instead of zstd: 21 MB instead of 27 MB, but 52 s instead of 1 s of compression
//                here (docs/BENCHMARKS.md); Debian 12's dpkg reads both, dpkg before 1.21.18 only xz

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { bundle } from './bundle.js';

const ROOT = path.join(import.meta.dirname, '..');
const NODE_FLAGS = '--max-semi-space-size=1';
/** postject's default fuse name for Node's single-executable applications. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function sh(cmd: string, args: string[], what: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status}`;
    throw new Error(`package-deb: ${what} failed (${cmd} ${args.join(' ')}: ${why})\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function put(root: string, dest: string, content: string | Buffer, mode = 0o644): void {
  const file = path.join(root, dest);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, content);
  chmodSync(file, mode);
}

function copy(root: string, from: string, dest: string, mode = 0o644): void {
  put(root, dest, readFileSync(path.join(ROOT, from)), mode);
}

/** Every regular file under dir, relative to it. */
function files(dir: string, under = ''): string[] {
  return readdirSync(path.join(dir, under), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(under, e.name);
    return e.isDirectory() ? files(dir, rel) : e.isFile() ? [rel] : [];
  });
}

/** The V8-flag wrapper's counterpart: give the keeper's children the caller's NODE_OPTIONS back. */
const RESTORE_NODE_OPTIONS = `(function () {
  var saved = process.env.PG_KEEPER_CALLER_NODE_OPTIONS;
  if (saved === undefined) return;
  delete process.env.PG_KEEPER_CALLER_NODE_OPTIONS;
  if (saved === '') delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = saved;
})();`;

const WRAPPER = `#!/bin/sh
# pg-keeper's single executable gets V8 flags only through NODE_OPTIONS: the same
# ${NODE_FLAGS} as the npm package's launcher (it keeps resident memory from doubling under
# bursts of scrapes). The keeper restores the caller's NODE_OPTIONS for its hooks.
PG_KEEPER_CALLER_NODE_OPTIONS="\${NODE_OPTIONS:-}" NODE_OPTIONS="${NODE_FLAGS}\${NODE_OPTIONS:+ $NODE_OPTIONS}" \\
  exec /usr/lib/pg-keeper/pg-keeper "$@"
`;

const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # The keeper runs as the OS user that owns the local PostgreSQL server. Debian's postgresql-common
  # creates it the same way; a host where the keeper comes first gets it here.
  if ! getent passwd postgres >/dev/null; then
    getent group postgres >/dev/null || groupadd --system postgres
    useradd --system --gid postgres --home-dir /var/lib/postgresql --no-create-home \\
      --shell /bin/bash --comment 'PostgreSQL administrator' postgres
  fi
  install -d -m 0750 -o postgres -g postgres /var/lib/pg-keeper
  chgrp postgres /etc/pg-keeper && chmod 0750 /etc/pg-keeper
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
fi
exit 0
`;

const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop pg-keeper.service >/dev/null 2>&1 || true
fi
exit 0
`;

const POSTRM = `#!/bin/sh
set -e
if [ "$1" = purge ]; then rm -rf /var/lib/pg-keeper; fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
`;

/** Node's own licence, from beside the Node.js that is embedded. */
function nodeLicense(): string {
  const bin = path.dirname(process.execPath);
  for (const f of [
    path.join(bin, '..', 'share', 'doc', 'nodejs', 'LICENSE'),
    path.join(bin, '..', 'LICENSE'),
  ]) {
    if (existsSync(f)) return readFileSync(f, 'utf8');
  }
  return 'Node.js is released under the MIT license: https://github.com/nodejs/node/blob/main/LICENSE\n';
}

export interface DebOptions {
  outDir?: string;
  compression?: 'zstd' | 'xz';
}

export async function packageDeb(
  o: DebOptions = {},
): Promise<{ deb: string; bytes: number; binaryBytes: number }> {
  const outDir = o.outDir ?? ROOT;
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    description: string;
  };
  if (process.arch !== 'x64')
    throw new Error(`package-deb: builds amd64 packages only, here is ${process.arch}`);
  for (const tool of ['dpkg-deb', 'strip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      throw new Error(
        `package-deb: ${tool} not found (apt-get install ${tool === 'strip' ? 'binutils' : 'dpkg'})`,
      );
  }
  const work = path.join(ROOT, 'build', 'deb');
  rmSync(work, { recursive: true, force: true });
  const root = path.join(work, 'root');
  mkdirSync(root, { recursive: true });

  // 1. The single executable: bundle, blob, a copy of this Node.js without its debug symbols, injected.
  const js = path.join(work, 'pg-keeper.cjs');
  const bundled = await bundle(js, { prelude: RESTORE_NODE_OPTIONS });
  const blob = path.join(work, 'pg-keeper.blob');
  const seaConfig = path.join(work, 'sea-config.json');
  // The code cache is made under the flags the executable runs with, or V8 rejects it (and says so).
  writeFileSync(
    seaConfig,
    JSON.stringify({ main: js, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
  );
  sh(process.execPath, [NODE_FLAGS, '--experimental-sea-config', seaConfig], 'making the SEA blob', {
    ...process.env,
    NODE_OPTIONS: '',
  });
  const exe = path.join(root, 'usr', 'lib', 'pg-keeper', 'pg-keeper');
  mkdirSync(path.dirname(exe), { recursive: true });
  copyFileSync(process.execPath, exe);
  chmodSync(exe, 0o755);
  sh('strip', ['--strip-all', exe], 'stripping the Node.js copy');
  const postject = path.join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js');
  sh(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], 'postject');
  put(root, 'usr/bin/pg-keeper', WRAPPER, 0o755);

  // 2. What an operator installs it for.
  copy(root, 'deploy/pg-keeper.service', 'lib/systemd/system/pg-keeper.service');
  const doc = 'usr/share/doc/pg-keeper';
  copy(root, 'deploy/pg-keeper.yml.example', `${doc}/examples/pg-keeper.yml.example`);
  copy(root, 'deploy/after_command/move-vip.sh', `${doc}/examples/move-vip.sh`, 0o755);
  copy(root, 'docs/examples/prometheus.yml', `${doc}/examples/prometheus.yml`);
  copy(root, 'docs/examples/alertmanager.yml', `${doc}/examples/alertmanager.yml`);
  copy(root, 'alerts/pg-keeper.rules.yml', 'usr/share/pg-keeper/alerts/pg-keeper.rules.yml');
  copy(root, 'dashboards/pg-keeper.json', 'usr/share/pg-keeper/dashboards/pg-keeper.json');
  mkdirSync(path.join(root, 'etc', 'pg-keeper'), { recursive: true });
  put(
    root,
    `${doc}/copyright`,
    [
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
      'Upstream-Name: pg-keeper',
      '',
      'Files: *',
      'License: PostgreSQL',
      '',
      'Files: usr/lib/pg-keeper/pg-keeper',
      'Comment: a single executable: Node.js with pg-keeper and these npm packages bundled in',
      ...bundled.packages.map((p) => `  ${p.name} ${p.version}: ${p.license}`),
      '',
      'Licence notices found in the bundled code:',
      readFileSync(`${js}.LEGAL.txt`, 'utf8'),
      `Node.js ${process.version}:`,
      nodeLicense(),
    ].join('\n'),
  );

  // 3. Debian's control files.
  const control = path.join(root, 'DEBIAN');
  mkdirSync(control, { mode: 0o755 });
  const payload = files(root).filter((f) => !f.startsWith('DEBIAN'));
  const installedKb = Math.ceil(payload.reduce((n, f) => n + statSync(path.join(root, f)).size, 0) / 1024);
  put(
    root,
    'DEBIAN/control',
    [
      'Package: pg-keeper',
      `Version: ${pkg.version}`,
      'Architecture: amd64',
      'Maintainer: pg-keeper developers <pg-keeper@users.noreply.github.com>',
      `Installed-Size: ${installedKb}`,
      // The embedded Node.js 20 needs glibc 2.28 and the C++ runtime; useradd is in passwd.
      'Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1, passwd',
      'Recommends: iproute2, iputils-arping',
      'Suggests: postgresql, prometheus, prometheus-alertmanager',
      'Section: database',
      'Priority: optional',
      'Homepage: https://github.com/pg-keeper/pg-keeper',
      `Description: ${pkg.description.split(',')[0]}`,
      ' A small keeper beside each PostgreSQL server of a pair heartbeats the other node;',
      ' after keepalive_count failures the standby promotes itself (with guards against',
      ' losing acknowledged commits) and the primary switches to asynchronous replication.',
      ' It exports Prometheus metrics, health checks and a status page. This package carries',
      ' its own Node.js runtime: the host needs none.',
      '',
    ].join('\n'),
  );
  put(root, 'DEBIAN/postinst', POSTINST, 0o755);
  put(root, 'DEBIAN/prerm', PRERM, 0o755);
  put(root, 'DEBIAN/postrm', POSTRM, 0o755);
  put(
    root,
    'DEBIAN/md5sums',
    payload
      .map(
        (f) =>
          `${createHash('md5')
            .update(readFileSync(path.join(root, f)))
            .digest('hex')}  ${f}\n`,
      )
      .join(''),
  );

  // 4. The package. The executable is most of it: zstd -9 compresses it in a second, xz -6 (dpkg's
  //    default level) makes it a quarter smaller in fifty times as long.
  const deb = path.join(outDir, `pg-keeper_${pkg.version}_amd64.deb`);
  const compress = o.compression === 'xz' ? ['-Zxz'] : ['-Zzstd', '-z9'];
  sh('dpkg-deb', ['--root-owner-group', ...compress, '--build', root, deb], 'dpkg-deb');
  return { deb, bytes: statSync(deb).size, binaryBytes: statSync(exe).size };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, xz: { type: 'boolean' } } });
  const t0 = Date.now();
  const { deb, bytes, binaryBytes } = await packageDeb({
    outDir: values.out ? path.resolve(values.out) : ROOT,
    compression: values.xz ? 'xz' : 'zstd',
  });
  const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  process.stdout.write(
    `package-deb: ${path.relative(process.cwd(), deb) || deb} (${mb(bytes)}; executable ${mb(binaryBytes)}) ` +
      `in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}
