//! The saved session table: what a restart keeps (mappings, sessions with their states and
//! how long each has been idle, and the drop and refusal counters), in a versioned binary
//! file with a checksum, and its parser. The engine fills and reads it
//! (`engine::restore`); the daemon writes and reads the file.
//!
//! Format, version 2 (all integers little-endian):
//!
//! ```text
//! header   magic "MAPESESS" (8) · version u16 · reserved u16 (0) · file length u64
//!          rule: external IPv4 (4) · PSID u16 · PSID length u8 · offset u8
//!          taken: wall clock, ms since the UNIX epoch u64
//!          mappings u32 · sessions u32 · counters u16
//! counters counters × (name length u8 · name (ASCII) · value u64)
//! mappings mappings × 12: protocol (IP number) u8 · kind u8 (1 dynamic, 2 forward,
//!          3 port mapping) · reserved u16 (0) · internal IPv4 (4) · internal port u16 ·
//!          external port u16
//! sessions sessions × 36: mapping u32 · state u8 · bits u8 · remote IPv4 (4) ·
//!          remote port u16 · last LAN ACK u32 · age s u32 · idle ms u64 ·
//!          queued ms u64 (since it was queued on its timer, ≥ idle)
//! leases   one × 16 per port mapping (kind 3), in mapping order: origin u8 (1 PCP,
//!          2 NAT-PMP, 3 UPnP, 4 control) · reserved u8 (0) · reserved u16 (0) ·
//!          lifetime granted s u32 · lifetime left ms u64
//! trailer  CRC-32 (IEEE) of every byte before it, u32
//! ```
//!
//! Sessions are in the order of their timer FIFOs, so a restore queues them as they were.
//! Times are durations before the moment the table was taken, never engine timestamps (the
//! engine's clock is the daemon's monotonic clock, which starts again at each start); the
//! wall clock of the moment measures the downtime. Counters are named, so a later version
//! that adds a drop reason still reads this one's.
//!
//! Version 1 is version 2 without port mappings (no kind 3, no lease records): this build
//! still reads it. Any other version is refused with [`PersistError::Version`].

use std::net::Ipv4Addr;

use mape_rules::PortSet;

use crate::types::{Endpoint, MappingOrigin, Protocol, SessionState};

/// The first bytes of a saved table.
pub const MAGIC: [u8; 8] = *b"MAPESESS";
/// The format version this build writes (and the newest it reads).
pub const VERSION: u16 = 2;
/// The oldest format version this build reads (1: before port mappings).
pub const OLDEST_READ: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 4 + 2 + 1 + 1 + 8 + 4 + 4 + 2;
/// Where the file length sits in the header.
const LENGTH_AT: usize = 12;
const MAPPING_LEN: usize = 12;
const SESSION_LEN: usize = 36;
const LEASE_LEN: usize = 16;
const CRC_LEN: usize = 4;
const KIND_DYNAMIC: u8 = 1;
const KIND_FORWARD: u8 = 2;
const KIND_LEASE: u8 = 3;
/// The session flag bits a saved table may carry (every one of `session`'s).
pub(crate) const KNOWN_BITS: u8 = crate::session::FIN_OUT
    | crate::session::FIN_IN
    | crate::session::RST_IN
    | crate::session::ACK_SEEN
    | crate::session::STREAM
    | crate::session::RST_GRACE;

/// Why a saved table was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    /// The file ends before the data it announces.
    #[error("truncated: {need} bytes needed, {have} present")]
    Truncated {
        /// Bytes the header and counts call for (at least).
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Not a saved session table.
    #[error("not a saved session table (bad magic)")]
    BadMagic,
    /// Written by a build with another format version.
    #[error("format version {found}, this build reads versions {OLDEST_READ} to {supported}")]
    Version {
        /// The file's version.
        found: u16,
        /// The newest one this build reads ([`OLDEST_READ`] is the oldest).
        supported: u16,
    },
    /// The checksum does not match: the file was damaged.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the bytes.
        computed: u32,
    },
    /// A field holds a value no writer writes.
    #[error("corrupt {what} {index}")]
    Corrupt {
        /// Which field.
        what: &'static str,
        /// The record (0 for the header).
        index: u32,
    },
    /// Taken under another MAP rule: another external address.
    #[error("taken under another rule: external address {saved}, now {current}")]
    OtherRule {
        /// The saved table's external address.
        saved: Ipv4Addr,
        /// The engine's.
        current: Ipv4Addr,
    },
    /// Restore is for a fresh engine only.
    #[error("the engine already has {0} sessions")]
    NotEmpty(u32),
}

