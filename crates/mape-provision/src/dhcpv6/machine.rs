//! The DHCPv6 client (RFC 8415 §18.2) for one IA_PD and the RFC 7598 options, as a sans-IO
//! state machine: it is given datagrams, timer expiries and the time, and answers with
//! the datagram to send and what happened; [`Client::next_timer`] says when to call again.
//!
//! ```text
//! start ─► delay ≤ 1 s ─► Solicit ─(Advertises collected for the first RT; preference 255
//!   at once)─► Request ─► Reply ─► Bound ─T1─► Renew ─T2─► Rebind ─valid lifetime─► Lost,
//!   Solicit again.   Renew/Rebind NoBinding ─► Request;  Request fails (REQ_MAX_RC or an
//!   error status) ─► Solicit.
//! ```
//!
//! A stateless client ([`Client::stateless`], an RA-only line whose /64 is on-link: no
//! prefix is delegated) asks for the configuration alone (§18.2.6):
//!
//! ```text
//! start ─► delay ≤ INF_MAX_DELAY ─► Information-request ─► Reply ─► Informed
//!   ─Information Refresh Time (§21.23)─► Information-request ─► ...
//! ```
//!
//! Either kind takes a server's SOL_MAX_RT / INF_MAX_RT for its retransmissions
//! (§21.24, §21.25) and discards Reconfigure messages (§18.2.11: none was accepted).

mod duid;
mod events;

use std::time::Duration;

use dhcproto::v6::Status;
use rand::Rng;

use super::message::{
    self, ClientKind, Delegated, IaPd, MessageError, Outgoing, ServerKind, ServerMessage,
    StatusInfo,
};
use super::retrans::{self, Retransmit};
use crate::machine::Time;

pub use duid::{hex, Duid, DuidError};
pub use events::{Change, Config, Discard, Event, Failure, FailureClass, Information, Lease, Step};

/// 0xffffffff: an infinite lifetime or T1/T2 (RFC 8415 §7.7).
pub const INFINITY: u32 = u32::MAX;

/// An Advertise kept for selection.
#[derive(Debug, Clone, PartialEq)]
struct Offer {
    server_id: Vec<u8>,
    preference: u8,
    prefix: Delegated,
    has_s46: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    /// §18.2.1: the random delay before the first Solicit.
    Delay {
        until: Time,
    },
    Soliciting {
        xid: [u8; 3],
        rt: Retransmit,
        offers: Vec<Offer>,
        first_rt_over: bool,
    },
    Requesting {
        xid: [u8; 3],
        rt: Retransmit,
        server_id: Vec<u8>,
        prefix: Delegated,
    },
    Bound,
    Renewing {
        xid: [u8; 3],
        rt: Retransmit,
    },
    Rebinding {
        xid: [u8; 3],
        rt: Retransmit,
    },
    /// §18.2.6: a stateless client's exchange.
    Informing {
        xid: [u8; 3],
        rt: Retransmit,
    },
    /// A stateless client holding its configuration until the refresh time.
    Informed,
}

/// The DHCPv6 client.
#[derive(Debug)]
pub struct Client<R> {
    config: Config,
    rng: R,
    state: State,
    /// Information-request only (§18.2.6), no IA_PD.
    stateless: bool,
    lease: Option<Lease>,
    info: Option<Information>,
    last_failure: Option<Failure>,
    discarded: [u64; Discard::ALL.len()],
    /// SOL_MAX_RT / INF_MAX_RT in force (§7.6 defaults, or the server's, §21.24-21.25).
    sol_max_rt: Duration,
    inf_max_rt: Duration,
}

impl<R: Rng> Client<R> {
    /// A client for a delegated prefix, idle until [`Client::start`].
    pub fn new(config: Config, rng: R) -> Self {
        Self {
            config,
            rng,
            state: State::Idle,
            stateless: false,
            lease: None,
            info: None,
            last_failure: None,
            discarded: [0; Discard::ALL.len()],
            sol_max_rt: retrans::SOLICIT.mrt,
            inf_max_rt: retrans::INFORMATION_REQUEST.mrt,
        }
    }

