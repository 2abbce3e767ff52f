//! Which sessions a reader asks for: the filter of `mape show sessions` (the control
//! `sessions` command), applied inside the engine so that only the rows returned are built.

use std::net::Ipv4Addr;

use crate::types::{Endpoint, Protocol, SessionState};

/// Which sessions `Nat::sessions_matching` lists; a `None` field matches every
/// session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// The LAN host (the internal address).
    pub host: Option<Ipv4Addr>,
    /// The protocol.
    pub proto: Option<Protocol>,
    /// The state.
    pub state: Option<SessionState>,
    /// The remote end.
    pub remote: Option<RemoteFilter>,
}

/// The remote end a [`SessionFilter`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteFilter {
    /// Any port of this address.
    Addr(Ipv4Addr),
    /// This address and port.
    Endpoint(Endpoint),
}

impl core::str::FromStr for RemoteFilter {
    type Err = String;

    /// `a.b.c.d:port` or `a.b.c.d`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Ipv4Addr>() {
            Ok(a) => Ok(RemoteFilter::Addr(a)),
            Err(_) => s.parse().map(RemoteFilter::Endpoint),
        }
    }
}

impl SessionFilter {
    /// Whether a session with these fields passes.
    #[must_use]
    pub fn matches(
        &self,
        proto: Protocol,
        internal: Endpoint,
        remote: Endpoint,
        state: SessionState,
    ) -> bool {
        self.host.is_none_or(|h| internal.addr == h)
            && self.proto.is_none_or(|p| proto == p)
            && self.state.is_none_or(|st| state == st)
            && self.remote.is_none_or(|r| match r {
                RemoteFilter::Addr(a) => remote.addr == a,
                RemoteFilter::Endpoint(e) => remote == e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn remote_filter_takes_an_address_or_an_endpoint() {
        assert_eq!(
            "8.8.8.8".parse::<RemoteFilter>(),
            Ok(RemoteFilter::Addr(Ipv4Addr::new(8, 8, 8, 8)))
        );
        assert_eq!(
            "8.8.8.8:53".parse::<RemoteFilter>(),
            Ok(RemoteFilter::Endpoint(ep("8.8.8.8:53")))
        );
        assert!("8.8.8".parse::<RemoteFilter>().is_err());
        assert!("dns".parse::<RemoteFilter>().is_err());
    }

    #[test]
    fn protocols_and_states_parse_from_their_names() {
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse(), Ok(p));
        }
        for st in SessionState::ALL {
            assert_eq!(st.as_str().parse(), Ok(st));
        }
        assert!("sctp".parse::<Protocol>().is_err());
        assert!("closed".parse::<SessionState>().is_err());
    }

    #[test]
    fn every_field_narrows_and_none_matches_all() {
        let (lan, dns) = (ep("192.168.1.10:5000"), ep("8.8.8.8:53"));
        let m = |f: SessionFilter| f.matches(Protocol::Udp, lan, dns, SessionState::Answered);
        assert!(m(SessionFilter::default()));
        assert!(m(SessionFilter {
            host: Some(lan.addr),
            proto: Some(Protocol::Udp),
            state: Some(SessionState::Answered),
            remote: Some(RemoteFilter::Addr(dns.addr)),
        }));
        assert!(!m(SessionFilter {
            host: Some(Ipv4Addr::new(192, 168, 1, 11)),
            ..SessionFilter::default()
        }));
        assert!(!m(SessionFilter {
            proto: Some(Protocol::Tcp),
            ..SessionFilter::default()
        }));
        assert!(!m(SessionFilter {
            state: Some(SessionState::Unanswered),
            ..SessionFilter::default()
        }));
        assert!(!m(SessionFilter {
            remote: Some(RemoteFilter::Endpoint(ep("8.8.8.8:54"))),
            ..SessionFilter::default()
        }));
    }
}
