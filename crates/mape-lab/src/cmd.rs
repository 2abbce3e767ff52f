//! Running commands on the host for the lab, and the check that the lab can run here
//! (root, the tools, `/dev/net/tun`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::LabError;

fn is_root() -> bool {
    // SAFETY-free check: effective uid from /proc.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let text = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| LabError::Command {
        cmd: text.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: text,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

pub(crate) fn ip(args: &[&str]) -> Result<Output, LabError> {
    run(Command::new("ip").args(args))
}

/// Whether a lab test can run here: `true` when [`preflight`] passes; otherwise it says why
/// and returns `false` (the test skips), except under `CI=true`, where a lab that cannot
/// run is a failure and this panics.
#[allow(
    clippy::panic,
    reason = "a test helper: failing the test is its job under CI"
)]
pub fn possible_or_skip(what: &str) -> bool {
    match preflight() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{what} cannot run under CI: {e}");
            }
            eprintln!("skipping {what}: {e}");
            false
        }
    }
}

/// Checks that the tools the lab needs exist.
pub fn preflight() -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot);
    }
    for tool in ["ip", "dnsmasq", "iperf3", "dig", "curl", "python3"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Err(LabError::Missing(tool.into()));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(LabError::Missing("/dev/net/tun".into()));
    }
    Ok(())
}
