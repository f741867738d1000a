#!/usr/bin/env bash
# How long a Sentinel failover interrupts tessera: runs the failover test
# (crates/tessera/tests/api/redis_sentinel.rs: a primary, a replica, three
# sentinels with down-after-milliseconds 1000, six clients logging in,
# reading /profile and logging out; the primary SIGKILLed after 3 s) RUNS
# times and prints, per run and as min / median / max, the time from the
# kill to the promotion and to the first successful login.
#
#   bench/failover.sh            # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for run in $(seq "$RUNS"); do
  cargo nextest run -p tessera --test api --no-capture \
    -E 'test(=redis_sentinel::service_resumes_by_itself_after_the_primary_is_killed_under_load)' 2>&1 \
    | grep '^primary promoted after' | tee -a "$OUT"
done
python3 - "$OUT" <<'EOF'
import re, statistics, sys
def secs(s):
    m = re.match(r"([\d.]+)(ms|s|µs)", s)
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "ms" else v / 1e6 if m.group(2) == "µs" else v
rows = [re.findall(r"after ([\d.]+(?:ms|µs|s))", l) for l in open(sys.argv[1])]
for i, name in enumerate(["promotion", "first login", "first /profile"]):
    v = sorted(secs(r[i]) for r in rows)
    print(f"{name:15} runs {len(v)}  min {v[0]:.2f} s  median {statistics.median(v):.2f} s  max {v[-1]:.2f} s")
EOF
