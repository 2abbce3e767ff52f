//! The per-session state machine: what a packet each way does to a session's TCP state,
//! answered state and stream bit, and the moves between timer classes and tiers that
//! follow (RFC 7857 §3.2, RFC 5961 §3.2 for resets, RFC 6191 for new incarnations).

use crate::session::{host_link, Session, ACK_SEEN, FIN_IN, FIN_OUT, RST_GRACE, RST_IN, STREAM};
use crate::tier::Tier;
use crate::timers::class_of;
use crate::types::{InboundPacket, OutboundPacket, Protocol, SessionState, TcpFlags, Timestamp};

use super::Nat;

/// Inbound RSTs are believed when their sequence number lies within this many bytes at or
/// after the last acknowledgement the LAN host sent (RFC 5961 §3.2 in spirit: the host
/// itself accepts only RCV.NXT exactly and challenges the rest; a NAT cannot see its
/// window, so it allows the data that may be in flight at gigabit rates and home RTTs).
const RST_WINDOW: u32 = 1 << 22;

/// How long a connection that was live when a reset from the internet ended it (believed,
/// in the window above) keeps its port from every reclaim path. The window check is all a
/// NAT can do without the host's RCV.NXT, and a spoofer who lands in it must not free the
/// port of a live connection for the next newcomer while the LAN host has not yet had its
/// say: the host answers an in-window RST that is not exactly RCV.NXT with a challenge ACK
/// (RFC 5961 §3.2), and any packet of it brings the session back (`touch_outbound`). A
/// real reset leaves the host silent, so after the grace the session is an ordinary
/// TIME_WAIT one, reclaimable when ports run out (RFC 7857 §2.2, §3.2). 5 s: a LAN round
/// trip is milliseconds, and a host whose challenge ACKs a flood has used up answers
/// within the next second (their limit is per second, RFC 5961 §7; Linux
/// `tcp_challenge_ack_limit`); a real reset costs its port for at most 5 s more.
pub(super) const RST_GRACE_MS: u64 = 5_000;

/// Whether a reset with sequence number `seq` lies in the window the LAN host
/// acknowledged (RFC 5961 §3.2, see [`RST_WINDOW`]).
#[inline]
fn rst_in_window(x: &Session, seq: u32) -> bool {
    x.bits & ACK_SEEN != 0 && seq.wrapping_sub(x.lan_ack) < RST_WINDOW
}

impl Nat {
    #[inline]
    pub(super) fn touch_outbound(&mut self, s: u32, now: Timestamp, pkt: &OutboundPacket) {
        let flags = pkt.flags;
        let sess = &mut self.sessions[s as usize];
        sess.last_seen = sess.last_seen.max(now.millis());
        let new_state = match (sess.proto, sess.state) {
            (Protocol::Tcp, st) => {
                if flags.has(TcpFlags::ACK) {
                    sess.lan_ack = pkt.ack;
                    sess.bits |= ACK_SEEN;
                }
                if flags.has(TcpFlags::RST) {
                    // The LAN host ends its own connection: believed, no grace.
                    sess.bits &= !RST_GRACE;
                    SessionState::TimeWait
                } else if flags.is_syn_only() && st == SessionState::TimeWait {
                    // A new incarnation of the same 5-tuple (RFC 7857 §3.2, RFC 6191).
                    sess.bits &= !(FIN_OUT | FIN_IN | RST_IN | RST_GRACE);
                    SessionState::SynSent
                } else if st == SessionState::TimeWait && sess.bits & RST_IN != 0 {
                    // The LAN host goes on after a reset we believed: it did not (RFC 5961
                    // §3.2 challenge ACK, or data), so the connection lives.
                    sess.bits &= !(RST_IN | RST_GRACE);
                    SessionState::Established
                } else if flags.has(TcpFlags::FIN) {
                    sess.bits |= FIN_OUT;
                    if sess.bits & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN {
                        SessionState::TimeWait
                    } else {
                        SessionState::FinWait
                    }
                } else if st == SessionState::SynReceived && flags.has(TcpFlags::ACK) {
                    SessionState::Established
                } else {
                    st
                }
            }
            // A new query on an answered DNS socket waits for its own answer.
            (Protocol::Udp, SessionState::DnsAnswered) => SessionState::Unanswered,
            (_, SessionState::Answered) if !sess.is_stream() => {
                return self.maybe_stream(s, now);
            }
            (_, st) => st,
        };
        if new_state != self.sessions[s as usize].state {
            self.set_state(s, new_state, now);
        }
    }

    #[inline]
    pub(super) fn touch_inbound(&mut self, s: u32, now: Timestamp, pkt: &InboundPacket) {
        let flags = pkt.flags;
        let sess = &mut self.sessions[s as usize];
        sess.last_seen = sess.last_seen.max(now.millis());
        let first_answer = sess.state.is_unanswered();
        let mut unverified_rst = false;
        let new_state = match (sess.proto, sess.state) {
            (Protocol::Tcp, st) => {
                if flags.has(TcpFlags::RST) {
                    // Anyone on the internet can send an RST with our external port in it;
                    // believe it only for a connection not yet answered (a refused SYN:
                    // already recyclable) or within the window the LAN host acknowledged.
                    let in_window = rst_in_window(sess, pkt.seq);
                    if st == SessionState::SynSent || in_window {
                        sess.bits |= RST_IN;
                        if st != SessionState::SynSent {
                            sess.bits |= RST_GRACE;
                        }
                        SessionState::TimeWait
                    } else {
                        unverified_rst = true;
                        st
                    }
                } else if flags.has(TcpFlags::FIN) {
                    sess.bits |= FIN_IN;
                    if sess.bits & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN {
                        SessionState::TimeWait
                    } else {
                        SessionState::FinWait
                    }
                } else if st == SessionState::SynSent {
                    SessionState::Established
                } else {
                    st
                }
            }
            (Protocol::Udp, _) if sess.remote.port == 53 => SessionState::DnsAnswered,
            (_, SessionState::Answered) if !sess.is_stream() => {
                return self.maybe_stream(s, now);
            }
            (Protocol::Udp, _) | (Protocol::Icmp, _) => SessionState::Answered,
        };
        if first_answer {
            let (proto, remote) = (sess.proto, sess.remote);
            if let Some(d) = self.dests.get_mut(&(proto, remote)) {
                d.answered = d.answered.saturating_add(1);
            }
        }
        if unverified_rst {
            self.ledger.rst_unverified += 1;
            self.offload_recheck_rst(s, pkt.seq);
        }
        if new_state != self.sessions[s as usize].state {
            self.set_state(s, new_state, now);
        }
    }

