#!/usr/bin/env bash
# The Debian package in a clean Debian root (issue #16): debootstrap a minimal system of
# the host's release into a directory of this run's own, install the package with dpkg,
# check what a person would (the binary runs and computes the v6plus example, the manual
# and the completions are where man and the shells look, the unit verifies, the user and
# the configuration's owner are right, the unit is enabled but nothing started), then
# purge it and list anything left behind (a failure).
#   scripts/test-deb.sh [PACKAGE.deb]    (root; default: build it with scripts/build-deb.sh)
#   MAPE_DEBROOT_CACHE=FILE              reuse (or create) a tarball of the debootstrap
#                                         download (debootstrap --make-tarball)
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || fail "debootstrap missing (scripts/install-deps.sh)"

deb="${1:-}"
if [ -z "$deb" ]; then
    deb=$(scripts/build-deb.sh | tail -n 1)
fi
[ -f "$deb" ] || fail "no package at $deb"

. /etc/os-release
suite="${VERSION_CODENAME:-bookworm}"
# The host's own Debian mirror (deb822 or one-line sources), else the default one.
mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    head -n 1 | sed 's/^URIs: *//')
[ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null |
    head -n 1 | awk '{print $2}')
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"

root=$(mktemp -d "${TMPDIR:-/var/tmp}/mape-debroot.$$.XXXX")
chmod 0755 "$root"   # a root file system: daemons running as other users (man) read it
cleanup() {
    mountpoint -q "$root/proc" && umount -l "$root/proc"
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT

# man-db (man -w), systemd (systemd-analyze verify); iproute2, procps (kill, for ExecReload=)
# and passwd are the package's dependencies (passwd is required anyway).
include="iproute2,man-db,systemd,procps"
echo "== debootstrap $suite from $mirror into $root"
if [ -n "${MAPE_DEBROOT_CACHE:-}" ] && [ ! -f "$MAPE_DEBROOT_CACHE" ]; then
    debootstrap --variant=minbase --include="$include" --make-tarball="$MAPE_DEBROOT_CACHE" \
        "$suite" "$root/dl" "$mirror" >/dev/null
    rm -rf "$root/dl"
fi
if [ -n "${MAPE_DEBROOT_CACHE:-}" ]; then
    debootstrap --variant=minbase --include="$include" --unpack-tarball="$MAPE_DEBROOT_CACHE" \
        "$suite" "$root" "$mirror" >/dev/null
else
    debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >/dev/null
fi
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

# Everything on the root's file system, except what dpkg and the shells keep as their
# own records of any package (they are expected to change).
files() {
    (cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run \
        -o -path ./tmp -o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache \
        -o -path ./var/lib/apt -o -path ./var/lib/systemd/deb-systemd-helper-enabled \
        -o -path ./var/lib/systemd/deb-systemd-helper-masked -o -path ./etc/.pwd.lock \
        -o -name 'passwd-' -o -name 'group-' -o -name 'shadow-' -o -name 'gshadow-' \
        -o -path ./var/lib/man-db \) -prune -o -print | sort)
}
accounts() { cat "$root/etc/passwd" "$root/etc/group"; }
files >"$root/tmp/before.files"
accounts >"$root/tmp/before.accounts"

echo "== dpkg -i $(basename "$deb")"
cp "$deb" "$root/tmp/mape.deb"
in_root dpkg -i /tmp/mape.deb >/dev/null

echo "== the installed package"
version=$(in_root mape --version)
want="mape $(grep -m1 '^Version:' <(dpkg-deb -f "$deb") | awk '{print $2}' | sed 's/-[0-9]*$//')"
[ "$version" = "$want" ] || fail "mape --version: '$version', want '$want'"
# mape-facts: the v6plus worked example (the same figures as crates/mape/tests/calc.rs).
calc=$(in_root mape calc --profile v6plus --prefix 240b:13:1a65:a100::/56 --json)
python3 - "$calc" <<'EOF' || fail "mape calc in the installed root: $calc"
import json, sys
d = json.loads(sys.argv[1])
assert d["ipv4"] == "14.9.26.101", d["ipv4"]
assert d["psid"] == 161 and d["port_count"] == 240, d
assert d["ce_ipv6"] == "240b:13:1a65:a100:e:91a:6500:a100", d["ce_ipv6"]
EOF
for page in mape mape-calc mape-run mape-show-culprits; do
    where=$(in_root man -w "$page") || fail "man -w $page"
    [ "$where" = "/usr/share/man/man8/$page.8.gz" ] || fail "man -w $page: $where"
done
where=$(in_root man -w 5 mape.toml) || fail "man -w 5 mape.toml"
[ "$where" = "/usr/share/man/man5/mape.toml.5.gz" ] || fail "man -w 5 mape.toml: $where"
in_root man 8 mape-calc 2>&1 | grep -q -- "--profile" || fail "man mape-calc does not render"
for f in /usr/share/bash-completion/completions/mape /usr/share/zsh/vendor-completions/_mape \
    /usr/share/fish/vendor_completions.d/mape.fish /usr/share/doc/mape/grafana-dashboard.json; do
    [ -s "$root$f" ] || fail "missing $f"
done
grep -q 'complete -F _mape' "$root/usr/share/bash-completion/completions/mape" ||
    fail "bash completion is not one"
in_root systemd-analyze verify /usr/lib/systemd/system/mape.service ||
    fail "systemd-analyze verify mape.service"
grep -q '^ExecStart=/usr/bin/mape run ce --config /etc/mape/mape.toml$' \
    "$root/usr/lib/systemd/system/mape.service" || fail "unit does not start /usr/bin/mape"
# Enabled, not started (README: edit the configuration first).
[ -L "$root/etc/systemd/system/multi-user.target.wants/mape.service" ] ||
    fail "mape.service not enabled"
in_root getent passwd mape | grep -q ':/var/lib/mape:/usr/sbin/nologin$' ||
    fail "system user mape: $(in_root getent passwd mape || true)"
uid=$(in_root id -u mape)
[ "$uid" -lt 1000 ] || fail "user mape is not a system user (uid $uid)"
owner=$(in_root stat -c '%U:%G %a' /etc/mape/mape.toml)
[ "$owner" = "root:mape 640" ] || fail "/etc/mape/mape.toml is $owner, want root:mape 640"
grep -qx /etc/mape/mape.toml "$root/var/lib/dpkg/info/mape.conffiles" ||
    fail "/etc/mape/mape.toml is not a conffile"
in_root mape run --check --config /etc/mape/mape.toml >/dev/null ||
    fail "the shipped configuration does not pass mape run --check"

echo "== dpkg --purge mape"
in_root dpkg --purge mape >/dev/null
files >"$root/tmp/after.files"
accounts >"$root/tmp/after.accounts"
if ! diff "$root/tmp/before.files" "$root/tmp/after.files"; then
    fail "purge left the files above (> left, < removed)"
fi
if ! diff "$root/tmp/before.accounts" "$root/tmp/after.accounts"; then
    fail "purge left the accounts above"
fi
echo "test-deb: ok ($(basename "$deb"): installed, checked, purged; nothing left)"
