//! `mape lab bench`: in one run on the same namespaces, iperf3 from lan1 to the internet
//! server through (a) `mape`: mape CE + BR with the kernel fast path (the default), (b)
//! `mape_tun`: the same daemons with `[datapath] fast_path = "off"` (every packet through
//! the TUN and the user-space pipeline), (c) `kernel_nat`: the kernel's own nftables SNAT
//! without encapsulation, (d) `route`: plain kernel routing. TCP bulk with 1 and 4
//! streams, 64-byte UDP packets per second, `conn_rate`: TCP connections per second,
//! each a full handshake and teardown, with ports not limiting (the kernel's NAT gets the
//! whole port range for it; mape recycles its 240 ports' closed connections), and
//! `conn_240`: TCP connection churn to ONE destination through a 240-port set. No target
//! is asserted anywhere: the figures are reported, as ratios, from one run.
//!
//! `conn_rate` runs [`RATE_LOOPS`] workers of the same client as `conn_240` against
//! [`TCP_WAIT_PORT`], closing first ([`ConnMode::ClientFirst`]): the server keeps no
//! TIME_WAIT, so an external port the NAT reuses is not answered by an old connection
//! (with the server closing first, as in `conn_240`, a reused port costs a challenge
//! ACK, the client's RST and a SYN retransmission).
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
use crate::churn::{ConnLoop, ConnMode, TCP_CLOSE_PORT, TCP_WAIT_PORT};
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
    /// TCP connect + close, ports not limiting, completed connections/s.
    pub conn_rate: Row,
    /// Failed connections of the `conn_rate` loop.
    pub conn_rate_failed: Row,
}

/// Workers of the `conn_rate` loop.
pub const RATE_LOOPS: u32 = 4;

/// Workers of the `conn_240` loop, each with one connection at a time (the reference's
/// `CONN_THREADS` default).
pub const CONN_LOOPS: u32 = 2;
/// Bound on each socket operation of the `conn_240` loop (the reference's
/// `CONN_TIMEOUT_MS` default).
pub const CONN_TIMEOUT: Duration = Duration::from_millis(300);

/// `workers` connect + close loops for `secs` to `port` in `mode`: (connections/s,
/// failures).
fn conn_loop(
    lab: &Lab,
    secs: u64,
    workers: u32,
    port: u16,
    mode: ConnMode,
) -> Result<(f64, f64), LabError> {
    let lp = ConnLoop {
        target: (addr::SERVER, port),
        duration: Duration::from_secs(secs),
        concurrency: workers,
        timeout: CONN_TIMEOUT,
        mode,
        fail_pause: Duration::ZERO,
        max: 0,
    };
    let res = lp.run(lab, &lab.ns("lan1"))?;
    Ok((res.rate(), res.fail as f64))
}

fn conn_240(lab: &Lab, secs: u64, mode: &'static str, r: &mut BenchResult) -> Result<(), LabError> {
    let (rate, failed) = conn_loop(lab, secs, CONN_LOOPS, TCP_CLOSE_PORT, ConnMode::Eof)?;
    r.conn_240.insert(mode, rate);
    r.conn_240_failed.insert(mode, failed);
    Ok(())
}

fn conn_rate(
    lab: &Lab,
    secs: u64,
    mode: &'static str,
    r: &mut BenchResult,
) -> Result<(), LabError> {
    let (rate, failed) = conn_loop(lab, secs, RATE_LOOPS, TCP_WAIT_PORT, ConnMode::ClientFirst)?;
    r.conn_rate.insert(mode, rate);
    r.conn_rate_failed.insert(mode, failed);
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
    Ok(())
}

/// Runs the four modes. `secs` per test.
pub fn run(mape: PathBuf, secs: u64) -> Result<BenchResult, LabError> {
    let mut opts = LabOptions::new(mape, "mape");
    opts.fast_path = "auto".into();
    let mut lab = Lab::up(opts)?;
    // The connect loops close first (conn_rate) or last, tens of thousands of times in
    // one run: lan1 may reuse its own TIME_WAIT ports for new outgoing connections
    // (RFC 6191 timestamps) over the whole port range, so the client's own port supply
    // never limits a later mode.
    let lan1 = lab.ns("lan1");
    for k in [
        "net.ipv4.tcp_tw_reuse=1",
        "net.ipv4.ip_local_port_range=1024 65535",
    ] {
        lab.exec_ok(&lan1, &["sysctl", "-qw", k])?;
    }
    let mut r = BenchResult::default();
    measure(&lab, secs, "mape", &mut r)?;
    conn_rate(&lab, secs, "mape", &mut r)?;
    conn_240(&lab, secs, "mape", &mut r)?;
    lab.restart_daemons("off")?;
    std::thread::sleep(Duration::from_millis(300));
    measure(&lab, secs, "mape_tun", &mut r)?;
    conn_rate(&lab, secs, "mape_tun", &mut r)?;
    conn_240(&lab, secs, "mape_tun", &mut r)?;

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

    // (d) plain routing: the ISP knows the LAN.
    lab.exec_ok(
        &isp,
        &["ip", "route", "add", "192.168.10.0/24", "via", "192.0.2.18"],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    measure(&lab, secs, "route", &mut r)?;
    conn_rate(&lab, secs, "route", &mut r)?;
    conn_240(&lab, secs, "route", &mut r)?;
    lab.exec_ok(&isp, &["ip", "route", "del", "192.168.10.0/24"])?;

    // (c) the kernel's NAT: the 240-port set of a v6plus line, 4096-4335 (as the
    // baseline scripts do), then the whole port range for conn_rate (ports not limiting).
    let nat = |name: &str, range: &str| -> Result<(), LabError> {
        let rules = lab.dir.join(name);
        std::fs::write(
            &rules,
            format!(
                "table ip mapebench {{\n\
                 \tchain post {{\n\
                 \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                 \t\toifname \"ce-wan\" ip saddr 192.168.10.0/24 meta l4proto {{ tcp, udp }} snat to 192.0.2.18:{range}\n\
                 \t\toifname \"ce-wan\" ip saddr 192.168.10.0/24 snat to 192.0.2.18\n\
                 \t}}\n\
                 }}\n"
            ),
        )?;
        let _ = lab.exec(&ce, &["nft", "delete", "table", "ip", "mapebench"]);
        lab.exec_ok(&ce, &["nft", "-f", &rules.display().to_string()])
            .map(|_| ())
    };
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
    nat("kernel-nat.nft", "4096-4335")?;
    std::thread::sleep(Duration::from_millis(300));
    measure(&lab, secs, "kernel_nat", &mut r)?;
    conn_240(&lab, secs, "kernel_nat", &mut r)?;
    // Then the whole port range, so that ports do not limit conn_rate.
    nat("kernel-nat-full.nft", "1024-65535")?;
    std::thread::sleep(Duration::from_millis(300));
    conn_rate(&lab, secs, "kernel_nat", &mut r)?;
    lab.teardown();
    Ok(r)
}
