//! RFC 7598 DHCPv6 softwire (S46) options for MAP-E: decode and encode.
//!
//! Input is a DHCPv6 option area, a sequence of `code(16) len(16) value(len)` in network
//! byte order (RFC 8415 §21.1). Only S46_CONT_MAPE (94) is interpreted at top level; S46
//! options outside a container are ignored (RFC 7598 §5). Malformed options yield a typed
//! [`Dhcpv6Error`] naming the option, the field and the value; nothing here panics.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::domain::MapDomain;
use crate::prefix::{Ipv4Net, Ipv6Net};
use crate::rule::{IidFormat, Rule, RuleError, RuleSpec, DEFAULT_PSID_OFFSET};

/// S46_RULE (RFC 7598 §4.1).
pub const OPTION_S46_RULE: u16 = 89;
/// S46_BR (RFC 7598 §4.2).
pub const OPTION_S46_BR: u16 = 90;
/// S46_DMR (RFC 7598 §4.3, MAP-T only).
pub const OPTION_S46_DMR: u16 = 91;
/// S46_V4V6BIND (RFC 7598 §4.4, lw4o6 only).
pub const OPTION_S46_V4V6BIND: u16 = 92;
/// S46_PORTPARAMS (RFC 7598 §4.5).
pub const OPTION_S46_PORTPARAMS: u16 = 93;
/// S46_CONT_MAPE (RFC 7598 §5).
pub const OPTION_S46_CONT_MAPE: u16 = 94;
/// S46_CONT_MAPT (RFC 7598 §5).
pub const OPTION_S46_CONT_MAPT: u16 = 95;
/// S46_CONT_LW (RFC 7598 §5).
pub const OPTION_S46_CONT_LW: u16 = 96;

/// The RFC 7598 name of an option code (for messages).
pub fn option_name(code: u16) -> &'static str {
    match code {
        OPTION_S46_RULE => "S46_RULE",
        OPTION_S46_BR => "S46_BR",
        OPTION_S46_DMR => "S46_DMR",
        OPTION_S46_V4V6BIND => "S46_V4V6BIND",
        OPTION_S46_PORTPARAMS => "S46_PORTPARAMS",
        OPTION_S46_CONT_MAPE => "S46_CONT_MAPE",
        OPTION_S46_CONT_MAPT => "S46_CONT_MAPT",
        OPTION_S46_CONT_LW => "S46_CONT_LW",
        _ => "option",
    }
}

/// A malformed or unusable S46 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dhcpv6Error {
    /// Fewer bytes than a field needs.
    #[error("option {code} ({}): truncated {field}: needs {need} bytes, {have} left", option_name(*code))]
    Truncated {
        /// Option code being parsed.
        code: u16,
        /// The field that did not fit.
        field: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// An option whose length is wrong for its type.
    #[error("option {code} ({}): length {len}, expected {expected}", option_name(*code))]
    BadLength {
        /// Option code.
        code: u16,
        /// Length found.
        len: usize,
        /// What RFC 7598 requires.
        expected: &'static str,
    },
    /// A field value out of range.
    #[error("option {code} ({}): {field} {value} is invalid: {reason}", option_name(*code))]
    BadValue {
        /// Option code.
        code: u16,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u32,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// An option not permitted inside S46_CONT_MAPE (RFC 7598 §5 table).
    #[error("option {code} ({}) is not permitted inside S46_CONT_MAPE (RFC 7598 §5)", option_name(*code))]
    NotPermitted {
        /// The offending option code.
        code: u16,
    },
    /// A mandatory option missing from S46_CONT_MAPE.
    #[error("S46_CONT_MAPE without {} (option {code}): RFC 7598 §5 requires at least one", option_name(*code))]
    Missing {
        /// The missing option code.
        code: u16,
    },
    /// An option that may appear once appeared again.
    #[error("option {code} ({}) appears twice in {field}", option_name(*code))]
    Duplicate {
        /// Option code.
        code: u16,
        /// Where.
        field: &'static str,
    },
    /// A container too large to encode (length over 65535).
    #[error("option {code} ({}) would be {len} bytes long, over 65535", option_name(*code))]
    TooLong {
        /// Option code.
        code: u16,
        /// Encoded value length.
        len: usize,
    },
    /// An S46_RULE that decodes but is not a possible MAP rule.
    #[error("S46_RULE #{index} (option 89): {source}")]
    Rule {
        /// Position of the rule in its container, from 0.
        index: usize,
        /// Why.
        source: RuleError,
    },
}

/// S46_PORTPARAMS (RFC 7598 §4.5): `offset(8) PSID-len(8) PSID(16)`, PSID left-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortParams {
    /// PSID offset `a` (0–15).
    pub offset: u8,
    /// PSID length `k` (0–16; 0 = PSID ignored).
    pub psid_len: u8,
    /// The PSID value, right-aligned (0x34 for k = 8, sent as `0x3400`). 0 when `k = 0`.
    pub psid: u16,
}

