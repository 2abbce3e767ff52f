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
//! A run is [`run`]'s `rounds` rounds, each on a lab of its own with every mode in the
//! order above: the figures reported are each (test, mode)'s median over the rounds, and
//! each round's own figures are kept beside them. On a 2-vCPU VM one 5 s test moves by
//! 10-20 % between two runs minutes apart (plain routing as much as the rest), so a
//! single round's ratio says as much about the VM's moment as about the NAT; the median
//! of rounds that each measured every mode within a few minutes says less of it.
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

impl BenchResult {
    /// Every row, in a fixed order.
    fn rows(&self) -> [&Row; 7] {
        [
            &self.tcp_1,
            &self.tcp_4,
            &self.udp64_pps,
            &self.conn_240,
            &self.conn_240_failed,
            &self.conn_rate,
            &self.conn_rate_failed,
        ]
    }

    fn rows_mut(&mut self) -> [&mut Row; 7] {
        [
            &mut self.tcp_1,
            &mut self.tcp_4,
            &mut self.udp64_pps,
            &mut self.conn_240,
            &mut self.conn_240_failed,
            &mut self.conn_rate,
            &mut self.conn_rate_failed,
        ]
    }

    /// Each (row, mode)'s median over `rounds` (a mode missing from a round is left out
    /// of that figure's median).
    pub fn median_of(rounds: &[BenchResult]) -> BenchResult {
        let mut m = BenchResult::default();
        for (i, row) in m.rows_mut().into_iter().enumerate() {
            let mut modes: Vec<&'static str> = rounds
                .iter()
                .flat_map(|r| r.rows()[i].keys().copied())
                .collect();
            modes.sort_unstable();
            modes.dedup();
            for mode in modes {
                let mut v: Vec<f64> = rounds
                    .iter()
                    .filter_map(|r| r.rows()[i].get(mode).copied())
                    .collect();
                if let Some(x) = median(&mut v) {
                    row.insert(mode, x);
                }
            }
        }
        m
    }
}

/// The median (the mean of the two middle values for an even count); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// A whole run: the medians (the same shape as one round, so `--json` readers see the
/// same rows) and every round's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BenchRun {
    /// Each (test, mode)'s median over the rounds.
    #[serde(flatten)]
    pub median: BenchResult,
    /// The rounds, in the order they ran.
    pub rounds: Vec<BenchResult>,
}

/// Rounds a run may have.
pub const MAX_ROUNDS: u32 = 9;

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

/// `rounds` rounds (1..=[`MAX_ROUNDS`]) of the four modes, `secs` per test.
pub fn run(mape: PathBuf, secs: u64, rounds: u32) -> Result<BenchRun, LabError> {
    let mut all = Vec::new();
    for _ in 0..rounds.clamp(1, MAX_ROUNDS) {
        all.push(round(mape.clone(), secs)?);
    }
    Ok(BenchRun {
        median: BenchResult::median_of(&all),
        rounds: all,
    })
}

/// One round: the four modes on one lab, `secs` per test.
fn round(mape: PathBuf, secs: u64) -> Result<BenchResult, LabError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(tcp_1: &[(&'static str, f64)], conn_rate: &[(&'static str, f64)]) -> BenchResult {
        BenchResult {
            tcp_1: tcp_1.iter().copied().collect(),
            conn_rate: conn_rate.iter().copied().collect(),
            ..BenchResult::default()
        }
    }

    #[test]
    fn medians_take_the_middle_round_of_each_figure_on_its_own() {
        let rounds = [
            one(&[("mape", 9.0), ("route", 30.0)], &[("mape", 100.0)]),
            one(&[("mape", 1.0), ("route", 10.0)], &[("mape", 300.0)]),
            one(&[("mape", 5.0), ("route", 20.0)], &[("mape", 200.0)]),
        ];
        let m = BenchResult::median_of(&rounds);
        assert_eq!(m.tcp_1.get("mape"), Some(&5.0));
        assert_eq!(m.tcp_1.get("route"), Some(&20.0));
        assert_eq!(m.conn_rate.get("mape"), Some(&200.0));
        assert!(m.tcp_4.is_empty());
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two_and_a_missing_mode_is_left_out() {
        let rounds = [
            one(&[("mape", 4.0), ("kernel_nat", 7.0)], &[]),
            one(&[("mape", 2.0)], &[]),
        ];
        let m = BenchResult::median_of(&rounds);
        assert_eq!(m.tcp_1.get("mape"), Some(&3.0));
        assert_eq!(m.tcp_1.get("kernel_nat"), Some(&7.0));
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }

    #[test]
    fn the_run_json_keeps_the_rows_of_one_round_at_the_top() {
        let r = BenchRun {
            median: one(&[("mape", 1.5)], &[]),
            rounds: vec![one(&[("mape", 1.5)], &[])],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tcp_1"]["mape"], 1.5);
        assert_eq!(v["rounds"][0]["tcp_1"]["mape"], 1.5);
        assert!(v["conn_rate"].as_object().is_some_and(|o| o.is_empty()));
    }
}
