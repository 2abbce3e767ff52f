//! `[provisioning]`: where the CE's MAP rule comes from (`method`), the HB46PP client's
//! options, and the choice of source for one start ([`plan`]).
//!
//! `method` (absent: the rule source `[map]` names, as before the section existed):
//! - `static`: the explicit rule of `[map]` (`ipv6_prefix` + `ipv4_prefix` + `ea_len`);
//! - `profile`: the ISP profile `[map] profile`;
//! - `dhcpv6`: with `[map] dhcpv6_file`, the RFC 7598 options a system client's hook wrote
//!   there; without it, mape's own DHCPv6 client on `[wan] interface` (IA_PD + option 94:
//!   the delegated prefix and the S46 MAP-E rules give BMR, FMRs and BR; the lease is
//!   stored and used at restart until it is over; Renew at T1, Rebind at T2);
//! - `hb46pp`: the answer of the line's HB46PP server, fetched at start and refreshed;
//! - `auto`: a rule written in `[map]` (explicit or `dhcpv6_file`) if there is one; else
//!   HB46PP (a fresh answer, else the stored one); else `[map] profile` if set. `auto`
//!   does not run mape's DHCPv6 client (a line serves its rule by one of the two, and the
//!   DHCPv6 client holds port 546): a DHCPv6 MAP-E line sets `method = "dhcpv6"`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use mape_provision::request::Credentials;
use mape_provision::shell::ShellConfig;
use serde::Deserialize;

use crate::config::{ConfigError, MapSection};

/// `[provisioning] method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The explicit rule in `[map]`.
    Static,
    /// The profile named in `[map]`.
    Profile,
    /// RFC 7598 options (today from `[map] dhcpv6_file`).
    Dhcpv6,
    /// The HB46PP server of the line.
    Hb46pp,
    /// The documented order (module documentation).
    Auto,
}

impl Method {
    /// The name as in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Static => "static",
            Method::Profile => "profile",
            Method::Dhcpv6 => "dhcpv6",
            Method::Hb46pp => "hb46pp",
            Method::Auto => "auto",
        }
    }
}

/// Which source gave the rule in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An explicit rule.
    Static,
    /// A profile.
    Profile,
    /// RFC 7598 options.
    Dhcpv6,
    /// An HB46PP answer.
    Hb46pp,
}

impl Source {
    /// The name shown by `mape show status` and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Profile => "profile",
            Source::Dhcpv6 => "dhcpv6",
            Source::Hb46pp => "hb46pp",
        }
    }
}

/// `[provisioning]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningSection {
    /// See the module documentation.
    pub method: Option<Method>,
    /// `[provisioning.hb46pp]`.
    #[serde(default)]
    pub hb46pp: Hb46ppSection,
    /// `[provisioning.dhcpv6]`.
    #[serde(default)]
    pub dhcpv6: Dhcpv6Section,
}

/// `[provisioning.dhcpv6]`: mape's own DHCPv6 client.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dhcpv6Section {
    /// How long the start waits for the first Reply before it uses the stored lease,
    /// seconds (default 10).
    pub timeout_s: Option<u64>,
    /// What the client asks for (default `prefix_delegation`).
    #[serde(default)]
    pub mode: Dhcpv6Mode,
}

/// `[provisioning.dhcpv6] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dhcpv6Mode {
    /// Solicit for an IA_PD (RFC 8415 §18.2.1): the delegated prefix is the End-user
    /// prefix, the lease ends with its valid lifetime.
    #[default]
    PrefixDelegation,
    /// Information-request only (RFC 8415 §18.2.6): an RA-only line whose /64 is on-link
    /// and that delegates no prefix. The End-user prefix is `[map] prefix` or the WAN's
    /// global address; option 94 is refreshed at the Information Refresh Time and never
    /// expires.
    Stateless,
}

impl Dhcpv6Mode {
    /// The name in status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcpv6Mode::PrefixDelegation => "prefix_delegation",
            Dhcpv6Mode::Stateless => "stateless",
        }
    }
}

/// Default `[provisioning.dhcpv6] timeout_s`.
pub const DEFAULT_DHCPV6_TIMEOUT_S: u64 = 10;

impl Dhcpv6Section {
    /// The start's wait for the first Reply.
    pub fn timeout(&self) -> Result<Duration, ConfigError> {
        match self.timeout_s.unwrap_or(DEFAULT_DHCPV6_TIMEOUT_S) {
            t @ 1..=300 => Ok(Duration::from_secs(t)),
            t => Err(ConfigError::Value {
                key: "provisioning.dhcpv6.timeout_s",
                value: t.to_string(),
                expected: "1 to 300 seconds".into(),
            }),
        }
    }
}

/// `[provisioning.hb46pp]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Hb46ppSection {
    /// The line's resolvers (RA RDNSS / DHCPv6); empty: /etc/resolv.conf.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Trust roots (PEM) for `t=b`; empty: the Mozilla roots.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Time-out of one DNS query and of one GET, seconds (default 5).
    pub timeout_s: Option<u64>,
    /// `user` (HB46PP §3.3), with `pass`.
    pub user: Option<String>,
    /// `pass`, with `user`.
    pub pass: Option<String>,
    /// The server name the credentials are for: they are then sent only to it, over
    /// verified https (§3.3).
    pub server_name: Option<String>,
}

