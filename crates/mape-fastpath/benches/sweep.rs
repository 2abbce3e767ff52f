//! The once-a-second sweep of the CE's entries: `cargo bench -p mape-fastpath --bench
//! sweep` (root: it loads the programs; without CAP_BPF it prints why and measures
//! nothing).
//!
//! With 10 000 and 50 000 flows installed, reading what every entry recorded one flow at
//! a time ([`CeFastPath::seen`], two `bpf()` calls per flow) against one batched read per
//! map ([`CeFastPath::seen_all`]). The daemon holds the datapath lock for the whole
//! sweep, so this is how long the TUN path stalls once a second.
//!
//! `remove_10000`: the removal of 10 000 installed flows (a tick that expires a run of
//! answered UDP flows, say), one `bpf()` call per entry ([`CeFastPath::remove`]) against
//! one batched delete per map ([`CeFastPath::remove_batch`], as the daemon applies a run
//! of removals).
//!
//! Figures read as flows per second through `Throughput::Elements`.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mape_fastpath::{CeFastPath, CeParams};
use mape_nat::{Endpoint, OffloadFlow, Protocol};

fn flows(n: u32) -> Vec<OffloadFlow> {
    (0..n)
        .map(|i| OffloadFlow {
            proto: Protocol::Udp,
            internal: Endpoint::new(
                Ipv4Addr::new(192, 168, (i >> 16) as u8, (i >> 8) as u8),
                1024 + (i & 0xff) as u16,
            ),
            remote: Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 53),
            external: Endpoint::new(Ipv4Addr::new(192, 0, 2, 18), (i % 60_000) as u16 + 1024),
        })
        .collect()
}

/// The CE's programs with room for 65 536 flows; `None` (and why, on stderr) where they
/// do not load.
fn load(bench: &str) -> Option<CeFastPath> {
    CeFastPath::load(CeParams {
        ce_addr: "2001:db8:12:3400:0:c000:212:34".parse().expect("literal"),
        ext_addr: Ipv4Addr::new(192, 0, 2, 18),
        ipv4_mtu: 1460,
        hop_limit: 64,
        max_entries: 65_536,
        mss_in: 1420,
    })
    .map_err(|e| eprintln!("{bench} bench skipped: the programs do not load here ({e})"))
    .ok()
}

fn sweep(c: &mut Criterion) {
    let br: Ipv6Addr = "2001:db8:ffff::1".parse().expect("literal");
    for n in [10_000u32, 50_000] {
        let Some(fp) = load("sweep") else {
            return;
        };
        let fl = flows(n);
        for f in &fl {
            fp.install(f, br, false).expect("install");
        }
        let mut g = c.benchmark_group(format!("sweep_{n}"));
        g.throughput(Throughput::Elements(u64::from(n)));
        g.sample_size(10);
        g.bench_function("per_flow", |b| {
            b.iter(|| {
                let mut k = 0usize;
                for f in &fl {
                    k += usize::from(fp.seen(f).is_some());
                }
                black_box(k)
            })
        });
        g.bench_function("batched", |b| {
            b.iter(|| black_box(fp.seen_all(fl.len()).len()))
        });
        g.finish();
    }
}

fn removal(c: &mut Criterion) {
    let br: Ipv6Addr = "2001:db8:ffff::1".parse().expect("literal");
    let Some(fp) = load("removal") else {
        return;
    };
    let fl = flows(10_000);
    let install = || {
        for f in &fl {
            fp.install(f, br, false).expect("install");
        }
    };
    let mut g = c.benchmark_group("remove_10000");
    g.throughput(Throughput::Elements(fl.len() as u64));
    g.sample_size(10);
    g.bench_function("per_flow", |b| {
        b.iter_batched(
            install,
            |()| {
                for f in &fl {
                    fp.remove(f);
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("batched", |b| {
        b.iter_batched(
            install,
            |()| fp.remove_batch(&fl, &fl),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    assert!(fp.flows().is_empty(), "every entry removed");
}

criterion_group!(benches, sweep, removal);
criterion_main!(benches);
