// The demo needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres). On a fresh
// Debian machine, as root, it installs Debian's `postgresql` package; otherwise it says what to install.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { findPgBin } from '../local-pair/pg-bin.js';

const APT_GET = '/usr/bin/apt-get';
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

export function installHint(): string {
  return [
    'PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres) were not found in',
    '/usr/lib/postgresql/<version>/bin, and $PG_BIN is not set. Install them, then run the demo again:',
    '  Debian, Ubuntu:  sudo apt-get update && sudo apt-get install -y postgresql',
    '  Fedora, RHEL:    sudo dnf install -y postgresql-server   (then PG_BIN=/usr/bin)',
    '  elsewhere:       set PG_BIN to the directory holding initdb',
    '(run as root, pg-keeper demo installs the Debian package itself)',
  ].join('\n');
}

/**
 * The directory holding the server binaries, installing them first when missing and possible.
 * Returns null, having printed what to do, when they are missing and cannot be installed here.
 */
export async function ensurePgBin(
  say: (line: string) => void,
  fail: (line: string) => void,
): Promise<string | null> {
  const found = findPgBin();
  if (found) return found;
  if (process.getuid?.() !== 0 || !fs.existsSync(APT_GET)) {
    fail(installHint());
    return null;
  }
  say("PostgreSQL server binaries not found: installing Debian's postgresql package (this takes a minute)");
  // Keep the package from starting Debian's own cluster (15/main on port 5432): the demo does not use it.
  // policy-rc.d is Debian's documented way to stop maintainer scripts from starting services.
  const ownPolicy = !fs.existsSync(POLICY_RC_D);
  if (ownPolicy) fs.writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'postgresql']]) {
      say(`$ apt-get ${args.join(' ')}`);
      const code = await aptGet(args);
      if (code !== 0) {
        fail(`apt-get ${args[0]} failed (exit status ${code}).\n${installHint()}`);
        return null;
      }
    }
  } finally {
    if (ownPolicy) fs.rmSync(POLICY_RC_D, { force: true });
  }
  const bin = findPgBin();
  if (!bin) fail('the postgresql package is installed, but no /usr/lib/postgresql/*/bin/initdb was found');
  else say(`PostgreSQL installed: ${bin}`);
  return bin;
}

/** apt-get with its progress going to our stderr (stdout stays the demo's own output). */
function aptGet(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(APT_GET, ['-q', ...args], {
      stdio: ['ignore', process.stderr, process.stderr],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.on('error', () => resolve(127));
    child.on('close', (code) => resolve(code ?? 1));
  });
}
