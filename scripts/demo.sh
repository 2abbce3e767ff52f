#!/usr/bin/env bash
# The main job for a new user: set up, build, and show what mape is for.
#   1. the MAP-E parameters of a published v6plus line (mape calc)
#   2. the seed incident replayed offline under three NAT policies (mape replay)
#   3. the incident live in a namespace lab: real DNS and HTTP clients beside the storm,
#      through mape's CE and BR, under mape's policy and an RTX830-like one (mape lab demo)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== cargo build --release"
cargo build --release --locked -p mape
mape=target/release/mape
if [ "$(id -u)" = 0 ]; then scripts/install.sh; fi
echo
echo "== mape calc --prefix 240b:13:1a65:a100::/56 --profile v6plus"
"$mape" calc --prefix 240b:13:1a65:a100::/56 --profile v6plus
echo
echo "== mape replay --scenario flow-storm   (1 hour, 240 ports, the incident's traffic)"
"$mape" replay --scenario flow-storm --plot target/flow-storm.svg
echo "   plot of ports in use over time: target/flow-storm.svg"
echo
if [ "$(id -u)" = 0 ]; then
  echo "== mape lab demo   (network namespaces; about two minutes)"
  "$mape" lab demo
else
  echo "== skipping 'mape lab demo': it needs root (network namespaces). Run: sudo $mape lab demo"
fi
