//! The daemon's [`Pipeline`]s: the CE and BR of mape-dataplane behind the datapath threads,
//! with the control socket's views (status, snapshot, sessions) and SIGHUP reload.

use mape_dataplane::{Ce, CeConfig, DropCounters, Sink};
use mape_nat::{Protocol, SessionFilter, Timestamp};
use serde_json::{json, Value};

use crate::config::{CeSettings, Role, Settings};
use crate::datapath::Pipeline;
use crate::metrics::Metrics;

/// Builds the pipeline the settings ask for.
pub fn build(settings: &Settings) -> Result<Box<dyn Pipeline>, String> {
    match &settings.role {
        Role::Ce(ce) => Ok(Box::new(CePipeline::new(ce, settings)?)),
        Role::Br(br) => Ok(Box::new(crate::br::BrPipeline::new(br, settings)?)),
    }
}

/// Adapts a closure to the dataplane's sink (both directions go back into the TUN).
struct Emit<'a>(&'a mut dyn FnMut(&[u8]));

impl Sink for Emit<'_> {
    fn emit(&mut self, _dir: mape_dataplane::Direction, packet: &[u8]) {
        (self.0)(packet)
    }
}

/// The CE.
pub struct CePipeline {
    ce: Ce,
    settings: CeSettings,
    events: std::collections::BTreeMap<String, u64>,
}

fn ce_config(ce: &CeSettings, s: &Settings) -> Result<CeConfig, String> {
    let mut cfg = CeConfig::from_domain(
        &ce.map.domain,
        &ce.map.mapping.end_user_prefix,
        ce.lan_address,
        ce.nat.clone(),
    )
    .map_err(|e| format!("{e:?}"))?;
    cfg.accepted_br_sources = ce.br_sources.clone();
    // Port choice must not repeat from boot to boot (RFC 6056, RFC 6888 REQ-15): seed the
    // engine's generator from the process's random hasher keys and the clock.
    cfg.nat.seed = random_seed();
    cfg.ipv4_mtu = s.tun.ipv4_mtu;
    cfg.ipv6_mtu = s.tun.ipv6_mtu;
    let mss = if s.tun.mss == 0 {
        s.tun.ipv4_mtu.saturating_sub(40)
    } else {
        s.tun.mss
    };
    cfg.mss_clamp = Some(mss);
    Ok(cfg)
}

fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::collections::hash_map::RandomState::new().hash_one((now, std::process::id()))
}

impl CePipeline {
    /// Builds the CE from checked settings.
    pub fn new(ce: &CeSettings, s: &Settings) -> Result<Self, String> {
        let cfg = ce_config(ce, s)?;
        let mut ce_pipeline = Ce::new(cfg).map_err(|e| format!("{e:?}"))?;
        ce_pipeline.nat_mut().set_signatures(ce.signatures.clone());
        Ok(Self {
            ce: ce_pipeline,
            settings: ce.clone(),
            events: Default::default(),
        })
    }
}

/// Non-zero drop counters by name (the same names as logs and metrics).
pub fn drops_json(d: &DropCounters) -> Value {
    let mut m = serde_json::Map::new();
    for (r, n) in d.nonzero() {
        m.insert(r.as_str().to_string(), json!(n));
    }
    Value::Object(m)
}

fn secs(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.secs_f64()))
}

