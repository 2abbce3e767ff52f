//! What a host that burns the budget is doing, as a typed value with its evidence (issue
//! #17 §2), and the same in the words every view uses (`show culprits`, events, the replay
//! report and its plot).
//!
//! The evidence is what the engine records per host anyway: the destinations of its recent
//! flows that could not be kept (ended unanswered, filtered, refused) in a small ring, a
//! sketch of how many distinct destinations those were in the last two minutes (linear
//! counting over 256 bits), the spread of its source ports, and its rate of DNS queries.

use core::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::types::{Endpoint, Protocol, Timestamp};

/// A pattern of traffic, from the host's own records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// A new source port for each flow to one destination, never answered: the seed's
    /// Logitech Options+ Flow discovery.
    NewPortEachFlow {
        /// Protocol.
        proto: Protocol,
        /// The destination.
        dst: Endpoint,
    },
    /// Flows to one destination that are never answered (from the same few ports).
    Unanswered {
        /// Protocol.
        proto: Protocol,
        /// The destination.
        dst: Endpoint,
    },
    /// New flows to many destinations, mostly unanswered: a P2P client or a scanner.
    FanOut {
        /// Protocol.
        proto: Protocol,
        /// Distinct destinations in the last two minutes (estimated).
        destinations: u32,
        /// The most frequent of them, most frequent first.
        top: Vec<Endpoint>,
    },
    /// TCP connection attempts whose SYNs are never answered.
    UnansweredSyns {
        /// Distinct destinations in the last two minutes (estimated).
        destinations: u32,
        /// The most frequent of them.
        top: Vec<Endpoint>,
    },
    /// A storm of DNS queries.
    DnsStorm {
        /// The most new DNS queries the host sent within one minute.
        per_minute: u32,
        /// The resolvers asked most.
        resolvers: Vec<Endpoint>,
    },
    /// Many ports held by answered, long-lived flows: heavy but legitimate use.
    HeavyUse {
        /// Live one-shot exchanges that got their answer.
        answered_once: u32,
        /// Live streams.
        streams: u32,
        /// Live TCP connections neither unanswered nor closing.
        open_tcp: u32,
    },
}

impl Pattern {
    /// The destination the pattern points at, when it has one.
    pub fn destination(&self) -> Option<Endpoint> {
        match self {
            Pattern::NewPortEachFlow { dst, .. } | Pattern::Unanswered { dst, .. } => Some(*dst),
            Pattern::FanOut { .. } | Pattern::UnansweredSyns { .. } | Pattern::HeavyUse { .. } => {
                None
            }
            Pattern::DnsStorm { resolvers, .. } => resolvers.first().copied(),
        }
    }

    /// Whether the pattern is a storm (something to stop), not heavy legitimate use.
    pub fn is_storm(&self) -> bool {
        !matches!(self, Pattern::HeavyUse { .. })
    }
}

fn list(top: &[Endpoint]) -> String {
    top.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::NewPortEachFlow { proto, dst } => {
                write!(f, "{proto} to {dst} from new source ports, never answered")
            }
            Pattern::Unanswered { proto, dst } => write!(f, "{proto} to {dst}, never answered"),
            Pattern::FanOut {
                proto,
                destinations,
                top,
            } => write!(
                f,
                "{proto} to {destinations} destinations, mostly unanswered (fan-out: a P2P \
                 client or a scan; most: {})",
                list(top)
            ),
            Pattern::UnansweredSyns { destinations, top } => write!(
                f,
                "tcp connection attempts to {destinations} destinations never answered (most: {})",
                list(top)
            ),
            Pattern::DnsStorm {
                per_minute,
                resolvers,
            } => write!(
                f,
                "a DNS query storm, up to {per_minute} queries a minute (to {})",
                list(resolvers)
            ),
            Pattern::HeavyUse {
                answered_once,
                streams,
                open_tcp,
            } => write!(
                f,
                "heavy but legitimate use: {open_tcp} open tcp connections, {streams} streams, \
                 {answered_once} answered exchanges"
            ),
        }
    }
}

/// Slots of the ring of recent flows a host could not keep.
const RECENT: usize = 32;
/// Bits of each minute's distinct-destination sketch.
const SKETCH_BITS: u32 = 256;
/// At least this many distinct destinations make a fan-out.
const FAN_OUT_MIN: u32 = 16;

