#!/usr/bin/env bash
# Builds the functions as they are deployed and checks each zip against the 5 MB budget.
#   infra/package.sh OUT_DIR ARCH      (ARCH: arm64 or x86_64; tools from infra/requirements-aws.txt)
# 1. `sam build` for ARCH (cargo-lambda, release); each function's bootstrap is zipped into
#    OUT_DIR/ARCH/<LogicalId>/bootstrap.zip, as `sam deploy` would upload it.
# 2. When ARCH is not x86_64, an x86_64 build of each function with cargo-lambda, so this host can
#    run the release binaries (OUT_DIR/x86_64/<crate>/bootstrap.zip).
# Prints one line per zip: "zip NAME ARCH BYTES". Exits non-zero on a build failure or a zip over budget.
set -euo pipefail
out=$1
arch=$2
budget=$((5 * 1024 * 1024))
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0

check() { # NAME ARCH ZIP
  local bytes
  bytes=$(stat -c %s "$3")
  echo "zip $1 $2 $bytes"
  if [ "$bytes" -gt "$budget" ]; then
    echo "$1 ($2): $3 is $bytes bytes, over the 5 MB budget" >&2
    status=1
  fi
}

# --no-cached: SAM's cache keys on each CodeUri only, not on the shared workspace crates.
SAM_CLI_TELEMETRY=0 sam build --no-cached --parameter-overrides "Architecture=$arch" >&2
for dir in .aws-sam/build/*/; do
  [ -f "$dir/bootstrap" ] || continue
  name=$(basename "$dir")
  mkdir -p "$out/$arch/$name"
  python3 - "$dir/bootstrap" "$out/$arch/$name/bootstrap.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, open(sys.argv[1], "rb").read())
PY
  check "$name" "$arch" "$out/$arch/$name/bootstrap.zip"
done

if [ "$arch" != x86_64 ]; then
  for dir in functions/*/; do
    crate=$(basename "$dir")
    cargo lambda build --release --locked --target x86_64-unknown-linux-gnu.2.26 -p "$crate" \
      --output-format zip --lambda-dir "$out/x86_64" >&2
    check "$crate" x86_64 "$out/x86_64/$crate/bootstrap.zip"
  done
fi
exit $status
