#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 60) on the stable toolchain.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets stable accept them.
#   scripts/fuzz.sh 600            ten minutes per target
#   scripts/fuzz.sh 60 wire_ipv4   one target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"; shift || true
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || true
for t in "${targets[@]}"; do
  echo "-- fuzz $t for ${secs}s"
  mkdir -p "corpus/$t"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==|SUMMARY|thread)" || true
  # a crash makes cargo fuzz exit non-zero; re-check by listing artifacts
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null; then
    echo "fuzz target $t found a failure:"; ls "artifacts/$t"; exit 1
  fi
done
