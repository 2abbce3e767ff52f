use mape_nat::*;
use mape_rules::PortSet;
use std::net::Ipv4Addr;
fn flow(i: u32) -> OutboundPacket {
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
fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let reps: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let n = 1024u32;
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    let mut nat = Nat::new(cfg, Ipv4Addr::new(192, 0, 2, 1), PortSet::all()).unwrap();
    let mut outs = vec![];
    for i in 0..n {
        let p = flow(i);
        nat.outbound(Timestamp::from_secs(1), &p);
        outs.push(p);
    }
    let now = Timestamp::from_secs(2);
    let mut v = Vec::with_capacity(64);
    for _ in 0..reps {
        match mode.as_str() {
            "prefetch" => {
                for c in outs.chunks(32) {
                    nat.prefetch_outbound(c);
                }
            }
            "batch" => {
                for c in outs.chunks(32) {
                    nat.outbound_batch(now, c, &mut v);
                    std::hint::black_box(&v);
                }
            }
            _ => {
                for p in &outs {
                    std::hint::black_box(nat.outbound(now, p));
                }
            }
        }
    }
}
