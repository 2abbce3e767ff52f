//! The kernel fast path as the engine sees it: which sessions may be forwarded without
//! the engine ([`OffloadFlow`], established or FIN-closing TCP and answered UDP only), the
//! TCP connections armed at their SYN (entries that forward only the answer, the SYN-ACK),
//! the FINs and SYN-ACKs the kernel forwarded ([`OffloadedTcp`], fed to the same state
//! machine), the journal of installs and removals the daemon applies to the BPF maps in the
//! same step as the engine's own change ([`OffloadOp`]), and the fold-back of what the
//! kernel saw ([`FlowSeen`]: the last packet, the LAN host's TCP acknowledgement).
//!
//! The engine stays the only authority: an entry exists only while its session lives and
//! is eligible, so an unanswered storm never leaves the slow path (issue #13: an armed
//! entry forwards nothing from the LAN, and only a SYN-ACK toward it), and a session's
//! end (expiry, eviction, reclaim, reset, reload) removes its entry.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::keys::pack_out;
use crate::session::{Session, ACK_SEEN, ARMED, FIN_IN, FIN_OUT, OFFLOADED, RST_IN, STREAM};
use crate::types::{
    Endpoint, InboundPacket, OutboundPacket, Protocol, SessionState, TcpFlags, Timestamp,
};

use super::Nat;

/// Most journal entries kept between two drains; past it the journal is dropped and the
/// daemon told to rebuild its maps from [`Nat::offloaded_flows`] (`OffloadDrain::resync`).
const MAX_JOURNAL: usize = 1 << 20;

/// One flow the fast path may forward: the keys of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffloadFlow {
    /// TCP or UDP.
    pub proto: Protocol,
    /// The LAN endpoint.
    pub internal: Endpoint,
    /// The remote endpoint.
    pub remote: Endpoint,
    /// The external endpoint (our address and the session's port).
    pub external: Endpoint,
}

impl OffloadFlow {
    /// Whether `other` has the same inbound key (protocol, remote, external port): the
    /// fast path's inbound entry of one is the other's.
    pub fn shares_inbound(&self, other: &OffloadFlow) -> bool {
        self.proto == other.proto && self.remote == other.remote && self.external == other.external
    }
}

/// A change the daemon applies to the fast path's maps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadOp {
    /// The session became established: forward it in the kernel (a fresh entry, also
    /// over an armed one).
    Install(OffloadFlow),
    /// A TCP session the engine translated a SYN for: its entries go in pending, so that
    /// the kernel forwards its SYN-ACK (and tells the engine) but nothing else until then.
    /// Also over an installed entry (a new incarnation of a closed connection).
    Arm(OffloadFlow),
    /// The session ended or left the established state: remove its entry.
    Remove(OffloadFlow),
    /// The engine needs what the kernel saw of this flow now ([`Nat::offload_seen`]), e.g.
    /// to judge a reset against the LAN host's latest acknowledgement.
    Refresh(OffloadFlow),
}

/// What the kernel saw of an offloaded flow since the last fold-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSeen {
    /// Time of its last packet on the fast path (either direction).
    pub last_seen: Timestamp,
    /// The last TCP acknowledgement number the LAN host sent on the fast path.
    pub lan_ack: Option<u32>,
}

/// A TCP packet the fast path forwarded that the engine's state machine must see (a FIN,
/// or the SYN-ACK of an armed connection: the programs tell it through their event ring
/// instead of the TUN), with the fields the packet carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadedTcp {
    /// LAN → tunnel (`true`) or tunnel → LAN.
    pub outbound: bool,
    /// Its TCP flags.
    pub flags: TcpFlags,
    /// Its sequence number.
    pub seq: u32,
    /// Its acknowledgement number.
    pub ack: u32,
}

/// The journal taken by [`Nat::drain_offload`].
#[derive(Debug, Default)]
pub struct OffloadDrain {
    /// The changes, oldest first.
    pub ops: Vec<OffloadOp>,
    /// The journal overflowed: clear the maps and apply [`Nat::offload_resync`].
    pub resync: bool,
}

/// What the fast path should hold for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    None,
    Armed,
    Installed,
}

/// The engine's fast-path state.
#[derive(Debug, Default)]
pub(crate) struct Offload {
    enabled: bool,
    ops: Vec<OffloadOp>,
    overflowed: bool,
    /// Offloaded sessions that got a reset not believed on the engine's possibly stale
    /// acknowledgement: session → the reset's sequence number, judged again at the
    /// fold-back.
    pending_rst: HashMap<u32, u32>,
    installed: u32,
}

impl Offload {
    fn push(&mut self, op: OffloadOp) {
        if self.ops.len() >= MAX_JOURNAL {
            self.ops.clear();
            self.overflowed = true;
        }
        if !self.overflowed {
            self.ops.push(op);
        }
    }
}

