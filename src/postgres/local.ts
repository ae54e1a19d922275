// The local server: what the keeper observes at each tick, and the only three things it
// ever changes (replication mode and promotion). All of its SQL is here.

import { parseConninfo } from '../config/conninfo.js';
import type { LocalObservation, StandbyView } from '../policy/types.js';
import { errorText } from '../util/errors.js';
import type { PgSession } from './session.js';

const ROLE_SQL = `
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('synchronous_standby_names') AS sync_names,
       current_setting('primary_conninfo') AS primary_conninfo,
       current_setting('cluster_name') AS cluster_name`;

const PRIMARY_SQL = `
SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline,
       coalesce(json_agg(json_build_object(
         'name', application_name, 'state', state, 'syncState', sync_state,
         'replayLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,
         'replayLagSeconds', extract(epoch FROM replay_lag)::float8,
         'replyAgeMs', (extract(epoch FROM clock_timestamp() - reply_time) * 1000)::float8))
         FILTER (WHERE pid IS NOT NULL), '[]') AS standbys
  FROM (SELECT 1) one LEFT JOIN pg_stat_replication ON true`;

// The value the configuration files give without postgresql.auto.conf: a switch to async
// made on the primary (ALTER SYSTEM) is copied into a standby by pg_basebackup, and must not
// be mistaken for the pair's configuration once that standby is promoted. Reading
// pg_file_settings parses every configuration file, so it is done only when the effective
// value is empty (the one case where the policy needs it), not at every tick.
const STANDBY_SQL = `
SELECT rx.status, rx.received_tli AS timeline,
       (extract(epoch FROM clock_timestamp() - rx.last_msg_receipt_time) * 1000)::float8 AS age_ms,
       CASE WHEN current_setting('synchronous_standby_names') = '' THEN
         (SELECT setting FROM pg_file_settings
           WHERE name = 'synchronous_standby_names' AND error IS NULL
             AND sourcefile NOT LIKE '%/postgresql.auto.conf'
           ORDER BY seqno DESC LIMIT 1)
       END AS configured_sync_names
  FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver rx ON true`;

// The primary's keeper writes this tiny WAL record at every tick so that the standby's
// WAL receiver hears from a live primary even when the pair is idle (DESIGN.md, "Two
// channels of liveness"). It does not wait for the synchronous standby.
const STREAM_HEARTBEAT_SQL = `SELECT pg_logical_emit_message(false, 'pg_keeper', extract(epoch FROM clock_timestamp())::text)`;

const PROMOTE_POLL_MS = 5;

export class LocalServer {
  constructor(private readonly session: PgSession) {}

  get label(): string {
    return this.session.label;
  }

  async observe(timeoutMs: number): Promise<LocalObservation> {
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    try {
      const [role] = await this.session.query<{
        in_recovery: boolean;
        sync_names: string;
        primary_conninfo: string;
        cluster_name: string;
      }>(ROLE_SQL, [], left());
      if (!role) throw new Error('no row from pg_is_in_recovery()');
      if (!role.in_recovery) {
        const [p] = await this.session.query<{ timeline: number; standbys: StandbyView[] }>(
          PRIMARY_SQL,
          [],
          left(),
        );
        return {
          up: true,
          inRecovery: false,
          syncStandbyNames: role.sync_names,
          configuredSyncStandbyNames: null,
          timeline: p?.timeline ?? null,
          standbyName: null,
          walReceiver: null,
          standbys: p?.standbys ?? [],
        };
      }
      const [rx] = await this.session.query<{
        status: string | null;
        timeline: number | null;
        age_ms: number | null;
        configured_sync_names: string | null;
      }>(STANDBY_SQL, [], left());
      return {
        up: true,
        inRecovery: true,
        syncStandbyNames: role.sync_names,
        configuredSyncStandbyNames: rx?.configured_sync_names ?? null,
        timeline: rx?.timeline ?? null,
        standbyName: standbyName(role.primary_conninfo, role.cluster_name),
        walReceiver: rx?.status ? { status: rx.status, lastMessageAgeMs: rx.age_ms } : null,
        standbys: [],
      };
    } catch (err) {
      return { up: false, error: errorText(err) };
    }
  }

  async emitStreamHeartbeat(timeoutMs: number): Promise<void> {
    await this.session.query(STREAM_HEARTBEAT_SQL, [], timeoutMs);
  }

  async switchToAsync(timeoutMs: number): Promise<void> {
    await this.session.query(`ALTER SYSTEM SET synchronous_standby_names = ''`, [], timeoutMs);
    await this.session.query('SELECT pg_reload_conf()', [], timeoutMs);
  }

  /**
   * Put `value` back. When the configuration files already give it once the keeper's
   * override is reset, reset rather than pin it in postgresql.auto.conf, so that a later
   * edit of postgresql.conf still takes effect.
   */
  async restoreSync(value: string, timeoutMs: number): Promise<void> {
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
  }

  /**
   * Promote, then clear synchronous_standby_names, then confirm. In this order: a reload
   * before the promotion makes the startup process sit out wal_retrieve_retry_interval
   * (5 s by default) before it notices it (DESIGN.md, measured). The old primary is gone,
   * so the new primary must not wait for it: any commit that slips in between the two
   * steps is released by the reload.
   *
   * pg_promote(true) checks for completion only every 100 ms; signalling with
   * pg_promote(false) and polling pg_is_in_recovery() every few milliseconds saves about
   * 90 ms of every failover (bench/failover.ts).
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

  /** wal_retrieve_retry_interval in milliseconds. */
  async walRetrieveRetryIntervalMs(timeoutMs: number): Promise<number> {
    const [r] = await this.session.query<{ ms: number }>(
      `SELECT setting::int AS ms FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'`,
      [],
      timeoutMs,
    );
    return r?.ms ?? 5000;
  }

  async setWalRetrieveRetryInterval(ms: number, timeoutMs: number): Promise<void> {
    await this.session.query(
      `ALTER SYSTEM SET wal_retrieve_retry_interval = '${Math.round(ms)}ms'`,
      [],
      timeoutMs,
    );
    await this.session.query('SELECT pg_reload_conf()', [], timeoutMs);
  }

  close(): void {
    this.session.close();
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
