//! The BR's fast path: its two programs attached (domain-side and internet-side
//! ingress), the rules in an LPM trie, the configuration and deadline.

use std::net::Ipv6Addr;

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object};
use mape_rules::{IidFormat, Rule};

use crate::layout::{self, Counters};
use crate::objects::{self, BR_OBJECT};
use crate::tc::Hooks;
use crate::{FastPathError, DEADLINE};

const OBJECT: &str = "br";

/// What the BR's programs need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrParams {
    /// The BR address (outer destination it accepts, outer source it writes).
    pub br_addr: Ipv6Addr,
    /// The tunnel MTU for the outer IPv6 packet; larger packets take the slow path.
    pub ipv6_mtu: u32,
    /// The outer hop limit the BR writes.
    pub hop_limit: u8,
}

/// A rule in the form the programs compute with: whole IPv4 addresses in the EA bits
/// (`o ≥ 32 − r`), the PSID from the EA bits, and End-user prefixes within /64
/// (`n + o ≤ 64`). Other rules stay on the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrRule {
    key: [u8; layout::BR_RULE_KEY_LEN],
    value: [u8; layout::BR_RULE_LEN],
}

impl BrRule {
    /// The rule's fast-path form, or `None` when the programs cannot compute its CE
    /// addresses.
    pub fn of(rule: &Rule, iid: IidFormat) -> Option<Self> {
        let v4 = rule.ipv4_prefix();
        let v6 = rule.ipv6_prefix();
        let (r, o, n) = (v4.len(), rule.ea_len(), v6.len());
        let whole_addresses = rule.ce_ipv4_len() == 32 && o >= 32 - r;
        let k = rule.psid_len();
        let psid_from_ea =
            rule.explicit_psid().is_none() && u32::from(k) == u32::from(o) - (32 - u32::from(r));
        if !whole_addresses || !psid_from_ea || u32::from(n) + u32::from(o) > 64 {
            return None;
        }
        if u32::from(rule.psid_offset()) + u32::from(k) > 16 {
            return None;
        }
        let (key, value) = layout::br_rule(&layout::RuleFields {
            ipv4: v4.addr(),
            prefix4_len: r,
            prefix6: v6.addr(),
            prefix6_len: n,
            ea_len: o,
            psid_offset: rule.psid_offset(),
            psid_len: k,
            draft03: iid == IidFormat::Draft03,
        });
        Some(Self { key, value })
    }
}

/// The BR's loaded programs and maps.
#[derive(Debug)]
pub struct BrFastPath {
    obj: Object,
    rules: MapHandle,
    config: MapHandle,
    stats: MapHandle,
    params: BrParams,
    hooks: Hooks,
}

impl BrFastPath {
    /// Loads the programs with `rules` (nothing is attached yet), the deadline renewed.
    pub fn load(params: BrParams, rules: &[BrRule]) -> Result<Self, FastPathError> {
        let obj = objects::load(OBJECT, BR_OBJECT, &[])?;
        let m = |name, k, v| objects::map(OBJECT, &obj, name, k, v);
        let rules_map = m("br_rules", layout::BR_RULE_KEY_LEN, layout::BR_RULE_LEN)?;
        let config = m("br_config", 4, layout::BR_CONFIG_LEN)?;
        let stats = m("stats", 4, 8)?;
        for r in rules {
            rules_map
                .update(&r.key, &r.value, MapFlags::ANY)
                .map_err(|source| FastPathError::Map {
                    map: "br_rules",
                    source,
                })?;
        }
        let fp = Self {
            obj,
            rules: rules_map,
            config,
            stats,
            params,
            hooks: Hooks::default(),
        };
        fp.renew(crate::monotonic_ns())?;
        Ok(fp)
    }

    /// Attaches `br_ingress` (either side, by ethertype) at ingress of each interface.
    /// On failure what was attached is detached again.
    pub fn attach(&mut self, links: &[u32]) -> Result<(), FastPathError> {
        let plan: Vec<(&str, u32)> = links.iter().map(|&i| ("br_ingress", i)).collect();
        self.hooks.attach(OBJECT, &self.obj, &plan)
    }

    /// Detaches every filter this instance attached.
    pub fn detach(&mut self) {
        self.hooks.detach();
    }

    /// The interfaces it is attached to.
    pub fn attached(&self) -> Vec<u32> {
        self.hooks.ifindexes()
    }

    /// Lets the programs forward until [`DEADLINE`] after `now_ns`.
    pub fn renew(&self, now_ns: u64) -> Result<(), FastPathError> {
        let p = &self.params;
        let deadline = now_ns.saturating_add(DEADLINE.as_nanos() as u64);
        let c = layout::br_config(p.br_addr, p.ipv6_mtu, deadline, p.hop_limit);
        self.config
            .update(&0u32.to_ne_bytes(), &c, MapFlags::ANY)
            .map_err(|source| FastPathError::Map {
                map: "br_config",
                source,
            })
    }

    /// The programs' counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        objects::counters(&self.stats)
    }

    /// Rules in the trie.
    pub fn rules(&self) -> usize {
        self.rules.keys().count()
    }

    /// The loaded object (for tests that run a program on a buffer).
    pub fn object(&self) -> &Object {
        &self.obj
    }
}

impl Drop for BrFastPath {
    fn drop(&mut self) {
        self.detach();
    }
}