    /// A reset held back for an offloaded session (`offload`), judged on the LAN host's
    /// acknowledgement the fast path reported: believed as [`Nat::touch_inbound`] would.
    pub(super) fn judge_held_rst(&mut self, s: u32, seq: u32, now: Timestamp) {
        let x = &mut self.sessions[s as usize];
        if x.proto == Protocol::Tcp && x.state != SessionState::TimeWait && rst_in_window(x, seq) {
            x.bits |= RST_IN | RST_GRACE;
            self.set_state(s, SessionState::TimeWait, now);
        }
    }

    /// Whether session `s` is a connection a reset from the internet ended less than
    /// [`RST_GRACE_MS`] ago (since the last packet the remote side sent): no reclaim path
    /// may take it yet.
    #[inline]
    pub(super) fn in_rst_grace(&self, s: u32, now: Timestamp) -> bool {
        let x = &self.sessions[s as usize];
        x.bits & RST_GRACE != 0 && now.millis().saturating_sub(x.last_seen) < RST_GRACE_MS
    }

    /// Whether session `s` is closing (TIME_WAIT) and may give up its port or tuple now.
    #[inline]
    pub(super) fn closing_reclaimable(&self, s: u32, now: Timestamp) -> bool {
        self.sessions[s as usize].state == SessionState::TimeWait && !self.in_rst_grace(s, now)
    }

    /// A packet of an answered UDP/ICMP flow not yet known as a stream: it becomes one when
    /// the packet comes at least `tier::STREAM_AFTER_MS` after the flow began.
    #[inline]
    fn maybe_stream(&mut self, s: u32, now: Timestamp) {
        if now.millis() >= self.sessions[s as usize].stream_from_ms() {
            self.sessions[s as usize].bits |= STREAM;
            self.retier(s, now);
        }
    }

    #[inline(never)]
    pub(super) fn set_state(&mut self, s: u32, state: SessionState, now: Timestamp) {
        let x = &mut self.sessions[s as usize];
        x.state = state;
        if state == SessionState::Answered && now.millis() >= x.stream_from_ms() {
            x.bits |= STREAM;
        }
        self.retier(s, now);
        self.offload_sync(s);
    }

    /// Moves a session to the timer class and recyclable tier its state (and stream bit)
    /// call for.
    #[inline(never)]
    pub(super) fn retier(&mut self, s: u32, now: Timestamp) {
        let (state, old_class, old_tier, proto, m, stream) = {
            let x = &self.sessions[s as usize];
            (x.state, x.class, x.tier, x.proto, x.mapping, x.is_stream())
        };
        let host = self.mappings[m as usize].host;
        let class = class_of(proto, state, stream);
        if class != old_class {
            self.timers.unlink(&mut self.sessions, s);
            self.sessions[s as usize].class = class;
            self.timers.push(&mut self.sessions, s);
            self.forecaster.left_early(old_class, now);
            self.forecaster.entered(class, now);
            let x = &mut self.sessions[s as usize];
            x.queued_at = now.millis().max(x.last_seen);
            x.last_seen = x.queued_at;
        }
        let tier = Tier::of(proto, state, stream);
        if tier != old_tier {
            self.untier(s, host);
            self.entier(s, host, tier);
        }
    }

    /// Puts session `s` of `host` at the tail of the list of `tier` (none: nothing).
    pub(super) fn entier(&mut self, s: u32, host: u32, tier: Option<Tier>) {
        let Some(tier) = tier else {
            return;
        };
        let p = self.sessions[s as usize].proto.index();
        let list = &mut self.host_lists[host as usize][p][tier.ix()];
        list.push_back(&mut self.sessions, s, host_link);
        if tier == Tier::Unanswered && list.len == 1 {
            self.note_unanswered_list(host, p, true);
        }
        self.sessions[s as usize].tier = Some(tier);
        self.hosts[host as usize].tiers[tier.ix()] += 1;
    }

    /// Takes session `s` of `host` out of its tier list, if it is in one.
    pub(super) fn untier(&mut self, s: u32, host: u32) {
        let (tier, p) = {
            let x = &self.sessions[s as usize];
            (x.tier, x.proto.index())
        };
        let Some(tier) = tier else {
            return;
        };
        let list = &mut self.host_lists[host as usize][p][tier.ix()];
        list.unlink(&mut self.sessions, s, host_link);
        if tier == Tier::Unanswered && list.len == 0 {
            self.note_unanswered_list(host, p, false);
        }
        self.sessions[s as usize].tier = None;
        let n = &mut self.hosts[host as usize].tiers[tier.ix()];
        *n = n.saturating_sub(1);
    }
}
