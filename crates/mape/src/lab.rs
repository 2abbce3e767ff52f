//! `mape lab up|down|status|demo|storm`: the namespace lab (see crates/mape-lab).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use mape_lab::demo::{DemoOptions, DemoResult};
use mape_lab::{addr, parse_target, Lab, LabOptions};

#[derive(Args, Debug)]
pub(crate) struct LabArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Create the namespaces, start the servers, the BR and the CE; leave them running.
    Up {
        /// NAT policy of the CE.
        #[arg(long, default_value = "mape")]
        policy: String,
    },
    /// Remove every lab (processes by PID, namespaces), also after a crash.
    Down,
    /// List the lab namespaces present.
    Status,
    /// The incident live: lan1's DNS + HTTP while lan2 storms, under each policy.
    Demo {
        /// Policies to compare.
        #[arg(long, value_delimiter = ',', default_value = "mape,rtx830-like")]
        policy: Vec<String>,
        /// Storm seconds per policy.
        #[arg(long, default_value_t = 40)]
        duration: u64,
        /// Rate multiplier over the seed's 2-4 packets / 3 s.
        #[arg(long, default_value_t = 100)]
        rate_x: u32,
        /// Storm target (default: the seed's private address of another network).
        #[arg(long, default_value = "192.168.1.211:59870")]
        target: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// iperf3 and a TCP connect loop through mape, the kernel's NAT (240 ports) and plain
    /// routing, in one run.
    Bench {
        /// Seconds per iperf3 test and for the connect loop.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Rounds of all four modes, each on a lab of its own; the figures are the medians
        /// (1-9).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Garbage and spoofed WAN packets at the lab's CE or BR (run inside the ISP
    /// namespace), or spoofed LAN sources (`--to lan`, inside a LAN host);
    /// crates/mape/tests/lab_wan_garbage.rs.
    #[command(hide = true)]
    Garbage {
        /// `ce`, `br` or `lan`.
        #[arg(long)]
        to: String,
        /// Packets to send.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Packets per second (0: as fast as the kernel takes them).
        #[arg(long, default_value_t = 0)]
        pps: u64,
        /// Seed of the random payloads.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Send the seed's traffic from this host (run inside a LAN namespace).
    Storm {
        /// Target address:port (repeatable; default the seed's two).
        #[arg(long)]
        target: Vec<String>,
        /// Rate multiplier.
        #[arg(long, default_value_t = 1)]
        rate_x: u32,
        /// Seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
    },
}

fn this_binary() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| anyhow!("cannot find the mape binary: {e}"))
}

