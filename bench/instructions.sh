#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: the
# floor's GET /health against tessera's /health, bearer /profile and SQLite
# cookie /profile, with metrics and the JSON access log on (as
# `bench/profile.sh --observe` runs them). Unlike requests per second or CPU
# time, the count hardly moves between runs on a shared machine, so a change
# of a few hundred instructions shows; it leaves out the kernel's share
# (about two thirds of a loopback request), which profile.sh measures.
#
#   bench/instructions.sh              # this tree's release build
#   bench/instructions.sh --baseline OLD   # also the binary OLD, same run
#   KEEP=DIR bench/instructions.sh     # keep the callgrind files in DIR
#                                      # (callgrind_annotate them per function)
#
# Each server runs under callgrind; wrk warms it for 3 s, the counters are
# zeroed, wrk runs 8 s more (8 connections) and the counters are dumped.
# Needs valgrind and wrk (apt-get install -y valgrind wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASELINE="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
cargo build --release --locked -q -p tessera
cargo build --release --locked -q -p tessera-bench-floor
BIN=target/release/tessera
FLOOR_BIN=target/release/tessera-bench-floor

WORK=$(mktemp -d)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
PASSWORD="correct horse battery staple"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
credentials() { # url what(cookie|bearer)
  local body="{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}"
  case "$2" in
    cookie) echo "Cookie: $(curl -fs -D - -o /dev/null -H 'content-type: application/json' -d "$body" "$1/login" \
      | sed -n 's/^set-cookie: \(__Host-tessera=[^;]*\).*/\1/Ip' | tr -d '\r')" ;;
    bearer) echo "Authorization: Bearer $(curl -fs -H 'content-type: application/json' -d "$body" "$1/token" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')" ;;
  esac
}

# instructions BIN KIND PATH [AUTH]: prints user-space instructions per request.
# KIND: floor (the bare axum app) or tessera (SQLite, metrics and JSON access log on).
instructions() {
  local bin=$1 kind=$2 path=$3 auth=${4:-} dir port url header="" n total
  dir=$(mktemp -d -p "$WORK")
  port=$(free_port)
  url="http://127.0.0.1:$port"
  local valgrind=(valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" --dump-instr=no)
  if [ "$kind" = floor ]; then
    "${valgrind[@]}" "$bin" "127.0.0.1:$port" 2>"$dir/log" &
  else
    echo "$PASSWORD" | "$bin" user add bench@example.com --password-stdin --data-dir "$dir" >/dev/null
    TESSERA_LOG=info TESSERA_LOG_FORMAT=json TESSERA_METRICS_LISTEN="127.0.0.1:$(free_port)" \
      "${valgrind[@]}" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir" --store sqlite 2>"$dir/log" &
  fi
  PID=$!
  for _ in $(seq 600); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.2; done
  [ -n "$auth" ] && header=$(credentials "$url" "$auth")
  local args=(-t1 -c8)
  [ -n "$header" ] && args+=(-H "$header")
  wrk "${args[@]}" -d3s "$url$path" >/dev/null
  callgrind_control -z "$PID" >/dev/null 2>&1
  n=$(wrk "${args[@]}" -d8s --latency "$url$path" | awk '/requests in/ {print $1} /Non-2xx/ {print "NON2XX " $0 > "/dev/stderr"}')
  callgrind_control -d "$PID" >/dev/null 2>&1
  sleep 1
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  # The dump of the measured run is part 1; its "summary:" line is the total.
  total=$(awk '/^summary:/ {print $2}' "$dir"/callgrind.*.1)
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$dir"/callgrind.*.1 "$KEEP/$(basename "$bin")-$kind${auth:+-$auth}${path//\//_}.callgrind"
  echo $((total / n))
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

echo "# tessera $(git rev-parse --short HEAD 2>/dev/null || echo '?')  user-space instructions per request (callgrind)"
floor=$(instructions "$FLOOR_BIN" floor /health)
echo "floor                /health          $floor"
for bin in $BASELINE $BIN; do
  h=$(instructions "$bin" tessera /health)
  b=$(instructions "$bin" tessera /profile bearer)
  c=$(instructions "$bin" tessera /profile cookie)
  printf '%-20s /health %8s (floor/this %s)  bearer /profile %8s (%s)  cookie /profile %8s (%s)\n' \
    "$(basename "$bin")" "$h" "$(ratio "$floor" "$h")" "$b" "$(ratio "$floor" "$b")" "$c" "$(ratio "$floor" "$c")"
done
