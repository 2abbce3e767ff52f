//! Router advertisements on the WAN while forwarding is on: what Linux's `accept_ra`
//! must be so that the IPv6 default route learnt from RAs (RFC 4861 §6.3.4) does not
//! lapse at the end of its lifetime, for `mape run` to set and `mape doctor` to check.
//!
//! Linux (Documentation/networking/ip-sysctl.rst, `accept_ra`): 0 never accepts RAs, 1
//! accepts them only while forwarding is off, 2 accepts them even with forwarding on. A
//! router turns forwarding on, so an interface left at 1 stops hearing its RAs: the
//! default route learnt before is kept only until its lifetime runs out.

/// What RAs on the WAN do with forwarding as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaState {
    /// RAs are accepted (2, or 1 with forwarding off).
    Accepted,
    /// RAs are ignored because forwarding is on (1): the default route lapses.
    IgnoredWithForwarding,
    /// RAs are off by configuration (0): a static IPv6 set-up, left alone.
    Off,
    /// A value Linux does not document.
    Unknown,
}

/// The state of `accept_ra` = `value` on an interface, with forwarding on or off.
pub fn ra_state(value: &str, forwarding: bool) -> RaState {
    match value.trim() {
        "2" => RaState::Accepted,
        "1" if forwarding => RaState::IgnoredWithForwarding,
        "1" => RaState::Accepted,
        "0" => RaState::Off,
        _ => RaState::Unknown,
    }
}

/// The value `mape run` gives `accept_ra` on the WAN when it turns forwarding on, given
/// the value now: 2 where RAs were in use (1); 0 (static set-up, the admin's choice) and
/// 2 are left alone.
pub fn accept_ra_for_forwarding(value: &str) -> Option<&'static str> {
    (ra_state(value, true) == RaState::IgnoredWithForwarding).then_some("2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_1_becomes_2() {
        assert_eq!(accept_ra_for_forwarding("1\n"), Some("2"));
        assert_eq!(accept_ra_for_forwarding("2"), None);
        assert_eq!(accept_ra_for_forwarding("0"), None);
        assert_eq!(ra_state("1", false), RaState::Accepted);
        assert_eq!(ra_state("1", true), RaState::IgnoredWithForwarding);
        assert_eq!(ra_state("2", true), RaState::Accepted);
        assert_eq!(ra_state("0", true), RaState::Off);
        assert_eq!(ra_state("7", true), RaState::Unknown);
    }
}
