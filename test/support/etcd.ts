// Real etcd servers for the arbiter's tests: one member, or a 3-member cluster, on free
// ports of 127.0.0.1, each with its own data directory. Members are killed, frozen and
// restarted by their pid; everything is torn down by destroy(), and by an exit or signal
// handler if the test process ends first.
//
//   const etcd = await EtcdCluster.start({ members: 1 });
//   try { ... etcd.endpoints ... } finally { await etcd.destroy(); }

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';

const ETCD = '/usr/bin/etcd';

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child: ChildProcess | null;
  log: string;
  frozen: boolean;
}

const live = new Set<EtcdCluster>();
let hooked = false;
function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) c.emergencyStop();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const c of live) c.emergencyStop();
      process.kill(process.pid, signal);
    });
  }
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    private readonly members: Member[],
  ) {}

  static async start(o: { members: 1 | 3 } = { members: 1 }): Promise<EtcdCluster> {
    const probe = spawnSync(ETCD, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0)
      throw new Error(`${ETCD} is not installed: run scripts/ensure-deps.sh (Debian package etcd-server)`);
    const dir = mkdtempSync(join(tmpdir(), 'pgk-etcd-'));
    const members: Member[] = [];
    for (let i = 1; i <= o.members; i++) {
      members.push({
        name: `m${i}`,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dataDir: join(dir, `m${i}`),
        child: null,
        log: '',
        frozen: false,
      });
    }
    const cluster = new EtcdCluster(dir, members);
    live.add(cluster);
    installHooks();
    try {
      for (const m of members) cluster.spawn(m, 'new');
      await cluster.waitHealthy();
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  /** Client URLs, one per member. */
  get endpoints(): string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  }

  memberNames(): string[] {
    return this.members.map((m) => m.name);
  }

  /** The member that is raft leader now (asked of any member that answers). */
  async leader(): Promise<string> {
    for (const m of this.members) {
      if (!m.child || m.frozen) continue;
      try {
        const r = await post(m.clientPort, '/v3/maintenance/status', {});
        const leaderId = String(r.leader ?? '');
        const members = await post(m.clientPort, '/v3/cluster/member/list', {});
        const list = (members.members ?? []) as { ID?: string; name?: string }[];
        const found = list.find((x) => String(x.ID) === leaderId)?.name;
        if (found) return found;
      } catch {
        // ask the next one
      }
    }
    throw new Error('no etcd member names a leader');
  }

  /** SIGKILL a member (all of them without a name). */
  async kill(name?: string): Promise<void> {
    for (const m of this.pick(name)) {
      const child = m.child;
      if (!child) continue;
      m.child = null;
      m.frozen = false;
      // A member that died by itself has already said so: do not wait for an exit that came.
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** SIGSTOP (true) or SIGCONT (false) a member (all of them without a name). */
  freeze(frozen: boolean, name?: string): void {
    for (const m of this.pick(name)) {
      if (!m.child) continue;
      m.child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
      m.frozen = frozen;
    }
  }

  /** Start again what kill() stopped, with its data (all of them without a name). */
  async restart(name?: string): Promise<void> {
    for (const m of this.pick(name)) if (!m.child) this.spawn(m, 'existing');
    await this.waitHealthy();
  }

  /** Resolves once every running member answers its health endpoint. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        for (const m of this.members) {
          if (!m.child || m.frozen) continue;
          const r = await fetch(`http://127.0.0.1:${m.clientPort}/health`, {
            signal: AbortSignal.timeout(1000),
          });
          const body = (await r.json()) as { health?: string };
          if (body.health !== 'true') return false;
        }
        return true;
      },
      'etcd to be healthy',
      timeoutMs,
      100,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${this.members.map((m) => `--- ${m.name}\n${m.log.slice(-2000)}`).join('\n')}`,
      );
    });
  }

  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous, for exit handlers. */
  emergencyStop(): void {
    for (const m of this.members) {
      if (m.child?.pid !== undefined) {
        try {
          process.kill(m.child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      m.child = null;
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  private pick(name?: string): Member[] {
    const found = name === undefined ? this.members : this.members.filter((m) => m.name === name);
    if (found.length === 0) throw new Error(`no etcd member ${name}`);
    return found;
  }

  private spawn(m: Member, state: 'new' | 'existing'): void {
    const cluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const child = spawn(
      ETCD,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster',
        cluster,
        '--initial-cluster-state',
        state,
        '--initial-cluster-token',
        `pgk-${this.dir.slice(-8)}`,
        // Tests are small: no fsync cost beyond what etcd insists on, and less log noise.
        '--log-level',
        'warn',
        '--logger',
        'zap',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (c: Buffer): void => {
      m.log = (m.log + c.toString('utf8')).slice(-64 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    m.child = child;
  }
}

async function post(port: number, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(1000),
  });
  return (await r.json()) as Record<string, unknown>;
}