    /// A stateless client (§18.2.6): Information-request for option 94 and the DNS
    /// servers, no IA_PD (`config.iaid` and `config.hint` are not used). Its events are
    /// [`Event::Informed`] and [`Event::Failed`].
    pub fn stateless(config: Config, rng: R) -> Self {
        Self {
            stateless: true,
            ..Self::new(config, rng)
        }
    }

    /// Starts: the first Solicit (Information-request) goes out after a random delay of up
    /// to SOL_MAX_DELAY (INF_MAX_DELAY) (§18.2.1, §18.2.6); call [`Client::on_timer`] at
    /// [`Client::next_timer`].
    pub fn start(&mut self, now: Time) -> Step {
        let max = if self.stateless {
            retrans::INF_MAX_DELAY
        } else {
            retrans::SOL_MAX_DELAY
        };
        let delay = max.mul_f64(self.rng.random::<f64>());
        self.state = State::Delay { until: now + delay };
        Step::default()
    }

    /// Whether this is a stateless client ([`Client::stateless`]).
    pub fn is_stateless(&self) -> bool {
        self.stateless
    }

    /// The configuration a stateless client holds, if any.
    pub fn information(&self) -> Option<&Information> {
        self.info.as_ref()
    }

    /// SOL_MAX_RT in force (the server's when it sent a valid one, §21.24).
    pub fn sol_max_rt(&self) -> Duration {
        self.sol_max_rt
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The latest failure (for a one-shot run that gives up).
    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// Datagrams not acted on, per reason.
    pub fn discarded(&self) -> impl Iterator<Item = (Discard, u64)> + '_ {
        Discard::ALL
            .iter()
            .copied()
            .zip(self.discarded.iter().copied())
    }

