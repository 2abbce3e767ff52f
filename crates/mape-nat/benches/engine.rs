//! Engine benchmarks: `cargo bench -p mape-nat --bench engine`.
//!
//! - `established`: lookup + translate of packets of live flows, with 1 k and 1 M sessions
//!   in the table (k = 0, all 65 536 ports, so a million sessions fit): one packet at a
//!   time, and in batches of 32 and 64 (the daemon's TUN read batch) through
//!   `Nat::outbound_batch`, which overlaps the cache misses of a batch. Flows are visited in
//!   a scrambled order (uniformly: the worst case), by a Zipf law, or 90 % from a hot set.
//!   `memory_floor_batch64` measures, in the same run, what two random cache-line loads and
//!   one store per packet cost at that size with no engine work: the floor the batch
//!   figures approach.
//! - `new_flow`: allocate a port, insert, arm the timer (and later expire), on the 240-port
//!   v6plus set and on a full address.
//! - `reclaim`: new flows that find the 240-port budget exhausted and take the oldest
//!   unanswered flow of the host furthest over its cap, with 100 and 100 000 host records
//!   in the engine (the idle ones left by a storm of spoofed sources): the victim comes
//!   from an index, so the figure should not depend on the number of hosts.
//!
//! Figures read as packets (flows) per second through `Throughput::Elements`.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

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
        seq: 0,
        ack: 0,
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
                seq: 0,
                ack: 0,
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
        // Visit flows in a scrambled order so the table is not walked sequentially. The
        // packets are laid out in that order beforehand: a real datapath finds each packet
        // in a buffer it has just read, so the benchmark must not add a cache miss of its own
        // to fetch it.
        let order: Vec<usize> = (0..outs.len()).map(|i| (i * 7919) % outs.len()).collect();
        let out_stream: Vec<OutboundPacket> = order.iter().map(|&i| outs[i]).collect();
        let in_stream: Vec<InboundPacket> = order.iter().map(|&i| ins[i]).collect();
        const BATCH: usize = 4096;
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut k = 0usize;
        let now = Timestamp::from_secs(2);
        g.bench_function(format!("outbound/{n}_sessions"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = &out_stream[k % out_stream.len()];
                    k += 1;
                    black_box(nat.outbound(now, black_box(p)));
                }
            })
        });
        g.bench_function(format!("inbound/{n}_sessions"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let p = &in_stream[k % in_stream.len()];
                    k += 1;
                    black_box(nat.inbound(now, black_box(p)));
                }
            })
        });
        // The daemon hands the engine batches of up to 64 packets (one TUN read batch): the
        // batch calls load the whole batch's buckets and sessions first, overlapping their
        // cache misses. 32 for comparison.
        let mut verdicts = Vec::with_capacity(64);
        let mut in_verdicts = Vec::with_capacity(64);
        for size in [32usize, 64] {
            g.bench_function(format!("outbound_batch{size}/{n}_sessions"), |b| {
                b.iter(|| {
                    for _ in 0..BATCH / size {
                        let at = k % (out_stream.len() - size + 1);
                        k += size;
                        let pkts = black_box(&out_stream[at..at + size]);
                        nat.outbound_batch(now, pkts, &mut verdicts);
                        black_box(&verdicts);
                    }
                })
            });
        }
        g.bench_function(format!("inbound_batch64/{n}_sessions"), |b| {
            b.iter(|| {
                for _ in 0..BATCH / 64 {
                    let at = k % (in_stream.len() - 63);
                    k += 64;
                    nat.inbound_batch(now, black_box(&in_stream[at..at + 64]), &mut in_verdicts);
                    black_box(&in_verdicts);
                }
            })
        });
        if n > 10_000 {
            memory_floor(&mut g, n);
            // Real traffic is skewed: most packets belong to a small set of busy flows.
            // 90 % of packets from a hot set of 10 k flows, 10 % from the rest.
            let hot: Vec<OutboundPacket> = (0..order.len())
                .map(|i| {
                    if i % 10 == 0 {
                        out_stream[i]
                    } else {
                        out_stream[i % 10_000]
                    }
                })
                .collect();
            // Flow popularity that follows Zipf's law (s = 1) over all the flows, the usual
            // model of Internet flow sizes: a packet belongs to the flow of rank r with
            // probability proportional to 1/r. Ranks are scattered over the table.
            let zipf = zipf_stream(&out_stream, 1 << 20);
            g.bench_function(format!("outbound_hot10k/{n}_sessions"), |b| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        let p = &hot[k % hot.len()];
                        k += 1;
                        black_box(nat.outbound(now, black_box(p)));
                    }
                })
            });
            for (name, stream) in [("hot10k", &hot), ("zipf", &zipf)] {
                g.bench_function(format!("outbound_{name}_batch64/{n}_sessions"), |b| {
                    b.iter(|| {
                        for _ in 0..BATCH / 64 {
                            let at = k % (stream.len() - 63);
                            k += 64;
                            nat.outbound_batch(now, black_box(&stream[at..at + 64]), &mut verdicts);
                            black_box(&verdicts);
                        }
                    })
                });
            }
        }
    }
    g.finish();
}

