#!/usr/bin/env bash
# Virtual server cost: the same mock MCP server (mock-mcp with MOCK_TOOLS
# tools, default 500) reached through toolgate
#
#   mock   the server's own route: tools/list forwarded and filtered (RBAC
#          hides delete_*), tools/call forwarded
#   v500   a virtual server exposing the same visible tools (search_*, get_*,
#          stream_*): tools/list answered from the catalog, tools/call routed
#          to the mock in an upstream session the gateway opened
#
# and, for reference, the mock directly. Closed loop, one request kind at a
# time (tools/list, then small JSON tools/call). Prints a markdown table.
#
#   loadtest/virtual.sh [duration-seconds] [agents]
#
# Environment: SKIP_BUILD=1, CARGO_TARGET_DIR, MOCK_TOOLS. Needs curl, python3.
source "$(dirname "$0")/lib.sh"
DURATION=${1:-10}
AGENTS=${2:-16}
export MOCK_TOOLS=${MOCK_TOOLS:-500}
build_bins

UP=$(free_port); TG=$(free_port)
start_mock "$UP"
wait_ready "http://127.0.0.1:$UP/mcp" "$UPSTREAM_SECRET"

# The catalog declares the mock's tools (as discovery would), so the virtual
# server can select them.
write_config "$WORK/config" "$UP"
python3 - "$WORK/config" "$MOCK_TOOLS" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
names = ["search_issues", "stream_report"] + [
    (f"delete_item_{i:03}" if i % 2 == 1 else f"get_item_{i:03}") for i in range(2, n)]
cat = open(f"{d}/catalog.yaml").read()
decl = ", ".join("{name: %s}" % t for t in names)
cat = cat.replace('secret: "file:upstream-token"}}', 'secret: "file:upstream-token"}, tools: [%s]}' % decl)
open(f"{d}/catalog.yaml", "w").write(cat)
open(f"{d}/virtual.yaml", "w").write("""virtual_servers:
  - name: v500
    tools: [{server: mock, tools: ["search_*", "get_*", "stream_*"]}]
    access: {teams: [eng]}
""")
PY
start_toolgate toolgate "$TG" "$WORK/config"

declare -A URL=(
  [direct]="http://127.0.0.1:$UP/mcp"
  [mock]="http://127.0.0.1:$TG/mcp/mock"
  [v500]="http://127.0.0.1:$TG/mcp/v500"
)
declare -A TOKEN=([direct]=$UPSTREAM_SECRET [mock]=$AGENT_TOKEN [v500]=$AGENT_TOKEN)
PATHS=(direct mock v500)
for p in "${PATHS[@]}"; do wait_ready "${URL[$p]}" "${TOKEN[$p]}"; done

load() { # path mix out
  MCP_TOKEN=${TOKEN[$1]} "$REL/mcp-load" --url "${URL[$1]}" --agents "$AGENTS" \
    --duration "$DURATION" --warmup 1 --mix "$2" --json >"$3"
}
for p in "${PATHS[@]}"; do
  load "$p" list=1 "$WORK/list-$p.json"
  load "$p" call=1 "$WORK/call-$p.json"
done

python3 - "$WORK" "${PATHS[@]}" <<'PY'
import json, sys
work, paths = sys.argv[1], sys.argv[2:]
ms = lambda v: f"{v:.2f} ms" if v >= 1 else f"{v * 1000:.0f} µs"
print("| request | path | req/s | p50 | p99 | errors |")
print("|---|---|---|---|---|---|")
for kind in ["list", "call"]:
    for p in paths:
        a = json.load(open(f"{work}/{kind}-{p}.json"))["all"]
        print(f"| {kind} | {p} | {a['rps']:.0f} | {ms(a['p50_ms'])} | {ms(a['p99_ms'])} | {a['errors']} |")
PY
echo
echo "mcp-load --agents $AGENTS --duration $DURATION, one kind at a time; mock lists $MOCK_TOOLS tools; toolgate --threads 1 with audit on"
machine_line
