# Pinned tools and the Lambda build steps shared by tests/run and the benchmark scripts (sourced).
# Needs CACHE (the tool cache directory); run from the repository root.

# venv NAME REQUIREMENTS CONSTRAINTS CHECK-BINARY → prints the venv path (created once per pin set)
venv() {
  local hash dir
  hash=$(cat "$2" "$3" | sha256sum | cut -c1-12)
  dir=$CACHE/venv-$1-$hash
  if [ ! -x "$dir/bin/$4" ]; then
    rm -rf "$dir"
    { python3 -m venv "$dir" && "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$2" -c "$3"; } >&2 \
      || { echo "could not install $2" >&2; rm -rf "$dir"; return 1; }
  fi
  echo "$dir"
}

# lambda_arch → prints the architecture to package: arm64 (what the template deploys) when the
# aarch64 standard library is installed or installable, else x86_64 (with a note on stderr).
# BUTTERFLY_LAMBDA_ARCH=x86_64 picks the fallback on purpose.
lambda_arch() {
  local arch=${BUTTERFLY_LAMBDA_ARCH:-arm64}
  if [ "$arch" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
    timeout 180 rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
  fi
  if [ "$arch" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
    arch=x86_64
    echo "NOTE: the aarch64 standard library cannot be installed on this machine: building x86_64 zips instead" >&2
    echo "      (deploy with Architecture=x86_64, or add the target where you build: see docs/deploy.md)" >&2
  fi
  echo "$arch"
}

# run_release_lambda CRATE LAMBDA_OUT ARCH LOG → runs the function's release binary (from the
# x86_64 zip infra/package.sh wrote) under the Runtime API emulator test; prints its
# LAMBDA_FIGURES line. Needs the emulators' endpoint variables. Non-zero if it fails.
run_release_lambda() {
  local crate=$1 rel var rc
  rel=$2/x86_64/$crate
  if [ "$3" = x86_64 ]; then # sam's folders are named after the logical ids: scim-users → ScimUsersFunction
    rel=$2/x86_64/$(python3 -c 'import sys; print("".join(w.title() for w in sys.argv[1].split("-")) + "Function")' "$crate")
  fi
  if ! { [ -f "$rel/bootstrap.zip" ] && python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$rel/bootstrap.zip" "$rel"; }; then
    echo "$crate: no release zip to run in $rel" >"$4"
    return 1
  fi
  chmod +x "$rel/bootstrap"
  var=$(echo "$crate" | tr 'a-z-' 'A-Z_')_BIN
  # No backtrace: the log's tail (what tests/run prints on failure) is then the panic message.
  env "$var=$rel/bootstrap" RUST_BACKTRACE=0 cargo test --locked -q -p "$crate" --test lambda -- --nocapture --test-threads 1 >"$4" 2>&1
  rc=$?
  grep -oE 'LAMBDA_FIGURES.*' "$4"
  return $rc
}
