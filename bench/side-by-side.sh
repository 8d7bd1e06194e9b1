#!/usr/bin/env bash
# Side-by-side load benchmark: Butterfly's local stack (embedded store, and the same routers over
# DynamoDB Local) and scim2-server (the python-scim reference server, Users-only) under the same
# load generator, on loopback, bounded in time. Prints a Markdown table of requests/s and p50/p99
# for each, with Butterfly's throughput as a multiple of the peer's (ratios from this one run).
# A bare axum server (crates/bench `bare`: one route, no layers, no token check, no store) answers
# the lookup with the very bytes Butterfly answered in this run: the HTTP stack's and the load
# generator's own limit on this machine. It and the first stack are loaded in turn (three rounds),
# and the lookup's fraction of the bare throughput is reported.
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
measure_paired() { # ROUND NAME BASE TOKEN: one round of the paired lookup
  local line
  line=$(SCIM_TOKEN=$4 timeout $((PAIR_SECONDS + 120)) "$BIN/loadgen" --base "$3" run --shape lookup \
    --users "$USERS" --prefix seed --seconds "$PAIR_SECONDS" --connections "$CONNS")
  echo "{\"server\":\"pair-$2\",\"round\":$1,${line#\{}" >>"$RESULTS"
}
PAIR_SECONDS=$(( SECONDS_PER > 2 ? SECONDS_PER / 2 : 1 ))
# One server loaded at a time, the others stopped (the bare server and the first stack are both up
# while they take turns), so each has the machine to itself.
for kind in ${STORES//,/ }; do
  if [ "$kind" = dynamodb ]; then bench_emulators; fi
  start_butterfly "$kind"
  measure "butterfly-$kind" "$BF_BASE" "$BF_TOKEN"
  if [ ! -s "$WORK/lookup.json" ]; then
    # The lookup against the bare server, with the bytes this stack answered: both servers up (an
    # idle one costs nothing), loaded in turn, three rounds each, so the VM's drift over minutes
    # (seen at 2–3×) falls on both alike.
    curl -fsS -G -H "Authorization: Bearer $BF_TOKEN" --data-urlencode 'filter=userName eq "seed-1@example.com"' \
      "$BF_BASE/Users" -o "$WORK/lookup.json"
    start_bare "$WORK/lookup.json"
    for round in 1 2 3; do
      measure_paired "$round" bare "$BARE_BASE" unused
      measure_paired "$round" "butterfly-$kind" "$BF_BASE" "$BF_TOKEN"
    done
    stop_pid "$BARE_PID"
  fi
  stop_butterfly
  if [ "$kind" = dynamodb ]; then stop_emulators >/dev/null; fi
done
start_peer
measure scim2-server "$PEER_BASE" "$PEER_TOKEN"
stop_pid "$PEER_PID"

python3 - "$RESULTS" "$PROFILE" "$SECONDS_PER" "$USERS" "$CONNS" "$(machine)" "$PAIR_SECONDS" >"$OUT/side-by-side.md" <<'PY'
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
pairs = [r for r in rows if r["server"].startswith("pair-")]
stack = next(r["server"][5:] for r in pairs if r["server"] != "pair-bare")
print(f"\nThe lookup against the HTTP stack's own limit: a bare axum handler (crates/bench `bare`: no layers, no token, "
      f"no store) answering the bytes {label[stack]} answered, to the same load generator. Both servers up, loaded in "
      f"turn, {sys.argv[7]} s each per round; the fraction is the stack's requests over the bare server's.\n")
print("| round | bare axum req/s | p50 ms | Butterfly req/s | p50 ms | p99 ms | fraction of bare |")
print("|---|---|---|---|---|---|---|")
tot = {"bare": 0, "stack": 0}
for rnd in sorted({r["round"] for r in pairs}):
    b = next(r for r in pairs if r["round"] == rnd and r["server"] == "pair-bare")
    s = next(r for r in pairs if r["round"] == rnd and r["server"] != "pair-bare")
    tot["bare"] += b["requests"]; tot["stack"] += s["requests"]
    f = s["rps"] / b["rps"] if b["rps"] else 0.0
    print(f'| {rnd} | {b["rps"]:,} | {b["p50_ms"]} | {s["rps"]:,} | {s["p50_ms"]} | {s["p99_ms"]} | {f:.2f} |')
f = tot["stack"] / tot["bare"] if tot["bare"] else 0.0
verdict = "≥ 0.5 ✓" if f >= 0.5 else "≥ 0.5 ✗"
print(f'| all | {tot["bare"]:,} requests | | {tot["stack"]:,} requests | | | **{f:.2f}** ({verdict}) |')
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