/// A mapping as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SavedMapping {
    pub(crate) proto: Protocol,
    pub(crate) internal: Endpoint,
    pub(crate) ext_port: u16,
    /// A configured forward (restored onto the forward of the new configuration, if any).
    pub(crate) forward: bool,
    /// A port mapping's lease (kind 3; never with `forward`).
    pub(crate) lease: Option<SavedLease>,
}

/// The lease of a saved port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SavedLease {
    /// Milliseconds of its lifetime left when the table was taken.
    pub(crate) left_ms: u64,
    /// Seconds its last request was granted.
    pub(crate) granted_s: u32,
    /// Who asked.
    pub(crate) origin: MappingOrigin,
}

/// A session as saved (protocol, internal endpoint and external port are its mapping's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SavedSession {
    pub(crate) mapping: u32,
    pub(crate) state: SessionState,
    pub(crate) bits: u8,
    pub(crate) remote: Endpoint,
    pub(crate) lan_ack: u32,
    /// Whole seconds since it was created.
    pub(crate) age_s: u32,
    /// Milliseconds since its last packet.
    pub(crate) idle_ms: u64,
    /// Milliseconds since it was queued on its timer FIFO.
    pub(crate) queued_ms: u64,
}

/// A copy of the session table, taken by `Nat::save` and given to `Nat::restore`; encoded
/// and decoded without the engine (the daemon does both outside the datapath lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedTable {
    pub(crate) external: Ipv4Addr,
    pub(crate) ports: PortSet,
    pub(crate) taken_wall_ms: u64,
    pub(crate) counters: Vec<(String, u64)>,
    pub(crate) mappings: Vec<SavedMapping>,
    pub(crate) sessions: Vec<SavedSession>,
}

impl SavedTable {
    /// Sessions in the table.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Port mappings in the table.
    pub fn lease_count(&self) -> usize {
        self.mappings.iter().filter(|m| m.lease.is_some()).count()
    }

    /// The external address it was taken under.
    pub fn external(&self) -> Ipv4Addr {
        self.external
    }

    /// The port set it was taken under.
    pub fn port_set(&self) -> PortSet {
        self.ports
    }

    /// When it was taken, in milliseconds since the UNIX epoch.
    pub fn taken_wall_ms(&self) -> u64 {
        self.taken_wall_ms
    }

    /// How far back in time a restore at wall clock `wall_now_ms` reaches: the oldest
    /// session's age plus the downtime, in milliseconds. An engine whose clock reads at
    /// least this restores every age and idle time exactly; an earlier clock shortens them
    /// (`Nat::restore`).
    pub fn history_ms(&self, wall_now_ms: u64) -> u64 {
        let oldest = self
            .sessions
            .iter()
            .map(|s| (u64::from(s.age_s) * 1000).max(s.queued_ms))
            .max()
            .unwrap_or(0);
        oldest.saturating_add(wall_now_ms.saturating_sub(self.taken_wall_ms))
    }