impl Nat {
    /// Turns the fast path's journal on or off. On: every eligible session is queued for
    /// install (after a restore, or when the fast path comes up). Off: the journal and the
    /// marks are cleared (the daemon empties its maps itself).
    pub fn set_offload(&mut self, on: bool) {
        self.offload = Offload {
            enabled: on,
            ..Offload::default()
        };
        for s in 0..self.sessions.len() as u32 {
            self.sessions[s as usize].bits &= !(OFFLOADED | ARMED);
            if on {
                self.offload_sync(s);
            }
        }
    }

    /// Whether the journal is on.
    pub fn offload_enabled(&self) -> bool {
        self.offload.enabled
    }

    /// Sessions the fast path holds an entry for.
    pub fn offloaded(&self) -> u32 {
        self.offload.installed
    }

    /// Takes the journal.
    pub fn drain_offload(&mut self) -> OffloadDrain {
        OffloadDrain {
            ops: std::mem::take(&mut self.offload.ops),
            resync: std::mem::take(&mut self.offload.overflowed),
        }
    }

    /// Every flow the fast path should hold now, armed or installed.
    pub fn offloaded_flows(&self) -> Vec<OffloadFlow> {
        self.sessions
            .iter()
            .filter(|x| x.is_live() && x.bits & OFFLOADED != 0)
            .map(|x| self.flow_of(x))
            .collect()
    }

    /// What rebuilds the maps after an overflowed journal: an install or arm for each
    /// flow the fast path should hold.
    pub fn offload_resync(&self) -> Vec<OffloadOp> {
        self.sessions
            .iter()
            .filter(|x| x.is_live() && x.bits & OFFLOADED != 0)
            .map(|x| {
                let f = self.flow_of(x);
                if x.bits & ARMED != 0 {
                    OffloadOp::Arm(f)
                } else {
                    OffloadOp::Install(f)
                }
            })
            .collect()
    }

    /// Folds what the kernel saw of `flow` into its session: the idle timer restarts from
    /// `seen.last_seen`, a UDP flow may become a stream, the LAN host's acknowledgement is
    /// recorded, and a reset held back for it is judged again. Returns `false` when the
    /// engine has no such offloaded session (the entry is stale: remove it).
    pub fn offload_seen(&mut self, now: Timestamp, flow: &OffloadFlow, seen: FlowSeen) -> bool {
        let Some(s) = self.find_offloaded(flow) else {
            return false;
        };
        let sess = &mut self.sessions[s as usize];
        sess.last_seen = sess
            .last_seen
            .max(seen.last_seen.millis().min(now.millis()));
        if let Some(ack) = seen.lan_ack {
            sess.lan_ack = ack;
            sess.bits |= ACK_SEEN;
        }
        let becomes_stream = sess.state == SessionState::Answered
            && !sess.is_stream()
            && sess.last_seen >= sess.stream_from_ms();
        if becomes_stream {
            sess.bits |= STREAM;
            self.retier(s, now);
        }
        if let Some(seq) = self.offload.pending_rst.remove(&s) {
            self.judge_held_rst(s, seq, now);
        }
        true
    }

    /// A TCP packet of `flow` the fast path forwarded (a FIN, or an armed connection's
    /// SYN-ACK): the session's state moves exactly as if the packet had come by the slow
    /// path (`touch_outbound` / `touch_inbound`), its entry staying while the connection
    /// closes, and an armed entry, which the kernel opened when it forwarded the SYN-ACK,
    /// is installed as it stands. Returns `false` when the engine has no such session (it
    /// ended meanwhile: nothing to do).
    pub fn offload_tcp(&mut self, now: Timestamp, flow: &OffloadFlow, pkt: OffloadedTcp) -> bool {
        if flow.proto != Protocol::Tcp {
            return false;
        }
        let Some(s) = self.find_flow(flow) else {
            return false;
        };
        let syn_ack = pkt.flags.has(TcpFlags::SYN) && pkt.flags.has(TcpFlags::ACK);
        if !pkt.outbound && syn_ack {
            // The kernel cleared both pending marks as it forwarded it: what the entry
            // is now, whatever the state machine makes of the packet (`offload_sync`
            // arms it again if it must).
            self.sessions[s as usize].bits &= !ARMED;
        }
        if pkt.outbound {
            let p = OutboundPacket {
                proto: Protocol::Tcp,
                src: flow.internal,
                dst: flow.remote,
                flags: pkt.flags,
                seq: pkt.seq,
                ack: pkt.ack,
            };
            self.touch_outbound(s, now, &p);
        } else {
            let p = InboundPacket {
                proto: Protocol::Tcp,
                src: flow.remote,
                dst: flow.external,
                flags: pkt.flags,
                seq: pkt.seq,
                ack: pkt.ack,
            };
            self.touch_inbound(s, now, &p);
        }
        true
    }

