//! The CE behind the datapath threads: the NAT engine's views for the control socket
//! (status, snapshot, sessions, ports), SIGHUP reload of the NAT policy, metrics and events.

use std::collections::BTreeMap;

use mape_control::reply::{
    BudgetStatus, CeMap, IoStatus, MapStatus, ProtocolBudget, Role as StatusRole, Status, Traffic,
};
use mape_control::{Request, SessionQuery};
use mape_dataplane::{Ce, CeConfig};
use mape_nat::{Event, MetricsView, Protocol, SessionFilter, SessionInfo, Timestamp};
use serde_json::{json, Value};

use super::api::{
    drop_metrics, drops_by_name, flow, traffic_metrics, tun_sink, FastPathPlan, MetricsFill,
    Pipeline, PipelineError, ReloadRefusal, SessionsStep,
};
use crate::config::{CeSettings, Role, Settings};
use crate::events::kind_name;
use crate::fastpath::{CeOffload, FastPath, SweepJob, Swept};
use crate::metrics::Metrics;
use mape_control::reply::FastPathStatus;
use mape_fastpath::{CeFastPath, CeParams, FastPathError};

/// The CE.
pub struct CePipeline {
    ce: Ce,
    settings: CeSettings,
    /// Budget events seen, by kind (the `mape_events` counter).
    events: BTreeMap<&'static str, u64>,
    /// The kernel fast path (`crate::fastpath`).
    fast: FastPath,
    /// How it was brought up, to bring it up again after a change of rule.
    fast_plan: Option<FastPathPlan>,
    /// The fast path was detached by [`Pipeline::pause`] and comes back on resume.
    fast_paused: bool,
}

/// The engine configuration of `ce`, with the router's addresses: `lan.router_addresses`,
/// else this host's IPv4 addresses inside the LAN prefixes now (`crate::hostaddr`).
fn nat_config(ce: &CeSettings) -> mape_nat::NatConfig {
    let mut nat = ce.nat.clone();
    nat.router.addresses =
        crate::hostaddr::router_addresses(ce.router_addresses.as_deref(), &ce.lan_prefixes);
    nat
}

