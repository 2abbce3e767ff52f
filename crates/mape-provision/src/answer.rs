//! The provisioning server's answer (HB46PP §3.4): the JSON as typed serde structs
//! ([`Answer`]), validated into an [`Offer`] whose MAP-E part is a `mape_rules`
//! [`MapDomain`], and resolved for an End-user prefix into the CE's parameters.

use std::fmt;
use std::net::Ipv6Addr;

use mape_rules::{
    IidFormat, Ipv4Net, Ipv6Net, MapDomain, MapError, Provisioned, Rule, RuleError, RuleSpec,
};
use serde::{Deserialize, Serialize};

/// §3.4 `ttl`: at most 604 800 s (7 days) (MUST).
pub const MAX_TTL: u32 = 604_800;
/// §3.4 `map_e.rules`: a CE accepts 256 rules (MUST); more are refused.
pub const MAX_RULES: usize = 256;
/// §3.4: string values are at most 256 bytes including their two quotes.
pub const MAX_STRING: usize = 254;

/// The answer as sent (§3.4). Unknown keys are ignored (§3.4 MAY); the other
/// technologies' objects are not read, only named in `order`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Answer {
    /// VNE (or ISP) name.
    pub enabler_name: Option<String>,
    /// The VNE's service name.
    pub service_name: Option<String>,
    /// ISP service name (optional).
    pub isp_name: Option<String>,
    /// Seconds the data is valid.
    pub ttl: Option<u64>,
    /// The server's token for this CE: 64 lowercase hex digits (optional).
    pub token: Option<String>,
    /// Result of `user`/`pass` authentication (optional).
    pub auth: Option<String>,
    /// Technologies by preference; `[]` means nothing is offered (§3.3).
    pub order: Option<Vec<String>>,
    /// MAP-E parameters (optional).
    pub map_e: Option<MapEAnswer>,
}

/// §3.4 `map_e`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MapEAnswer {
    /// 0 or absent: draft-ietf-softwire-map-03; 1: RFC 7597.
    pub version: Option<u64>,
    /// 0/false or absent: hub-and-spoke; 1/true: mesh.
    pub mesh: Option<Flag>,
    /// The BR's IPv6 address.
    pub br: Option<String>,
    /// The rules (FMRs; the one matching the CE's prefix is its BMR).
    #[serde(default)]
    pub rules: Vec<RuleAnswer>,
}

/// A 0/1 flag that servers send as a number (the text) or a boolean (the example).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    /// `true` / `false`.
    Bool(bool),
    /// `1` / `0`.
    Number(u64),
}

/// §3.4 `map_e.rules[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuleAnswer {
    /// Rule IPv6 prefix.
    pub ipv6: String,
    /// Rule IPv4 prefix.
    pub ipv4: String,
    /// EA-bits length.
    pub ea_length: u8,
    /// PSID offset.
    pub psid_offset: u8,
}

/// A technology named in `order` (§3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Technology {
    /// `map_e`, the one mape runs.
    MapE,
    /// `map_t`.
    MapT,
    /// `dslite`.
    Dslite,
    /// `lw4o6`.
    Lw4o6,
    /// `464xlat`.
    Xlat464,
    /// `ipip`.
    Ipip,
    /// A name the spec does not define.
    Other(String),
}

impl Technology {
    /// The name used in `order` and `capability`.
    pub fn as_str(&self) -> &str {
        match self {
            Technology::MapE => "map_e",
            Technology::MapT => "map_t",
            Technology::Dslite => "dslite",
            Technology::Lw4o6 => "lw4o6",
            Technology::Xlat464 => "464xlat",
            Technology::Ipip => "ipip",
            Technology::Other(s) => s,
        }
    }
}

impl From<String> for Technology {
    fn from(s: String) -> Self {
        match s.as_str() {
            "map_e" => Technology::MapE,
            "map_t" => Technology::MapT,
            "dslite" => Technology::Dslite,
            "lw4o6" => Technology::Lw4o6,
            "464xlat" => Technology::Xlat464,
            "ipip" => Technology::Ipip,
            _ => Technology::Other(s),
        }
    }
}

