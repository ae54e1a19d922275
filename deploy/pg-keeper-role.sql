-- pg-keeper's database role: exactly the rights the keeper needs, and no more (PostgreSQL 15).
--
--   psql -v ON_ERROR_STOP=1 -f pg-keeper-role.sql                 # the keeper
--   psql -v ON_ERROR_STOP=1 -v rejoin=on -f pg-keeper-role.sql    # ... that also rejoins and switches over
--
-- Run it as a superuser on the primary (the standby gets it through replication); it can be
-- run again (after an upgrade, or to add the rejoin rights). Give the role a password
-- yourself (\password pgkeeper): none is written here. Then let it in, in pg_hba.conf on
-- both nodes (`host postgres pgkeeper <the other node>/32 scram-sha-256`; with rejoin also
-- `host replication pgkeeper ...`), and connect the keepers as it (user=pgkeeper).
--
-- The name has no pg_ prefix: PostgreSQL reserves that for its own roles.

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgkeeper') AS create_pgkeeper \gset
\if :create_pgkeeper
CREATE ROLE pgkeeper LOGIN;
\endif
-- Nothing more than a login: no superuser, no new databases or roles, no replication unless asked below.
ALTER ROLE pgkeeper NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;

-- Observing: pg_stat_replication and pg_stat_wal_receiver in full, pg_stat_activity (the
-- keepers' signals to each other), and primary_conninfo (pg_read_all_settings, part of it).
GRANT pg_monitor TO pgkeeper;
-- A standby whose synchronous_standby_names is empty (copied from an asynchronous primary by
-- pg_basebackup) reads what the configuration files say without postgresql.auto.conf.
GRANT SELECT ON pg_file_settings TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_show_all_file_settings() TO pgkeeper;

-- Acting on the local server: switching to async and back, promoting, and the one tuning.
GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO pgkeeper;
GRANT ALTER SYSTEM ON PARAMETER wal_retrieve_retry_interval TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_reload_conf() TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgkeeper;
-- (The stream heartbeat, pg_logical_emit_message(boolean, text, text), is PUBLIC by default.)

\if :{?rejoin}
-- Rejoin and switchover (data_directory set): CHECKPOINT on the new primary before pg_rewind;
-- pg_rewind reads the new primary's files through these four functions; pg_basebackup, and
-- the rejoined standby's WAL receiver, connect for replication.
GRANT pg_checkpoint TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_ls_dir(text, boolean, boolean) TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_stat_file(text, boolean) TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO pgkeeper;
GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint, boolean) TO pgkeeper;
ALTER ROLE pgkeeper REPLICATION;
\endif
