#!/usr/bin/env bash
# Lambda figures per function: zip size (budget 5 MB) for the deployed architecture and x86_64,
# process start to first response and peak RSS over 1,000 requests of the release binary under a
# local Runtime API emulator (DynamoDB Local and moto behind it), DynamoDB requests per Okta shape.
#
#   bash bench/lambda-figures.sh                 # package (sam build + cargo-lambda) and run every release binary
#   bash bench/lambda-figures.sh --from DIR      # only tabulate what tests/run left in DIR (test-artifacts)
#
# Writes test-artifacts/bench/lambda.md, and test-artifacts/bench/costs.md: per Okta request shape,
# the DynamoDB requests and the capacity units DynamoDB reported (ReturnConsumedCapacity, through
# the function's SDK interceptor), the time per request, and what a million of each costs on AWS
# at list on-demand prices (the price table is in bench/prices.env, with its date and sources).
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
MEMORY_MB=$(awk '/^Globals:/{g=1} g && /MemorySize:/{print $2; exit}' template.yaml)
python3 - "$FROM" "$(machine)" "$MEMORY_MB" bench/prices.env >"$OUT/costs.md" <<'PY'
import glob, math, os, sys
src, machine, memory_mb, prices_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
price = {}
for line in open(prices_file):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        price[k] = v.strip().strip('"')
shapes = {}
for log in glob.glob(os.path.join(src, "lambda-release-scim-users.log")):
    for line in open(log):
        if "LAMBDA_SHAPE " in line:
            kv = dict(p.split("=", 1) for p in line.split("LAMBDA_SHAPE ", 1)[1].split() if "=" in p)
            shapes[kv["shape"]] = kv
if not shapes:
    sys.exit("no LAMBDA_SHAPE lines in " + src)
rows = [
    ("lookup", "lookup `GET /Users?filter=userName eq \"…\"`"),
    ("get", "get `GET /Users/{id}`"),
    ("create", "create `POST /Users`"),
    ("put", "replace `PUT /Users/{id}`"),
    ("patch", "`PATCH /Users/{id}` (an attribute)"),
    ("deactivate", "deactivate `PATCH` `active: false`"),
    ("reactivate", "reactivate `PATCH` `active: true`"),
    ("lookup/old_token", "lookup, token without routing part"),
    ("create/old_token", "create, token without routing part"),
]
rru, wru = float(price["DYNAMODB_RRU_PER_MILLION"]), float(price["DYNAMODB_WRU_PER_MILLION"])
gbs, lreq, apigw = float(price["LAMBDA_ARM64_GB_SECOND"]), float(price["LAMBDA_PER_MILLION"]), float(price["HTTP_API_PER_MILLION"])
gb = memory_mb / 1024
print(f"Per Okta request shape, from `functions/scim-users/tests/lambda.rs` (the function's binary under the Runtime API emulator, DynamoDB Local; {machine}). "
      f"Capacity units as DynamoDB Local reports them (`ReturnConsumedCapacity: TOTAL`, summed by the function's SDK interceptor and logged per request); "
      f"GB-seconds at the deployed {memory_mb} MB and this run's mean time per request, billed per started millisecond. "
      f"Prices: {price['REGION']}, list on-demand, as read on {price['PRICES_READ_ON']} (`bench/prices.env`): DynamoDB ${price['DYNAMODB_RRU_PER_MILLION']} per million read request units and ${price['DYNAMODB_WRU_PER_MILLION']} per million write request units, "
      f"Lambda arm64 ${price['LAMBDA_ARM64_GB_SECOND']} per GB-second and ${price['LAMBDA_PER_MILLION']} per million requests, API Gateway HTTP API ${price['HTTP_API_PER_MILLION']} per million requests. "
      f"Times here are DynamoDB Local's round trips on loopback through the Runtime API emulator, not AWS's; compare rows, and see docs/performance.md for what limits them.\n")
print("| request | DynamoDB requests | read units | write units | ms per request (here) | Lambda GB-s | DynamoDB $ per million | Lambda $ per million | all, with API Gateway, $ per million |")
print("|---|---|---|---|---|---|---|---|---|")
for key, label in rows:
    f = shapes.get(key)
    if not f:
        continue
    r, w, ms = float(f["read_units"]), float(f["write_units"]), float(f["mean_ms"])
    billed_ms = max(1, math.ceil(ms))
    g = gb * billed_ms / 1000
    ddb = r * rru + w * wru
    lam = g * 1e6 * gbs + lreq
    print(f"| {label} | {f['requests']} | {r:.2f} | {w:.2f} | {ms:.2f} | {g:.6f} | {ddb:.2f} | {lam:.2f} | **{ddb + lam + apigw:.2f}** |")
lat = {k: float(v["mean_ms"]) for k, v in shapes.items()}
print()
print("Time per request, one round trip against two (token read first), same run, same tenant size:\n")
print("| request | one round trip ms | two round trips ms | two ÷ one |")
print("|---|---|---|---|")
for new, old, label in [("lookup", "lookup/old_token", "lookup"), ("create", "create/old_token", "create")]:
    if new in lat and old in lat:
        print(f"| {label} | {lat[new]:.2f} | {lat[old]:.2f} | **{lat[old] / lat[new]:.2f}×** |")
PY
cat "$OUT/lambda.md" "$OUT/costs.md"
