//! What the DHCPv6 client is given and gives back: its configuration, the lease (RFC 8415
//! §21.21 lifetimes and timers), the changes, failures, events and discarded datagrams.

use std::net::Ipv6Addr;
use std::time::Duration;

use crate::dhcpv6::message::Delegated;
use crate::machine::Time;

use super::{Duid, INFINITY};

/// What the client needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client DUID.
    pub duid: Duid,
    /// The IA_PD's IAID (§12: stable for the interface).
    pub iaid: u32,
    /// A prefix to ask for (the last one held), or none.
    pub hint: Option<Delegated>,
}

/// A delegated prefix and what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The prefix and its lifetimes.
    pub prefix: Delegated,
    /// T1 and T2 in seconds as used (the server's, or 0.5 and 0.8 × preferred when it left
    /// them to the client, §21.21; [`INFINITY`] = never).
    pub t1: u32,
    /// See `t1`.
    pub t2: u32,
    /// The server's DUID.
    pub server_id: Vec<u8>,
    /// When the Reply arrived; lifetimes count from here.
    pub obtained: Time,
    /// The OPTION_S46_CONT_MAPE options as an option area (see [`super::s46`]); empty when
    /// the server sent none.
    pub s46: Vec<u8>,
    /// DNS recursive name servers (option 23).
    pub dns: Vec<Ipv6Addr>,
}

fn after(t: Time, secs: u32) -> Option<Time> {
    (secs != INFINITY).then(|| t + Duration::from_secs(u64::from(secs)))
}

impl Lease {
    /// When to Renew (None: never).
    pub fn t1_at(&self) -> Option<Time> {
        after(self.obtained, self.t1)
    }

    /// When to Rebind (None: never).
    pub fn t2_at(&self) -> Option<Time> {
        after(self.obtained, self.t2)
    }

    /// When the valid lifetime ends (None: never).
    pub fn expires_at(&self) -> Option<Time> {
        after(self.obtained, self.prefix.valid)
    }

    /// Same prefix and same S46 options: nothing to re-provision.
    pub(super) fn same_binding(&self, other: &Lease) -> bool {
        self.prefix.prefix == other.prefix.prefix && self.s46 == other.s46
    }
}

/// What a stateless client (§18.2.6) holds: the configuration of a Reply to
/// Information-request. No prefix is delegated and nothing expires; it is refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Information {
    /// The server's DUID.
    pub server_id: Vec<u8>,
    /// When the Reply arrived; the refresh time counts from here.
    pub obtained: Time,
    /// Seconds until the client asks again, as used (§21.23: the server's Information
    /// Refresh Time raised to IRT_MINIMUM, IRT_DEFAULT when absent; [`INFINITY`] = never).
    pub refresh: u32,
    /// The OPTION_S46_CONT_MAPE options as an option area (empty when none were sent).
    pub s46: Vec<u8>,
    /// DNS recursive name servers (option 23).
    pub dns: Vec<Ipv6Addr>,
}

impl Information {
    /// When to send the next Information-request (None: never).
    pub fn refresh_at(&self) -> Option<Time> {
        after(self.obtained, self.refresh)
    }
}

/// How a Reply changed what the client holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// No lease before.
    New,
    /// Same prefix and S46 options; lifetimes refreshed (a Renew or Rebind).
    Extended,
    /// Another prefix or other S46 options: re-provision.
    Changed,
}

/// Why an exchange did not give a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// No server answered.
    NoServer,
    /// The server refused: an error status (UnspecFail, NotOnLink, NoBinding, ...).
    Refused,
    /// NoPrefixAvail, or an answer without a usable prefix.
    NoPrefix,
}

impl FailureClass {
    /// The name in status and events.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::NoServer => "no_server",
            FailureClass::Refused => "refused",
            FailureClass::NoPrefix => "no_prefix",
        }
    }
}

/// A failed exchange, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which kind.
    pub class: FailureClass,
    /// For one line of log or stderr.
    pub detail: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A Reply gave (or refreshed) the lease.
    Bound {
        /// The lease now held.
        lease: Lease,
        /// Against the one held before.
        change: Change,
    },
    /// The lease ended (valid lifetime over, or the server withdrew the prefix): stop
    /// using it. The client is soliciting again.
    Lost {
        /// The prefix that was held.
        prefix: Delegated,
        /// Why, in words.
        reason: String,
    },
    /// An exchange failed; the client goes on (solicits again).
    Failed(Failure),
    /// A stateless client's Reply to Information-request gave (or refreshed) the
    /// configuration; `change` against the one held before (New, Extended: the same S46
    /// options, Changed: other ones).
    Informed {
        /// The configuration now held.
        info: Information,
        /// Against the one held before.
        change: Change,
    },
}

/// What the shell must do after a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// A datagram for [`message::ALL_SERVERS`] port 547, from port 546 on the interface.
    pub send: Option<Vec<u8>>,
    /// What happened, in order.
    pub events: Vec<Event>,
}

/// Why a received datagram was not acted on; each is counted ([`Client::discarded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Discard {
    /// Not a decodable Advertise/Reply with a Server Identifier (§16).
    Malformed,
    /// Transaction ID or message type not what the current exchange waits for.
    Unexpected,
    /// Client Identifier absent or not ours (§16.10, §16.11).
    WrongClient,
    /// An Advertise that delegates no prefix (§18.2.9: ignored).
    NoPrefix,
    /// A Reconfigure: never negotiated (no Reconfigure Accept sent), so discarded
    /// (§18.2.11).
    Reconfigure,
}

impl Discard {
    /// Every reason, in counter order.
    pub const ALL: [Discard; 5] = [
        Discard::Malformed,
        Discard::Unexpected,
        Discard::WrongClient,
        Discard::NoPrefix,
        Discard::Reconfigure,
    ];

    /// The counter's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::Malformed => "malformed",
            Discard::Unexpected => "unexpected",
            Discard::WrongClient => "wrong_client",
            Discard::NoPrefix => "no_prefix",
            Discard::Reconfigure => "reconfigure",
        }
    }
}
