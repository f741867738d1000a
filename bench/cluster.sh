#!/usr/bin/env bash
# Three tessera nodes behind nginx (deploy/nginx/round-robin.conf as shipped)
# against one node alone, sharing one Redis, measured in one run on loopback
# with wrk: GET /profile with a Redis-backed cookie session, and GET /health
# (no store) so that the balancer's own cost is visible. Rounds alternate the
# one-node and the three-node figures; then the same with each node's
# near-cache (TESSERA_REDIS_NEAR_CACHE).
#
#   bench/cluster.sh
#
# On a machine with few cores wrk, nginx, Redis and the nodes share them, so
# the ratio mostly shows what the extra hop costs, not what scaling out gains.
#
# Environment: DURATION (default 10s), CONNECTIONS (64), ROUNDS (2), NODES (3),
# NEAR_CACHE (100000; 0 skips the near-cache part), TESSERA_REDIS_URL (default:
# a throwaway redis-server on a free port; with a URL the keys go under a
# prefix of their own, deleted at exit).
# Needs wrk, nginx and redis-server (apt-get install -y wrk nginx-light redis-server).
# Starts and stops everything it uses.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
NODES=${NODES:-3}
NEAR_CACHE=${NEAR_CACHE:-100000}
[ $# -eq 0 ] || { echo "usage: bench/cluster.sh (settings in the environment)" >&2; exit 2; }

for tool in wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install -y wrk nginx-light)" >&2; exit 1; }
done
if [ -z "${TESSERA_REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed (or set TESSERA_REDIS_URL)" >&2; exit 1; }
fi
cargo build --release -q -p tessera
BIN=$PWD/target/release/tessera
CONF=$PWD/deploy/nginx/round-robin.conf

WORK=$(mktemp -d)
REDIS_PID=""
NGINX_PID=""
NODE_PIDS=()
NODE_PORTS=()
EXTERNAL_REDIS=0
export TESSERA_REDIS_PREFIX="tessera-bench-cluster-$$"

