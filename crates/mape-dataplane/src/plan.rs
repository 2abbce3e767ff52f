//! What the CE decided about a packet before the NAT sees it ([`Plan`]), and the runs of
//! plain flow packets a batch hands to the NAT together ([`Runs`]).
//!
//! Everything a packet goes through before its NAT lookup (header checks, §8.1 checks,
//! route and tunnel MTU) has no side effect, so a batch can check every packet first, look
//! up a run of consecutive flow packets with [`mape_nat::Nat::outbound_batch`] /
//! [`mape_nat::Nat::inbound_batch`] (their cache misses overlapped), then finish each
//! packet with its verdict, in order: the outputs, counters and NAT state are those of one
//! packet at a time. Anything with side effects of its own (fragments, ICMP errors, TTL
//! expiry, "fragmentation needed", extension headers) is taken one at a time in its place.

use core::net::Ipv6Addr;

use mape_nat::{InboundPacket, InboundVerdict, Nat, OutboundPacket, OutboundVerdict, Timestamp};

use crate::drop::DropReason;
use crate::l4::L4Kind;

/// An unfragmented LAN datagram that passed every check before the NAT.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LanFlow {
    /// What the NAT looks up.
    pub(crate) nat: OutboundPacket,
    pub(crate) kind: L4Kind,
    /// A TCP SYN (its MSS is clamped).
    pub(crate) syn: bool,
    /// Tunnel destination (BR or peer CE) and the tunnel IPv4 MTU toward it.
    pub(crate) dst6: Ipv6Addr,
    pub(crate) mtu4: u16,
    /// Length of the datagram (without link padding).
    pub(crate) len: usize,
}

/// A datagram decapsulated from the tunnel that passed every check before the NAT.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WanFlow {
    /// What the NAT looks up.
    pub(crate) nat: InboundPacket,
    pub(crate) kind: L4Kind,
    /// A TCP SYN or SYN-ACK (its MSS is clamped).
    pub(crate) syn: bool,
    /// Offset of the IPv4 datagram in the input and its length.
    pub(crate) at: usize,
    pub(crate) len: usize,
}

/// What becomes of a packet read from the TUN (or of a whole datagram), as far as it is
/// known without side effects. One enum for both directions, returned as it is by the
/// checks: re-wrapping a plan into another enum cost a store-forwarding stall per packet
/// (`cargo bench -p mape-dataplane --bench pipeline`, 64 flows).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    /// A LAN datagram for the NAT and the tunnel.
    Out(LanFlow),
    /// A datagram from the tunnel for the NAT and the LAN.
    In(WanFlow),
    /// Dropped for this reason (no side effect but the count).
    Drop(DropReason),
    /// RFC 1812 §5.3.1: time exceeded goes back to the sender.
    TtlExpired,
    /// An ICMP error, translated through its embedded packet (RFC 5508 §4.2).
    IcmpError,
    /// Too big for the tunnel with DF set: "fragmentation needed" with this MTU.
    TooBig(u16),
    /// Takes the full path (fragments, extension headers).
    Other,
}

/// The pending run of a batch: consecutive flow packets of one direction, with their
/// positions in the batch, the NAT keys as one slice and room for the verdicts. Reused
/// from batch to batch: nothing is allocated once the vectors reached the batch size.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    pub(crate) out_flows: Vec<(usize, LanFlow)>,
    pub(crate) out_keys: Vec<OutboundPacket>,
    pub(crate) out_verdicts: Vec<OutboundVerdict>,
    pub(crate) in_flows: Vec<(usize, WanFlow)>,
    pub(crate) in_keys: Vec<InboundPacket>,
    pub(crate) in_verdicts: Vec<InboundVerdict>,
}

impl Runs {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Runs {
            out_flows: Vec::with_capacity(n),
            out_keys: Vec::with_capacity(n),
            out_verdicts: Vec::with_capacity(n),
            in_flows: Vec::with_capacity(n),
            in_keys: Vec::with_capacity(n),
            in_verdicts: Vec::with_capacity(n),
        }
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.out_flows.is_empty() && self.in_flows.is_empty()
    }

    /// Adds LAN flow packet `i`; `false` (nothing added) while a tunnel run is pending.
    pub(crate) fn push_out(&mut self, i: usize, f: LanFlow) -> bool {
        if !self.in_flows.is_empty() {
            return false;
        }
        self.out_keys.push(f.nat);
        self.out_flows.push((i, f));
        true
    }

    /// Adds tunnel flow packet `i`; `false` (nothing added) while a LAN run is pending.
    pub(crate) fn push_in(&mut self, i: usize, f: WanFlow) -> bool {
        if !self.out_flows.is_empty() {
            return false;
        }
        self.in_keys.push(f.nat);
        self.in_flows.push((i, f));
        true
    }

    /// The NAT verdicts of the pending run, in order: together (`*_batch`, their cache
    /// misses overlapped) when `together`, else one by one.
    pub(crate) fn look_up(&mut self, nat: &mut Nat, now: Timestamp, together: bool) {
        let together = together && self.out_keys.len() + self.in_keys.len() > 1;
        if !self.out_keys.is_empty() {
            if together {
                nat.outbound_batch(now, &self.out_keys, &mut self.out_verdicts);
            } else {
                self.out_verdicts.clear();
                for k in &self.out_keys {
                    self.out_verdicts.push(nat.outbound(now, k));
                }
            }
        }
        if !self.in_keys.is_empty() {
            if together {
                nat.inbound_batch(now, &self.in_keys, &mut self.in_verdicts);
            } else {
                self.in_verdicts.clear();
                for k in &self.in_keys {
                    self.in_verdicts.push(nat.inbound(now, k));
                }
            }
        }
    }

    /// Empties the run (keeps the capacity).
    pub(crate) fn clear(&mut self) {
        self.out_flows.clear();
        self.out_keys.clear();
        self.out_verdicts.clear();
        self.in_flows.clear();
        self.in_keys.clear();
        self.in_verdicts.clear();
    }
}