impl From<Technology> for String {
    fn from(t: Technology) -> Self {
        t.as_str().to_owned()
    }
}

impl fmt::Display for Technology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// §3.4 `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// `req`: sending user/pass may give more.
    Req,
    /// `bad`: authentication failed.
    Bad,
    /// `ok`: authentication succeeded.
    Ok,
}

/// A validated answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// VNE (or ISP) name.
    pub enabler_name: Option<String>,
    /// Service name.
    pub service_name: Option<String>,
    /// ISP name.
    pub isp_name: Option<String>,
    /// Validity in seconds (≤ [`MAX_TTL`]); `None`: the server gave none.
    pub ttl: Option<u32>,
    /// The token to send next time (only when it has the §3.4 form).
    pub token: Option<String>,
    /// Authentication result.
    pub auth: Option<Auth>,
    /// Technologies by preference.
    pub order: Vec<Technology>,
    /// The MAP-E part, when the answer has one and `order` is not empty.
    pub map_e: Option<MapEOffer>,
}

/// The MAP-E part of an offer, as a MAP domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEOffer {
    /// From `version`.
    pub iid_format: IidFormat,
    /// Mesh mode: every rule is also an FMR (RFC 7597 §5.3).
    pub mesh: bool,
    /// The domain: the rules, the BR and the IID layout.
    pub domain: MapDomain,
}

/// Why an answer is unusable: each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not JSON, or a field of the wrong type.
    #[error("not an HB46PP answer: {0}")]
    Json(String),
    /// `order` is missing.
    #[error("no \"order\" in the answer")]
    NoOrder,
    /// `ttl` above 7 days.
    #[error("ttl {0} exceeds 604800 s (7 days)")]
    Ttl(u64),
    /// A string longer than the spec allows.
    #[error("{0} is longer than 256 bytes")]
    TooLong(&'static str),
    /// `auth` has an unknown value.
    #[error("auth {0:?} is none of req, bad, ok")]
    Auth(String),
    /// `order` names map_e but there is no `map_e` object.
    #[error("order names map_e but the answer has no map_e object")]
    NoMapE,
    /// `map_e.version` is neither 0 nor 1.
    #[error("map_e.version {0} is neither 0 (draft-03) nor 1 (RFC 7597)")]
    Version(u64),
    /// `map_e.mesh` is neither 0 nor 1.
    #[error("map_e.mesh {0} is neither 0 nor 1")]
    Mesh(u64),
    /// `map_e.br` is missing or not an IPv6 address.
    #[error("map_e.br {0:?} is not an IPv6 address")]
    Br(String),
    /// No rules.
    #[error("map_e.rules is empty")]
    NoRules,
    /// More than [`MAX_RULES`] rules.
    #[error("map_e.rules has {0} rules (at most 256)")]
    TooManyRules(usize),
    /// A rule prefix does not parse.
    #[error("map_e.rules[{index}].{field} {value:?} is not a prefix")]
    Prefix {
        /// The rule's index.
        index: usize,
        /// `ipv6` or `ipv4`.
        field: &'static str,
        /// The text.
        value: String,
    },
    /// A rule is impossible (RFC 7597 §5 constraints).
    #[error("map_e.rules[{index}]: {source}")]
    Rule {
        /// The rule's index.
        index: usize,
        /// Why.
        source: RuleError,
    },
}

/// Why an offer gives no parameters for an End-user prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The answer offers no MAP-E.
    #[error("the answer offers no map_e")]
    NoMapE,
    /// No rule covers the prefix (RFC 7597 §5: the BMR is the longest match).
    #[error("no map_e rule covers {0}")]
    NotCovered(Ipv6Net),
    /// The BMR does not fit the prefix.
    #[error("prefix {0}")]
    Map(#[from] MapError),
}