/// The per-host evidence the classification reads.
#[derive(Debug, Clone)]
pub(crate) struct Evidence {
    recent: [(Protocol, Endpoint); RECENT],
    recent_len: usize,
    recent_next: usize,
    sketch: [[u64; 4]; 2],
    sketch_minute: u64,
}

impl Default for Evidence {
    fn default() -> Self {
        Self {
            recent: [(Protocol::Udp, Endpoint::new(Ipv4Addr::UNSPECIFIED, 0)); RECENT],
            recent_len: 0,
            recent_next: 0,
            sketch: [[0; 4]; 2],
            sketch_minute: 0,
        }
    }
}

fn bit_of(proto: Protocol, dst: Endpoint) -> u32 {
    // A fixed mix: the sketch only estimates a count, nothing is keyed by it.
    let x = (u64::from(u32::from(dst.addr)) << 24) ^ (u64::from(dst.port) << 4) ^ proto as u64;
    // SplitMix64's finalizer: every input bit moves every output bit.
    let mut h = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h % u64::from(SKETCH_BITS)) as u32
}

impl Evidence {
    /// A flow of the host's to `dst` that could not be kept.
    pub(crate) fn note(&mut self, now: Timestamp, proto: Protocol, dst: Endpoint) {
        self.recent[self.recent_next] = (proto, dst);
        self.recent_next = (self.recent_next + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);
        self.roll(now);
        let b = bit_of(proto, dst);
        self.sketch[0][(b / 64) as usize] |= 1 << (b % 64);
    }

    fn roll(&mut self, now: Timestamp) {
        let minute = now.millis() / 60_000;
        if minute > self.sketch_minute {
            self.sketch[1] = if minute == self.sketch_minute + 1 {
                self.sketch[0]
            } else {
                [0; 4]
            };
            self.sketch[0] = [0; 4];
            self.sketch_minute = minute;
        }
    }

    /// Distinct destinations in the last two minutes, by linear counting.
    pub(crate) fn distinct(&self, now: Timestamp) -> u32 {
        let mut bits = [0u64; 4];
        let minute = now.millis() / 60_000;
        for (i, w) in bits.iter_mut().enumerate() {
            if minute <= self.sketch_minute + 1 {
                *w = self.sketch[0][i];
            }
            if minute == self.sketch_minute {
                *w |= self.sketch[1][i];
            }
        }
        let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let zero = SKETCH_BITS - set;
        if zero == 0 {
            return SKETCH_BITS * 4;
        }
        let m = f64::from(SKETCH_BITS);
        (-m * (f64::from(zero) / m).ln()).round() as u32
    }

    /// The ring's destinations by count, most frequent first (ties: the latest first).
    fn ranked(&self) -> Vec<((Protocol, Endpoint), u32)> {
        let mut out: Vec<((Protocol, Endpoint), u32)> = Vec::new();
        for k in 0..self.recent_len {
            let i = (self.recent_next + RECENT - 1 - k) % RECENT;
            let e = self.recent[i];
            match out.iter_mut().find(|(x, _)| *x == e) {
                Some((_, n)) => *n += 1,
                None => out.push((e, 1)),
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.1));
        out
    }

    /// Whether nothing was noted.
    pub(crate) fn is_empty(&self) -> bool {
        self.recent_len == 0
    }

    /// The storm pattern the evidence shows, if any; `spread` is the share of new flows
    /// from new source ports, `dns_per_minute` the most DNS queries it sent in a minute.
    pub(crate) fn classify(
        &self,
        now: Timestamp,
        spread: f64,
        dns_per_minute: u32,
    ) -> Option<Pattern> {
        if self.recent_len == 0 {
            return None;
        }
        let ranked = self.ranked();
        let n = self.recent_len as f64;
        let share = |f: &dyn Fn(&(Protocol, Endpoint)) -> bool| {
            self.recent[..self.recent_len]
                .iter()
                .filter(|e| f(e))
                .count() as f64
                / n
        };
        let tcp = share(&|e| e.0 == Protocol::Tcp);
        let dns = share(&|e| e.0 == Protocol::Udp && e.1.port == 53);
        let top_share = f64::from(ranked[0].1) / n;
        let (proto, dst) = ranked[0].0;
        let top: Vec<Endpoint> = ranked.iter().take(3).map(|(e, _)| e.1).collect();
        let destinations = self.distinct(now).max(ranked.len() as u32);
        Some(if dns > 0.5 {
            Pattern::DnsStorm {
                per_minute: dns_per_minute,
                resolvers: ranked
                    .iter()
                    .filter(|(e, _)| e.1.port == 53)
                    .take(3)
                    .map(|(e, _)| e.1)
                    .collect(),
            }
        } else if destinations >= FAN_OUT_MIN && top_share < 0.5 {
            let udp = share(&|e| e.0 == Protocol::Udp);
            let proto = if tcp >= udp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            Pattern::FanOut {
                proto,
                destinations,
                top,
            }
        } else if tcp > 0.5 {
            Pattern::UnansweredSyns { destinations, top }
        } else if spread > 0.5 {
            Pattern::NewPortEachFlow { proto, dst }
        } else {
            Pattern::Unanswered { proto, dst }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: u32, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), port)
    }

