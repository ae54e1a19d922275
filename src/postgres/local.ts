// The local server: what the keeper observes at each tick, and the only things it ever
// changes (replication mode, promotion, wal_retrieve_retry_interval). All of its SQL is here.

import { parseConninfo } from '../config/conninfo.js';
import type { LocalObservation, StandbyView, WalReceiverView } from '../policy/types.js';
import { errorText } from '../util/errors.js';
import { missingGrants } from './grants.js';
import type { PgSession } from './session.js';

// One statement, one round trip per tick, whatever the role: on a slow server, three
// queries one after another (role, then the primary's or the standby's view, then the
// stream heartbeat), each bounded by the heartbeat timeout, could delay the decision by
// well over a tick. `r` reads pg_is_in_recovery() once, so that every part agrees on the
// role even if a promotion lands mid-statement; CASE evaluates only the branch for it.
//
// On a primary: its standbys, its timeline, and the stream heartbeat (below).
// On a standby: its WAL receiver, its wal_retrieve_retry_interval, and (only when the
// effective synchronous_standby_names is empty, the one case the policy needs it) the
// value the configuration files give without postgresql.auto.conf, where a switch to
// async made on the primary and copied by pg_basebackup lives. Reading pg_file_settings
// parses every configuration file, so it is not done at every tick.
//
// Signals: the keepers talk to each other only through PostgreSQL. A keeper that has
// something to tell its peer (a planned switchover) holds a session on the peer's server
// whose application_name says it (pg-keeper:<node>:<word>:<id>...); the peer reads them here.
//
// The stream heartbeat: the primary's keeper writes this tiny WAL record at every tick, so
// that the standby's WAL receiver hears from a live primary even when the pair is idle
// (docs/SAFETY.md, guard stream-alive). It does not wait for the synchronous standby.
const OBSERVE_SQL = `
WITH r AS (SELECT pg_is_in_recovery() AS in_recovery)
SELECT r.in_recovery,
       current_setting('synchronous_standby_names') AS sync_names,
       CASE WHEN r.in_recovery THEN current_setting('primary_conninfo') END AS primary_conninfo,
       current_setting('cluster_name') AS cluster_name,
       CASE WHEN NOT r.in_recovery THEN
         ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       ELSE (SELECT received_tli FROM pg_stat_wal_receiver) END AS timeline,
       CASE WHEN NOT r.in_recovery THEN
         (SELECT coalesce(json_agg(json_build_object(
            'name', application_name, 'state', state, 'syncState', sync_state,
            'replayLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,
            'replayLagSeconds', extract(epoch FROM replay_lag)::float8,
            'replyAgeMs', (extract(epoch FROM clock_timestamp() - reply_time) * 1000)::float8,
            'flushLsn', flush_lsn::text)), '[]')
            FROM pg_stat_replication WHERE pid IS NOT NULL)
       END AS standbys,
       CASE WHEN r.in_recovery THEN
         (SELECT json_build_object('status', status,
            'lastMessageAgeMs', (extract(epoch FROM clock_timestamp() - last_msg_receipt_time) * 1000)::float8)
            FROM pg_stat_wal_receiver WHERE status IS NOT NULL)
       END AS wal_receiver,
       CASE WHEN r.in_recovery THEN
         (SELECT setting::int FROM pg_settings WHERE name = 'wal_retrieve_retry_interval')
       END AS wal_retrieve_retry_ms,
       CASE WHEN r.in_recovery THEN pg_last_wal_replay_lsn()::text END AS replay_lsn,
       (SELECT coalesce(array_agg(application_name::text), '{}') FROM pg_stat_activity
         WHERE application_name LIKE 'pg-keeper:%') AS signals,
       CASE WHEN r.in_recovery AND current_setting('synchronous_standby_names') = '' THEN
         (SELECT setting FROM pg_file_settings
           WHERE name = 'synchronous_standby_names' AND error IS NULL
             AND sourcefile NOT LIKE '%/postgresql.auto.conf'
           ORDER BY seqno DESC LIMIT 1)
       END AS configured_sync_names,
       CASE WHEN NOT r.in_recovery THEN
         pg_logical_emit_message(false, 'pg_keeper', extract(epoch FROM clock_timestamp())::text)::text
       END AS stream_heartbeat
  FROM r`;

interface ObserveRow {
  in_recovery: boolean;
  sync_names: string;
  primary_conninfo: string | null;
  cluster_name: string;
  timeline: number | null;
  standbys: StandbyView[] | null;
  wal_receiver: WalReceiverView | null;
  wal_retrieve_retry_ms: number | null;
  replay_lsn: string | null;
  signals: string[];
  configured_sync_names: string | null;
}

const PROMOTE_POLL_MS = 5;

export class LocalServer {
  /** primary_conninfo changes only when an operator or a rejoin rewrites it: parse it once per text. */
  private standbyNameCache: { conninfo: string; clusterName: string; name: string } | null = null;

  constructor(private readonly session: PgSession) {}

  get label(): string {
    return this.session.label;
  }

