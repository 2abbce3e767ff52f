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
//! A run is [`run`]'s `rounds` rounds, each on a lab of its own. Within a round each test
//! runs in every mode back to back before the next test (the lab switches between the
//! daemons and the kernel's modes in a second or two), in an order turned by one place
//! per round ([`Mode::order`]): so the figures a ratio compares are measured within
//! half a minute of each other, and no mode is always the first after a switch or the
//! last of a test. The figures reported are each (test, mode)'s median over the rounds,
//! and each round's own figures (and order) are kept beside them. On a 2-vCPU VM one 5 s
//! test moves by 10-20 % between two runs minutes apart (plain routing as much as the
//! rest), and the VM's speed drifts over minutes: when every mode ran all its tests in
//! turn, a slow minute fell on one mode's tests only and moved a round's ratios by up to
//! 0.3 (on 2026-12-04: 0.73-1.29 for the same binary).
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
//! connections; it is the last test of a round. Plain routing has no port
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
    /// Each round's order of the modes within a test ([`Mode::order`]).
    pub orders: Vec<Vec<&'static str>>,
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

/// `rounds` rounds (1..=[`MAX_ROUNDS`]) of the four modes, `secs` per test.
pub fn run(mape: PathBuf, secs: u64, rounds: u32) -> Result<BenchRun, LabError> {
    let mut all = Vec::new();
    let mut orders = Vec::new();
    for i in 0..rounds.clamp(1, MAX_ROUNDS) {
        let order = Mode::order(i);
        all.push(round(mape.clone(), secs, &order)?);
        orders.push(order.iter().map(|m| m.name()).collect());
    }
    Ok(BenchRun {
        median: BenchResult::median_of(&all),
        rounds: all,
        orders,
    })
}

/// A configuration of the lab the tests run through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The CE and BR daemons, the kernel fast path on (the default).
    Mape,
    /// The same daemons with `fast_path = "off"`.
    MapeTun,
    /// No daemons: the ISP routes the LAN's prefix to the CE.
    Route,
    /// No daemons: nftables SNAT in the CE namespace.
    KernelNat,
}

impl Mode {
    /// Every mode, in the first round's order.
    pub const ALL: [Mode; 4] = [Mode::Mape, Mode::MapeTun, Mode::Route, Mode::KernelNat];

    /// The mode's name in the rows.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Mape => "mape",
            Mode::MapeTun => "mape_tun",
            Mode::Route => "route",
            Mode::KernelNat => "kernel_nat",
        }
    }

    /// The order of the modes within each test of round `round` (from 0): [`Self::ALL`]
    /// turned by one place per round, so that over four rounds each mode runs once in
    /// each place, and no mode is always the first or the last of a test.
    pub fn order(round: u32) -> [Mode; 4] {
        let mut o = Self::ALL;
        o.rotate_left(round as usize % Self::ALL.len());
        o
    }
}

/// The tests of a round, in the order they run; each runs every mode before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Tcp1,
    Tcp4,
    Udp64,
    ConnRate,
    Conn240,
}

const TESTS: [Test; 5] = [
    Test::Tcp1,
    Test::Tcp4,
    Test::Udp64,
    Test::ConnRate,
    Test::Conn240,
];

/// The kernel NAT's port range for `test`: the 240-port set of a v6plus line (4096-4335,
/// as the baseline scripts do), the whole range for `conn_rate` (ports not limiting).
fn kernel_ports(test: Test) -> &'static str {
    match test {
        Test::ConnRate => "1024-65535",
        _ => "4096-4335",
    }
}