impl PortParams {
    /// Decodes the 4-byte value of S46_PORTPARAMS.
    pub fn decode(value: &[u8]) -> Result<Self, Dhcpv6Error> {
        let code = OPTION_S46_PORTPARAMS;
        let [offset, psid_len, hi, lo] = value else {
            return Err(Dhcpv6Error::BadLength {
                code,
                len: value.len(),
                expected: "4",
            });
        };
        let (offset, psid_len) = (*offset, *psid_len);
        if offset > 15 {
            return Err(Dhcpv6Error::BadValue {
                code,
                field: "offset",
                value: offset.into(),
                reason: "must be 0-15",
            });
        }
        if psid_len > 16 || offset + psid_len > 16 {
            return Err(Dhcpv6Error::BadValue {
                code,
                field: "PSID-len",
                value: psid_len.into(),
                reason: "offset + PSID-len exceed 16 bits",
            });
        }
        let wire = u16::from_be_bytes([*hi, *lo]);
        // Left-aligned: the PSID is the top k bits; k = 0 → ignore the field.
        let psid = if psid_len == 0 {
            0
        } else {
            (u32::from(wire) >> (16 - u32::from(psid_len))) as u16
        };
        Ok(Self {
            offset,
            psid_len,
            psid,
        })
    }

    /// The 16-bit PSID field as sent: left-aligned.
    pub fn wire_psid(&self) -> u16 {
        if self.psid_len == 0 {
            0
        } else {
            (u32::from(self.psid) << (16 - u32::from(self.psid_len.min(16)))) as u16
        }
    }

    /// Appends the whole option (header included).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_header(out, OPTION_S46_PORTPARAMS, 4);
        out.push(self.offset);
        out.push(self.psid_len);
        out.extend_from_slice(&self.wire_psid().to_be_bytes());
    }
}

/// S46_RULE (RFC 7598 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct S46Rule {
    /// F-flag: the rule is also a Forwarding Mapping Rule.
    pub fmr: bool,
    /// EA-len (0–48).
    pub ea_len: u8,
    /// Rule IPv4 prefix.
    pub ipv4_prefix: Ipv4Net,
    /// Rule IPv6 prefix.
    pub ipv6_prefix: Ipv6Net,
    /// Optional S46_PORTPARAMS sub-option.
    pub port_params: Option<PortParams>,
}

