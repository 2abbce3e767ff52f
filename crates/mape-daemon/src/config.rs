//! The daemon's TOML configuration (`/etc/mape/mape.toml`, documented in
//! `dist/mape.toml`): parsing with precise errors (key, value, what is expected) and
//! resolution into the parameters the datapath needs.

mod error;
mod map;
mod mappings;
mod nat;
mod sections;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mape_nat::NatConfig;
use mape_rules::{Ipv4Net, Ipv6Net, MapDomain, Provisioned};

use crate::provisioning::settings::{map_source, plan, Hb46ppSettings, Method, Plan, Source};

use error::value_err;
pub use error::ConfigError;
pub use map::resolve_map;
use map::{ce_map, parse_v6};
use mappings::mapping_settings;
pub use mappings::{MappingSettings, MappingsSection};
pub use nat::nat_config;
pub use sections::{
    BrSection, ConfigFile, ControlSection, DatapathSection, EventsSection, FastPathMode,
    ForwardEntry, LanSection, MapAddressMode, MapSection, MetricsSection, Mode, NatSection,
    QuotaSetting, StateSection, TunSection, WanSection, WebSection, DEFAULT_FAST_PATH_ENTRIES,
    DEFAULT_PERSIST_INTERVAL_S,
};

/// Default configuration path.
pub const DEFAULT_CONFIG: &str = "/etc/mape/mape.toml";
/// Default control socket (systemd's `RuntimeDirectory=mape`, removed on every stop).
pub const DEFAULT_SOCKET: &str = "/run/mape/mape.sock";
/// Default state directory: what must survive a stop or a crash (the lock, the record of
/// what the daemon created on the host). systemd's `StateDirectory=mape`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mape";

/// The session table's write period, if kept (`[state]`): 1 s to one day.
fn persist_every(state: &StateSection) -> Result<Option<Duration>, ConfigError> {
    if !state.persist_sessions {
        return Ok(None);
    }
    match state.persist_interval_s {
        s @ 1..=86_400 => Ok(Some(Duration::from_secs(s))),
        s => Err(value_err(
            "state.persist_interval_s",
            s,
            "seconds between two writes of the session table, 1 to 86400",
        )),
    }
}

/// Where the rule in force came from and whether the daemon runs the HB46PP client.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// `[provisioning] method` as written (`None`: the source `[map]` names).
    pub method: Option<Method>,
    /// The source of the rule in force.
    pub source: Source,
    /// The HB46PP client's settings when the daemon runs it (method `hb46pp`, or `auto`
    /// without a rule written in `[map]`).
    pub hb46pp: Option<Hb46ppSettings>,
}

/// What the configuration cannot say itself: the HB46PP answer to use and the End-user
/// prefix when `[map] prefix` is not given (the WAN's global address).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The HB46PP answer (fresh or stored).
    pub hb46pp: Option<mape_provision::Offer>,
    /// The End-user prefix or the CE's /128 from the WAN.
    pub end_user: Option<Ipv6Net>,
    /// The DHCPv6 lease of mape's own client (fresh or stored).
    pub dhcpv6: Option<mape_provision::dhcpv6::Lease>,
    /// What its stateless client holds (`[provisioning.dhcpv6] mode = "stateless"`; fresh
    /// or stored).
    pub dhcpv6_info: Option<mape_provision::dhcpv6::Information>,
}

/// A checked, resolved CE configuration.
#[derive(Debug, Clone)]
pub struct CeSettings {
    /// WAN interface.
    pub wan_interface: String,
    /// How the MAP address arrives.
    pub map_address: MapAddressMode,
    /// MAP parameters.
    pub map: Provisioned,
    /// BR addresses accepted as sources (BRs plus extra).
    pub br_sources: Vec<Ipv6Addr>,
    /// LAN prefixes.
    pub lan_prefixes: Vec<Ipv4Net>,
    /// Source of the ICMP messages sent to LAN hosts.
    pub lan_address: Ipv4Addr,
    /// `lan.router_addresses` when given; `None`: this host's addresses inside the LAN
    /// prefixes, read by the pipeline.
    pub router_addresses: Option<Vec<Ipv4Addr>>,
    /// NAT engine configuration.
    pub nat: NatConfig,
    /// Known offenders: the built-in catalogue plus the user's files.
    pub signatures: std::sync::Arc<mape_nat::Catalogue>,
    /// Port mapping protocols (`[mappings]`).
    pub mappings: MappingSettings,
}

