//! ISP profiles: MAP-E rule tables as data (TOML), built in and loadable from a directory.
//!
//! The format is documented in the comment block at the top of `profiles/v6plus.toml`.
//! A profile carries no RFC 7598 options: the user's End-user prefix selects the rule by
//! longest match in the profile's table.

use core::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::domain::{longest_v6, MapDomain};
use crate::prefix::{Ipv4Net, Ipv6Net};
use crate::rule::{CeMapping, IidFormat, MapError, Rule, RuleError, RuleSpec};

/// Default directory for user profiles.
pub const DEFAULT_PROFILE_DIR: &str = "/etc/mape/profiles";

/// The profiles shipped with `mape`, as `(file name, TOML text)`.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("v6plus.toml", include_str!("../profiles/v6plus.toml")),
    ("biglobe.toml", include_str!("../profiles/biglobe.toml")),
    ("ocn.toml", include_str!("../profiles/ocn.toml")),
    (
        "rfc7597-example.toml",
        include_str!("../profiles/rfc7597-example.toml"),
    ),
];

/// Where a value comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Published by the ISP or a CPE vendor.
    VendorDocumented,
    /// Measured and published by users (fc2 calculator tables, OpenWrt scripts).
    #[default]
    CommunityMeasured,
    /// An example from an RFC (documentation addresses).
    RfcExample,
    /// Written by the local administrator.
    User,
}

impl Source {
    /// The name used in the TOML files.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::VendorDocumented => "vendor-documented",
            Source::CommunityMeasured => "community-measured",
            Source::RfcExample => "rfc-example",
            Source::User => "user",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule of a profile's table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRule {
    /// Rule IPv6 prefix.
    pub ipv6_prefix: Ipv6Net,
    /// Rule IPv4 prefix.
    pub ipv4_prefix: Ipv4Net,
    /// EA-bits length `o`.
    pub ea_len: u8,
    /// Overrides the profile's PSID offset.
    #[serde(default)]
    pub psid_offset: Option<u8>,
    /// Overrides the profile's PSID length.
    #[serde(default)]
    pub psid_len: Option<u8>,
    /// BR address(es) for CEs under this rule (overrides the profile's `br`).
    #[serde(default)]
    pub br: Option<Vec<Ipv6Addr>>,
    /// Where this rule comes from (default: the profile's `source`).
    #[serde(default)]
    pub source: Option<Source>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// An ISP profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name used with `--profile`.
    pub name: String,
    /// One line for `--list-profiles`.
    #[serde(default)]
    pub description: String,
    /// CE interface identifier layout.
    pub iid_format: IidFormat,
    /// PSID offset `a`.
    pub psid_offset: u8,
    /// Explicit PSID length `k` (checked against `o − p` of each rule).
    #[serde(default)]
    pub psid_len: Option<u8>,
    /// Default BR address(es).
    #[serde(default)]
    pub br: Vec<Ipv6Addr>,
    /// Extra addresses accepted as BR sources (RFC 7597 §8.1 exemption).
    #[serde(default)]
    pub br_sources: Vec<Ipv6Addr>,
    /// Whether the rules are Forwarding Mapping Rules (mesh, CE to CE direct). Default
    /// false: hub and spoke, everything via the BR.
    #[serde(default)]
    pub fmr: bool,
    /// Tunnel MTU customary for the service (informational).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Where the values come from.
    #[serde(default)]
    pub source: Source,
    /// Whether the values were checked against the operator's own documents.
    #[serde(default)]
    pub verified: bool,
    /// Free text: caveats, references.
    #[serde(default)]
    pub notes: String,
    /// The rule table.
    #[serde(rename = "rule", default)]
    pub rules: Vec<ProfileRule>,
}

/// Why a profile could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// TOML syntax or schema error.
    #[error("profile {origin}: {message}")]
    Parse {
        /// File name.
        origin: String,
        /// Parser message (one line).
        message: String,
    },
    /// A profile directory or file could not be read.
    #[error("profile directory {path}: {message}")]
    Io {
        /// Path.
        path: String,
        /// OS message.
        message: String,
    },
    /// A rule of the table is impossible.
    #[error("profile {profile}: rule #{index} ({ipv6_prefix}): {source}")]
    Rule {
        /// Profile name.
        profile: String,
        /// Rule position, from 0.
        index: usize,
        /// Its IPv6 prefix.
        ipv6_prefix: Ipv6Net,
        /// Why.
        source: RuleError,
    },
    /// A profile with no rule, or a rule with no BR.
    #[error("profile {profile}: {what}")]
    Incomplete {
        /// Profile name.
        profile: String,
        /// What is missing.
        what: &'static str,
    },
    /// No profile of that name.
    #[error("unknown profile {name:?} (known: {known})")]
    Unknown {
        /// Name asked for.
        name: String,
        /// Known names, comma separated.
        known: String,
    },
    /// No rule of the profile covers the prefix.
    #[error("{prefix} is not covered by any rule of profile {profile} ({rules})")]
    NotCovered {
        /// Profile name.
        profile: String,
        /// The End-user prefix.
        prefix: Ipv6Net,
        /// The rule prefixes, comma separated.
        rules: String,
    },
    /// The selected rule does not map the prefix.
    #[error("profile {profile}: {source}")]
    Map {
        /// Profile name.
        profile: String,
        /// Why.
        source: MapError,
    },
}

