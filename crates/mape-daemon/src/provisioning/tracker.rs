//! What `mape show status` says about provisioning, kept up to date from the clients'
//! rounds (HB46PP) and leases (DHCPv6) and the daemon's changes: sans-IO, every update takes the time (seconds since
//! the UNIX epoch, the client's clock).

use mape_control::reply::{ProvisioningChange, ProvisioningFailure, ProvisioningStatus};
use mape_provision::dhcpv6::machine::hex;
use mape_provision::dhcpv6::{Information, Lease};
use mape_provision::{Failure, LastGood, Offer};

/// The status and its updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracker {
    /// What `status` shows.
    pub status: ProvisioningStatus,
}

impl Tracker {
    /// At start: the configured method and the source of the rule in force.
    pub fn new(method: &str, source: &str) -> Self {
        Self {
            status: ProvisioningStatus {
                method: method.into(),
                source: source.into(),
                ..ProvisioningStatus::default()
            },
        }
    }

    /// The HB46PP answer `lg` is in force (`from_store`: read from disk, not fetched by
    /// this run).
    pub fn in_force(&mut self, lg: &LastGood, offer: &Offer, from_store: bool) {
        let s = &mut self.status;
        s.source = "hb46pp".into();
        s.url = Some(lg.url.clone());
        s.enabler_name.clone_from(&offer.enabler_name);
        s.fetched_at = Some(lg.fetched_at);
        s.from_store = from_store;
    }

    /// The DHCPv6 lease `l` is in force (`from_store`: read from disk, no Reply yet in
    /// this run); MAP-E runs.
    pub fn lease_in_force(&mut self, l: &Lease, from_store: bool) {
        let s = &mut self.status;
        let secs = |t: Option<std::time::Duration>| t.map(|t| t.as_secs());
        s.source = "dhcpv6".into();
        s.server = Some(hex(&l.server_id));
        s.delegated_prefix = Some(l.prefix.prefix.to_string());
        s.fetched_at = Some(l.obtained.as_secs());
        s.next_refresh_at = secs(l.t1_at());
        s.rebind_at = secs(l.t2_at());
        s.expires_at = secs(l.expires_at());
        s.from_store = from_store;
        s.stopped = None;
        s.last_failure = None;
    }

    /// The stateless DHCPv6 client's configuration `i` is in force, resolved for
    /// `end_user` (`from_store`: read from disk, no Reply yet in this run).
    pub fn info_in_force(
        &mut self,
        i: &Information,
        end_user: &mape_rules::Ipv6Net,
        from_store: bool,
    ) {
        let s = &mut self.status;
        s.source = "dhcpv6".into();
        s.server = Some(hex(&i.server_id));
        s.stateless_end_user = Some(end_user.to_string());
        s.fetched_at = Some(i.obtained.as_secs());
        s.next_refresh_at = i.refresh_at().map(|t| t.as_secs());
        s.from_store = from_store;
        s.stopped = None;
        s.last_failure = None;
    }

    /// The DHCPv6 lease ended at `now`: MAP-E is stopped until a new one.
    pub fn lease_lost(&mut self, now: u64, prefix: &str, reason: &str) {
        let s = &mut self.status;
        s.stopped = Some(format!("DHCPv6 lease of {prefix} ended at {now}: {reason}"));
        s.next_refresh_at = None;
        s.rebind_at = None;
        s.expires_at = None;
    }

    /// A round ended well at `now`; the next starts at `next`.
    pub fn succeeded(&mut self, now: u64, next: u64) {
        let _ = now;
        self.status.last_failure = None;
        self.status.next_refresh_at = Some(next);
    }

    /// A round (or putting its answer in force: step `apply`) failed at `now`; the next
    /// starts at `next`. `since` stays the first failure of the streak.
    pub fn failed(&mut self, now: u64, next: Option<u64>, step: &str, detail: &str) {
        let s = &mut self.status;
        let (since, count) = match &s.last_failure {
            Some(f) => (f.since, f.count.saturating_add(1)),
            None => (now, 1),
        };
        s.last_failure = Some(ProvisioningFailure {
            step: step.into(),
            detail: detail.into(),
            since,
            count,
        });
        if next.is_some() {
            s.next_refresh_at = next;
        }
    }

    /// [`Tracker::failed`] for a failed round.
    pub fn round_failed(&mut self, now: u64, next: u64, f: &Failure) {
        self.failed(now, Some(next), f.class.as_str(), &f.detail);
    }

