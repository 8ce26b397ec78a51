#!/usr/bin/env bash
# MCP-session load: many simulated agents (mcp-load), each with its own
# connection and MCP session, sending a mix of tools/list and tools/call
# (small and large, JSON and SSE answers) to a mock MCP server (mock-mcp):
#
#   direct        straight to mock-mcp
#   nginx         nginx proxy_pass (1 worker, upstream keepalive, no buffering,
#                 sets the upstream Authorization header)
#   bare-pingora  a Pingora pass-through (benches/src/bin/bare-pingora.rs)
#   toolgate      `toolgate proxy --threads 1`: PAT auth, RBAC (tools/list
#                 filtered, calls decided), credential injection, session
#                 sealing, audit trail on
#
# First closed loop (saturation) against each, then open loop against each at
# half of toolgate's saturation rate (latency from the scheduled send time).
# Prints markdown tables for loadtest/RESULTS.md.
#
#   loadtest/mcp.sh [duration-seconds] [agents]
#
# Environment: TOOLGATE_BASE_BIN / BARE_BASE_BIN (an older build as extra
# rows, for before/after in one run), MIX (mcp-load --mix), WARMUP (s), LOAD_THREADS (generator
# threads, default 1), RATE (open-loop rate instead of half of toolgate's),
# SKIP_BUILD=1, CARGO_TARGET_DIR. Needs: nginx, curl, python3.
source "$(dirname "$0")/lib.sh"
DURATION=${1:-10}
AGENTS=${2:-64}
MIX=${MIX:-list=1,call=6,large=1,sse=2}
WARMUP=${WARMUP:-1}
build_bins

