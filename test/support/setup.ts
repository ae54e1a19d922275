// A real pair with a keeper beside each node, as most end-to-end tests need it.
//
//   describe('primary killed', () => {
//     const s = usePair();            // created before the suite's tests, torn down after them
//     test('...', async () => { const { pair, k2 } = s(); ... });
//   });

import { join } from 'node:path';
import { after, before } from 'node:test';
import type { NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import { KeeperProcess, type KeeperHttp } from './keeper-process.js';
import { makeDir, rmDir } from './temp-dir.js';
import { TestPair, type PairOptions } from './test-pair.js';

export interface Setup {
  dir: string;
  pair: TestPair;
  k1: KeeperProcess;
  k2: KeeperProcess;
  /** Every keeper started on this pair, restarts included: tearDown() kills them all. */
  keepers: KeeperProcess[];
  /** Starts one more keeper on this pair (a restart), torn down with the rest. */
  startKeeper(node: NodeName, settings?: Record<string, unknown>): Promise<KeeperProcess>;
}

export interface SetupOptions {
  settings?: Record<string, unknown>;
  /** Per node, on top of `settings`. */
  node1Settings?: Record<string, unknown>;
  node2Settings?: Record<string, unknown>;
  /** Conninfo each keeper uses for its peer (default: the peer's own port). */
  peerConninfo?: (pair: TestPair, of: NodeName) => string;
  /** Conninfo for every server a keeper talks to, its own included (e.g. another role). */
  conninfo?: (pair: TestPair, of: NodeName) => string;
  pairOptions?: Partial<PairOptions>;
  /** Runs once the pair exists, before the keepers start (e.g. to put a proxy in front of a node). */
  prepare?: (pair: TestPair) => Promise<void>;
  /** Per node, settings that depend on the pair (e.g. data_directory), on top of the others. */
  settingsOf?: (pair: TestPair, node: NodeName) => Record<string, unknown>;
  /** Run the keepers as this OS user (the data directories' owner, for the lifecycle). */
  osUser?: string;
  /** Per node, how the tests reach a keeper with a web_config_file (HTTPS, credentials). */
  httpOf?: (node: NodeName) => KeeperHttp;
}

/** A pair and both keepers, for the tests of the enclosing suite: set up before them, torn down after. */
export function usePair(o: SetupOptions = {}): () => Setup {
  let s: Setup | undefined;
  before(async () => {
    s = await setUp(o);
  });
  after(() => tearDown(s));
  return () => {
    if (!s) throw new Error('usePair(): the pair is not set up (did its before() hook fail?)');
    return s;
  };
}

/** A pair (node1 primary, node2 its sync standby) and a keeper beside each, both seeing it whole. */
export async function setUp(o: SetupOptions = {}): Promise<Setup> {
  const dir = makeDir();
  const started: KeeperProcess[] = [];
  let pair: TestPair | undefined;
  try {
    pair = await TestPair.create({ baseDir: join(dir, 'pg'), ...o.pairOptions });
    await o.prepare?.(pair);
    const p = pair;
    const ci = (node: NodeName, keeperOf: NodeName): string =>
      node !== keeperOf && o.peerConninfo
        ? o.peerConninfo(p, node)
        : o.conninfo
          ? o.conninfo(p, node)
          : p.conninfo(p[node]);
    const startKeeper = async (node: NodeName, settings: Record<string, unknown> = {}) => {
      const k = await KeeperProcess.start({
        dir,
        node,
        node1: ci('node1', node),
        node2: ci('node2', node),
        settings: { ...o.settings, ...o.settingsOf?.(p, node), ...settings },
        ...(o.osUser ? { osUser: o.osUser } : {}),
        ...(o.httpOf ? { http: o.httpOf(node) } : {}),
      });
      started.push(k);
      return k;
    };
    const k1 = await startKeeper('node1', o.node1Settings);
    const k2 = await startKeeper('node2', o.node2Settings);
    await waitFor(async () => {
      const s = await k1.status();
      return s.role === 'primary' && s.sync_mode === 'sync';
    }, 'node1 keeper to see a synchronous primary');
    await waitFor(async () => {
      const s = await k2.status();
      return s.role === 'standby' && s.guards.synchronous_at_last_contact;
    }, 'node2 keeper to see itself as the synchronous standby');
    return { dir, pair, k1, k2, keepers: started, startKeeper };
  } catch (err) {
    await Promise.all(started.map((k) => k.kill()));
    await pair?.destroy();
    rmDir(dir);
    throw err;
  }
}

/** Kills every keeper started on the pair, destroys the pair, removes the directory. */
export async function tearDown(s: Setup | undefined): Promise<void> {
  if (!s) return;
  await Promise.all(s.keepers.map((k) => k.kill()));
  await s.pair.destroy();
  rmDir(s.dir);
}

/** Wall-clock ms of the first successful `event` in a keeper's log, or null while there is none. */
export function eventTime(k: KeeperProcess, event: string): number | null {
  const line = k.lines.find((l) => l.event === event && l.outcome === 'ok');
  return line ? Date.parse(line.time as string) : null;
}

/** Waits for the first successful `event` in a keeper's log and returns its wall-clock ms. */
export function waitForEvent(k: KeeperProcess, event: string, timeoutMs = 15_000): Promise<number> {
  return waitFor(() => eventTime(k, event), `a "${event}" ok line in the ${k.node} keeper's log`, timeoutMs);
}

/** One sample of a metric family from /metrics (first matching line), or null. */
export async function metric(k: KeeperProcess, name: string, labels = ''): Promise<number | null> {
  const text = await (await k.get('/metrics')).text();
  const prefix = labels ? `${name}{${labels}}` : name;
  const line = text.split('\n').find((l) => l.startsWith(`${prefix} `));
  return line ? Number(line.slice(prefix.length + 1)) : null;
}

/** Whether a node's server is in recovery; null when it does not answer. */
export async function inRecovery(s: Setup, node: NodeName): Promise<boolean | null> {
  try {
    const [r] = await s.pair.query<{ r: boolean }>(s.pair[node], 'SELECT pg_is_in_recovery() AS r', [], {
      timeoutMs: 3000,
    });
    return r?.r ?? null;
  } catch {
    return null;
  }
}
