#!/usr/bin/env bash
# Throughput of GET /profile (session cookie) against the GET /health
# baseline, measured in one run on loopback with wrk.
#
#   bench/profile.sh                  # sqlite and memory stores
#   bench/profile.sh --store sqlite   # one store (sqlite, memory or redis)
#                                     # redis: TESSERA_REDIS_URL, default 127.0.0.1:6379
#   bench/profile.sh --scale          # also: 1,000 vs 1,000,000 live sessions (sqlite)
#   bench/profile.sh --tokens         # also: /profile with a Bearer token, 100,000 revocations loaded
#   bench/profile.sh --baseline OLD   # before/after: the same rounds with the binary OLD (e.g. a
#                                     # release build of an earlier commit) and this tree's, alternating
#   bench/profile.sh --tls            # instead: the HTTPS listener (tls_cert, tls_key; a CA made here)
#                                     # against plain HTTP, same data, servers alternating per round;
#                                     # kept-alive connections, then a new connection per request
#   bench/profile.sh --observe        # only: metrics (metrics_listen, scraped every second) and the
#                                     # JSON access log (to a file) on, against both off, interleaved;
#                                     # also the server's CPU time per request (from /proc), floor's too
#   bench/profile.sh --otlp           # only: spans exported over OTLP (otlp_endpoint, to a receiver
#                                     # started here that answers 200) at otlp_sample_ratio 1 and
#                                     # 0.01, against no tracing, interleaved
#
# Every run also measures the floor: a bare axum app (crates/tessera-bench-floor)
# answering GET /health with {"status":"ok"}, and gives figures as a ratio of it.
#
# Environment: DURATION (default 10s), CONNECTIONS (64), ROUNDS (2), SCALE_COUNT (1000000).
# Needs wrk (apt-get install -y wrk) and, for --tls, openssl. Starts and stops everything it uses.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
SCALE_COUNT=${SCALE_COUNT:-1000000}
STORES="sqlite memory"
SCALE=0
TOKENS=0
BASELINE=""
TLS=0
OBSERVE=0
OTLP=0

while [ $# -gt 0 ]; do
  case "$1" in
    --store) STORES="$2"; shift 2 ;;
    --scale) SCALE=1; shift ;;
    --tokens) TOKENS=1; shift ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --tls) TLS=1; shift ;;
    --observe) OBSERVE=1; shift ;;
    --otlp) OTLP=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
cargo build --release --locked -q -p tessera -p tessera-store --examples --bins
# The floor on its own: built with the others, its axum features (the
# defaults) would be unified into tessera's too.
cargo build --release --locked -q -p tessera-bench-floor
BIN=target/release/tessera
FLOOR_BIN=target/release/tessera-bench-floor
SEED=target/release/examples/seed_sessions

WORK=$(mktemp -d)
SERVER_PID=""
SCRAPER_PID=""
cleanup() {
  [ -n "$SCRAPER_PID" ] && kill "$SCRAPER_PID" 2>/dev/null
  [ -n "${FLOOR_PID:-}" ] && kill "$FLOOR_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
# Keys of a Redis-backed run go under a prefix of their own, removed at exit.
export TESSERA_REDIS_PREFIX="tessera-bench-$$"
cleanup_redis() {
  command -v redis-cli >/dev/null && redis-cli -u "${TESSERA_REDIS_URL:-redis://127.0.0.1:6379}" EVAL \
    "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "$TESSERA_REDIS_PREFIX:*" >/dev/null 2>&1 || true
}
trap 'cleanup; cleanup_redis' EXIT

PASSWORD="correct horse battery staple"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
# What wrk connects to (the same as URL but for --tls), and curl's extra options.
WRK_URL=$URL
CURL_OPTS=()

start_server() { # store data_dir   (inherits TESSERA_* from the caller; BENCH_LOG: the log filter)
  TESSERA_LOG=${BENCH_LOG:-warn} "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$2" --store "$1" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fs "${CURL_OPTS[@]}" "$URL/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$WORK/server.log" >&2; exit 1
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

login() {
  curl -fs "${CURL_OPTS[@]}" -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$URL/login" \
    | sed -n 's/^set-cookie: \(__Host-tessera=[^;]*\).*/\1/Ip' | tr -d '\r'
}

rps() { # path [header...]   (a header without ':' is taken as a cookie)
  local args=(-t1 -c"$CONNECTIONS" -d"$DURATION" --latency) header
  for header in "${@:2}"; do
    case "$header" in
      "") ;;
      *:*) args+=(-H "$header") ;;
      *) args+=(-H "Cookie: $header") ;;
    esac
  done
  wrk "${args[@]}" "$WRK_URL$1" | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "NON2XX " $0 > "/dev/stderr"}'
}