fn bounded(field: &'static str, v: Option<String>) -> Result<Option<String>, AnswerError> {
    match v {
        Some(s) if s.len() > MAX_STRING => Err(AnswerError::TooLong(field)),
        v => Ok(v),
    }
}

/// §3.4 `token`: 64 lowercase hex digits (a 256-bit number).
fn token_ok(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses and validates an answer body.
pub fn parse(body: &[u8]) -> Result<Offer, AnswerError> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| AnswerError::Json(e.to_string()))?;
    Offer::try_from(a)
}

impl TryFrom<Answer> for Offer {
    type Error = AnswerError;

    fn try_from(a: Answer) -> Result<Self, AnswerError> {
        let order: Vec<Technology> = a
            .order
            .ok_or(AnswerError::NoOrder)?
            .into_iter()
            .map(|s| bounded("order[]", Some(s)).map(|s| Technology::from(s.unwrap_or_default())))
            .collect::<Result<_, _>>()?;
        let ttl = match a.ttl {
            Some(t) if t > u64::from(MAX_TTL) => return Err(AnswerError::Ttl(t)),
            Some(t) => u32::try_from(t).ok(),
            None => None,
        };
        let auth = match a.auth.as_deref() {
            None | Some("") => None,
            Some("req") => Some(Auth::Req),
            Some("bad") => Some(Auth::Bad),
            Some("ok") => Some(Auth::Ok),
            Some(other) => return Err(AnswerError::Auth(bounded_echo(other))),
        };
        let map_e = match a.map_e {
            Some(m) => Some(map_e(m)?),
            None if order.contains(&Technology::MapE) => return Err(AnswerError::NoMapE),
            None => None,
        };
        Ok(Offer {
            enabler_name: bounded("enabler_name", a.enabler_name)?,
            service_name: bounded("service_name", a.service_name)?,
            isp_name: bounded("isp_name", a.isp_name)?,
            ttl,
            // A token of the wrong form is not echoed back (§3.3 `token` is a MAY).
            token: bounded("token", a.token)?.filter(|t| token_ok(t)),
            auth,
            map_e: if order.is_empty() { None } else { map_e },
            order,
        })
    }
}

/// Server text shown in an error, cut to a readable length.
fn bounded_echo(s: &str) -> String {
    s.chars().take(64).collect()
}

