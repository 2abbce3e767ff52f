//! The rows of the two arenas: one flow ([`Session`], one 64-byte cache line) and the
//! mapping it translates through ([`Mapping`]), with the flag bits a session keeps.

use crate::list::{Link, NIL};
use crate::tier::Tier;
use crate::types::{Endpoint, Protocol, SessionState};

/// Bits in `Session::bits`: TCP FINs seen each way, an RST believed from the remote (a
/// later packet from the LAN host proves it wrong), an ACK from the LAN host recorded in
/// `lan_ack`, a UDP/ICMP flow known to be a stream, and a live connection that RST ended
/// (its port kept from reclaim for `state::RST_GRACE_MS`), and one the kernel fast path
/// forwards.
pub(crate) const FIN_OUT: u8 = 1;
pub(crate) const FIN_IN: u8 = 2;
pub(crate) const RST_IN: u8 = 4;
pub(crate) const ACK_SEEN: u8 = 8;
pub(crate) const STREAM: u8 = 16;
pub(crate) const RST_GRACE: u8 = 32;
/// The kernel fast path holds an entry for it (`engine::offload`); never saved.
pub(crate) const OFFLOADED: u8 = 64;
/// With `OFFLOADED`: the entry is armed at the SYN and pending, the kernel forwarding
/// only the answer (`engine::offload`); never saved.
pub(crate) const ARMED: u8 = 128;

/// One flow. Exactly one cache line, aligned to one, with the lookup key first: verifying
/// an index candidate and touching the session cost a single cache miss.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub(crate) struct Session {
    pub(crate) proto: Protocol,
    pub(crate) state: SessionState,
    /// Its timer class (`timers::CLASS_*`).
    pub(crate) class: u8,
    pub(crate) bits: u8,
    pub(crate) internal: Endpoint,
    pub(crate) remote: Endpoint,
    pub(crate) ext_port: u16,
    /// The recyclable list of its host this session sits in, if any.
    pub(crate) tier: Option<Tier>,
    /// Its mapping; `NIL` while the slot is on the free list (see [`Session::is_live`]).
    pub(crate) mapping: u32,
    /// TCP: the last acknowledgement number the LAN host sent (valid with `ACK_SEEN`).
    pub(crate) lan_ack: u32,
    /// Creation time in whole seconds (shown as the age; one line per session has no room
    /// for milliseconds).
    pub(crate) created_s: u32,
    pub(crate) last_seen: u64,
    pub(crate) queued_at: u64,
    pub(crate) timer: Link,
    pub(crate) host_link: Link,
}

const _: () = assert!(std::mem::size_of::<Session>() == 64);

impl Session {
    /// Whether the slot holds a flow (a freed slot has no mapping).
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.mapping != NIL
    }

    /// Whether the flow is known to be a stream (`STREAM` bit).
    #[inline]
    pub(crate) fn is_stream(&self) -> bool {
        self.bits & STREAM != 0
    }

    /// Milliseconds since the epoch at which the flow surely began `STREAM_AFTER_MS` ago
    /// or more: `created_s` is whole seconds, so one more second makes it sure.
    #[inline]
    pub(crate) fn stream_from_ms(&self) -> u64 {
        u64::from(self.created_s) * 1000 + crate::tier::STREAM_AFTER_MS + 1000
    }
}

/// The timer FIFO link of a session (for `List`).
pub(crate) fn timer_link(s: &mut Session) -> &mut Link {
    &mut s.timer
}

/// The host tier list link of a session (for `List`).
pub(crate) fn host_link(s: &mut Session) -> &mut Link {
    &mut s.host_link
}

/// What a mapping slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MappingKind {
    /// On the free list.
    Free,
    /// Made for an outbound flow; released with its last session.
    Dynamic,
    /// A configured forward; lives until a reload removes it.
    Static,
    /// A port mapping a LAN application asked for (`engine::mappings`); lives until it
    /// is deleted or its lifetime runs out.
    Leased,
}

/// An external port given to an internal endpoint (one per endpoint-independent mapping).
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    pub(crate) proto: Protocol,
    pub(crate) internal: Endpoint,
    pub(crate) ext_port: u16,
    pub(crate) host: u32,
    /// Live sessions through it.
    pub(crate) sessions: u32,
    pub(crate) kind: MappingKind,
    pub(crate) eim_indexed: bool,
}

impl Mapping {
    /// Whether it is a configured forward.
    #[inline]
    pub(crate) fn is_static(&self) -> bool {
        self.kind == MappingKind::Static
    }

    /// Whether it outlives its sessions (a forward or a port mapping).
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        matches!(self.kind, MappingKind::Static | MappingKind::Leased)
    }
}