/// The result of selecting a profile rule for an End-user prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMatch {
    /// Index of the selected rule in [`Profile::rules`].
    pub index: usize,
    /// The selected rule (the BMR).
    pub rule: Rule,
    /// The domain: every rule of the profile, the BR of the selected rule.
    pub domain: MapDomain,
    /// The CE mapping.
    pub mapping: CeMapping,
    /// Where the selected rule's values come from.
    pub source: Source,
}

impl Profile {
    /// Parses and validates a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            origin: origin.to_owned(),
            message: e.message().replace('\n', " "),
        })?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        if self.rules.is_empty() {
            return Err(ProfileError::Incomplete {
                profile: self.name.clone(),
                what: "no [[rule]]",
            });
        }
        for i in 0..self.rules.len() {
            self.rule(i)?;
            if self.br_of(i).is_empty() {
                return Err(ProfileError::Incomplete {
                    profile: self.name.clone(),
                    what: "a rule without BR: set br in the profile or the rule",
                });
            }
        }
        Ok(())
    }

    /// The spec of rule `i` with the profile defaults applied.
    pub fn rule_spec(&self, i: usize) -> Option<RuleSpec> {
        let r = self.rules.get(i)?;
        let mut s = RuleSpec::new(r.ipv6_prefix, r.ipv4_prefix, r.ea_len);
        s.psid_offset = r.psid_offset.unwrap_or(self.psid_offset);
        s.psid_len = r.psid_len.or(self.psid_len);
        s.forwarding = self.fmr;
        Some(s)
    }

    /// Rule `i`, validated.
    pub fn rule(&self, i: usize) -> Result<Rule, ProfileError> {
        let spec = self.rule_spec(i).ok_or(ProfileError::Incomplete {
            profile: self.name.clone(),
            what: "no such rule",
        })?;
        Rule::new(spec).map_err(|source| ProfileError::Rule {
            profile: self.name.clone(),
            index: i,
            ipv6_prefix: spec.ipv6_prefix,
            source,
        })
    }

    /// The BR addresses for rule `i`.
    pub fn br_of(&self, i: usize) -> &[Ipv6Addr] {
        match self.rules.get(i).and_then(|r| r.br.as_deref()) {
            Some(b) if !b.is_empty() => b,
            _ => &self.br,
        }
    }

    /// The source of rule `i`'s values.
    pub fn source_of(&self, i: usize) -> Source {
        self.rules
            .get(i)
            .and_then(|r| r.source)
            .unwrap_or(self.source)
    }

    /// Selects the rule for `end_user` by longest match and maps it (RFC 7597 §5.2).
    pub fn select(&self, end_user: &Ipv6Net) -> Result<ProfileMatch, ProfileError> {
        let rules = (0..self.rules.len())
            .map(|i| self.rule(i))
            .collect::<Result<Vec<_>, _>>()?;
        let bmr = longest_v6(&rules, end_user).ok_or_else(|| ProfileError::NotCovered {
            profile: self.name.clone(),
            prefix: *end_user,
            rules: self
                .rules
                .iter()
                .map(|r| r.ipv6_prefix.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let index = rules.iter().position(|r| r == bmr).unwrap_or(0);
        let rule = *bmr;
        let mapping = rule
            .map_prefix(end_user, self.iid_format)
            .map_err(|source| ProfileError::Map {
                profile: self.name.clone(),
                source,
            })?;
        let domain = MapDomain::new(rules, self.br_of(index).to_vec(), self.iid_format)
            .with_br_sources(self.br_sources.iter().copied());
        Ok(ProfileMatch {
            index,
            rule,
            domain,
            mapping,
            source: self.source_of(index),
        })
    }
}

/// A set of named profiles: the built-in ones, possibly overridden from directories.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: Vec<Profile>,
}

impl ProfileSet {
    /// The built-in profiles.
    pub fn builtin() -> Result<Self, ProfileError> {
        let profiles = BUILTIN_PROFILES
            .iter()
            .map(|(origin, text)| Profile::from_toml(text, origin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { profiles })
    }

    /// Adds (or replaces, by name) profiles from every `*.toml` in `dir`. A missing directory
    /// adds nothing.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), ProfileError> {
        let io = |e: std::io::Error| ProfileError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(io)?;
            self.insert(Profile::from_toml(&text, &f.display().to_string())?);
        }
        Ok(())
    }

    /// Adds a profile, replacing one of the same name.
    pub fn insert(&mut self, p: Profile) {
        match self.profiles.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => self.profiles.push(p),
        }
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                known: self.names().join(", "),
            })
    }

    /// All profiles.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// Profile names.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_carry_sources() {
        let set = ProfileSet::builtin().unwrap();
        assert_eq!(
            set.names(),
            vec!["v6plus", "biglobe", "ocn", "rfc7597-example"]
        );
        for p in set.profiles() {
            assert!(!p.rules.is_empty());
            assert!(!p.description.is_empty());
        }
        let v = set.get("v6plus").unwrap();
        assert_eq!(
            (v.iid_format, v.psid_offset, v.source, v.verified),
            (IidFormat::Draft03, 4, Source::CommunityMeasured, false)
        );
    }

    /// mape-facts §4: the v6plus worked example through the profile.
    #[test]
    fn v6plus_profile_worked_example() {
        let set = ProfileSet::builtin().unwrap();
        let m = set
            .get("v6plus")
            .unwrap()
            .select(&"240b:13:1a65:a100::/56".parse().unwrap())
            .unwrap();
        assert_eq!(m.rule.ipv6_prefix().to_string(), "240b:12::/31");
        assert_eq!(m.mapping.share.ipv4.to_string(), "14.9.26.101/32");
        assert_eq!(m.mapping.share.psid, Some(161));
        assert_eq!(m.mapping.share.port_set.count(), 240);
        assert_eq!(
            m.mapping.ce_ipv6.to_string(),
            "240b:13:1a65:a100:e:91a:6500:a100"
        );
        assert_eq!(
            m.domain.br(),
            &["2404:9200:225:100::64".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn ocn_and_biglobe_shapes() {
        let set = ProfileSet::builtin().unwrap();
        let m = set
            .get("ocn")
            .unwrap()
            .select(&"2400:4050:123:4500::/56".parse().unwrap())
            .unwrap();
        assert_eq!(m.mapping.share.port_set.count(), 1008);
        assert_eq!(m.rule.psid_offset(), 6);
        let b = set.get("biglobe").unwrap();
        let m = b.select(&"2404:7a84:1:2300::/56".parse().unwrap()).unwrap();
        assert_eq!(m.mapping.share.port_set.count(), 240);
        assert_eq!(m.domain.br()[0].to_string(), "2001:260:700:1::1:276");
        let m = b.select(&"2404:7a80:1:2300::/56".parse().unwrap()).unwrap();
        assert_eq!(m.domain.br()[0].to_string(), "2001:260:700:1::1:275");
        assert!(m.domain.br_sources().len() >= 3);
    }

    #[test]
    fn errors() {
        let set = ProfileSet::builtin().unwrap();
        let e = set.get("nope").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown profile \"nope\" (known: v6plus"));
        let e = set
            .get("v6plus")
            .unwrap()
            .select(&"2001:db8::/56".parse().unwrap())
            .unwrap_err();
        assert!(matches!(e, ProfileError::NotCovered { .. }), "{e}");
        let e = set
            .get("v6plus")
            .unwrap()
            .select(&"240b:12::/48".parse().unwrap())
            .unwrap_err();
        assert!(
            matches!(
                e,
                ProfileError::Map {
                    source: MapError::PrefixTooShort { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = Profile::from_toml(
            "name = \"x\"\niid_format = \"draft03\"\npsid_offset = 4\nbogus = 1\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(matches!(e, ProfileError::Parse { .. }), "{e}");
        let bad = "name = \"x\"\niid_format = \"rfc7597\"\npsid_offset = 4\npsid_len = 7\nbr = [\"2001:db8::1\"]\n[[rule]]\nipv6_prefix = \"2001:db8::/40\"\nipv4_prefix = \"192.0.2.0/24\"\nea_len = 16\n";
        let e = Profile::from_toml(bad, "x.toml").unwrap_err();
        assert!(
            matches!(
                e,
                ProfileError::Rule {
                    source: RuleError::PsidLenMismatch { .. },
                    ..
                }
            ),
            "{e}"
        );
        let nobr = "name = \"x\"\niid_format = \"rfc7597\"\npsid_offset = 6\n[[rule]]\nipv6_prefix = \"2001:db8::/40\"\nipv4_prefix = \"192.0.2.0/24\"\nea_len = 16\n";
        assert!(matches!(
            Profile::from_toml(nobr, "x.toml"),
            Err(ProfileError::Incomplete { .. })
        ));
    }

    #[test]
    fn load_dir_overrides_builtin() {
        let dir = std::env::temp_dir().join(format!("mape-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = BUILTIN_PROFILES[3].1.replace("fmr = true", "fmr = false");
        std::fs::write(dir.join("mine.toml"), text).unwrap();
        std::fs::write(dir.join("ignored.txt"), "x").unwrap();
        let mut set = ProfileSet::builtin().unwrap();
        set.load_dir(&dir).unwrap();
        assert_eq!(set.profiles().len(), 4);
        assert!(!set.get("rfc7597-example").unwrap().fmr);
        set.load_dir(&dir.join("missing")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
