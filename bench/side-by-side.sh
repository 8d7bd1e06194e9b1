#!/usr/bin/env bash
# Side-by-side load benchmark: Butterfly's local stack (embedded store, and the same routers over
# DynamoDB Local) and scim2-server (the python-scim reference server, Users-only) under the same
# load generator, on loopback, bounded in time. Prints a Markdown table of requests/s and p50/p99
# for each, with Butterfly's throughput as a multiple of the peer's (ratios from this one run).
# A bare axum server (crates/bench `bare`: one route, no layers, no token check, no store) answers
# the lookup with the very bytes Butterfly answered in this run: its row is the HTTP stack's and the
# load generator's own limit on this machine (measured right after the first stack), and the
# lookup's fraction of it is reported too.
#
#   bash bench/side-by-side.sh [--smoke] [--stores embedded,dynamodb] [--seconds S] [--users N] [--connections C]
#
# --smoke: seconds=1, users=50, debug build; checks the benchmark works (CI). Without it: the `perf` profile
# (release, opt-level 3), 10 s per shape, 1000 users, 8 connections. Results: test-artifacts/bench/side-by-side.{md,jsonl}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER=10 USERS=1000 CONNS=8 PROFILE=perf STORES=embedded,dynamodb
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SECONDS_PER=1 USERS=50 PROFILE=debug ;;
    --stores) STORES=$2; shift ;;
    --seconds) SECONDS_PER=$2; shift ;;
    --users) USERS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
source bench/lib.sh
bench_build "$PROFILE"

RESULTS=$OUT/side-by-side.jsonl
: >"$RESULTS"
measure() { # NAME BASE TOKEN [SHAPES]  (SHAPES given: the server holds no users, none are seeded)
  local name=$1 base=$2 token=$3 shapes=${4:-} shape line
  if [ -z "$shapes" ]; then
    shapes="lookup get create patch"
    SCIM_TOKEN=$token timeout 900 "$BIN/loadgen" --base "$base" seed --users "$USERS" --prefix seed --connections 16 >/dev/null
  fi
  for shape in $shapes; do
    line=$(SCIM_TOKEN=$token timeout $((SECONDS_PER + 120)) "$BIN/loadgen" --base "$base" run --shape "$shape" \
      --users "$USERS" --prefix seed --seconds "$SECONDS_PER" --connections "$CONNS")
    echo "{\"server\":\"$name\",${line#\{}" >>"$RESULTS"
  done
}
# One server at a time, the others stopped, so each has the machine to itself.
for kind in ${STORES//,/ }; do
  if [ "$kind" = dynamodb ]; then bench_emulators; fi
  start_butterfly "$kind"
  measure "butterfly-$kind" "$BF_BASE" "$BF_TOKEN"
  first=0
  if [ ! -s "$WORK/lookup.json" ]; then # the bytes the bare server answers with: a real lookup answer
    curl -fsS -G -H "Authorization: Bearer $BF_TOKEN" --data-urlencode 'filter=userName eq "seed-1@example.com"' \
      "$BF_BASE/Users" -o "$WORK/lookup.json"
    first=1
  fi
  stop_butterfly
  if [ $first = 1 ]; then # right after the first stack, so the VM's drift does not enter the fraction
    start_bare "$WORK/lookup.json"
    measure bare-axum "$BARE_BASE" unused lookup
    stop_pid "$BARE_PID"
  fi
  if [ "$kind" = dynamodb ]; then stop_emulators >/dev/null; fi
done
start_peer
measure scim2-server "$PEER_BASE" "$PEER_TOKEN"
stop_pid "$PEER_PID"

python3 - "$RESULTS" "$PROFILE" "$SECONDS_PER" "$USERS" "$CONNS" "$(machine)" >"$OUT/side-by-side.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
profile, secs, users, conns, machine = sys.argv[2:7]
by = {(r["server"], r["shape"]): r for r in rows}
servers = [s for s in ("butterfly-embedded", "butterfly-dynamodb") if (s, "lookup") in by]
label = {"butterfly-embedded": "Butterfly, embedded store", "butterfly-dynamodb": "Butterfly, DynamoDB Local"}
names = {"lookup": 'lookup `GET /Users?filter=userName eq "…"`', "get": "`GET /Users/{id}`",
         "create": "create `POST /Users`", "patch": "path-less `PATCH /Users/{id}`"}
targets = {"lookup": 20, "create": 10}
print(f"Butterfly ({profile} build) vs scim2-server 0.8.3 (Users-only): {users} users, {secs} s per shape, "
      f"{conns} connections, one loadgen client, loopback; {machine}.\n")
print("| request | server | req/s | p50 ms | p99 ms | errors | throughput ratio | target |")
print("|---|---|---|---|---|---|---|---|")
for shape in ["lookup", "get", "create", "patch"]:
    p = by[("scim2-server", shape)]
    for s in servers:
        b = by[(s, shape)]
        ratio = b["rps"] / p["rps"] if p["rps"] else float("inf")
        t = targets.get(shape)
        verdict = "" if t is None or s != "butterfly-embedded" else (f"≥ {t}× ✓" if ratio >= t else f"≥ {t}× ✗")
        print(f'| {names[shape]} | {label[s]} | {b["rps"]:,} | {b["p50_ms"]} | {b["p99_ms"]} | {b["errors"]} | **{ratio:.1f}×** | {verdict} |')
    print(f'| | scim2-server | {p["rps"]:,} | {p["p50_ms"]} | {p["p99_ms"]} | {p["errors"]} | 1× | |')
bare = by[("bare-axum", "lookup")]
print(f"\nThe lookup against the HTTP stack's own limit: a bare axum handler answering the same bytes "
      f"({bare['requests']:,} requests, {bare['errors']} errors) to the same load generator.\n")
print("| lookup served by | req/s | p50 ms | p99 ms | fraction of bare axum | target |")
print("|---|---|---|---|---|---|")
print(f'| bare axum (no layers, no token, no store) | {bare["rps"]:,} | {bare["p50_ms"]} | {bare["p99_ms"]} | 1 | |')
for s in servers:
    b = by[(s, "lookup")]
    f = b["rps"] / bare["rps"] if bare["rps"] else 0.0
    verdict = "" if s != "butterfly-embedded" else (f"≥ 0.5 ✓" if f >= 0.5 else "≥ 0.5 ✗")
    print(f'| {label[s]} | {b["rps"]:,} | {b["p50_ms"]} | {b["p99_ms"]} | **{f:.2f}** | {verdict} |')
PY
cat "$OUT/side-by-side.md"
# Butterfly and the bare server must answer every request; the peer's errors are reported, not judged.
python3 - "$RESULTS" <<'PY'
import json, sys
bad = [r for r in map(json.loads, open(sys.argv[1])) if r["server"] != "scim2-server" and (r["errors"] or not r["requests"])]
if bad:
    print("Butterfly errors:", bad, file=sys.stderr)
    sys.exit(1)
PY
