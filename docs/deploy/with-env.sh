#!/usr/bin/env bash
# Runs a command with the variables of a systemd environment file, read the way systemd reads this one
# (KEY=VALUE lines, # comments; nothing expanded), so a `cairn` command sees what the servers see.
#
#   sudo docs/deploy/with-env.sh /etc/cairn/cairn.env node_modules/.bin/cairn migrate
#
# Sourcing the file with `.` instead would let the shell expand `$` and `&` in a password or URL.
set -euo pipefail
file=${1:?usage: $0 ENV_FILE COMMAND [ARGS...]}
shift
[ $# -gt 0 ] || { echo "usage: $0 ENV_FILE COMMAND [ARGS...]" >&2; exit 2; }
while IFS= read -r line || [ -n "$line" ]; do
  case $line in '' | '#'*) continue ;; esac
  [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "$0: $file: not KEY=VALUE: $line" >&2; exit 1; }
  export "${line%%=*}=${line#*=}"
done <"$file"
exec "$@"
