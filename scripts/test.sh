#!/usr/bin/env bash
# The test suite, exactly as README.md gives it and .ci/run runs it.
#   scripts/test.sh          fmt check, clippy -D warnings, unit/property/integration and
#                            lab tests (root), doctests.
#   MAPE_FULL=1              also (what CI runs, .ci/run sets it): the lab suites again
#                            with the kernel fast path off, the Debian package installed
#                            into a clean Debian root and purged (root), and a short bounded
#                            run of every fuzz target.
#   MAPE_FUZZ_SECONDS=N      seconds per fuzz target under MAPE_FULL (default 20; 0 skips).
#   MAPE_SLOW=1              also run the slow suites (long property runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI machine builds once: incremental caches would only take disk (GBs).
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
full="${MAPE_FULL:-0}"
scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build release binary (integration tests run it)"
cargo build --release --locked -p mape
echo "== build the fault-injection binary (target/failpoints/mape; lab_failsafe.rs runs it)"
cargo build --profile failpoints --locked -p mape --features failpoints
if [ "${MAPE_SLOW:-0}" = "1" ]; then export MAPE_PROPTEST_CASES=1000000; fi
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
echo "== doctests"
cargo test --workspace --locked --doc
if [ "$full" != "1" ]; then
  echo "== done (MAPE_FULL=1 also runs the fast-path-off lab pass, the .deb test, fuzzing)"
  exit 0
fi
# The lab suites once more with the kernel fast path off (MAPE_LAB_FAST_PATH, read by
# mape-lab's LabOptions): every behaviour holds on the TUN path alone too (issue #13).
echo "== lab suites with [datapath] fast_path = \"off\""
# (--workspace, as above, so the test binaries built for it are reused, not rebuilt with
# another feature set.)
MAPE_LAB_FAST_PATH=off cargo nextest run --workspace --locked --no-fail-fast \
  -E 'binary(lab_e2e) | binary(lab_churn) | binary(lab_restart) | binary(lab_ttl) | binary(lab_wan_garbage) | binary(lab_failsafe) | binary(lab_reprovision)'
echo "== the Debian package: build it, install it into a clean Debian root, purge it"
if [ "$(id -u)" = 0 ]; then
  scripts/test-deb.sh "$(scripts/build-deb.sh | tail -n 1)"
elif [ "${CI:-}" = "true" ]; then
  echo "scripts/test-deb.sh needs root under CI" >&2; exit 1
else
  echo "skipping: scripts/test-deb.sh needs root (debootstrap, chroot)"
fi
if [ "${MAPE_FUZZ_SECONDS:-20}" != "0" ] && [ -d fuzz ]; then
  echo "== fuzz smoke (${MAPE_FUZZ_SECONDS:-20}s per target)"
  scripts/fuzz.sh "${MAPE_FUZZ_SECONDS:-20}"
fi
