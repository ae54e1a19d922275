// Rejoin: turn the local server, an old primary (crashed, stopped, or running on the old
// timeline), into a standby of the peer, which is now the primary on a newer timeline.
//
//   checkpoint on the new primary (its control file shows the new timeline only after one:
//     pg_rewind run right after a promotion answers "no rewind required", and the server
//     then stops with "new timeline forked off current database system timeline")
//   stop the local server (fast; immediate if that fails)
//   pg_rewind from the new primary; where it cannot (no wal_log_hints or checksums, WAL
//     already recycled), a fresh pg_basebackup instead
//   put the server's own configuration back (both copy the peer's files over it)
//   standby.signal and primary_conninfo (application_name = this node), start, and wait
//     until it streams
//
// Whether a rejoin could discard an acknowledged commit is not decided here: the policy
// (auto_rejoin) and `pg-keeper rejoin` (without --force) refuse before calling this.

import { formatConninfo, type Conninfo } from '../config/conninfo.js';
import type { NodeName } from '../config/config.js';
import type { PgSession } from '../postgres/session.js';
import type { ProgramConninfo, ServerControl } from '../server/control.js';
import { errorText } from '../util/errors.js';
import { sleep } from '../util/wait.js';

export type RejoinMethod = 'rewind' | 'basebackup' | 'restart';

export const REJOIN_STEPS = [
  'checking',
  'checkpoint',
  'stopping',
  'rewinding',
  'basebackup',
  'configuring',
  'starting',
  'waiting-for-stream',
] as const;
export type RejoinStep = (typeof REJOIN_STEPS)[number];

export interface RejoinDeps {
  node: NodeName;
  control: ServerControl;
  /** The new primary, with the keeper's credentials. */
  peer: PgSession;
  peerConninfo: Conninfo;
  /** The local server, to see it stream. */
  local: PgSession;
  progress: (step: RejoinStep, detail: string) => void;
}

export class RejoinRefused extends Error {
  override name = 'RejoinRefused';
}

const Q = 5_000;

export async function rejoin(d: RejoinDeps, timeoutMs = 600_000): Promise<{ method: RejoinMethod }> {
  const deadline = Date.now() + timeoutMs;
  const left = (): number => Math.max(1000, deadline - Date.now());
  const { control } = d;

  d.progress('checking', 'is the peer the primary, on a newer timeline?');
  if (control.recoverInterruptedSwap())
    d.progress('checking', 'put back the data directory an interrupted base backup had set aside');
  const [peer] = await d.peer.query<{ in_recovery: boolean; timeline: number | null }>(
    `SELECT pg_is_in_recovery() AS in_recovery,
            CASE WHEN pg_is_in_recovery() THEN NULL
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline`,
    [],
    Q,
  );
  if (!peer || peer.in_recovery)
    throw new RejoinRefused('the peer is not a primary: there is nothing to rejoin');
  const before = await control.state();
  if (before.running && (await streamsFrom(d))) return { method: 'restart' };
  if (before.timeline !== null && peer.timeline !== null && peer.timeline <= before.timeline) {
    throw new RejoinRefused(
      `the peer is on timeline ${peer.timeline}, not newer than this server's ${before.timeline}: ` +
        'this server may be the real primary; not rejoining',
    );
  }

  d.progress('checkpoint', 'CHECKPOINT on the new primary, so that its control file shows its timeline');
  await d.peer.query('CHECKPOINT', [], left());

  d.progress(
    'stopping',
    before.running ? 'stopping the local server (fast)' : 'the local server is not running',
  );
  if (before.running) {
    await control.stop('fast', Math.min(left(), 60_000)).catch(async (err: unknown) => {
      d.progress('stopping', `a fast stop failed (${errorText(err)}): stopping immediately`);
      await control.stop('immediate', Math.min(left(), 60_000));
    });
  }

  const own = control.saveOwnConfig();
  const source = programConninfo(d.peerConninfo);
  let method: RejoinMethod = 'rewind';
  d.progress('rewinding', 'pg_rewind from the new primary');
  try {
    const out = await control.rewind(source, left());
    if (/no rewind required/i.test(out))
      d.progress('rewinding', 'no rewind required: the server stopped at the fork point');
  } catch (err) {
    method = 'basebackup';
    d.progress(
      'basebackup',
      `pg_rewind could not (${errorText(err)}): a fresh copy with pg_basebackup instead`,
    );
    await control.basebackup(source, left());
  }

  d.progress('configuring', "the server's own configuration back; standby.signal and primary_conninfo");
  control.restoreOwnConfig(own);
  control.writeStandbyConfig(primaryConninfo(d.peerConninfo, d.node));

  d.progress('starting', 'starting the server as a standby of the new primary');
  await control.start(Math.min(left(), 120_000));

  d.progress('waiting-for-stream', 'waiting for the WAL receiver to stream from the new primary');
  for (;;) {
    if (await streamsFrom(d).catch(() => false)) break;
    if (Date.now() > deadline)
      throw new Error('the server started, but did not stream from the new primary in time');
    await sleep(100);
  }
  if (method === 'basebackup') control.dropAside();
  return { method };
}

async function streamsFrom(d: RejoinDeps): Promise<boolean> {
  const [r] = await d.local.query<{ status: string | null }>(
    'SELECT (SELECT status FROM pg_stat_wal_receiver) AS status',
    [],
    Q,
  );
  return r?.status === 'streaming';
}

/** For pg_rewind and pg_basebackup: the peer's conninfo, the password apart (PGPASSWORD). */
export function programConninfo(ci: Conninfo): ProgramConninfo {
  const { password, ...rest } = ci.params;
  return { conninfo: formatConninfo(rest), password: password ?? null };
}

/**
 * The standby's primary_conninfo: the peer as the keeper reaches it, under this node's name
 * (so that a synchronous_standby_names naming the nodes matches). The keeper's role must be
 * able to replicate (REPLICATION); a password in the conninfo is written too, as
 * pg_basebackup -R does, in a file only the owner can read.
 */
export function primaryConninfo(ci: Conninfo, node: NodeName): string {
  const { dbname: _db, application_name: _a, fallback_application_name: _f, ...rest } = ci.params;
  return formatConninfo({ ...rest, application_name: node });
}