impl S46Rule {
    /// Decodes the value of S46_RULE.
    pub fn decode(value: &[u8]) -> Result<Self, Dhcpv6Error> {
        let code = OPTION_S46_RULE;
        let mut r = Reader::new(code, value);
        let flags = r.u8("flags")?;
        let ea_len = r.u8("ea-len")?;
        let p4 = r.u8("prefix4-len")?;
        let v4 = r.bytes::<4>("ipv4-prefix")?;
        let p6 = r.u8("prefix6-len")?;
        if ea_len > 48 {
            return Err(bad(code, "ea-len", ea_len, "must be 0-48"));
        }
        // Bits beyond prefix4-len are ignored on receive (§4.1): Ipv4Net::new clears them.
        let ipv4_prefix = Ipv4Net::new(Ipv4Addr::from(v4), p4)
            .ok_or_else(|| bad(code, "prefix4-len", p4, "must be 0-32"))?;
        if p6 > 128 {
            return Err(bad(code, "prefix6-len", p6, "must be 0-128"));
        }
        let n6 = usize::from(p6).div_ceil(8);
        let raw6 = r.take(n6, "ipv6-prefix")?;
        let mut v6 = [0u8; 16];
        v6[..n6].copy_from_slice(raw6);
        let ipv6_prefix = Ipv6Net::new(Ipv6Addr::from(v6), p6)
            .ok_or_else(|| bad(code, "prefix6-len", p6, "must be 0-128"))?;
        let mut port_params = None;
        for opt in Options::new(r.rest(), code) {
            let (sub, val) = opt?;
            if sub == OPTION_S46_PORTPARAMS {
                if port_params.is_some() {
                    return Err(Dhcpv6Error::Duplicate {
                        code: sub,
                        field: "S46_RULE sub-options",
                    });
                }
                port_params = Some(PortParams::decode(val)?);
            }
            // Other sub-options: none defined for MAP-E; ignored.
        }
        Ok(Self {
            fmr: flags & 0x01 != 0,
            ea_len,
            ipv4_prefix,
            ipv6_prefix,
            port_params,
        })
    }

    /// Appends the whole option (header included).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Dhcpv6Error> {
        let n6 = usize::from(self.ipv6_prefix.len()).div_ceil(8);
        let len = 8 + n6 + if self.port_params.is_some() { 8 } else { 0 };
        put_header(out, OPTION_S46_RULE, checked_len(OPTION_S46_RULE, len)?);
        out.push(u8::from(self.fmr));
        out.push(self.ea_len);
        out.push(self.ipv4_prefix.len());
        out.extend_from_slice(&self.ipv4_prefix.addr().octets());
        out.push(self.ipv6_prefix.len());
        out.extend_from_slice(&self.ipv6_prefix.addr().octets()[..n6]);
        if let Some(pp) = &self.port_params {
            pp.encode(out);
        }
        Ok(())
    }

    /// The rule spec, port parameters taken from the rule, else from the container's
    /// `default_pp`, else RFC 7597 defaults (offset 6, `k = o − p`).
    ///
    /// An explicit PSID applies only when the EA bits carry none (RFC 7598 §4.5; RFC 7597
    /// App. A ex. 5); with EA PSID bits, PSID-len must equal `o − p` and the PSID field is
    /// not used.
    pub fn to_spec(&self, default_pp: Option<PortParams>) -> RuleSpec {
        let pp = self.port_params.or(default_pp);
        let mut spec = RuleSpec::new(self.ipv6_prefix, self.ipv4_prefix, self.ea_len);
        spec.forwarding = self.fmr;
        if let Some(pp) = pp {
            spec.psid_offset = pp.offset;
            if pp.psid_len > 0 {
                spec.psid_len = Some(pp.psid_len);
                let p = 32 - self.ipv4_prefix.len();
                if self.ea_len <= p {
                    spec.psid = Some(pp.psid);
                }
            }
        } else {
            spec.psid_offset = DEFAULT_PSID_OFFSET;
        }
        spec
    }
}

/// S46_CONT_MAPE (RFC 7598 §5): one MAP-E domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MapeContainer {
    /// S46_RULE options, in order (at least one).
    pub rules: Vec<S46Rule>,
    /// S46_BR addresses, in order (at least one).
    pub br: Vec<Ipv6Addr>,
    /// S46_PORTPARAMS directly in the container (applies to rules without their own).
    pub port_params: Option<PortParams>,
}

