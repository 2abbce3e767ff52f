//! `mape passwd --stdin`: the line it prints is TOML whose hash verifies the password it
//! read, and nothing else; an empty password is refused.

use std::io::Write;
use std::process::{Command, Stdio};

mod common;

fn passwd(input: &str) -> std::process::Output {
    let mut child = Command::new(common::bin())
        .args(["passwd", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_printed_line_holds_a_hash_of_the_password() {
    let o = passwd("tanuki 2026\n");
    assert!(o.status.success(), "{}", common::text(&o));
    let line = String::from_utf8(o.stdout).unwrap();
    let t: toml::Table = toml::from_str(&line).unwrap();
    let hash = t["password_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(mape_daemon::web::auth::verify(hash, "tanuki 2026"));
    assert!(!mape_daemon::web::auth::verify(hash, "tanuki 2026\n"));
    assert!(!mape_daemon::web::auth::verify(hash, "tanuki"));
}

#[test]
fn an_empty_password_is_refused() {
    let o = passwd("\n");
    assert!(!o.status.success());
    assert!(
        common::text(&o).contains("empty password"),
        "{}",
        common::text(&o)
    );
}
