#!/usr/bin/env bash
# Restores a dump made by backup.sh into a NEW database, then applies docs/deploy/postgres.sql there
# (per-database settings are not part of a dump). See docs/deploy.md, "Restore".
#
#   docs/deploy/restore.sh /var/backups/cairn/cairn-20261206T031500Z.dump postgres://cairn@db/cairn_restored
#
# The target database is created when it does not exist (the URL's user needs CREATEDB then); an existing
# one must be empty: this never restores over live data. Everything is restored in one transaction, so a
# failed restore leaves an empty database, not half of one. Objects are owned by the URL's user.
set -euo pipefail
dump=${1:?usage: $0 DUMP TARGET_DATABASE_URL}
target=${2:?usage: $0 DUMP TARGET_DATABASE_URL}
here=$(cd "$(dirname "$0")" && pwd)
[ -r "$dump" ] || { echo "$0: cannot read $dump" >&2; exit 1; }

# postgres://user@host:port/name?params -> the database name, and the same URL on the maintenance database.
base=${target%%\?*}
params=${target#"$base"}
db=${base##*/}
maintenance="${base%/*}/postgres$params"
[ -n "$db" ] && [ "$db" != "$base" ] || { echo "$0: the target URL names no database" >&2; exit 1; }

# psql interpolates :'name' (quoted safely) only in what it reads, not in -c.
exists=$(psql --no-psqlrc -X -At --dbname="$maintenance" -v name="$db" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'")
if [ "$exists" = 0 ]; then
  createdb --maintenance-db="$maintenance" -- "$db"
else
  tables=$(psql --no-psqlrc -X -At --dbname="$target" \
    -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
  if [ "$tables" != 0 ]; then
    echo "$0: database $db already has $tables tables: restore into a new, empty database" >&2
    exit 1
  fi
fi

pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --dbname="$target" "$dump"
psql --no-psqlrc -X -q -v ON_ERROR_STOP=1 --dbname="$target" -f "$here/postgres.sql"
# A dump carries no planner statistics: gather them before the servers' first queries.
psql --no-psqlrc -X -q -v ON_ERROR_STOP=1 --dbname="$target" -c 'ANALYZE'
echo "restored $dump into $db"
