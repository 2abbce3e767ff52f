//! A MAP rule and its arithmetic (RFC 7597 §5, §5.2, §5.3, §6).
//!
//! Notation (RFC 7597 §5.2): a rule is `{Rule IPv6 prefix (length n), Rule IPv4 prefix
//! (length r), EA-bits length o}`; `p = 32 − r` IPv4 suffix bits, `q = o − p` PSID bits.
//! All shifts and masks are derived once in [`Rule::new`]; mapping a prefix or a packet is
//! then a few shifts, masks and compares.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::portset::{PortSet, PortSetError};
use crate::prefix::{mask128, mask32, Ipv4Net, Ipv6Net};

/// The RFC 7597 default PSID offset `a` (excludes ports 0–1023, §5.1).
pub const DEFAULT_PSID_OFFSET: u8 = 6;
/// Largest EA-bits length (RFC 7597 §5.2: `0 ≤ o ≤ 48`).
pub const MAX_EA_LEN: u8 = 48;

/// Layout of the CE's 64-bit interface identifier.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IidFormat {
    /// RFC 7597 §6 Figure 8: `16 bits 0 | IPv4 (32) | PSID (16)`.
    #[default]
    Rfc7597,
    /// draft-ietf-softwire-map-03: `8 bits 0 | IPv4 (32) | PSID (16) | 8 bits 0`, used by
    /// v6plus and BIGLOBE (OpenWrt `legacymap`).
    Draft03,
}

impl IidFormat {
    /// The interface identifier for `ipv4` (right-padded prefix or address) and `psid`
    /// (right-aligned in 16 bits; 0 when there is none).
    pub fn iid(self, ipv4: Ipv4Addr, psid: u16) -> u64 {
        let v4 = u64::from(u32::from(ipv4));
        let psid = u64::from(psid);
        match self {
            // RFC 7597 §6, Figure 8.
            IidFormat::Rfc7597 => (v4 << 16) | psid,
            // draft-ietf-softwire-map-03 §6: IPv4 at address bytes 9-12, PSID at 13-14.
            IidFormat::Draft03 => (v4 << 24) | (psid << 8),
        }
    }

    /// The name used in profiles and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            IidFormat::Rfc7597 => "rfc7597",
            IidFormat::Draft03 => "draft03",
        }
    }
}

impl fmt::Display for IidFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IidFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rfc7597" | "rfc" => Ok(IidFormat::Rfc7597),
            "draft03" | "draft" | "legacy" | "legacymap" => Ok(IidFormat::Draft03),
            _ => Err(format!(
                "unknown IID format {s:?} (expected rfc7597 or draft03)"
            )),
        }
    }
}

/// The parameters of a rule as configured (profile, DHCPv6 or command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    /// Rule IPv6 prefix (length `n`).
    pub ipv6_prefix: Ipv6Net,
    /// Rule IPv4 prefix (length `r`).
    pub ipv4_prefix: Ipv4Net,
    /// EA-bits length `o` (0–48).
    pub ea_len: u8,
    /// PSID offset `a` (0–15, RFC 7597 default 6).
    pub psid_offset: u8,
    /// Explicit PSID length `k` (RFC 7598 S46_PORTPARAMS). When the EA bits carry PSID bits
    /// it must equal `o − p`; when they carry none it gives `k` for an explicit PSID.
    pub psid_len: Option<u8>,
    /// Explicit PSID (RFC 7598 S46_PORTPARAMS; RFC 7597 App. A ex. 5). Only valid when the
    /// EA bits give a full IPv4 address and no PSID bits.
    pub psid: Option<u16>,
    /// Forwarding rule (FMR, RFC 7598 S46_RULE F-flag): usable to reach peer CEs in mesh.
    pub forwarding: bool,
}

impl RuleSpec {
    /// A spec with the RFC defaults: offset 6, `k = o − p`, no explicit PSID, BMR only.
    pub fn new(ipv6_prefix: Ipv6Net, ipv4_prefix: Ipv4Net, ea_len: u8) -> Self {
        Self {
            ipv6_prefix,
            ipv4_prefix,
            ea_len,
            psid_offset: DEFAULT_PSID_OFFSET,
            psid_len: None,
            psid: None,
            forwarding: false,
        }
    }
}

