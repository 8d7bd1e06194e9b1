#!/usr/bin/env bash
# Lambda figures per function: zip size (budget 5 MB) for the deployed architecture and x86_64,
# process start to first response and peak RSS over 1,000 requests of the release binary under a
# local Runtime API emulator (DynamoDB Local and moto behind it), DynamoDB requests per Okta shape.
#
#   bash bench/lambda-figures.sh                 # package (sam build + cargo-lambda) and run every release binary
#   bash bench/lambda-figures.sh --from DIR      # only tabulate what tests/run left in DIR (test-artifacts)
#
# Writes test-artifacts/bench/lambda.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FROM=""
while [ $# -gt 0 ]; do
  case $1 in
    --from) FROM=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
source bench/lib.sh
if [ -z "$FROM" ]; then
  FROM=$OUT/lambda-run
  rm -rf "$FROM" && mkdir -p "$FROM"
  AWS_VENV=$(venv aws infra/requirements-aws.txt infra/constraints-aws.txt moto_server)
  ARCH=$(lambda_arch)
  PATH="$AWS_VENV/bin:$PATH" timeout 2400 bash infra/package.sh "$FROM/lambda" "$ARCH" 2>"$FROM/package.log" \
    >"$FROM/lambda-zips.txt" || { tail -30 "$FROM/package.log" >&2; exit 1; }
  bench_emulators
  # A throwaway run first: DynamoDB Local's JVM compiles its hot paths on its first requests, and
  # the first function measured should not be charged for the emulator's warm-up.
  run_release_lambda scim-users "$FROM/lambda" "$ARCH" "$FROM/warm-up.log" >/dev/null || true
  rm -f "$FROM/warm-up.log"
  for dir in functions/*/; do
    crate=$(basename "$dir")
    run_release_lambda "$crate" "$FROM/lambda" "$ARCH" "$FROM/lambda-release-$crate.log" >/dev/null \
      || { tail -30 "$FROM/lambda-release-$crate.log" >&2; exit 1; }
  done
fi
python3 - "$FROM" "$(machine)" >"$OUT/lambda.md" <<'PY'
import glob, os, re, sys
src, machine = sys.argv[1:3]
zips = {}
for line in open(os.path.join(src, "lambda-zips.txt")):
    parts = line.split()
    if len(parts) == 4 and parts[0] == "zip":
        name = parts[1]
        if name.endswith("Function"):  # sam's logical id → crate name
            name = re.sub(r"(?<!^)([A-Z])", r"-\1", name[: -len("Function")]).lower()
        zips[(name, parts[2])] = int(parts[3])
archs = sorted({a for _, a in zips}, key=lambda a: a != "arm64")
figs = {}
for log in sorted(glob.glob(os.path.join(src, "lambda-release-*.log"))):
    for line in open(log):
        if "LAMBDA_FIGURES" in line:  # test progress output may precede it on the line
            kv = dict(p.split("=", 1) for p in line.split("LAMBDA_FIGURES", 1)[1].split() if "=" in p)
            figs[kv["function"]] = kv
if not figs:
    sys.exit("no LAMBDA_FIGURES lines in " + src)
mb = lambda b: f"{b / 1e6:.2f} MB" if b else "—"
print(f"Release builds (`opt-level = \"s\"`), x86_64 binaries run under the Runtime API emulator with DynamoDB Local and moto; {machine}.\n")
print("| function | " + " | ".join(f"{a} zip" for a in archs) + " | start → first response | peak RSS over 1,000 requests | mean ms per request | DynamoDB requests per request |")
print("|---|" + "---|" * len(archs) + "---|---|---|---|")
budget = 5 * 1024 * 1024
for fn in sorted(figs):
    f = figs[fn]
    cells = " | ".join(mb(zips.get((fn, a), 0)) + (" ✗" if zips.get((fn, a), 0) > budget else "") for a in archs)
    rss = int(f.get("peak_rss_kb", 0)) / 1024
    ddb = f.get("dynamodb_requests", "—").replace(",", " ")
    print(f'| `{fn}` | {cells} | {f["first_response_ms"]} ms | {rss:.1f} MiB | {f.get("mean_ms", "—")} | {ddb} |')
PY
cat "$OUT/lambda.md"
