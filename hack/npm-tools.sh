#!/usr/bin/env bash
# Installs the Node clients the tests drive against acr-emulator (Alibaba's POP client
# @alicloud/pop-core, pinned), idempotently, into NPM_TOOLS_DIR (default
# ~/.cache/ferry-npm), and prints the line for bin/tools.env:
#   FERRY_NODE_PATH=<dir>/node_modules
# Without node/npm it prints a warning on stderr and no line; the Node tests then fail under
# FERRY_REQUIRE_RIG=1 and skip otherwise.
set -euo pipefail
POP_CORE_VERSION=1.8.0
DIR=${NPM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-npm}
log() { echo "[npm-tools] $*" >&2; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "WARNING: node or npm missing; the @alicloud/pop-core tests cannot run"
  exit 0
fi
have=$(node -p "require('$DIR/node_modules/@alicloud/pop-core/package.json').version" 2>/dev/null || true)
if [ "$have" != "$POP_CORE_VERSION" ]; then
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"name":"ferry-npm-tools","private":true}' > "$DIR/package.json"
  log "npm install @alicloud/pop-core@$POP_CORE_VERSION"
  npm install --prefix "$DIR" --no-audit --no-fund --save-exact "@alicloud/pop-core@$POP_CORE_VERSION" >&2
fi
echo "FERRY_NODE_PATH=$DIR/node_modules"