    #[test]
    fn one_destination_from_new_ports_is_the_seed_pattern() {
        let mut e = Evidence::default();
        let dst = ep(0xC0A8_01D3, 59870);
        for s in 0..20 {
            e.note(Timestamp::from_secs(s), Protocol::Udp, dst);
        }
        let p = e.classify(Timestamp::from_secs(20), 1.0, 0).unwrap();
        assert_eq!(
            p,
            Pattern::NewPortEachFlow {
                proto: Protocol::Udp,
                dst
            }
        );
        assert_eq!(
            p.to_string(),
            "udp to 192.168.1.211:59870 from new source ports, never answered"
        );
        assert_eq!(p.destination(), Some(dst));
        let same_port = e.classify(Timestamp::from_secs(20), 0.1, 0).unwrap();
        assert_eq!(
            same_port,
            Pattern::Unanswered {
                proto: Protocol::Udp,
                dst
            }
        );
    }

    #[test]
    fn many_destinations_are_a_fan_out_with_a_count() {
        let mut e = Evidence::default();
        // 200 peers, each once: the ring keeps 32, the sketch counts them all.
        for i in 0..200u32 {
            e.note(
                Timestamp::from_millis(u64::from(i) * 100),
                Protocol::Udp,
                ep(0x0B00_0000 + i * 7, 6881),
            );
        }
        let Some(Pattern::FanOut {
            proto,
            destinations,
            top,
        }) = e.classify(Timestamp::from_secs(20), 0.0, 0)
        else {
            panic!("not a fan-out");
        };
        assert_eq!(proto, Protocol::Udp);
        // Linear counting over 256 bits: within ~15 % at 200.
        assert!((170..=235).contains(&destinations), "{destinations}");
        assert_eq!(top.len(), 3);
    }

    #[test]
    fn unanswered_syns_and_dns_storms_are_named() {
        let mut e = Evidence::default();
        for i in 0..40u32 {
            e.note(
                Timestamp::from_secs(1),
                Protocol::Tcp,
                ep(0x0B00_0000 + i % 3, 443),
            );
        }
        assert!(matches!(
            e.classify(Timestamp::from_secs(2), 1.0, 0),
            Some(Pattern::UnansweredSyns {
                destinations: 3,
                ..
            })
        ));
        // SYNs to many peers are a fan-out.
        let mut f = Evidence::default();
        for i in 0..40u32 {
            f.note(
                Timestamp::from_secs(1),
                Protocol::Tcp,
                ep(0x0B00_0000 + i, 443),
            );
        }
        assert!(matches!(
            f.classify(Timestamp::from_secs(2), 1.0, 0),
            Some(Pattern::FanOut {
                proto: Protocol::Tcp,
                ..
            })
        ));
        let mut d = Evidence::default();
        for _ in 0..40 {
            d.note(Timestamp::from_secs(1), Protocol::Udp, ep(0x0808_0808, 53));
        }
        let p = d.classify(Timestamp::from_secs(2), 1.0, 420).unwrap();
        assert_eq!(
            p.to_string(),
            "a DNS query storm, up to 420 queries a minute (to 8.8.8.8:53)"
        );
    }

    #[test]
    fn the_sketch_forgets_after_two_minutes() {
        let mut e = Evidence::default();
        for i in 0..100u32 {
            e.note(Timestamp::from_secs(1), Protocol::Udp, ep(i, 1));
        }
        assert!(e.distinct(Timestamp::from_secs(61)) > 50);
        assert_eq!(e.distinct(Timestamp::from_secs(121)), 0);
        let h = Pattern::HeavyUse {
            answered_once: 3,
            streams: 2,
            open_tcp: 100,
        };
        assert!(!h.is_storm());
        assert_eq!(
            h.to_string(),
            "heavy but legitimate use: 100 open tcp connections, 2 streams, 3 answered exchanges"
        );
    }
}
