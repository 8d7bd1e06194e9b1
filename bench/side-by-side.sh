#!/usr/bin/env bash
# Side-by-side load benchmark: Butterfly's local stack and scim2-server (the python-scim reference server,
# Users-only) under the same load generator, on loopback, bounded in time. Prints a Markdown table of
# requests/s and p50/p99 for both, with Butterfly's throughput as a multiple of the peer's.
#
#   bash bench/side-by-side.sh [--smoke] [--seconds S] [--users N] [--connections C]
#
# --smoke: seconds=1, users=50, debug build; checks the benchmark works (CI). Without it: the `perf` profile (release, opt-level 3),
# 10 s per shape, 1000 users, 8 connections. Results: test-artifacts/bench/side-by-side.{md,jsonl}.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_PER=10 USERS=1000 CONNS=8 PROFILE=perf
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SECONDS_PER=1 USERS=50 PROFILE=debug ;;
    --seconds) SECONDS_PER=$2; shift ;;
    --users) USERS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${BUTTERFLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/butterfly}
OUT=$ROOT/test-artifacts/bench
mkdir -p "$OUT" "$CACHE"
source infra/emulators.sh   # free_port, wait_for_port

# The peer, pinned, in its own venv.
HASH=$(sha256sum bench/requirements.txt | cut -c1-12)
VENV=$CACHE/venv-bench-$HASH
if [ ! -x "$VENV/bin/scim2-server" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt >&2
fi

flag=(); [ "$PROFILE" = perf ] && flag=(--profile perf)
cargo build --locked -q "${flag[@]}" -p butterfly -p butterfly-bench
BIN=$CARGO_TARGET_DIR/$PROFILE
WORK=$(mktemp -d)
PIDS=""
cleanup() { # keeps the script's own exit status (a killed server's status is not a failure)
  local rc=$?
  set +e
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

# Butterfly: fresh data dir, one tenant and token.
TENANT=$("$BIN/butterfly" --data-dir "$WORK/bf" tenant create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant_id"])')
BF_TOKEN=$("$BIN/butterfly" --data-dir "$WORK/bf" scim-token issue --tenant "$TENANT" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
BF_PORT=$(free_port)
BUTTERFLY_LOG=warn "$BIN/butterfly" --data-dir "$WORK/bf" serve --addr "127.0.0.1:$BF_PORT" --no-demo >"$OUT/butterfly.log" 2>&1 &
PIDS="$PIDS $!"

# scim2-server, Users-only, request log off.
"$VENV/bin/python" bench/scim2_server_users_only.py "$WORK/peer"
PEER_TOKEN=bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
PEER_PORT=$(free_port)
"$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$PEER_PORT" --bearer-token "$PEER_TOKEN" \
  --schema "$WORK/peer/schemas.json" --resource-type "$WORK/peer/resource-types.json" \
  --service-provider-config "$WORK/peer/spc.json" >"$OUT/scim2-server.log" 2>&1 &
PIDS="$PIDS $!"
wait_for_port "$BF_PORT" 30 && wait_for_port "$PEER_PORT" 30 || { echo "a server did not start" >&2; exit 1; }

RESULTS=$OUT/side-by-side.jsonl
: >"$RESULTS"
measure() { # NAME BASE TOKEN
  local name=$1 base=$2 token=$3 shape line
  SCIM_TOKEN=$token timeout 600 "$BIN/loadgen" --base "$base" seed --users "$USERS" --prefix seed >/dev/null
  for shape in lookup get create patch; do
    line=$(SCIM_TOKEN=$token timeout $((SECONDS_PER + 120)) "$BIN/loadgen" --base "$base" run --shape "$shape" \
      --users "$USERS" --prefix seed --seconds "$SECONDS_PER" --connections "$CONNS")
    echo "{\"server\":\"$name\",${line#\{}" >>"$RESULTS"
  done
}
measure butterfly "http://127.0.0.1:$BF_PORT/scim/v2" "$BF_TOKEN"
measure scim2-server "http://127.0.0.1:$PEER_PORT/v2" "$PEER_TOKEN"

python3 - "$RESULTS" "$PROFILE" "$SECONDS_PER" "$USERS" "$CONNS" >"$OUT/side-by-side.md" <<'PY'
import json, sys, platform, os
rows = [json.loads(l) for l in open(sys.argv[1])]
profile, secs, users, conns = sys.argv[2:6]
by = {(r["server"], r["shape"]): r for r in rows}
names = {"lookup": 'GET /Users?filter=userName eq "…"', "get": "GET /Users/{id}", "create": "POST /Users", "patch": "PATCH /Users/{id} (path-less)"}
print(f"Butterfly ({profile} build, embedded store) vs scim2-server 0.8.3 (Users-only), {users} users, {secs} s per shape, "
      f"{conns} connections, one loadgen client, loopback; {os.cpu_count()} CPUs, {platform.machine()}.\n")
print("| request | Butterfly req/s | p50 ms | p99 ms | errors | scim2-server req/s | p50 ms | p99 ms | errors | throughput ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for shape in ["lookup", "get", "create", "patch"]:
    b, p = by[("butterfly", shape)], by[("scim2-server", shape)]
    ratio = b["rps"] / p["rps"] if p["rps"] else float("inf")
    print(f'| {names[shape]} | {b["rps"]} | {b["p50_ms"]} | {b["p99_ms"]} | {b["errors"]} | {p["rps"]} | {p["p50_ms"]} | {p["p99_ms"]} | {p["errors"]} | {ratio:.1f}× |')
PY
cat "$OUT/side-by-side.md"
# Butterfly must answer every request; the peer's errors are reported, not judged.
python3 - "$RESULTS" <<'PY'
import json, sys
bad = [r for r in map(json.loads, open(sys.argv[1])) if r["server"] == "butterfly" and (r["errors"] or not r["requests"])]
if bad:
    print("Butterfly errors:", bad, file=sys.stderr)
    sys.exit(1)
PY
