#!/usr/bin/env bash
# Runs a command with Node >= 22.12 first on PATH (see node-env.sh). Used by the npm scripts so that
# `npm start` and `npm test` work on a machine whose system node is older.
set -e
. "$(dirname "$0")/node-env.sh"
export PATH="$(cd "$(dirname "$0")/.." && pwd)/node_modules/.bin:$PATH"
exec "$@"