# The floor: the bare axum app, started once on a port of its own (idle
# while tessera is measured).
FLOOR_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" 2>/dev/null &
FLOOR_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FLOOR_PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
floor_rps() { WRK_URL="http://127.0.0.1:$FLOOR_PORT" rps /health; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# "RPS CPU_US": rps of `rps ARGS...`, and the CPU time process PID spent
# per request meanwhile, in microseconds (steadier than requests per second
# on a shared machine: it does not count what wrk or others take).
rps_cpu() { # pid path [header...]
  local pid=$1 before after r
  before=$(cpu_ticks "$pid")
  r=$(rps "${@:2}")
  after=$(cpu_ticks "$pid")
  python3 -c "
r=$r; ticks=$after-$before; hz=$(getconf CLK_TCK); secs=float('${DURATION%s}')
print(f'{r} {ticks/hz*1e6/(r*secs):.2f}')"
}

ratio() { python3 -c "print(f'{$1/$2*100:.1f}%')"; }

measure() { # label cookie -> prints rows, alternating baseline and target
  local label=$1 cookie=$2 f h p
  for round in $(seq "$ROUNDS"); do
    f=$(floor_rps)
    h=$(rps /health)
    p=$(rps /profile "$cookie")
    printf '%-28s round %s  floor %8.0f  /health %8.0f (%s of floor)  /profile %8.0f (%s of /health, %s of floor)\n' \
      "$label" "$round" "$f" "$h" "$(ratio "$h" "$f")" "$p" "$(ratio "$p" "$h")" "$(ratio "$p" "$f")"
  done
}

access_token() {
  curl -fs "${CURL_OPTS[@]}" -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$URL/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

new_data_dir() {
  local dir="$WORK/data-$1"
  mkdir -p "$dir"
  echo "$PASSWORD" | "$BIN" user add bench@example.com --password-stdin --data-dir "$dir" >/dev/null
  echo "$dir"
}

echo "# tessera $(git rev-parse --short HEAD 2>/dev/null || echo '?')  wrk -t1 -c$CONNECTIONS -d$DURATION  $(nproc) cores"

if [ "$TLS" = 1 ]; then
  # The HTTPS listener against plain HTTP: one data directory, the two
  # servers alternating per round, each against its own /health. Kept-alive
  # connections (what a browser or an API client holds), then
  # "Connection: close" (a TLS 1.3 handshake per request: the worst case).
  command -v openssl >/dev/null || { echo "openssl is not installed" >&2; exit 1; }
  (
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.pem -days 2 -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem \
      -out leaf.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 2 \
      -extfile leaf.ext -out cert.pem 2>/dev/null
  )
  dir=$(new_data_dir tls)
  for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
      if [ "$mode" = tls ]; then
        export TESSERA_TLS_CERT="$WORK/cert.pem" TESSERA_TLS_KEY="$WORK/key.pem"
        URL="https://localhost:$PORT"; WRK_URL="https://127.0.0.1:$PORT"
        CURL_OPTS=(--cacert "$WORK/ca.pem" --resolve "localhost:$PORT:127.0.0.1")
      else
        unset TESSERA_TLS_CERT TESSERA_TLS_KEY
        URL="http://127.0.0.1:$PORT"; WRK_URL=$URL; CURL_OPTS=()
      fi
      start_server sqlite "$dir"
      cookie=$(login)
      [ -n "$cookie" ] || { echo "login failed ($mode)" >&2; exit 1; }
      access=$(access_token)
      h=$(rps /health); p=$(rps /profile "$cookie"); b=$(rps /profile "Authorization: Bearer $access")
      n=$(rps /profile "Authorization: Bearer $access" "Connection: close")
      stop_server
      printf 'round %s %-5s  /health %8.0f  cookie /profile %8.0f (%s)  bearer /profile %8.0f (%s)  bearer, new connection each %8.0f\n' \
        "$round" "$mode" "$h" "$p" "$(ratio "$p" "$h")" "$b" "$(ratio "$b" "$h")" "$n"
      if [ "$mode" = plain ]; then ph=$h; pp=$p; pb=$b; pn=$n; else
        printf 'round %s tls/plain  /health %s  cookie /profile %s  bearer /profile %s  new connection each %s\n' \
          "$round" "$(ratio "$h" "$ph")" "$(ratio "$p" "$pp")" "$(ratio "$b" "$pb")" "$(ratio "$n" "$pn")"
      fi
    done
  done
  exit 0
fi

if [ "$OTLP" = 1 ]; then
  # A stand-in collector: reads each export and answers 200.
  OTLP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$OTLP_PORT" &
  SCRAPER_PID=$!
  dir=$(new_data_dir otlp)
  for round in $(seq "$ROUNDS"); do
    f=$(floor_rps)
    printf 'round %s floor                  /health %8.0f\n' "$round" "$f"
    for mode in off 1 0.01; do
      if [ "$mode" = off ]; then
        start_server sqlite "$dir"
      else
        TESSERA_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" TESSERA_OTLP_SAMPLE_RATIO=$mode start_server sqlite "$dir"
      fi
      cookie=$(login)
      [ -n "$cookie" ] || { echo "login failed ($mode)" >&2; exit 1; }
      h=$(rps /health); c=$(rps /profile "$cookie")
      eval "h_${mode//./_}=$h c_${mode//./_}=$c"
      printf 'round %s tessera, otlp %-4s  /health %8.0f (%s of floor)  cookie /profile %8.0f (%s)\n' \
        "$round" "$mode" "$h" "$(ratio "$h" "$f")" "$c" "$(ratio "$c" "$f")"
      stop_server
    done
    printf 'round %s otlp/off:  ratio 1: /health %s  cookie /profile %s   ratio 0.01: /health %s  cookie /profile %s\n' \
      "$round" "$(ratio "$h_1" "$h_off")" "$(ratio "$c_1" "$c_off")" "$(ratio "$h_0_01" "$h_off")" "$(ratio "$c_0_01" "$c_off")"
  done
  exit 0
fi

if [ "$OBSERVE" = 1 ]; then
  # Per round, interleaved: the floor, then tessera (SQLite) with metrics and
  # the JSON access log on, then the same binary with both off. "On":
  # metrics_listen set and scraped every second (as Prometheus would), log
  # filter info (the access log is at info, target tessera::access) in JSON
  # to a file. "Off": no metrics_listen, log filter warn (no access log).
  METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(new_data_dir observe)
  for round in $(seq "$ROUNDS"); do
    read -r f fc < <(WRK_URL="http://127.0.0.1:$FLOOR_PORT" rps_cpu "$FLOOR_PID" /health)
    printf 'round %s floor                /health %8.0f  (server CPU %s us/request)\n' "$round" "$f" "$fc"
    for mode in on off; do
      if [ "$mode" = on ]; then
        BENCH_LOG=info TESSERA_LOG_FORMAT=json TESSERA_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" start_server sqlite "$dir"
        ( while true; do curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null; sleep 1; done ) &
        SCRAPER_PID=$!
      else
        start_server sqlite "$dir"
      fi
      cookie=$(login)
      [ -n "$cookie" ] || { echo "login failed ($mode)" >&2; exit 1; }
      access=$(access_token)
      read -r h hc < <(rps_cpu "$SERVER_PID" /health)
      read -r c cc < <(rps_cpu "$SERVER_PID" /profile "$cookie")
      read -r b bc < <(rps_cpu "$SERVER_PID" /profile "Authorization: Bearer $access")
      eval "h_$mode=$h c_$mode=$c b_$mode=$b"
      printf 'round %s tessera, obs %-3s  /health %8.0f (%s of floor)  cookie /profile %8.0f (%s)  bearer /profile %8.0f (%s)\n' \
        "$round" "$mode" "$h" "$(ratio "$h" "$f")" "$c" "$(ratio "$c" "$f")" "$b" "$(ratio "$b" "$f")"
      printf '        server CPU us/request: /health %s (floor/this %s)  cookie /profile %s (%s)  bearer /profile %s (%s)\n' \
        "$hc" "$(ratio "$fc" "$hc")" "$cc" "$(ratio "$fc" "$cc")" "$bc" "$(ratio "$fc" "$bc")"
      if [ "$mode" = on ]; then
        kill "$SCRAPER_PID" 2>/dev/null; wait "$SCRAPER_PID" 2>/dev/null || true; SCRAPER_PID=""
        lines=$(grep -c '"tessera::access"' "$WORK/server.log" || true)
        echo "  access-log lines written: $lines ($(du -k "$WORK/server.log" | cut -f1) KiB)"
      fi
      stop_server
    done
    printf 'round %s on/off:  /health %s  cookie /profile %s  bearer /profile %s\n' \
      "$round" "$(ratio "$h_on" "$h_off")" "$(ratio "$c_on" "$c_off")" "$(ratio "$b_on" "$b_off")"
  done
  exit 0
fi

if [ -n "$BASELINE" ]; then
  # Before/after in one run: per store and round, the baseline binary then
  # this tree's, each on a data directory it made itself (a newer binary
  # may migrate the schema past what the older one reads), each against its
  # own /health measured right before.
  CURRENT=$BIN
  for store in $STORES; do
    BIN=$BASELINE; baseline_dir=$(new_data_dir "$store-baseline")
    BIN=$CURRENT; current_dir=$(new_data_dir "$store-current")
    near_modes=0; [ "$store" = redis ] && near_modes="0 100000"
    for near in $near_modes; do
      label=$store; [ "$near" != 0 ] && label="redis + near-cache"
      for round in $(seq "$ROUNDS"); do
        for which in baseline current; do
          BIN=$CURRENT; dir=$current_dir
          [ "$which" = baseline ] && { BIN=$BASELINE; dir=$baseline_dir; }
          TESSERA_REDIS_NEAR_CACHE=$near start_server "$store" "$dir"
          cookie=$(login)
          [ -n "$cookie" ] || { echo "login failed ($which)" >&2; exit 1; }
          access=$(access_token)
          f=$(floor_rps); h=$(rps /health); p=$(rps /profile "$cookie"); b=$(rps /profile "Authorization: Bearer $access")
          printf '%-20s round %s %-8s  floor %8.0f  /health %8.0f (%s of floor)  /profile %8.0f (%s)  bearer %8.0f (%s)\n' \
            "$label" "$round" "$which" "$f" "$h" "$(ratio "$h" "$f")" "$p" "$(ratio "$p" "$f")" "$b" "$(ratio "$b" "$f")"
          stop_server
        done
      done
    done
  done
  exit 0
fi

for store in $STORES; do
  dir=$(new_data_dir "$store")
  start_server "$store" "$dir"
  cookie=$(login)
  [ -n "$cookie" ] || { echo "login failed" >&2; exit 1; }
  measure "$store store" "$cookie"
  # JWT routes: verification is local whatever the store (compare stores).
  access=$(access_token)
  for round in $(seq "$ROUNDS"); do
    f=$(floor_rps); h=$(rps /health); b=$(rps /profile "Authorization: Bearer $access")
    printf '%-28s round %s  floor %8.0f  /health %8.0f (%s of floor)  bearer %8.0f (%s of /health, %s of floor)\n' \
      "$store store, JWT" "$round" "$f" "$h" "$(ratio "$h" "$f")" "$b" "$(ratio "$b" "$h")" "$(ratio "$b" "$f")"
  done
  echo "  server RSS after run: $(rss_kib) KiB"
  stop_server
  if [ "$store" = redis ]; then
    # The same with each node's near-cache (invalidated through pub/sub).
    TESSERA_REDIS_NEAR_CACHE=100000 start_server redis "$dir"
    cookie=$(login)
    measure "redis + near-cache" "$cookie"
    stop_server
  fi
done

if [ "$SCALE" = 1 ]; then
  # Same server, same user; only the number of other live sessions changes.
  dir=$(new_data_dir scale)
  "$SEED" "$dir/tessera.db" 1000 >/dev/null
  sqlite3 "$dir/tessera.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  small_bytes=$(stat -c %s "$dir/tessera.db")
  start_server sqlite "$dir"
  cookie=$(login)
  small_h=$(rps /health); small=$(rps /profile "$cookie")
  small_rss=$(rss_kib)
  stop_server
  echo "seeding $SCALE_COUNT more sessions..."
  "$SEED" "$dir/tessera.db" "$SCALE_COUNT" >/dev/null
  sqlite3 "$dir/tessera.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  big_bytes=$(stat -c %s "$dir/tessera.db")
  start_server sqlite "$dir"
  cookie=$(login)
  big_h=$(rps /health); big=$(rps /profile "$cookie")
  big_rss=$(rss_kib)
  stop_server
  printf 'scale 1,001 sessions:   /health %8.0f  /profile %8.0f req/s  (%s of /health)  RSS %s KiB\n' \
    "$small_h" "$small" "$(ratio "$small" "$small_h")" "$small_rss"
  printf 'scale %s sessions: /health %8.0f  /profile %8.0f req/s  (%s of /health)  RSS %s KiB\n' \
    "$SCALE_COUNT" "$big_h" "$big" "$(ratio "$big" "$big_h")" "$big_rss"
  printf 'scale: /profile with %s sessions is %s of the figure with 1,001\n' "$SCALE_COUNT" "$(ratio "$big" "$small")"
  python3 -c "print(f'database bytes per session: {($big_bytes-$small_bytes)/$SCALE_COUNT:.0f} (file {$big_bytes/2**20:.0f} MiB)')"
fi

if [ "$TOKENS" = 1 ]; then
  # Bearer and cookie on the same node, with 100,000 live revocations in the
  # in-memory list (seeded into the store, loaded at start-up).
  dir=$(new_data_dir tokens)
  start_server sqlite "$dir"; stop_server   # creates the schema and keys
  sqlite3 "$dir/tessera.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
    INSERT INTO revocations (kind, subject, cutoff, until, saved)
    SELECT 'token', 'seeded-' || i, 0, 9999999999999, 0 FROM n;"
  start_server sqlite "$dir"
  cookie=$(login)
  access=$(curl -fs -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$URL/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  for round in $(seq "$ROUNDS"); do
    h=$(rps /health); b=$(rps /profile "Authorization: Bearer $access"); c=$(rps /profile "$cookie")
    printf 'tokens round %s  /health %8.0f  bearer /profile %8.0f (%s)  cookie /profile %8.0f (%s)  [100k revocations]\n' \
      "$round" "$h" "$b" "$(ratio "$b" "$h")" "$c" "$(ratio "$c" "$h")"
  done
  echo "  server RSS with 100,000 revocations: $(rss_kib) KiB"
  stop_server
  # The same with sessions sealed in the cookie (no store read at all).
  TESSERA_SESSION_STORAGE=cookie start_server sqlite "$dir"
  sealed=$(login)
  for round in $(seq "$ROUNDS"); do
    h=$(rps /health); c=$(rps /profile "$sealed")
    printf 'sealed-cookie round %s  /health %8.0f  /profile %8.0f (%s)  [100k revocations]\n' "$round" "$h" "$c" "$(ratio "$c" "$h")"
  done
  stop_server
fi
