# Shared set-up for the MCP-session load scripts (mcp.sh, idle-streams.sh,
# reload-under-load.sh). Sourced, not run.
#
# - builds the release binaries (toolgate, mock-mcp, mcp-load, idle-streams,
#   bare-pingora) unless SKIP_BUILD=1; CARGO_TARGET_DIR picks the target dir
#   (default: target);
# - a temp dir ($WORK) and free loopback ports;
# - start_mock / write_config / start_toolgate / wait_ready;
# - every process started through `started` is killed on exit.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
REL=$TARGET_DIR/release
# The token agents present to toolgate, and the upstream's own credential
# (toolgate injects it; nginx sets it; direct and bare-Pingora clients send it).
AGENT_TOKEN=tg_loadtest_0123456789
UPSTREAM_SECRET=upstream-secret-0123456789

build_bins() {
  if [ -n "${SKIP_BUILD:-}" ]; then return; fi
  CARGO_TARGET_DIR=$TARGET_DIR nice -n 10 cargo build --release \
    -p toolgate -p toolgate-benches \
    --bin toolgate --bin mock-mcp --bin mcp-load --bin idle-streams --bin bare-pingora
}

WORK=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Records the last background job's pid for cleanup.
started() { pids+=("$!"); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_mock PORT: the mock MCP upstream, requiring the upstream credential.
start_mock() {
  "$REL/mock-mcp" --listen "127.0.0.1:$1" --token "$UPSTREAM_SECRET" --tools "${MOCK_TOOLS:-20}" \
    2>"$WORK/mock.log" &
  started
  MOCK_PID=$!
}

# write_config DIR UPSTREAM_PORT: a catalog routing `mock` to the mock with
# RBAC (allow search_*, get_*, stream_*; deny delete_*: toolgate removes half
# of the listed tools) and the upstream credential injected from a file.
write_config() {
  local dir=$1 up=$2 digest
  digest=$(printf %s "$AGENT_TOKEN" | sha256sum | cut -d' ' -f1)
  mkdir -p "$dir"
  printf '%s\n' "$UPSTREAM_SECRET" >"$dir/upstream-token"
  cat >"$dir/teams.yaml" <<YAML
teams:
  - {name: eng, description: "load test team"}
YAML
  cat >"$dir/catalog.yaml" <<YAML
servers:
  - {name: mock, owner: eng, status: approved, endpoint: "http://127.0.0.1:$up/mcp", auth: {type: bearer, secret: "file:upstream-token"}}
principals:
  - {name: load, kind: agent, teams: [eng], tokens: [{name: t, sha256: $digest}]}
policies:
  - name: eng
    subjects: {teams: [eng]}
    allow: [{server: mock, tools: ["search_*", "get_*", "stream_*"]}]
    deny: [{server: mock, tools: ["delete_*"]}]
YAML
}

# start_toolgate NAME PORT CONFIG_DIR [extra proxy flags]: one worker thread,
# audit trail on (spooled in $WORK, delivered to a JSON Lines file).
start_toolgate() {
  local name=$1 port=$2 dir=$3
  shift 3
  RUST_LOG=${TOOLGATE_LOG:-warn} "${TOOLGATE_BIN:-$REL/toolgate}" proxy --config "$dir" --listen "127.0.0.1:$port" \
    --threads 1 --audit-spool "$WORK/$name-spool" --audit-log "$WORK/$name-audit.jsonl" "$@" \
    2>"$WORK/$name.log" &
  started
  TOOLGATE_PID=$!
}

# wait_ready URL TOKEN: until an MCP initialize through URL succeeds (10 s).
wait_ready() {
  local i
  for i in $(seq 100); do
    if curl -sf -o /dev/null -X POST "$1" -H "Authorization: Bearer $2" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}'; then
      return 0
    fi
    sleep 0.1
  done
  echo "not answering: $1" >&2
  return 1
}

machine_line() {
  echo "machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(date -u '+%F %H:%M') UTC"
}
