//! What tests start on a running lab besides the daemons: tshark captures, the seed's
//! storm, and reading back what a capture saw.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::LabError;
use crate::topology::Lab;

/// What a capture keeps of each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole packet (a capture that is replayed or read for payload).
    Whole,
    /// The first [`HEADER_SNAPLEN`] bytes: every header a test reads, while a bulk
    /// transfer through the link (iperf3 at line rate with the fast path) stays megabytes,
    /// not gigabytes, on disk.
    Headers,
}

/// Bytes kept of each packet under [`Keep::Headers`]: IPv6 (40) + fragment header (8)
/// + IPv4 with the most options (60) + TCP with the most options (60) = 168, rounded up.
pub const HEADER_SNAPLEN: u32 = 192;

impl Lab {
    /// Starts tshark on `iface` in `ns` with capture `filter`, writing `dir/<name>.pcap`
    /// with what `keep` says of each packet. Returns the PID and the file.
    pub fn capture(
        &mut self,
        ns: &str,
        name: &str,
        iface: &str,
        filter: &str,
        keep: Keep,
    ) -> Result<(u32, PathBuf), LabError> {
        let file = self.dir.join(format!("{name}.pcap"));
        let f = file.display().to_string();
        let mut args = vec!["tshark", "-q", "-i", iface, "-f", filter, "-w", &f];
        let snaplen = HEADER_SNAPLEN.to_string();
        if keep == Keep::Headers {
            args.extend_from_slice(&["-s", &snaplen]);
        }
        let pid = self.spawn(ns, name, &args)?;
        Ok((pid, file))
    }

    /// Stops a capture started by [`Lab::capture`] (SIGINT lets tshark flush) and waits.
    pub fn stop_capture(&mut self, pid: u32) {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        self.wait_pid(pid, Duration::from_secs(5));
    }

    /// Starts the seed's storm from `ns` (`mape lab storm`) toward `targets` at `rate_x`
    /// for `secs` seconds; returns its PID.
    pub fn storm(
        &mut self,
        ns: &str,
        name: &str,
        targets: &[String],
        rate_x: u32,
        secs: u64,
    ) -> Result<u32, LabError> {
        let mape = self.opts.mape.display().to_string();
        let (rate, dur) = (rate_x.to_string(), secs.to_string());
        let mut args: Vec<&str> =
            vec![&mape, "lab", "storm", "--rate-x", &rate, "--duration", &dur];
        for t in targets {
            args.extend_from_slice(&["--target", t]);
        }
        self.spawn(ns, name, &args)
    }
}

/// Parses `a.b.c.d:port`.
pub fn parse_target(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

/// Frames in a capture file, as tshark reads them (0 when unreadable).
pub fn count_frames(file: &Path) -> u64 {
    Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count() as u64)
        .unwrap_or(0)
}
