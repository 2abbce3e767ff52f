//! Key packing: the lookup keys of the three flow indexes, each folded into machine words
//! that hash in one call and compare in one or two instructions.

use crate::types::{Endpoint, Protocol};

/// An address as a number for hashing (host byte order: no swap, never shown).
#[inline]
fn addr_bits(a: std::net::Ipv4Addr) -> u64 {
    u64::from(u32::from_ne_bytes(a.octets()))
}

/// The outbound lookup key (proto, internal, remote) in two words.
#[inline]
pub(crate) fn pack_out(proto: Protocol, internal: Endpoint, remote: Endpoint) -> (u64, u64) {
    (
        addr_bits(internal.addr) << 32 | addr_bits(remote.addr),
        (proto as u64) << 32 | u64::from(internal.port) << 16 | u64::from(remote.port),
    )
}

/// The inbound lookup key (proto, external port, remote) in two words.
#[inline]
pub(crate) fn pack_in(proto: Protocol, ext_port: u16, remote: Endpoint) -> (u64, u64) {
    (
        addr_bits(remote.addr) << 32 | u64::from(ext_port) << 16 | u64::from(remote.port),
        proto as u64,
    )
}

/// The endpoint-independent mapping key (proto, internal) in one word.
#[inline]
pub(crate) fn pack_map(proto: Protocol, internal: Endpoint) -> u64 {
    (proto as u64) << 48 | u64::from(u32::from(internal.addr)) << 16 | u64::from(internal.port)
}
