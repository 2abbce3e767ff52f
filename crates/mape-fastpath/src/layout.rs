//! The maps' keys and values byte for byte as `bpf/layout.h` declares them (addresses
//! and ports in network order as in the packet, times, counters and MTUs in host order),
//! and the fast path's counters with their names.

use std::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::{Endpoint, OffloadFlow, Protocol};

/// `struct ce_out_key`.
pub const CE_OUT_KEY_LEN: usize = 16;
/// `struct ce_out_val`.
pub const CE_OUT_VAL_LEN: usize = 56;
/// `struct ce_in_key`.
pub const CE_IN_KEY_LEN: usize = 12;
/// `struct ce_in_val`.
pub const CE_IN_VAL_LEN: usize = 48;
/// `struct ce_config`.
pub const CE_CONFIG_LEN: usize = 40;
/// `struct ce_event`.
pub const CE_EVENT_LEN: usize = 24;
/// `struct br_rule_key`.
pub const BR_RULE_KEY_LEN: usize = 8;
/// `struct br_rule`.
pub const BR_RULE_LEN: usize = 16;
/// `struct br_config`.
pub const BR_CONFIG_LEN: usize = 40;

fn ip_proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Icmp => 1,
    }
}

/// The LAN → tunnel key of a flow: (internal, remote, protocol).
pub fn ce_out_key(f: &OffloadFlow) -> [u8; CE_OUT_KEY_LEN] {
    let mut k = [0u8; CE_OUT_KEY_LEN];
    k[0..4].copy_from_slice(&f.internal.addr.octets());
    k[4..8].copy_from_slice(&f.remote.addr.octets());
    k[8..10].copy_from_slice(&f.internal.port.to_be_bytes());
    k[10..12].copy_from_slice(&f.remote.port.to_be_bytes());
    k[12] = ip_proto(f.proto);
    k
}

/// The LAN → tunnel value of a fresh entry toward `peer`; `pending`: armed at the SYN
/// (the programs leave the flow to the engine until its SYN-ACK).
pub fn ce_out_val(f: &OffloadFlow, peer: Ipv6Addr, pending: bool) -> [u8; CE_OUT_VAL_LEN] {
    let mut v = [0u8; CE_OUT_VAL_LEN];
    v[0..16].copy_from_slice(&peer.octets());
    v[16..20].copy_from_slice(&f.external.addr.octets());
    v[20..22].copy_from_slice(&f.external.port.to_be_bytes());
    v[22] = u8::from(pending);
    v
}

/// The tunnel → LAN key of a flow: (remote, external port, protocol).
pub fn ce_in_key(f: &OffloadFlow) -> [u8; CE_IN_KEY_LEN] {
    let mut k = [0u8; CE_IN_KEY_LEN];
    k[0..4].copy_from_slice(&f.remote.addr.octets());
    k[4..6].copy_from_slice(&f.remote.port.to_be_bytes());
    k[6..8].copy_from_slice(&f.external.port.to_be_bytes());
    k[8] = ip_proto(f.proto);
    k
}

/// The tunnel → LAN value of a fresh entry whose packets come from `peer`; `pending`:
/// armed at the SYN (only a SYN-ACK passes, and clears it on both entries).
pub fn ce_in_val(f: &OffloadFlow, peer: Ipv6Addr, pending: bool) -> [u8; CE_IN_VAL_LEN] {
    let mut v = [0u8; CE_IN_VAL_LEN];
    v[0..16].copy_from_slice(&peer.octets());
    v[16..20].copy_from_slice(&f.internal.addr.octets());
    v[20..22].copy_from_slice(&f.internal.port.to_be_bytes());
    v[22] = u8::from(pending);
    v
}

/// Whether a LAN → tunnel or tunnel → LAN value is still pending (armed, not answered).
pub fn pending(val: &[u8]) -> bool {
    val.get(22).is_some_and(|&b| b != 0)
}

