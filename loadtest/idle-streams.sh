#!/usr/bin/env bash
# Memory per idle MCP event stream through toolgate: opens N GET streams
# (`Accept: text/event-stream`, one connection each, all on one MCP session
# unless SESSION_PER_STREAM=1) through `toolgate proxy --threads 1` (audit on)
# to mock-mcp, which sends one comment per stream and then stays idle, and
# reports VmRSS of toolgate (and of mock-mcp) before and after. Target: under
# 10 KiB per idle stream in toolgate.
#
#   loadtest/idle-streams.sh [streams]      # default 10000
#
# toolgate holds two file descriptors per stream (agent side and upstream
# side): the script raises `ulimit -n` to the hard limit and lowers N to what
# that limit allows (a hard limit of 20000 allows 9,872 streams).
# The same streams are then opened through the bare Pingora pass-through
# (`bare-pingora`, same accept loop, nothing of toolgate's per request) so
# toolgate's own share of the per-stream cost shows (skip with NO_BARE=1).
# Environment: SESSION_PER_STREAM=1, HOLD (s to keep the streams open after
# the reading), SKIP_BUILD=1, CARGO_TARGET_DIR, TOOLGATE_BIN, BARE_BIN.
source "$(dirname "$0")/lib.sh"
STREAMS=${1:-10000}
build_bins

ulimit -n "$(ulimit -Hn)"
LIMIT=$(ulimit -n)
MAX=$(((LIMIT - 256) / 2))
if [ "$STREAMS" -gt "$MAX" ]; then
  echo "open-file limit $LIMIT allows $MAX streams through toolgate (2 fds each); opening $MAX instead of $STREAMS" >&2
  STREAMS=$MAX
fi

UP=$(free_port); TG=$(free_port); METRICS=$(free_port)
start_mock "$UP"
write_config "$WORK/config" "$UP"
start_toolgate toolgate "$TG" "$WORK/config" --metrics-listen "127.0.0.1:$METRICS"
URL="http://127.0.0.1:$TG/mcp/mock"
wait_ready "$URL" "$AGENT_TOKEN"

flags=()
if [ -n "${SESSION_PER_STREAM:-}" ]; then flags+=(--session-per-stream); fi
MCP_TOKEN=$AGENT_TOKEN "$REL/idle-streams" --url "$URL" --streams "$STREAMS" \
  --pid "toolgate=$TOOLGATE_PID" --pid "mock-mcp=$MOCK_PID" --hold "${HOLD:-2}" "${flags[@]}" &
LOAD=$!
# While the streams are held open, ask toolgate how many it counts.
peak=0
while kill -0 "$LOAD" 2>/dev/null; do
  now=$(curl -sf "http://127.0.0.1:$METRICS/metrics" | awk '/^toolgate_sse_streams_active/ {print int($2)}' || true)
  if [ -n "$now" ] && [ "$now" -gt "$peak" ]; then peak=$now; fi
  sleep 0.5
done
wait "$LOAD"
echo "toolgate_sse_streams_active, highest scrape: $peak"
if [ -z "${NO_BARE:-}" ]; then
  BP=$(free_port)
  "${BARE_BIN:-$REL/bare-pingora}" "127.0.0.1:$BP" "127.0.0.1:$UP" /mcp 2>"$WORK/bare.log" &
  started
  BARE_PID=$!
  wait_ready "http://127.0.0.1:$BP/mcp/mock" "$UPSTREAM_SECRET"
  echo "bare Pingora pass-through, same streams:"
  MCP_TOKEN=$UPSTREAM_SECRET "$REL/idle-streams" --url "http://127.0.0.1:$BP/mcp/mock" --streams "$STREAMS" \
    --pid "bare-pingora=$BARE_PID" --hold "${HOLD:-2}" "${flags[@]}"
fi
echo "streams: $STREAMS; toolgate proxy --threads 1, audit on; open-file limit $LIMIT"
machine_line
