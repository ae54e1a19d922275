// The pairs of the lifecycle benchmark, set up as test/e2e/lifecycle.test.ts sets them up:
// keepers as the OS user postgres (the data directories' owner) with data_directory, and
// servers that can be rewound (wal_log_hints, and WAL kept for the crash recovery pg_rewind
// runs first: docs/SAFETY.md, "Keep the WAL a rewind needs"). A pair without wal_log_hints
// cannot be rewound: the keeper copies the whole database instead, which is how the
// benchmark measures the base backup path.

import type { NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { createRig, type Rig } from '../lib/rig.js';
import { WriteLoop } from '../lib/write-loop.js';
import type { Options } from './options.js';

export const TOKEN = 'pg-keeper-bench-lifecycle-token';

export type Method = 'rewind' | 'basebackup';

/**
 * WAL settings of the pairs whose database pgbench fills. pg_rewind copies all of its source's
 * pg_wal (samples.ts, sourceWalMB), which after a bulk load holds up to about max_wal_size plus
 * wal_keep_size, whatever the database's size: measured, 848 MB in the new primary's pg_wal
 * after a 1 GB pgbench -i with max_wal_size at its default. Kept small and equal at every
 * size, so that the size is what differs.
 */
export const GROWTH_WAL: Record<string, string> = {
  wal_keep_size: '64MB',
  max_wal_size: '128MB',
  min_wal_size: '32MB',
};

export function lifecyclePair(
  opts: Options,
  o: { method: Method; autoRejoin: boolean; wal?: Record<string, string> },
): Promise<Rig> {
  // As test/e2e/lifecycle.test.ts has it, unless the caller says otherwise.
  const conf: Record<string, string> = { wal_keep_size: '256MB', ...o.wal };
  if (o.method === 'rewind') conf.wal_log_hints = 'on';
  return createRig(
    {
      keepalive_time: opts.keepaliveTime,
      keepalive_count: opts.keepaliveCount,
      http_token: TOKEN,
      auto_rejoin: o.autoRejoin,
    },
    undefined,
    {
      osUser: 'postgres',
      pairOptions: { extraConf: conf },
      settingsOf: (pair, node) => ({ data_directory: pair[node].dataDir }),
    },
  );
}

export const other = (n: NodeName): NodeName => (n === 'node1' ? 'node2' : 'node1');

/** The keeper beside `node`. */
export function keeperOf(rig: Rig, node: NodeName): Rig['k1'] {
  return node === 'node1' ? rig.k1 : rig.k2;
}

/**
 * A new table on `primary`, and a client writing into it all the time, started: on `primary`,
 * and on the other node once that one takes writes.
 */
export async function writingOn(rig: Rig, primary: NodeName, table: string): Promise<WriteLoop> {
  const { pair } = rig;
  await queryOnce(pair.target(pair[primary]), `CREATE TABLE ${table} (id bigint PRIMARY KEY)`);
  const loop = new WriteLoop(
    [
      { name: primary, target: pair.target(pair[primary]) },
      { name: other(primary), target: pair.target(pair[other(primary)]) },
    ],
    table,
  );
  loop.start();
  return loop;
}
