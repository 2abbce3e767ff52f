//! Replay throughput: packets of a generated capture (flow-storm at 10x for 30 min, raw
//! IPv4 pcap held in memory) read, decoded and run through one policy, then through all
//! three side by side. Throughput is in packets (elements) per second on one core.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mape_nat::{NatConfig, POLICY_NAMES};
use mape_replay::{
    budget_port_set, linktype, replay_capture, replay_scenario_to_pcap, PcapWriter, ReplayConfig,
    ScenarioKind, ScenarioParams,
};

fn capture() -> (Vec<u8>, u64) {
    let mut p = ScenarioParams::new(ScenarioKind::FlowStorm);
    p.rate_x = 10.0;
    p.duration_s = 1800;
    let cfg = ReplayConfig::new(budget_port_set(240).expect("240 ports"));
    let mut w = PcapWriter::new(Vec::new(), linktype::RAW).expect("pcap header");
    let r = replay_scenario_to_pcap(&p, cfg, &mut w, linktype::RAW, |_, _| {}).expect("scenario");
    (w.finish().expect("flush"), r.packets)
}

fn bench(c: &mut Criterion) {
    let (pcap, packets) = capture();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(packets));
    g.sample_size(10);
    for name in POLICY_NAMES {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut cfg = ReplayConfig::new(budget_port_set(240).expect("240 ports"));
                cfg.policies = vec![NatConfig::policy(name).expect("built-in policy")];
                let r = replay_capture(Cursor::new(black_box(&pcap[..])), cfg, "bench", |_, _| {})
                    .expect("replay");
                black_box(r.policies[0].peak_ports)
            })
        });
    }
    g.bench_function("all-three", |b| {
        b.iter(|| {
            let cfg = ReplayConfig::new(budget_port_set(240).expect("240 ports"));
            let r = replay_capture(Cursor::new(black_box(&pcap[..])), cfg, "bench", |_, _| {})
                .expect("replay");
            black_box(r.policies.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