impl Pipeline for CePipeline {
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8])) {
        self.ce.process_batch(now, packets, &mut Emit(emit));
    }

    fn tick(&mut self, now: Timestamp) {
        self.ce.expire(now);
    }

    fn status(&self, now: Timestamp) -> Value {
        let m = &self.settings.map.mapping;
        let nat = self.ce.nat();
        let snap = nat.snapshot(now);
        let c = self.ce.counters();
        let ranges: Vec<String> = m.share.port_set.ranges().map(|r| r.to_string()).collect();
        json!({
            "role": "ce",
            "policy": nat.config().name,
            "map": {
                "ipv4": m.share.ipv4.addr().to_string(),
                "psid": m.share.psid,
                "ports": format!("{} in {} ranges", m.share.port_set.count(), m.share.port_set.range_count()),
                "port_ranges": ranges,
                "ce_ipv6": m.ce_ipv6.to_string(),
                "br": self.settings.map.domain.br().iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
                "rule": format!("{} -> {} ea {}", self.settings.map.bmr.ipv6_prefix(), self.settings.map.bmr.ipv4_prefix(), self.settings.map.bmr.ea_len()),
                "rule_source": self.settings.map.origin,
            },
            "budget": {
                "total": snap.budget,
                "in_use": snap.in_use,
                "peak": snap.peak,
                "peak_at_s": snap.peak_at.secs_f64(),
                "sessions": snap.sessions,
                "refusals": snap.refusals,
                "last_refusal_s": secs(snap.last_refusal),
                "exhausted_at_s": secs(snap.exhausted_at),
                "by_protocol": snap.protocols,
            },
            "traffic": {
                "lan_in": {"packets": c.rx_lan.packets, "bytes": c.rx_lan.bytes},
                "lan_out": {"packets": c.tx_lan.packets, "bytes": c.tx_lan.bytes},
                "wan_in": {"packets": c.rx_wan.packets, "bytes": c.rx_wan.bytes},
                "wan_out": {"packets": c.tx_wan.packets, "bytes": c.tx_wan.bytes},
                "icmp_generated": c.icmp_generated,
            },
            "drops": drops_json(self.ce.drops()),
        })
    }

    fn query(&mut self, now: Timestamp, cmd: &str, args: &Value) -> Option<Value> {
        match cmd {
            "snapshot" => serde_json::to_value(self.ce.nat().snapshot(now)).ok(),
            "sessions" => {
                let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(1000) as usize;
                let word = |k: &str| args.get(k).and_then(Value::as_str);
                // A proto, state or dst that names nothing matches no session.
                let filter = (|| {
                    Some(SessionFilter {
                        host: word("host").and_then(|s| s.parse().ok()),
                        proto: word("proto").map(str::parse).transpose().ok()?,
                        state: word("state").map(str::parse).transpose().ok()?,
                        remote: word("dst").map(str::parse).transpose().ok()?,
                    })
                })();
                let rows = filter.map_or_else(Vec::new, |f| {
                    self.ce.nat().sessions_matching(now, &f, limit)
                });
                serde_json::to_value(rows).ok()
            }
            "ports" => {
                let snap = self.ce.nat().snapshot(now);
                let caps: Vec<Value> = snap
                    .hosts
                    .iter()
                    .map(|h| json!({"addr": h.addr, "cap_udp": self.ce.nat().cap_of(h.addr, Protocol::Udp)}))
                    .collect();
                Some(json!({"snapshot": snap, "caps": caps}))
            }
            _ => None,
        }
    }

    fn reload(&mut self, now: Timestamp, settings: &Settings) -> Result<String, String> {
        let Role::Ce(new) = &settings.role else {
            return Err("mode changed from ce; restart the daemon".into());
        };
        if new.map.mapping != self.settings.map.mapping {
            return Err(
                "MAP parameters changed (prefix or rule); restart the daemon to apply".into(),
            );
        }
        let seed = self.ce.nat().config().seed;
        self.ce
            .nat_mut()
            .reconfigure(
                mape_nat::NatConfig {
                    seed,
                    ..new.nat.clone()
                },
                now,
            )
            .map_err(|e| e.to_string())?;
        self.ce.nat_mut().set_signatures(new.signatures.clone());
        self.settings = (**new).clone();
        Ok(format!(
            "nat policy {} (timers, quotas, filters, forwards)",
            new.nat.name
        ))
    }

    fn metrics(&self, now: Timestamp, m: &mut Metrics) {
        let snap = self.ce.nat().snapshot(now);
        for p in &snap.protocols {
            let l = [("proto", p.proto.as_str())];
            m.gauge(
                "mape_port_budget_ports",
                "Ports in the MAP-E port set (per protocol)",
                &l,
                u64::from(p.total),
            );
            m.gauge(
                "mape_ports_in_use",
                "External ports holding at least one mapping",
                &l,
                u64::from(p.in_use),
            );
            m.gauge(
                "mape_ports_peak",
                "Highest number of ports in use since start",
                &l,
                u64::from(p.peak),
            );
            m.gauge(
                "mape_sessions",
                "Live NAT sessions",
                &l,
                u64::from(p.sessions),
            );
        }
        for (state, n) in &snap.sessions_by_state {
            m.gauge(
                "mape_sessions_by_state",
                "Live NAT sessions by timer class",
                &[("state", state)],
                u64::from(*n),
            );
        }
        m.counter(
            "mape_refusals",
            "New flows refused (quota, exhaustion, table full)",
            &[],
            snap.refusals,
        );
        // Only while a protocol's use grows toward the budget; absent otherwise.
        for f in &snap.forecasts {
            m.gauge(
                "mape_budget_exhaustion_forecast_seconds",
                "Seconds until the protocol's port budget runs out at the current rate",
                &[("proto", f.proto.as_str())],
                f.seconds.round() as u64,
            );
        }
        for r in mape_dataplane::DropReason::ALL {
            m.counter(
                "mape_drops",
                "Packets dropped, by reason",
                &[("reason", r.as_str())],
                self.ce.drops().get(r),
            );
        }
        // Bounded label set: the top ten hosts, the rest summed as "other".
        let mut other = 0u64;
        for (i, h) in snap.hosts.iter().enumerate() {
            if i < 10 {
                let a = h.addr.to_string();
                m.gauge(
                    "mape_host_ports_held",
                    "Ports held per LAN host (top 10 + other)",
                    &[("host", &a)],
                    u64::from(h.ports_held),
                );
            } else {
                other += u64::from(h.ports_held);
            }
        }
        m.gauge(
            "mape_host_ports_held",
            "Ports held per LAN host (top 10 + other)",
            &[("host", "other")],
            other,
        );
        let c = self.ce.counters();
        for (dir, t) in [
            ("lan_in", c.rx_lan),
            ("lan_out", c.tx_lan),
            ("wan_in", c.rx_wan),
            ("wan_out", c.tx_wan),
        ] {
            m.counter(
                "mape_packets",
                "Packets by direction",
                &[("direction", dir)],
                t.packets,
            );
            m.counter(
                "mape_bytes",
                "Bytes by direction",
                &[("direction", dir)],
                t.bytes,
            );
        }
        m.gauge(
            "mape_reassembly_buffers",
            "Datagrams being reassembled",
            &[],
            self.ce.reassembly_in_progress() as u64,
        );
        for (kind, n) in &self.events {
            m.counter("mape_events", "Budget events (exhaustion forecast, 80 %, 95 %, exhausted, recovered, host capped, culprit named, destination filtered)", &[("kind", kind)], *n);
        }
    }

    fn drain_events(&mut self) -> Vec<Value> {
        let events: Vec<Value> = self
            .ce
            .nat_mut()
            .drain_events()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        for e in &events {
            if let Some(k) = e.get("kind").and_then(Value::as_str) {
                *self.events.entry(k.to_string()).or_default() += 1;
            }
        }
        events
    }
}