/// The flow a LAN → tunnel key and value describe (for a walk of the map).
pub fn flow_of_out(key: &[u8], val: &[u8]) -> Option<OffloadFlow> {
    if key.len() != CE_OUT_KEY_LEN || val.len() != CE_OUT_VAL_LEN {
        return None;
    }
    let proto = match key[12] {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => return None,
    };
    let v4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    Some(OffloadFlow {
        proto,
        internal: Endpoint::new(v4(&key[0..4]), port(&key[8..10])),
        remote: Endpoint::new(v4(&key[4..8]), port(&key[10..12])),
        external: Endpoint::new(v4(&val[16..20]), port(&val[20..22])),
    })
}

/// A map key of at most 16 bytes as one number (zero-padded), for a cheap hash.
pub fn packed_key(key: &[u8]) -> u128 {
    let mut w = [0u8; 16];
    let n = key.len().min(16);
    w[..n].copy_from_slice(&key[..n]);
    u128::from_ne_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_ne_bytes(w)
}

/// What an entry recorded: its last packet (CLOCK_MONOTONIC ns), packets and bytes
/// forwarded, and the LAN host's last TCP acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntrySeen {
    /// `bpf_ktime_get_ns()` of the last packet, 0 for none yet.
    pub last_seen_ns: u64,
    /// Packets (segments) forwarded.
    pub packets: u64,
    /// IPv4 bytes forwarded.
    pub bytes: u64,
    /// The LAN host's last acknowledgement number (host order), when one passed.
    pub lan_ack: Option<u32>,
}

/// Reads a LAN → tunnel value.
pub fn out_seen(val: &[u8]) -> EntrySeen {
    let ack_seen = val.get(28..32).is_some_and(|b| b != [0, 0, 0, 0]);
    EntrySeen {
        last_seen_ns: u64_at(val, 32),
        packets: u64_at(val, 40),
        bytes: u64_at(val, 48),
        lan_ack: ack_seen
            .then(|| {
                val.get(24..28)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            })
            .flatten(),
    }
}

/// Reads a tunnel → LAN value.
pub fn in_seen(val: &[u8]) -> EntrySeen {
    EntrySeen {
        last_seen_ns: u64_at(val, 24),
        packets: u64_at(val, 32),
        bytes: u64_at(val, 40),
        lan_ack: None,
    }
}

/// A TCP FIN or SYN-ACK the CE's programs forwarded (`struct ce_event`): the packet's TCP
/// fields and its flow, for the engine's state machine ([`mape_nat::Nat::offload_tcp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEvent {
    /// LAN → tunnel (`true`) or tunnel → LAN.
    pub outbound: bool,
    /// The LAN endpoint.
    pub internal: Endpoint,
    /// The remote endpoint.
    pub remote: Endpoint,
    /// The external port (the address is the CE's one).
    pub ext_port: u16,
    /// The TCP flags byte.
    pub flags: u8,
    /// Sequence number (host order).
    pub seq: u32,
    /// Acknowledgement number (host order).
    pub ack: u32,
}

/// Reads a `struct ce_event` (`None`: not one).
pub fn ce_event(b: &[u8]) -> Option<TcpEvent> {
    let b: &[u8; CE_EVENT_LEN] = b.get(..CE_EVENT_LEN)?.try_into().ok()?;
    let v4 = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    Some(TcpEvent {
        outbound: b[15] != 0,
        internal: Endpoint::new(v4(0), be16(8)),
        remote: Endpoint::new(v4(4), be16(10)),
        ext_port: be16(12),
        flags: b[14],
        seq: be32(16),
        ack: be32(20),
    })
}

/// `struct ce_config`.
pub fn ce_config(
    ce_addr: Ipv6Addr,
    ext_addr: Ipv4Addr,
    ipv4_mtu: u32,
    deadline_ns: u64,
    hop_limit: u8,
    mss_in: u16,
) -> [u8; CE_CONFIG_LEN] {
    let mut c = [0u8; CE_CONFIG_LEN];
    c[0..16].copy_from_slice(&ce_addr.octets());
    c[16..20].copy_from_slice(&ext_addr.octets());
    c[20..24].copy_from_slice(&ipv4_mtu.to_ne_bytes());
    c[24..32].copy_from_slice(&deadline_ns.to_ne_bytes());
    c[32] = hop_limit;
    c[34..36].copy_from_slice(&mss_in.to_ne_bytes());
    c
}