fn map_e(m: MapEAnswer) -> Result<MapEOffer, AnswerError> {
    let iid_format = match m.version.unwrap_or(0) {
        0 => IidFormat::Draft03,
        1 => IidFormat::Rfc7597,
        v => return Err(AnswerError::Version(v)),
    };
    let mesh = match m.mesh {
        None | Some(Flag::Bool(false)) | Some(Flag::Number(0)) => false,
        Some(Flag::Bool(true)) | Some(Flag::Number(1)) => true,
        Some(Flag::Number(n)) => return Err(AnswerError::Mesh(n)),
    };
    let br_text = m.br.unwrap_or_default();
    let br: Ipv6Addr = br_text
        .parse()
        .map_err(|_| AnswerError::Br(bounded_echo(&br_text)))?;
    if m.rules.is_empty() {
        return Err(AnswerError::NoRules);
    }
    if m.rules.len() > MAX_RULES {
        return Err(AnswerError::TooManyRules(m.rules.len()));
    }
    let rules = m
        .rules
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let prefix_err = |field, value: &str| AnswerError::Prefix {
                index,
                field,
                value: bounded_echo(value),
            };
            let v6: Ipv6Net = r.ipv6.parse().map_err(|_| prefix_err("ipv6", &r.ipv6))?;
            let v4: Ipv4Net = r.ipv4.parse().map_err(|_| prefix_err("ipv4", &r.ipv4))?;
            let mut spec = RuleSpec::new(v6, v4, r.ea_length);
            spec.psid_offset = r.psid_offset;
            // Hub-and-spoke: everything goes to the BR; mesh: rules are FMRs too
            // (RFC 7597 §5.3).
            spec.forwarding = mesh;
            Rule::new(spec).map_err(|source| AnswerError::Rule { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MapEOffer {
        iid_format,
        mesh,
        domain: MapDomain::new(rules, vec![br], iid_format),
    })
}

impl Offer {
    /// The technologies offered in `order` that mape does not run (all but `map_e`).
    pub fn unsupported(&self) -> Vec<&Technology> {
        self.order
            .iter()
            .filter(|t| **t != Technology::MapE)
            .collect()
    }

    /// The CE's parameters for `end_user` (delegated prefix or /128 address): the BMR is
    /// the rule whose IPv6 prefix is the longest match (RFC 7597 §5).
    pub fn provision(&self, end_user: &Ipv6Net) -> Result<Provisioned, ResolveError> {
        let m = self.map_e.as_ref().ok_or(ResolveError::NoMapE)?;
        let bmr = *m
            .domain
            .bmr(end_user)
            .ok_or(ResolveError::NotCovered(*end_user))?;
        let mapping = bmr.map_prefix(end_user, m.iid_format)?;
        Ok(Provisioned {
            bmr,
            domain: m.domain.clone(),
            mapping,
            profile: None,
            origin: "hb46pp".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §3.4's example answer, verbatim.
    pub(crate) const SPEC_EXAMPLE: &str = r#"{
      "enabler_name": "A VNE", "service_name": "Highspeed 4over6", "isp_name": "ISP-A",
      "ttl": 86400,
      "token": "640756965820d3b9025b6941f9590af6802830ba58663fe8f043dc92b576f17a",
      "auth": "ok", "order": [ "464xlat", "map_e", "dslite" ],
      "map_e": { "version": 0, "mesh": true, "br": "2001:db8:1::1",
        "rules": [ { "ipv6": "2001:db8:1:2000::/52", "ipv4": "203.0.113.0/24",
                     "ea_length": 12, "psid_offset": 4 } ] },
      "dslite": { "aftr": "aftr.example.net" },
      "lw4o6": { "lwaftr": "lwaftr.example.net", "ipv6": "2001:db8:3:100::/56",
                 "ipv4": "203.0.113.16", "psid": 3, "psid_length": 8, "psid_offset": 6 },
      "map_t": { "dmr": "2001:db8:5::/64", "rules": [ { "ipv6": "2001:db8:5:100::/56",
                 "ipv4": "203.0.113.32/28", "ea_length": 8, "psid_offset": 4 } ] },
      "464xlat": { "nat64prefix": "2001:db8:6::/96" },
      "ipip": [ { "ipv6_local": "2001:db8:7:100::7", "ipv6_remote": "2001:db8:7::1",
                  "ipv4": "203.0.113.0/29" } ]
    }"#;

    /// RFC 7597 Appendix A example 1 as an HB46PP answer.
    fn rfc_example_1(version: u8) -> String {
        format!(
            r#"{{"ttl": 3600, "order": ["map_e"], "map_e": {{"version": {version},
               "br": "2001:db8:ffff::1", "rules": [{{"ipv6": "2001:db8::/40",
               "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 6}}]}}}}"#
        )
    }

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn spec_example_parses_and_resolves() {
        let o = parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(o.enabler_name.as_deref(), Some("A VNE"));
        assert_eq!(o.service_name.as_deref(), Some("Highspeed 4over6"));
        assert_eq!(o.ttl, Some(86400));
        assert_eq!(o.auth, Some(Auth::Ok));
        assert_eq!(o.token.as_deref().map(str::len), Some(64));
        assert_eq!(o.unsupported(), [&Technology::Xlat464, &Technology::Dslite]);
        let m = o.map_e.as_ref().unwrap();
        assert!(m.mesh);
        assert_eq!(m.iid_format, IidFormat::Draft03);
        assert!(m.domain.rules()[0].is_fmr());
        // 2001:db8:1:2000::/52 + 12 EA bits = /64; the /64 2001:db8:1:2abc::/64 carries
        // EA bits 0xabc: IPv4 suffix 0xab (8 bits of the /24), PSID 0xc (4 bits), offset 4
        // (RFC 7597 §5.1: ports are [a bits][PSID][m bits], m = 16 - 4 - 4 = 8).
        let p = o.provision(&net("2001:db8:1:2abc::/64")).unwrap();
        assert_eq!(p.mapping.share.ipv4.to_string(), "203.0.113.171/32");
        assert_eq!(p.mapping.share.psid, Some(0xc));
        // 15 blocks (a = 1..15) of 256 ports: 3840.
        assert_eq!(p.mapping.share.port_set.count(), 3840);
        let first = p.mapping.share.port_set.ranges().next().unwrap();
        assert_eq!((first.start, first.end), (0x1c00, 0x1cff));
        // draft-03 IID: 8 bits 0, IPv4, PSID in 16 bits, 8 bits 0.
        assert_eq!(
            p.mapping.ce_ipv6.to_string(),
            "2001:db8:1:2abc:cb:71:ab00:c00"
        );
        assert_eq!(p.domain.br()[0].to_string(), "2001:db8:1::1");
        assert_eq!(p.origin, "hb46pp");
    }

    #[test]
    fn version_selects_the_interface_id() {
        // RFC 7597 Appendix A, example 1: 2001:db8:12:3400::/56 → 192.0.2.18, PSID 0x34.
        let v1 = parse(rfc_example_1(1).as_bytes()).unwrap();
        let p = v1.provision(&net("2001:db8:12:3400::/56")).unwrap();
        assert_eq!(
            p.mapping.ce_ipv6.to_string(),
            "2001:db8:12:3400:0:c000:212:34"
        );
        assert_eq!(p.mapping.share.port_set.count(), 252);
        assert!(!p.bmr.is_fmr());
        let v0 = parse(rfc_example_1(0).as_bytes()).unwrap();
        let p = v0.provision(&net("2001:db8:12:3400::/56")).unwrap();
        assert_eq!(
            p.mapping.ce_ipv6.to_string(),
            "2001:db8:12:3400:c0:2:1200:3400"
        );
        let absent = rfc_example_1(0).replace("\"version\": 0,", "");
        assert_eq!(parse(absent.as_bytes()).unwrap(), v0);
        assert_eq!(
            parse(rfc_example_1(2).as_bytes()),
            Err(AnswerError::Version(2))
        );
    }

    #[test]
    fn the_longest_rule_is_the_bmr() {
        let rules: Vec<String> = (0..256)
            .map(|i| {
                format!(
                    r#"{{"ipv6": "2001:db8:{i:x}00::/40", "ipv4": "198.51.{i}.0/24",
                        "ea_length": 16, "psid_offset": 6}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"order": ["map_e"], "map_e": {{"version": 1, "mesh": 1,
                "br": "2001:db8:ffff::1", "rules": [{}]}}}}"#,
            rules.join(",")
        );
        let o = parse(body.as_bytes()).unwrap();
        assert_eq!(o.ttl, None);
        let m = o.map_e.as_ref().unwrap();
        assert_eq!(m.domain.rules().len(), 256);
        let p = o.provision(&net("2001:db8:7a12:3400::/56")).unwrap();
        assert_eq!(p.bmr.ipv4_prefix().to_string(), "198.51.122.0/24");
        assert_eq!(p.mapping.share.ipv4.to_string(), "198.51.122.18/32");
        assert_eq!(
            o.provision(&net("2001:db9::/56")),
            Err(ResolveError::NotCovered(net("2001:db9::/56")))
        );
        let too_many = body.replace(
            "\"rules\": [",
            "\"rules\": [{\"ipv6\": \"2001:db8::/40\", \"ipv4\": \"192.0.2.0/24\", \"ea_length\": 16, \"psid_offset\": 6},",
        );
        assert_eq!(
            parse(too_many.as_bytes()),
            Err(AnswerError::TooManyRules(257))
        );
    }

    #[test]
    fn nothing_offered_and_unsupported_only() {
        let o = parse(br#"{"order": []}"#).unwrap();
        assert!(o.order.is_empty() && o.map_e.is_none());
        // `order: []` wins over a map_e object (§3.3: nothing is offered).
        let o = parse(rfc_example_1(1).replace(r#"["map_e"]"#, "[]").as_bytes()).unwrap();
        assert!(o.map_e.is_none());
        let o = parse(
            br#"{"order": ["dslite", "lw4o6", "map_t", "464xlat", "ipip", "x"],
                          "dslite": {"aftr": "aftr.example"}}"#,
        )
        .unwrap();
        assert!(o.map_e.is_none());
        let names: Vec<&str> = o.unsupported().iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["dslite", "lw4o6", "map_t", "464xlat", "ipip", "x"]);
        assert_eq!(
            o.provision(&net("2001:db8::/56")),
            Err(ResolveError::NoMapE)
        );
    }

    #[test]
    fn bad_answers_are_typed_errors() {
        type Check = fn(&AnswerError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, AnswerError::Json(_))),
            ("[]", |e| matches!(e, AnswerError::Json(_))),
            (r#"{"order": "map_e"}"#, |e| {
                matches!(e, AnswerError::Json(_))
            }),
            (r#"{"ttl": -1, "order": []}"#, |e| {
                matches!(e, AnswerError::Json(_))
            }),
            (r#"{"ttl": 604801, "order": []}"#, |e| {
                *e == AnswerError::Ttl(604801)
            }),
            ("{}", |e| *e == AnswerError::NoOrder),
            (r#"{"order": ["map_e"]}"#, |e| *e == AnswerError::NoMapE),
            (r#"{"order": [], "auth": "maybe"}"#, |e| {
                matches!(e, AnswerError::Auth(_))
            }),
            (
                r#"{"order": ["map_e"], "map_e": {"br": "x", "rules": []}}"#,
                |e| matches!(e, AnswerError::Br(_)),
            ),
            (
                r#"{"order": ["map_e"], "map_e": {"br": "2001:db8::1"}}"#,
                |e| *e == AnswerError::NoRules,
            ),
            (
                r#"{"order": ["map_e"], "map_e": {"br": "2001:db8::1", "mesh": 2,
                 "rules": []}}"#,
                |e| *e == AnswerError::Mesh(2),
            ),
            (
                r#"{"order": ["map_e"], "map_e": {"br": "2001:db8::1", "rules": [
                 {"ipv6": "2001:db8::/40", "ipv4": "192.0.2.0/33", "ea_length": 16,
                  "psid_offset": 6}]}}"#,
                |e| {
                    matches!(
                        e,
                        AnswerError::Prefix {
                            index: 0,
                            field: "ipv4",
                            ..
                        }
                    )
                },
            ),
            (
                r#"{"order": ["map_e"], "map_e": {"br": "2001:db8::1", "rules": [
                 {"ipv6": "2001:db8::/40", "ipv4": "192.0.2.0/24", "ea_length": 99,
                  "psid_offset": 6}]}}"#,
                |e| matches!(e, AnswerError::Rule { index: 0, .. }),
            ),
        ];
        for (body, ok) in cases {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(ok(&e), "{body}: {e:?}");
            assert!(!e.to_string().is_empty());
        }
        let long = format!(r#"{{"order": [], "enabler_name": "{}"}}"#, "x".repeat(255));
        assert_eq!(
            parse(long.as_bytes()),
            Err(AnswerError::TooLong("enabler_name"))
        );
        let fits = format!(r#"{{"order": [], "enabler_name": "{}"}}"#, "x".repeat(254));
        assert!(parse(fits.as_bytes()).is_ok());
        // A token of the wrong form is dropped, not an error.
        let o = parse(br#"{"order": [], "token": "ABC"}"#).unwrap();
        assert_eq!(o.token, None);
    }
}
