//! Resolution of the `[nat]` section into the NAT engine's `NatConfig`.

use mape_nat::{
    Filtering, HostQuota, Ipv4Prefix, NatConfig, PortStrategy, StaticForward, Timeouts,
};

use super::{one_line, value_err, ConfigError, NatSection, QuotaSetting};

/// Builds the NAT engine configuration from `[nat]` over the named policy.
pub fn nat_config(n: &NatSection) -> Result<NatConfig, ConfigError> {
    let policy = n.policy.as_deref().unwrap_or("mape");
    let mut cfg = NatConfig::policy(policy).ok_or_else(|| {
        value_err(
            "nat.policy",
            policy,
            format!("one of {}", mape_nat::POLICY_NAMES.join(", ")),
        )
    })?;
    if let Some(t) = &n.timeouts {
        let mut merged =
            toml::Table::try_from(cfg.timeouts).map_err(|e| value_err("nat.timeouts", "?", e))?;
        for (k, v) in t {
            if !merged.contains_key(k) {
                return Err(value_err(
                    "nat.timeouts",
                    k,
                    "one of udp_unanswered, udp_answered_once, udp_answered, udp_dns_answered, tcp_transitory, tcp_established, tcp_time_wait, icmp",
                ));
            }
            merged.insert(k.clone(), v.clone());
        }
        cfg.timeouts = merged
            .try_into::<Timeouts>()
            .map_err(|e| value_err("nat.timeouts", one_line(&e.to_string()), "whole seconds"))?;
    }
    if let Some(p) = n.share_above_percent {
        cfg.strategy = PortStrategy::BudgetAware {
            share_above_percent: p,
        };
    }
    if let Some(f) = &n.filtering {
        cfg.filtering = match f.as_str() {
            "address-and-port-dependent" => Filtering::AddressAndPortDependent,
            "endpoint-independent" => Filtering::EndpointIndependent,
            _ => {
                return Err(value_err(
                    "nat.filtering",
                    f,
                    "address-and-port-dependent or endpoint-independent",
                ))
            }
        };
    }
    match &n.quota {
        None => {}
        Some(QuotaSetting::Enabled(false)) => cfg.quota = None,
        Some(QuotaSetting::Enabled(true)) => cfg.quota = Some(HostQuota::default()),
        Some(QuotaSetting::Params(q)) => cfg.quota = Some(*q),
    }
    for s in &n.allow_destinations {
        let p: Ipv4Prefix = s.parse().map_err(|_| {
            value_err(
                "nat.allow_destinations",
                s,
                "an IPv4 prefix such as 203.0.113.0/24",
            )
        })?;
        cfg.destinations.allow.push(p);
    }
    if let Some(on) = n.destination_filter {
        cfg.destinations.enabled = on;
    }
    if let Some(m) = n.allow_multicast {
        cfg.destinations.allow_multicast = m;
    }
    if let Some(m) = n.max_sessions {
        cfg.max_sessions = m;
    }
    if let Some(r) = n.router_reserve_ports {
        cfg.router.reserve_ports = r;
    }
    if let Some(m) = n.max_hosts {
        cfg.max_hosts = m;
    }
    if let Some(i) = n.icmp_on_refusal {
        cfg.icmp_on_refusal = i;
    }
    if let Some(h) = n.forecast_horizon_s {
        if h == 0 {
            return Err(value_err("nat.forecast_horizon_s", h, "at least 1 second"));
        }
        cfg.forecast_horizon_s = h;
    }
    for f in &n.forward {
        let proto = match f.proto.as_str() {
            "tcp" => mape_nat::Protocol::Tcp,
            "udp" => mape_nat::Protocol::Udp,
            _ => return Err(value_err("nat.forward.proto", &f.proto, "tcp or udp")),
        };
        let internal = f
            .internal
            .parse()
            .map_err(|e: String| value_err("nat.forward.internal", &f.internal, e))?;
        cfg.forwards.push(StaticForward {
            proto,
            external_port: f.external_port,
            internal,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}
