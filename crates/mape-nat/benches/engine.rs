//! Engine benchmarks: `cargo bench -p mape-nat --bench engine`.
//!
//! - `established`: lookup + translate of packets of live flows, with 1 k and 1 M sessions
//!   in the table (k = 0, all 65 536 ports, so a million sessions fit).
//! - `new_flow`: allocate a port, insert, arm the timer (and later expire), on the 240-port
//!   v6plus set and on a full address.
//!
//! Figures read as packets (flows) per second through `Throughput::Elements`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mape_nat::*;
use mape_rules::PortSet;

const EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn flow(i: u32) -> OutboundPacket {
    // 64 LAN hosts × ports, to 4096 remotes: distinct 5-tuples.
    OutboundPacket {
        proto: Protocol::Udp,
        src: Endpoint::new(
            Ipv4Addr::new(192, 168, 1, (i % 64) as u8 + 1),
            1024 + (i / 64 % 60000) as u16,
        ),
        dst: Endpoint::new(
            Ipv4Addr::from(0x0808_0000 + (i % 4096)),
            443 + (i / (64 * 60000)) as u16,
        ),
        flags: TcpFlags::NONE,
    }
}

fn filled(n: u32) -> (Nat, Vec<OutboundPacket>, Vec<InboundPacket>) {
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    cfg.max_sessions = n + 1;
    let mut nat = Nat::new(cfg, EXT, PortSet::all()).unwrap();
    let mut outs = Vec::with_capacity(n as usize);
    let mut ins = Vec::with_capacity(n as usize);
    let now = Timestamp::from_secs(1);
    for i in 0..n {
        let p = flow(i);
        if let OutboundVerdict::Translate { external } = nat.outbound(now, &p) {
            let r = InboundPacket {
                proto: p.proto,
                src: p.dst,
                dst: external,
                flags: TcpFlags::NONE,
            };
            nat.inbound(now, &r);
            outs.push(p);
            ins.push(r);
        }
    }
    assert_eq!(nat.session_count() as usize, outs.len());
    (nat, outs, ins)
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    for &n in &[1_000u32, 1_000_000] {
        let (mut nat, outs, ins) = filled(n);
        // Visit flows in a scrambled order so the table is not walked sequentially.
        let order: Vec<usize> = (0..outs.len()).map(|i| (i * 7919) % outs.len()).collect();
        const BATCH: usize = 4096;
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut k = 0usize;
        g.bench_function(format!("outbound/{n}_sessions"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = &outs[order[k % order.len()]];
                    k += 1;
                    black_box(nat.outbound(Timestamp::from_secs(2), black_box(p)));
                }
            })
        });
        if n > 10_000 {
            // Real traffic is skewed: most packets belong to a small set of busy flows.
            // 90 % of packets from a hot set of 10 k flows, 10 % from the rest.
            let hot: Vec<usize> = (0..order.len())
                .map(|i| {
                    if i % 10 == 0 {
                        order[i]
                    } else {
                        order[i % 10_000]
                    }
                })
                .collect();
            g.bench_function(format!("outbound_hot10k/{n}_sessions"), |b| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        let p = &outs[hot[k % hot.len()]];
                        k += 1;
                        black_box(nat.outbound(Timestamp::from_secs(2), black_box(p)));
                    }
                })
            });
        }
        g.bench_function(format!("inbound/{n}_sessions"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = &ins[order[k % order.len()]];
                    k += 1;
                    black_box(nat.inbound(Timestamp::from_secs(2), black_box(p)));
                }
            })
        });
    }
    g.finish();
}

fn new_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_flow");
    const FLOWS: u32 = 10_000;
    g.throughput(Throughput::Elements(u64::from(FLOWS)));
    for (name, ports) in [
        ("full_address", PortSet::all()),
        ("v6plus_240", PortSet::new(161, 8, 4).unwrap()),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut cfg = NatConfig::mape();
                    cfg.quota = None;
                    Nat::new(cfg, EXT, ports).unwrap()
                },
                |nat| {
                    // Each flow its own remote so the 240-port set shares ports under pressure;
                    // time advances so old flows expire (the steady state of a busy CE).
                    for i in 0..FLOWS {
                        let now = Timestamp::from_millis(u64::from(i) * 5);
                        black_box(nat.outbound(now, &flow(i)));
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Memory per session: measured by counting the bytes the table holds after a million
/// sessions (arena capacity + index capacity), printed once.
fn memory(c: &mut Criterion) {
    let (nat, outs, _) = filled(1_000_000);
    let bytes = nat.table_bytes();
    println!(
        "memory: {} sessions, {} bytes in the table, {:.1} bytes/session",
        outs.len(),
        bytes,
        bytes as f64 / outs.len() as f64
    );
    let _ = c;
}

criterion_group!(benches, established, new_flow, memory);
criterion_main!(benches);
