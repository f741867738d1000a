#!/usr/bin/env bash
# GET /profile with the session store on Redis over TLS against plain Redis,
# in one run: two throwaway redis-servers started alike (one --tls-port with a
# test CA made here with openssl, one plain), the release binary on each in
# turn, rounds alternating.
#
#   bench/redis_tls.sh
#
# Environment: DURATION (default 10s), CONNECTIONS (64), ROUNDS (3),
# NEAR (0: every /profile reads Redis), BIN. Needs wrk, redis-server, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-3}
NEAR=${NEAR:-0}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
# BIN=path skips the build (a release binary built already).
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q -p tessera --bin tessera
  BIN=target/release/tessera
fi

WORK=$(mktemp -d)
PIDS=()
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The test CA and the server's certificate (P-256, for 127.0.0.1).
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 1 -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
  -subj /CN=redis 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 \
  -extfile ext 2>/dev/null
cd - >/dev/null

PLAIN=$(free_port); TLS=$(free_port)
redis-server --port "$PLAIN" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
PIDS+=($!)
redis-server --port 0 --tls-port "$TLS" --bind 127.0.0.1 --save "" --appendonly no \
  --tls-cert-file "$WORK/server.pem" --tls-key-file "$WORK/server.key" \
  --tls-ca-cert-file "$WORK/ca.pem" --tls-auth-clients no >/dev/null &
PIDS+=($!)
sleep 0.5

PASSWORD="correct horse battery staple"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
DATA="$WORK/data"
mkdir -p "$DATA"
echo "$PASSWORD" | "$BIN" user add bench@example.com --password-stdin --data-dir "$DATA" >/dev/null

start_server() { # redis_url [extra env...]
  local url=$1; shift
  env TESSERA_LOG=warn TESSERA_STORE=redis TESSERA_REDIS_URL="$url" TESSERA_REDIS_NEAR_CACHE="$NEAR" \
    TESSERA_REDIS_PREFIX="bench-$$" "$@" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fs "$URL/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$WORK/server.log" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
login() {
  curl -fs -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$URL/login" \
    | sed -n 's/^set-cookie: \(__Host-tessera=[^;]*\).*/\1/Ip' | tr -d '\r'
}
rps() { # cookie
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Cookie: $1" "$URL/profile" \
    | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "NON2XX " $0 > "/dev/stderr"}'
}

echo "# tessera $(git rev-parse --short HEAD 2>/dev/null || echo '?')  wrk -t1 -c$CONNECTIONS -d$DURATION  near-cache $NEAR  $(nproc) cores"
measure_plain() { start_server "redis://127.0.0.1:$PLAIN"; plain=$(rps "$(login)"); stop_server; }
measure_tls() {
  start_server "rediss://127.0.0.1:$TLS" TESSERA_REDIS_TLS_CA="$WORK/ca.pem"
  tls=$(rps "$(login)"); stop_server
}
for round in $(seq "$ROUNDS"); do
  # Alternate which goes first, so that drift on a shared machine does not
  # favour one.
  if [ $((round % 2)) = 1 ]; then measure_plain; measure_tls; else measure_tls; measure_plain; fi
  printf 'round %s  /profile plain Redis %10.0f req/s   Redis over TLS %10.0f req/s   TLS/plain %s\n' \
    "$round" "$plain" "$tls" "$(python3 -c "print(f'{$tls/$plain*100:.1f}%')")"
done
