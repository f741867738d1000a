#!/usr/bin/env bash
# Outbox throughput: messages/s from Mail::send through the SQLite outbox
# and the background sender to an aiosmtpd sink (plain SMTP on loopback),
# and /profile latency (in process) idle vs while 1,000 messages drain.
#
#   bench/mail_outbox.sh [--debug] [--messages N] [--pool N] [--batch N]
#
# Builds the mail_throughput example (release unless --debug), starts
# crates/tessera-axum/tests/support/smtp_sink.py on a free port, runs the
# example, and checks that the sink received every message exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=--release
target=release
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=; target=debug; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
messages=1000
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = --messages ]; then messages=${args[$((i + 1))]}; fi
done

cargo build -q $profile -p tessera-axum --example mail_throughput
out=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 crates/tessera-axum/tests/support/smtp_sink.py "$port" "$out/sink" --raw >/dev/null &
sink=$!
trap 'kill $sink 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

"target/$target/examples/mail_throughput" --smtp-port "$port" --messages "$messages" "${args[@]}"

received=$(find "$out/sink" -name '*.eml' | wc -l)
distinct=$(grep -h '^X-Sink-Rcpt-To:' "$out"/sink/*.eml | sort -u | wc -l)
echo "sink received $received messages, $distinct distinct recipients (expected $messages)"
[ "$received" -eq "$messages" ] && [ "$distinct" -eq "$messages" ]
