//! The BR behind the datapath threads: stateless, so status is counters and drops.

use mape_dataplane::{Br, BrConfig, Sink};
use mape_nat::Timestamp;
use serde_json::{json, Value};

use crate::config::{BrSettings, Role, Settings};
use crate::datapath::Pipeline;
use crate::pipeline::drops_json;

struct Emit<'a>(&'a mut dyn FnMut(&[u8]));

impl Sink for Emit<'_> {
    fn emit(&mut self, _dir: mape_dataplane::Direction, packet: &[u8]) {
        (self.0)(packet)
    }
}

/// The BR.
pub struct BrPipeline {
    br: Br,
    settings: BrSettings,
}

impl BrPipeline {
    /// Builds the BR from checked settings.
    pub fn new(b: &BrSettings, s: &Settings) -> Result<Self, String> {
        let mut cfg =
            BrConfig::from_domain(&b.domain, b.icmp_source).map_err(|e| format!("{e:?}"))?;
        cfg.br_ipv6 = b.address;
        cfg.ipv6_mtu = s.tun.ipv6_mtu;
        Ok(Self {
            br: Br::new(cfg).map_err(|e| format!("{e:?}"))?,
            settings: b.clone(),
        })
    }
}

impl Pipeline for BrPipeline {
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8])) {
        self.br.process_batch(now, packets, &mut Emit(emit));
    }

    fn tick(&mut self, now: Timestamp) {
        self.br.expire(now);
    }

    fn status(&self, _now: Timestamp) -> Value {
        let c = self.br.counters();
        json!({
            "role": "br",
            "map": {
                "br": self.settings.address.to_string(),
                "rule": self.settings.domain.rules().iter()
                    .map(|r| format!("{} -> {} ea {}", r.ipv6_prefix(), r.ipv4_prefix(), r.ea_len()))
                    .collect::<Vec<_>>().join("; "),
            },
            "traffic": {
                "ipv4_in": {"packets": c.rx_lan.packets, "bytes": c.rx_lan.bytes},
                "ipv4_out": {"packets": c.tx_lan.packets, "bytes": c.tx_lan.bytes},
                "ipv6_in": {"packets": c.rx_wan.packets, "bytes": c.rx_wan.bytes},
                "ipv6_out": {"packets": c.tx_wan.packets, "bytes": c.tx_wan.bytes},
            },
            "drops": drops_json(self.br.drops()),
        })
    }

    fn query(&mut self, _now: Timestamp, _cmd: &str, _args: &Value) -> Option<Value> {
        None
    }

    fn reload(&mut self, _now: Timestamp, settings: &Settings) -> Result<String, String> {
        match &settings.role {
            Role::Br(b)
                if b.address == self.settings.address && b.domain == self.settings.domain =>
            {
                Ok("nothing to change (a BR is stateless)".into())
            }
            _ => Err("BR address or rules changed; restart the daemon".into()),
        }
    }

    fn metrics(&self, _now: Timestamp, m: &mut crate::metrics::Metrics) {
        for r in mape_dataplane::DropReason::ALL {
            m.counter(
                "mape_drops",
                "Packets dropped, by reason",
                &[("reason", r.as_str())],
                self.br.drops().get(r),
            );
        }
        let c = self.br.counters();
        for (dir, t) in [
            ("ipv4_in", c.rx_lan),
            ("ipv4_out", c.tx_lan),
            ("ipv6_in", c.rx_wan),
            ("ipv6_out", c.tx_wan),
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
    }

    fn drain_events(&mut self) -> Vec<Value> {
        Vec::new()
    }
}
