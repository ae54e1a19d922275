// podman for the package and container tests, in a store of its own: its images, containers and
// volumes live under a temporary directory, never in the machine's store, and destroy() removes
// them all, images included (also on SIGINT and SIGTERM, and when the process exits without it).
//
// The configuration avoids three traps of machines like CI's (measured on Debian 12 as root):
// podman's default ulimits fail (setrlimit RLIMIT_NOFILE: Operation not permitted), so they are set
// to this machine's hard limits (nproc at most 32768); crun refuses a hybrid cgroup layout, so runc;
// and there is no systemd, so cgroupfs and a file for events. Containers get the host's network
// unless told otherwise (the default would make a bridge and firewall rules on this host). Nothing
// under /etc is changed.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onExit } from '../../src/local-pair/exit-hook.js';

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** This process's hard limit, from /proc/self/limits ("Max open files  20000  20000  files"). */
function hardLimit(name: 'Max open files' | 'Max processes'): number {
  const line = fs
    .readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  if (hard === undefined) throw new Error(`no "${name}" in /proc/self/limits`);
  return hard === 'unlimited' ? Infinity : Number(hard);
}

/** Fails with a message that says what to do, when this machine cannot run podman at all. */
export function requirePodman(): void {
  const missing = ['podman', 'runc', 'mmdebstrap'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  if (missing.length > 0) {
    throw new Error(
      `this machine cannot run the container tests: ${missing.join(', ')} missing ` +
        '(as root: bash scripts/ensure-deps.sh --containers)',
    );
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the container tests run podman as root (host networking, a store under /tmp): run them as root',
    );
  }
}

export class Podman {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  #destroyed = false;
  #unregister: () => void = () => {};

  private constructor(dir: string) {
    this.dir = dir;
    const conf = (name: string): string => path.join(dir, name);
    const nofile = Math.min(hardLimit('Max open files'), 1024 * 1024);
    const nproc = Math.min(hardLimit('Max processes'), 32768);
    fs.mkdirSync(conf('tmp'));
    fs.writeFileSync(
      conf('containers.conf'),
      [
        '[containers]',
        `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
        'log_driver = "k8s-file"',
        // Host networking unless a test asks otherwise: no bridge, no firewall rules on this host.
        'netns = "host"',
        '[engine]',
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${conf('events.log')}"`,
        `tmp_dir = "${conf('tmp')}"`,
        '[network]',
        `network_config_dir = "${conf('networks')}"`,
        '',
      ].join('\n'),
    );
    fs.writeFileSync(
      conf('storage.conf'),
      `[storage]\ndriver = "overlay"\ngraphroot = "${conf('storage')}"\nrunroot = "${conf('run')}"\n`,
    );
    // Nothing is ever pulled: every image is built here.
    fs.writeFileSync(conf('registries.conf'), 'unqualified-search-registries = []\n');
    this.env = {
      ...process.env,
      CONTAINERS_CONF: conf('containers.conf'),
      CONTAINERS_STORAGE_CONF: conf('storage.conf'),
      CONTAINERS_REGISTRIES_CONF: conf('registries.conf'),
      TMPDIR: conf('tmp'),
    };
  }

  /** A new empty store; fails with what to install when podman cannot run a container here. */
  static create(): Podman {
    requirePodman();
    const p = new Podman(fs.mkdtempSync(path.join(os.tmpdir(), 'pgk-podman-')));
    p.#unregister = onExit(() => p.destroySync());
    const info = p.run(['info', '--format', '{{.Host.OCIRuntime.Name}}']);
    if (info.code !== 0) {
      p.destroySync();
      throw new Error(`podman cannot run here (podman info failed):\n${info.err}`);
    }
    return p;
  }

  /** `podman ARGS`, waited for (at most `timeoutMs`). */
  run(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Run {
    const r: SpawnSyncReturns<string> = spawnSync('podman', args, {
      env: this.env,
      encoding: 'utf8',
      input: opts.input,
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return {
      code: r.status,
      out: r.stdout ?? '',
      err: `${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`,
    };
  }

  /** Like run(), but throws, with podman's output, unless it exits 0. */
  must(args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    const r = this.run(args, opts);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (exit ${r.code}):\n${r.out}${r.err}`);
    return r.out;
  }

  /** Removes every container, volume and image of this store, then the store. Safe to repeat. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#unregister();
    this.run(['rm', '--all', '--force', '--time', '2'], { timeoutMs: 60_000 });
    this.run(['volume', 'rm', '--all', '--force'], { timeoutMs: 30_000 });
    this.run(['rmi', '--all', '--force'], { timeoutMs: 60_000 });
    // Overlay mounts left behind by a container that was killed would keep files busy.
    const mounts = fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${this.dir}/`))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }
}
