// A real pair (src/demo/cluster.ts) with a real keeper process beside each node
// (test/support/keeper-process.ts), and the bookkeeping that guarantees teardown.
//
// Everything created here is registered until it is destroyed, so that an error, Ctrl-C or SIGTERM
// can tear it all down: destroyAll() stops keepers first (so they do not act on servers being
// stopped), then the servers, then removes the directories. killChildrenSync() is the last resort
// for an exiting process: it SIGKILLs, by pid, the keeper processes this process spawned (also one
// still starting, found as a child of this process running the keeper CLI); exitCleanupSync() adds
// the servers and the directories, for process.on('exit').

import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgPair } from '../../src/demo/cluster.js';
import { CLI, KeeperProcess, waitFor } from '../../test/support/keeper-process.js';

export interface Rig {
  dir: string;
  pair: PgPair;
  k1: KeeperProcess;
  k2: KeeperProcess;
}

const liveKeepers = new Set<KeeperProcess>();
const livePairs = new Set<PgPair>();
const liveDirs = new Set<string>();

/** A fresh directory PostgreSQL (OS user postgres when we are root) can reach. */
function makeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-bench-'));
  chmodSync(dir, 0o755);
  liveDirs.add(dir);
  return dir;
}

async function startKeeper(
  dir: string,
  pair: PgPair,
  node: 'node1' | 'node2',
  settings: Record<string, unknown>,
): Promise<KeeperProcess> {
  const k = await KeeperProcess.start({
    dir,
    node,
    node1: pair.conninfo(pair.node1),
    node2: pair.conninfo(pair.node2),
    settings,
  });
  liveKeepers.add(k);
  return k;
}

/** Resolves once node1's keeper sees a synchronous primary and node2's a standby that was synchronous. */
export async function waitUntilHealthy(rig: Rig, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const s = await rig.k1.status();
      return s.role === 'primary' && s.sync_mode === 'sync' && s.peer_reachable;
    },
    "node1's keeper to see a synchronous primary",
    timeoutMs,
  );
  await waitFor(
    async () => {
      const s = await rig.k2.status();
      return s.role === 'standby' && s.peer_reachable && s.guards.synchronous_at_last_contact;
    },
    "node2's keeper to see itself as the synchronous standby",
    timeoutMs,
  );
}

/** A new pair (node1 primary, node2 sync standby) and both keepers, healthy. Cleans up after itself on failure. */
export async function createRig(settings: Record<string, unknown>): Promise<Rig> {
  const dir = makeDir();
  let pair: PgPair | null = null;
  const keepers: KeeperProcess[] = [];
  try {
    pair = await PgPair.create({ baseDir: join(dir, 'pg') });
    livePairs.add(pair);
    keepers.push(await startKeeper(dir, pair, 'node1', settings));
    keepers.push(await startKeeper(dir, pair, 'node2', settings));
    const [k1, k2] = keepers as [KeeperProcess, KeeperProcess];
    const rig = { dir, pair, k1, k2 };
    await waitUntilHealthy(rig);
    return rig;
  } catch (err) {
    await destroyParts(dir, pair, keepers);
    throw err;
  }
}

export function destroyRig(rig: Rig): Promise<void> {
  return destroyParts(rig.dir, rig.pair, [rig.k1, rig.k2]);
}

async function destroyParts(dir: string, pair: PgPair | null, keepers: KeeperProcess[]): Promise<void> {
  await Promise.all(keepers.map((k) => k.kill()));
  for (const k of keepers) liveKeepers.delete(k);
  if (pair) {
    await pair.destroy();
    livePairs.delete(pair);
  }
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** Tears down everything still registered. Never throws. */
export async function destroyAll(): Promise<void> {
  killChildrenSync();
  await Promise.all([...liveKeepers].map((k) => k.kill().catch(() => null)));
  liveKeepers.clear();
  await Promise.all([...livePairs].map((p) => p.destroy()));
  livePairs.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

/**
 * For process.on('exit'): SIGKILL our keepers, SIGKILL the servers of every live pair (PgPair's
 * emergencyStop), remove our directories. Synchronous and best effort.
 */
export function exitCleanupSync(): void {
  killChildrenSync();
  for (const pair of livePairs) pair.emergencyStop();
  livePairs.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort: the process is exiting
    }
  }
  liveDirs.clear();
}

/** SIGKILL, by pid, every keeper process this process started and that may still run. Synchronous. */
export function killChildrenSync(): void {
  for (const k of liveKeepers) {
    if (k.exitCode === null) k.child.kill('SIGKILL');
  }
  // A keeper spawned by a KeeperProcess.start() that has not returned yet is not registered: find
  // it among our own children by the CLI it runs.
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmdline.includes(CLI)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours
    }
  }
}