/// The memory floor of an established lookup at this table size, measured in the same run
/// for reference: per packet, one random cache line from an array the size of the index
/// and one from an array the size of the session arena, loaded the way the batch calls load
/// them (a batch of 64 bucket lines, then 64 session lines), and one word written in each
/// session line (as a lookup refreshes its session), with no engine work at all.
fn memory_floor(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: u32) {
    #[derive(Clone, Copy)]
    #[repr(align(64))]
    struct Line([u64; 8]);
    let index = vec![Line([1; 8]); (n as usize / 8).next_power_of_two()];
    let mut arena = vec![Line([1; 8]); n as usize];
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let picks: Vec<(usize, usize)> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let a = ((u128::from(state) * index.len() as u128) >> 64) as usize;
            let b = ((u128::from(state.rotate_left(32)) * arena.len() as u128) >> 64) as usize;
            (a, b)
        })
        .collect();
    let mut k = 0usize;
    g.bench_function(format!("memory_floor_batch64/{n}_sessions"), |b| {
        b.iter(|| {
            for _ in 0..4096 / 64 {
                let at = k % (picks.len() - 63);
                k += 64;
                let batch = &picks[at..at + 64];
                let mut acc = 0u64;
                for &(i, _) in batch {
                    acc ^= index[i].0[0];
                }
                black_box(acc);
                let mut acc = 0u64;
                for &(_, j) in batch {
                    acc ^= arena[j].0[0];
                }
                black_box(acc);
                for &(_, j) in batch {
                    arena[j].0[1] = arena[j].0[1].wrapping_add(1);
                }
            }
        })
    });
}

/// `len` packets drawn from `flows` by a Zipf (s = 1) law: rank r has weight 1/r.
fn zipf_stream(flows: &[OutboundPacket], len: usize) -> Vec<OutboundPacket> {
    let mut cumulative = Vec::with_capacity(flows.len());
    let mut total = 0.0f64;
    for r in 1..=flows.len() {
        total += 1.0 / r as f64;
        cumulative.push(total);
    }
    // SplitMix64: a fixed, reproducible sequence.
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..len)
        .map(|_| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cumulative.partition_point(|&c| c < u).min(flows.len() - 1);
            flows[rank]
        })
        .collect()
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

fn reclaim(c: &mut Criterion) {
    let mut g = c.benchmark_group("reclaim");
    const ASKERS: u32 = 100;
    let remote = Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 443);
    let udp = |src: Endpoint, dst: Endpoint| OutboundPacket {
        proto: Protocol::Udp,
        src,
        dst,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    g.throughput(Throughput::Elements(u64::from(ASKERS)));
    for hosts in [100u32, 100_000] {
        g.bench_function(format!("over_cap/{hosts}_hosts"), |b| {
            b.iter_batched_ref(
                || {
                    let cfg = NatConfig {
                        max_hosts: 1 << 17,
                        ..NatConfig::mape()
                    };
                    let mut nat = Nat::new(cfg, EXT, PortSet::new(161, 8, 4).unwrap()).unwrap();
                    let t0 = Timestamp::from_millis(0);
                    // Idle records: one attempt each to a blocked destination (RFC 6890).
                    let blocked = Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), 53);
                    for i in 0..hosts {
                        let src = Endpoint::new(Ipv4Addr::from(0xac10_0000 + i), 5000);
                        nat.outbound(t0, &udp(src, blocked));
                    }
                    // One host takes 200 ports while alone, another the other 40, all
                    // unanswered flows to one remote: the first is over its cap.
                    for (host, n) in [(2u8, 200u16), (3, 40)] {
                        for port in 0..n {
                            let src =
                                Endpoint::new(Ipv4Addr::new(192, 168, 1, host), 10_000 + port);
                            nat.outbound(t0, &udp(src, remote));
                        }
                    }
                    nat
                },
                |nat| {
                    // Newcomers to the same remote: no port to share, none free.
                    for i in 0..ASKERS {
                        let now = Timestamp::from_millis(1 + u64::from(i));
                        let src = Endpoint::new(Ipv4Addr::new(192, 168, 2, i as u8), 5000);
                        black_box(nat.outbound(now, &udp(src, remote)));
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

criterion_group!(benches, established, new_flow, reclaim, memory);
criterion_main!(benches);
