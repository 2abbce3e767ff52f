//! The BR behind the datapath threads: stateless, so status is counters and drops.

use mape_control::reply::{BrMap, IoStatus, MapStatus, Role as StatusRole, Status, Traffic};
use mape_control::Request;
use mape_dataplane::{Br, BrConfig};
use mape_nat::{Event, Timestamp};
use serde_json::Value;

use super::api::{
    drop_metrics, drops_by_name, flow, traffic_metrics, tun_sink, FastPathPlan, MetricsFill,
    Pipeline, PipelineError, ReloadRefusal,
};
use crate::config::{BrSettings, Role, Settings};
use crate::fastpath::{BrOffload, FastPath};
use mape_control::reply::FastPathStatus;
use mape_fastpath::{BrFastPath, BrParams, BrRule, FastPathError};

/// The BR.
pub struct BrPipeline {
    br: Br,
    settings: BrSettings,
    /// The kernel fast path (`crate::fastpath`).
    fast: FastPath,
}

impl BrPipeline {
    /// Builds the BR from checked settings.
    pub fn new(b: &BrSettings, s: &Settings) -> Result<Self, PipelineError> {
        let mut cfg = BrConfig::from_domain(&b.domain, b.icmp_source)?;
        cfg.br_ipv6 = b.address;
        cfg.extra_br_addresses = b.addresses().split_off(1);
        cfg.ipv6_mtu = s.tun.ipv6_mtu;
        Ok(Self {
            br: Br::new(cfg)?,
            settings: b.clone(),
            fast: FastPath::off(),
        })
    }

    fn directions(&self) -> [(&'static str, mape_dataplane::Traffic); 4] {
        let c = self.br.counters();
        [
            ("ipv4_in", c.rx_lan),
            ("ipv4_out", c.tx_lan),
            ("ipv6_in", c.rx_wan),
            ("ipv6_out", c.tx_wan),
        ]
    }
}

impl Pipeline for BrPipeline {
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8])) {
        self.br.process_batch(now, packets, &mut tun_sink(emit));
    }

    fn tick(&mut self, now: Timestamp) {
        self.br.expire(now);
        if let FastPath::Br(o) = &mut self.fast {
            o.tick(self.br.counters_mut(), now);
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        None
    }

    fn status(&self, _now: Timestamp) -> Status {
        let c = self.br.counters();
        Status {
            role: StatusRole::Br,
            policy: None,
            map: MapStatus::Br(BrMap {
                br: self.settings.address.to_string(),
                rule: self
                    .settings
                    .domain
                    .rules()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} -> {} ea {}",
                            r.ipv6_prefix(),
                            r.ipv4_prefix(),
                            r.ea_len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
            budget: None,
            traffic: Traffic::Br {
                ipv4_in: flow(c.rx_lan),
                ipv4_out: flow(c.tx_lan),
                ipv6_in: flow(c.rx_wan),
                ipv6_out: flow(c.tx_wan),
            },
            drops: drops_by_name(self.br.drops()),
            uptime_s: 0,
            io: IoStatus::default(),
            fast_path: Some(self.fast.status()),
            provisioning: None,
            mapping_asks_outside_set: Vec::new(),
        }
    }

    fn query(&mut self, _now: Timestamp, _req: &Request) -> Option<Value> {
        None
    }

    fn reload(&mut self, _now: Timestamp, settings: &Settings) -> Result<String, ReloadRefusal> {
        match &settings.role {
            Role::Br(b)
                if b.address == self.settings.address && b.domain == self.settings.domain =>
            {
                Ok("nothing to change (a BR is stateless)".into())
            }
            _ => Err(ReloadRefusal::BrChanged),
        }
    }

    fn metrics(&self, _now: Timestamp) -> MetricsFill {
        let drops = self.br.drops().clone();
        let directions = self.directions();
        let fast = self.fast.metrics();
        Box::new(move |m| {
            fast(m);
            drop_metrics(&drops, m);
            traffic_metrics(directions, m);
        })
    }

    fn drain_events(&mut self) -> Vec<Event> {
        Vec::new()
    }

    fn start_fast_path(&mut self, plan: &FastPathPlan) -> Result<(), FastPathError> {
        let cfg = self.br.config();
        let params = BrParams {
            br_addr: self.settings.address,
            ipv6_mtu: u32::from(cfg.ipv6_mtu),
            hop_limit: cfg.hop_limit,
        };
        let d = &self.settings.domain;
        // Rules the programs cannot compute with stay on the TUN path.
        let rules: Vec<BrRule> = d
            .rules()
            .iter()
            .filter_map(|r| BrRule::of(r, d.iid_format()))
            .collect();
        let mut fp = BrFastPath::load(params, &rules)?;
        fp.attach(&plan.links.iter().map(|(_, i)| *i).collect::<Vec<_>>())?;
        let names = plan.links.iter().map(|(n, _)| n.clone()).collect();
        self.fast = FastPath::Br(Box::new(BrOffload::new(fp, plan.mode, names)));
        Ok(())
    }

    fn no_fast_path(&mut self, why: FastPath) {
        self.stop_fast_path();
        self.fast = why;
    }

    fn stop_fast_path(&mut self) {
        if let FastPath::Br(o) = &mut self.fast {
            o.detach();
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
