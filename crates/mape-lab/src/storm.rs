//! The seed's traffic: 2-4 UDP packets every 3 s, each from a new source port (a fresh
//! socket), to a target that never answers — Logitech Options+ "Flow" discovery sending to
//! a private address of another network. Bounded in count and time.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// What was sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct StormReport {
    /// Datagrams sent.
    pub packets: u64,
    /// Sends the local stack refused (e.g. ICMP admin-prohibited came back).
    pub errors: u64,
}

/// Sends the pattern to `targets` (alternating) at `rate_x` times the seed's rate for
/// `duration`. Every burst uses new sockets, hence new source ports.
pub fn run(targets: &[(Ipv4Addr, u16)], rate_x: u32, duration: Duration) -> StormReport {
    let mut report = StormReport::default();
    if targets.is_empty() {
        return report;
    }
    let period = Duration::from_millis(3000 / u64::from(rate_x.max(1)).min(3000));
    let t0 = Instant::now();
    let mut burst: u64 = 0;
    // Bounded: at most duration / period bursts, and never more than 10 million packets.
    while t0.elapsed() < duration && report.packets < 10_000_000 {
        let n = 2 + (burst % 3); // 2, 3, 4, 2, 3, 4 ...
        for i in 0..n {
            let (addr, port) = targets[((burst + i) as usize) % targets.len()];
            match UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
                Ok(s) => {
                    // 64 bytes like a discovery probe.
                    match s.send_to(&[0x4c; 64], SocketAddrV4::new(addr, port)) {
                        Ok(_) => report.packets += 1,
                        Err(_) => report.errors += 1,
                    }
                }
                Err(_) => report.errors += 1,
            }
        }
        burst += 1;
        let next = period * (burst as u32);
        if let Some(wait) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    report
}
