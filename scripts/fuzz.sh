#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 60) on the stable toolchain.
# cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
#   scripts/fuzz.sh 600              ten minutes per target
#   scripts/fuzz.sh 60 wire_ipv4     one target
# Exits non-zero when a target fails to build or finds a crash (artifacts/ keeps the input).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"; shift || true
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="logs/$t.log"
  if cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
       -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz $t: ${secs}s, $runs runs, no failure"
  else
    echo "fuzz $t FAILED (log: fuzz/$log):"; tail -40 "$log"; exit 1
  fi
done