/// A checked, resolved BR configuration.
#[derive(Debug, Clone)]
pub struct BrSettings {
    /// The BR's IPv6 address.
    pub address: Ipv6Addr,
    /// Source of the ICMPv4 errors it sends.
    pub icmp_source: Ipv4Addr,
    /// The MAP domain.
    pub domain: MapDomain,
}

impl BrSettings {
    /// Every address the BR is: `[br] address` first (the outer source toward CEs,
    /// RFC 7597 §7), then the domain's other BR addresses (`[map] br`), each once. The
    /// pipeline accepts packets to all of them and the daemon routes all of them into its
    /// TUN.
    pub fn addresses(&self) -> Vec<Ipv6Addr> {
        let mut all = vec![self.address];
        for a in self.domain.br() {
            if !all.contains(a) {
                all.push(*a);
            }
        }
        all
    }
}

/// What the daemon runs.
#[derive(Debug, Clone)]
pub enum Role {
    /// CE.
    Ce(Box<CeSettings>),
    /// BR.
    Br(BrSettings),
}

/// A fully checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// CE or BR and its parameters.
    pub role: Role,
    /// TUN parameters.
    pub tun: TunSection,
    /// The kernel fast path.
    pub datapath: DatapathSection,
    /// Control socket.
    pub socket: PathBuf,
    /// State directory (`[state] dir`).
    pub state_dir: PathBuf,
    /// Period of the session table's periodic write; `None` when `[state]
    /// persist_sessions = false` (nothing is written or restored).
    pub persist_every: Option<Duration>,
    /// Metrics listen address.
    pub metrics: Option<SocketAddr>,
    /// Event hook command.
    pub events_hook: Option<PathBuf>,
    /// The LAN status page, if configured.
    pub web: Option<crate::web::WebSettings>,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// `[provisioning]`.
    pub provisioning: Provisioning,
}