/// The HB46PP client's settings.
#[derive(Debug, Clone)]
pub struct Hb46ppSettings {
    /// DNS and HTTP.
    pub shell: ShellConfig,
    /// `user`/`pass`.
    pub credentials: Option<Credentials>,
}

/// Default `[provisioning.hb46pp] timeout_s`.
pub const DEFAULT_TIMEOUT_S: u64 = 5;

impl Hb46ppSection {
    /// Checks the options.
    pub fn settings(&self) -> Result<Hb46ppSettings, ConfigError> {
        let resolvers = self
            .dns
            .iter()
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| ConfigError::Value {
                    key: "provisioning.hb46pp.dns",
                    value: s.clone(),
                    expected: "an IP address of the line's resolver".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S) {
            t @ 1..=60 => Duration::from_secs(t),
            t => {
                return Err(ConfigError::Value {
                    key: "provisioning.hb46pp.timeout_s",
                    value: t.to_string(),
                    expected: "1 to 60 seconds".into(),
                })
            }
        };
        let credentials = match (&self.user, &self.pass) {
            (None, None) if self.server_name.is_none() => None,
            (Some(u), Some(p)) => Some(
                Credentials::new(u, p, self.server_name.as_deref()).map_err(|e| {
                    ConfigError::Value {
                        key: "provisioning.hb46pp.user",
                        value: u.clone(),
                        expected: e.to_string(),
                    }
                })?,
            ),
            _ => {
                return Err(ConfigError::Missing {
                    key: "provisioning.hb46pp.user/pass",
                    expected: "both user and pass (server_name only with them)",
                })
            }
        };
        Ok(Hb46ppSettings {
            shell: ShellConfig {
                resolvers,
                ca_files: self.ca_files.clone(),
                timeout,
            },
            credentials,
        })
    }
}

/// What one start uses, before the HB46PP answer (if any) is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The rule source `[map]` names (exactly one of profile, explicit, dhcpv6_file).
    Map,
    /// HB46PP; `fallback_profile`: `auto` with a `[map] profile` to use without an answer.
    Hb46pp {
        /// Whether `[map] profile` is used when there is no answer.
        fallback_profile: bool,
    },
    /// mape's own DHCPv6 client (`method = "dhcpv6"` without `dhcpv6_file`).
    Dhcpv6,
}

fn explicit(map: &MapSection) -> bool {
    map.ipv6_prefix.is_some() || map.ipv4_prefix.is_some() || map.ea_len.is_some()
}

fn refuse(method: &str, expected: &str) -> ConfigError {
    ConfigError::Value {
        key: "provisioning.method",
        value: method.into(),
        expected: expected.into(),
    }
}

/// Checks `method` against `[map]` and says what this start does.
pub fn plan(method: Option<Method>, map: &MapSection) -> Result<Plan, ConfigError> {
    let written = explicit(map) || map.dhcpv6_file.is_some();
    match method {
        None => Ok(Plan::Map),
        Some(Method::Static) if explicit(map) && map.profile.is_none() => Ok(Plan::Map),
        Some(Method::Static) => Err(refuse(
            "static",
            "[map] ipv6_prefix + ipv4_prefix + ea_len, and no profile",
        )),
        Some(Method::Profile) if map.profile.is_some() && !written => Ok(Plan::Map),
        Some(Method::Profile) => Err(refuse(
            "profile",
            "[map] profile, and no explicit rule or dhcpv6_file",
        )),
        Some(Method::Dhcpv6) if map.dhcpv6_file.is_some() => Ok(Plan::Map),
        Some(Method::Dhcpv6) if !explicit(map) && map.profile.is_none() => Ok(Plan::Dhcpv6),
        Some(Method::Dhcpv6) => Err(refuse(
            "dhcpv6",
            "no profile or explicit rule in [map]: the DHCPv6 server (or [map] dhcpv6_file) gives it",
        )),
        Some(Method::Hb46pp) if !written && map.profile.is_none() => {
            Ok(Plan::Hb46pp { fallback_profile: false })
        }
        Some(Method::Hb46pp) => Err(refuse(
            "hb46pp",
            "no rule in [map] (profile, explicit rule, dhcpv6_file): the HB46PP server gives it",
        )),
        Some(Method::Auto) if written => Ok(Plan::Map),
        Some(Method::Auto) => Ok(Plan::Hb46pp {
            fallback_profile: map.profile.is_some(),
        }),
    }
}

/// The source `[map]` names (for [`Plan::Map`]).
pub fn map_source(map: &MapSection) -> Source {
    if map.profile.is_some() {
        Source::Profile
    } else if map.dhcpv6_file.is_some() {
        Source::Dhcpv6
    } else {
        Source::Static
    }
}
