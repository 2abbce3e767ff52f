#!/usr/bin/env bash
# The test suite, exactly as README.md gives it and .ci/run runs it.
#   scripts/test.sh          fmt check, clippy -D warnings, unit/property/integration and
#                            lab tests (root) but the long ones, doctests (~25 min on a
#                            2-core machine, 17 of them building).
#   MAPE_FULL=1              also (what CI runs, .ci/run sets it): the long lab tests
#                            (30 s or more each, listed below), the lab suites again
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
# Each phase with the time it starts and the minutes since the run began.
phase() { echo "== $* ($(date -u +%H:%M:%S), $((SECONDS / 60)) min in)"; }
scripts/install-deps.sh

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "build release binary (integration tests run it)"
cargo build --release --locked -p mape
phase "build the fault-injection binary (target/failpoints/mape; lab_failsafe.rs runs it)"
cargo build --profile failpoints --locked -p mape --features failpoints
if [ "${MAPE_SLOW:-0}" = "1" ]; then export MAPE_PROPTEST_CASES=1000000; fi
# The long lab suites: every lab test that takes 30 s or more on a 2-core machine (a storm
# or a churn for most of a minute, a restart's announcements), ~8.5 min together. The
# everyday run leaves them to MAPE_FULL (CI), which runs them here with the rest;
# `mape lab demo` (scripts/demo.sh) shows the incident itself, and lab_e2e's
# storm_to_a_silent_public_sink (the cap under a storm, ~45 s) stays in the everyday run.
long='(binary(lab_e2e) & (test(=the_incident_cannot_happen_under_mape_and_does_under_rtx830_like) | test(=forecast_warns_before_the_budget_runs_out_under_rtx830_like)))'
long+=' | (binary(lab_churn) & (test(=tcp_connect_loop_to_one_server_never_locks_the_host_out) | test(=udp_one_shot_exchanges_keep_dns_alive)))'
long+=' | (binary(lab_web) & test(=the_status_page_in_a_browser_during_the_storm))'
long+=' | (binary(lab_wan_garbage) & test(=wan_garbage_is_dropped_counted_and_harmless))'
long+=' | (binary(lab_router) & test(=the_routers_own_dns_survives_every_host_storming))'
long+=' | (binary(lab_mappings) & test(=the_ce_announces_after_a_restart))'
if [ "$full" = "1" ]; then
  phase "cargo nextest (everything, the long lab suites included)"
  cargo nextest run --workspace --locked --no-fail-fast
else
  phase "cargo nextest (without the long lab suites: MAPE_FULL=1 runs them)"
  cargo nextest run --workspace --locked --no-fail-fast -E "not ($long)"
fi
phase "doctests"
cargo test --workspace --locked --doc
if [ "$full" != "1" ]; then
  phase "done (MAPE_FULL=1 also runs the fast-path-off lab pass, the .deb test, fuzzing)"
  exit 0
fi
# The lab suites once more with the kernel fast path off (MAPE_LAB_FAST_PATH, read by
# mape-lab's LabOptions): every behaviour holds on the TUN path alone too (issue #13).
phase "lab suites with [datapath] fast_path = \"off\""
# (--workspace, as above, so the test binaries built for it are reused, not rebuilt with
# another feature set.)
MAPE_LAB_FAST_PATH=off cargo nextest run --workspace --locked --no-fail-fast \
  -E 'binary(lab_e2e) | binary(lab_churn) | binary(lab_restart) | binary(lab_ttl) | binary(lab_wan_garbage) | binary(lab_failsafe) | binary(lab_reprovision)'
phase "the Debian package: build it, install it into a clean Debian root, purge it"
if [ "$(id -u)" = 0 ]; then
  scripts/test-deb.sh "$(scripts/build-deb.sh | tail -n 1)"
elif [ "${CI:-}" = "true" ]; then
  echo "scripts/test-deb.sh needs root under CI" >&2; exit 1
else
  echo "skipping: scripts/test-deb.sh needs root (debootstrap, chroot)"
fi
if [ "${MAPE_FUZZ_SECONDS:-20}" != "0" ] && [ -d fuzz ]; then
  phase "fuzz smoke (${MAPE_FUZZ_SECONDS:-20}s per target)"
  scripts/fuzz.sh "${MAPE_FUZZ_SECONDS:-20}"
fi
phase "done"
