#!/usr/bin/env bash
# Snapshot swaps under load: while mcp-load runs closed loop against
# `toolgate proxy --config DIR --threads 1` (file mode, audit on), a writer
# rewrites DIR/teams.yaml every 100 ms the way editors save (write a temp
# file, then rename over the original), toggling the team's description: a
# change that does not alter access. Reports mcp-load's errors (target: zero),
# how many rewrites were made, and how many snapshot versions toolgate applied
# (toolgate_snapshot_version from --metrics-listen, and "config reloaded" log
# lines). File mode polls the directory every 250 ms, so at most ~4 swaps/s
# happen however often the file changes.
#
#   loadtest/reload-under-load.sh [duration-seconds] [agents]
#
# Environment: MIX, INTERVAL (s between rewrites, default 0.1), LOAD_THREADS,
# SKIP_BUILD=1, CARGO_TARGET_DIR.
source "$(dirname "$0")/lib.sh"
DURATION=${1:-10}
AGENTS=${2:-64}
MIX=${MIX:-list=1,call=6,large=1,sse=2}
INTERVAL=${INTERVAL:-0.1}
build_bins

UP=$(free_port); TG=$(free_port); METRICS=$(free_port)
start_mock "$UP"
write_config "$WORK/config" "$UP"
TOOLGATE_LOG=warn,toolgate_proxy::reload=info start_toolgate toolgate "$TG" "$WORK/config" \
  --metrics-listen "127.0.0.1:$METRICS"
URL="http://127.0.0.1:$TG/mcp/mock"
wait_ready "$URL" "$AGENT_TOKEN"
version() { curl -sf "http://127.0.0.1:$METRICS/metrics" | awk '/^toolgate_snapshot_version/ {print int($2)}'; }
V0=$(version)

MCP_TOKEN=$AGENT_TOKEN "$REL/mcp-load" --url "$URL" --agents "$AGENTS" --duration "$DURATION" \
  --warmup 1 --mix "$MIX" --threads "${LOAD_THREADS:-1}" --json >"$WORK/load.json" &
LOAD=$!
started
sleep 1 # the warm-up: rewrites start when measuring does

writes=0
while kill -0 "$LOAD" 2>/dev/null; do
  writes=$((writes + 1))
  printf 'teams:\n  - {name: eng, description: "load test team, rewrite %d"}\n' "$writes" \
    >"$WORK/config/.teams.yaml.tmp"
  mv "$WORK/config/.teams.yaml.tmp" "$WORK/config/teams.yaml"
  sleep "$INTERVAL"
done
wait "$LOAD" || true
sleep 0.5 # let the last rewrite be picked up
V1=$(version)
RELOADED=$(grep -c 'config reloaded' "$WORK/toolgate.log" || true)
REFUSED=$(grep -c 'config edit refused' "$WORK/toolgate.log" || true)

python3 - "$WORK/load.json" "$writes" "$((V1 - V0))" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["all"]
causes = ", ".join(f"{k} {v}" for k, v in a["errors_by_cause"].items() if v) or "none"
ms = lambda v: "-" if v is None else f"{v:.2f} ms"
print("| requests | req/s | errors | p50 | p99 | p99.9 | rewrites | snapshot versions applied |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {a['requests']} | {a['rps']:.0f} | {causes} | {ms(a['p50_ms'])} | {ms(a['p99_ms'])} | {ms(a['p99.9_ms'])} | {sys.argv[2]} | {sys.argv[3]} |")
PY
echo
echo "rewrites of teams.yaml (every ${INTERVAL}s): $writes; snapshot versions applied: $((V1 - V0)) (version $V0 -> $V1); 'config reloaded' log lines: $RELOADED; refused edits: $REFUSED"
echo "mcp-load closed loop --agents $AGENTS --duration $DURATION --mix $MIX; toolgate proxy --config (file mode) --threads 1, audit on"
machine_line
