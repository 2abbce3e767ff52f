//! Helpers shared by the end-to-end tests of the `mape` binary (`mod common;` in each test
//! file; a file uses some of them, hence the `dead_code` allowance).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `mape` binary cargo built for these tests.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mape"))
}

/// Runs `mape args` in the C locale.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run mape")
}

/// The standard output of `mape args`, which must succeed.
pub(crate) fn stdout_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "mape {args:?}: exit {:?}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// What a process printed: standard output, then standard error.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
