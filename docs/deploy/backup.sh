#!/usr/bin/env bash
# Dumps Cairn's database to DIR/cairn-<UTC time>.dump (pg_dump's custom format) and keeps the newest
# BACKUP_KEEP dumps there (default 14). Run by cairn-backup.service; see docs/deploy.md, "Backups".
#
#   DATABASE_URL=postgres://... docs/deploy/backup.sh /var/backups/cairn
#
# pg_dump reads one consistent snapshot, so the servers keep running while it works. The dump holds
# everything Cairn stores, the queues (schema pgboss) included, but not CAIRN_SECRET: keep that apart.
set -euo pipefail
# Dumps hold sealed PII and hashed keys: readable by their owner only.
umask 077
dir=${1:?usage: DATABASE_URL=postgres://... $0 DIR}
: "${DATABASE_URL:?DATABASE_URL must be set (the cairn.env file the units read)}"
keep=${BACKUP_KEEP:-14}
mkdir -p -- "$dir"
name="cairn-$(date -u +%Y%m%dT%H%M%SZ).dump"
partial="$dir/.$name.partial"
trap 'rm -f -- "$partial"' EXIT
pg_dump --format=custom --file="$partial" --dbname="$DATABASE_URL"
# A dump that pg_restore cannot list is not a backup: fail now, not on the day of the restore.
pg_restore --list "$partial" >/dev/null
mv -- "$partial" "$dir/$name"
# The newest $keep stay; names sort by time.
find "$dir" -maxdepth 1 -name 'cairn-*.dump' -printf '%f\n' | sort -r | tail -n +"$((keep + 1))" |
  while read -r old; do rm -f -- "$dir/$old"; done
echo "$dir/$name"
