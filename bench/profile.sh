#!/usr/bin/env bash
# Profiles the local stack (embedded store, `perf` build) under one request shape of the load
# generator, with Linux `perf` (DWARF call graphs from .eh_frame; no debug info needed), and draws
# a flame graph with inferno when it is installed. Loopback only, bounded in time.
#
#   bash bench/profile.sh [--shape lookup|get|create|patch] [--seconds S] [--users N] [--connections C]
#
# Results: test-artifacts/bench/profile-SHAPE.{txt,svg} (the top functions by their own time,
# and the flame graph). Needs `perf` (Debian: linux-perf) and the right to profile (root, or
# kernel.perf_event_paranoid ≤ 1); inferno: `cargo install inferno` (optional).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHAPE=lookup SECONDS_PER=10 USERS=1000 CONNS=8
while [ $# -gt 0 ]; do
  case $1 in
    --shape) SHAPE=$2; shift ;;
    --seconds) SECONDS_PER=$2; shift ;;
    --users) USERS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt install linux-perf)" >&2; exit 1; }
source bench/lib.sh
bench_build perf
start_butterfly embedded
SCIM_TOKEN=$BF_TOKEN timeout 900 "$BIN/loadgen" --base "$BF_BASE" seed --users "$USERS" --prefix seed --connections 16 >/dev/null
SCIM_TOKEN=$BF_TOKEN timeout $((SECONDS_PER + 120)) "$BIN/loadgen" --base "$BF_BASE" run --shape "$SHAPE" \
  --users "$USERS" --prefix seed --seconds "$SECONDS_PER" --connections "$CONNS" >"$WORK/load.json" &
LOAD=$!
sleep 1
timeout $((SECONDS_PER + 30)) perf record -q -F 999 --call-graph dwarf,16384 -p "$BF_PID" -o "$WORK/perf.data" \
  -- sleep $((SECONDS_PER > 3 ? SECONDS_PER - 2 : 1)) 2>"$WORK/perf.log" || { cat "$WORK/perf.log" >&2; exit 1; }
wait "$LOAD"
echo "load while profiled: $(cat "$WORK/load.json")" >&2
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio --percent-limit 0.5 -g none 2>/dev/null \
  | grep -v "^#" | grep -v "^$" | sed "s/  *-  *- *$//; s/ *$//" | head -80 >"$OUT/profile-$SHAPE.txt"
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 >>"$OUT/profile-$SHAPE.txt"
INFERNO=${INFERNO_BIN:-$CACHE/inferno/bin}
if [ -x "$INFERNO/inferno-flamegraph" ]; then
  perf script -i "$WORK/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" >"$WORK/folded"
  "$INFERNO/inferno-flamegraph" --title "butterfly $SHAPE (embedded store)" <"$WORK/folded" >"$OUT/profile-$SHAPE.svg"
  cp "$WORK/folded" "$OUT/profile-$SHAPE.folded"
fi
cat "$OUT/profile-$SHAPE.txt"