    /// What the client is doing: "idle", "soliciting", "requesting", "bound", "renewing",
    /// "rebinding"; a stateless client: "informing", "informed".
    pub fn phase(&self) -> &'static str {
        match self.state {
            State::Idle => "idle",
            State::Delay { .. } if self.stateless => "informing",
            State::Informing { .. } => "informing",
            State::Informed => "informed",
            State::Delay { .. } | State::Soliciting { .. } => "soliciting",
            State::Requesting { .. } => "requesting",
            State::Bound => "bound",
            State::Renewing { .. } => "renewing",
            State::Rebinding { .. } => "rebinding",
        }
    }

    /// When to call [`Client::on_timer`] next (None: nothing is due).
    pub fn next_timer(&self) -> Option<Time> {
        let expiry = self.lease.as_ref().and_then(Lease::expires_at);
        match &self.state {
            State::Idle => None,
            State::Delay { until } => Some(*until),
            State::Soliciting { rt, .. } | State::Requesting { rt, .. } => Some(rt.due()),
            State::Bound => self.lease.as_ref().and_then(Lease::t1_at),
            State::Renewing { rt, .. } | State::Rebinding { rt, .. } => {
                Some(expiry.map_or(rt.due(), |e| e.min(rt.due())))
            }
            State::Informing { rt, .. } => Some(rt.due()),
            State::Informed => self.info.as_ref().and_then(Information::refresh_at),
        }
    }

    /// Rebind now, whatever T1 says: the WAN link came back (RFC 8415 §18.2.12: a client
    /// holding delegated prefixes sends a Rebind). Without a lease: Solicit.
    pub fn rebind_now(&mut self, now: Time) -> Step {
        if self.stateless {
            return self.inform(now);
        }
        if self.lease.is_none() {
            return self.solicit(now);
        }
        self.rebind(now)
    }

    /// A timer fired (an early call does nothing).
    pub fn on_timer(&mut self, now: Time) -> Step {
        match self.next_timer() {
            Some(t) if now >= t => {}
            _ => return Step::default(),
        }
        if let Some(step) = self.expire(now) {
            return step;
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => Step::default(),
            State::Delay { .. } if self.stateless => self.inform(now),
            State::Delay { .. } => self.solicit(now),
            // §18.2.6: MRC and MRD 0: retransmit until a Reply comes.
            State::Informing { xid, mut rt } => {
                rt.next(now, &mut self.rng);
                self.state = State::Informing { xid, rt };
                self.transmit(now)
            }
            // §21.23: the refresh time is over: ask again.
            State::Informed => self.inform(now),
            State::Soliciting {
                xid,
                mut rt,
                offers,
                first_rt_over,
            } => {
                // §18.2.1: after the first RT, take the best Advertise collected.
                if !first_rt_over {
                    if let Some(best) = best_offer(&offers) {
                        let best = best.clone();
                        return self.request(now, best.server_id, best.prefix);
                    }
                }
                rt.next(now, &mut self.rng);
                self.state = State::Soliciting {
                    xid,
                    rt,
                    offers: Vec::new(),
                    first_rt_over: true,
                };
                self.transmit(now)
            }
            State::Requesting {
                xid,
                mut rt,
                server_id,
                prefix,
            } => {
                if rt.next(now, &mut self.rng) {
                    self.state = State::Requesting {
                        xid,
                        rt,
                        server_id,
                        prefix,
                    };
                    return self.transmit(now);
                }
                // §18.2.2: REQ_MAX_RC reached: the exchange failed; find a server again.
                let f = Failure {
                    class: FailureClass::NoServer,
                    detail: format!(
                        "no Reply to Request after {} transmissions",
                        retrans::REQUEST.mrc
                    ),
                };
                self.fail_and_solicit(now, f)
            }
            State::Bound => self.renew(now),
            State::Renewing { xid, mut rt } => {
                if rt.next(now, &mut self.rng) {
                    self.state = State::Renewing { xid, rt };
                    return self.transmit(now);
                }
                // §18.2.4: T2 reached without a Reply: Rebind.
                self.rebind(now)
            }
            State::Rebinding { xid, mut rt } => {
                if rt.next(now, &mut self.rng) {
                    self.state = State::Rebinding { xid, rt };
                    return self.transmit(now);
                }
                self.state = State::Rebinding { xid, rt };
                self.expire(now).unwrap_or_default()
            }
        }
    }

    /// The lease's valid lifetime is over: drop it and solicit (§18.2.5: once the
    /// lifetimes are over the client stops using the prefix; "Lost").
    fn expire(&mut self, now: Time) -> Option<Step> {
        let lease = self.lease.as_ref()?;
        if lease.expires_at().is_none_or(|e| now < e) {
            return None;
        }
        let prefix = lease.prefix;
        self.lease = None;
        let mut step = self.solicit(now);
        step.events.insert(
            0,
            Event::Lost {
                prefix,
                reason: "valid lifetime over without a Reply".into(),
            },
        );
        Some(step)
    }

    fn xid(&mut self) -> [u8; 3] {
        let x: u32 = self.rng.random();
        let b = x.to_be_bytes();
        [b[1], b[2], b[3]]
    }

    fn solicit(&mut self, now: Time) -> Step {
        let xid = self.xid();
        let params = retrans::Params {
            mrt: self.sol_max_rt,
            ..retrans::SOLICIT
        };
        let rt = Retransmit::start(params, now, &mut self.rng, true);
        self.state = State::Soliciting {
            xid,
            rt,
            offers: Vec::new(),
            first_rt_over: false,
        };
        self.transmit(now)
    }

    fn inform(&mut self, now: Time) -> Step {
        let xid = self.xid();
        let params = retrans::Params {
            mrt: self.inf_max_rt,
            ..retrans::INFORMATION_REQUEST
        };
        let rt = Retransmit::start(params, now, &mut self.rng, false);
        self.state = State::Informing { xid, rt };
        self.transmit(now)
    }

    fn request(&mut self, now: Time, server_id: Vec<u8>, prefix: Delegated) -> Step {
        let xid = self.xid();
        let rt = Retransmit::start(retrans::REQUEST, now, &mut self.rng, false);
        self.state = State::Requesting {
            xid,
            rt,
            server_id,
            prefix,
        };
        self.transmit(now)
    }

    fn renew(&mut self, now: Time) -> Step {
        let Some(l) = &self.lease else {
            return self.solicit(now);
        };
        // §18.2.4: MRD = the time left until T2 (no T2: until the lease ends).
        let end = l.t2_at().or(l.expires_at());
        let mrd = end.map_or(Duration::ZERO, |e| e.saturating_sub(now));
        if end.is_some() && mrd.is_zero() {
            return self.rebind(now);
        }
        let xid = self.xid();
        let rt = Retransmit::start_with_mrd(retrans::RENEW, mrd, now, &mut self.rng);
        self.state = State::Renewing { xid, rt };
        self.transmit(now)
    }

    fn rebind(&mut self, now: Time) -> Step {
        let end = self.lease.as_ref().and_then(Lease::expires_at);
        // §18.2.5: MRD = until the valid lifetimes end.
        let mrd = end.map_or(Duration::ZERO, |e| e.saturating_sub(now));
        let xid = self.xid();
        let rt = Retransmit::start_with_mrd(retrans::REBIND, mrd, now, &mut self.rng);
        self.state = State::Rebinding { xid, rt };
        self.transmit(now)
    }

    /// The datagram of the current exchange.
    fn transmit(&mut self, now: Time) -> Step {
        let held = self.lease.as_ref().map(|l| (l.prefix, l.server_id.clone()));
        let (kind, xid, rt, server_id, prefix) = match &self.state {
            State::Soliciting { xid, rt, .. } => (
                ClientKind::Solicit,
                *xid,
                rt,
                None,
                held.map(|h| h.0).or(self.config.hint),
            ),
            State::Requesting {
                xid,
                rt,
                server_id,
                prefix,
            } => (
                ClientKind::Request,
                *xid,
                rt,
                Some(server_id.clone()),
                Some(*prefix),
            ),
            State::Renewing { xid, rt } => (
                ClientKind::Renew,
                *xid,
                rt,
                held.as_ref().map(|h| h.1.clone()),
                held.map(|h| h.0),
            ),
            State::Rebinding { xid, rt } => (ClientKind::Rebind, *xid, rt, None, held.map(|h| h.0)),
            State::Informing { xid, rt } => (ClientKind::InformationRequest, *xid, rt, None, None),
            _ => return Step::default(),
        };
        let bytes = message::build(&Outgoing {
            kind,
            xid,
            duid: self.config.duid.as_bytes(),
            iaid: self.config.iaid,
            server_id: server_id.as_deref(),
            prefix,
            elapsed_cs: rt.elapsed_cs(now),
        });
        Step {
            // A DUID of at most 130 bytes always encodes.
            send: bytes.ok(),
            events: Vec::new(),
        }
    }

    fn discard(&mut self, why: Discard) -> Step {
        if let Some(i) = Discard::ALL.iter().position(|d| *d == why) {
            self.discarded[i] += 1;
        }
        Step::default()
    }

    /// A failed exchange that goes on (its retransmissions, or Renew until T2).
    fn fail_and_go_on(&mut self, f: Failure) -> Step {
        self.last_failure = Some(f.clone());
        Step {
            send: None,
            events: vec![Event::Failed(f)],
        }
    }

    fn fail_and_solicit(&mut self, now: Time, f: Failure) -> Step {
        self.last_failure = Some(f.clone());
        let mut step = self.solicit(now);
        step.events.insert(0, Event::Failed(f));
        step
    }

    /// A datagram arrived on port 546.
    pub fn on_packet(&mut self, now: Time, bytes: &[u8]) -> Step {
        let m = match message::parse(bytes) {
            Ok(m) => m,
            Err(MessageError::Reconfigure) => return self.discard(Discard::Reconfigure),
            Err(MessageError::Malformed(_) | MessageError::NoServerId(_))
            | Err(MessageError::NotForClient(_)) => return self.discard(Discard::Malformed),
        };
        if m.client_id.as_deref() != Some(self.config.duid.as_bytes()) {
            return self.discard(Discard::WrongClient);
        }
        let expected = match &self.state {
            State::Soliciting { xid, .. } => Some((*xid, ServerKind::Advertise)),
            State::Requesting { xid, .. }
            | State::Renewing { xid, .. }
            | State::Rebinding { xid, .. }
            | State::Informing { xid, .. } => Some((*xid, ServerKind::Reply)),
            _ => None,
        };
        if expected != Some((m.xid, m.kind)) {
            return self.discard(Discard::Unexpected);
        }
        self.take_max_rt(&m);
        if self.stateless {
            return self.on_information(now, m);
        }
        match m.kind {
            ServerKind::Advertise => self.on_advertise(now, m),
            ServerKind::Reply => self.on_reply(now, m),
        }
    }

    /// §21.24, §21.25: a valid SOL_MAX_RT (in an Advertise or Reply, even one otherwise
    /// ignored, §18.2.9) or INF_MAX_RT (in a Reply to Information-request) becomes the
    /// client's, for the exchange under way too.
    fn take_max_rt(&mut self, m: &ServerMessage) {
        let (value, slot) = if self.stateless {
            (m.inf_max_rt, &mut self.inf_max_rt)
        } else {
            (m.sol_max_rt, &mut self.sol_max_rt)
        };
        let Some(mrt) = value.and_then(retrans::max_rt_option) else {
            return;
        };
        *slot = mrt;
        // Only one of the two exchanges exists in each kind of client.
        if let State::Soliciting { rt, .. } | State::Informing { rt, .. } = &mut self.state {
            rt.set_mrt(mrt);
        }
    }

    /// §18.2.10: the Reply to an Information-request. An error status is a failure and
    /// the retransmissions go on; otherwise its options are the configuration until the
    /// refresh time (§21.23).
    fn on_information(&mut self, now: Time, m: ServerMessage) -> Step {
        if let Some(s) = m.status.clone().filter(|s| !s.is_success()) {
            let f = Failure {
                class: FailureClass::Refused,
                detail: format!("Reply to Information-request: {s}"),
            };
            return self.fail_and_go_on(f);
        }
        let refresh = match m.refresh {
            None => retrans::IRT_DEFAULT,
            Some(INFINITY) => INFINITY,
            Some(t) => t.max(retrans::IRT_MINIMUM),
        };
        let info = Information {
            server_id: m.server_id,
            obtained: now,
            refresh,
            s46: m.s46,
            dns: m.dns,
        };
        let change = match &self.info {
            None => Change::New,
            Some(old) if old.s46 == info.s46 => Change::Extended,
            Some(_) => Change::Changed,
        };
        self.info = Some(info.clone());
        self.last_failure = None;
        self.state = State::Informed;
        Step {
            send: None,
            events: vec![Event::Informed { info, change }],
        }
    }

    fn our_ia<'m>(&self, m: &'m ServerMessage) -> Option<&'m IaPd> {
        m.ia_pd.iter().find(|ia| ia.iaid == self.config.iaid)
    }

    /// §18.2.9.
    fn on_advertise(&mut self, now: Time, m: ServerMessage) -> Step {
        let ia = self.our_ia(&m).filter(|ia| ia_usable(ia));
        let prefix = ia.and_then(|ia| ia.prefixes.iter().find(|p| p.valid > 0).copied());
        let Some(prefix) = prefix else {
            // Ignored, but its status is what a give-up reports.
            let status = m
                .status
                .clone()
                .filter(|s| !s.is_success())
                .or_else(|| self.our_ia(&m).and_then(|ia| ia.status.clone()));
            self.last_failure = Some(no_prefix("Advertise", status.as_ref()));
            return self.discard(Discard::NoPrefix);
        };
        let offer = Offer {
            server_id: m.server_id.clone(),
            preference: m.preference,
            prefix,
            has_s46: !m.s46.is_empty(),
        };
        let State::Soliciting {
            offers,
            first_rt_over,
            ..
        } = &mut self.state
        else {
            return Step::default();
        };
        // 255: at once; after the first RT: the first valid one (§18.2.1).
        if offer.preference == 255 || *first_rt_over {
            return self.request(now, offer.server_id, offer.prefix);
        }
        offers.push(offer);
        Step::default()
    }

    /// §18.2.10 and §18.2.10.1.
    fn on_reply(&mut self, now: Time, m: ServerMessage) -> Step {
        let was_request = matches!(self.state, State::Requesting { .. });
        if let Some(s) = m.status.clone().filter(|s| !s.is_success()) {
            // UseMulticast: the client already multicasts; a retransmission follows.
            if s.status == Status::UseMulticast {
                return self.discard(Discard::Unexpected);
            }
            let f = Failure {
                class: FailureClass::Refused,
                detail: format!("Reply: {s}"),
            };
            if was_request {
                return self.fail_and_solicit(now, f);
            }
            // Renew/Rebind: keep trying until T2/expiry.
            return self.fail_and_go_on(f);
        }
        let ia = self.our_ia(&m).cloned();
        // §18.2.10.1: a Reply to Renew/Rebind without our IA_PD is as if not received;
        // the retransmission timer goes on (rate limit).
        if ia.is_none() && !was_request {
            return self.discard(Discard::NoPrefix);
        }
        let status = ia.as_ref().and_then(|ia| ia.status.clone());
        // §18.2.10.1: NoBinding for an IA in answer to Renew/Rebind: Request it.
        if !was_request
            && status
                .as_ref()
                .is_some_and(|s| s.status == Status::NoBinding)
        {
            let prefix = self.lease.as_ref().map(|l| l.prefix);
            if let Some(p) = prefix {
                return self.request(now, m.server_id, p);
            }
        }
        let usable = ia.filter(ia_usable);
        let prefix = usable
            .as_ref()
            .and_then(|ia| ia.prefixes.iter().find(|p| p.valid > 0).copied());
        let (Some(ia), Some(prefix)) = (usable, prefix) else {
            let f = no_prefix("Reply", status.as_ref());
            if let Some(old) = self.lease.take() {
                // The server withdrew the prefix (valid lifetime 0, §18.2.10.1).
                let mut step = self.fail_and_solicit(now, f);
                step.events.insert(
                    0,
                    Event::Lost {
                        prefix: old.prefix,
                        reason: "the server withdrew the prefix".into(),
                    },
                );
                return step;
            }
            return self.fail_and_solicit(now, f);
        };
        let (t1, t2) = timers(&ia, &prefix);
        let lease = Lease {
            prefix,
            t1,
            t2,
            server_id: m.server_id,
            obtained: now,
            s46: m.s46,
            dns: m.dns,
        };
        let change = match &self.lease {
            None => Change::New,
            Some(old) if old.same_binding(&lease) => Change::Extended,
            Some(_) => Change::Changed,
        };
        self.lease = Some(lease.clone());
        self.last_failure = None;
        self.state = State::Bound;
        Step {
            send: None,
            events: vec![Event::Bound { lease, change }],
        }
    }
}