/// Why a rule is impossible (RFC 7597 §5.2, RFC 7598 §4.1/§4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `o > 48`.
    #[error("EA-bits length {ea_len} exceeds 48 (RFC 7597 §5.2)")]
    EaLenTooLong {
        /// `o`.
        ea_len: u8,
    },
    /// `n + o > 128`.
    #[error("rule prefix {ipv6_prefix} + {ea_len} EA bits exceed 128 bits (RFC 7597 §5.2)")]
    EaBeyondAddress {
        /// The rule IPv6 prefix.
        ipv6_prefix: Ipv6Net,
        /// `o`.
        ea_len: u8,
    },
    /// `q = o − p > 16`.
    #[error("EA-bits length {ea_len} with IPv4 prefix {ipv4_prefix} leaves {psid_len} PSID bits (at most 16, RFC 7597 §5.2)")]
    PsidLenTooLong {
        /// `o`.
        ea_len: u8,
        /// The rule IPv4 prefix.
        ipv4_prefix: Ipv4Net,
        /// `o − p`.
        psid_len: u8,
    },
    /// `a > 15` (RFC 7598 §4.5: offset 0–15).
    #[error("PSID offset {offset} exceeds 15 (RFC 7598 §4.5)")]
    OffsetTooLarge {
        /// `a`.
        offset: u8,
    },
    /// Explicit `k` disagrees with the PSID bits in the EA field.
    #[error("PSID length {given} disagrees with EA-bits length − IPv4 suffix bits = {derived} (RFC 7597 §5.2)")]
    PsidLenMismatch {
        /// Explicit `k`.
        given: u8,
        /// `o − p`.
        derived: u8,
    },
    /// An explicit PSID while the EA bits already carry one.
    #[error(
        "explicit PSID {psid} conflicts with the {ea_psid_len} PSID bits carried in the EA bits"
    )]
    PsidConflict {
        /// The explicit PSID.
        psid: u16,
        /// `o − p`.
        ea_psid_len: u8,
    },
    /// `k > 0` but neither the EA bits nor the configuration give a PSID.
    #[error("PSID length {psid_len} given but no PSID: the EA bits carry none, give one explicitly (RFC 7598 S46_PORTPARAMS)")]
    MissingPsid {
        /// Explicit `k`.
        psid_len: u8,
    },
    /// An explicit PSID without its length.
    #[error("explicit PSID {psid} given without a PSID length")]
    MissingPsidLen {
        /// The explicit PSID.
        psid: u16,
    },
    /// An explicit PSID while the CE gets only an IPv4 prefix (RFC 7598 §4.5: discard).
    #[error("explicit PSID needs a full IPv4 address, but the rule gives the CE only a /{ipv4_len} (RFC 7598 §4.5)")]
    PsidWithoutFullAddress {
        /// `r + o`.
        ipv4_len: u8,
    },
    /// Port-set parameters out of range.
    #[error(transparent)]
    PortSet(#[from] PortSetError),
}

/// Why a prefix, address or packet does not map through a rule or domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The end-user prefix (or address) is outside the rule IPv6 prefix.
    #[error("{prefix} is not inside rule prefix {rule}")]
    NotInRule {
        /// The end-user prefix.
        prefix: Ipv6Net,
        /// The rule IPv6 prefix.
        rule: Ipv6Net,
    },
    /// `End-user prefix length < n + o` (RFC 7597 §5.2: reject, not guess).
    #[error("{prefix} is shorter than rule prefix {rule} plus {ea_len} EA bits (needs /{needed} or longer, RFC 7597 §5.2)")]
    PrefixTooShort {
        /// The end-user prefix.
        prefix: Ipv6Net,
        /// The rule IPv6 prefix.
        rule: Ipv6Net,
        /// `o`.
        ea_len: u8,
        /// `n + o`.
        needed: u8,
    },
    /// No rule of the domain covers the prefix or address.
    #[error("{prefix} is not covered by any rule")]
    NoRule {
        /// The end-user prefix (or /128 address).
        prefix: Ipv6Net,
    },
    /// An IPv4 address outside the rule IPv4 prefix.
    #[error("{addr} is not inside rule IPv4 prefix {rule}")]
    Ipv4NotInRule {
        /// The address.
        addr: Ipv4Addr,
        /// The rule IPv4 prefix.
        rule: Ipv4Net,
    },
    /// A port with `A = 0` on a shared address: no CE owns it (RFC 7597 §5.1).
    #[error("port {port} has A = 0 under PSID offset {offset}: no CE owns it (RFC 7597 §5.1)")]
    ReservedPort {
        /// The port.
        port: u16,
        /// `a`.
        offset: u8,
    },
    /// A port outside a rule's explicit port set.
    #[error("port {port} is not in the port set of PSID {psid}")]
    PortNotInSet {
        /// The port.
        port: u16,
        /// The rule's explicit PSID.
        psid: u16,
    },
}

/// The IPv4 side of a CE: its address (`/32`) or prefix, and its port set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Share {
    /// The CE's IPv4 address (`/32`) or, when `o + r < 32`, its IPv4 prefix.
    pub ipv4: Ipv4Net,
    /// The PSID, `None` when the address is not shared (`k = 0`).
    pub psid: Option<u16>,
    /// The ports the CE may use ([`PortSet::all`] when `k = 0`).
    pub port_set: PortSet,
}

/// Everything a CE derives from its End-user prefix and its BMR (RFC 7597 §5.2, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CeMapping {
    /// The End-user prefix the mapping was computed from (a /128 CE address given as input
    /// is widened to `/max(n + o, 64)`).
    pub end_user_prefix: Ipv6Net,
    /// The EA bits (`o` of them, right-aligned).
    pub ea_bits: u64,
    /// IPv4 address or prefix, PSID and port set.
    pub share: Ipv4Share,
    /// The CE's MAP IPv6 address: End-user prefix ‖ subnet 0 ‖ IID (RFC 7597 §6).
    pub ce_ipv6: Ipv6Addr,
    /// The IID layout used for `ce_ipv6`.
    pub iid_format: IidFormat,
}