stop_pid() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup() {
  set +e
  [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID"
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  if [ "$EXTERNAL_REDIS" = 1 ]; then
    # Only this run's keys.
    command -v redis-cli >/dev/null && redis-cli -u "$TESSERA_REDIS_URL" EVAL \
      "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "$TESSERA_REDIS_PREFIX:*" >/dev/null 2>&1
  fi
  [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url log pid
  for _ in $(seq 100); do
    curl -fs "$1" >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "no answer from $1" >&2; cat "$2" >&2; exit 1
}

# --- Redis -------------------------------------------------------------------
if [ -n "${TESSERA_REDIS_URL:-}" ]; then
  EXTERNAL_REDIS=1
  REDIS_LABEL="$TESSERA_REDIS_URL (prefix $TESSERA_REDIS_PREFIX)"
else
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  export TESSERA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis.log" >&2; exit 1; }
    sleep 0.1
  done
  REDIS_LABEL="throwaway redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on :$REDIS_PORT"
fi

# --- one data directory, one user (users stay in its SQLite) -----------------
PASSWORD="correct horse battery staple"
DATA="$WORK/data"
mkdir -p "$DATA"
echo "$PASSWORD" | "$BIN" user add bench@example.com --password-stdin --data-dir "$DATA" >/dev/null

# --- nodes and nginx ---------------------------------------------------------
start_nodes() { # (inherits TESSERA_REDIS_NEAR_CACHE from the caller)
  NODE_PIDS=(); NODE_PORTS=()
  local i port
  # One after the other: the first creates the keys in the data directory.
  for i in $(seq "$NODES"); do
    port=$(free_port)
    TESSERA_STORE=redis TESSERA_LOG=warn TESSERA_TRUSTED_PROXIES=127.0.0.1/32 \
      "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$DATA" 2>"$WORK/node$i.log" &
    NODE_PIDS+=($!); NODE_PORTS+=("$port")
    wait_http "http://127.0.0.1:$port/health" "$WORK/node$i.log" "$!"
  done
}

stop_nodes() {
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  NODE_PIDS=(); NODE_PORTS=()
}

# The shipped configuration with only the lines marked LISTEN and NODE
# rewritten, as the lab does (src/bin/tessera/lab/balancer.rs): the listen
# address, and the first NODE line once per node (the others dropped).
render_conf() { # listen_port node_port...
  local listen=$1; shift
  awk -v listen="127.0.0.1:$listen" -v nodes="$*" '
    function swap(line, directive, addr,   n, w, i, old) {
      n = split(line, w, /[ \t]+/)
      for (i = 1; i < n; i++) if (w[i] == directive) { old = w[i + 1]; sub(/;$/, "", old); break }
      if (old == "") { print "no " directive " in: " line > "/dev/stderr"; exit 1 }
      i = index(line, old)
      return substr(line, 1, i - 1) addr substr(line, i + length(old))
    }
    /^[ \t]*#/ { print; next }
    /# LISTEN/ { print swap($0, "listen", listen); listens++; next }
    /# NODE/ {
      if (!seen++) { k = split(nodes, p, " "); for (j = 1; j <= k; j++) print swap($0, "server", "127.0.0.1:" p[j]) }
      next
    }
    { print }
    END { if (listens != 1 || !seen) { print "no LISTEN or NODE line" > "/dev/stderr"; exit 1 } }
  ' "$CONF"
}

NGINX_PORT=""
start_nginx() {
  NGINX_PORT=$(free_port)
  local prefix="$WORK/nginx"
  rm -rf "$prefix"; mkdir -p "$prefix/tmp"
  render_conf "$NGINX_PORT" "${NODE_PORTS[@]}" >"$prefix/nginx.conf"
  # In the foreground of its own process (killed at exit), its error log in the prefix.
  nginx -e "$prefix/stderr.log" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' \
    >"$prefix/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_http "http://127.0.0.1:$NGINX_PORT/health" "$prefix/stderr.log" "$NGINX_PID"
}

stop_nginx() {
  stop_pid "$NGINX_PID"; NGINX_PID=""
}

# --- measuring ----------------------------------------------------------------
DIRECT() { echo "http://127.0.0.1:${NODE_PORTS[0]}"; }
LB() { echo "http://127.0.0.1:$NGINX_PORT"; }

login() { # base_url
  curl -fs -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$1/login" \
    | sed -n 's/^set-cookie: \(__Host-tessera=[^;]*\).*/\1/Ip' | tr -d '\r'
}

# Every node answers /profile through nginx with this cookie, and nothing else.
check_spread() { # cookie
  local out nodes
  out=$(for _ in $(seq $((NODES * 10))); do
    curl -s -o /dev/null -w '%{http_code} %header{x-tessera-node}\n' -H "Cookie: $1" "$(LB)/profile"
  done)
  if echo "$out" | grep -qv '^200 '; then
    echo "/profile through nginx did not always answer 200:" >&2; echo "$out" | sort | uniq -c >&2; exit 1
  fi
  nodes=$(echo "$out" | awk '{print $2}' | sort -u | wc -l)
  [ "$nodes" = "$NODES" ] || { echo "nginx reached $nodes of $NODES nodes" >&2; exit 1; }
}

# "req/s p99" of one wrk run; fails on any non-2xx answer.
rps() { # url [cookie]
  local args=(-t1 -c"$CONNECTIONS" -d"$DURATION" --latency) out
  [ -n "${2:-}" ] && args+=(-H "Cookie: $2")
  out=$(wrk "${args[@]}" "$1")
  if echo "$out" | grep -q -e 'Non-2xx' -e 'Socket errors'; then
    echo "wrk $1:" >&2; echo "$out" >&2; exit 1
  fi
  echo "$out" | awk '/Requests\/sec/ {r=$2} /^ +99%/ {p=$2} END {print r, p}'
}

cpu_ticks() { # pid...  (utime + stime, in clock ticks)
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

nginx_pids() { echo "$NGINX_PID $(ps -o pid= --ppid "$NGINX_PID" | tr '\n' ' ')"; }

declare -A SUM
row() { # label round what req/s p99
  printf '%-17s round %s  %-24s %9.0f req/s   p99 %8s\n' "$1" "$2" "$3" "$4" "$5"
  SUM["$1|$3"]=$(python3 -c "print(${SUM["$1|$3"]:-0} + $4)")
}

ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }

measure() { # label cookie
  local label=$1 cookie=$2 round r1 rn p1 pn cpu0 cpu1 i hz
  local out
  local -a before=() after=() pids=()
  pids=("${NODE_PIDS[@]}" $(nginx_pids))
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  for round in $(seq "$ROUNDS"); do
    out=$(rps "$(DIRECT)/health"); read -r r1 p1 <<<"$out"
    row "$label" "$round" "/health  1 node" "$r1" "$p1"
    out=$(rps "$(LB)/health"); read -r rn pn <<<"$out"
    row "$label" "$round" "/health  nginx -> $NODES nodes" "$rn" "$pn"
    printf '%-17s round %s  %-24s %9s   (nginx -> %s nodes / 1 node)\n' "$label" "$round" "/health ratio" "$(ratio "$rn" "$r1")" "$NODES"
    out=$(rps "$(DIRECT)/profile" "$cookie"); read -r r1 p1 <<<"$out"
    row "$label" "$round" "/profile 1 node" "$r1" "$p1"
    out=$(rps "$(LB)/profile" "$cookie"); read -r rn pn <<<"$out"
    row "$label" "$round" "/profile nginx -> $NODES nodes" "$rn" "$pn"
    printf '%-17s round %s  %-24s %9s   (nginx -> %s nodes / 1 node)\n' "$label" "$round" "/profile ratio" "$(ratio "$rn" "$r1")" "$NODES"
  done
  for pid in "${pids[@]}"; do after+=("$(cpu_ticks "$pid")"); done
  hz=$(getconf CLK_TCK)
  local line="  CPU seconds over the $label runs:"
  for i in $(seq 0 $((NODES - 1))); do
    line+=" node$((i + 1)) $(python3 -c "print(f'{(${after[i]} - ${before[i]}) / $hz:.1f}')")"
  done
  cpu0=0; cpu1=0
  for i in $(seq "$NODES" $((${#pids[@]} - 1))); do cpu0=$((cpu0 + before[i])); cpu1=$((cpu1 + after[i])); done
  line+=" nginx $(python3 -c "print(f'{($cpu1 - $cpu0) / $hz:.1f}')")"
  echo "$line"
}

summary() { # label
  local h1=${SUM["$1|/health  1 node"]} hn=${SUM["$1|/health  nginx -> $NODES nodes"]}
  local p1=${SUM["$1|/profile 1 node"]} pn=${SUM["$1|/profile nginx -> $NODES nodes"]}
  echo "$1: nginx -> $NODES nodes over 1 node (mean of $ROUNDS rounds): /profile $(ratio "$pn" "$p1")   /health $(ratio "$hn" "$h1")   (/profile is $(python3 -c "print(f'{$p1/$h1*100:.0f}%')") of /health on 1 node, $(python3 -c "print(f'{$pn/$hn*100:.0f}%')") through nginx)"
}

echo "# tessera $(git describe --always --dirty 2>/dev/null || echo '?')  wrk -t1 -c$CONNECTIONS -d$DURATION  $(nproc) cores  $NODES nodes  $(nginx -v 2>&1 | sed 's/.*version: //') (worker_processes 1, keepalive 64)  $REDIS_LABEL"

LABELS=("redis")
[ "$NEAR_CACHE" != 0 ] && LABELS+=("redis+near-cache")
cookie=""
for label in "${LABELS[@]}"; do
  if [ "$label" = redis ]; then
    export TESSERA_REDIS_NEAR_CACHE=0
  else
    export TESSERA_REDIS_NEAR_CACHE=$NEAR_CACHE
  fi
  start_nodes
  start_nginx
  # One login through nginx; the session lives in Redis and outlives the nodes.
  [ -n "$cookie" ] || cookie=$(login "$(LB)")
  [ -n "$cookie" ] || { echo "login through nginx failed" >&2; exit 1; }
  check_spread "$cookie"
  measure "$label" "$cookie"
  stop_nginx
  stop_nodes
done
for label in "${LABELS[@]}"; do summary "$label"; done
