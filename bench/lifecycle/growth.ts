// How a rejoin grows with the database: a pair filled by pgbench -i to a given size, then
// rejoins after failovers back and forth, on a pair that can be rewound (wal_log_hints) and
// on one that cannot (the keeper copies the whole database with pg_basebackup instead). A
// rewind should cost what changed since the fork, whatever the size; a base backup, the size.

import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { errorText } from '../../src/util/errors.js';
import type { Progress } from '../lib/progress.js';
import { destroyRig, type Rig } from '../lib/rig.js';
import { wallNow } from '../lib/write-loop.js';
import type { Pace } from '../failover/samples.js';
import type { Options } from './options.js';
import { GROWTH_WAL, lifecyclePair, other, type Method } from './pairs.js';
import { Probe } from './probe.js';
import { rejoinAfterFailover, waitUntilReady } from './rejoin.js';
import type { RejoinGroup } from './samples.js';

const run = promisify(execFile);

/**
 * pgbench -i adds about 15 MB per scale (100,000 accounts and their index) to a database of
 * 7.5 MB: measured here, scale 7 made 112 MB.
 */
const MB_PER_SCALE = 15;
const EMPTY_MB = 7.5;

/** Fills the database of `node` to about `sizeMB` with pgbench -i; its size, as PostgreSQL measures it, in MB. */
export async function fill(
  rig: Rig,
  node: NodeName,
  sizeMB: number,
): Promise<{ scale: number; databaseMB: number }> {
  const t = rig.pair.target(rig.pair[node]);
  const scale = Math.max(1, Math.round((sizeMB - EMPTY_MB) / MB_PER_SCALE));
  await run(
    path.join(rig.pair.pgBin, 'pgbench'),
    ['-i', '-q', '-s', String(scale), '-h', t.host, '-p', String(t.port), '-U', t.user, t.database],
    { env: { ...process.env, PGPASSWORD: t.password }, timeout: 60 * 60_000, maxBuffer: 16 * 2 ** 20 },
  );
  // The fork's last common checkpoint close to the fork: pg_rewind reads the WAL from there.
  await queryOnce(t, 'CHECKPOINT', [], 600_000);
  const [r] = await queryOnce<{ mb: number }>(
    t,
    'SELECT pg_database_size(current_database()) / 1048576.0 AS mb',
  );
  return { scale, databaseMB: Math.round(Number(r?.mb ?? 0)) };
}

export async function growthGroup(
  opts: Options,
  sizeMB: number,
  method: Method,
  progress: Progress,
  pace: Pace,
): Promise<RejoinGroup> {
  const group: RejoinGroup = { sizeMB, method, scale: 0, fillMs: 0, samples: [], errors: [] };
  const label = `${sizeMB} MB ${method}`;
  pace.phase(`${label}: creating the pair and keepers`);
  let rig: Rig;
  try {
    rig = await lifecyclePair(opts, { method, autoRejoin: true, wal: GROWTH_WAL });
  } catch (err) {
    group.errors.push(`setting up the pair: ${errorText(err)}`);
    for (let i = 0; i < opts.growthRuns; i++) progress.runDone('failed');
    return group;
  }
  const probe = new Probe({ node1: rig.pair.target(rig.pair.node1), node2: rig.pair.target(rig.pair.node2) });
  let done = 0;
  try {
    pace.phase(`${label}: pgbench -i`);
    const t0 = wallNow();
    const filled = await fill(rig, 'node1', sizeMB);
    group.scale = filled.scale;
    group.fillMs = Math.round(wallNow() - t0);
    let primary: NodeName = 'node1';
    for (let i = 1; i <= opts.growthRuns; i++) {
      await waitUntilReady(rig, primary, pace.slowMs);
      const s = await rejoinAfterFailover(
        rig,
        probe,
        primary,
        method,
        filled.databaseMB,
        `${label} ${i}`,
        pace,
      );
      group.samples.push(s);
      done++;
      progress.runDone(`${label} ${i}: kill -> sync ${Math.round(s.total)} ms (${s.method ?? '?'})`);
      primary = other(primary);
    }
  } catch (err) {
    group.errors.push((err as Error).stack ?? errorText(err));
    for (let i = done; i < opts.growthRuns; i++) progress.runDone('failed');
  } finally {
    probe.close();
    pace.phase(`${label}: teardown`);
    await destroyRig(rig);
  }
  return group;
}
