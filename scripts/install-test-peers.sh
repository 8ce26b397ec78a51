#!/usr/bin/env bash
# Installs the official MCP SDK clients that proxy/tests/official_sdks.rs
# drives through the gateway:
#   - Python: PyPI `mcp` 2.3.x in a venv at $PEERS/venv
#   - TypeScript: npm `@modelcontextprotocol/sdk` 1.32.x in $PEERS/node
#   - an OpenID provider for proxy/tests/gateway/oidc.rs: npm
#     `oauth2-mock-server` 8.2.x (real RS256/ES256 tokens, JWKS) in $PEERS/node
#   - a stdio MCP server for proxy/tests/gateway/stdio_memory.rs: npm
#     `@modelcontextprotocol/server-memory` 2026.8.x in $PEERS/node
# where PEERS=${XDG_CACHE_HOME:-$HOME/.cache}/toolgate-peers.
# Idempotent: a second run with everything in place asks no registry.
# The tests find the peers there, or via TOOLGATE_PYTHON / TOOLGATE_NODE_PATH.
set -euo pipefail

PY_SPEC='mcp>=2.3,<2.4'
TS_SPEC='@modelcontextprotocol/sdk@~1.32.0'
OIDC_SPEC='oauth2-mock-server@~8.2.3'
MEMORY_SPEC='@modelcontextprotocol/server-memory@~2026.8.31'

PEERS="${XDG_CACHE_HOME:-$HOME/.cache}/toolgate-peers"
VENV="$PEERS/venv"
NODE_DIR="$PEERS/node"
mkdir -p "$PEERS"

# --- Python SDK -------------------------------------------------------------
py_ok() {
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
v = m.version("mcp").split(".")
sys.exit(0 if v[:2] == ["2", "3"] else 1)
EOF
}
if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  # Missing, or left behind by an interpreter that is gone: (re)create it.
  python3 -m venv --clear "$VENV"
fi
if ! py_ok; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PY_SPEC"
  py_ok || { echo "install-test-peers: the Python mcp 2.3.x package did not install" >&2; exit 1; }
fi

# --- TypeScript SDK ---------------------------------------------------------
ts_ok() {
  node -e '
    const v = require(process.argv[1] + "/node_modules/@modelcontextprotocol/sdk/package.json").version;
    process.exit(/^1\.32\./.test(v) ? 0 : 1);
  ' "$NODE_DIR" 2>/dev/null
}
if ! command -v node >/dev/null 2>&1; then
  echo "install-test-peers: node is required (Node 20 or newer)" >&2
  exit 1
fi
if ! ts_ok; then
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"toolgate-test-peers","private":true}' >"$NODE_DIR/package.json"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent --save-exact "$TS_SPEC" >/dev/null 2>&1 \
    || npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact "$TS_SPEC"
  ts_ok || { echo "install-test-peers: @modelcontextprotocol/sdk 1.32.x did not install" >&2; exit 1; }
fi

# --- OpenID provider (mock) ---------------------------------------------------
oidc_ok() {
  node -e '
    const v = require(process.argv[1] + "/node_modules/oauth2-mock-server/package.json").version;
    process.exit(/^8\.2\./.test(v) ? 0 : 1);
  ' "$NODE_DIR" 2>/dev/null
}
if ! oidc_ok; then
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent --save-exact "$OIDC_SPEC" >/dev/null 2>&1 \
    || npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact "$OIDC_SPEC"
  oidc_ok || { echo "install-test-peers: oauth2-mock-server 8.2.x did not install" >&2; exit 1; }
fi

# --- A stdio MCP server (run by the gateway) -----------------------------------
memory_ok() {
  node -e '
    const v = require(process.argv[1] + "/node_modules/@modelcontextprotocol/server-memory/package.json").version;
    process.exit(/^2026\.8\./.test(v) ? 0 : 1);
  ' "$NODE_DIR" 2>/dev/null
}
if ! memory_ok; then
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent --save-exact "$MEMORY_SPEC" >/dev/null 2>&1 \
    || npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact "$MEMORY_SPEC"
  memory_ok || { echo "install-test-peers: @modelcontextprotocol/server-memory 2026.8.x did not install" >&2; exit 1; }
fi

PY_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')
TS_VERSION=$(node -p 'require(process.argv[1] + "/node_modules/@modelcontextprotocol/sdk/package.json").version' "$NODE_DIR")
echo "python mcp $PY_VERSION: $VENV/bin/python (TOOLGATE_PYTHON)"
echo "@modelcontextprotocol/sdk $TS_VERSION: $NODE_DIR/node_modules (TOOLGATE_NODE_PATH)"
OIDC_VERSION=$(node -p 'require(process.argv[1] + "/node_modules/oauth2-mock-server/package.json").version' "$NODE_DIR")
echo "oauth2-mock-server $OIDC_VERSION: $NODE_DIR/node_modules (TOOLGATE_NODE_PATH)"
MEMORY_VERSION=$(node -p 'require(process.argv[1] + "/node_modules/@modelcontextprotocol/server-memory/package.json").version' "$NODE_DIR")
echo "@modelcontextprotocol/server-memory $MEMORY_VERSION: $NODE_DIR/node_modules (TOOLGATE_NODE_PATH)"