    /// The rule changed in place.
    pub fn changed(&mut self, change: ProvisioningChange) {
        let s = &mut self.status;
        s.changes += 1;
        s.sessions_kept_total += u64::from(change.sessions_kept);
        s.sessions_dropped_total += u64::from(change.sessions_dropped);
        s.last_change = Some(change);
    }

    /// The scrape's part: changes in place and the sessions they kept and dropped, the
    /// failing streak, the next refresh.
    pub fn metrics(&self, m: &mut crate::metrics::Metrics) {
        let s = &self.status;
        m.counter(
            "mape_provisioning_changes",
            "Re-provisionings in place (new rule, prefix or BR) since the start",
            &[],
            s.changes,
        );
        for (fate, n) in [
            ("kept", s.sessions_kept_total),
            ("dropped", s.sessions_dropped_total),
        ] {
            m.counter(
                "mape_provisioning_sessions",
                "Sessions a re-provisioning kept (port still in the new set) or dropped",
                &[("fate", fate)],
                n,
            );
        }
        m.gauge(
            "mape_provisioning_failures",
            "Provisioning rounds failed in a row (0: the last one succeeded)",
            &[("source", s.source.as_str())],
            s.last_failure.as_ref().map_or(0, |f| u64::from(f.count)),
        );
        if let Some(t) = s.next_refresh_at {
            m.gauge(
                "mape_provisioning_next_refresh_timestamp_seconds",
                "When the rule is next refreshed (UNIX time)",
                &[],
                t,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mape_provision::FailureClass;

    #[test]
    fn changes_add_up_in_status_and_metrics() {
        let mut t = Tracker::new("dhcpv6", "dhcpv6");
        let change = |kept, dropped| ProvisioningChange {
            at: 1000,
            before: "192.0.2.18 psid 52".into(),
            after: "192.0.2.19 psid 53".into(),
            sessions_kept: kept,
            sessions_dropped: dropped,
        };
        t.changed(change(3, 5));
        t.changed(change(7, 0));
        let s = &t.status;
        assert_eq!(
            (s.changes, s.sessions_kept_total, s.sessions_dropped_total),
            (2, 10, 5)
        );
        assert_eq!(s.last_change.as_ref().map(|c| c.sessions_kept), Some(7));
        let f = Failure {
            class: FailureClass::Unreachable,
            detail: "no Advertise".into(),
            disable: false,
        };
        t.round_failed(1100, 1200, &f);
        t.round_failed(1200, 1300, &f);
        let mut m = crate::metrics::Metrics::default();
        t.metrics(&mut m);
        let text = m.render();
        for line in [
            "mape_provisioning_changes_total 2",
            "mape_provisioning_sessions_total{fate=\"kept\"} 10",
            "mape_provisioning_sessions_total{fate=\"dropped\"} 5",
            "mape_provisioning_failures{source=\"dhcpv6\"} 2",
            "mape_provisioning_next_refresh_timestamp_seconds 1300",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }

    const BODY: &str = r#"{"enabler_name": "Lab VNE", "ttl": 3600, "order": ["map_e"],
        "map_e": {"version": 1, "br": "2001:db8:ffff::1", "rules": [{"ipv6": "2001:db8::/40",
        "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 6}]}}"#;

    #[test]
    fn failures_keep_their_first_time_and_a_success_clears_them() {
        let mut t = Tracker::new("hb46pp", "hb46pp");
        let lg = LastGood {
            url: "http://[2001:db8::80]/".into(),
            fetched_at: 900,
            body: BODY.into(),
        };
        t.in_force(&lg, &lg.offer().unwrap(), true);
        let f = Failure {
            class: FailureClass::Unreachable,
            detail: "connection refused".into(),
            disable: false,
        };
        t.round_failed(1000, 1000 + 700, &f);
        t.round_failed(1700, 1700 + 900, &f);
        let lf = t.status.last_failure.clone().unwrap();
        assert_eq!(
            (lf.step.as_str(), lf.since, lf.count),
            ("unreachable", 1000, 2)
        );
        assert_eq!(t.status.next_refresh_at, Some(2600));
        assert!(t.status.from_store);
        assert_eq!(t.status.enabler_name.as_deref(), Some("Lab VNE"));
        t.succeeded(2600, 2600 + 3600);
        assert_eq!(t.status.last_failure, None);
        assert_eq!(t.status.next_refresh_at, Some(6200));
        // A new streak starts at its own time.
        t.round_failed(7000, 7600, &f);
        assert_eq!(t.status.last_failure.unwrap().since, 7000);
    }
}
