#!/bin/sh
# pg2's entrypoint: on the first start (empty data directory), clone pg1 with pg_basebackup and make it
# pg1's standby, named node2 (the name synchronous_standby_names and the keepers see); then hand over
# to the postgres image's own entrypoint, which starts the server on the existing data directory.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  until pg_isready --quiet --host=pg1 --port=5432; do
    echo "pg-keeper example: waiting for pg1"
    sleep 1
  done
  echo "pg-keeper example: cloning pg1 into $PGDATA"
  # -R writes primary_conninfo (with application_name=node2 and the password) and standby.signal.
  PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres pg_basebackup \
    --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast --no-password \
    --dbname="host=pg1 port=5432 user=replicator application_name=node2"
fi

exec docker-entrypoint.sh "$@"
