// A real pair with a keeper beside each node, as most end-to-end tests need it.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgPair, type PairOptions } from '../../src/demo/cluster.js';
import { KeeperProcess, waitFor } from './keeper-process.js';

export interface Setup {
  dir: string;
  pair: PgPair;
  k1: KeeperProcess;
  k2: KeeperProcess;
}

export interface SetupOptions {
  settings?: Record<string, unknown>;
  /** Per node, on top of `settings`. */
  node1Settings?: Record<string, unknown>;
  node2Settings?: Record<string, unknown>;
  /** Conninfo each keeper uses for its peer (default: the peer's own port). */
  peerConninfo?: (pair: PgPair, of: 'node1' | 'node2') => string;
  pairOptions?: Partial<PairOptions>;
  /** Runs once the pair exists, before the keepers start (e.g. to put a proxy in front of a node). */
  prepare?: (pair: PgPair) => Promise<void>;
}

export async function makeDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pgk-e2e-'));
  chmodSync(dir, 0o755); // the postgres OS user must reach the data directories inside
  return dir;
}

export async function setUp(o: SetupOptions = {}): Promise<Setup> {
  const dir = await makeDir();
  const started: KeeperProcess[] = [];
  let pair: PgPair | undefined;
  try {
    pair = await PgPair.create({ baseDir: join(dir, 'pg'), ...o.pairOptions });
    await o.prepare?.(pair);
    const p = pair;
    const ci = (node: 'node1' | 'node2', keeperOf: 'node1' | 'node2'): string =>
      node !== keeperOf && o.peerConninfo ? o.peerConninfo(p, node) : p.conninfo(p[node]);
    const start = async (
      node: 'node1' | 'node2',
      extra: Record<string, unknown> = {},
    ): Promise<KeeperProcess> => {
      const k = await KeeperProcess.start({
        dir,
        node,
        node1: ci('node1', node),
        node2: ci('node2', node),
        settings: { ...o.settings, ...extra },
      });
      started.push(k);
      return k;
    };
    const k1 = await start('node1', o.node1Settings);
    const k2 = await start('node2', o.node2Settings);
    await waitFor(async () => {
      const s = await k1.status();
      return s.role === 'primary' && s.sync_mode === 'sync';
    }, 'node1 keeper to see a synchronous primary');
    await waitFor(async () => {
      const s = await k2.status();
      return s.role === 'standby' && s.guards.synchronous_at_last_contact;
    }, 'node2 keeper to see itself as the synchronous standby');
    return { dir, pair, k1, k2 };
  } catch (err) {
    await Promise.all(started.map((k) => k.kill()));
    await pair?.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function tearDown(s: Setup | undefined, ...more: KeeperProcess[]): Promise<void> {
  if (!s) return;
  await Promise.all([s.k1.kill(), s.k2.kill(), ...more.map((k) => k.kill())]);
  await s.pair.destroy();
  rmSync(s.dir, { recursive: true, force: true });
}

/** Wall-clock ms of the first successful `event` in a keeper's log. */
export function eventTime(k: KeeperProcess, event: string): number | null {
  const line = k.lines.find((l) => l.event === event && l.outcome === 'ok');
  return line ? Date.parse(line.time as string) : null;
}

/** One sample of a metric family from /metrics (first matching line), or null. */
export async function metric(k: KeeperProcess, name: string, labels = ''): Promise<number | null> {
  const text = await (await k.get('/metrics')).text();
  const prefix = labels ? `${name}{${labels}}` : name;
  const line = text.split('\n').find((l) => l.startsWith(`${prefix} `));
  return line ? Number(line.slice(prefix.length + 1)) : null;
}
