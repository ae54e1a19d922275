// What the keeper's database role may do, checked against what it needs: a keeper that
// lacks a right fails late and far from the cause (a standby whose observation is refused
// looks down, and never promotes). Superusers have everything. deploy/pg-keeper-role.sql
// grants exactly this list; the messages name the missing right and the statement to fix it.

import type { PgSession } from './session.js';

interface Need {
  /** What it is for, for the message. */
  why: string;
  /** A boolean SQL expression: true when the role has it. */
  has: string;
  grant: (role: string) => string;
  /** Only for a keeper that rejoins or switches over (data_directory). */
  lifecycle?: boolean;
}

const fn = (sig: string, why: string, lifecycle = false): Need => ({
  why,
  has: `has_function_privilege('${sig}', 'EXECUTE')`,
  grant: (r) => `GRANT EXECUTE ON FUNCTION ${sig} TO ${r}`,
  lifecycle,
});

const NEEDS: Need[] = [
  {
    why: 'read pg_stat_replication, pg_stat_wal_receiver, pg_stat_activity and primary_conninfo',
    has: "pg_has_role(current_user, 'pg_monitor', 'USAGE')",
    grant: (r) => `GRANT pg_monitor TO ${r}`,
  },
  {
    why: "read the configuration files' synchronous_standby_names",
    has: "has_table_privilege('pg_file_settings', 'SELECT')",
    grant: (r) => `GRANT SELECT ON pg_file_settings TO ${r}`,
  },
  fn('pg_show_all_file_settings()', "read the configuration files' synchronous_standby_names"),
  {
    why: 'switch to asynchronous replication and back',
    has: "has_parameter_privilege('synchronous_standby_names', 'ALTER SYSTEM')",
    grant: (r) => `GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO ${r}`,
  },
  {
    why: 'shorten wal_retrieve_retry_interval (tune_wal_retrieve_retry_interval)',
    has: "has_parameter_privilege('wal_retrieve_retry_interval', 'ALTER SYSTEM')",
    grant: (r) => `GRANT ALTER SYSTEM ON PARAMETER wal_retrieve_retry_interval TO ${r}`,
  },
  fn('pg_reload_conf()', 'make a changed setting take effect'),
  fn('pg_promote(boolean, integer)', 'promote the standby'),
  fn('pg_logical_emit_message(boolean, text, text)', 'write the stream heartbeat (guard stream-alive)'),
  {
    why: 'CHECKPOINT on the new primary before pg_rewind',
    has: "pg_has_role(current_user, 'pg_checkpoint', 'USAGE')",
    grant: (r) => `GRANT pg_checkpoint TO ${r}`,
    lifecycle: true,
  },
  fn('pg_ls_dir(text, boolean, boolean)', "let pg_rewind read the new primary's files", true),
  fn('pg_stat_file(text, boolean)', "let pg_rewind read the new primary's files", true),
  fn('pg_read_binary_file(text)', "let pg_rewind read the new primary's files", true),
  fn(
    'pg_read_binary_file(text, bigint, bigint, boolean)',
    "let pg_rewind read the new primary's files",
    true,
  ),
  {
    why: 'copy the new primary (pg_basebackup) and stream from it once rejoined',
    has: '(SELECT rolreplication FROM pg_roles WHERE rolname = current_user)',
    grant: (r) => `ALTER ROLE ${r} REPLICATION`,
    lifecycle: true,
  },
];

/** The rights the connected role lacks, each with what it is for and how to grant it; [] for a superuser. */
export async function missingGrants(
  session: PgSession,
  lifecycle: boolean,
  timeoutMs: number,
): Promise<string[]> {
  const needs = NEEDS.filter((n) => lifecycle || !n.lifecycle);
  const columns = needs.map((n, i) => `${n.has} AS n${i}`).join(',\n       ');
  const [row] = await session.query<Record<string, unknown>>(
    `SELECT current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,
       ${columns}`,
    [],
    timeoutMs,
  );
  if (!row || row.super === true) return [];
  const role = String(row.role);
  return needs
    .filter((_n, i) => row[`n${i}`] !== true)
    .map((n) => `role ${role} cannot ${n.why}: ${n.grant(role)} (deploy/pg-keeper-role.sql)`);
}