impl MapeContainer {
    /// Decodes the value of S46_CONT_MAPE.
    pub fn decode(value: &[u8]) -> Result<Self, Dhcpv6Error> {
        let mut c = MapeContainer::default();
        for opt in Options::new(value, OPTION_S46_CONT_MAPE) {
            let (code, val) = opt?;
            match code {
                OPTION_S46_RULE => c.rules.push(S46Rule::decode(val)?),
                OPTION_S46_BR => {
                    let b: [u8; 16] = val.try_into().map_err(|_| Dhcpv6Error::BadLength {
                        code,
                        len: val.len(),
                        expected: "16",
                    })?;
                    c.br.push(Ipv6Addr::from(b));
                }
                OPTION_S46_PORTPARAMS => {
                    if c.port_params.is_some() {
                        return Err(Dhcpv6Error::Duplicate {
                            code,
                            field: "S46_CONT_MAPE",
                        });
                    }
                    c.port_params = Some(PortParams::decode(val)?);
                }
                // RFC 7598 §5: DMR is MAP-T only, V4V6BIND lw4o6 only; containers do not nest.
                OPTION_S46_DMR | OPTION_S46_V4V6BIND | OPTION_S46_CONT_MAPE
                | OPTION_S46_CONT_MAPT | OPTION_S46_CONT_LW => {
                    return Err(Dhcpv6Error::NotPermitted { code })
                }
                _ => {} // Unknown options: ignored.
            }
        }
        if c.rules.is_empty() {
            return Err(Dhcpv6Error::Missing {
                code: OPTION_S46_RULE,
            });
        }
        if c.br.is_empty() {
            return Err(Dhcpv6Error::Missing {
                code: OPTION_S46_BR,
            });
        }
        Ok(c)
    }

    /// Appends the whole option (header included).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Dhcpv6Error> {
        let mut value = Vec::new();
        for r in &self.rules {
            r.encode(&mut value)?;
        }
        for b in &self.br {
            put_header(&mut value, OPTION_S46_BR, 16);
            value.extend_from_slice(&b.octets());
        }
        if let Some(pp) = &self.port_params {
            pp.encode(&mut value);
        }
        put_header(
            out,
            OPTION_S46_CONT_MAPE,
            checked_len(OPTION_S46_CONT_MAPE, value.len())?,
        );
        out.extend_from_slice(&value);
        Ok(())
    }

    /// The MAP domain this container describes, with CE IID layout `iid`.
    pub fn to_domain(&self, iid: IidFormat) -> Result<MapDomain, Dhcpv6Error> {
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Rule::new(r.to_spec(self.port_params))
                    .map_err(|source| Dhcpv6Error::Rule { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MapDomain::new(rules, self.br.clone(), iid))
    }
}

/// Decodes every S46_CONT_MAPE in a DHCPv6 option area; the first malformed one is an
/// error. Other options, and S46 options outside a container, are ignored (RFC 7598 §5).
pub fn decode_option_area(area: &[u8]) -> Result<Vec<MapeContainer>, Dhcpv6Error> {
    let mut out = Vec::new();
    for opt in Options::new(area, 0) {
        let (code, val) = opt?;
        if code == OPTION_S46_CONT_MAPE {
            out.push(MapeContainer::decode(val)?);
        }
    }
    Ok(out)
}

/// As [`decode_option_area`], but an invalid container is skipped and its error returned
/// beside the valid ones (RFC 7598 §5: a client SHOULD discard an invalid container and log).
/// A framing error stops the walk.
pub fn decode_option_area_lenient(area: &[u8]) -> (Vec<MapeContainer>, Vec<Dhcpv6Error>) {
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    for opt in Options::new(area, 0) {
        match opt {
            Ok((OPTION_S46_CONT_MAPE, val)) => match MapeContainer::decode(val) {
                Ok(c) => ok.push(c),
                Err(e) => errs.push(e),
            },
            Ok(_) => {}
            Err(e) => {
                errs.push(e);
                break;
            }
        }
    }
    (ok, errs)
}

/// Encodes containers as a DHCPv6 option area.
pub fn encode_option_area(containers: &[MapeContainer]) -> Result<Vec<u8>, Dhcpv6Error> {
    let mut out = Vec::new();
    for c in containers {
        c.encode(&mut out)?;
    }
    Ok(out)
}

/// Decodes an option area straight into MAP domains (strict).
pub fn domains_from_option_area(
    area: &[u8],
    iid: IidFormat,
) -> Result<Vec<MapDomain>, Dhcpv6Error> {
    decode_option_area(area)?
        .iter()
        .map(|c| c.to_domain(iid))
        .collect()
}

fn bad(code: u16, field: &'static str, value: u8, reason: &'static str) -> Dhcpv6Error {
    Dhcpv6Error::BadValue {
        code,
        field,
        value: value.into(),
        reason,
    }
}

