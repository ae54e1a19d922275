// Scenario 3, return to sync: pair.rebuildAsStandby(node2, node1) while the write loop goes on,
// until node1's keeper restores synchronous replication; the worst commit latency across it.

import path from 'node:path';
import pg from 'pg';
import { lineTime, waitForOkEvent } from '../lib/keeper-log.js';
import type { Rig } from '../lib/rig.js';
import { wallNow, type WriteLoop } from '../lib/write-loop.js';
import { queryOnce, type ConnTarget } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { iso, maxLatency, r1, type Pace, type ReturnSample } from './samples.js';

const AFTER_RESTORE_MS = 500;

/** Rebuilds node2 under `loop`'s writes; resolves with the sample and when the rebuilt node2 ran. */
export async function returnToSync(
  rig: Rig,
  loop: WriteLoop,
  pace: Pace,
): Promise<{ sample: ReturnSample; upAt: number }> {
  const { pair, k1 } = rig;
  const t1 = pair.target(pair.node1);
  const t2 = pair.target(pair.node2);
  pace.phase('return to sync: rebuilding node2');
  const rebuildStart = wallNow();
  const watch = watchRebuild(t1, t2);
  try {
    await pair.rebuildAsStandby(pair.node2, pair.node1);
    await waitFor(
      () => watch.syncSeenAt !== null && watch.acceptsAt !== null,
      'the watchers to see node2 sync',
      5000,
      10,
    );
  } finally {
    await watch.stop();
  }
  const { streamingAt, acceptsAt, syncSeenAt } = watch;
  // The rebuilt server runs from whichever is seen first: its WAL receiver streaming (often
  // before hot standby lets clients in) or its accepting connections.
  const upAt = acceptsAt === null ? null : Math.min(acceptsAt, streamingAt ?? acceptsAt);
  const syncAt = syncSeenAt;
  if (upAt === null || syncAt === null) throw new Error('node2 was not seen up and sync after the rebuild');
  const restored = await waitForOkEvent(
    k1,
    'restore-sync',
    rebuildStart,
    "node1's keeper to log restore-sync",
    pace.slowMs,
  );
  const restoreAt = lineTime(restored);
  pace.phase('return to sync: writing on');
  await sleep(AFTER_RESTORE_MS);
  const [names] = await queryOnce<{ value: string; file: string | null }>(
    t2,
    `SELECT current_setting('synchronous_standby_names') AS value,
            (SELECT sourcefile FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND applied) AS file`,
    [],
    5000,
  ).catch(() => []);
  const inRestore = loop.acks.filter((a) => a.end >= upAt && a.start <= syncAt + AFTER_RESTORE_MS);
  const inRebuild = loop.acks.filter((a) => a.end >= rebuildStart && a.start <= syncAt + AFTER_RESTORE_MS);
  const sample: ReturnSample = {
    rebuildStartAt: iso(rebuildStart),
    rebuild: r1(upAt - rebuildStart),
    upToStreaming: streamingAt === null ? null : r1(streamingAt - upAt),
    upToRestore: r1(restoreAt - upAt),
    upToSyncSeen: r1(syncAt - upAt),
    maxLatencyDuringRestore: r1(maxLatency(inRestore)),
    commitsDuringRestore: inRestore.length,
    maxLatencyDuringRebuild: r1(maxLatency(inRebuild)),
    rebuiltStandbySyncNames: names
      ? { value: names.value, file: names.file && path.basename(names.file) }
      : null,
  };
  return { sample, upAt };
}

interface RebuildWatch {
  /** node2 accepts connections. */
  acceptsAt: number | null;
  /** node1's pg_stat_replication shows the rebuilt node2's WAL receiver streaming, then sync. */
  streamingAt: number | null;
  syncSeenAt: number | null;
  stop(): Promise<void>;
}

/** Watches node2 come up and node1 see it stream, then sync, each time stamped when first seen. */
function watchRebuild(t1: ConnTarget, t2: ConnTarget): RebuildWatch {
  let watching = true;
  const seen: RebuildWatch = {
    acceptsAt: null,
    streamingAt: null,
    syncSeenAt: null,
    stop: async () => {
      watching = false;
      await Promise.allSettled([up, repl]);
    },
  };
  // node2 up: connection attempts are refused (cheaply) until it accepts them.
  const up = (async () => {
    while (watching && seen.acceptsAt === null) {
      try {
        await queryOnce(t2, 'SELECT pg_is_in_recovery()', [], 1000);
        seen.acceptsAt = wallNow();
      } catch {
        await sleep(20);
      }
    }
  })();
  // node1's view, on one kept connection (reopened if it breaks). replay_lsn is null for
  // pg_basebackup's own WAL stream (also named node2), so it tells the rebuilt server's WAL
  // receiver apart.
  const repl = (async () => {
    let c: pg.Client | null = null;
    while (watching && seen.syncSeenAt === null) {
      try {
        if (!c) {
          c = new pg.Client({
            ...t1,
            application_name: 'pg-keeper-bench-watch',
            connectionTimeoutMillis: 2000,
          });
          c.on('error', () => {});
          await c.connect();
        }
        const { rows } = await c.query<{ sync_state: string }>(
          `SELECT sync_state FROM pg_stat_replication
            WHERE application_name = 'node2' AND state = 'streaming' AND replay_lsn IS NOT NULL`,
        );
        const row = rows[0];
        if (row) {
          seen.streamingAt ??= wallNow();
          if (row.sync_state === 'sync') seen.syncSeenAt = wallNow();
        }
      } catch {
        await c?.end().catch(() => {});
        c = null;
      }
      if (seen.syncSeenAt === null) await sleep(20);
    }
    await c?.end().catch(() => {});
  })();
  return seen;
}
