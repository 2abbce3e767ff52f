#!/usr/bin/env bash
# Installs from a checkout (root): the release binary in /usr/local/bin, the manual
# (mape(8), mape-<command>(8), mape.toml(5)), bash/zsh/fish completions, the example
# configuration and the systemd unit (pointed at /usr/local/bin/mape). Used by
# scripts/demo.sh; safe to re-run. The Debian package is scripts/build-deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mape=target/release/mape
[ -x "$mape" ] || cargo build --release --locked -p mape
install -m 0755 "$mape" /usr/local/bin/mape
mkdir -p /usr/share/bash-completion/completions /usr/local/share/zsh/site-functions \
    /usr/local/share/fish/vendor_completions.d /usr/local/share/man/man8 \
    /usr/local/share/man/man5 /etc/mape
/usr/local/bin/mape completions bash > /usr/share/bash-completion/completions/mape
/usr/local/bin/mape completions zsh > /usr/local/share/zsh/site-functions/_mape
/usr/local/bin/mape completions fish > /usr/local/share/fish/vendor_completions.d/mape.fish
man=$(mktemp -d)
trap 'rm -rf "$man"' EXIT
/usr/local/bin/mape manpage --dir "$man" >/dev/null
install -m 0644 "$man"/*.8 /usr/local/share/man/man8/
install -m 0644 "$man"/*.5 /usr/local/share/man/man5/
[ -f /etc/mape/mape.toml ] || install -m 0644 dist/mape.toml /etc/mape/mape.toml.example
if [ -d /etc/systemd/system ]; then
    sed 's#/usr/bin/mape#/usr/local/bin/mape#g' dist/mape.service > /etc/systemd/system/mape.service
fi
echo "installed: /usr/local/bin/mape, completions (bash, zsh, fish), man pages (man 8 mape, man 5 mape.toml), /etc/mape/mape.toml.example, mape.service"