/// What the lab is set up for now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Setup {
    /// Both daemons run, with this fast-path mode.
    Daemons(&'static str),
    /// No daemons; the CE and the ISP share an IPv4 link; plain routing.
    Route,
    /// No daemons; the IPv4 link and nftables SNAT to this port range.
    KernelNat(&'static str),
}

/// The lab of one round and the setup it is in.
struct Bench {
    lab: Lab,
    setup: Setup,
    /// The CE's `net.ipv4.conf.all.rp_filter` before a kernel mode set it to 0.
    rp_filter: String,
    secs: u64,
}

const CE_V4: &str = "192.0.2.18/24";
const ISP_V4: &str = "192.0.2.1/24";
const LAN_PREFIX: &str = "192.168.10.0/24";

impl Bench {
    /// Puts the lab into `want`, from whatever it is in.
    fn switch(&mut self, want: Setup) -> Result<(), LabError> {
        if self.setup == want {
            return Ok(());
        }
        let (ce, isp) = (self.lab.ns("ce"), self.lab.ns("isp"));
        match (&self.setup, &want) {
            (Setup::Daemons(_), Setup::Daemons(fp)) => self.lab.restart_daemons(fp)?,
            (Setup::Daemons(_), _) => {
                // Their teardown removes the TUNs and routes; then the CE and the ISP get
                // an IPv4 link of their own.
                self.lab.stop_daemons();
                self.lab
                    .exec_ok(&ce, &["ip", "addr", "add", CE_V4, "dev", "ce-wan"])?;
                self.lab
                    .exec_ok(&isp, &["ip", "addr", "add", ISP_V4, "dev", "isp-ce"])?;
                self.lab.exec_ok(
                    &ce,
                    &["ip", "route", "replace", "default", "via", "192.0.2.1"],
                )?;
                for k in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"] {
                    self.lab.exec_ok(&ce, &["sysctl", "-qw", k])?;
                }
            }
            (_, Setup::Daemons(fp)) => {
                // Back to MAP-E: nothing of the kernel modes is left behind.
                self.kernel_rules(None)?;
                self.isp_route(false)?;
                let _ = self.lab.exec(&ce, &["ip", "route", "del", "default"]);
                self.lab
                    .exec_ok(&ce, &["ip", "addr", "del", CE_V4, "dev", "ce-wan"])?;
                self.lab
                    .exec_ok(&isp, &["ip", "addr", "del", ISP_V4, "dev", "isp-ce"])?;
                let rp = format!("net.ipv4.conf.all.rp_filter={}", self.rp_filter);
                self.lab.exec_ok(&ce, &["sysctl", "-qw", &rp])?;
                self.lab.restart_daemons(fp)?;
            }
            _ => {}
        }
        match want {
            Setup::Route => {
                self.kernel_rules(None)?;
                self.isp_route(true)?;
            }
            Setup::KernelNat(range) => {
                self.isp_route(false)?;
                self.kernel_rules(Some(range))?;
            }
            Setup::Daemons(_) => {}
        }
        self.setup = want;
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// The ISP's route to the LAN via the CE (plain routing only).
    fn isp_route(&self, on: bool) -> Result<(), LabError> {
        let isp = self.lab.ns("isp");
        if on {
            self.lab.exec_ok(
                &isp,
                &["ip", "route", "replace", LAN_PREFIX, "via", "192.0.2.18"],
            )?;
        } else {
            let _ = self.lab.exec(&isp, &["ip", "route", "del", LAN_PREFIX]);
        }
        Ok(())
    }

    /// The kernel NAT's table in the CE with `range` for TCP and UDP, or none.
    fn kernel_rules(&self, range: Option<&str>) -> Result<(), LabError> {
        let ce = self.lab.ns("ce");
        let _ = self
            .lab
            .exec(&ce, &["nft", "delete", "table", "ip", "mapebench"]);
        let Some(range) = range else {
            return Ok(());
        };
        // conntrack's normal TIME_WAIT (the namespace's default, stated so no earlier
        // change of it can leak in): closed connections hold their NAT port for 120 s
        // unless a new SYN for the same tuple takes it over.
        self.lab.exec_ok(
            &ce,
            &[
                "sysctl",
                "-qw",
                "net.netfilter.nf_conntrack_tcp_timeout_time_wait=120",
            ],
        )?;
        let rules = self.lab.dir.join("kernel-nat.nft");
        std::fs::write(
            &rules,
            format!(
                "table ip mapebench {{\n\
                 \tchain post {{\n\
                 \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                 \t\toifname \"ce-wan\" ip saddr {LAN_PREFIX} meta l4proto {{ tcp, udp }} snat to 192.0.2.18:{range}\n\
                 \t\toifname \"ce-wan\" ip saddr {LAN_PREFIX} snat to 192.0.2.18\n\
                 \t}}\n\
                 }}\n"
            ),
        )?;
        self.lab
            .exec_ok(&ce, &["nft", "-f", &rules.display().to_string()])
            .map(|_| ())
    }

    /// Bulk TCP with `streams` streams: bits/s received.
    fn tcp_bps(&self, streams: &str) -> Result<f64, LabError> {
        let v = iperf(&self.lab, &["-t", &self.secs.to_string(), "-P", streams])?;
        Ok(v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0))
    }

    /// Runs `test` in the setup the lab is in, as `mode`.
    fn test(&self, test: Test, mode: Mode, r: &mut BenchResult) -> Result<(), LabError> {
        let name = mode.name();
        match test {
            Test::Tcp1 => {
                r.tcp_1.insert(name, self.tcp_bps("1")?);
            }
            Test::Tcp4 => {
                r.tcp_4.insert(name, self.tcp_bps("4")?);
            }
            Test::Udp64 => {
                let t = self.secs.to_string();
                let v = iperf(&self.lab, &["-t", &t, "-u", "-l", "64", "-b", "0"])?;
                let sum = &v["end"]["sum"];
                let sent = sum["packets"].as_f64().unwrap_or(0.0);
                let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
                let secs_f = sum["seconds"]
                    .as_f64()
                    .unwrap_or(self.secs as f64)
                    .max(0.001);
                r.udp64_pps.insert(name, (sent - lost).max(0.0) / secs_f);
            }
            Test::ConnRate => conn_rate(&self.lab, self.secs, name, r)?,
            Test::Conn240 => conn_240(&self.lab, self.secs, name, r)?,
        }
        Ok(())
    }
}

