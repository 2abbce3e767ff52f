#!/usr/bin/env bash
# Installs the release binary, shell completions, the man page, the example configuration
# and the systemd unit (root). Used by scripts/demo.sh; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
mape=target/release/mape
[ -x "$mape" ] || cargo build --release --locked -p mape
install -m 0755 "$mape" /usr/local/bin/mape
mkdir -p /usr/share/bash-completion/completions /usr/local/share/man/man8 /etc/mape
/usr/local/bin/mape completions bash > /usr/share/bash-completion/completions/mape
/usr/local/bin/mape manpage > /usr/local/share/man/man8/mape.8
[ -f /etc/mape/mape.toml ] || install -m 0644 dist/mape.toml /etc/mape/mape.toml.example
install -m 0644 dist/mape.service /etc/systemd/system/mape.service 2>/dev/null || true
echo "installed: /usr/local/bin/mape, bash completion, man page (man 8 mape), /etc/mape/mape.toml.example, mape.service"
