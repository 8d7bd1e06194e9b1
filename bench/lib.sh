# Shared by the benchmark scripts (sourced after `cd` to the repository root): pinned tools, the
# build, and the servers under test, all on loopback. Sets ROOT, CACHE, OUT, WORK; every process
# started here is stopped on exit (bench_cleanup is the EXIT trap).
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${BUTTERFLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/butterfly}
OUT=$ROOT/test-artifacts/bench
mkdir -p "$OUT" "$CACHE"
WORK=$(mktemp -d)
BENCH_PIDS=""
source infra/emulators.sh   # free_port, wait_for_port, DynamoDB Local and moto
source infra/tools.sh       # venv

bench_cleanup() { # keeps the script's own exit status (a killed server's status is not a failure)
  local rc=$?
  set +e
  for p in $BENCH_PIDS; do kill "$p" 2>/dev/null; done
  for p in $BENCH_PIDS; do wait "$p" 2>/dev/null; done
  stop_emulators >/dev/null 2>&1
  rm -rf "$WORK"
  exit $rc
}
trap bench_cleanup EXIT

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# bench_build PROFILE (debug or perf) → BIN: the butterfly binary and the load generator.
bench_build() {
  local flag=()
  [ "$1" = perf ] && flag=(--profile perf)
  cargo build --locked -q "${flag[@]}" -p butterfly -p butterfly-bench || return 1
  BIN=$CARGO_TARGET_DIR/$1
}

# bench_emulators → DynamoDB Local and moto (pinned as in tests/run), endpoints exported.
bench_emulators() {
  local aws_venv
  aws_venv=$(venv aws infra/requirements-aws.txt infra/constraints-aws.txt moto_server) || return 1
  dynamodb_local_install "$CACHE" || return 1
  start_dynamodb_local "$WORK" >&2 || return 1
  start_moto "$aws_venv" "$WORK" >&2 || return 1
}

# bf_cmd KIND → BF_CMD: the butterfly command line for the embedded store or for a fresh DynamoDB
# table (BENCH_TABLE) on the emulators.
bf_cmd() {
  if [ "$1" = embedded ]; then
    BF_CMD=("$BIN/butterfly" --data-dir "$WORK/bf")
  else
    BF_CMD=(env "AWS_ENDPOINT_URL_DYNAMODB=$BUTTERFLY_DYNAMODB_ENDPOINT"
      "AWS_ENDPOINT_URL_SECRETS_MANAGER=$BUTTERFLY_SECRETSMANAGER_ENDPOINT"
      AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
      "$BIN/butterfly" --store dynamodb --table "$BENCH_TABLE" --secrets-prefix "$BENCH_TABLE")
  fi
}

# start_butterfly KIND (embedded | dynamodb) → BF_BASE, BF_TOKEN, BF_PID: the local stack over
# a fresh store with one tenant and its SCIM token. dynamodb needs bench_emulators first.
start_butterfly() {
  local kind=$1 port tenant extra=()
  BENCH_TABLE=bench-$$-$RANDOM
  rm -rf "$WORK/bf"
  bf_cmd "$kind"
  if [ "$kind" = dynamodb ]; then
    "${BF_CMD[@]}" table create >/dev/null || return 1
    curl -fsS -X POST "$BUTTERFLY_SECRETSMANAGER_ENDPOINT/" -H 'X-Amz-Target: secretsmanager.CreateSecret' \
      -H 'Content-Type: application/x-amz-json-1.1' \
      -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00' \
      -d "{\"Name\":\"$BENCH_TABLE/cursor-key\",\"SecretString\":\"$(python3 -c 'import secrets; print(secrets.token_hex(32))')\"}" \
      >/dev/null || return 1
    extra=(--cursor-key-secret-id "$BENCH_TABLE/cursor-key")
  fi
  tenant=$("${BF_CMD[@]}" tenant create --name bench --json | json_field tenant_id) || return 1
  BF_TOKEN=$("${BF_CMD[@]}" scim-token issue --tenant "$tenant" --json | json_field token) || return 1
  port=$(free_port)
  # The per-tenant SCIM limit (1,200 a minute by default) is raised past any rate a run can
  # reach (a million a minute was passed on two cores): the load generator plays an Okta far
  # busier than any real one, and the peer has no limit. The limit's own cost (a lease round
  # trip per 50 requests) stays in the measured path.
  # The stack logs as it does by default (info: one line per request, with its request id), so
  # the request log is in the measured path; the log stays in WORK (its tail is kept in OUT).
  BF_LOG=$WORK/butterfly-$kind.log
  env -u BUTTERFLY_LOG "${BF_CMD[@]}" serve --addr "127.0.0.1:$port" --no-demo "${extra[@]}" \
    --scim-rate-limit-per-minute 100000000 --anonymous-limit-per-minute 1000000 >"$BF_LOG" 2>&1 &
  BF_PID=$!
  BENCH_PIDS="$BENCH_PIDS $BF_PID"
  wait_for_port "$port" 60 || { echo "butterfly ($kind) did not start" >&2; cat "$BF_LOG" >&2; return 1; }
  BF_BASE=http://127.0.0.1:$port/scim/v2
}

stop_pid() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

# stop_butterfly: stops the stack start_butterfly started and keeps the last lines of its log in
# OUT, with how many lines it wrote (a request log line per request is the default).
stop_butterfly() {
  stop_pid "$BF_PID"
  { echo "# $(wc -l <"$BF_LOG") lines; the last 50:"; tail -n 50 "$BF_LOG"; } >"$OUT/$(basename "$BF_LOG")"
}

# start_peer → PEER_BASE, PEER_TOKEN, PEER_PID: scim2-server (pinned), Users-only, request log off.
start_peer() {
  local venv_dir port
  venv_dir=$(venv bench bench/requirements.txt /dev/null scim2-server) || return 1
  "$venv_dir/bin/python" bench/scim2_server_users_only.py "$WORK/peer" || return 1
  PEER_TOKEN=bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
  port=$(free_port)
  "$venv_dir/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$PEER_TOKEN" \
    --schema "$WORK/peer/schemas.json" --resource-type "$WORK/peer/resource-types.json" \
    --service-provider-config "$WORK/peer/spc.json" >"$OUT/scim2-server.log" 2>&1 &
  PEER_PID=$!
  BENCH_PIDS="$BENCH_PIDS $PEER_PID"
  wait_for_port "$port" 60 || { echo "scim2-server did not start" >&2; cat "$OUT/scim2-server.log" >&2; return 1; }
  PEER_BASE=http://127.0.0.1:$port/v2
}

# start_bare BODY_FILE → BARE_BASE, BARE_PID: crates/bench's bare axum server answering lookups with BODY_FILE.
start_bare() {
  local port
  port=$(free_port)
  "$BIN/bare" --addr "127.0.0.1:$port" --body-file "$1" >"$OUT/bare.log" 2>&1 &
  BARE_PID=$!
  BENCH_PIDS="$BENCH_PIDS $BARE_PID"
  wait_for_port "$port" 60 || { echo "the bare server did not start" >&2; cat "$OUT/bare.log" >&2; return 1; }
  BARE_BASE=http://127.0.0.1:$port/scim/v2
}

# machine → one line describing where the figures were taken.
machine() {
  echo "$(nproc) vCPUs $(uname -m), $(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), $(rustc --version | cut -d' ' -f1-2), $(date -u +%Y-%m-%d)"
}