pub(crate) fn run(args: &LabArgs) -> Result<ExitCode> {
    match &args.what {
        What::Up { policy } => {
            let lab = Lab::up(LabOptions::new(this_binary()?, policy))?;
            println!(
                "lab {} is up (policy {policy}); files in {}",
                lab.prefix,
                lab.dir.display()
            );
            println!("  lan1 192.168.10.10, lan2 192.168.10.23: ip netns exec {}-lan1 dig @203.0.113.10 www.lab.example", lab.prefix);
            println!(
                "  CE control socket: mape show status --socket {}",
                lab.ce_socket().display()
            );
            println!("  remove with: mape lab down");
            // Leave it running: the state file lets `mape lab down` remove it.
            std::mem::forget(lab);
        }
        What::Down => {
            let n = mape_lab::down(true)?;
            println!("removed {n} lab namespace(s)");
        }
        What::Status => {
            let ns = mape_lab::status()?;
            if ns.is_empty() {
                println!("no lab running");
            } else {
                println!("{}", ns.join("\n"));
            }
        }
        What::Demo {
            policy,
            duration,
            rate_x,
            target,
            json,
        } => {
            let target = parse_target(target)
                .ok_or_else(|| anyhow!("--target {target:?}: expected a.b.c.d:port"))?;
            if *duration == 0 || *duration > 600 {
                bail!("--duration {duration}: expected 1-600 seconds");
            }
            let opts = DemoOptions {
                mape: this_binary()?,
                policies: policy.clone(),
                duration: Duration::from_secs(*duration),
                rate_x: *rate_x,
                iterations: 20,
                target,
            };
            if !json {
                eprintln!(
                    "running the storm for {duration} s per policy at {rate_x}x the seed's rate..."
                );
            }
            let r = mape_lab::demo::run(&opts)?;
            if *json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_demo(&r, target);
            }
        }
        What::Bench {
            duration,
            rounds,
            json,
        } => {
            if *duration == 0 || *duration > 120 {
                bail!("--duration {duration}: expected 1-120 seconds");
            }
            if *rounds == 0 || *rounds > mape_lab::bench::MAX_ROUNDS {
                bail!(
                    "--rounds {rounds}: expected 1-{}",
                    mape_lab::bench::MAX_ROUNDS
                );
            }
            let r = mape_lab::bench::run(this_binary()?, *duration, *rounds)?;
            if *json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_bench(&r);
            }
        }
        What::Garbage {
            to,
            count,
            pps,
            seed,
        } => {
            use mape_lab::garbage::{self, Target, KINDS, LAN_KINDS};
            if *count > 100_000_000 {
                bail!("--count {count}: at most 100000000");
            }
            let t0 = std::time::Instant::now();
            let (r, kinds) = match to.as_str() {
                "ce" => (garbage::run(Target::Ce, *count, *pps, *seed)?, &KINDS[..]),
                "br" => (garbage::run(Target::Br, *count, *pps, *seed)?, &KINDS[..]),
                "lan" => (garbage::run_lan(*count, *pps)?, &LAN_KINDS[..]),
                _ => bail!("--to {to:?}: expected ce, br or lan"),
            };
            let by_kind: serde_json::Map<String, serde_json::Value> = kinds
                .iter()
                .zip(r.sent)
                .map(|(k, n)| ((*k).to_string(), n.into()))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "sent": r.total(),
                    "errors": r.errors,
                    "by_kind": by_kind,
                    "seconds": t0.elapsed().as_secs_f64(),
                })
            );
        }
        What::Storm {
            target,
            rate_x,
            duration,
        } => {
            let targets: Vec<_> = if target.is_empty() {
                vec![(addr::PRIVATE_TARGET, 59870), (addr::PRIVATE_TARGET, 59781)]
            } else {
                target
                    .iter()
                    .map(|t| {
                        parse_target(t)
                            .ok_or_else(|| anyhow!("--target {t:?}: expected a.b.c.d:port"))
                    })
                    .collect::<Result<_>>()?
            };
            if *duration > 3600 {
                bail!("--duration {duration}: at most 3600 seconds");
            }
            let r = mape_lab::storm::run(&targets, *rate_x, Duration::from_secs(*duration));
            println!("storm packets sent: {}", r.packets);
            println!("storm send errors: {}", r.errors);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_demo(r: &DemoResult, target: (std::net::Ipv4Addr, u16)) {
    println!();
    println!(
        "lan2 sends the Logitech Flow pattern to {}:{} at {}x for {} s;",
        target.0, target.1, r.rate_x, r.storm_seconds
    );
    println!("lan1 resolves a name and fetches a page 20 times meanwhile.");
    println!("Budget: {} ports, as on v6plus.", r.budget);
    println!();
    println!(
        "{:<13} {:>9} {:>11} {:>17} {:>11}",
        "policy", "lan1 ok", "lan1 failed", "storm in tunnel", "peak ports"
    );
    for p in &r.policies {
        println!(
            "{:<13} {:>9} {:>11} {:>17} {:>7}/{}",
            p.name, p.lan1_ok, p.lan1_failed, p.storm_packets_into_tunnel, p.peak_ports, r.budget
        );
    }
}

fn print_bench(run: &mape_lab::bench::BenchRun) {
    let r = &run.median;
    println!(
        "medians of {} round(s), each on a lab of its own, every test run in every mode \
         back to back (the order turned by one place per round)",
        run.rounds.len()
    );
    println!(
        "{:<12} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "test", "mape", "mape (TUN)", "kernel NAT", "route", "mape/kNAT", "TUN/kNAT"
    );
    let rows = [
        ("tcp 1 strm", &r.tcp_1, 1e9, "Gbit/s"),
        ("tcp 4 strm", &r.tcp_4, 1e9, "Gbit/s"),
        ("udp 64 B", &r.udp64_pps, 1e3, "kpps"),
        ("conn rate", &r.conn_rate, 1.0, "conn/s"),
        ("conn 240", &r.conn_240, 1.0, "conn/s"),
    ];
    for (name, row, scale, unit) in rows {
        let get = |k: &str| row.get(k).copied().unwrap_or(0.0);
        let ratio = |k: &str| kernel_ratio(row, k);
        println!(
            "{:<12} {:>7.2} {:<6} {:>7.2} {:<6} {:>7.2} {:<6} {:>7.2} {:<6} {:>10.2} {:>10.2}",
            name,
            get("mape") / scale,
            unit,
            get("mape_tun") / scale,
            unit,
            get("kernel_nat") / scale,
            unit,
            get("route") / scale,
            unit,
            ratio("mape"),
            ratio("mape_tun")
        );
    }
    let failed = |row: &mape_lab::bench::Row, k: &str| row.get(k).copied().unwrap_or(0.0);
    println!(
        "conn rate: {} connect + close loops, the kernel's NAT over the whole port range; \
         failed connects: mape {}, mape (TUN) {}, kernel NAT {}, route {}",
        mape_lab::bench::RATE_LOOPS,
        failed(&r.conn_rate_failed, "mape"),
        failed(&r.conn_rate_failed, "mape_tun"),
        failed(&r.conn_rate_failed, "kernel_nat"),
        failed(&r.conn_rate_failed, "route")
    );
    println!(
        "conn 240: {} sequential connect + close loops to one server through 240 ports \
         ({} ms per step); failed connects: mape {}, mape (TUN) {}, kernel NAT {}, route {}",
        mape_lab::bench::CONN_LOOPS,
        mape_lab::bench::CONN_TIMEOUT.as_millis(),
        failed(&r.conn_240_failed, "mape"),
        failed(&r.conn_240_failed, "mape_tun"),
        failed(&r.conn_240_failed, "kernel_nat"),
        failed(&r.conn_240_failed, "route")
    );
    if run.rounds.len() > 1 {
        println!("mape / kernel NAT in each round:");
        for (i, round) in run.rounds.iter().enumerate() {
            let order = run.orders.get(i).map(|o| o.join(", ")).unwrap_or_default();
            println!(
                "  round {} ({order}): tcp 1 strm {:.2}, tcp 4 strm {:.2}, udp 64 B {:.2}, conn rate {:.2}, conn 240 {:.2}",
                i + 1,
                kernel_ratio(&round.tcp_1, "mape"),
                kernel_ratio(&round.tcp_4, "mape"),
                kernel_ratio(&round.udp64_pps, "mape"),
                kernel_ratio(&round.conn_rate, "mape"),
                kernel_ratio(&round.conn_240, "mape"),
            );
        }
    }
}

/// `mode`'s figure over the kernel NAT's in `row` (0 without one).
fn kernel_ratio(row: &mape_lab::bench::Row, mode: &str) -> f64 {
    let get = |k: &str| row.get(k).copied().unwrap_or(0.0);
    if get("kernel_nat") > 0.0 {
        get(mode) / get("kernel_nat")
    } else {
        0.0
    }
}
