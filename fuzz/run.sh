#!/usr/bin/env bash
# Coverage-guided fuzzing of crates/core with cargo-fuzz (libFuzzer). Runs every target in
# fuzz/fuzz_targets/ (whatever `cargo fuzz list` reports), seeded from the golden Okta/Entra
# vectors, and writes the figures as a markdown table.
#
#   bash fuzz/run.sh                 full run: each target until 10,000,000 executions (capped
#                                    at 1800 s), figures into docs/reliability.md
#   bash fuzz/run.sh --smoke         a few seconds per target (what tests/run does): figures into
#                                    test-artifacts/fuzz-smoke.md only; exit 1 if a target fails to
#                                    build or crashes
#   options: --seconds N (time per target; alone it replaces the 10 M-run goal), --runs N,
#            --targets a,b (a subset), --parallel N (targets at once; default 1)
#
# Needs the nightly toolchain (rustup). Installs cargo-fuzz 0.13.2 (pinned, --locked) into the
# cache if missing. Builds outside the repository ($CACHE/fuzz-target), under `nice -n 10`.
# Working corpora grow in fuzz/corpus/<target> and crashes land in fuzz/artifacts/<target>
# (both git-ignored); committed seeds are fuzz/seeds/<target>/.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/fuzz
CACHE=${BUTTERFLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/butterfly}
ART=$ROOT/test-artifacts
CARGO_FUZZ_VERSION=0.13.2
# Never the repository's target/: fuzz builds use other flags and would only evict it.
export CARGO_TARGET_DIR=${BUTTERFLY_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}
export CARGO_TERM_COLOR=never

SMOKE=0
SECONDS_PER=""
RUNS=""
TARGETS=""
PARALLEL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --seconds) SECONDS_PER=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    --parallel) PARALLEL=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)"; exit 2 ;;
  esac
  shift
done
if [ "$SMOKE" = 1 ]; then
  SECONDS_PER=${SECONDS_PER:-5}
elif [ -z "$SECONDS_PER" ] && [ -z "$RUNS" ]; then
  RUNS=10000000
  SECONDS_PER=1800
fi

mkdir -p "$ART/fuzz" "$CACHE"
REPORT=$ART/fuzz-smoke.md
[ "$SMOKE" = 1 ] || REPORT=$ART/fuzz-report.md
step() { printf '\n== %s  (%s)\n' "$*" "$(date +%T)"; }

# ---------------------------------------------------------------- tools
step "tools: nightly toolchain, cargo-fuzz $CARGO_FUZZ_VERSION"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "the nightly toolchain is needed (rustup toolchain install nightly --profile minimal)"
  { echo "# Fuzzing smoke run"; echo; echo "FAILED: no nightly toolchain"; } >"$REPORT"
  exit 1
fi
export PATH=$CACHE/cargo-fuzz/bin:$PATH
if [ "$(cargo-fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  nice -n 10 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$CACHE/cargo-fuzz" \
    >"$ART/fuzz/install.log" 2>&1 || { tail -20 "$ART/fuzz/install.log"; echo "could not install cargo-fuzz"; exit 1; }
fi
echo "ok: $(rustup run nightly rustc --version), $(cargo-fuzz --version)"

# ---------------------------------------------------------------- build
cd "$FUZZ" || exit 1
mapfile -t ALL < <(cargo +nightly fuzz list 2>/dev/null)
if [ -n "$TARGETS" ]; then IFS=, read -r -a LIST <<<"$TARGETS"; else LIST=("${ALL[@]}"); fi
step "build: ${LIST[*]} (sanitizer none, release, debug assertions and overflow checks on)"
# No AddressSanitizer: the domain crate forbids unsafe code, and ASan's allocator made the
# allocation-heavy targets 5-10x slower. Overflow checks and assertions stay on.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)
if ! nice -n 10 cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" >"$ART/fuzz/build.log" 2>&1; then
  tail -40 "$ART/fuzz/build.log"
  { echo "# Fuzzing smoke run"; echo; echo "FAILED: the fuzz targets do not build (test-artifacts/fuzz/build.log)"; } >"$REPORT"
  echo "fuzz: build failed"
  exit 1
fi

# ---------------------------------------------------------------- seeds
# Golden Okta/Entra vectors → one seed file each (filters, PatchOp requests, user bodies).
SEEDS=$CACHE/fuzz-seeds
rm -rf "$SEEDS"
python3 - "$ROOT/crates/core/tests/vectors" "$SEEDS" <<'PY' || { echo "seed extraction failed"; exit 1; }
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
def write(target, name, text):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "w", encoding="utf-8") as f:
        f.write(text)
load = lambda n: json.load(open(os.path.join(src, n), encoding="utf-8"))
for i, v in enumerate(load("filter.json")):
    write("filter", f"golden-{i:03}", v["filter"])
for i, v in enumerate(load("patch.json")):
    write("patch_json", f"golden-{i:03}", json.dumps(v["request"], ensure_ascii=False))
    for j, op in enumerate(v["request"].get("Operations", [])):
        if "path" not in op and isinstance(op.get("value"), dict):  # path-less values are user fragments
            write("user_body", f"golden-patch-{i:03}-{j}", json.dumps(op["value"], ensure_ascii=False))