  async observe(timeoutMs: number): Promise<LocalObservation> {
    try {
      const [row] = await this.session.query<ObserveRow>(OBSERVE_SQL, [], timeoutMs);
      if (!row) throw new Error('no row from pg_is_in_recovery()');
      return {
        up: true,
        inRecovery: row.in_recovery,
        syncStandbyNames: row.sync_names,
        configuredSyncStandbyNames: row.configured_sync_names,
        timeline: row.timeline,
        standbyName: row.in_recovery ? this.standbyName(row.primary_conninfo ?? '', row.cluster_name) : null,
        walReceiver: row.wal_receiver,
        walRetrieveRetryIntervalMs: row.wal_retrieve_retry_ms,
        replayLsn: row.replay_lsn,
        signals: row.signals,
        standbys: row.standbys ?? [],
      };
    } catch (err) {
      return { up: false, error: errorText(err) };
    }
  }

  async switchToAsync(timeoutMs: number): Promise<void> {
    await this.session.query(`ALTER SYSTEM SET synchronous_standby_names = ''`, [], timeoutMs);
    await this.session.query('SELECT pg_reload_conf()', [], timeoutMs);
  }

  /**
   * Put `value` back, and return the WAL position once it is back. When the configuration files already give it once the keeper's
   * override is reset, reset rather than pin it in postgresql.auto.conf, so that a later
   * edit of postgresql.conf still takes effect.
   */
  async restoreSync(value: string, timeoutMs: number): Promise<string> {
    await this.session.query('ALTER SYSTEM RESET synchronous_standby_names', [], timeoutMs);
    const [fromFiles] = await this.session.query<{ setting: string | null }>(
      `SELECT (SELECT setting FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND error IS NULL
                ORDER BY seqno DESC LIMIT 1) AS setting`,
      [],
      timeoutMs,
    );
    if ((fromFiles?.setting ?? '') !== value) {
      await this.session.query(
        `ALTER SYSTEM SET synchronous_standby_names = ${quoteLiteral(value)}`,
        [],
        timeoutMs,
      );
    }
    await this.session.query('SELECT pg_reload_conf()', [], timeoutMs);
    // Every commit acknowledged before the reload lies before this point; once a synchronous
    // standby has flushed past it, none of them can be missing there (the arbiter's record).
    const [at] = await this.session.query<{ lsn: string }>(
      'SELECT pg_current_wal_lsn()::text AS lsn',
      [],
      timeoutMs,
    );
    return at?.lsn ?? '0/0';
  }

  /**
   * Promote, then clear synchronous_standby_names, then confirm. In this order: a reload
   * before the promotion makes the startup process sit out wal_retrieve_retry_interval
   * (5 s by default) before it notices it (measured: 5.04 s in 6 of 8 runs, against
   * 0.13 s in this order; README, "The failover rule"). The old primary is gone, so the
   * new primary must not wait for it: any commit that slips in between the two steps is
   * released by the reload.
   *
   * pg_promote(true) checks for completion only every 100 ms; signalling with
   * pg_promote(false) and polling pg_is_in_recovery() every few milliseconds saves about
   * 90 ms of every failover (bench/failover).
   */
  async promote(waitSeconds: number, timeoutMs: number): Promise<void> {
    const [p] = await this.session.query<{ signalled: boolean }>(
      'SELECT pg_promote(false) AS signalled',
      [],
      timeoutMs,
    );
    if (!p?.signalled) throw new Error('pg_promote() could not signal the startup process');
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const [r] = await this.session.query<{ in_recovery: boolean }>(
        'SELECT pg_is_in_recovery() AS in_recovery',
        [],
        timeoutMs,
      );
      if (r?.in_recovery === false) break;
      if (Date.now() > deadline)
        throw new Error(`the server is still in recovery ${waitSeconds} s after pg_promote()`);
      await new Promise((resolve) => setTimeout(resolve, PROMOTE_POLL_MS));
    }
    await this.switchToAsync(timeoutMs);
  }

  async setWalRetrieveRetryInterval(ms: number, timeoutMs: number): Promise<void> {
    await this.session.query(
      `ALTER SYSTEM SET wal_retrieve_retry_interval = '${Math.round(ms)}ms'`,
      [],
      timeoutMs,
    );
    await this.session.query('SELECT pg_reload_conf()', [], timeoutMs);
  }

  /** The rights the keeper's role lacks on this server (postgres/grants.ts). */
  missingGrants(lifecycle: boolean, timeoutMs: number): Promise<string[]> {
    return missingGrants(this.session, lifecycle, timeoutMs);
  }

  close(): void {
    this.session.close();
  }

  private standbyName(conninfo: string, clusterName: string): string {
    const c = this.standbyNameCache;
    if (c && c.conninfo === conninfo && c.clusterName === clusterName) return c.name;
    const name = standbyName(conninfo, clusterName);
    this.standbyNameCache = { conninfo, clusterName, name };
    return name;
  }
}

/** The name this standby streams under, as the primary sees it in pg_stat_replication. */
export function standbyName(primaryConninfo: string, clusterName: string): string {
  try {
    const name = parseConninfo(primaryConninfo).params['application_name'];
    if (name) return name;
  } catch {
    // an unparsable primary_conninfo still streams under the fallback name
  }
  return clusterName.trim() !== '' ? clusterName : 'walreceiver';
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
