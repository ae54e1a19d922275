#!/bin/sh
# pg1's first start (run by the postgres image from /docker-entrypoint-initdb.d, as the OS user postgres,
# against a temporary server): make it a primary that waits for one synchronous standby, and create the
# roles of the keepers and of the standby's replication connection.
#
# The settings go to postgresql.conf, not to `postgres -c ...` on the command line: the command line
# outranks ALTER SYSTEM, so the keeper could then not switch replication to asynchronous.
set -eu

cat >>"$PGDATA/postgresql.conf" <<'CONF'

# ---- pg-keeper example pair (docs/examples/compose/primary-init.sh) ----
wal_level = replica
max_wal_senders = 5
hot_standby = on
# Commits wait for the standby (node2 connects with application_name=node2).
synchronous_standby_names = '*'
# A promotion right after a configuration reload waits out this interval (pg-keeper's README, "The failover rule").
wal_retrieve_retry_interval = 1s
CONF

# Replication connections from the other container (pg_basebackup, streaming); the image already
# allows ordinary connections with a password.
echo 'host replication replicator all scram-sha-256' >>"$PGDATA/pg_hba.conf"

# The keepers' role: the shipped deploy/pg-keeper-role.sql (mounted by the compose file), which
# gives pgkeeper exactly what a keeper needs and no superuser.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -f /pg-keeper/pg-keeper-role.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v keeper_password="$KEEPER_PASSWORD" -v replication_password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'replication_password';
ALTER ROLE pgkeeper PASSWORD :'keeper_password';
SQL
echo "pg-keeper example: pg1 configured as a primary with a synchronous standby"
