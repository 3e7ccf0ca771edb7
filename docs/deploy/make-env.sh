#!/usr/bin/env bash
# Prints a new environment file for the Cairn systemd units, with fresh secrets (docs/deploy.md, "Install").
#
#   docs/deploy/make-env.sh DATABASE_URL PUBLIC_URL > /etc/cairn/cairn.env
#
# Every variable is explained in README.md#configuration. PORT and CAIRN_ROLE are deliberately absent:
# the units set them (systemd lets an EnvironmentFile override a unit's Environment=, so a PORT here
# would give every instance of cairn-ingest@.service the same port).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DATABASE_URL PUBLIC_URL > /etc/cairn/cairn.env" >&2
  exit 2
fi
database_url=$1
public_url=$2
case "$database_url" in postgres://* | postgresql://*) ;; *)
  echo "$0: DATABASE_URL must be a postgres:// URL" >&2
  exit 2
  ;;
esac
case "$public_url" in https://* | http://*) ;; *)
  echo "$0: PUBLIC_URL must be the http(s):// address people reach Cairn at" >&2
  exit 2
  ;;
esac
# Hex: no characters that an environment file, a URL or a comma-separated list would read specially.
secret() { openssl rand -hex 32; }

cat <<ENV
# Cairn's environment, read by cairn.service, cairn-ingest@.service, cairn-worker@.service and
# cairn-backup.service (EnvironmentFile=). Made by docs/deploy/make-env.sh on $(date -u +%Y-%m-%d).
# It holds secrets: keep it owned by root, mode 0600 (systemd reads it before dropping privileges).
# One KEY=VALUE per line, no quotes. Every variable: README.md#configuration.

DATABASE_URL=$database_url
# Where people reach Cairn (unsubscribe links, the origin signed-in writes must come from; https:// makes
# session cookies secure).
CAIRN_PUBLIC_URL=${public_url%/}

# Behind the reverse proxy on this machine: listen on loopback only, and take the client's address from
# X-Forwarded-For (the proxy must overwrite that header, see docs/deploy.md, "TLS and a reverse proxy").
HOST=127.0.0.1
CAIRN_TRUST_PROXY=1

# Nobody becomes admin by signing up first; invite people with the admin API key.
CAIRN_OPEN_FIRST_SIGNUP=0

# The one server secret: PII encryption keys, unsubscribe links, suppression hashes. Losing it makes the
# sealed PII in every backup unreadable: keep a copy outside this machine. Rotation: docs/deploy.md.
CAIRN_SECRET=$(secret)
# CAIRN_PII_OLD_SECRETS=  (earlier secrets, newest first, after a rotation)

# /metrics answers only with Authorization: Bearer <this>.
CAIRN_METRICS_TOKEN=$(secret)

# Postgres connections per process (pool); size max_connections for it (docs/deploy.md, "Postgres").
CAIRN_DB_POOL_MAX=10
ENV