impl Settings {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` (loaded from `path`, named in errors). With HB46PP, the
    /// answer is the one stored in the state directory and the End-user prefix, unless
    /// `[map] prefix` gives it, the WAN's global address (`crate::provisioning`).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_with(text, path, &crate::provisioning::host_inputs)
    }

    /// The file's sections, unchecked.
    pub fn file(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: one_line(&e.to_string()),
        })
    }

    /// [`Settings::parse`] with what HB46PP needs from `inputs` (called only when the
    /// rule comes from HB46PP).
    pub fn parse_with(
        text: &str,
        path: &Path,
        inputs: &dyn Fn(&ConfigFile) -> Inputs,
    ) -> Result<Self, ConfigError> {
        let file = Self::file(text, path)?;
        let tun = file.tun.clone();
        if !(1..=(1 << 22)).contains(&file.datapath.fast_path_entries) {
            return Err(value_err(
                "datapath.fast_path_entries",
                file.datapath.fast_path_entries,
                "a number of flows 1-4194304",
            ));
        }
        if !(576..=9000).contains(&tun.ipv4_mtu) {
            return Err(value_err(
                "tun.ipv4_mtu",
                tun.ipv4_mtu,
                "an IPv4 MTU 576-9000 (1460 on MAP-E lines)",
            ));
        }
        if !(1280..=9000).contains(&tun.ipv6_mtu) {
            return Err(value_err(
                "tun.ipv6_mtu",
                tun.ipv6_mtu,
                "an IPv6 MTU 1280-9000",
            ));
        }
        if tun.name.is_empty() || tun.name.len() > 15 {
            return Err(value_err(
                "tun.name",
                &tun.name,
                "an interface name of 1-15 characters",
            ));
        }
        if tun.queues > 256 {
            return Err(value_err(
                "tun.queues",
                tun.queues,
                "0 (one per core) to 256",
            ));
        }
        let metrics = file
            .metrics
            .listen
            .as_deref()
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    value_err(
                        "metrics.listen",
                        s,
                        "an address:port such as 127.0.0.1:9469",
                    )
                })
            })
            .transpose()?;
        let method = file.provisioning.method;
        let (role, source, hb46pp) = match file.mode.unwrap_or(Mode::Ce) {
            Mode::Ce => {
                let (ce, source, hb) = ce_settings(&file, inputs)?;
                (Role::Ce(Box::new(ce)), source, hb)
            }
            Mode::Br => {
                if plan(method, &file.map)? != Plan::Map {
                    return Err(value_err(
                        "provisioning.method",
                        "hb46pp",
                        "a rule in [map]: a BR serves the domain it is given",
                    ));
                }
                (Role::Br(br_settings(&file)?), map_source(&file.map), None)
            }
        };
        let web = web_settings(&file.web, &role)?;
        Ok(Self {
            role,
            tun,
            socket: file.control.socket.clone(),
            state_dir: file.state.dir.clone(),
            persist_every: persist_every(&file.state)?,
            datapath: file.datapath.clone(),
            metrics,
            events_hook: file.events.hook.clone(),
            web,
            path: path.to_path_buf(),
            provisioning: Provisioning {
                method,
                source,
                hb46pp,
            },
        })
    }
}

/// Checks `[web]`: the page listens on the LAN side only — an IPv4 address inside
/// `lan.prefixes` (so never the wildcard, nor a WAN address) — and has a password.
fn web_settings(
    web: &WebSection,
    role: &Role,
) -> Result<Option<crate::web::WebSettings>, ConfigError> {
    let Some(listen) = web.listen.as_deref() else {
        return Ok(None);
    };
    let addr: SocketAddrV4 = listen.parse().map_err(|_| {
        value_err(
            "web.listen",
            listen,
            "an IPv4 address of this router on the LAN and a port, such as 192.168.10.1:8080",
        )
    })?;
    let Role::Ce(ce) = role else {
        return Err(value_err(
            "web.listen",
            listen,
            "no [web] section in BR mode: the status page is the CE's and a BR has no LAN side",
        ));
    };
    let lan = ce.lan_prefixes.clone();
    if addr.ip().is_unspecified() || !lan.iter().any(|n| n.contains(*addr.ip())) {
        let prefixes: Vec<String> = lan.iter().map(ToString::to_string).collect();
        return Err(value_err(
            "web.listen",
            listen,
            format!(
                "an address on the LAN side, inside lan.prefixes ({}): the page must not answer on the WAN side",
                prefixes.join(", ")
            ),
        ));
    }
    let hash = web.password_hash.as_deref().ok_or(ConfigError::Missing {
        key: "web.password_hash",
        expected: "the hash `mape passwd` prints (the page has no open mode)",
    })?;
    crate::web::auth::check_hash(hash).map_err(|why| {
        value_err(
            "web.password_hash",
            hash,
            format!("an argon2 hash as `mape passwd` prints it ({why})"),
        )
    })?;
    Ok(Some(crate::web::WebSettings {
        listen: addr,
        password_hash: hash.to_string(),
        lan,
    }))
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ce_settings(
    file: &ConfigFile,
    inputs: &dyn Fn(&ConfigFile) -> Inputs,
) -> Result<(CeSettings, Source, Option<Hb46ppSettings>), ConfigError> {
    let wan = file.wan.as_ref().ok_or(ConfigError::Missing {
        key: "wan.interface",
        expected: "the WAN interface name (e.g. \"eth0\")",
    })?;
    let lan = file.lan.as_ref().ok_or(ConfigError::Missing {
        key: "lan.prefixes",
        expected: "the LAN IPv4 prefixes",
    })?;
    let lan_prefixes = lan
        .prefixes
        .iter()
        .map(|s| {
            s.parse::<Ipv4Net>()
                .map_err(|e| value_err("lan.prefixes", s, format!("an IPv4 prefix ({e})")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if lan_prefixes.is_empty() {
        return Err(value_err("lan.prefixes", "[]", "at least one IPv4 prefix"));
    }
    let (map, br_sources, source, hb46pp) = ce_map(file, inputs)?;
    let lan_address: Ipv4Addr = match &lan.address {
        None => map.mapping.share.ipv4.addr(),
        Some(a) => a
            .parse()
            .map_err(|_| value_err("lan.address", a, "an IPv4 address"))?,
    };
    if map.mapping.share.ipv4.len() != 32 {
        return Err(value_err(
            "map.prefix",
            file.map.prefix.as_deref().unwrap_or_default(),
            format!(
                "a prefix that gives a full IPv4 address; this rule delegates the prefix {} (no NAT44 over a prefix yet)",
                map.mapping.share.ipv4
            ),
        ));
    }
    let router_addresses = lan
        .router_addresses
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|a| {
                    a.parse::<Ipv4Addr>()
                        .map_err(|_| value_err("lan.router_addresses", a, "an IPv4 address"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let nat = nat_config(&file.nat)?;
    let dir = file
        .nat
        .signatures_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(mape_nat::signatures::DEFAULT_DIR));
    let signatures = mape_nat::Catalogue::builtin()
        .with_dir(&dir)
        .map_err(|e| value_err("nat.signatures_dir", dir.display(), e))?;
    // Validate forwards and the rest against the real port set.
    mape_nat::Nat::new(
        nat.clone(),
        map.mapping.share.ipv4.addr(),
        map.mapping.share.port_set,
    )?;
    let ce = CeSettings {
        wan_interface: wan.interface.clone(),
        map_address: wan.map_address,
        map,
        br_sources,
        lan_prefixes,
        lan_address,
        router_addresses,
        nat,
        signatures: std::sync::Arc::new(signatures),
        mappings: mapping_settings(&file.mappings)?,
    };
    Ok((ce, source, hb46pp))
}

fn br_settings(file: &ConfigFile) -> Result<BrSettings, ConfigError> {
    let br = file.br.as_ref().ok_or(ConfigError::Missing {
        key: "br.address",
        expected: "the BR's IPv6 address",
    })?;
    let address = parse_v6("br.address", &br.address)?;
    let mut map = file.map.clone();
    if map.br.is_empty() {
        map.br.push(br.address.clone());
    }
    // A BR needs the domain; any End-user prefix inside the rule selects it.
    let (p, _) = resolve_map(&map)?;
    let icmp_source = match &br.icmp_source {
        None => Ipv4Addr::new(192, 0, 0, 8),
        Some(s) => s
            .parse()
            .map_err(|_| value_err("br.icmp_source", s, "an IPv4 address"))?,
    };
    Ok(BrSettings {
        address,
        icmp_source,
        domain: p.domain,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::IpAddr;

    /// The lab's CE configuration (RFC 7597 Appendix A, example 1, PSID offset 4).
    pub(crate) const LAB: &str = r#"
        [wan]
        interface = "ce-wan"
        [map]
        prefix = "2001:db8:12:3400::/56"
        ipv6_prefix = "2001:db8::/40"
        ipv4_prefix = "192.0.2.0/24"
        ea_len = 16
        psid_offset = 4
        br = ["2001:db8:ffff::1"]
        [lan]
        prefixes = ["192.168.1.0/24"]
        address = "192.0.2.18"
        [nat]
        allow_destinations = ["203.0.113.0/24", "198.51.100.0/24"]
        [nat.timeouts]
        udp_unanswered = 20
        [[nat.forward]]
        proto = "tcp"
        external_port = 4930
        internal = "192.168.1.30:22"
    "#;

    fn parse(s: &str) -> Result<Settings, ConfigError> {
        Settings::parse(s, Path::new("test.toml"))
    }

    /// `mape passwd`'s output for "x" (any argon2 PHC string does).
    const HASH: &str =
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

    #[test]
    fn the_status_page_is_off_unless_configured_and_lan_side_only() {
        assert_eq!(parse(LAB).unwrap().web, None);
        let with = |listen: &str| {
            parse(&format!(
                "{LAB}\n[web]\nlisten = \"{listen}\"\npassword_hash = \"{HASH}\"\n"
            ))
        };
        let w = with("192.168.1.1:8080").unwrap().web.unwrap();
        assert_eq!(w.listen, "192.168.1.1:8080".parse().unwrap());
        assert_eq!(w.password_hash, HASH);
        for bad in ["0.0.0.0:8080", "192.0.2.18:8080", "192.168.2.1:8080"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("web.listen") && e.contains("inside lan.prefixes (192.168.1.0/24)"),
                "{bad}: {e}"
            );
        }
        let e = with("[fe80::1]:8080").unwrap_err().to_string();
        assert!(
            e.contains("an IPv4 address of this router on the LAN"),
            "{e}"
        );
        let e = parse(&format!("{LAB}\n[web]\nlisten = \"192.168.1.1:8080\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("web.password_hash is missing"), "{e}");
        let e = parse(&format!(
            "{LAB}\n[web]\nlisten = \"192.168.1.1:8080\"\npassword_hash = \"hunter2\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("an argon2 hash as `mape passwd` prints it"),
            "{e}"
        );
    }

    #[test]
    fn a_br_is_each_of_its_addresses_once_its_own_first() {
        let br = "mode = \"br\"\n[br]\naddress = \"2001:db8:ffff::1\"\n[map]\nprefix = \"2001:db8:12:3400::/56\"\nipv6_prefix = \"2001:db8::/40\"\nipv4_prefix = \"192.0.2.0/24\"\nea_len = 16\n";
        let addresses = |extra: &str| {
            let s = parse(&format!("{br}{extra}")).unwrap();
            let Role::Br(b) = s.role else { panic!() };
            b.addresses()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(addresses(""), ["2001:db8:ffff::1"]);
        // [br] address second in [map] br, and a third: its own first, each once.
        assert_eq!(
            addresses("br = [\"2001:db8:ffff::2\", \"2001:db8:ffff::1\", \"2001:db8:ffff::3\"]\n"),
            ["2001:db8:ffff::1", "2001:db8:ffff::2", "2001:db8:ffff::3"]
        );
    }

    #[test]
    fn a_br_has_no_status_page() {
        let map = &LAB[LAB.find("[map]").unwrap()..LAB.find("[lan]").unwrap()];
        let br = format!(
            "mode = \"br\"\n[br]\naddress = \"2001:db8:ffff::1\"\n{map}\n[web]\nlisten = \"192.168.1.1:8080\"\npassword_hash = \"{HASH}\"\n"
        );
        let e = parse(&br).unwrap_err().to_string();
        assert!(e.starts_with("web.listen") && e.contains("BR mode"), "{e}");
    }

    #[test]
    fn lab_config_resolves() {
        let s = parse(LAB).unwrap();
        let Role::Ce(ce) = s.role else { panic!() };
        assert_eq!(ce.map.mapping.share.ipv4.to_string(), "192.0.2.18/32");
        assert_eq!(ce.map.mapping.share.port_set.count(), 240);
        assert_eq!(ce.nat.timeouts.udp_unanswered, 20);
        assert_eq!(
            ce.nat.timeouts.udp_answered, 300,
            "unchanged keys keep the policy's"
        );
        assert_eq!(ce.nat.forwards.len(), 1);
        assert_eq!(s.tun.ipv4_mtu, 1460);
        assert_eq!(s.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(s.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        let s = parse(&format!("{LAB}\n[state]\ndir = \"/tmp/st\"\n")).unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/tmp/st"));
        assert_eq!(s.persist_every, Some(Duration::from_secs(30)));
        let s = parse(&format!("{LAB}\n[state]\npersist_interval_s = 2\n")).unwrap();
        assert_eq!(s.persist_every, Some(Duration::from_secs(2)));
        let s = parse(&format!("{LAB}\n[state]\npersist_sessions = false\n")).unwrap();
        assert_eq!(s.persist_every, None);
        let e = parse(&format!("{LAB}\n[state]\npersist_interval_s = 0\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "state.persist_interval_s = \"0\": seconds between two writes of the session table, 1 to 86400"
        );
    }

    #[test]
    fn mappings_section() {
        let Role::Ce(ce) = parse(LAB).unwrap().role else {
            panic!()
        };
        assert!(!ce.mappings.any(), "off unless switched on");
        let on = format!(
            "{LAB}\n[mappings]\npcp = true\nnatpmp = true\nlisten = [\"192.168.1.1\"]\nmax_per_host = 4\n"
        );
        let Role::Ce(ce) = parse(&on).unwrap().role else {
            panic!()
        };
        assert!(ce.mappings.pcp && ce.mappings.natpmp);
        assert_eq!(ce.mappings.listen, [Ipv4Addr::new(192, 168, 1, 1)]);
        assert_eq!(ce.mappings.limits.max_per_host, 4);
        assert_eq!(ce.mappings.limits.max_lifetime_s, 7200);
        let e = parse(&format!("{LAB}\n[mappings]\npcp = true\n")).unwrap_err();
        assert!(
            e.to_string().starts_with("mappings.listen is missing"),
            "{e}"
        );
        let e = parse(&format!(
            "{LAB}\n[mappings]\nnatpmp = true\nlisten = [\"lan0\"]\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "mappings.listen = \"lan0\": the CE's LAN IPv4 addresses"
        );
    }

    #[test]
    fn errors_name_key_value_and_expectation() {
        let cases = [
            (LAB.replace("ea_len = 16", "ea_len = 99"), "impossible rule"),
            (
                LAB.replace("udp_unanswered = 20", "udp_unanswerd = 20"),
                "nat.timeouts = \"udp_unanswerd\"",
            ),
            (
                LAB.replace("external_port = 4930", "external_port = 5000"),
                "not in the port set",
            ),
            (
                LAB.replace("address = \"192.0.2.18\"", "address = \"192.168.1\""),
                "lan.address = \"192.168.1\": an IPv4 address",
            ),
            (
                LAB.replace("[nat]", "[nat]\npolicy = \"openwrt\""),
                "nat.policy = \"openwrt\": one of mape",
            ),
            (
                LAB.replace(
                    "interface = \"ce-wan\"",
                    "interface = \"ce-wan\"\nbogus = 1",
                ),
                "unknown field `bogus`",
            ),
            (
                LAB.replace(
                    "prefix = \"2001:db8:12:3400::/56\"",
                    "prefix = \"2001:db9::/56\"",
                ),
                "[map]",
            ),
            (
                LAB.replace("[map]", "[map]\nprofile = \"v6plus\""),
                "exactly one of",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    /// [`LAB`] with its rule taken out (the HB46PP server gives it).
    fn no_rule() -> String {
        LAB.lines()
            .filter(|l| {
                ![
                    "ipv6_prefix",
                    "ipv4_prefix",
                    "ea_len",
                    "psid_offset",
                    "br =",
                ]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The lab's rule as an HB46PP answer (RFC 7597 Appendix A example 1, offset 4).
    fn offer() -> mape_provision::Offer {
        mape_provision::answer::parse(
            br#"{"ttl": 3600, "order": ["map_e"], "map_e": {"version": 1,
            "br": "2001:db8:ffff::1", "rules": [{"ipv6": "2001:db8::/40",
            "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 4}]}}"#,
        )
        .unwrap()
    }

    fn with(text: &str, inputs: Inputs) -> Result<Settings, ConfigError> {
        Settings::parse_with(text, Path::new("test.toml"), &move |_| inputs.clone())
    }

    #[test]
    fn provisioning_methods_and_the_auto_order() {
        // No [provisioning]: the source [map] names, and no HB46PP client.
        let s = parse(LAB).unwrap();
        assert_eq!(s.provisioning.method, None);
        assert_eq!(s.provisioning.source, Source::Static);
        assert!(s.provisioning.hb46pp.is_none());
        let s = parse(&format!("{LAB}\n[provisioning]\nmethod = \"static\"\n")).unwrap();
        assert_eq!(s.provisioning.source, Source::Static);
        // hb46pp: the answer gives the same parameters as the explicit rule.
        let hb = format!(
            "{}\n[provisioning]\nmethod = \"hb46pp\"\n[provisioning.hb46pp]\ndns = [\"2001:db8:0:1::53\"]\ntimeout_s = 2\n",
            no_rule()
        );
        let got = with(
            &hb,
            Inputs {
                hb46pp: Some(offer()),
                end_user: None,
                dhcpv6: None,
                dhcpv6_info: None,
            },
        )
        .unwrap();
        let (Role::Ce(a), Role::Ce(b)) = (&got.role, &parse(LAB).unwrap().role) else {
            panic!()
        };
        assert_eq!(a.map.mapping, b.map.mapping);
        assert_eq!(a.map.origin, "hb46pp");
        assert_eq!(got.provisioning.source, Source::Hb46pp);
        let h = got.provisioning.hb46pp.unwrap();
        assert_eq!(
            h.shell.resolvers,
            vec!["2001:db8:0:1::53".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(h.shell.timeout, Duration::from_secs(2));
        // Without [map] prefix, the WAN's address; the BMR's /128 gives the same address.
        let no_prefix = hb.replace("prefix = \"2001:db8:12:3400::/56\"", "");
        let got = with(
            &no_prefix,
            Inputs {
                hb46pp: Some(offer()),
                end_user: Some("2001:db8:12:3400::1/128".parse().unwrap()),
                dhcpv6: None,
                dhcpv6_info: None,
            },
        )
        .unwrap();
        let Role::Ce(c) = &got.role else { panic!() };
        assert_eq!(c.map.mapping.share.ipv4.to_string(), "192.0.2.18/32");
        // No answer yet.
        let e = with(&hb, Inputs::default()).unwrap_err().to_string();
        assert!(e.contains("no answer fetched or stored yet"), "{e}");
        // auto: a written rule wins and no client runs; without one HB46PP, with a
        // profile to fall back to.
        let s = parse(&format!("{LAB}\n[provisioning]\nmethod = \"auto\"\n")).unwrap();
        assert_eq!(s.provisioning.source, Source::Static);
        assert!(s.provisioning.hb46pp.is_none());
        let auto = format!(
            "{}\n[provisioning]\nmethod = \"auto\"\n",
            no_rule()
                .replace("[map]", "[map]\nprofile = \"v6plus\"")
                .replace("2001:db8:12:3400::/56", "240b:10:2340:ab00::/56")
                .replace("address = \"192.0.2.18\"", "")
                .replace("[[nat.forward]]", "")
                .replace("proto = \"tcp\"", "")
                .replace("external_port = 4930", "")
                .replace("internal = \"192.168.1.30:22\"", "")
        );
        let s = with(&auto, Inputs::default()).unwrap();
        assert_eq!(s.provisioning.source, Source::Profile);
        assert!(s.provisioning.hb46pp.is_some());
        // Methods that do not agree with [map], each refused with the reason.
        for (method, text, want) in [
            ("hb46pp", LAB.to_string(), "the HB46PP server gives it"),
            ("static", no_rule(), "ipv6_prefix + ipv4_prefix + ea_len"),
            ("profile", LAB.to_string(), "[map] profile"),
            (
                "dhcpv6",
                LAB.to_string(),
                "the DHCPv6 server (or [map] dhcpv6_file) gives it",
            ),
            ("dhcp", LAB.to_string(), "unknown variant"),
        ] {
            let t = format!("{text}\n[provisioning]\nmethod = \"{method}\"\n");
            let e = with(&t, Inputs::default()).unwrap_err().to_string();
            assert!(e.contains(want), "{method}: {e}");
        }
        for (extra, want) in [
            (
                "dns = [\"resolver\"]",
                "provisioning.hb46pp.dns = \"resolver\"",
            ),
            ("timeout_s = 0", "1 to 60 seconds"),
            ("user = \"u\"", "both user and pass"),
            ("user = \"u\"\npass = \"p w\"", "at most 32 of"),
        ] {
            let t = format!(
                "{}\n[provisioning]\nmethod = \"hb46pp\"\n[provisioning.hb46pp]\n{extra}\n",
                no_rule()
            );
            let e = with(
                &t,
                Inputs {
                    hb46pp: Some(offer()),
                    end_user: None,
                    dhcpv6: None,
                    dhcpv6_info: None,
                },
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        // A BR takes no rule from HB46PP.
        let br = "mode = \"br\"\n[br]\naddress = \"2001:db8:ffff::1\"\n[map]\nprefix = \"2001:db8::/40\"\n[provisioning]\nmethod = \"hb46pp\"\n";
        assert!(with(br, Inputs::default()).is_err());
    }

    fn lease(prefix: &str) -> mape_provision::dhcpv6::Lease {
        crate::provisioning::lease::lab_lease(prefix)
    }

    #[test]
    fn dhcpv6_method_takes_the_rule_from_the_lease() {
        let t = format!("{}\n[provisioning]\nmethod = \"dhcpv6\"\n", no_rule());
        let got = |l| {
            with(
                &t,
                Inputs {
                    dhcpv6: l,
                    ..Inputs::default()
                },
            )
        };
        let e = got(None).unwrap_err().to_string();
        assert!(e.contains("no lease obtained or stored yet"), "{e}");
        let s = got(Some(lease("2001:db8:12:3400::/56"))).unwrap();
        assert_eq!(s.provisioning.source, Source::Dhcpv6);
        let (Role::Ce(a), Role::Ce(b)) = (&s.role, &parse(LAB).unwrap().role) else {
            panic!("CE expected");
        };
        // The same parameters as the explicit rule: 192.0.2.18, PSID 0x34.
        assert_eq!(a.map.mapping, b.map.mapping);
        assert_eq!(a.map.mapping.share.psid, Some(0x34));
        assert_eq!(a.map.origin, "dhcpv6");
        assert_eq!(a.br_sources, b.br_sources);
        // Without [map] prefix, the delegated prefix is the End-user prefix.
        let t2 = t.replace("prefix = \"2001:db8:12:3400::/56\"", "");
        let s2 = with(
            &t2,
            Inputs {
                dhcpv6: Some(lease("2001:db8:12:3400::/56")),
                ..Inputs::default()
            },
        )
        .unwrap();
        let Role::Ce(c) = &s2.role else { panic!() };
        assert_eq!(c.map.mapping, b.map.mapping);
        // A lease without option 94 gives no rule.
        let mut bare = lease("2001:db8:12:3400::/56");
        bare.s46.clear();
        let e = got(Some(bare)).unwrap_err().to_string();
        assert!(e.contains("no OPTION_S46_CONT_MAPE"), "{e}");
    }

    /// `mode = "stateless"`: the rule from a Reply to Information-request, resolved for the
    /// WAN's address (nothing is delegated) or `[map] prefix`.
    #[test]
    fn stateless_dhcpv6_resolves_the_rule_for_the_wans_address() {
        let t = format!(
            "{}\n[provisioning]\nmethod = \"dhcpv6\"\n[provisioning.dhcpv6]\nmode = \"stateless\"\n",
            no_rule()
        )
        .replace("prefix = \"2001:db8:12:3400::/56\"", "");
        let l = lease("2001:db8:12:3400::/56");
        let info = mape_provision::dhcpv6::Information {
            server_id: l.server_id.clone(),
            obtained: l.obtained,
            refresh: 600,
            s46: l.s46.clone(),
            dns: l.dns.clone(),
        };
        let got = |i: Option<&mape_provision::dhcpv6::Information>, end_user: Option<&str>| {
            with(
                &t,
                Inputs {
                    dhcpv6_info: i.cloned(),
                    // A lease must not be taken in this mode.
                    dhcpv6: Some(lease("2001:db8:77:7700::/56")),
                    end_user: end_user.map(|e| e.parse().unwrap()),
                    ..Inputs::default()
                },
            )
        };
        let e = got(None, Some("2001:db8:12:3400::1/128"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Reply to Information-request"), "{e}");
        let e = got(Some(&info), None).unwrap_err().to_string();
        assert!(e.contains("map.prefix"), "{e}");
        let s = got(Some(&info), Some("2001:db8:12:3400::1/128")).unwrap();
        assert_eq!(s.provisioning.source, Source::Dhcpv6);
        let (Role::Ce(a), Role::Ce(b)) = (&s.role, &parse(LAB).unwrap().role) else {
            panic!("CE expected");
        };
        // RFC 7597 example 1's rule for 2001:db8:12:3400::/56 (the WAN's /128 inside it):
        // 192.0.2.18, PSID 0x34, as the explicit rule gives.
        assert_eq!(a.map.mapping.share, b.map.mapping.share);
        assert_eq!(a.map.mapping.share.psid, Some(0x34));
        let mut bare = info.clone();
        bare.s46.clear();
        let e = got(Some(&bare), Some("2001:db8:12:3400::1/128"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no OPTION_S46_CONT_MAPE"), "{e}");
        let bad = t.replace("\"stateless\"", "\"both\"");
        assert!(with(&bad, Inputs::default()).is_err());
    }

    #[test]
    fn dist_example_is_valid() {
        let text = include_str!("../../../dist/mape.toml");
        let s = parse(text).unwrap();
        assert!(matches!(s.role, Role::Ce(_)));
    }
}
