// A real pair (src/local-pair, with the tests' moves of test/support/test-pair.ts) with a real
// keeper process beside each node (test/support/keeper-process.ts), and the bookkeeping that
// guarantees teardown.
//
// Everything created here is registered until it is destroyed, so that an error, Ctrl-C or SIGTERM
// can tear it all down in order: destroyAll() stops keepers first (so they do not act on servers
// being stopped), then the servers, then removes the directories. Should the process exit without
// it, each keeper, pair and directory has its own exit hook (src/local-pair/exit-hook.ts), which
// kills by pid.

import { join } from 'node:path';
import type { NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import { KeeperProcess, type KeeperHttp } from '../../test/support/keeper-process.js';
import { makeDir, rmDir } from '../../test/support/temp-dir.js';
import { TestPair } from '../../test/support/test-pair.js';

export interface Rig {
  dir: string;
  pair: TestPair;
  k1: KeeperProcess;
  k2: KeeperProcess;
}

const liveKeepers = new Set<KeeperProcess>();
const livePairs = new Set<TestPair>();
const liveDirs = new Set<string>();

async function startKeeper(
  dir: string,
  pair: TestPair,
  node: NodeName,
  settings: Record<string, unknown>,
  http: KeeperHttp | undefined,
): Promise<KeeperProcess> {
  const k = await KeeperProcess.start({
    dir,
    node,
    node1: pair.conninfo(pair.node1),
    node2: pair.conninfo(pair.node2),
    settings,
    ...(http ? { http } : {}),
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

/**
 * A new pair (node1 primary, node2 sync standby) and both keepers, healthy. Cleans up after
 * itself on failure. `http`: how to reach keepers that have a web_config_file.
 */
export async function createRig(settings: Record<string, unknown>, http?: KeeperHttp): Promise<Rig> {
  const dir = makeDir('pgk-bench-');
  liveDirs.add(dir);
  let pair: TestPair | null = null;
  const keepers: KeeperProcess[] = [];
  try {
    pair = await TestPair.create({ baseDir: join(dir, 'pg') });
    livePairs.add(pair);
    keepers.push(await startKeeper(dir, pair, 'node1', settings, http));
    keepers.push(await startKeeper(dir, pair, 'node2', settings, http));
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

async function destroyParts(dir: string, pair: TestPair | null, keepers: KeeperProcess[]): Promise<void> {
  await Promise.all(keepers.map((k) => k.kill()));
  for (const k of keepers) liveKeepers.delete(k);
  if (pair) {
    await pair.destroy();
    livePairs.delete(pair);
  }
  rmDir(dir);
  liveDirs.delete(dir);
}

/** Tears down everything still registered. Never throws. */
export async function destroyAll(): Promise<void> {
  await Promise.all([...liveKeepers].map((k) => k.kill().catch(() => null)));
  liveKeepers.clear();
  await Promise.all([...livePairs].map((p) => p.destroy()));
  livePairs.clear();
  for (const dir of liveDirs) rmDir(dir);
  liveDirs.clear();
}