UP=$(free_port); NGX=$(free_port); BP=$(free_port); TG=$(free_port)
start_mock "$UP"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  client_body_buffer_size 1m; # request bodies stay in memory (workers cannot write to \$WORK)
  upstream mcp { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NGX;
    location /mcp/mock {
      proxy_pass http://mcp/mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $UPSTREAM_SECRET";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & started

"$REL/bare-pingora" "127.0.0.1:$BP" "127.0.0.1:$UP" /mcp 2>"$WORK/bare.log" & started

write_config "$WORK/config" "$UP"
start_toolgate toolgate "$TG" "$WORK/config"

declare -A URL=(
  [direct]="http://127.0.0.1:$UP/mcp"
  [nginx]="http://127.0.0.1:$NGX/mcp/mock"
  [bare-pingora]="http://127.0.0.1:$BP/mcp/mock"
  [toolgate]="http://127.0.0.1:$TG/mcp/mock"
)
# Only nginx and toolgate replace the agent's token with the upstream credential.
declare -A TOKEN=(
  [direct]=$UPSTREAM_SECRET [bare-pingora]=$UPSTREAM_SECRET
  [nginx]=$AGENT_TOKEN [toolgate]=$AGENT_TOKEN
)
PATHS=(direct nginx bare-pingora toolgate)
# Before/after in one run: an older bare-pingora and toolgate build as extra rows.
if [ -n "${BARE_BASE_BIN:-}" ]; then
  BPB=$(free_port)
  "$BARE_BASE_BIN" "127.0.0.1:$BPB" "127.0.0.1:$UP" /mcp 2>"$WORK/bare-base.log" & started
  URL[bare-pingora-base]="http://127.0.0.1:$BPB/mcp/mock"; TOKEN[bare-pingora-base]=$UPSTREAM_SECRET
  PATHS+=(bare-pingora-base)
fi
if [ -n "${TOOLGATE_BASE_BIN:-}" ]; then
  TGB=$(free_port)
  TOOLGATE_BIN=$TOOLGATE_BASE_BIN start_toolgate toolgate-base "$TGB" "$WORK/config"
  URL[toolgate-base]="http://127.0.0.1:$TGB/mcp/mock"; TOKEN[toolgate-base]=$AGENT_TOKEN
  PATHS+=(toolgate-base)
fi
for p in "${PATHS[@]}"; do wait_ready "${URL[$p]}" "${TOKEN[$p]}"; done

load() { # name mode-file [extra mcp-load flags]
  local name=$1 out=$2
  shift 2
  MCP_TOKEN=${TOKEN[$name]} "$REL/mcp-load" --url "${URL[$name]}" --agents "$AGENTS" \
    --duration "$DURATION" --warmup "$WARMUP" --mix "$MIX" --threads "${LOAD_THREADS:-1}" \
    --json "$@" >"$out"
  python3 -c 'import json, sys; a = json.load(open(sys.argv[1]))["all"]; print("  %s: %.0f req/s, p50 %s ms, p99 %s ms, %d errors" % (sys.argv[2], a["rps"], a["p50_ms"], a["p99_ms"], a["errors"]))' "$out" "$name" >&2
}

echo "closed loop, $AGENTS agents, ${DURATION}s each:" >&2
for p in "${PATHS[@]}"; do load "$p" "$WORK/closed-$p.json"; done
RATE=${RATE:-$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["all"]["rps"] / 2))' "$WORK/closed-toolgate.json")}
echo "open loop at $RATE req/s:" >&2
for p in "${PATHS[@]}"; do load "$p" "$WORK/open-$p.json" --rate "$RATE"; done

AUDITED=$(wc -l <"$WORK/toolgate-audit.jsonl" 2>/dev/null || echo 0)
python3 - "$WORK" "${PATHS[@]}" <<'PY'
import json, sys
work, paths = sys.argv[1], sys.argv[2:]
closed = {p: json.load(open(f"{work}/closed-{p}.json")) for p in paths}
opened = {p: json.load(open(f"{work}/open-{p}.json")) for p in paths}
q = ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms"]
ms = lambda v: "-" if v is None else f"{v:.2f} ms" if v >= 1 else f"{v * 1000:.0f} µs"
def errs(a):
    c = [f"{k} {v}" for k, v in a["errors_by_cause"].items() if v]
    return ", ".join(c) or "none"

print("Closed loop (saturation):\n")
print("| path | req/s | vs direct | vs nginx | p50 | p90 | p99 | p99.9 | errors |")
print("|---|---|---|---|---|---|---|---|---|")
d, n = closed["direct"]["all"]["rps"], closed["nginx"]["all"]["rps"]
for p in paths:
    a = closed[p]["all"]
    print(f"| {p} | {a['rps']:.0f} | {a['rps'] / d:.2f} | {a['rps'] / n:.2f} | "
          + " | ".join(ms(a[k]) for k in q) + f" | {errs(a)} |")

rate = opened["toolgate"]["target_rps"]
print(f"\nOpen loop at {rate:.0f} req/s (half of toolgate's saturation), latency from the scheduled send time:\n")
print("| path | achieved req/s | p50 | p90 | p99 | p99.9 | errors | never sent |")
print("|---|---|---|---|---|---|---|---|")
for p in paths:
    a = opened[p]["all"]
    print(f"| {p} | {a['rps']:.0f} | " + " | ".join(ms(a[k]) for k in q)
          + f" | {errs(a)} | {opened[p]['unsent']} |")

print("\nPer request kind, open loop (p50 / p99):\n")
kinds = list(opened["toolgate"]["kinds"])
print("| kind | share | " + " | ".join(paths) + " |")
print("|---|---|" + "---|" * len(paths))
total = opened["toolgate"]["all"]["requests"] or 1
for k in kinds:
    share = opened["toolgate"]["kinds"][k]["requests"] / total
    cells = []
    for p in paths:
        a = opened[p]["kinds"].get(k)
        cells.append(f"{ms(a['p50_ms'])} / {ms(a['p99_ms'])}" if a else "-")
    print(f"| {k} | {share:.0%} | " + " | ".join(cells) + " |")
PY
echo
echo "audit records written by toolgate: $AUDITED"
echo "mcp-load --agents $AGENTS --duration $DURATION --warmup $WARMUP --mix $MIX --threads ${LOAD_THREADS:-1}; proxies and mock-mcp 1 worker/thread; mock lists ${MOCK_TOOLS:-20} tools (toolgate hides the delete_* half)"
machine_line
