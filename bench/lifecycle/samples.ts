// What one switchover and one rejoin measure. Times are wall-clock milliseconds: the
// client's send and acknowledgement times, the probe's observations, the keepers' log lines.

import type { NodeName } from '../../src/config/config.js';
import type { Method } from './pairs.js';

/** Times relative to the switchover request unless named otherwise. */
export interface SwitchoverSample {
  requestAt: string;
  from: NodeName;
  to: NodeName;
  /** Which keeper was asked: the primary's, or the standby's (which passes it on). */
  askedOf: NodeName;
  /** The longest time between two consecutive acknowledged writes around the switchover. */
  longestGap: number;
  /** That gap: last ack before it, first ack after it. */
  gapFromMs: number;
  gapToMs: number;
  /** The new primary's keeper logs promote ok. */
  promoteOkMs: number | null;
  /** The first acknowledged write on the new primary. */
  firstWriteMs: number;
  /** The new primary lists the old one as its synchronous standby, synchronous_standby_names set. */
  syncMs: number;
  /** First write on the new primary -> synchronous again: the writes acknowledged without a standby. */
  firstWriteToSync: number;
  /** The old primary's keeper logs the switchover ok, and the time it reports for it. */
  switchoverOkMs: number | null;
  switchoverReportedMs: number | null;
  acked: number;
  ackedOnNewPrimary: number;
  lost: number;
  lostIds: number[];
  /** After the switchover (once settled): both keepers' pg_keeper_switchover_in_progress, and the old primary's ok count. */
  inProgressAfter: Record<NodeName, number | null>;
  okCountAfter: number | null;
}

/** Times relative to the kill unless named otherwise. */
export interface RejoinSample {
  killAt: string;
  /** The node whose server was killed (the old primary), and the one promoted. */
  oldPrimary: NodeName;
  newPrimary: NodeName;
  /** The pair's method: wal_log_hints (rewind) or not (basebackup); `method` is what the keeper did. */
  pairMethod: Method;
  method: string | null;
  /** pg_database_size of the database pgbench filled, MB (null: no pgbench data). */
  databaseMB: number | null;
  /**
   * WAL in the new primary's pg_wal just before the kill, MB: pg_rewind copies every WAL
   * segment of its source in full (its documentation says so, up to PostgreSQL 17 at least),
   * so a rewind copies this much besides the blocks that changed. wal_keep_size bounds it.
   */
  sourceWalMB: number | null;
  promoteOkMs: number | null;
  /** The old primary's keeper logs rejoin-start, and rejoin ok. */
  rejoinStartMs: number | null;
  rejoinOkMs: number | null;
  /** What the keeper reports for the rejoin itself ("in X s"). */
  rejoinReportedMs: number | null;
  /** The new primary's pg_stat_replication shows the old primary streaming, then sync. */
  streamingMs: number | null;
  total: number;
  /** rejoin-start -> rejoin ok: the keeper's work, detection and promotion apart. */
  rejoin: number | null;
  /** Writes the old primary acknowledged that the new one lacks (checked id by id). */
  acked: number;
  lost: number;
  /** Steps of the rejoin from the old primary's keeper log, ms after rejoin-start. */
  steps: { step: string; atMs: number }[];
}

export interface RejoinGroup {
  sizeMB: number;
  method: Method;
  /** pgbench -i -s scale: how long the pair took to fill, ms. */
  scale: number;
  fillMs: number;
  samples: RejoinSample[];
  errors: string[];
}