fn ce_config(ce: &CeSettings, s: &Settings) -> Result<CeConfig, PipelineError> {
    let mut cfg = CeConfig::from_domain(
        &ce.map.domain,
        &ce.map.mapping.end_user_prefix,
        ce.lan_address,
        nat_config(ce),
    )?;
    cfg.accepted_br_sources = ce.br_sources.clone();
    cfg.lan_prefixes = ce.lan_prefixes.clone();
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
    pub fn new(ce: &CeSettings, s: &Settings) -> Result<Self, PipelineError> {
        let cfg = ce_config(ce, s)?;
        let mut ce_pipeline = Ce::new(cfg)?;
        ce_pipeline.nat_mut().set_signatures(ce.signatures.clone());
        ce_pipeline.nat_mut().set_mapping_limits(ce.mappings.limits);
        Ok(Self {
            ce: ce_pipeline,
            settings: ce.clone(),
            events: BTreeMap::new(),
            fast: FastPath::off(),
            fast_plan: None,
            fast_paused: false,
        })
    }

    /// The dataplane (for tests).
    pub fn ce(&self) -> &Ce {
        &self.ce
    }

    fn directions(&self) -> [(&'static str, mape_dataplane::Traffic); 4] {
        let c = self.ce.counters();
        [
            ("lan_in", c.rx_lan),
            ("lan_out", c.tx_lan),
            ("wan_in", c.rx_wan),
            ("wan_out", c.tx_wan),
        ]
    }

    fn sessions(&self, now: Timestamp, q: &SessionQuery) -> Value {
        let mut rows = Vec::new();
        self.sessions_page(now, q, 0, usize::MAX, &mut rows);
        serde_json::to_value(rows).unwrap_or(Value::Null)
    }
}

/// Rows one `sessions` step builds at most: a row costs about a hundred nanoseconds (its
/// timer and port-sharing look-ups), so a step of 1024 rows holds the datapath lock about
/// 0.1 ms (10 000 rows in one step took 1 ms, measured on a 1 M-session table).
pub const ROWS_PER_STEP: usize = 1024;

/// The engine's filter for a query; `None` when a state or dst names nothing (it then
/// matches no session).
fn session_filter(q: &SessionQuery) -> Option<SessionFilter> {
    Some(SessionFilter {
        host: q.host,
        proto: q.proto,
        state: q.state.as_deref().map(str::parse).transpose().ok()?,
        remote: q.dst.as_deref().map(str::parse).transpose().ok()?,
    })
}

impl Pipeline for CePipeline {
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8])) {
        // The closes and answers the kernel forwarded come first: a new flow's port may be
        // one of them, and a packet of a connection may follow its answer.
        // (An empty batch follows a tick, which has just read them.)
        if let (FastPath::Ce(o), false) = (&mut self.fast, packets.is_empty()) {
            o.take_events(self.ce.nat_mut(), now);
        }
        self.ce.process_batch(now, packets, &mut tun_sink(emit));
        // The engine's installs and removals reach the maps in the same locked step, and
        // a Packet Too Big the batch carried reaches the programs' MTU.
        if let FastPath::Ce(o) = &mut self.fast {
            o.apply(self.ce.nat_mut(), now);
            o.follow_mtu(self.ce.fast_path_limits(now));
        }
    }

    fn tick(&mut self, now: Timestamp) {
        if let FastPath::Ce(o) = &mut self.fast {
            o.take_events(self.ce.nat_mut(), now);
        }
        self.ce.expire(now);
        if let FastPath::Ce(o) = &mut self.fast {
            o.apply(self.ce.nat_mut(), now);
            o.tick(now);
            // A learned MTU that expired gives the programs the larger one back.
            o.follow_mtu(self.ce.fast_path_limits(now));
        }
    }

    fn sweep_job(&mut self) -> Option<SweepJob> {
        match &mut self.fast {
            FastPath::Ce(o) => o.sweep_job(),
            _ => None,
        }
    }

    fn sweep_done(&mut self, now: Timestamp, swept: Swept) {
        if let FastPath::Ce(o) = &mut self.fast {
            let (nat, counters) = self.ce.nat_and_counters_mut();
            o.sweep_done(nat, counters, now, swept);
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        self.ce.nat().next_deadline()
    }

    fn status(&self, now: Timestamp) -> Status {
        let m = &self.settings.map.mapping;
        let nat = self.ce.nat();
        let snap = nat.snapshot(now);
        let c = self.ce.counters();
        let bmr = &self.settings.map.bmr;
        Status {
            role: StatusRole::Ce,
            policy: Some(nat.config().name.clone()),
            map: MapStatus::Ce(CeMap {
                ipv4: m.share.ipv4.addr().to_string(),
                psid: m.share.psid,
                ports: format!(
                    "{} in {} ranges",
                    m.share.port_set.count(),
                    m.share.port_set.range_count()
                ),
                port_ranges: m.share.port_set.ranges().map(|r| r.to_string()).collect(),
                ce_ipv6: m.ce_ipv6.to_string(),
                br: self
                    .settings
                    .map
                    .domain
                    .br()
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                rule: format!(
                    "{} -> {} ea {}",
                    bmr.ipv6_prefix(),
                    bmr.ipv4_prefix(),
                    bmr.ea_len()
                ),
                rule_source: self.settings.map.origin.clone(),
            }),
            budget: Some(BudgetStatus {
                total: snap.budget,
                in_use: snap.in_use,
                peak: snap.peak,
                peak_at_s: snap.peak_at.secs_f64(),
                sessions: snap.sessions,
                refusals: snap.refusals,
                last_refusal_s: snap.last_refusal.map(Timestamp::secs_f64),
                exhausted_at_s: snap.exhausted_at.map(Timestamp::secs_f64),
                by_protocol: snap
                    .protocols
                    .iter()
                    .map(|p| ProtocolBudget {
                        proto: p.proto,
                        total: p.total,
                        in_use: p.in_use,
                        peak: p.peak,
                        peak_at: p.peak_at.millis(),
                        sessions: p.sessions,
                    })
                    .collect(),
                events_lost: nat.events_lost(),
            }),
            traffic: Traffic::Ce {
                lan_in: flow(c.rx_lan),
                lan_out: flow(c.tx_lan),
                wan_in: flow(c.rx_wan),
                wan_out: flow(c.tx_wan),
                icmp_generated: c.icmp_generated,
            },
            drops: drops_by_name(self.ce.drops()),
            uptime_s: 0,
            io: IoStatus::default(),
            fast_path: Some(self.fast.status()),
            provisioning: None,
            mapping_asks_outside_set: Vec::new(),
        }
    }

    fn query(&mut self, now: Timestamp, req: &Request) -> Option<Value> {
        match req {
            Request::Snapshot => serde_json::to_value(self.ce.nat().snapshot(now)).ok(),
            Request::Sessions(q) => Some(self.sessions(now, q)),
            Request::Ports => {
                let snap = self.ce.nat().snapshot(now);
                let caps: Vec<Value> = snap
                    .hosts
                    .iter()
                    .map(|h| json!({"addr": h.addr, "cap_udp": self.ce.nat().cap_of(h.addr, Protocol::Udp)}))
                    .collect();
                Some(json!({"snapshot": snap, "caps": caps}))
            }
            Request::Mappings => serde_json::to_value(self.ce.nat().port_mappings(now)).ok(),
            _ => None,
        }
    }

    fn sessions_page(
        &self,
        now: Timestamp,
        q: &SessionQuery,
        from: usize,
        scan: usize,
        rows: &mut Vec<SessionInfo>,
    ) -> Option<SessionsStep> {
        // The engine builds only the rows it returns, looks at no more than `scan` slots
        // and builds no more than `ROWS_PER_STEP` rows (the caller holds the datapath lock
        // for one step).
        let Some(f) = session_filter(q) else {
            return Some(SessionsStep::Done);
        };
        let limit = q.rows();
        let step_limit = limit.min(rows.len().saturating_add(ROWS_PER_STEP));
        let next = self
            .ce
            .nat()
            .sessions_page(now, &f, step_limit, from, scan, rows);
        Some(match next {
            Some(next) if rows.len() < limit => SessionsStep::Next(next),
            _ => SessionsStep::Done,
        })
    }

    fn reload(&mut self, now: Timestamp, settings: &Settings) -> Result<String, ReloadRefusal> {
        let Role::Ce(new) = &settings.role else {
            return Err(ReloadRefusal::RoleChanged("ce"));
        };
        if new.map.mapping != self.settings.map.mapping {
            return Err(ReloadRefusal::MapChanged);
        }
        let seed = self.ce.nat().config().seed;
        self.ce.nat_mut().reconfigure(
            mape_nat::NatConfig {
                seed,
                ..nat_config(new)
            },
            now,
        )?;
        self.ce.nat_mut().set_signatures(new.signatures.clone());
        self.ce.nat_mut().set_mapping_limits(new.mappings.limits);
        self.ce.set_lan_prefixes(new.lan_prefixes.clone());
        // The engine moved every entry off and back (its policy may have changed).
        if let FastPath::Ce(o) = &mut self.fast {
            o.apply(self.ce.nat_mut(), now);
        }
        self.settings = (**new).clone();
        Ok(format!(
            "nat policy {} (timers, quotas, filters, forwards)",
            new.nat.name
        ))
    }

    fn reprovision(
        &mut self,
        now: Timestamp,
        settings: &Settings,
    ) -> Result<mape_dataplane::Reprovisioned, ReloadRefusal> {
        let Role::Ce(new) = &settings.role else {
            return Err(ReloadRefusal::RoleChanged("ce"));
        };
        let cfg = ce_config(new, settings).map_err(|PipelineError::Dataplane(e)| e)?;
        // The fast path's programs carry the old MAP address and its entries the old
        // ports: it goes off for the change (every flow on the TUN path meanwhile) and
        // comes back with the new parameters and the sessions that were kept.
        let plan = self
            .fast_plan
            .clone()
            .filter(|_| matches!(self.fast, FastPath::Ce(_)));
        if plan.is_some() {
            self.stop_fast_path();
        }
        let r = self.ce.reprovision(cfg, now)?;
        self.ce.nat_mut().set_signatures(new.signatures.clone());
        self.settings = (**new).clone();
        if let Some(plan) = plan {
            if let Err(e) = self.start_fast_path(&plan) {
                tracing::warn!(error = %e, "fast path not back after the change of rule: every packet takes the TUN path");
                self.fast = FastPath::Inactive {
                    mode: plan.mode,
                    reason: e.to_string(),
                };
            }
        }
        Ok(r)
    }

    fn pause(&mut self, paused: bool) {
        if paused {
            if matches!(self.fast, FastPath::Ce(_)) {
                self.stop_fast_path();
                self.fast_paused = true;
            }
            return;
        }
        if !std::mem::take(&mut self.fast_paused) {
            return;
        }
        if let Some(plan) = self.fast_plan.clone() {
            if let Err(e) = self.start_fast_path(&plan) {
                tracing::warn!(error = %e, "fast path not back after MAP-E resumed: every packet takes the TUN path");
                self.fast = FastPath::Inactive {
                    mode: plan.mode,
                    reason: e.to_string(),
                };
            }
        }
    }

    fn metrics(&self, now: Timestamp) -> MetricsFill {
        let view = self.ce.nat().metrics_view(now, TOP_HOSTS);
        let drops = self.ce.drops().clone();
        let directions = self.directions();
        let reassembling = self.ce.reassembly_in_progress() as u64;
        let events = self.events.clone();
        let mut mappings = [0u64; 2];
        for x in self.ce.nat().port_mappings(now) {
            mappings[usize::from(x.proto == Protocol::Udp)] += 1;
        }
        let fast = self.fast.metrics();
        Box::new(move |m| {
            fast(m);
            for (proto, n) in ["tcp", "udp"].into_iter().zip(mappings) {
                m.gauge(
                    "mape_port_mappings",
                    "Port mappings LAN applications hold (PCP, NAT-PMP), by protocol",
                    &[("proto", proto)],
                    n,
                );
            }
            nat_metrics(&view, m);
            drop_metrics(&drops, m);
            traffic_metrics(directions, m);
            m.gauge(
                "mape_reassembly_buffers",
                "Datagrams being reassembled",
                &[],
                reassembling,
            );
            for (kind, n) in &events {
                m.counter("mape_events", "Budget events (exhaustion forecast, 80 %, 95 %, exhausted, recovered, host capped, culprit named, culprit cleared, destination filtered)", &[("kind", kind)], *n);
            }
        })
    }

    fn drain_events(&mut self) -> Vec<Event> {
        let events: Vec<Event> = self.ce.nat_mut().drain_events().collect();
        for e in &events {
            *self.events.entry(kind_name(&e.kind)).or_default() += 1;
        }
        events
    }

    fn nat(&self) -> Option<&mape_nat::Nat> {
        Some(self.ce.nat())
    }

    fn nat_mut(&mut self) -> Option<&mut mape_nat::Nat> {
        Some(self.ce.nat_mut())
    }

    fn start_fast_path(&mut self, plan: &FastPathPlan) -> Result<(), FastPathError> {
        // The slow path's tunnel MTU toward the BR and its clamp of a SYN-ACK toward the
        // LAN (`ce::wan`); at time 0 a learned MTU counts until the next tick judges it.
        let (ipv4_mtu, mss_in) = self.ce.fast_path_limits(Timestamp(0));
        let cfg = self.ce.config();
        let params = CeParams {
            ce_addr: self.settings.map.mapping.ce_ipv6,
            ext_addr: self.ce.nat().external(),
            ipv4_mtu: u32::from(ipv4_mtu),
            hop_limit: cfg.hop_limit,
            max_entries: plan.entries,
            mss_in,
        };
        let mut fp = CeFastPath::load(params)?;
        let lan: Vec<&(String, u32)> = plan
            .links
            .iter()
            .filter(|(_, i)| Some(*i) != plan.wan)
            .collect();
        let wan = plan.wan.unwrap_or(0);
        fp.attach(&lan.iter().map(|(_, i)| *i).collect::<Vec<_>>(), wan)?;
        let mut names: Vec<String> = lan.iter().map(|(n, _)| n.clone()).collect();
        names.push(self.settings.wan_interface.clone());
        let mut o = CeOffload::new(
            fp,
            plan.mode,
            names,
            self.settings.map.domain.clone(),
            plan.origin_ns,
        );
        // Sessions restored from the saved table that are established go in at once.
        self.ce.nat_mut().set_offload(true);
        o.apply(self.ce.nat_mut(), Timestamp(0));
        self.fast = FastPath::Ce(Box::new(o));
        self.fast_plan = Some(plan.clone());
        Ok(())
    }

    fn no_fast_path(&mut self, why: FastPath) {
        self.stop_fast_path();
        self.fast = why;
    }

    fn stop_fast_path(&mut self) {
        if let FastPath::Ce(o) = &mut self.fast {
            o.detach();
            self.ce.nat_mut().set_offload(false);
            self.fast = FastPath::Inactive {
                mode: o.mode(),
                reason: "stopped".into(),
            };
        }
    }

    fn fast_path_status(&self) -> FastPathStatus {
        self.fast.status()
    }
}