/// `struct br_config`.
pub fn br_config(
    br_addr: Ipv6Addr,
    ipv6_mtu: u32,
    deadline_ns: u64,
    hop_limit: u8,
) -> [u8; BR_CONFIG_LEN] {
    let mut c = [0u8; BR_CONFIG_LEN];
    c[0..16].copy_from_slice(&br_addr.octets());
    c[16..20].copy_from_slice(&ipv6_mtu.to_ne_bytes());
    c[24..32].copy_from_slice(&deadline_ns.to_ne_bytes());
    c[32] = hop_limit;
    c
}

/// Offset of `deadline_ns` in both config structs.
pub const DEADLINE_AT: usize = 24;

/// A rule as the BR's programs compute with it (`struct br_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleFields {
    /// Rule IPv4 prefix.
    pub ipv4: Ipv4Addr,
    /// Its length `r`.
    pub prefix4_len: u8,
    /// Rule IPv6 prefix.
    pub prefix6: Ipv6Addr,
    /// Its length `n`.
    pub prefix6_len: u8,
    /// EA-bits length `o`.
    pub ea_len: u8,
    /// PSID offset `a`.
    pub psid_offset: u8,
    /// PSID length `k`.
    pub psid_len: u8,
    /// draft-ietf-softwire-map-03 interface IDs instead of RFC 7597 §6.
    pub draft03: bool,
}

/// A rule in the BR's LPM trie: `struct br_rule_key` and `struct br_rule`.
pub fn br_rule(r: &RuleFields) -> ([u8; BR_RULE_KEY_LEN], [u8; BR_RULE_LEN]) {
    let mut k = [0u8; BR_RULE_KEY_LEN];
    k[0..4].copy_from_slice(&u32::from(r.prefix4_len).to_ne_bytes());
    k[4..8].copy_from_slice(&r.ipv4.octets());
    let mut v = [0u8; BR_RULE_LEN];
    v[0..8].copy_from_slice(&r.prefix6.octets()[0..8]);
    v[8] = r.prefix6_len;
    v[9] = r.prefix4_len;
    v[10] = r.ea_len;
    v[11] = r.psid_offset;
    v[12] = r.psid_len;
    v[13] = u8::from(r.draft03);
    (k, v)
}

/// The fast path's counters (`FP_*` in `bpf/layout.h`, in that order): traffic it
/// forwarded, and why it left a packet to the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// LAN → tunnel (BR: domain → internet) packets forwarded.
    OutPackets,
    /// Their IPv4 bytes.
    OutBytes,
    /// Tunnel → LAN (BR: internet → domain) packets forwarded.
    InPackets,
    /// Their IPv4 bytes.
    InBytes,
    /// The daemon's deadline passed (it died or hangs): left to the slow path.
    PassStale,
    /// Not a TCP/UDP packet the fast path handles (other protocols, ICMP, options,
    /// fragments, a bad header).
    PassNotFlow,
    /// CE: TCP SYN or RST: the engine sees them itself (a FIN, and the SYN-ACK of an
    /// armed flow, go through the `ce_events` ring instead); also a SYN-ACK whose MSS
    /// option is not its first (the slow path finds and clamps it).
    PassControl,
    /// No entry: a new flow, or one the engine keeps (unanswered, closing).
    PassNoEntry,
    /// The TTL would expire here.
    PassTtl,
    /// Larger than the tunnel MTU.
    PassMtu,
    /// The outer source is not the one of the flow / of the rule (RFC 7597 §8.1).
    PassSource,
    /// BR: a hairpin between two CEs.
    PassHairpin,
    /// A kernel helper refused before anything changed. No helper that can refuse runs
    /// before the packet starts to change any more (the header and port are rewritten in
    /// place first); the reason keeps its name and counter slot, and stays at 0.
    PassHelper,
    /// A kernel helper refused half-way: dropped (the fast path's only drop).
    DropHelper,
    /// CE: a FIN whose event the full `ce_events` ring could not take.
    PassEventsFull,
    /// CE: FINs forwarded in the kernel, each told to the engine through `ce_events`.
    FinEvents,
    /// CE: a flow armed at its SYN and not answered yet: only its SYN-ACK is the
    /// kernel's, the rest the engine's.
    PassUnanswered,
    /// CE: SYN-ACKs of armed flows forwarded in the kernel, each told to the engine
    /// through `ce_events`.
    SynAckEvents,
}