/// One round on a lab of its own: each test runs every mode, in `order`, before the next
/// test, so that one test's figures are measured within half a minute of each other.
fn round(mape: PathBuf, secs: u64, order: &[Mode]) -> Result<BenchResult, LabError> {
    let mut opts = LabOptions::new(mape, "mape");
    opts.fast_path = "auto".into();
    let lab = Lab::up(opts)?;
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
    let out = lab.exec_ok(
        &lab.ns("ce"),
        &["sysctl", "-n", "net.ipv4.conf.all.rp_filter"],
    )?;
    let rp_filter = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut b = Bench {
        lab,
        setup: Setup::Daemons("auto"),
        rp_filter,
        secs,
    };
    let mut r = BenchResult::default();
    let result = (|| {
        for test in TESTS {
            for &mode in order {
                b.switch(match mode {
                    Mode::Mape => Setup::Daemons("auto"),
                    Mode::MapeTun => Setup::Daemons("off"),
                    Mode::Route => Setup::Route,
                    Mode::KernelNat => Setup::KernelNat(kernel_ports(test)),
                })?;
                b.test(test, mode, &mut r)?;
            }
        }
        Ok(())
    })();
    b.lab.teardown();
    result.map(|()| r)
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
            orders: vec![Mode::order(0).iter().map(|m| m.name()).collect()],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tcp_1"]["mape"], 1.5);
        assert_eq!(v["rounds"][0]["tcp_1"]["mape"], 1.5);
        assert!(v["conn_rate"].as_object().is_some_and(|o| o.is_empty()));
        assert_eq!(v["orders"][0][0], "mape");
    }

    #[test]
    fn each_mode_takes_each_place_once_in_four_rounds() {
        assert_eq!(Mode::order(0), Mode::ALL);
        assert_eq!(
            Mode::order(1),
            [Mode::MapeTun, Mode::Route, Mode::KernelNat, Mode::Mape]
        );
        assert_eq!(Mode::order(4), Mode::order(0));
        for mode in Mode::ALL {
            let mut places: Vec<usize> = (0..4)
                .map(|r| Mode::order(r).iter().position(|&m| m == mode).unwrap())
                .collect();
            places.sort_unstable();
            assert_eq!(places, [0, 1, 2, 3], "{mode:?}");
        }
    }

    #[test]
    fn the_kernel_nat_has_the_whole_range_only_where_ports_must_not_limit() {
        assert_eq!(kernel_ports(Test::ConnRate), "1024-65535");
        for t in [Test::Tcp1, Test::Tcp4, Test::Udp64, Test::Conn240] {
            assert_eq!(kernel_ports(t), "4096-4335", "{t:?}");
        }
    }
}