/// Hosts named in `mape_host_ports_held`; the rest are summed as `other` (a bounded label
/// set, as Prometheus wants).
const TOP_HOSTS: usize = 10;

/// The NAT engine's part of a scrape.
fn nat_metrics(v: &MetricsView, m: &mut Metrics) {
    for p in &v.protocols {
        let l = [("proto", p.proto.as_str())];
        for (name, help, value) in [
            (
                "mape_port_budget_ports",
                "Ports in the MAP-E port set (per protocol)",
                p.total,
            ),
            (
                "mape_ports_in_use",
                "External ports holding at least one mapping",
                p.in_use,
            ),
            (
                "mape_ports_peak",
                "Highest number of ports in use since start",
                p.peak,
            ),
            ("mape_sessions", "Live NAT sessions", p.sessions),
        ] {
            m.gauge(name, help, &l, u64::from(value));
        }
    }
    for (state, n) in &v.sessions_by_state {
        m.gauge(
            "mape_sessions_by_state",
            "Live NAT sessions by timer class",
            &[("state", state)],
            u64::from(*n),
        );
    }
    for (reason, n) in &v.refusals {
        m.counter(
            "mape_refusals",
            "New flows refused, by reason (host quota, ports exhausted, session limit)",
            &[("reason", reason.as_str())],
            *n,
        );
    }
    // Only while a protocol's use grows toward the budget; absent otherwise.
    for f in &v.forecasts {
        m.gauge(
            "mape_budget_exhaustion_forecast_seconds",
            "Seconds until the protocol's port budget runs out at the current rate",
            &[("proto", f.proto.as_str())],
            f.seconds.round() as u64,
        );
    }
    for (addr, held) in &v.top_hosts {
        m.gauge(
            "mape_host_ports_held",
            "Ports held per LAN host (top 10 + other)",
            &[("host", &addr.to_string())],
            u64::from(*held),
        );
    }
    m.gauge(
        "mape_host_ports_held",
        "Ports held per LAN host (top 10 + other)",
        &[("host", "other")],
        v.other_hosts_ports,
    );
    // The router's own flows: their own line, never among the LAN hosts above.
    m.gauge(
        "mape_host_ports_held",
        "Ports held per LAN host (top 10 + other)",
        &[("host", "router")],
        v.router.ports_by_proto.iter().map(|&n| u64::from(n)).sum(),
    );
    m.gauge(
        "mape_router_reserve_ports",
        "Ports of each protocol's set kept for the router's own flows (nat.router_reserve_ports)",
        &[],
        u64::from(v.router.reserve_ports),
    );
    for proto in Protocol::ALL {
        m.gauge(
            "mape_router_ports_kept_free",
            "Ports LAN hosts cannot take now: the router's reserve it does not use yet",
            &[("proto", proto.as_str())],
            u64::from(v.router.kept_free_by_proto[proto.index()]),
        );
    }
    m.gauge(
        "mape_nat_host_records",
        "LAN hosts the NAT keeps a record for (at most nat.max_hosts)",
        &[],
        v.host_records,
    );
    let (expired, evicted) = v.host_records_released;
    for (why, n) in [("idle", expired), ("cap", evicted)] {
        m.counter(
            "mape_nat_host_records_released",
            "Host records given up: idle 600 s, or early for a new host at the cap",
            &[("why", why)],
            n,
        );
    }
    m.counter(
        "mape_events_lost",
        "Budget events dropped because the engine's queue was full when nobody drained it",
        &[],
        v.events_lost,
    );
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use mape_nat::{Endpoint, OutboundPacket, OutboundVerdict, TcpFlags};

    use super::*;
    use crate::config::tests::LAB;

    /// The lab's CE without its forward (whose port another PSID does not have).
    fn settings(text: &str) -> Settings {
        let text: String = text
            .lines()
            .filter(|l| {
                !["[[nat.forward]]", "proto =", "external_port", "internal ="]
                    .iter()
                    .any(|k| l.trim_start().starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        Settings::parse(&text, Path::new("test.toml")).unwrap()
    }

    fn syn(port: u16) -> OutboundPacket {
        OutboundPacket {
            proto: Protocol::Tcp,
            src: Endpoint::new(Ipv4Addr::new(192, 168, 1, 2), port),
            dst: Endpoint::new(Ipv4Addr::new(203, 0, 113, 8), 443),
            flags: TcpFlags(0x02),
            seq: 0,
            ack: 0,
        }
    }

    #[test]
    fn reprovision_keeps_sessions_whose_port_stays_and_drops_the_rest() {
        let s = settings(LAB);
        let Role::Ce(ce) = &s.role else { panic!() };
        let mut p = CePipeline::new(ce, &s).unwrap();
        let now = Timestamp::from_millis(1_000);
        let OutboundVerdict::Translate { external } = p.ce.nat_mut().outbound(now, &syn(40000))
        else {
            panic!()
        };
        // Another BR, the same rule: the session is kept at its port.
        let s2 = settings(&LAB.replace("2001:db8:ffff::1", "2001:db8:ffff::2"));
        let r = p.reprovision(now, &s2).unwrap();
        assert_eq!((r.saved, r.kept(), r.dropped()), (1, 1, 0));
        let t = syn(40000);
        assert_eq!(
            p.ce.nat().translation_of(Protocol::Tcp, t.src, t.dst),
            Some(external)
        );
        let MapStatus::Ce(m) = p.status(now).map else {
            panic!()
        };
        assert_eq!(m.br, "2001:db8:ffff::2");
        // Another delegated prefix: PSID 0x35 instead of 0x34 (RFC 7597 Appendix A
        // example 1's EA bits), the same IPv4 address, a port set that shares no port.
        let s3 = settings(&LAB.replace("2001:db8:12:3400::/56", "2001:db8:12:3500::/56"));
        let r = p.reprovision(now, &s3).unwrap();
        assert_eq!((r.saved, r.kept(), r.dropped()), (1, 0, 1));
        assert_eq!(r.kept.unwrap().outside_port_set, 1);
        let MapStatus::Ce(m) = p.status(now).map else {
            panic!()
        };
        assert_eq!((m.ipv4.as_str(), m.psid), ("192.0.2.18", Some(0x35)));
        assert_eq!(m.ce_ipv6, "2001:db8:12:3500:0:c000:212:35");
        // A new flow gets a port of the new set.
        let OutboundVerdict::Translate { external } = p.ce.nat_mut().outbound(now, &syn(40001))
        else {
            panic!()
        };
        assert_eq!((external.port >> 4) & 0xff, 0x35, "PSID bits at offset 4");
    }
}