impl Counter {
    /// Every counter, in map order.
    pub const ALL: [Counter; 18] = [
        Counter::OutPackets,
        Counter::OutBytes,
        Counter::InPackets,
        Counter::InBytes,
        Counter::PassStale,
        Counter::PassNotFlow,
        Counter::PassControl,
        Counter::PassNoEntry,
        Counter::PassTtl,
        Counter::PassMtu,
        Counter::PassSource,
        Counter::PassHairpin,
        Counter::PassHelper,
        Counter::DropHelper,
        Counter::PassEventsFull,
        Counter::FinEvents,
        Counter::PassUnanswered,
        Counter::SynAckEvents,
    ];

    /// Its index in the `stats` map.
    pub fn index(self) -> u32 {
        Counter::ALL.iter().position(|c| *c == self).unwrap_or(0) as u32
    }

    /// The reason label of a pass or drop counter (`None` for traffic counters).
    pub fn reason(self) -> Option<&'static str> {
        Some(match self {
            Counter::OutPackets
            | Counter::OutBytes
            | Counter::InPackets
            | Counter::InBytes
            | Counter::FinEvents
            | Counter::SynAckEvents => return None,
            Counter::PassStale => "stale",
            Counter::PassNotFlow => "not_flow",
            Counter::PassControl => "tcp_control",
            Counter::PassNoEntry => "no_entry",
            Counter::PassTtl => "ttl",
            Counter::PassMtu => "mtu",
            Counter::PassSource => "source",
            Counter::PassHairpin => "hairpin",
            Counter::PassHelper => "helper",
            Counter::DropHelper => "helper_failed",
            Counter::PassEventsFull => "events_full",
            Counter::PassUnanswered => "unanswered",
        })
    }
}

/// The counters summed over CPUs, indexed like [`Counter::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; 18]);

impl Counters {
    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c.index() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_survives_its_key_and_value() {
        let f = OffloadFlow {
            proto: Protocol::Udp,
            internal: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10), 5000),
            remote: Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 53000),
            external: Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 0x1234),
        };
        let peer: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let (k, v) = (ce_out_key(&f), ce_out_val(&f, peer, false));
        assert_eq!(flow_of_out(&k, &v), Some(f));
        // Network order, as the program reads them from the packet.
        assert_eq!(&k[8..12], &[0x13, 0x88, 0xcf, 0x08]);
        assert_eq!(k[12], 17);
        assert_eq!(&ce_in_key(&f)[4..9], &[0xcf, 0x08, 0x12, 0x34, 17]);
        assert_eq!(out_seen(&v), EntrySeen::default());
        assert!(!pending(&v));
        assert!(pending(&ce_out_val(&f, peer, true)));
        assert!(pending(&ce_in_val(&f, peer, true)));
        assert_eq!(flow_of_out(&k, &ce_out_val(&f, peer, true)), Some(f));
    }

    #[test]
    fn counters_have_distinct_reasons() {
        let mut names: Vec<_> = Counter::ALL.iter().filter_map(|c| c.reason()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(Counter::DropHelper.index(), 13);
        assert_eq!(Counter::FinEvents.index(), 15);
        assert_eq!(Counter::SynAckEvents.index(), 17);
    }

    #[test]
    fn an_event_reads_as_the_program_writes_it() {
        // 192.168.1.10:40000 -> 203.0.113.10:80, external port 0x1234, FIN|ACK out,
        // seq 0x01020304, ack 0x0a0b0c0d (network order, as in the packet).
        let b = [
            192, 168, 1, 10, 203, 0, 113, 10, 0x9c, 0x40, 0, 80, 0x12, 0x34, 0x11, 1, 1, 2, 3, 4,
            10, 11, 12, 13,
        ];
        let e = ce_event(&b).unwrap();
        assert_eq!(
            e,
            TcpEvent {
                outbound: true,
                internal: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10), 40000),
                remote: Endpoint::new(Ipv4Addr::new(203, 0, 113, 10), 80),
                ext_port: 0x1234,
                flags: 0x11,
                seq: 0x0102_0304,
                ack: 0x0a0b_0c0d,
            }
        );
        assert_eq!(ce_event(&b[..23]), None);
    }
}
