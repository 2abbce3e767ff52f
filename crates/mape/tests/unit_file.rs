//! dist/mape.service (issue #12, items 1, 2 and 7): the settings the daemon relies on are
//! there, `systemd-analyze verify` accepts the unit, and `systemd-analyze security
//! --offline=true` rates its exposure (printed; must stay "OK", at most 2.5). Needs no
//! root and no running systemd; skips when systemd-analyze is missing, except under CI
//! (CI=true), where .ci/apt-packages.txt installs it.

use std::path::PathBuf;
use std::process::Command;

mod common;

const UNIT: &str = include_str!("../../../dist/mape.service");

fn analyze_available() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "systemd-analyze missing under CI (package systemd)"
        );
        eprintln!("skipping: systemd-analyze missing (apt-get install systemd)");
    }
    ok
}

/// The unit with ExecStart= pointing at the binary under test (verify checks that the
/// command exists and is executable), in a directory of its own.
fn unit_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mape-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("mape.service");
    let text = UNIT.replace("/usr/bin/mape", env!("CARGO_BIN_EXE_mape"));
    std::fs::write(&path, text).expect("write unit");
    path
}

#[test]
fn the_unit_carries_notify_watchdog_restart_state_and_least_privilege() {
    let has = |line: &str| UNIT.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "Restart=always",
        "StateDirectory=mape",
        "RuntimeDirectory=mape",
        "DynamicUser=yes",
        "User=mape",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_ADMIN CAP_BPF CAP_NET_BIND_SERVICE",
        "SystemCallFilter=bpf",
        "SystemCallFilter=@system-service",
        "ProtectKernelLogs=yes",
        "ProtectProc=invisible",
        "RestrictSUIDSGID=yes",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "DeviceAllow=/dev/net/tun rw",
    ] {
        assert!(has(line), "dist/mape.service lacks {line}");
    }
    assert!(
        UNIT.lines().any(|l| l.starts_with("WatchdogSec=")),
        "no WatchdogSec="
    );
    // The daemon's defaults live where the unit's directories are.
    assert_eq!(mape_daemon::config::DEFAULT_STATE_DIR, "/var/lib/mape");
    assert!(mape_daemon::config::DEFAULT_SOCKET.starts_with("/run/mape/"));
}

#[test]
fn systemd_analyze_verifies_the_unit_and_rates_it() {
    if !analyze_available() {
        return;
    }
    let path = unit_copy();
    // --man=no: the man page is installed by scripts/install.sh, not on a build machine.
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let text = common::text(&o);
    assert!(o.status.success(), "systemd-analyze verify: {text}");
    assert!(
        !text.contains("mape.service:"),
        "warnings about the unit: {text}"
    );
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) else {
        // Older systemd without --offline: nothing to rate.
        eprintln!(
            "systemd-analyze security --offline unsupported here: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    };
    println!("{}", line.trim_start_matches('→').trim());
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("exposure score");
    assert!(
        score <= 2.5,
        "exposure {score} (was 1.9 when written): {line}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
}
