// deploy/: the systemd unit, the example configuration and the example after_command, checked
// the way an operator would use them. systemd-analyze (Debian's systemd package, installed by
// scripts/ensure-deps.sh) judges the unit; the hook runs for real in a network namespace of its
// own with a bridge interface (as root, like CI), and in dry runs.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KEYS } from '../../src/config/keys.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const at = (...p: string[]): string => path.join(ROOT, ...p);
const read = (...p: string[]): string => fs.readFileSync(at(...p), 'utf8');
const SCRIPT = at('deploy', 'after_command', 'move-vip.sh');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgk-deploy-'));
before(() => {
  if (!fs.existsSync(CLI)) execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Values of `key=` lines in the unit text (commented-out lines are not directives). */
function directive(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

/** The unit with its VIP block's commented-out directives enabled, as the comment tells people to. */
function unitWithVip(): string {
  const unit = read('deploy', 'pg-keeper.service');
  const start = unit.indexOf('# Moving a virtual IP');
  assert.ok(start > 0, 'the unit has a VIP block');
  const end = unit.indexOf('\n\n', start);
  const block = unit.slice(start, end).replace(/^#([A-Z][A-Za-z]+=)/gm, '$1');
  return unit.slice(0, start) + block + unit.slice(end);
}

/** `systemd-analyze security --offline` findings, by the setting they are about: "✓" or "✗". */
function security(unitText: string): Map<string, string> {
  const file = path.join(tmp, 'pg-keeper.service');
  fs.writeFileSync(file, unitText);
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], {
    encoding: 'utf8',
  });
  assert.ok(r.status !== null && r.error === undefined, `systemd-analyze: ${r.error?.message ?? r.stderr}`);
  const findings = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([✓✗])\s+(\S+)/.exec(line);
    if (m?.[1] && m[2]) findings.set(m[2], m[1]);
  }
  assert.ok(findings.size > 10, r.stdout + r.stderr);
  return findings;
}

describe('deploy/pg-keeper.service', () => {
  test('starts the CLI with `run --config`, reloads with SIGHUP, keeps state', () => {
    const unit = read('deploy', 'pg-keeper.service');
    assert.match(
      directive(unit, 'ExecStart')[0] ?? '',
      /\bpg-keeper run --config \/etc\/pg-keeper\/pg-keeper\.yml$/,
    );
    assert.deepEqual(directive(unit, 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(directive(unit, 'StateDirectory'), ['pg-keeper']);
    assert.deepEqual(directive(unit, 'Restart'), ['on-failure']);
    assert.deepEqual(directive(unit, 'User'), ['postgres']);
    assert.deepEqual(directive(unit, 'NoNewPrivileges'), ['yes']);
    assert.deepEqual(directive(unit, 'ProtectSystem'), ['strict']);
  });

  test('systemd-analyze verify accepts it, as shipped and with the VIP block enabled', () => {
    for (const [what, text] of [
      ['as shipped', read('deploy', 'pg-keeper.service')],
      ['with the VIP block', unitWithVip()],
    ] as const) {
      const file = path.join(tmp, 'pg-keeper.service');
      fs.writeFileSync(file, text);
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${what}: ${r.error?.message ?? r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${what}: ${r.stderr}`);
    }
  });

  test('as shipped: no capabilities, no packet sockets', () => {
    const f = security(read('deploy', 'pg-keeper.service'));
    assert.equal(f.get('RestrictAddressFamilies=~AF_PACKET'), '✓');
    assert.equal(f.get('CapabilityBoundingSet=~CAP_NET_ADMIN'), '✓');
    assert.equal(f.get('CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)'), '✓');
  });

  test('with the VIP block enabled: what ip and arping need, packet sockets included, and still the rest', () => {
    const f = security(unitWithVip());
    assert.equal(f.get('RestrictAddressFamilies=~AF_PACKET'), '✗', 'arping needs AF_PACKET');
    assert.equal(f.get('CapabilityBoundingSet=~CAP_NET_ADMIN'), '✗', 'ip addr add needs CAP_NET_ADMIN');
    assert.equal(
      f.get('CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)'),
      '✗',
      'arping: CAP_NET_RAW',
    );
    // The added family extends the list instead of replacing it.
    assert.equal(f.get('RestrictAddressFamilies=~AF_(INET|INET6)'), '✗', 'Internet sockets still allowed');
    assert.equal(f.get('RestrictAddressFamilies=~…'), '✓', 'exotic families still denied');
    assert.equal(f.get('CapabilityBoundingSet=~CAP_SYS_ADMIN'), '✓');
    const unit = unitWithVip();
    assert.deepEqual(directive(unit, 'AmbientCapabilities'), ['CAP_NET_ADMIN CAP_NET_RAW']);
  });

  test('the script asks for what the unit grants', () => {
    const script = fs.readFileSync(SCRIPT, 'utf8');
    for (const need of ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'AF_PACKET']) {
      assert.match(script, new RegExp(need), `move-vip.sh names ${need}`);
      assert.match(
        unitWithVip(),
        new RegExp(`^[A-Za-z]+=.*\\b${need}\\b`, 'm'),
        `the VIP block grants ${need}`,
      );
    }
  });
});

describe('deploy/pg-keeper.yml.example', () => {
  test('passes check-config, and a copied file runs no hook until one is given', () => {
    const r = cli(['check-config', '--config', at('deploy', 'pg-keeper.yml.example')]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^after_command: $/m);
    assert.match(
      read('deploy', 'pg-keeper.yml.example'),
      /^# after_command: "sh \/etc\/pg-keeper\/move-vip\.sh"$/m,
    );
  });

  test('shows every key', () => {
    const text = read('deploy', 'pg-keeper.yml.example');
    for (const key of Object.keys(KEYS)) {
      assert.match(text, new RegExp(`^(# )?${key}:`, 'm'), `key ${key} is missing from the example`);
    }
  });
});

describe('deploy/after_command/move-vip.sh', () => {
  // Every run is inside a network namespace of its own (unshare --net), with stand-ins for ssh
  // and arping first on PATH: a script whose dry run is broken changes nothing on this host and
  // sends nothing anywhere. (An earlier version took DRY_RUN=yes for a real run.)
  const bin = path.join(tmp, 'bin');
  const calls = path.join(tmp, 'calls.log');
  before(() => {
    assert.equal(process.getuid?.(), 0, 'these tests need root (unshare --net, ip addr add), as CI has');
    fs.mkdirSync(bin, { recursive: true });
    for (const [tool, failsWith] of [
      ['arping', 'ARPING_FAILS'],
      ['ssh', 'SSH_FAILS'],
    ] as const) {
      fs.writeFileSync(
        path.join(bin, tool),
        `#!/bin/sh\necho "${tool} $*" >> '${calls}'\n` +
          `[ -z "\${${failsWith}:-}" ] || { echo "${tool}: failed (stand-in)" >&2; exit 2; }\n`,
        { mode: 0o755 },
      );
    }
  });
  /** The script in a network namespace of its own, with only `env`; `setup` runs there first. */
  const run = (env: Record<string, string>, setup = ''): { code: number | null; out: string } =>
    spawnOut('unshare', ['--net', '--', 'sh', '-c', `${setup}\nsh "$SCRIPT"`], { ...env, SCRIPT }, bin);
  const promote = {
    PG_KEEPER_EVENT: 'promote',
    PG_KEEPER_NODE: 'node2',
    PG_KEEPER_REASON: 'primary missed 4 heartbeats in a row',
    PG_KEEPER_OLD_PRIMARY_HOST: '10.0.0.11',
    PG_KEEPER_OLD_PRIMARY_PORT: '5432',
  };
  const dry = { ...promote, DRY_RUN: '1' };

  test('is valid sh', () => {
    const r = spawnSync('sh', ['-n', SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('on promote, fences the old primary, then takes the VIP and announces it (dry run)', () => {
    const r = run({ ...dry, VIP: '10.0.0.100/24', VIP_DEV: 'eth0', FENCE_SSH: 'postgres@10.0.0.11' });
    assert.equal(r.code, 0, r.out);
    const fence = r.out.indexOf('+ ssh');
    const add = r.out.indexOf('+ ip addr add 10.0.0.100/24 dev eth0');
    const arp = r.out.indexOf('+ arping -q -c 3 -U -I eth0 10.0.0.100');
    assert.ok(fence >= 0 && add > fence && arp > add, r.out);
    assert.match(r.out, /stop -m immediate/);
  });

  test('a dry run says what would be done, never that it was', () => {
    fs.rmSync(calls, { force: true });
    for (const yes of ['1', 'yes', 'true', 'YES']) {
      const r = run({ ...promote, DRY_RUN: yes, VIP: '10.0.0.100/24', VIP_DEV: 'eth0', FENCE_SSH: 'p@h' });
      assert.equal(r.code, 0, `DRY_RUN=${yes}: ${r.out}`);
      assert.match(r.out, /\(dry run\)/, `DRY_RUN=${yes} is a dry run`);
      assert.doesNotMatch(r.out, /fenced: |done: /, `DRY_RUN=${yes}: ${r.out}`);
      assert.match(r.out, /the old primary's server would be stopped/);
      assert.match(r.out, /nothing was changed; 10\.0\.0\.100 would point at node2/);
    }
    assert.ok(
      !fs.existsSync(calls),
      `a dry run called ${fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : ''}`,
    );
  });

  test('refuses a DRY_RUN it does not understand, rather than acting for real', () => {
    const r = run({ ...promote, DRY_RUN: 'maybe', VIP: '10.0.0.100/24', VIP_DEV: 'eth0' });
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /DRY_RUN=maybe: expected 1\/yes\/true or 0\/no\/false/);
  });

  test('refuses to run without VIP and VIP_DEV', () => {
    const r = run(dry);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /VIP and VIP_DEV must be set/);
  });

  test('refuses a VIP without its prefix length', () => {
    for (const vip of ['10.0.0.100', '10.0.0.100/33', 'pg-vip/24']) {
      const r = run({ ...dry, VIP: vip, VIP_DEV: 'eth0' });
      assert.equal(r.code, 2, `${vip}: ${r.out}`);
      assert.match(r.out, /expected an IPv4 address with its prefix length/);
    }
  });

  test('reads VIP and VIP_DEV from MOVE_VIP_ENV; the environment wins', () => {
    const file = path.join(tmp, 'move-vip.env');
    fs.writeFileSync(file, '# settings\nVIP="10.0.0.7/24"\nVIP_DEV=eth1\n');
    const r = run({ ...dry, MOVE_VIP_ENV: file, VIP_DEV: 'eth2' });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /\+ ip addr add 10\.0\.0\.7\/24 dev eth2/);
  });

  test('does nothing for other events', () => {
    const r = run({ ...dry, PG_KEEPER_EVENT: 'switch-to-async' });
    assert.equal(r.code, 0, r.out);
    assert.doesNotMatch(r.out, /\+ ip/);
  });

  describe('for real, in a network namespace of its own', () => {
    // 192.0.2.0/24 is TEST-NET-1, on a bridge interface that exists only in this namespace.
    const vip = { ...promote, VIP: '192.0.2.10/24', VIP_DEV: 'pgk0' };
    /** `unshare --net`, a bridge interface, the script `runs` times, then what ip shows. */
    const inNamespace = (env: Record<string, string>, runs = 1): { code: number | null; out: string } => {
      const script = [
        'ip link add pgk0 type bridge && ip link set pgk0 up || exit 99',
        'rc=0',
        ...Array.from({ length: runs }, () => 'sh "$SCRIPT" || rc=$?'),
        'ip -o -4 addr show dev pgk0',
        'exit $rc',
      ].join('\n');
      return spawnOut('unshare', ['--net', '--', 'sh', '-c', script], { ...env, SCRIPT }, bin);
    };

    test('adds the VIP with its prefix, announces it, and a second run finds it in place', () => {
      fs.rmSync(calls, { force: true });
      const r = inNamespace(vip, 2);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /inet 192\.0\.2\.10\/24 /);
      assert.equal((r.out.match(/\+ ip addr add/g) ?? []).length, 1, r.out);
      assert.match(r.out, /192\.0\.2\.10\/24 is already on pgk0/);
      assert.match(r.out, /done: 192\.0\.2\.10 now points at node2/);
      assert.match(fs.readFileSync(calls, 'utf8'), /^arping -q -c 3 -U -I pgk0 192\.0\.2\.10$/m);
    });

    test('a gratuitous ARP that fails is a failed hook (exit 5), not a shrug', () => {
      const r = inNamespace({ ...vip, ARPING_FAILS: '1' });
      assert.equal(r.code, 5, r.out);
      assert.match(r.out, /arping failed/);
      assert.doesNotMatch(r.out, /done: /);
    });

    test('no arping at all is a failed hook too, unless VIP_ARP=0 says ARP is not wanted', () => {
      // A PATH with the tools the script uses, and no arping.
      const tools = path.join(tmp, 'tools');
      fs.mkdirSync(tools, { recursive: true });
      for (const tool of ['sh', 'ip', 'grep', 'sed', 'date', 'tr', 'tail']) {
        const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
        fs.symlinkSync(real, path.join(tools, tool));
      }
      const r = spawnSync(
        '/usr/bin/unshare',
        ['--net', '--', path.join(tools, 'sh'), '-c', 'ip link add pgk0 type bridge && sh "$SCRIPT"'],
        { encoding: 'utf8', env: { ...vip, SCRIPT, PATH: tools, MOVE_VIP_ENV: '/nonexistent' } },
      );
      assert.equal(r.status, 5, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /arping not found/);
      const skip = inNamespace({ ...vip, VIP_ARP: '0' });
      assert.equal(skip.code, 0, skip.out);
      assert.match(skip.out, /no gratuitous ARP \(VIP_ARP=0\)/);
    });
  });
});

function spawnOut(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  bin?: string,
): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: { PATH: `${bin ? `${bin}:` : ''}${process.env.PATH ?? ''}`, MOVE_VIP_ENV: '/nonexistent', ...env },
    timeout: 20_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}
