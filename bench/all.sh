#!/usr/bin/env bash
# Every figure in docs/performance.md, in one run: micro-benchmarks (criterion), the side-by-side
# load benchmark against scim2-server (embedded store and DynamoDB Local), the scale curve (1k /
# 10k / 100k users, cursor paging through all of them), and the Lambda figures (zips, start,
# memory). Writes test-artifacts/bench/report.md. Loopback only; every step is bounded in time.
#
#   bash bench/all.sh            # full run: about 15 minutes on 2 vCPUs (the longest part: seeding 100k users into DynamoDB Local)
#   bash bench/all.sh --smoke    # what tests/run does: every step in its short mode, Lambda figures from tests/run's artifacts
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
OUT=test-artifacts/bench
mkdir -p "$OUT"
part() { printf '\n== %s  (%s)\n' "$*" "$(date +%T)" >&2; }

part "micro-benchmarks (criterion)"
if [ $SMOKE = 1 ]; then
  cargo test --locked -q -p butterfly-core -p butterfly-outbound --benches >"$OUT/micro.log" 2>&1 || { tail -20 "$OUT/micro.log"; exit 1; }
  echo "Smoke run: each benchmark ran once ($(grep -c '^Success' "$OUT/micro.log") benchmarks); no timings." >"$OUT/micro.md"
else
  rm -rf "$CARGO_TARGET_DIR/criterion"
  cargo bench --locked -q -p butterfly-core -p butterfly-outbound --bench core --bench verify -- --warm-up-time 1 --measurement-time 3 >"$OUT/micro.log" 2>&1 \
    || { tail -20 "$OUT/micro.log"; exit 1; }
  python3 - "$CARGO_TARGET_DIR/criterion" >"$OUT/micro.md" <<'PY'
import glob, json, os, sys
rows = []
for est in glob.glob(os.path.join(sys.argv[1], "*", "new", "estimates.json")):
    title = json.load(open(os.path.join(os.path.dirname(est), "benchmark.json")))["title"]
    rows.append((title, json.load(open(est))["median"]["point_estimate"]))
def fmt(ns):
    return f"{ns:.0f} ns" if ns < 1e3 else f"{ns / 1e3:.2f} µs" if ns < 1e6 else f"{ns / 1e6:.2f} ms"
print("| operation | median |")
print("|---|---|")
for title, ns in sorted(rows):
    print(f"| {title} | {fmt(ns)} |")
PY
fi
cat "$OUT/micro.md"

S=(); [ $SMOKE = 1 ] && S=(--smoke)
part "side by side with scim2-server"
bash bench/side-by-side.sh "${S[@]}" >/dev/null
part "scale curve"
bash bench/scale-curve.sh "${S[@]}" >/dev/null
part "Lambda figures"
if [ $SMOKE = 1 ]; then bash bench/lambda-figures.sh --from test-artifacts >/dev/null; else bash bench/lambda-figures.sh >/dev/null; fi

source bench/lib.sh   # machine
{
  echo "# Butterfly performance report"
  echo
  echo "$( [ $SMOKE = 1 ] && echo 'SMOKE RUN (short, debug builds: the figures mean nothing). ' )Taken on: $(machine), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  for f in micro:"Micro-benchmarks" side-by-side:"Side by side with scim2-server" scale-curve:"Scale curve" lambda:"Lambda figures" costs:"What a million Okta requests cost on AWS"; do
    echo; echo "## ${f#*:}"; echo; cat "$OUT/${f%%:*}.md"
  done
} >"$OUT/report.md"
echo "report: $OUT/report.md"
