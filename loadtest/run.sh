#!/usr/bin/env bash
# Side-by-side load test of one MCP tools/call: straight to a tiny JSON
# upstream, through nginx proxy_pass, and through toolgate (RBAC + credential
# injection). Same wrk load for each, one worker / one thread per proxy.
#
#   loadtest/run.sh [duration-seconds] [connections]
#
# Needs: wrk, nginx (Debian packages), a release build of toolgate.
# Before/after in one run: TOOLGATE_BASE_BIN and BARE_BASE_BIN (optional)
# add rows for an older toolgate (audit on) and bare-pingora build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
BIN=${TOOLGATE_BIN:-target/release/toolgate}
BARE=${BARE_BIN:-target/release/bare-pingora}
[ -x "$BIN" ] || cargo build --release --bin toolgate
[ -x "$BARE" ] || cargo build --release --bin bare-pingora
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); TG=$(free_port); BP=$(free_port); TGN=$(free_port)
TGB=$(free_port); BPB=$(free_port)

# 1. The upstream (nginx answering a fixed tools/call result) and the
#    baseline (nginx proxy_pass): two nginx processes, one worker each.
nginx_conf() { # dir server-block
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  upstream mcp { server 127.0.0.1:$UP; keepalive 64; }
  $2
}
NGINX
}
nginx_conf "$WORK/upstream" "server { listen 127.0.0.1:$UP; location /mcp { default_type application/json; return 200 '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"3 issues match\"}],\"isError\":false}}'; } }"
nginx_conf "$WORK/proxy" "server { listen 127.0.0.1:$NGX; location /mcp/demo { proxy_pass http://mcp/mcp; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream" & pids+=($!)
nginx -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy" & pids+=($!)

# 2. toolgate over a catalog that routes `demo` to that upstream.
TOKEN=tg_loadtest_0123456789
DIGEST=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
mkdir -p "$WORK/config"
printf 'upstream-secret\n' > "$WORK/config/token"
cat > "$WORK/config/catalog.yaml" <<YAML
teams: [{name: eng}]
servers:
  - {name: demo, owner: eng, status: approved, endpoint: "http://127.0.0.1:$UP/mcp", auth: {type: bearer, secret: "file:token"}}
principals:
  - {name: load, kind: agent, teams: [eng], tokens: [{name: t, sha256: $DIGEST}]}
policies:
  - {name: eng, subjects: {teams: [eng]}, allow: [{server: demo, tools: ["search_*"]}], deny: [{server: demo, tools: ["delete_*"]}]}
YAML
# 3. A bare Pingora pass-through (only picks the peer), same accept loop as toolgate.
"$BARE" "127.0.0.1:$BP" "127.0.0.1:$UP" /mcp & pids+=($!)
# toolgate as deployed (audit trail on: records spooled to disk and delivered
# to a JSON Lines file), and the same with --no-audit to price the audit trail.
RUST_LOG=warn "$BIN" proxy --config "$WORK/config" --listen "127.0.0.1:$TG" --threads 1 \
  --audit-spool "$WORK/spool" --audit-log "$WORK/audit.jsonl" & pids+=($!)
RUST_LOG=error "$BIN" proxy --config "$WORK/config" --listen "127.0.0.1:$TGN" --threads 1 --no-audit & pids+=($!)
urls=()
if [ -n "${TOOLGATE_BASE_BIN:-}" ]; then
  RUST_LOG=warn "$TOOLGATE_BASE_BIN" proxy --config "$WORK/config" --listen "127.0.0.1:$TGB" --threads 1 \
    --audit-spool "$WORK/spool-base" --audit-log "$WORK/audit-base.jsonl" & pids+=($!)
  urls+=("http://127.0.0.1:$TGB/mcp/demo")
fi
if [ -n "${BARE_BASE_BIN:-}" ]; then
  "$BARE_BASE_BIN" "127.0.0.1:$BPB" "127.0.0.1:$UP" /mcp & pids+=($!)
  urls+=("http://127.0.0.1:$BPB/mcp/demo")
fi
sleep 1

check() { curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{}}}' "$1"; }
for url in "http://127.0.0.1:$UP/mcp" "http://127.0.0.1:$NGX/mcp/demo" "http://127.0.0.1:$BP/mcp/demo" "http://127.0.0.1:$TG/mcp/demo" "http://127.0.0.1:$TGN/mcp/demo" "${urls[@]}"; do
  check "$url" || { echo "not answering: $url" >&2; exit 1; }
done

run() { # name url
  local out; out=$(TOKEN=$TOKEN wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s loadtest/tools_call.lua "$2")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%s|%s|%s|%s|%s\n' "$1" "$rps" "$p50" "$p99" "${errs:-none}"
}
results=()
results+=("$(run direct "http://127.0.0.1:$UP/mcp")")
results+=("$(run nginx "http://127.0.0.1:$NGX/mcp/demo")")
results+=("$(run bare-pingora "http://127.0.0.1:$BP/mcp/demo")")
results+=("$(run toolgate "http://127.0.0.1:$TG/mcp/demo")")
results+=("$(run toolgate-no-audit "http://127.0.0.1:$TGN/mcp/demo")")
if [ -n "${BARE_BASE_BIN:-}" ]; then results+=("$(run bare-pingora-base "http://127.0.0.1:$BPB/mcp/demo")"); fi
if [ -n "${TOOLGATE_BASE_BIN:-}" ]; then results+=("$(run toolgate-base "http://127.0.0.1:$TGB/mcp/demo")"); fi

rps_of() { for r in "${results[@]}"; do if [ "$(cut -d"|" -f1 <<<"$r")" = "$1" ]; then cut -d"|" -f2 <<<"$r"; fi; done; }
direct_rps=$(rps_of direct); nginx_rps=$(rps_of nginx); bare_rps=$(rps_of bare-pingora)
echo "| path | req/s | vs direct | vs nginx | vs bare Pingora | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do
  IFS='|' read -r name rps p50 p99 errs <<<"$r"
  ratios=$(python3 -c "print(' | '.join(f'{$rps/b:.2f}' for b in ($direct_rps, $nginx_rps, $bare_rps)))")
  echo "| $name | $rps | $ratios | $p50 | $p99 | $errs |"
done
echo
echo "audit records written by the audited toolgate: $(wc -l < "$WORK/audit.jsonl" 2>/dev/null || echo 0)"
echo "machine: $(nproc) cores, $(uname -sr); wrk -t1 -c$CONNS -d${DURATION}s; proxies with 1 worker/thread; $(date -u +%F)"