/// §21.21: an IA_PD with T1 > T2 (both non-zero) is discarded; so is one with an error
/// status.
fn ia_usable(ia: &IaPd) -> bool {
    let timers_ok = !(ia.t1 > ia.t2 && ia.t2 > 0);
    let status_ok = ia.status.as_ref().is_none_or(StatusInfo::is_success);
    timers_ok && status_ok
}

/// T1 and T2 as the client uses them: the server's, or 0.5 and 0.8 × the preferred
/// lifetime when it set them to 0 (§18.2.4, §21.21 "left to the discretion of the
/// client").
fn timers(ia: &IaPd, p: &Delegated) -> (u32, u32) {
    let part = |f: u64| {
        if p.preferred == INFINITY {
            INFINITY
        } else {
            (u64::from(p.preferred) * f / 10) as u32
        }
    };
    let t1 = if ia.t1 == 0 { part(5) } else { ia.t1 };
    let t2 = if ia.t2 == 0 { part(8).max(t1) } else { ia.t2 };
    (t1, t2)
}

fn best_offer(offers: &[Offer]) -> Option<&Offer> {
    // §18.2.9: highest preference; among equals, one that carries the S46 options (a
    // better set of parameters); then the first received.
    let mut best: Option<&Offer> = None;
    for o in offers {
        let key = (o.preference, o.has_s46);
        if best.is_none_or(|b| key > (b.preference, b.has_s46)) {
            best = Some(o);
        }
    }
    best
}

fn no_prefix(what: &str, status: Option<&StatusInfo>) -> Failure {
    match status {
        Some(s) if s.status == Status::NoPrefixAvail => Failure {
            class: FailureClass::NoPrefix,
            detail: format!("{what}: no prefix delegated: {s}"),
        },
        Some(s) if !s.is_success() => Failure {
            class: FailureClass::Refused,
            detail: format!("{what}: {s}"),
        },
        _ => Failure {
            class: FailureClass::NoPrefix,
            detail: format!("{what} without a usable IA_PD prefix"),
        },
    }
}

#[cfg(test)]
mod tests;