for name, body in load("users.json").items():
    if isinstance(body, dict):
        write("user_body", f"golden-{name}", json.dumps(body, ensure_ascii=False))
PY
for t in "${LIST[@]}"; do
  n=$(( $(ls "$SEEDS/$t" 2>/dev/null | wc -l) + $(ls "$FUZZ/seeds/$t" 2>/dev/null | wc -l) ))
  echo "seeds: $t $n"
done

# ---------------------------------------------------------------- run
LIMITS=(-print_final_stats=1 -timeout=25 -rss_limit_mb=2048 "-dict=$FUZZ/scim.dict")
[ -n "$RUNS" ] && LIMITS+=("-runs=$RUNS")
[ -n "$SECONDS_PER" ] && LIMITS+=("-max_total_time=$SECONDS_PER")
step "run: ${LIMITS[*]}"

run_one() {
  local t=$1 dirs=("$FUZZ/corpus/$1")
  mkdir -p "$FUZZ/corpus/$t"
  rm -f "$ART/fuzz/$t.log" "$ART/fuzz/$t.rc"
  [ -d "$SEEDS/$t" ] && dirs+=("$SEEDS/$t")
  [ -d "$FUZZ/seeds/$t" ] && dirs+=("$FUZZ/seeds/$t")
  nice -n 10 cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "${dirs[@]}" -- "${LIMITS[@]}" >"$ART/fuzz/$t.log" 2>&1
  echo $? >"$ART/fuzz/$t.rc"
}
running=0
for t in "${LIST[@]}"; do
  echo "fuzzing $t ($(date +%T))"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
done
wait

# ---------------------------------------------------------------- figures
fstat() { awk -v k="stat::$2:" '$1 == k {print $2}' "$ART/fuzz/$1.log" | tail -1; }
commas() { printf '%d' "${1:-0}" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; }
ROWS=()
FAILED=()
for t in "${LIST[@]}"; do
  log=$ART/fuzz/$t.log
  rc=$(cat "$ART/fuzz/$t.rc" 2>/dev/null || echo 1)
  runs=$(fstat "$t" number_of_executed_units)
  eps=$(fstat "$t" average_exec_per_sec)
  rss=$(fstat "$t" peak_rss_mb)
  secs=$(awk '/^Done [0-9]+ runs in/ {print $5}' "$log" | tail -1)
  # The final status line: "#N DONE cov: C ft: F corp: U/Sb ..."
  last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  crashes=$(grep -cE 'Test unit written to .*/(crash|timeout|oom|leak|slow-unit)-' "$log" || true)
  if [ "$rc" = 0 ] && [ -n "$runs" ]; then
    status=ok
    if [ -n "$RUNS" ] && [ "$runs" -lt "$RUNS" ]; then status="stopped at the time cap"; fi
  else
    status="FAILED (exit $rc): $(grep -m1 -E 'panicked at|ERROR: libFuzzer|deadly signal|run interrupted' "$log" | cut -c1-160)"
    FAILED+=("$t")
    artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
    [ -n "$artifact" ] && status="$status; reproducer $artifact"
  fi
  ROWS+=("| \`$t\` | $(commas "$runs") | ${secs:-?} | $(commas "$eps") | ${corp:-?} | ${cov:-?} | ${ft:-?} | ${rss:-?} | $crashes | $status |")
done

{
  if [ "$SMOKE" = 1 ]; then echo "# Fuzzing smoke run"; else echo "# Fuzzing run"; fi
  echo
  echo "\`bash fuzz/run.sh $([ "$SMOKE" = 1 ] && echo --smoke)\` on $(date -u +%Y-%m-%d) at commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)\`:" \
    "$(rustup run nightly rustc --version | cut -d' ' -f1-2), cargo-fuzz $CARGO_FUZZ_VERSION, libFuzzer flags \`${LIMITS[*]/#-dict=*/-dict=fuzz/scim.dict}\`," \
    "$(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| target | executions | seconds | exec/s | corpus (inputs/bytes) | coverage (cov) | features (ft) | peak RSS MB | crashes | status |"
  echo "|---|---:|---:|---:|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
cat "$REPORT"

if [ "$SMOKE" = 0 ] && [ -z "$TARGETS" ]; then
  # Replace the figures between the markers in docs/reliability.md.
  python3 - "$ROOT/docs/reliability.md" "$REPORT" <<'PY'
import sys
doc, report = sys.argv[1], sys.argv[2]
start, end = "<!-- fuzz-figures:start -->", "<!-- fuzz-figures:end -->"
table = open(report, encoding="utf-8").read().split("\n", 2)[2].strip()
text = open(doc, encoding="utf-8").read()
a, b = text.index(start) + len(start), text.index(end)
open(doc, "w", encoding="utf-8").write(text[:a] + "\n" + table + "\n" + text[b:])
print(f"updated {doc}")
PY
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "fuzz: ${#FAILED[@]} target(s) failed: ${FAILED[*]} (crash inputs in fuzz/artifacts/<target>/)"
  exit 1
fi
echo "fuzz: ${#LIST[@]} targets, no crash"