    /// An offloaded session got a reset the engine did not believe: its acknowledgement
    /// may be stale (the LAN host's ACKs went by the fast path), so ask for a fold-back.
    pub(super) fn offload_recheck_rst(&mut self, s: u32, seq: u32) {
        if self.sessions[s as usize].bits & OFFLOADED == 0 {
            return;
        }
        self.offload.pending_rst.insert(s, seq);
        let flow = self.flow_of(&self.sessions[s as usize]);
        self.offload.push(OffloadOp::Refresh(flow));
    }

    /// Brings session `s`'s entry in line with its state: armed while a TCP SYN waits for
    /// its answer, installed while it is eligible, removed otherwise. Called when a
    /// session is added and on every state change.
    pub(super) fn offload_sync(&mut self, s: u32) {
        if !self.offload.enabled {
            return;
        }
        let x = &self.sessions[s as usize];
        let want = if x.is_live() {
            self.want(x)
        } else {
            Want::None
        };
        let has = match (x.bits & OFFLOADED != 0, x.bits & ARMED != 0) {
            (false, _) => Want::None,
            (true, true) => Want::Armed,
            (true, false) => Want::Installed,
        };
        if want == has {
            return;
        }
        let flow = self.flow_of(x);
        let bits = &mut self.sessions[s as usize].bits;
        match want {
            Want::None => return self.offload_removed(s, flow),
            Want::Armed => {
                *bits |= OFFLOADED | ARMED;
                self.offload.push(OffloadOp::Arm(flow));
            }
            Want::Installed => {
                *bits = (*bits | OFFLOADED) & !ARMED;
                self.offload.push(OffloadOp::Install(flow));
            }
        }
        if has == Want::None {
            self.offload.installed += 1;
        }
    }

    /// Session `s` is being removed (or left the eligible states): its entry goes.
    pub(super) fn offload_forget(&mut self, s: u32) {
        let x = &self.sessions[s as usize];
        if x.bits & OFFLOADED != 0 {
            let flow = self.flow_of(x);
            self.offload_removed(s, flow);
        }
    }

    /// Every entry is removed and the eligible ones installed again (a reload: the policy
    /// may have changed under them).
    pub(super) fn offload_reinstall_all(&mut self) {
        if !self.offload.enabled {
            return;
        }
        for s in 0..self.sessions.len() as u32 {
            self.offload_forget(s);
            self.offload_sync(s);
        }
    }

    fn offload_removed(&mut self, s: u32, flow: OffloadFlow) {
        self.sessions[s as usize].bits &= !(OFFLOADED | ARMED);
        self.offload.installed = self.offload.installed.saturating_sub(1);
        self.offload.pending_rst.remove(&s);
        self.offload.push(OffloadOp::Remove(flow));
    }

    /// Installed: established TCP, also while it closes by FIN (the programs tell the
    /// engine of each FIN, and the rest of the close is ACKs the engine would only count),
    /// but not after a reset (one believed from the internet must see the LAN host's next
    /// packet, and one from the LAN ends the connection); answered UDP (not DNS, which
    /// closes at once). Armed: TCP that sent its SYN (`SynSent`, not after a reset): only
    /// the answer passes, so an unanswered flow still leaves nothing to the kernel. A
    /// hairpin (to our own address) stays on the slow path.
    fn want(&self, x: &Session) -> Want {
        if x.remote.addr == self.external {
            return Want::None;
        }
        let installed = match x.proto {
            Protocol::Tcp => {
                let fins = x.bits & (FIN_OUT | FIN_IN);
                if x.bits & RST_IN != 0 {
                    return Want::None;
                }
                match x.state {
                    SessionState::SynSent => return Want::Armed,
                    SessionState::Established => fins == 0,
                    SessionState::FinWait => fins != 0,
                    SessionState::TimeWait => fins == FIN_OUT | FIN_IN,
                    _ => false,
                }
            }
            Protocol::Udp => x.state == SessionState::Answered,
            Protocol::Icmp => false,
        };
        if installed {
            Want::Installed
        } else {
            Want::None
        }
    }

    fn flow_of(&self, x: &Session) -> OffloadFlow {
        OffloadFlow {
            proto: x.proto,
            internal: x.internal,
            remote: x.remote,
            external: Endpoint::new(self.external, x.ext_port),
        }
    }

    fn find_offloaded(&self, flow: &OffloadFlow) -> Option<u32> {
        self.find_flow(flow)
            .filter(|&s| self.sessions[s as usize].bits & OFFLOADED != 0)
    }

    /// The session of `flow` (same external port), offloaded or not.
    fn find_flow(&self, flow: &OffloadFlow) -> Option<u32> {
        let hash = self
            .hasher
            .hash_one(pack_out(flow.proto, flow.internal, flow.remote));
        let sessions = &self.sessions;
        self.out_index
            .find(hash, |s| {
                let x = &sessions[s as usize];
                x.internal == flow.internal && x.remote == flow.remote && x.proto == flow.proto
            })
            .filter(|&s| sessions[s as usize].ext_port == flow.external.port)
    }
}