    /// The table in the file format (module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + self.counters.len() * 32
                + self.mappings.len() * MAPPING_LEN
                + self.sessions.len() * SESSION_LEN
                + self.lease_count() * LEASE_LEN
                + CRC_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // the length, set below
        out.extend_from_slice(&self.external.octets());
        out.extend_from_slice(&self.ports.psid().to_le_bytes());
        out.push(self.ports.psid_len());
        out.push(self.ports.offset());
        out.extend_from_slice(&self.taken_wall_ms.to_le_bytes());
        out.extend_from_slice(&(self.mappings.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.sessions.len() as u32).to_le_bytes());
        let counters: Vec<_> = self
            .counters
            .iter()
            .filter(|(n, _)| n.len() <= usize::from(u8::MAX))
            .take(usize::from(u16::MAX))
            .collect();
        out.extend_from_slice(&(counters.len() as u16).to_le_bytes());
        for (name, value) in counters {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        for m in &self.mappings {
            out.push(m.proto.ip_number());
            out.push(match (m.forward, m.lease) {
                (_, Some(_)) => KIND_LEASE,
                (true, None) => KIND_FORWARD,
                (false, None) => KIND_DYNAMIC,
            });
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&m.internal.addr.octets());
            out.extend_from_slice(&m.internal.port.to_le_bytes());
            out.extend_from_slice(&m.ext_port.to_le_bytes());
        }
        for s in &self.sessions {
            out.extend_from_slice(&s.mapping.to_le_bytes());
            out.push(state_code(s.state));
            out.push(s.bits);
            out.extend_from_slice(&s.remote.addr.octets());
            out.extend_from_slice(&s.remote.port.to_le_bytes());
            out.extend_from_slice(&s.lan_ack.to_le_bytes());
            out.extend_from_slice(&s.age_s.to_le_bytes());
            out.extend_from_slice(&s.idle_ms.to_le_bytes());
            out.extend_from_slice(&s.queued_ms.to_le_bytes());
        }
        for l in self.mappings.iter().filter_map(|m| m.lease) {
            out.push(l.origin.code());
            out.push(0);
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&l.granted_s.to_le_bytes());
            out.extend_from_slice(&l.left_ms.to_le_bytes());
        }
        seal(&mut out);
        out
    }

    /// Parses a file written by [`SavedTable::encode`]: every length is checked before it
    /// is read, the checksum before any value is trusted, every value against what a writer
    /// writes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PersistError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(PersistError::BadMagic);
        }
        let version = r.u16()?;
        if !(OLDEST_READ..=VERSION).contains(&version) {
            return Err(PersistError::Version {
                found: version,
                supported: VERSION,
            });
        }
        let corrupt = |what| PersistError::Corrupt { what, index: 0 };
        if r.u16()? != 0 {
            return Err(corrupt("header reserved field"));
        }
        // The announced length first: a truncated file says so rather than fail its checksum.
        let len = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
        if len < HEADER_LEN + CRC_LEN {
            return Err(corrupt("length"));
        }
        if bytes.len() < len {
            return Err(PersistError::Truncated {
                need: len,
                have: bytes.len(),
            });
        }
        if bytes.len() > len {
            return Err(corrupt("length (bytes after the checksum)"));
        }
        let (body, crc) = bytes.split_at(len - CRC_LEN);
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(crc);
        let (stored, computed) = (u32::from_le_bytes(stored), crc32fast::hash(body));
        if stored != computed {
            return Err(PersistError::Checksum { stored, computed });
        }
        let mut r = Reader {
            bytes: body,
            pos: r.pos,
        };
        let external = Ipv4Addr::from(r.u32_be()?);
        let (psid, psid_len, offset) = (r.u16()?, r.u8()?, r.u8()?);
        let taken_wall_ms = r.u64()?;
        let (n_map, n_sess, n_counters) = (r.u32()? as usize, r.u32()? as usize, r.u16()?);
        // Counts that cannot fit the length are corrupt (and allocate nothing).
        let fixed = n_map
            .saturating_mul(MAPPING_LEN)
            .saturating_add(n_sess.saturating_mul(SESSION_LEN))
            .saturating_add(usize::from(n_counters) * 10);
        if fixed > body.len() - r.pos {
            return Err(corrupt("counts (more records than bytes)"));
        }
        let ports = PortSet::new(psid, psid_len, offset).map_err(|_| corrupt("port set"))?;
        let mut counters = Vec::with_capacity(usize::from(n_counters));
        for i in 0..u32::from(n_counters) {
            let len = usize::from(r.u8()?);
            let name = std::str::from_utf8(r.take(len)?)
                .ok()
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or(PersistError::Corrupt {
                    what: "counter name",
                    index: i,
                })?;
            counters.push((name.to_owned(), r.u64()?));
        }
        let mut mappings = Vec::with_capacity(n_map);
        for i in 0..n_map as u32 {
            let bad = |what| PersistError::Corrupt { what, index: i };
            let proto = Protocol::from_ip_number(r.u8()?).ok_or(bad("mapping protocol"))?;
            let (forward, leased) = match r.u8()? {
                KIND_DYNAMIC => (false, false),
                KIND_FORWARD if proto != Protocol::Icmp => (true, false),
                KIND_LEASE if proto != Protocol::Icmp && version >= 2 => (false, true),
                _ => return Err(bad("mapping kind")),
            };
            if r.u16()? != 0 {
                return Err(bad("mapping reserved field"));
            }
            let internal = Endpoint::new(Ipv4Addr::from(r.u32_be()?), r.u16()?);
            let ext_port = r.u16()?;
            // The lease itself is read after the sessions; a placeholder marks it.
            let lease = leased.then_some(SavedLease {
                left_ms: 0,
                granted_s: 0,
                origin: MappingOrigin::Control,
            });
            mappings.push(SavedMapping {
                proto,
                internal,
                ext_port,
                forward,
                lease,
            });
        }
        let mut sessions = Vec::with_capacity(n_sess);
        for i in 0..n_sess as u32 {
            let bad = |what| PersistError::Corrupt { what, index: i };
            let mapping = r.u32()?;
            let proto = mappings
                .get(mapping as usize)
                .ok_or(bad("session mapping"))?
                .proto;
            let state = state_of(r.u8()?)
                .filter(|&st| state_fits(proto, st))
                .ok_or(bad("session state"))?;
            let bits = r.u8()?;
            if bits & !KNOWN_BITS != 0 {
                return Err(bad("session bits"));
            }
            let remote = Endpoint::new(Ipv4Addr::from(r.u32_be()?), r.u16()?);
            let (lan_ack, age_s, idle_ms, queued_ms) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?);
            if queued_ms < idle_ms {
                return Err(bad("session queued time"));
            }
            sessions.push(SavedSession {
                mapping,
                state,
                bits,
                remote,
                lan_ack,
                age_s,
                idle_ms,
                queued_ms,
            });
        }
        for (i, m) in mappings.iter_mut().enumerate() {
            let Some(lease) = m.lease.as_mut() else {
                continue;
            };
            let bad = |what| PersistError::Corrupt {
                what,
                index: i as u32,
            };
            lease.origin = MappingOrigin::from_code(r.u8()?).ok_or(bad("lease origin"))?;
            if r.u8()? != 0 || r.u16()? != 0 {
                return Err(bad("lease reserved field"));
            }
            lease.granted_s = r.u32()?;
            lease.left_ms = r.u64()?;
        }
        if r.pos != body.len() {
            return Err(corrupt("length (bytes after the last record)"));
        }
        Ok(Self {
            external,
            ports,
            taken_wall_ms,
            counters,
            mappings,
            sessions,
        })
    }
}

