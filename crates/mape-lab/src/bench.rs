//! `mape lab bench`: in one run on the same namespaces, iperf3 from lan1 to the internet
//! server through (a) mape CE + BR (MAP-E encapsulation in user space), (b) the kernel's
//! own nftables SNAT into a 240-port range without encapsulation, (c) plain kernel routing.
//! TCP bulk with 1 and 4 streams, 64-byte UDP packets per second, and `conn_240`: TCP
//! connection churn to ONE destination through the 240-port set. No target is asserted
//! anywhere: the figures are reported, as ratios, from one run.
//!
//! `conn_240` mirrors the `conn_240` test of the reference baseline
//! (`lab-baseline/netlab-common.sh`, its `connrate` client): for the bench's duration,
//! [`CONN_LOOPS`] workers in lan1, each with exactly one connection at a time, connect to
//! 203.0.113.10:[`TCP_CLOSE_PORT`], whose server accepts and closes at once; the client
//! waits for the server's FIN (so every counted connection is a full three-way handshake
//! plus teardown through the NAT) and closes. Every socket operation is bounded by
//! [`CONN_TIMEOUT`]; a connect that fails (refused, unreachable, timed out) is counted and
//! the worker goes on at once. The figure is completed connections per second; failures
//! go to `conn_240_failed`. The kernel's NAT runs with the default conntrack TIME_WAIT
//! (120 s, set explicitly), so like mape it must hold or recycle the ports of closed
//! connections; it runs last, after the other tests of its mode. Plain routing has no port
//! limit and shows what the client and server can do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::addr;
use crate::churn::{ConnLoop, ConnMode, TCP_CLOSE_PORT};
use crate::error::LabError;
use crate::topology::{Lab, LabOptions};

/// One test's figure per mode.
pub type Row = BTreeMap<&'static str, f64>;

/// The whole table.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BenchResult {
    /// TCP, one stream, bits/s received.
    pub tcp_1: Row,
    /// TCP, four streams, bits/s received.
    pub tcp_4: Row,
    /// UDP 64-byte payloads, packets/s received.
    pub udp64_pps: Row,
    /// TCP connect + close to one destination through the 240-port set, completed
    /// connections/s (see the module documentation).
    pub conn_240: Row,
    /// Failed connections of the `conn_240` loop (refused, unreachable or timed out).
    pub conn_240_failed: Row,
}

/// Workers of the `conn_240` loop, each with one connection at a time (the reference's
/// `CONN_THREADS` default).
pub const CONN_LOOPS: u32 = 2;
/// Bound on each socket operation of the `conn_240` loop (the reference's
/// `CONN_TIMEOUT_MS` default).
pub const CONN_TIMEOUT: Duration = Duration::from_millis(300);

fn conn_240(lab: &Lab, secs: u64, mode: &'static str, r: &mut BenchResult) -> Result<(), LabError> {
    let lp = ConnLoop {
        target: (addr::SERVER, TCP_CLOSE_PORT),
        duration: Duration::from_secs(secs),
        concurrency: CONN_LOOPS,
        timeout: CONN_TIMEOUT,
        mode: ConnMode::Eof,
        fail_pause: Duration::ZERO,
        max: 0,
    };
    let res = lp.run(lab, &lab.ns("lan1"))?;
    r.conn_240.insert(mode, res.rate());
    r.conn_240_failed.insert(mode, res.fail as f64);
    Ok(())
}

fn iperf(lab: &Lab, args: &[&str]) -> Result<Value, LabError> {
    let ns = lab.ns("lan1");
    let mut full = vec!["iperf3", "-c", "203.0.113.10", "-J"];
    full.extend_from_slice(args);
    let out = lab.exec(&ns, &full)?;
    serde_json::from_slice(&out.stdout).map_err(|e| LabError::Command {
        cmd: full.join(" "),
        detail: format!(
            "no JSON from iperf3: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn measure(lab: &Lab, secs: u64, mode: &'static str, r: &mut BenchResult) -> Result<(), LabError> {
    let t = secs.to_string();
    for (streams, row) in [("1", &mut r.tcp_1), ("4", &mut r.tcp_4)] {
        let v = iperf(lab, &["-t", &t, "-P", streams])?;
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0);
        row.insert(mode, bps);
    }
    let v = iperf(lab, &["-t", &t, "-u", "-l", "64", "-b", "0"])?;
    let sum = &v["end"]["sum"];
    let sent = sum["packets"].as_f64().unwrap_or(0.0);
    let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
    let secs_f = sum["seconds"].as_f64().unwrap_or(secs as f64).max(0.001);
    r.udp64_pps.insert(mode, (sent - lost).max(0.0) / secs_f);
    // Last: under a NAT that holds closed connections' ports it may leave lan1 without any.
    conn_240(lab, secs, mode, r)
}

/// Runs the three modes. `secs` per iperf3 test.
pub fn run(mape: PathBuf, secs: u64) -> Result<BenchResult, LabError> {
    let mut lab = Lab::up(LabOptions::new(mape, "mape"))?;
    let mut r = BenchResult::default();
    measure(&lab, secs, "mape", &mut r)?;

    // Stop both daemons (their teardown removes the TUNs and routes), then give the CE
    // and the ISP an IPv4 link of their own.
    lab.stop_daemons();
    let (ce, isp) = (lab.ns("ce"), lab.ns("isp"));
    lab.exec_ok(
        &ce,
        &["ip", "addr", "add", "192.0.2.18/24", "dev", "ce-wan"],
    )?;
    lab.exec_ok(
        &isp,
        &["ip", "addr", "add", "192.0.2.1/24", "dev", "isp-ce"],
    )?;
    lab.exec_ok(
        &ce,
        &["ip", "route", "replace", "default", "via", "192.0.2.1"],
    )?;
    for k in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"] {
        lab.exec_ok(&ce, &["sysctl", "-qw", k])?;
    }

    // (c) plain routing: the ISP knows the LAN.
    lab.exec_ok(
        &isp,
        &["ip", "route", "add", "192.168.10.0/24", "via", "192.0.2.18"],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    measure(&lab, secs, "route", &mut r)?;
    lab.exec_ok(&isp, &["ip", "route", "del", "192.168.10.0/24"])?;

    // (b) the kernel's NAT: SNAT into 240 ports, 4096-4335 (as the baseline scripts do).
    let rules = lab.dir.join("kernel-nat.nft");
    std::fs::write(
        &rules,
        "table ip mapebench {\n\
         \tchain post {\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"ce-wan\" ip saddr 192.168.10.0/24 meta l4proto { tcp, udp } snat to 192.0.2.18:4096-4335\n\
         \t\toifname \"ce-wan\" ip saddr 192.168.10.0/24 snat to 192.0.2.18\n\
         \t}\n\
         }\n",
    )?;
    let rules_s = rules.display().to_string();
    lab.exec_ok(&ce, &["nft", "-f", &rules_s])?;
    // conntrack's normal TIME_WAIT (the namespace's default, stated so no earlier change
    // of it can leak in): closed connections hold their NAT port for 120 s unless a new
    // SYN for the same tuple takes it over.
    lab.exec_ok(
        &ce,
        &[
            "sysctl",
            "-qw",
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait=120",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    measure(&lab, secs, "kernel_nat", &mut r)?;
    lab.teardown();
    Ok(r)
}
