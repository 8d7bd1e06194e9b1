#!/usr/bin/env bash
# Scale curve: Okta's request shapes against one tenant holding 1k, 10k and 100k users, on the
# embedded store and on DynamoDB Local (the local stack over each), loopback, bounded in time.
# Per size and shape: p50/p99 at one connection (latency, not throughput). After the largest size,
# cursor paging through every user, timing each page. The claim under test: no request path scans
# the tenant, so p50 at the largest size stays within 1.5x of the smallest, and the time per page
# stays flat from the first pages to the last.
#
#   bash bench/scale-curve.sh [--smoke] [--stores embedded,dynamodb] [--sizes 1000,10000,100000] [--seconds S] [--creates N]
#
# --smoke: sizes 100,400, 1 s per shape, 20 creates, debug build (CI: checks it works). Without it: the
# `perf` profile, 5 s per shape, 300 creates per size. Results: test-artifacts/bench/scale-curve.{md,jsonl}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES=1000,10000,100000 SECONDS_PER=5 CREATES=300 PROFILE=perf STORES=embedded,dynamodb SMOKE=0
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SIZES=100,400 SECONDS_PER=1 CREATES=20 PROFILE=debug SMOKE=1 ;;
    --stores) STORES=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --seconds) SECONDS_PER=$2; shift ;;
    --creates) CREATES=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
source bench/lib.sh
bench_build "$PROFILE"

RESULTS=$OUT/scale-curve.jsonl
: >"$RESULTS"
record() { echo "{\"store\":\"$1\",\"users\":$2,${3#\{}" >>"$RESULTS"; }
for kind in ${STORES//,/ }; do
  if [ "$kind" = dynamodb ]; then bench_emulators; fi
  start_butterfly "$kind"
  export SCIM_TOKEN=$BF_TOKEN
  seeded=0
  for n in ${SIZES//,/ }; do
    t0=$(date +%s.%N)
    timeout 3600 "$BIN/loadgen" --base "$BF_BASE" seed --users "$n" --from $((seeded + 1)) --prefix scale --connections 32 >/dev/null
    secs=$(python3 -c "import sys,time; print(round(time.time() - float(sys.argv[1]), 1))" "$t0")
    record "$kind" "$n" "{\"shape\":\"seed\",\"created\":$((n - seeded)),\"seconds\":$secs}"
    echo "$kind: $n users ($((n - seeded)) created in ${secs} s)" >&2
    seeded=$n
    for shape in lookup get patch; do
      record "$kind" "$n" "$(timeout $((SECONDS_PER + 300)) "$BIN/loadgen" --base "$BF_BASE" run --shape "$shape" \
        --users "$n" --prefix scale --seconds "$SECONDS_PER" --connections 1)"
    done
    # Creates grow the tenant: a bounded number per size.
    record "$kind" "$n" "$(timeout $((SECONDS_PER + 300)) "$BIN/loadgen" --base "$BF_BASE" run --shape create \
      --users "$n" --prefix scale --seconds 60 --connections 1 --max-requests "$CREATES")"
  done
  record "$kind" "$seeded" "$(timeout 1900 "$BIN/loadgen" --base "$BF_BASE" page --page-size 100 --max-seconds 1800)"
  stop_butterfly
  if [ "$kind" = dynamodb ]; then stop_emulators >/dev/null; fi
done

python3 - "$RESULTS" "$PROFILE" "$SECONDS_PER" "$CREATES" "$(machine)" >"$OUT/scale-curve.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
profile, secs, creates, machine = sys.argv[2:6]
stores = list(dict.fromkeys(r["store"] for r in rows))
label = {"embedded": "embedded store", "dynamodb": "DynamoDB Local"}
shapes = ["lookup", "get", "patch", "create"]
print(f"One tenant, {profile} build, one connection, {secs} s per shape ({creates} creates per size), loopback; {machine}.\n")
print("| store | users | seeding (users/s) | " + " | ".join(f"{s} p50 / p99 ms" for s in shapes) + " |")
print("|---|---|---|" + "---|" * len(shapes))
verdicts = []
for st in stores:
    sizes = sorted({r["users"] for r in rows if r["store"] == st and r["shape"] == "lookup"})
    get = lambda n, sh: next(r for r in rows if r["store"] == st and r["users"] == n and r["shape"] == sh)
    for n in sizes:
        seed = get(n, "seed")
        rate = seed["created"] / seed["seconds"] if seed["seconds"] else 0
        cells = " | ".join(f'{get(n, s)["p50_ms"]} / {get(n, s)["p99_ms"]}' for s in shapes)
        print(f"| {label.get(st, st)} | {n:,} | {rate:,.0f} | {cells} |")
    lo, hi = sizes[0], sizes[-1]
    ratios = []
    for s in shapes:
        a, b = get(lo, s)["p50_ms"], get(hi, s)["p50_ms"]
        ratios.append(b / a if a else float("inf"))
    cells = " | ".join(f"**{x:.2f}×** {'✓' if x <= 1.5 else '✗'}" for x in ratios)
    print(f"| {label.get(st, st)} | p50 {hi:,} ÷ {lo:,} | (≤ 1.5×) | {cells} |")
    verdicts += [(st, s, x) for s, x in zip(shapes, ratios)]
print("\nCursor paging through the whole tenant (`GET /Users?count=100&cursor=…`, one page at a time):\n")
print("| store | users | pages | total s | p50 ms per page | first tenth ms | last tenth ms | last ÷ first |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["shape"] == "page":
        x = r["last_over_first"]
        print(f'| {label.get(r["store"], r["store"])} | {r["users"]:,} | {r["pages"]:,} | {r["seconds"]} | {r["p50_ms"]} | '
              f'{r["first_tenth_ms"]} | {r["last_tenth_ms"]} | **{x:.2f}×** {"✓" if x <= 1.5 else "✗"} |')
PY
cat "$OUT/scale-curve.md"
# Every request must have been answered (times are reported, not judged: see docs/performance.md).
python3 - "$RESULTS" <<'PY'
import json, sys
bad = [r for r in map(json.loads, open(sys.argv[1])) if r.get("errors") or r.get("requests") == 0]
if bad:
    print("errors:", bad, file=sys.stderr)
    sys.exit(1)
PY
