//! The MAP-E (RFC 7597) packet paths as pure functions from buffers to buffers plus
//! actions: the CE pipeline ([`Ce`]) and a stateless BR ([`Br`]) for labs. No sockets,
//! no clock reads (`now` is a parameter), no allocation per packet.
//!
//! # Shape
//!
//! `process(now, input, out) -> Verdict`: the input's IP version picks the direction
//! (4 = LAN / internet side, 6 = WAN / MAP domain side, because one TUN carries both).
//! Zero or more output packets go to the [`Sink`], built in scratch buffers owned by the
//! pipeline; the [`Verdict`] says forwarded, buffered (fragment), absorbed or dropped with
//! a [`DropReason`] (already counted in [`DropCounters`]).
//!
//! # Buffers
//!
//! Inputs are borrowed `&[u8]` (the shell reads them into its own ring). A forwarded packet
//! is copied **once** to `scratch[40..]`, rewritten in place (RFC 1624 incremental
//! checksums: IPv4 header, TCP/UDP/ICMP), and the 40-byte IPv6 header is written at
//! `scratch[..40]` (RFC 2473 encapsulation, next header 4). Decapsulated packets are copied
//! once to `scratch[..]` and rewritten. One copy of a ≤ 1500-byte packet costs far less
//! than the NAT lookup, and keeps the API free of headroom contracts.
//!
//! (The daemon's worker copies emitted packets once more into its output buffer, to write
//! them after releasing the pipeline lock; that copy is the shell's, not the pipeline's.)
//!
//! # Parsing
//!
//! Every header field is read and written through the `mape_wire` views (`Ipv4Packet`,
//! `Ipv6Packet`, TCP/UDP/ICMP views, `Ipv6Repr` for the outer header, `FragmentHeader`):
//! one parser to fuzz and trust. The one index the dataplane computes itself is the
//! next-header byte a reassembled IPv6 packet gets back (`frag.rs`), found by
//! `mape_wire::ipv6::fragment_nh_index`; the tests build their fixtures with raw bytes.
//!
//! # Batches
//!
//! [`Ce::process_batch`] checks each packet once (no side effect before the NAT), hands
//! runs of consecutive flow packets of one direction to the NAT's batch lookups and
//! finishes them in order; fragments, ICMP errors and every other packet with side
//! effects of its own take the full path in their place. See `plan.rs`.
//!
//! # Fragments (RFC 7597 §8.3)
//!
//! * Outbound, too big for the tunnel MTU: DF set → ICMP "fragmentation needed" with the
//!   tunnel MTU to the sender (RFC 4787 REQ-13, RFC 1191); DF clear → the packet is
//!   encapsulated whole and the **IPv6 packet is fragmented** (RFC 2473 §7.2), so the
//!   far end reassembles IPv6 and sees the complete IPv4 packet with its ports.
//! * Inbound IPv6 fragments and IPv4 fragments (from the LAN, inside the tunnel, from the
//!   internet at the BR) are **fully reassembled** before NAT and the §8.1 checks, in a
//!   bounded, pooled reassembler (2 s, 64 datagrams per host by default; overlaps discard
//!   the datagram per RFC 5722). `frag.rs` is the reassembler; `defrag.rs` holds the
//!   state a CE or BR owns and the one entry both pipelines feed fragments through.
//! * The IPv4 identification is left as the sender chose it (RFC 6864; RFC 7597 §8.3.3
//!   only says a CE "could" rewrite it).
//!
//! # ICMP
//!
//! ICMPv4 errors from the tunnel get their embedded packet translated back (RFC 5508
//! §4.2); errors LAN hosts send about inbound packets get theirs translated outward; echo
//! identifiers are NAT-ed like ports (§8.2); ICMPv6 errors about our encapsulated packets
//! become ICMPv4 errors to the original sender (RFC 2473 §8), Packet Too Big lowering the
//! tunnel MTU (RFC 8201) and becoming "fragmentation needed" (MTU − 40) for DF packets.
//!
//! # TTL (RFC 1812 §5.3.1: each router decrements once)
//!
//! CE and BR sit behind a TUN, and the kernel forwards every IPv4 packet of theirs exactly
//! once per direction: into the TUN (LAN → CE, internet → BR), or out of it (CE → LAN,
//! BR → internet); the IPv6 side is forwarded as IPv6 (hop limit, not TTL). That kernel
//! decrement is each router's one decrement, so the pipelines leave the TTL as it is, and
//! the kernel answers an expiring TTL with time exceeded from the router where it expires
//! (CE: its LAN address; BR: its own address, encapsulated back to the CE by §8.2). The
//! pipelines refuse only a TTL of 0, which no router may have forwarded. Exceptions:
//!
//! * The BR's hairpin between CEs (IPv6 in, IPv6 out) is never forwarded as IPv4 by the
//!   kernel: there the BR decrements itself, and drops (counted `ttl_expired`, without
//!   time exceeded) what would expire.
//! * The CE's hairpin (LAN → own shared address → LAN) is forwarded by the kernel twice
//!   (into the TUN and out of it): it loses 2, as if it crossed the CE twice.
//!
//! # Known limits
//!
//! * With an IPv4 prefix share (o + r < 32) the CE NATs to the first address only.
//! * A LAN packet to our own shared address but a port of *another* PSID goes to the BR
//!   (which hairpins it to the owning CE) without a tunnel-MTU check and without FMR lookup.
//! * The checksum of the IP header embedded in ICMP errors is not verified (RFC 5508 REQ-3).
//! * The BR ignores ICMPv6 (§8.3.1: an anycast BR does not do PMTUD).

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod br;
pub mod ce;
mod config;
mod defrag;
pub mod drop;
pub mod encap;
mod error;
pub mod frag;
mod icmp;
mod l4;
pub mod mss;
mod plan;
mod pmtu;
mod route;
pub mod sink;

pub use br::{Br, BrConfig};
pub use ce::{Ce, CeConfig, CeError, Reprovisioned};
pub use drop::{DropCounters, DropReason};
pub use encap::FlowLabel;
pub use frag::ReassemblyConfig;
pub use sink::{Counters, Direction, FnSink, NullSink, Sink, Traffic, Verdict};

/// Re-exported for callers: time is a parameter.
pub use mape_nat::Timestamp;
