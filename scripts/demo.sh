#!/usr/bin/env bash
# The main job for a new user: set up, build, and show what mape is for.
#   1. the MAP-E parameters of a published v6plus example line (mape calc)
#   2. the seed incident replayed under three NAT policies (mape replay --scenario flow-storm)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== cargo build --release"
cargo build --release --locked -p mape
mape=target/release/mape
echo
echo "== mape calc --prefix 240b:13:1a65:a100::/56 --profile v6plus"
"$mape" calc --prefix 240b:13:1a65:a100::/56 --profile v6plus
echo
if "$mape" replay --help >/dev/null 2>&1; then
  echo "== mape replay --scenario flow-storm   (1 hour, 240 ports, the incident's traffic)"
  "$mape" replay --scenario flow-storm --plot target/flow-storm.svg
  echo
  echo "plot of ports in use over time: target/flow-storm.svg"
fi