/// Writes the file length and appends the CRC-32 of `out` (the module's trailer); for
/// tools and tests that build a file by hand, e.g. the fuzz target's fixed-up inputs.
pub fn seal(out: &mut Vec<u8>) {
    if out.len() >= LENGTH_AT + 8 {
        let len = (out.len() + CRC_LEN) as u64;
        out[LENGTH_AT..LENGTH_AT + 8].copy_from_slice(&len.to_le_bytes());
    }
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Whether a state is one of the protocol's (TCP states for TCP, the others for UDP/ICMP).
fn state_fits(proto: Protocol, state: SessionState) -> bool {
    let tcp = matches!(
        state,
        SessionState::SynSent
            | SessionState::SynReceived
            | SessionState::Established
            | SessionState::FinWait
            | SessionState::TimeWait
    );
    tcp == (proto == Protocol::Tcp)
        && !(proto == Protocol::Icmp && state == SessionState::DnsAnswered)
}

/// The state's code in the format (fixed: never renumbered within a version).
fn state_code(state: SessionState) -> u8 {
    match state {
        SessionState::Unanswered => 0,
        SessionState::Answered => 1,
        SessionState::DnsAnswered => 2,
        SessionState::SynSent => 3,
        SessionState::SynReceived => 4,
        SessionState::Established => 5,
        SessionState::FinWait => 6,
        SessionState::TimeWait => 7,
    }
}

fn state_of(code: u8) -> Option<SessionState> {
    SessionState::ALL
        .into_iter()
        .find(|&s| state_code(s) == code)
}

/// A checked cursor over the file: every read says how much it needs first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn need(&self, n: usize) -> Result<(), PersistError> {
        if self.bytes.len() - self.pos < n {
            return Err(PersistError::Truncated {
                need: self.pos.saturating_add(n),
                have: self.bytes.len(),
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PersistError> {
        self.need(n)?;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PersistError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PersistError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, PersistError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, PersistError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// An IPv4 address: network order, as `Ipv4Addr::octets` gives it.
    fn u32_be(&mut self) -> Result<u32, PersistError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PersistError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}