/// A validated MAP rule with its derived shifts and masks (RFC 7597 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    spec: RuleSpec,
    /// `p = 32 − r`.
    p: u8,
    /// IPv4 suffix bits carried in the EA field: `min(o, p)`.
    v4_bits: u8,
    /// PSID bits carried in the EA field: `q = o − v4_bits`.
    ea_psid_len: u8,
    /// Effective `k`.
    psid_len: u8,
    /// Effective explicit PSID (only when `ea_psid_len == 0 && psid_len > 0`).
    psid: Option<u16>,
    /// Port set of the explicit PSID.
    explicit_set: Option<PortSet>,
    /// `128 − n − o`: right shift that brings the EA field to bit 0.
    ea_shift: u32,
    /// Mask of `o` bits.
    ea_mask: u64,
}

const fn mask_low64(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl Rule {
    /// Validates `spec` and precomputes the arithmetic (RFC 7597 §5.2, RFC 7598 §4.5).
    pub fn new(spec: RuleSpec) -> Result<Self, RuleError> {
        let n = spec.ipv6_prefix.len();
        let r = spec.ipv4_prefix.len();
        let o = spec.ea_len;
        let a = spec.psid_offset;
        if o > MAX_EA_LEN {
            return Err(RuleError::EaLenTooLong { ea_len: o });
        }
        if u16::from(n) + u16::from(o) > 128 {
            return Err(RuleError::EaBeyondAddress {
                ipv6_prefix: spec.ipv6_prefix,
                ea_len: o,
            });
        }
        if a > 15 {
            return Err(RuleError::OffsetTooLarge { offset: a });
        }
        let p = 32 - r;
        let v4_bits = o.min(p);
        let q = o - v4_bits;
        if q > 16 {
            return Err(RuleError::PsidLenTooLong {
                ea_len: o,
                ipv4_prefix: spec.ipv4_prefix,
                psid_len: q,
            });
        }
        let (psid_len, psid) = if q > 0 {
            // §5.2, o + r > 32: the PSID is the last q EA bits.
            if let Some(k) = spec.psid_len {
                if k != q {
                    return Err(RuleError::PsidLenMismatch {
                        given: k,
                        derived: q,
                    });
                }
            }
            if let Some(psid) = spec.psid {
                return Err(RuleError::PsidConflict {
                    psid,
                    ea_psid_len: q,
                });
            }
            (q, None)
        } else {
            if let (Some(psid), None) = (spec.psid, spec.psid_len) {
                return Err(RuleError::MissingPsidLen { psid });
            }
            match (spec.psid_len.unwrap_or(0), spec.psid) {
                // RFC 7598 §4.5: k = 0 → the PSID field is ignored.
                (0, _) => (0, None),
                (k, None) => return Err(RuleError::MissingPsid { psid_len: k }),
                (k, Some(psid)) => {
                    // RFC 7598 §4.5 / RFC 7597 App. A ex. 5: explicit PSID on a full address.
                    if v4_bits < p {
                        return Err(RuleError::PsidWithoutFullAddress { ipv4_len: r + o });
                    }
                    (k, Some(psid))
                }
            }
        };
        // Validates a + k ≤ 16 and the explicit PSID range.
        let explicit_set = match psid {
            Some(psid) => Some(PortSet::new(psid, psid_len, a)?),
            None => {
                PortSet::new(0, psid_len, a)?;
                None
            }
        };
        Ok(Self {
            spec,
            p,
            v4_bits,
            ea_psid_len: q,
            psid_len,
            psid,
            explicit_set,
            ea_shift: 128 - u32::from(n) - u32::from(o),
            ea_mask: mask_low64(o),
        })
    }

    /// The spec the rule was built from.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// Rule IPv6 prefix.
    pub fn ipv6_prefix(&self) -> Ipv6Net {
        self.spec.ipv6_prefix
    }

    /// Rule IPv4 prefix.
    pub fn ipv4_prefix(&self) -> Ipv4Net {
        self.spec.ipv4_prefix
    }

    /// EA-bits length `o`.
    pub fn ea_len(&self) -> u8 {
        self.spec.ea_len
    }

    /// PSID offset `a`.
    pub fn psid_offset(&self) -> u8 {
        self.spec.psid_offset
    }

    /// Effective PSID length `k` (0: address not shared).
    pub fn psid_len(&self) -> u8 {
        self.psid_len
    }

    /// The explicit PSID, when the EA bits carry none (RFC 7598 S46_PORTPARAMS).
    pub fn explicit_psid(&self) -> Option<u16> {
        self.psid
    }

    /// Whether this is a forwarding rule (FMR).
    pub fn is_fmr(&self) -> bool {
        self.spec.forwarding
    }

    /// Length of the IPv4 address or prefix a CE gets: `r + min(o, p)`.
    pub fn ce_ipv4_len(&self) -> u8 {
        self.spec.ipv4_prefix.len() + self.v4_bits
    }

    /// Shortest End-user prefix this rule can map: `n + o`.
    pub fn min_end_user_len(&self) -> u8 {
        self.spec.ipv6_prefix.len() + self.spec.ea_len
    }

    /// The EA field of `addr` (bits `n .. n + o`).
    fn ea_of(&self, bits: u128) -> u64 {
        if self.spec.ea_len == 0 {
            return 0;
        }
        ((bits >> self.ea_shift) as u64) & self.ea_mask
    }

    /// IPv4 share for an EA value (RFC 7597 §5.2).
    fn share_of_ea(&self, ea: u64) -> Ipv4Share {
        let q = self.ea_psid_len;
        let v4_part = (ea >> q) as u32;
        let mut v4 = self.spec.ipv4_prefix.bits();
        if self.v4_bits > 0 {
            v4 |= v4_part << (self.p - self.v4_bits);
        }
        let psid = if q > 0 {
            Some((ea & mask_low64(q)) as u16)
        } else {
            self.psid
        };
        let port_set = match (self.explicit_set, psid) {
            (Some(set), _) => set,
            // Cannot fail: a + q ≤ 16 checked in `Rule::new`, and the PSID has q bits.
            (None, Some(psid)) if self.psid_len > 0 => {
                PortSet::new(psid, self.psid_len, self.spec.psid_offset).unwrap_or(PortSet::all())
            }
            _ => PortSet::all(),
        };
        let ipv4 =
            Ipv4Net::new(Ipv4Addr::from(v4), self.ce_ipv4_len()).unwrap_or(self.spec.ipv4_prefix);
        Ipv4Share {
            ipv4,
            psid: if self.psid_len > 0 { psid } else { None },
            port_set,
        }
    }

    /// CE MAP address: End-user prefix ‖ subnet 0 ‖ IID, the prefix overwriting the IID
    /// when longer than /64 (RFC 7597 §6).
    fn ce_address(&self, end_user: &Ipv6Net, share: &Ipv4Share, iid: IidFormat) -> Ipv6Addr {
        let id = iid.iid(share.ipv4.addr(), share.psid.unwrap_or(0));
        let m = mask128(end_user.len());
        Ipv6Addr::from((end_user.bits() & m) | (u128::from(id) & !m))
    }

    /// Maps an End-user IPv6 prefix through this rule as its BMR (RFC 7597 §5.2, §6).
    ///
    /// A `/128` input is taken as a CE address: the End-user prefix is then assumed to be
    /// `/max(n + o, 64)`.
    pub fn map_prefix(&self, end_user: &Ipv6Net, iid: IidFormat) -> Result<CeMapping, MapError> {
        let rule = self.spec.ipv6_prefix;
        if !rule.contains(end_user.addr()) || end_user.len() < rule.len() {
            return Err(MapError::NotInRule {
                prefix: *end_user,
                rule,
            });
        }
        let needed = self.min_end_user_len();
        if end_user.len() < needed {
            return Err(MapError::PrefixTooShort {
                prefix: *end_user,
                rule,
                ea_len: self.spec.ea_len,
                needed,
            });
        }
        let eff = if end_user.len() == 128 {
            Ipv6Net::new(end_user.addr(), needed.max(64)).unwrap_or(*end_user)
        } else {
            *end_user
        };
        let ea_bits = self.ea_of(eff.bits());
        let share = self.share_of_ea(ea_bits);
        Ok(CeMapping {
            end_user_prefix: eff,
            ea_bits,
            share,
            ce_ipv6: self.ce_address(&eff, &share, iid),
            iid_format: iid,
        })
    }

    /// The IPv4 address/prefix and port set of the CE owning IPv6 address `addr`
    /// (RFC 7597 §8.1 source validation; BR side of §5.3).
    pub fn share_of_ipv6(&self, addr: Ipv6Addr) -> Result<Ipv4Share, MapError> {
        if !self.spec.ipv6_prefix.contains(addr) {
            return Err(MapError::NotInRule {
                prefix: Ipv6Net::new(addr, 128).unwrap_or(self.spec.ipv6_prefix),
                rule: self.spec.ipv6_prefix,
            });
        }
        Ok(self.share_of_ea(self.ea_of(u128::from(addr))))
    }

    /// RFC 7597 §8.1: whether an IPv4 packet from `(ipv4_src, src_port)` may arrive in an
    /// IPv6 packet from `ipv6_src` under this rule: the IPv6 source must be the MAP
    /// address of the CE that owns that address and port (§5.3, with the subnet ID 0 and
    /// the interface identifier of §6 in layout `iid`), the whole 128 bits, as the BR's
    /// and the CE's kernel fast paths compare it.
    pub fn source_is_valid(
        &self,
        ipv6_src: Ipv6Addr,
        ipv4_src: Ipv4Addr,
        src_port: u16,
        iid: IidFormat,
    ) -> bool {
        self.ce_ipv6_for(ipv4_src, src_port, iid) == Ok(ipv6_src)
    }

    /// Reverse mapping (RFC 7597 §5.3, BR and FMR): the MAP address of the CE that owns
    /// `(ipv4, port)`. EA = IPv4 suffix ‖ PSID(port); address = rule prefix ‖ EA ‖ subnet 0
    /// ‖ IID, the End-user prefix taken as `n + o` bits long.
    pub fn ce_ipv6_for(
        &self,
        ipv4: Ipv4Addr,
        port: u16,
        iid: IidFormat,
    ) -> Result<Ipv6Addr, MapError> {
        let rule4 = self.spec.ipv4_prefix;
        if !rule4.contains(ipv4) {
            return Err(MapError::Ipv4NotInRule {
                addr: ipv4,
                rule: rule4,
            });
        }
        let a = self.spec.psid_offset;
        let suffix = u32::from(ipv4) & !mask32(rule4.len());
        let v4_part = if self.v4_bits == 0 {
            0
        } else {
            u64::from(suffix >> (self.p - self.v4_bits))
        };
        let mut ea = v4_part;
        if self.ea_psid_len > 0 {
            if a > 0 && (port >> (16 - a)) == 0 {
                return Err(MapError::ReservedPort { port, offset: a });
            }
            let k = self.ea_psid_len;
            let m = 16 - a - k;
            let psid = (u32::from(port) >> m) as u64 & mask_low64(k);
            ea = (ea << k) | psid;
        } else if let Some(set) = self.explicit_set {
            if !set.contains(port) {
                return Err(MapError::PortNotInSet {
                    port,
                    psid: set.psid(),
                });
            }
        }
        let len = self.min_end_user_len();
        let bits = if self.spec.ea_len == 0 {
            self.spec.ipv6_prefix.bits()
        } else {
            self.spec.ipv6_prefix.bits() | (u128::from(ea) << self.ea_shift)
        };
        let end_user = Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap_or(self.spec.ipv6_prefix);
        let share = self.share_of_ea(ea);
        Ok(self.ce_address(&end_user, &share, iid))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} ea-len {} psid-offset {} psid-len {}",
            self.spec.ipv6_prefix,
            self.spec.ipv4_prefix,
            self.spec.ea_len,
            self.spec.psid_offset,
            self.psid_len
        )?;
        if let Some(psid) = self.psid {
            write!(f, " psid {psid}")?;
        }
        if self.spec.forwarding {
            f.write_str(" fmr")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portset::PortRange;
    use proptest::prelude::*;

    fn net6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }
    fn net4(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn rule(v6: &str, v4: &str, ea: u8, a: u8) -> Rule {
        let mut s = RuleSpec::new(net6(v6), net4(v4), ea);
        s.psid_offset = a;
        Rule::new(s).unwrap()
    }

    /// RFC 7597 Appendix A, example 1 (BMR): 2001:db8:0012:3400::/56 under
    /// 2001:db8::/40 → 192.0.2.0/24, EA 16, a 6 → 192.0.2.18, PSID 0x34, 252 ports,
    /// CE 2001:db8:12:3400:0:c000:212:34.
    #[test]
    fn rfc7597_appendix_a_example_1_bmr() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        let m = r
            .map_prefix(&net6("2001:db8:12:3400::/56"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.ea_bits, 0x1234);
        assert_eq!(m.share.ipv4, net4("192.0.2.18/32"));
        assert_eq!(m.share.psid, Some(0x34));
        assert_eq!(r.psid_len(), 8);
        assert_eq!(m.share.port_set.count(), 252);
        let ranges: Vec<_> = m.share.port_set.ranges().collect();
        assert_eq!(ranges.len(), 63);
        assert_eq!(
            ranges[0],
            PortRange {
                start: 1232,
                end: 1235
            }
        );
        assert_eq!(
            ranges[1],
            PortRange {
                start: 2256,
                end: 2259
            }
        );
        assert_eq!(
            ranges[61],
            PortRange {
                start: 63696,
                end: 63699
            }
        );
        assert_eq!(
            ranges[62],
            PortRange {
                start: 64720,
                end: 64723
            }
        );
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3400:0:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
    }

    /// RFC 7597 Appendix A, example 2 (BR with FMR, §5.3): 1.2.3.4:80 → 192.0.2.18:1232;
    /// port 1232 = 000001|00110100|00 → PSID 0x34; outer destination
    /// 2001:db8:12:3400:0:c000:212:34.
    #[test]
    fn rfc7597_appendix_a_example_2_br_reverse_mapping() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        let dst = r
            .ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), 1232, IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(
            dst,
            "2001:db8:12:3400:0:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        // Every port of the CE's set maps to the same CE.
        for port in [1233, 1235, 2256, 64723] {
            assert_eq!(
                r.ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), port, IidFormat::Rfc7597),
                Ok(dst)
            );
        }
        // A = 0 ports belong to no CE (§5.1).
        assert_eq!(
            r.ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), 80, IidFormat::Rfc7597),
            Err(MapError::ReservedPort {
                port: 80,
                offset: 6
            })
        );
        assert_eq!(
            r.ce_ipv6_for(Ipv4Addr::new(192, 0, 3, 18), 1232, IidFormat::Rfc7597),
            Err(MapError::Ipv4NotInRule {
                addr: Ipv4Addr::new(192, 0, 3, 18),
                rule: net4("192.0.2.0/24")
            })
        );
        // §8.1: the reverse of the reverse.
        let s = r.share_of_ipv6(dst).unwrap();
        assert_eq!((s.ipv4, s.psid), (net4("192.0.2.18/32"), Some(0x34)));
        let rfc = IidFormat::Rfc7597;
        assert!(r.source_is_valid(dst, Ipv4Addr::new(192, 0, 2, 18), 1232, rfc));
        assert!(!r.source_is_valid(dst, Ipv4Addr::new(192, 0, 2, 18), 1236, rfc));
        assert!(!r.source_is_valid(dst, Ipv4Addr::new(192, 0, 2, 19), 1232, rfc));
        // The same prefix and EA bits with another interface identifier, or another
        // subnet ID, is not that CE's MAP address (§5.2, §6).
        let other_iid: Ipv6Addr = "2001:db8:12:3400:c0:2:1200:3400".parse().unwrap();
        let subnet_1: Ipv6Addr = "2001:db8:12:3401:0:c000:212:34".parse().unwrap();
        for a in [other_iid, subnet_1] {
            assert_eq!(r.share_of_ipv6(a).map(|s| s.psid), Ok(Some(0x34)), "{a}");
            assert!(
                !r.source_is_valid(a, Ipv4Addr::new(192, 0, 2, 18), 1232, rfc),
                "{a}"
            );
        }
        assert!(r.source_is_valid(
            other_iid,
            Ipv4Addr::new(192, 0, 2, 18),
            1232,
            IidFormat::Draft03
        ));
    }

    /// RFC 7597 Appendix A, example 4 (no EA bits, no sharing): rule
    /// 2001:db8:0012:3400::/56 → 192.0.2.18/32, EA 0 → all ports, PSID null, CE
    /// 2001:db8:12:3400:0:c000:212:0.
    #[test]
    fn rfc7597_appendix_a_example_4_no_ea_bits() {
        let r = rule("2001:db8:12:3400::/56", "192.0.2.18/32", 0, 6);
        let m = r
            .map_prefix(&net6("2001:db8:12:3400::/56"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("192.0.2.18/32"));
        assert_eq!(m.share.psid, None);
        assert_eq!(m.share.port_set, PortSet::all());
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3400:0:c000:212:0".parse::<Ipv6Addr>().unwrap()
        );
    }

    /// RFC 7597 Appendix A, example 5 (no EA bits, sharing 256 via DHCPv6): k 8, PSID 0x34
    /// from S46_PORTPARAMS `06 08 3400`; ports as ex. 1; CE 2001:db8:12:3400:0:c000:212:34.
    #[test]
    fn rfc7597_appendix_a_example_5_psid_from_dhcpv6() {
        let mut s = RuleSpec::new(net6("2001:db8:12:3400::/56"), net4("192.0.2.18/32"), 0);
        s.psid_len = Some(8);
        s.psid = Some(0x34);
        let r = Rule::new(s).unwrap();
        let m = r
            .map_prefix(&net6("2001:db8:12:3400::/56"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("192.0.2.18/32"));
        assert_eq!(m.share.psid, Some(0x34));
        assert_eq!(m.share.port_set, PortSet::new(0x34, 8, 6).unwrap());
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3400:0:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        // Reverse: only the explicit set reaches the CE.
        assert_eq!(
            r.ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), 1232, IidFormat::Rfc7597),
            Ok(m.ce_ipv6)
        );
        assert_eq!(
            r.ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), 1236, IidFormat::Rfc7597),
            Err(MapError::PortNotInSet {
                port: 1236,
                psid: 0x34
            })
        );
    }

    /// mape-facts §4: the published v6plus worked example, both IID formats.
    #[test]
    fn v6plus_worked_example() {
        let r = rule("240b:12::/31", "14.8.0.0/15", 25, 4);
        let eu = net6("240b:13:1a65:a100::/56");
        let m = r.map_prefix(&eu, IidFormat::Draft03).unwrap();
        assert_eq!(m.share.ipv4, net4("14.9.26.101/32"));
        assert_eq!(m.share.psid, Some(161));
        assert_eq!(m.share.port_set.count(), 240);
        let ranges: Vec<_> = m.share.port_set.ranges().collect();
        assert_eq!(ranges.len(), 15);
        assert_eq!(
            ranges[0],
            PortRange {
                start: 6672,
                end: 6687
            }
        );
        assert_eq!(
            ranges[1],
            PortRange {
                start: 10768,
                end: 10783
            }
        );
        assert_eq!(
            ranges[14],
            PortRange {
                start: 64016,
                end: 64031
            }
        );
        assert_eq!(
            m.ce_ipv6,
            "240b:13:1a65:a100:e:91a:6500:a100"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        let m = r.map_prefix(&eu, IidFormat::Rfc7597).unwrap();
        assert_eq!(
            m.ce_ipv6,
            "240b:13:1a65:a100:0:e09:1a65:a1"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        // The BR's view (§5.3) gives the same address for both formats.
        for f in [IidFormat::Draft03, IidFormat::Rfc7597] {
            let want = r.map_prefix(&eu, f).unwrap().ce_ipv6;
            assert_eq!(
                r.ce_ipv6_for(Ipv4Addr::new(14, 9, 26, 101), 6672, f),
                Ok(want)
            );
        }
        // A CE /128 given instead of the prefix maps the same.
        let a = r
            .map_prefix(
                &net6("240b:13:1a65:a100:e:91a:6500:a100/128"),
                IidFormat::Draft03,
            )
            .unwrap();
        assert_eq!(a.ce_ipv6, m_draft(&r, &eu));
        assert_eq!(a.end_user_prefix, net6("240b:13:1a65:a100::/64"));
    }

    fn m_draft(r: &Rule, eu: &Ipv6Net) -> Ipv6Addr {
        r.map_prefix(eu, IidFormat::Draft03).unwrap().ce_ipv6
    }

    /// §5.2: o + r < 32 → the CE gets an IPv4 prefix, no PSID, all ports; IID right-pads.
    #[test]
    fn ea_bits_shorter_than_suffix_give_a_prefix() {
        let r = rule("2001:db8::/40", "10.0.0.0/8", 16, 6);
        let m = r
            .map_prefix(&net6("2001:db8:12:3400::/56"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("10.18.52.0/24"));
        assert_eq!(m.share.psid, None);
        assert_eq!(m.share.port_set, PortSet::all());
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3400:0:a12:3400:0".parse::<Ipv6Addr>().unwrap()
        );
        // Reverse: any address of the CE prefix, any port.
        assert_eq!(
            r.ce_ipv6_for(Ipv4Addr::new(10, 18, 52, 99), 7, IidFormat::Rfc7597),
            Ok(m.ce_ipv6)
        );
    }

    /// §5.2: o + r = 32 → full address, k = 0.
    #[test]
    fn full_address_k0() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 8, 6);
        let m = r
            .map_prefix(&net6("2001:db8:12::/48"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("192.0.2.18/32"));
        assert_eq!(m.share.psid, None);
        assert_eq!(m.share.port_set.count(), 65536);
    }

    /// §5.2: o > 32 (r = 0 and r = 16 cases), q = o − p ≤ 16, EA up to 48 bits.
    #[test]
    fn long_ea_fields() {
        // r = 16, o = 32: p = 16, q = 16.
        let r = rule("2001:db8::/32", "198.51.0.0/16", 32, 0);
        let m = r
            .map_prefix(&net6("2001:db8:6407:abcd::/64"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("198.51.100.7/32"));
        assert_eq!(m.share.psid, Some(0xabcd));
        assert_eq!(m.share.port_set.count(), 1);
        // r = 0, o = 48: the whole IPv4 address plus a 16-bit PSID in the EA bits.
        let r = rule("2001:db8::/16", "0.0.0.0/0", 48, 0);
        let m = r
            .map_prefix(&net6("2001:c633:6407:ab00::/64"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.ipv4, net4("198.51.100.7/32"));
        assert_eq!(m.share.psid, Some(0xab00));
        // o = 49 is impossible.
        let s = RuleSpec::new(net6("2001:db8::/16"), net4("0.0.0.0/0"), 49);
        assert_eq!(Rule::new(s), Err(RuleError::EaLenTooLong { ea_len: 49 }));
        // r = 8, o = 48: q = 24 > 16.
        let s = RuleSpec::new(net6("2001:db8::/16"), net4("10.0.0.0/8"), 48);
        assert!(matches!(
            Rule::new(s),
            Err(RuleError::PsidLenTooLong { psid_len: 24, .. })
        ));
    }

    /// a = 0: one range, PSID 0 includes port 0 (§5.1).
    #[test]
    fn offset_zero() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 12, 0);
        let m = r
            .map_prefix(&net6("2001:db8:12:3000::/52"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(m.share.psid, Some(3));
        assert_eq!(
            m.share.port_set.ranges().collect::<Vec<_>>(),
            vec![PortRange {
                start: 0x3000,
                end: 0x3fff
            }]
        );
        assert!(r
            .ce_ipv6_for(Ipv4Addr::new(192, 0, 2, 18), 0x3000, IidFormat::Rfc7597)
            .is_ok());
    }

    /// §5.2: End-user prefix shorter than n + o is an error, not a guess; outside → error.
    #[test]
    fn prefix_errors() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        assert_eq!(
            r.map_prefix(&net6("2001:db8:12::/48"), IidFormat::Rfc7597),
            Err(MapError::PrefixTooShort {
                prefix: net6("2001:db8:12::/48"),
                rule: net6("2001:db8::/40"),
                ea_len: 16,
                needed: 56
            })
        );
        let e = r
            .map_prefix(&net6("2001:db9::/56"), IidFormat::Rfc7597)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2001:db9::/56 is not inside rule prefix 2001:db8::/40"
        );
        assert!(r
            .map_prefix(&net6("2001:db8::/32"), IidFormat::Rfc7597)
            .is_err());
        // A longer prefix keeps its extra bits; a /64 subnet ID stays zero.
        let m = r
            .map_prefix(&net6("2001:db8:12:3456::/64"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3456:0:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        // A prefix longer than /64 overwrites the top of the IID (§6).
        let m = r
            .map_prefix(&net6("2001:db8:12:3400:ffff::/80"), IidFormat::Rfc7597)
            .unwrap();
        assert_eq!(
            m.ce_ipv6,
            "2001:db8:12:3400:ffff:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
    }

    #[test]
    fn rule_validation() {
        let base = RuleSpec::new(net6("2001:db8::/40"), net4("192.0.2.0/24"), 16);
        let with = |f: &dyn Fn(&mut RuleSpec)| {
            let mut s = base;
            f(&mut s);
            Rule::new(s)
        };
        assert!(with(&|s| s.psid_len = Some(8)).is_ok());
        assert_eq!(
            with(&|s| s.psid_len = Some(7)),
            Err(RuleError::PsidLenMismatch {
                given: 7,
                derived: 8
            })
        );
        assert_eq!(
            with(&|s| s.psid = Some(1)),
            Err(RuleError::PsidConflict {
                psid: 1,
                ea_psid_len: 8
            })
        );
        assert_eq!(
            with(&|s| s.psid_offset = 16),
            Err(RuleError::OffsetTooLarge { offset: 16 })
        );
        assert!(matches!(
            with(&|s| s.psid_offset = 9),
            Err(RuleError::PortSet(_))
        ));
        assert!(matches!(
            with(&|s| s.ipv6_prefix = net6("2001:db8::/120")),
            Err(RuleError::EaBeyondAddress { .. })
        ));
        let full = RuleSpec::new(net6("2001:db8::/56"), net4("192.0.2.18/32"), 0);
        let with_full = |k: Option<u8>, psid: Option<u16>| {
            Rule::new(RuleSpec {
                psid_len: k,
                psid,
                ..full
            })
        };
        assert_eq!(
            with_full(Some(8), None),
            Err(RuleError::MissingPsid { psid_len: 8 })
        );
        assert_eq!(
            with_full(None, Some(3)),
            Err(RuleError::MissingPsidLen { psid: 3 })
        );
        assert!(matches!(
            with_full(Some(8), Some(256)),
            Err(RuleError::PortSet(_))
        ));
        // k = 0 → the PSID is ignored (RFC 7598 §4.5).
        assert_eq!(with_full(Some(0), Some(5)).unwrap().explicit_psid(), None);
        let pfx = RuleSpec::new(net6("2001:db8::/40"), net4("10.0.0.0/8"), 16);
        assert_eq!(
            Rule::new(RuleSpec {
                psid_len: Some(4),
                psid: Some(1),
                ..pfx
            }),
            Err(RuleError::PsidWithoutFullAddress { ipv4_len: 24 })
        );
    }

    /// A random valid rule with an End-user prefix of exactly n + o bits.
    fn arb_case() -> impl Strategy<Value = (Rule, Ipv6Net, u64)> {
        (
            0u8..=32,
            0u8..=48,
            0u8..=15,
            8u8..=64,
            any::<u128>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_filter_map("valid rule", |(r, o, a, n, v6, v4, ea)| {
                let p = 32 - r;
                let q = o.saturating_sub(p);
                if q > 16 || u16::from(a) + u16::from(q) > 16 || u16::from(n) + u16::from(o) > 128 {
                    return None;
                }
                let mut spec = RuleSpec::new(
                    Ipv6Net::new(Ipv6Addr::from(v6), n)?,
                    Ipv4Net::new(Ipv4Addr::from(v4), r)?,
                    o,
                );
                spec.psid_offset = a;
                let rule = Rule::new(spec).ok()?;
                let ea = ea & mask_low64(o);
                let bits = if o == 0 {
                    spec.ipv6_prefix.bits()
                } else {
                    spec.ipv6_prefix.bits()
                        | (u128::from(ea) << (128 - u32::from(n) - u32::from(o)))
                };
                let eu = Ipv6Net::new(Ipv6Addr::from(bits), n + o)?;
                Some((rule, eu, ea))
            })
    }

    fn arb_iid() -> impl Strategy<Value = IidFormat> {
        prop_oneof![Just(IidFormat::Rfc7597), Just(IidFormat::Draft03)]
    }

    proptest! {
        /// End-user prefix → (IPv4, PSID) → CE address → (IPv4, PSID), and every port of
        /// the set maps back to the same CE address (§5.2, §5.3, §6, §8.1).
        #[test]
        fn forward_reverse_round_trip((rule, eu, ea) in arb_case(), iid in arb_iid(), pick in any::<u32>()) {
            let m = rule.map_prefix(&eu, iid).unwrap();
            prop_assert_eq!(m.ea_bits, ea);
            prop_assert!(rule.ipv4_prefix().covers(&m.share.ipv4));
            prop_assert_eq!(m.share.ipv4.len(), rule.ce_ipv4_len());
            let back = rule.share_of_ipv6(m.ce_ipv6).unwrap();
            prop_assert_eq!(back, m.share);
            let set = m.share.port_set;
            let port = set.nth(pick % set.count()).unwrap();
            let ipv4 = m.share.ipv4.addr();
            prop_assert_eq!(rule.ce_ipv6_for(ipv4, port, iid), Ok(m.ce_ipv6));
            prop_assert!(rule.source_is_valid(m.ce_ipv6, ipv4, port, iid));
            // A /128 input of the CE address maps to the same CE (when n + o ≤ 64 or exact).
            let again = rule.map_prefix(&Ipv6Net::new(m.ce_ipv6, 128).unwrap(), iid).unwrap();
            prop_assert_eq!(again.share, m.share);
            prop_assert_eq!(again.ce_ipv6, m.ce_ipv6);
        }

        /// A port outside the set never reaches this CE.
        #[test]
        fn foreign_ports_go_elsewhere((rule, eu, _ea) in arb_case(), iid in arb_iid(), port in any::<u16>()) {
            let m = rule.map_prefix(&eu, iid).unwrap();
            if !m.share.port_set.contains(port) {
                prop_assert_ne!(rule.ce_ipv6_for(m.share.ipv4.addr(), port, iid), Ok(m.ce_ipv6));
            }
        }
    }
}
