#!/usr/bin/env bash
# Builds the Debian package target/debian/mape_<version>_<arch>.deb: the release binary,
# then the pages and completions it generates (mape manpage --dir, mape completions), the
# unit dist/mape.service, and `cargo deb --no-build` (cargo-deb metadata in
# crates/mape/Cargo.toml; the binary stripped). Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p mape
mape="$target/release/mape"
assets="$target/release/deb-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$mape" manpage --dir "$assets/man" >/dev/null
gzip -9n "$assets"/man/*   # Debian policy 12.1: man pages compressed
"$mape" completions bash >"$assets/completions/mape"
"$mape" completions zsh >"$assets/completions/_mape"
"$mape" completions fish >"$assets/completions/mape.fish"
mkdir -p "$target/debian"
cargo deb -p mape --no-build --locked --strip --output "$target/debian/" | tail -n 1