fn put_header(out: &mut Vec<u8>, code: u16, len: u16) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

fn checked_len(code: u16, len: usize) -> Result<u16, Dhcpv6Error> {
    u16::try_from(len).map_err(|_| Dhcpv6Error::TooLong { code, len })
}

/// Bounds-checked cursor over an option value.
struct Reader<'a> {
    code: u16,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(code: u16, buf: &'a [u8]) -> Self {
        Self { code, buf }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Dhcpv6Error> {
        if self.buf.len() < n {
            return Err(Dhcpv6Error::Truncated {
                code: self.code,
                field,
                need: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, Dhcpv6Error> {
        Ok(self.take(1, field)?[0])
    }

    fn bytes<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Dhcpv6Error> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn rest(self) -> &'a [u8] {
        self.buf
    }
}

/// Iterator over `code(16) len(16) value` options; `parent` names the enclosing option in
/// errors (0 = top-level option area).
struct Options<'a> {
    parent: u16,
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Options<'a> {
    fn new(buf: &'a [u8], parent: u16) -> Self {
        Self {
            parent,
            buf,
            failed: false,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), Dhcpv6Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.parent, self.buf);
        let res = (|| {
            let code = u16::from_be_bytes(r.bytes::<2>("option-code")?);
            let len = u16::from_be_bytes(r.bytes::<2>("option-len")?);
            r.code = code;
            let val = r.take(usize::from(len), "option value")?;
            Ok((code, val))
        })();
        match res {
            Ok(item) => {
                self.buf = r.rest();
                Some(Ok(item))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 7597 App. A ex. 1 domain as RFC 7598 options: rule (F set) 2001:db8::/40 →
    /// 192.0.2.0/24 EA 16 with PORTPARAMS offset 6 k 8, BR 2001:db8:ffff::1.
    pub(crate) const EX1_HEX: &str = "005e002d\
        00590015 01 10 18 c0000200 28 20010db800 005d0004 06 08 0000\
        005a0010 20010db8ffff00000000000000000001";

    /// RFC 7597 App. A ex. 5 domain: rule 2001:db8:12:3400::/56 → 192.0.2.18/32, EA 0,
    /// PORTPARAMS `06 08 3400` (k 8, PSID 0x34 left-aligned).
    pub(crate) const EX5_HEX: &str = "005e002f\
        00590017 00 00 20 c0000212 38 20010db8001234 005d0004 06 08 3400\
        005a0010 20010db8ffff00000000000000000001";

    /// RFC 7598 §4.5 golden bytes: `005d 0004 06 07 fe00` = offset 6, k 7, PSID 0x7f.
    #[test]
    fn rfc7598_portparams_golden_bytes() {
        let b = hex("005d 0004 06 07 fe00");
        let pp = PortParams::decode(&b[4..]).unwrap();
        assert_eq!(
            pp,
            PortParams {
                offset: 6,
                psid_len: 7,
                psid: 0x7f
            }
        );
        let mut out = Vec::new();
        pp.encode(&mut out);
        assert_eq!(out, b);
        // k 8, PSID 0x34 is sent as 0x3400 (App. A ex. 5).
        let pp = PortParams {
            offset: 6,
            psid_len: 8,
            psid: 0x34,
        };
        assert_eq!(pp.wire_psid(), 0x3400);
        // k = 0: the PSID field is ignored.
        assert_eq!(PortParams::decode(&[4, 0, 0xff, 0xff]).unwrap().psid, 0);
    }

    #[test]
    fn rfc7598_container_golden_bytes_ex1() {
        let bytes = hex(EX1_HEX);
        let cs = decode_option_area(&bytes).unwrap();
        assert_eq!(cs.len(), 1);
        let c = &cs[0];
        assert_eq!(
            c.rules,
            vec![S46Rule {
                fmr: true,
                ea_len: 16,
                ipv4_prefix: "192.0.2.0/24".parse().unwrap(),
                ipv6_prefix: "2001:db8::/40".parse().unwrap(),
                port_params: Some(PortParams {
                    offset: 6,
                    psid_len: 8,
                    psid: 0
                }),
            }]
        );
        assert_eq!(c.br, vec!["2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(encode_option_area(&cs).unwrap(), bytes);
        let d = c.to_domain(IidFormat::Rfc7597).unwrap();
        let m = d.map(&"2001:db8:12:3400::/56".parse().unwrap()).unwrap();
        assert_eq!(m.share.psid, Some(0x34));
        assert_eq!(m.ce_ipv6.to_string(), "2001:db8:12:3400:0:c000:212:34");
    }

    /// RFC 7597 App. A ex. 5 through RFC 7598: the PSID comes from S46_PORTPARAMS.
    #[test]
    fn rfc7598_container_ex5_explicit_psid() {
        let bytes = hex(EX5_HEX);
        let ds = domains_from_option_area(&bytes, IidFormat::Rfc7597).unwrap();
        let m = ds[0]
            .map(&"2001:db8:12:3400::/56".parse().unwrap())
            .unwrap();
        assert_eq!(m.share.ipv4.to_string(), "192.0.2.18/32");
        assert_eq!(m.share.psid, Some(0x34));
        assert_eq!(m.share.port_set.count(), 252);
        assert_eq!(m.ce_ipv6.to_string(), "2001:db8:12:3400:0:c000:212:34");
        assert_eq!(
            encode_option_area(&decode_option_area(&bytes).unwrap()).unwrap(),
            bytes
        );
    }

    #[test]
    fn other_options_and_s46_outside_container_are_ignored() {
        // A client-id option, a stray S46_BR, then the container (RFC 7598 §5).
        let mut bytes = hex("0001 0002 abcd 005a0010 20010db8ffff00000000000000000002");
        bytes.extend(hex(EX1_HEX));
        let cs = decode_option_area(&bytes).unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].br.len(), 1);
        assert!(decode_option_area(&[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_inputs_give_typed_errors() {
        use Dhcpv6Error::*;
        let ex1 = hex(EX1_HEX);
        // Truncated anywhere → an error, never a panic.
        for cut in 1..ex1.len() {
            assert!(decode_option_area(&ex1[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(
            decode_option_area(&hex("005e")),
            Err(Truncated {
                code: 0,
                field: "option-len",
                need: 2,
                have: 0
            })
        );
        assert_eq!(
            decode_option_area(&hex("005e 0010 0000")),
            Err(Truncated {
                code: 94,
                field: "option value",
                need: 16,
                have: 2
            })
        );
        // PORTPARAMS of length 3 (the nibble-packed non-RFC encoding).
        assert_eq!(
            PortParams::decode(&hex("48 00 00")),
            Err(BadLength {
                code: 93,
                len: 3,
                expected: "4"
            })
        );
        assert!(matches!(
            PortParams::decode(&hex("10 00 0000")),
            Err(BadValue {
                field: "offset",
                value: 16,
                ..
            })
        ));
        assert!(matches!(
            PortParams::decode(&hex("06 0b 0000")),
            Err(BadValue {
                field: "PSID-len",
                value: 11,
                ..
            })
        ));
        // S46_RULE with ea-len 49, prefix4-len 33, prefix6-len 129, short prefix.
        assert!(matches!(
            S46Rule::decode(&hex("00 31 18 c0000200 28 20010db800")),
            Err(BadValue {
                field: "ea-len",
                value: 49,
                ..
            })
        ));
        assert!(matches!(
            S46Rule::decode(&hex("00 10 21 c0000200 28 20010db800")),
            Err(BadValue {
                field: "prefix4-len",
                value: 33,
                ..
            })
        ));
        assert!(matches!(
            S46Rule::decode(&hex("00 10 18 c0000200 81")),
            Err(BadValue {
                field: "prefix6-len",
                value: 129,
                ..
            })
        ));
        assert_eq!(
            S46Rule::decode(&hex("00 10 18 c0000200 28 2001")),
            Err(Truncated {
                code: 89,
                field: "ipv6-prefix",
                need: 5,
                have: 2
            })
        );
        // BR of the wrong length.
        assert_eq!(
            MapeContainer::decode(&hex("00590008 00 00 20 c0000212 00 005a0004 20010db8")),
            Err(BadLength {
                code: 90,
                len: 4,
                expected: "16"
            })
        );
        // Container without BR / without rule.
        assert_eq!(
            MapeContainer::decode(&hex("00590008 00 00 20 c0000212 00")),
            Err(Missing { code: 90 })
        );
        assert_eq!(
            MapeContainer::decode(&hex("005a0010 20010db8ffff00000000000000000001")),
            Err(Missing { code: 89 })
        );
        // DMR inside a MAP-E container (RFC 7598 §5: MAP-T only).
        assert_eq!(
            MapeContainer::decode(&hex("005b0002 2000 00590008 00 00 20 c0000212 00")),
            Err(NotPermitted { code: 91 })
        );
        // A decodable rule that is not a possible MAP rule: o − p = 24 > 16.
        let c = MapeContainer::decode(&hex(
            "00590009 00 30 08 0a000000 08 20 005a0010 20010db8ffff00000000000000000001",
        ))
        .unwrap();
        assert!(matches!(
            c.to_domain(IidFormat::Rfc7597),
            Err(Rule { index: 0, .. })
        ));
        // Error messages name option, field and value.
        let e = S46Rule::decode(&hex("00 31 18 c0000200 28 20010db800")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option 89 (S46_RULE): ea-len 49 is invalid: must be 0-48"
        );
    }

    #[test]
    fn lenient_decoding_skips_bad_containers() {
        let mut bytes = hex("005e0004 005b0000");
        bytes.extend(hex(EX1_HEX));
        let (ok, errs) = decode_option_area_lenient(&bytes);
        assert_eq!(ok.len(), 1);
        assert_eq!(errs, vec![Dhcpv6Error::NotPermitted { code: 91 }]);
    }

    fn arb_pp() -> impl Strategy<Value = PortParams> {
        (0u8..=15)
            .prop_flat_map(|a| (Just(a), 0..=(16 - a)))
            .prop_flat_map(|(a, k)| {
                let max = if k == 0 { 0 } else { ((1u32 << k) - 1) as u16 };
                (Just(a), Just(k), 0..=max)
            })
            .prop_map(|(offset, psid_len, psid)| PortParams {
                offset,
                psid_len,
                psid,
            })
    }

    fn arb_container() -> impl Strategy<Value = MapeContainer> {
        let rule = (
            any::<bool>(),
            0u8..=48,
            0u8..=32,
            any::<u32>(),
            0u8..=128,
            any::<u128>(),
            proptest::option::of(arb_pp()),
        )
            .prop_map(|(fmr, ea_len, p4, v4, p6, v6, port_params)| S46Rule {
                fmr,
                ea_len,
                ipv4_prefix: Ipv4Net::new(Ipv4Addr::from(v4), p4).unwrap(),
                ipv6_prefix: Ipv6Net::new(Ipv6Addr::from(v6), p6).unwrap(),
                port_params,
            });
        (
            proptest::collection::vec(rule, 1..4),
            proptest::collection::vec(any::<u128>().prop_map(Ipv6Addr::from), 1..3),
            proptest::option::of(arb_pp()),
        )
            .prop_map(|(rules, br, port_params)| MapeContainer {
                rules,
                br,
                port_params,
            })
    }

    proptest! {
        /// Container round trip: emit → parse gives the same model, and parse → emit →
        /// parse is stable.
        #[test]
        fn container_round_trip(cs in proptest::collection::vec(arb_container(), 0..3)) {
            let bytes = encode_option_area(&cs).unwrap();
            let back = decode_option_area(&bytes).unwrap();
            prop_assert_eq!(&back, &cs);
            prop_assert_eq!(encode_option_area(&back).unwrap(), bytes);
        }

        /// Arbitrary bytes: never panics; what decodes re-encodes to something that decodes
        /// the same.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(cs) = decode_option_area(&bytes) {
                let again = decode_option_area(&encode_option_area(&cs).unwrap()).unwrap();
                prop_assert_eq!(again, cs);
            }
            let _ = decode_option_area_lenient(&bytes);
        }
    }
}
