//! The IO-free findings of `mape doctor`: each judges values already read (sysctls,
//! addresses, the daemon's status and counters) and gives a `Check` with its fix.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use mape_control::reply::{FastPathStatus, OutsideSetAsks};
use mape_daemon::config::MapAddressMode;
use mape_daemon::ra::{ra_state, RaState};
use mape_rules::{IidFormat, Provisioned};

use super::{Check, Level};

/// The `accept_ra` finding for the WAN `wan` from the values read (IO-free): with
/// forwarding on, Linux ignores RAs at accept_ra=1 and the IPv6 default route lapses
/// (`mape_daemon::ra`).
pub(super) fn accept_ra_check(
    wan: &str,
    accept_ra: Option<&str>,
    forwarding: bool,
    running: bool,
) -> Check {
    let check = |level, message: String, fix: Option<String>| Check {
        name: "accept_ra",
        level,
        message,
        fix,
    };
    let Some(v) = accept_ra.map(str::trim) else {
        return check(
            Level::Warn,
            format!("accept_ra of {wan} is unreadable"),
            None,
        );
    };
    let set = format!("sysctl -w net.ipv6.conf.{wan}.accept_ra=2");
    match ra_state(v, forwarding) {
        RaState::Accepted if v == "1" => check(
            Level::Ok,
            format!("{wan} accepts router advertisements (accept_ra=1, forwarding off); mape run sets 2 when it turns forwarding on"),
            None,
        ),
        RaState::Accepted => check(
            Level::Ok,
            format!("{wan} accepts router advertisements with forwarding on (accept_ra={v})"),
            None,
        ),
        RaState::IgnoredWithForwarding if running => check(
            Level::Fail,
            format!("forwarding is on and {wan} has accept_ra=1: the kernel ignores its router advertisements, so the IPv6 default route lapses when its lifetime ends"),
            Some(format!("{set} (mape run sets it at start: something reset it)")),
        ),
        RaState::IgnoredWithForwarding => check(
            Level::Warn,
            format!("forwarding is on and {wan} has accept_ra=1: the kernel ignores its router advertisements, so the IPv6 default route lapses when its lifetime ends"),
            Some(format!("{set} (mape run sets it when it starts)")),
        ),
        RaState::Off => check(
            Level::Ok,
            format!("{wan} ignores router advertisements (accept_ra=0): the IPv6 default route must be static"),
            None,
        ),
        RaState::Unknown => check(
            Level::Warn,
            format!("{wan} has accept_ra={v}, a value Linux does not document"),
            Some(set),
        ),
    }
}

/// The /64 holding `a`, as text (`2001:db8:12:3400::/64`).
fn slash64(a: Ipv6Addr) -> String {
    format!(
        "{}/64",
        Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))
    )
}

/// Whether `a` and `b` lie in the same /64 (an on-link prefix, RFC 4291 §2.5.4).
fn same64(a: Ipv6Addr, b: Ipv6Addr) -> bool {
    u128::from(a) >> 64 == u128::from(b) >> 64
}

/// The `prefix` finding (IO-free) from the map address mode and the WAN's global
/// addresses. On-link: the ISP's router finds the MAP address by neighbour discovery on
/// the WAN link, so it must lie in the WAN's /64. Routed: the ISP routes the delegated
/// prefix (which holds the MAP address, RFC 7597 §6) to this router; a MAP address on the
/// WAN's own /64 is looked up by neighbour discovery instead, which routed mode does not
/// answer.
pub(super) fn map_address_check(
    wan: &str,
    mode: MapAddressMode,
    map: &Provisioned,
    addrs: &[Ipv6Addr],
) -> Check {
    let check = |level, message: String, fix: Option<&str>| Check {
        name: "prefix",
        level,
        message,
        fix: fix.map(str::to_string),
    };
    let (eup, ce6) = (map.mapping.end_user_prefix, map.mapping.ce_ipv6);
    let rule6 = map.bmr.ipv6_prefix();
    let on_link = addrs.iter().find(|a| same64(**a, ce6));
    if mode == MapAddressMode::Onlink {
        let in_prefix = addrs.iter().find(|a| eup.contains(**a));
        return match (on_link, in_prefix, addrs.iter().find(|a| rule6.contains(**a))) {
            (Some(_), _, _) => check(Level::Ok, format!("map.prefix {eup} is on {wan}"), None),
            (None, Some(a), _) => check(
                Level::Fail,
                format!("{wan} has {a} in map.prefix {eup}, but the MAP address {ce6} lies in {}, not on {wan}'s /64 {}: the ISP's router never looks it up on this link", slash64(ce6), slash64(*a)),
                Some("set map.prefix to the WAN's /64 (the one holding its address), or wan.map_address = \"routed\" if the ISP delegates map.prefix to this router"),
            ),
            (None, None, Some(a)) => check(Level::Fail, format!("{wan} has {a}, inside the rule {rule6} but outside map.prefix {eup}: the line's prefix changed"), Some("set map.prefix to the prefix the ISP now gives (the /64 holding that address)")),
            (None, None, None) => check(Level::Fail, format!("no address of {wan} lies in map.prefix {eup}"), Some("check map.prefix against `ip -6 addr show dev WAN`, or use map_address = \"routed\" if the ISP delegates a prefix")),
        };
    }
    match on_link {
        // A warning: a line that also routes the prefix here works (the address on the
        // WAN then comes from the delegated prefix itself).
        Some(a) => check(
            Level::Warn,
            format!("{wan} has {a}, in the same /64 {} as the MAP address {ce6}: that prefix looks on-link on the WAN rather than delegated, and in routed mode nothing answers the ISP router's neighbour solicitations for the MAP address", slash64(ce6)),
            Some("set wan.map_address = \"onlink\" (mape then answers neighbour discovery for the MAP address)"),
        ),
        // Routed: the prefix is delegated to us; the WAN may hold any address.
        None => check(Level::Ok, format!("map.prefix {eup} is delegated (routed mode); the CE address {ce6} goes to the TUN"), None),
    }
}

/// Drops of a reason worth judging: fewer are start-up noise or a stray scanner.
const MIN_DROPS: u64 = 20;
/// Share of the WAN packets dropped as `unknown_tunnel_source` above which the BR address
/// is the suspect: a mis-addressed BR has every reply dropped (close to 100 %), while on a
/// working line strangers writing to the CE address are a small share of its traffic.
const UNKNOWN_SOURCE_SHARE: u64 = 50;
/// Share of the WAN packets dropped as `spoofed_source` or `port_outside_set` above which
/// the rule is the suspect: a real spoofer or a port scan through the BR stays well below.
const RULE_MISMATCH_SHARE: u64 = 10;

/// The fix when the tunnel's packets come from another source than map.br
/// (`tunnel_source`, `ipv4_probe`).
pub(super) const TUNNEL_SOURCE_FIX: &str = "check map.br (and map.br_sources) in the config, or the BR of the profile or provisioning answer, against the IPv6 source of the tunnel packets: tcpdump -ni WAN ip6 proto 4";
/// The fix when the BR maps addresses and ports otherwise than this CE (`rule_match`,
/// `ipv4_probe`).
pub(super) const RULE_FIX: &str = "check the rule's EA-bits length, PSID offset and PSID length (map.ea_len, map.psid_offset, map.psid_len, or the profile) against the ISP's; `mape calc` shows the port set they give";

/// A finding: failed with its message and fix when `fail` holds one, else `ok`.
fn finding(name: &'static str, fail: Option<(String, &str)>, ok: String) -> Check {
    let (level, message, fix) = match fail {
        Some((m, fix)) => (Level::Fail, m, Some(fix.to_string())),
        None => (Level::Ok, ok, None),
    };
    Check {
        name,
        level,
        message,
        fix,
    }
}

/// The drop counter `name` of `drops`, 0 when absent.
fn drop_count(drops: &BTreeMap<String, u64>, name: &str) -> u64 {
    drops.get(name).copied().unwrap_or(0)
}

/// Whether `n` of `total` is at least `MIN_DROPS` and at least `pct` percent.
fn significant(n: u64, total: u64, pct: u64) -> bool {
    n >= MIN_DROPS && n.saturating_mul(100) >= total.max(1).saturating_mul(pct)
}

/// The `tunnel_source` finding (IO-free): packets from the WAN dropped because their IPv6
/// source is neither an accepted BR address nor a CE of the domain (RFC 7597 §8.1); when
/// they are most of what arrives, the configured BR address is wrong.
pub(super) fn tunnel_source_check(
    drops: &BTreeMap<String, u64>,
    wan_in: u64,
    br: &[Ipv6Addr],
) -> Check {
    let n = drop_count(drops, "unknown_tunnel_source");
    let brs = br
        .iter()
        .map(Ipv6Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let fail = significant(n, wan_in, UNKNOWN_SOURCE_SHARE).then(|| {
        (
            format!("{n} of {wan_in} packets from the WAN were dropped as unknown_tunnel_source: they arrive from an IPv6 source that is neither the configured BR nor a CE of the domain, so the BR address is probably wrong (configured {brs})"),
            TUNNEL_SOURCE_FIX,
        )
    });
    let ok = format!("{n} of {wan_in} packets from the WAN came from an unknown tunnel source");
    finding("tunnel_source", fail, ok)
}

/// The `rule_match` finding (IO-free): packets from the WAN dropped as `spoofed_source`
/// (a CE of the domain whose inner IPv4 source or port is not the one the rule derives
/// from its IPv6 source, §8.1) or `port_outside_set` (the BR delivers ports that are not
/// in our set): when many, the BR and this CE compute different port sets from the rule.
pub(super) fn rule_match_check(drops: &BTreeMap<String, u64>, wan_in: u64, rule: &str) -> Check {
    let spoofed = drop_count(drops, "spoofed_source");
    let outside = drop_count(drops, "port_outside_set");
    let n = spoofed.saturating_add(outside);
    let fail = significant(n, wan_in, RULE_MISMATCH_SHARE).then(|| {
        (
            format!("{n} of {wan_in} packets from the WAN were dropped ({spoofed} spoofed_source, {outside} port_outside_set): the BR and the other CEs map addresses and ports differently from the configured rule {rule}"),
            RULE_FIX,
        )
    });
    let ok = format!("{spoofed} spoofed_source and {outside} port_outside_set drops of {wan_in} packets from the WAN");
    finding("rule_match", fail, ok)
}

/// The `fast_path` finding (IO-free): whether the kernel fast path forwards (issue #13).
/// Off by configuration is fine; `auto` that fell back to the TUN path is a warning with
/// the kernel's reason: everything works, at a fraction of the line rate.
pub(super) fn fast_path_check(f: Option<&FastPathStatus>) -> Check {
    let (level, message, fix) = match f {
        None => (
            Level::Warn,
            "the running daemon does not report a fast path (an older mape)".to_string(),
            Some("restart mape after the upgrade".to_string()),
        ),
        Some(f) if f.active => (
            Level::Ok,
            format!(
                "kernel fast path on {} ({} flows; {} packets out, {} in)",
                f.interfaces.join(", "),
                f.entries,
                f.out.packets,
                f.back.packets
            ),
            None,
        ),
        Some(f) if f.mode == "off" => (
            Level::Ok,
            "kernel fast path off in the configuration: every packet takes the TUN path".into(),
            None,
        ),
        Some(f) => (
            Level::Warn,
            format!(
                "kernel fast path not running ({}): every packet takes the TUN path, at a fraction of the line rate",
                f.reason.as_deref().unwrap_or("no reason given")
            ),
            Some("mape needs CAP_BPF and CAP_NET_ADMIN (dist/mape.service grants them), a kernel with BPF and cls_bpf, and Ethernet WAN and LAN interfaces; see the daemon's log line 'fast path not available'".into()),
        ),
    };
    Check {
        name: "fast_path",
        level,
        message,
        fix,
    }
}

/// The `mappings` finding (IO-free): LAN apps that asked the CE's PCP, NAT-PMP or UPnP
/// IGD server for an external port outside the port set (the daemon's
/// `mapping_asks_outside_set`). On MAP-E only the set's ports reach this CE (RFC 7597 §8),
/// so such a mapping could never work: OpenWrt's miniupnpd grants it and nothing comes
/// in. mape answered with an in-set port (or UPnP's 718 ConflictInMappingEntry), which an
/// app that insists on its port may not use. A warning naming each host and what it asked
/// for, with the set and the fix.
pub(super) fn mappings_check(asks: &[OutsideSetAsks], port_ranges: &[String]) -> Check {
    let ranges = match port_ranges {
        [] => "the port set".to_string(),
        r if r.len() > 4 => format!("{}, ... ({} ranges)", r[..4].join(", "), r.len()),
        r => r.join(", "),
    };
    if asks.is_empty() {
        return Check {
            name: "mappings",
            level: Level::Ok,
            message: "no LAN app asked for a port mapping outside the port set".into(),
            fix: None,
        };
    }
    let via = |v: &str| {
        match v {
            "pcp" => "PCP",
            "nat_pmp" => "NAT-PMP",
            "upnp" => "UPnP IGD",
            other => other,
        }
        .to_string()
    };
    let hosts = asks
        .iter()
        .map(|a| {
            let times = if a.requests == 1 { "once" } else { "times" };
            let n = if a.requests == 1 {
                String::new()
            } else {
                format!("{} ", a.requests)
            };
            format!(
                "{} asked {n}{times} (last: {} port {} by {})",
                a.host,
                a.proto.as_str().to_ascii_uppercase(),
                a.port,
                via(&a.via)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let first = &asks[0].host;
    Check {
        name: "mappings",
        level: Level::Warn,
        message: format!("LAN apps asked for port mappings outside the port set, which can never be reached on MAP-E (only {ranges} reach this CE): {hosts}; mape offered an in-set port instead (UPnP IGD:1 clients get 718 ConflictInMappingEntry)"),
        fix: Some(format!("set the app on {first} to pick its port automatically, or to a port of the set ({ranges}; `mape show status` lists them), and tell its peers the external port the router reports")),
    }
}

/// The `provisioning` finding (IO-free): where the rule in force came from, and while the
/// daemon's provisioning rounds fail, which step fails, since when, and what to do.
pub(super) fn provisioning_check(p: &mape_control::reply::ProvisioningStatus, now: u64) -> Check {
    let from = match (&p.url, p.from_store) {
        (Some(u), true) => format!("{} (the stored answer of {u})", p.source),
        (Some(u), false) => format!("{} ({u})", p.source),
        (None, _) => p.source.clone(),
    };
    if let Some(why) = &p.stopped {
        return Check {
            name: "provisioning",
            level: Level::Fail,
            message: format!("MAP-E is stopped: {why}"),
            fix: Some("the DHCPv6 server renews no lease: check that it answers on the WAN (`mape provision dhcpv6 --interface WAN` while mape is stopped) and that the line delegates a prefix; MAP-E resumes by itself with the next lease".into()),
        };
    }
    let Some(f) = &p.last_failure else {
        let next = p.next_refresh_at.map_or(String::new(), |n| {
            format!(", next round in {} s", n.saturating_sub(now))
        });
        return Check {
            name: "provisioning",
            level: Level::Ok,
            message: format!("rule from {from}{next}"),
            fix: None,
        };
    };
    let fix = provisioning_fix(&p.source, &f.step);
    Check {
        name: "provisioning",
        level: Level::Warn,
        message: format!(
            "provisioning fails at {} since {} s ago ({} rounds): {}; the rule in force is from {from}",
            f.step,
            now.saturating_sub(f.since),
            f.count,
            f.detail
        ),
        fix: Some(fix.into()),
    }
}

/// The fix for a provisioning round of `source` (`hb46pp`, `dhcpv6`) that failed at
/// `step` (the daemon's `last_failure.step`, or the first round's when nothing starts).
fn provisioning_fix(source: &str, step: &str) -> &'static str {
    match (source, step) {
        ("dhcpv6", "no_server") => "no DHCPv6 server answers on the WAN: check the link and that the ISP serves DHCPv6-PD (`mape provision dhcpv6 --interface WAN` while mape is stopped)",
        ("dhcpv6", "no_prefix") => "the DHCPv6 server delegates no prefix to this CE (NoPrefixAvail): ask the ISP; the contract may lack the IPv4 option",
        ("dhcpv6", "refused") => "the DHCPv6 server refuses this CE (an error status): `mape provision dhcpv6` prints the status; the stored DUID is <state dir>/<tun>.dhcpv6.duid",
        (_, step) => match step {
        "no_record" => "the resolvers have no TXT record for 4over6.info: this line may not offer HB46PP (ask the ISP, or use method = \"profile\"), or [provisioning.hb46pp] dns is not the line's own resolver",
        "dns" => "the resolvers do not answer: check [provisioning.hb46pp] dns (default /etc/resolv.conf) with `dig @ADDR 4over6.info TXT`",
        "unreachable" => "the provisioning server does not answer over IPv6: check the WAN's IPv6 default route, and for verified https (t=b) [provisioning.hb46pp] ca_files",
        "refused" => "the server does not know this CE's address (403/404): the request must come from the address the ISP gave; check the WAN's address and map.prefix",
        "nothing_offered" => "the server offers this line no MAP-E (order empty or other technologies only): ask the ISP, or use a profile",
        "bad_answer" => "the server's answer is unusable: `mape provision hb46pp` shows what it says",
        _ => "the answer could not be put in force: see provisioning_failed in the daemon's log",
        },
    }
}

/// The `provisioning` finding (IO-free) when the daemon has no rule to start with: the
/// HB46PP round at start failed at `step` and no answer is stored (`mape run` refuses to
/// start then).
pub(super) fn first_round_check(step: &str, detail: &str) -> Check {
    Check {
        name: "provisioning",
        level: Level::Fail,
        message: format!("no rule to start with: the HB46PP round fails at {step} ({detail}) and no earlier answer is stored"),
        fix: Some(provisioning_fix("hb46pp", step).into()),
    }
}

/// Seconds of uptime before a silent BR is judged: TCP retries its SYN at 1, 3, 7, 15 and
/// 31 s and DNS retries within 10 s, so a working BR has answered something by then.
const SILENT_AFTER_S: u64 = 60;
/// Packets sent to the BR before its silence means something (a few SYNs and queries).
const SILENT_MIN_OUT: u64 = 20;

/// The `br_replies` finding (IO-free): packets go out to the BR and nothing at all comes
/// back to the MAP address. The usual cause is an interface identifier laid out otherwise
/// than the BR expects, so the BR sends (and routes) to another address; `other` is the
/// MAP address with the other layout.
pub(super) fn br_replies_check(
    (wan_in, wan_out): (u64, u64),
    sessions: u32,
    uptime_s: u64,
    iid: IidFormat,
    ce_ipv6: Ipv6Addr,
    other: Option<Ipv6Addr>,
) -> Check {
    if uptime_s < SILENT_AFTER_S || wan_out < SILENT_MIN_OUT || wan_in > 0 || sessions == 0 {
        return Check {
            name: "br_replies",
            level: Level::Ok,
            message: format!("{wan_in} packets in from the WAN, {wan_out} out, after {uptime_s} s"),
            fix: None,
        };
    }
    Check {
        name: "br_replies",
        level: Level::Fail,
        message: format!("{wan_out} packets went out to the BR in {uptime_s} s with {sessions} sessions open and not one came back: {}", silent_br_cause(iid, ce_ipv6)),
        fix: Some(silent_br_fix(iid, other)),
    }
}

/// Why a BR that receives our packets sends nothing back (`br_replies`, `ipv4_probe`):
/// the MAP address and its interface-ID layout (RFC 7597 §6 or draft-03).
pub(super) fn silent_br_cause(iid: IidFormat, ce_ipv6: Ipv6Addr) -> String {
    let layouts = "RFC 7597 §6 lays the interface ID out as 16 zero bits, IPv4 address, PSID; draft-ietf-softwire-map-03 (used by v6plus and BIGLOBE) as 8 zero bits, IPv4 address, PSID, 8 zero bits";
    format!("the BR does not reach the MAP address {ce_ipv6}, whose interface ID is in the {iid} layout. {layouts}; a BR expecting the other layout sends to another address")
}

/// The fix for a silent BR: the other interface-ID layout and the MAP address it gives
/// (`other`), then map.br and the routing of map.prefix.
pub(super) fn silent_br_fix(iid: IidFormat, other: Option<Ipv6Addr>) -> String {
    let (other_fmt, other_name) = match iid {
        IidFormat::Rfc7597 => ("draft03", "draft-03"),
        IidFormat::Draft03 => ("rfc7597", "RFC 7597"),
    };
    let becomes = other.map_or_else(String::new, |a| format!(" (the MAP address becomes {a})"));
    format!("try the {other_name} layout: map.iid_format = \"{other_fmt}\"{becomes}, then restart mape; if the BR still answers nothing, check map.br and that the ISP routes map.prefix to this router")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_ra_1_with_forwarding_is_a_finding_with_the_fix() {
        let c = accept_ra_check("eth1", Some("1\n"), true, true);
        assert_eq!((c.name, c.level), ("accept_ra", Level::Fail));
        assert!(
            c.message.contains("ignores its router advertisements"),
            "{}",
            c.message
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("sysctl -w net.ipv6.conf.eth1.accept_ra=2 (mape run sets it at start: something reset it)")
        );
        // Not running: mape run will set it; a warning, not a failure.
        let c = accept_ra_check("eth1", Some("1"), true, false);
        assert_eq!(c.level, Level::Warn);
        assert!(c
            .fix
            .unwrap()
            .starts_with("sysctl -w net.ipv6.conf.eth1.accept_ra=2"));
    }

    #[test]
    fn accept_ra_2_or_0_or_forwarding_off_is_fine() {
        for (v, fwd) in [("2", true), ("0", true), ("1", false), ("2", false)] {
            let c = accept_ra_check("eth1", Some(v), fwd, true);
            assert_eq!(c.level, Level::Ok, "{v} {fwd}: {}", c.message);
            assert!(c.fix.is_none());
        }
        assert_eq!(
            accept_ra_check("eth1", Some("5"), true, true).level,
            Level::Warn
        );
        assert_eq!(accept_ra_check("eth1", None, true, true).level, Level::Warn);
    }

    fn drops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    /// RFC 7597 Appendix A, Example 1: the BR.
    const BR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);

    fn fast(mode: &str, active: bool, reason: Option<&str>) -> FastPathStatus {
        FastPathStatus {
            mode: mode.into(),
            active,
            reason: reason.map(str::to_string),
            interfaces: if active {
                vec!["br-lan".into(), "ce-wan".into()]
            } else {
                Vec::new()
            },
            entries: 3,
            out: Default::default(),
            back: Default::default(),
            passed: Default::default(),
            fins: 0,
            syn_acks: 0,
        }
    }

    #[test]
    fn a_fast_path_that_fell_back_is_a_warning_with_the_kernels_reason() {
        let c = fast_path_check(Some(&fast(
            "auto",
            false,
            Some("loading the ce BPF object: Operation not permitted"),
        )));
        assert_eq!((c.name, c.level), ("fast_path", Level::Warn));
        assert!(
            c.message.contains("Operation not permitted"),
            "{}",
            c.message
        );
        assert!(c.fix.as_deref().unwrap_or("").contains("CAP_BPF"));
        let on = fast_path_check(Some(&fast("auto", true, None)));
        assert_eq!(on.level, Level::Ok);
        assert!(
            on.message.contains("br-lan, ce-wan (3 flows"),
            "{}",
            on.message
        );
        let off = fast_path_check(Some(&fast("off", false, Some("off in the configuration"))));
        assert_eq!(off.level, Level::Ok);
        assert_eq!(fast_path_check(None).level, Level::Warn);
    }

    /// The lab's CE (PSID 0x34: 4928-4943, 9024-9039, ...): lan1's app asked three times,
    /// last for TCP 8080 by UPnP; lan2 once for UDP 3074 by NAT-PMP.
    #[test]
    fn apps_asking_outside_the_set_are_named_with_the_fix() {
        let ask = |host: [u8; 4], requests, via: &str, proto, port| OutsideSetAsks {
            host: host.into(),
            requests,
            via: via.into(),
            proto,
            port,
        };
        let ranges: Vec<String> = ["4928-4943", "9024-9039"].map(String::from).to_vec();
        let asks = [
            ask([192, 168, 10, 10], 3, "upnp", mape_nat::Protocol::Tcp, 8080),
            ask(
                [192, 168, 10, 11],
                1,
                "nat_pmp",
                mape_nat::Protocol::Udp,
                3074,
            ),
        ];
        let c = mappings_check(&asks, &ranges);
        assert_eq!((c.name, c.level), ("mappings", Level::Warn));
        assert!(
            c.message
                .contains("192.168.10.10 asked 3 times (last: TCP port 8080 by UPnP IGD)"),
            "{}",
            c.message
        );
        assert!(
            c.message
                .contains("192.168.10.11 asked once (last: UDP port 3074 by NAT-PMP)"),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("only 4928-4943, 9024-9039 reach"),
            "{}",
            c.message
        );
        let fix = c.fix.unwrap_or_default();
        assert!(fix.contains("app on 192.168.10.10"), "{fix}");
        assert!(fix.contains("4928-4943, 9024-9039"), "{fix}");
        let ok = mappings_check(&[], &ranges);
        assert_eq!((ok.level, ok.fix), (Level::Ok, None));
        // 15 ranges are cut to four and a count.
        let many: Vec<String> = (0..15)
            .map(|a| format!("{}-{}", a * 4096 + 832, a * 4096 + 847))
            .collect();
        let c = mappings_check(&asks, &many);
        assert!(c.message.contains("(15 ranges)"), "{}", c.message);
    }

    #[test]
    fn provisioning_failures_name_the_step_since_when_and_the_fix() {
        let mut p = mape_control::reply::ProvisioningStatus {
            method: "hb46pp".into(),
            source: "hb46pp".into(),
            url: Some("http://[2001:db8::80]/config".into()),
            next_refresh_at: Some(1_600),
            ..Default::default()
        };
        let c = provisioning_check(&p, 1_000);
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.message,
            "rule from hb46pp (http://[2001:db8::80]/config), next round in 600 s"
        );
        p.from_store = true;
        p.last_failure = Some(mape_control::reply::ProvisioningFailure {
            step: "unreachable".into(),
            detail: "connection refused".into(),
            since: 400,
            count: 3,
        });
        let c = provisioning_check(&p, 1_000);
        assert_eq!((c.name, c.level), ("provisioning", Level::Warn));
        assert_eq!(c.message, "provisioning fails at unreachable since 600 s ago (3 rounds): connection refused; the rule in force is from hb46pp (the stored answer of http://[2001:db8::80]/config)");
        assert!(c.fix.unwrap().contains("IPv6 default route"));
        for (step, words) in [
            ("no_record", "4over6.info"),
            ("dns", "dig @ADDR"),
            ("refused", "403/404"),
            ("nothing_offered", "no MAP-E"),
            ("bad_answer", "mape provision hb46pp"),
            ("apply", "provisioning_failed"),
        ] {
            if let Some(f) = p.last_failure.as_mut() {
                f.step = step.into();
            }
            let fix = provisioning_check(&p, 1_000).fix.unwrap();
            assert!(fix.contains(words), "{step}: {fix}");
        }
    }

    #[test]
    fn no_rule_at_start_names_the_failing_step() {
        let c = first_round_check("unreachable", "connection refused");
        assert_eq!((c.name, c.level), ("provisioning", Level::Fail));
        assert_eq!(c.message, "no rule to start with: the HB46PP round fails at unreachable (connection refused) and no earlier answer is stored");
        assert!(c.fix.unwrap().contains("IPv6 default route"));
        let c = first_round_check("no_record", "NXDOMAIN");
        assert!(c.fix.unwrap().contains("4over6.info"));
    }

    #[test]
    fn a_dhcpv6_line_names_its_failures_and_a_lost_lease() {
        let mut p = mape_control::reply::ProvisioningStatus {
            method: "dhcpv6".into(),
            source: "dhcpv6".into(),
            server: Some("00:03:00:01:0a:00:00:00:00:01".into()),
            next_refresh_at: Some(1_100),
            ..Default::default()
        };
        let c = provisioning_check(&p, 1_000);
        assert_eq!(c.level, Level::Ok);
        for (step, words) in [
            ("no_server", "DHCPv6-PD"),
            ("no_prefix", "NoPrefixAvail"),
            ("refused", "dhcpv6.duid"),
        ] {
            p.last_failure = Some(mape_control::reply::ProvisioningFailure {
                step: step.into(),
                detail: "x".into(),
                since: 900,
                count: 1,
            });
            let fix = provisioning_check(&p, 1_000).fix.unwrap();
            assert!(fix.contains(words), "{step}: {fix}");
        }
        p.stopped = Some("DHCPv6 lease of 2001:db8:12:3400::/56 ended".into());
        let c = provisioning_check(&p, 1_000);
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.message.starts_with("MAP-E is stopped: DHCPv6 lease"),
            "{}",
            c.message
        );
    }

    #[test]
    fn replies_from_an_unknown_source_name_the_configured_br() {
        // 95 of 100 WAN packets dropped: the BR replies from another address.
        let c = tunnel_source_check(&drops(&[("unknown_tunnel_source", 95)]), 100, &[BR]);
        assert_eq!((c.name, c.level), ("tunnel_source", Level::Fail));
        assert!(c.message.starts_with("95 of 100 packets"), "{}", c.message);
        assert!(
            c.message
                .contains("BR address is probably wrong (configured 2001:db8:ffff::1)"),
            "{}",
            c.message
        );
        assert!(c.fix.unwrap().contains("map.br"));
        // Exactly at both thresholds: 20 drops, 50 %.
        let c = tunnel_source_check(&drops(&[("unknown_tunnel_source", 20)]), 40, &[BR]);
        assert_eq!(c.level, Level::Fail);
    }

    #[test]
    fn a_few_strangers_or_a_small_share_are_no_finding() {
        for (n, wan_in) in [(19, 19), (20, 41), (500, 100_000), (0, 0)] {
            let c = tunnel_source_check(&drops(&[("unknown_tunnel_source", n)]), wan_in, &[BR]);
            assert_eq!(c.level, Level::Ok, "{n} of {wan_in}: {}", c.message);
            assert!(c.fix.is_none());
        }
        assert_eq!(tunnel_source_check(&drops(&[]), 10, &[BR]).level, Level::Ok);
    }

    #[test]
    fn spoofed_or_outside_the_set_in_numbers_point_at_the_rule() {
        let rule = "2001:db8::/40 -> 192.0.2.0/24 ea-len 16 psid-offset 6 psid-len 8";
        // 15 + 10 = 25 drops of 200 packets: 12.5 % >= 10 %.
        let d = drops(&[("spoofed_source", 15), ("port_outside_set", 10)]);
        let c = rule_match_check(&d, 200, rule);
        assert_eq!((c.name, c.level), ("rule_match", Level::Fail));
        assert!(c.message.starts_with("25 of 200 packets from the WAN were dropped (15 spoofed_source, 10 port_outside_set)"), "{}", c.message);
        assert!(c.message.ends_with(rule), "{}", c.message);
        assert!(c.fix.unwrap().contains("PSID offset"));
        // 25 of 251 is below 10 %; 19 of 19 is below 20 drops.
        assert_eq!(rule_match_check(&d, 251, rule).level, Level::Ok);
        let d = drops(&[("port_outside_set", 19)]);
        assert_eq!(rule_match_check(&d, 19, rule).level, Level::Ok);
    }

    /// RFC 7597 Appendix A, Example 1: End-user prefix 2001:db8:12:3400::/56, IPv4
    /// 192.0.2.18, PSID 0x34. RFC 7597 §6 IID 0000:c000:0212:0034; draft-03 IID
    /// 00c0:0002:1200:3400 (bytes 9-12 the IPv4 address, 13-14 the PSID).
    const CE_RFC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0x3400, 0, 0xc000, 0x212, 0x34);
    const CE_DRAFT: Ipv6Addr =
        Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0x3400, 0xc0, 0x2, 0x1200, 0x3400);

    #[test]
    fn a_silent_br_names_the_iid_layout_and_the_other_address() {
        let c = br_replies_check((0, 40), 3, 120, IidFormat::Rfc7597, CE_RFC, Some(CE_DRAFT));
        assert_eq!((c.name, c.level), ("br_replies", Level::Fail));
        assert!(
            c.message
                .starts_with("40 packets went out to the BR in 120 s with 3 sessions open"),
            "{}",
            c.message
        );
        assert!(c.message.contains("MAP address 2001:db8:12:3400:0:c000:212:34, whose interface ID is in the rfc7597 layout"), "{}", c.message);
        assert!(c.message.contains("v6plus"), "{}", c.message);
        assert_eq!(c.fix.as_deref(), Some("try the draft-03 layout: map.iid_format = \"draft03\" (the MAP address becomes 2001:db8:12:3400:c0:2:1200:3400), then restart mape; if the BR still answers nothing, check map.br and that the ISP routes map.prefix to this router"));
        // The other way round.
        let c = br_replies_check((0, 20), 1, 60, IidFormat::Draft03, CE_DRAFT, Some(CE_RFC));
        assert_eq!(c.level, Level::Fail);
        assert!(c.fix.unwrap().starts_with("try the RFC 7597 layout: map.iid_format = \"rfc7597\" (the MAP address becomes 2001:db8:12:3400:0:c000:212:34)"));
    }

    #[test]
    fn a_br_that_answered_or_too_little_to_judge_is_no_finding() {
        for (io, sessions, up) in [
            ((1, 40), 3, 120), // one reply came back
            ((0, 19), 3, 120), // too few sent
            ((0, 40), 3, 59),  // too early
            ((0, 40), 0, 120), // no session open
        ] {
            let c = br_replies_check(io, sessions, up, IidFormat::Rfc7597, CE_RFC, Some(CE_DRAFT));
            assert_eq!(c.level, Level::Ok, "{io:?} {sessions} {up}: {}", c.message);
            assert!(c.fix.is_none());
        }
    }

    #[test]
    fn the_other_layout_doctor_offers_is_the_hand_computed_address() {
        use mape_rules::{Rule, RuleSpec};
        let spec = RuleSpec::new(
            "2001:db8::/40".parse().unwrap(),
            "192.0.2.0/24".parse().unwrap(),
            16,
        );
        let rule = Rule::new(spec).unwrap();
        let eup = "2001:db8:12:3400::/56".parse().unwrap();
        assert_eq!(
            rule.map_prefix(&eup, IidFormat::Rfc7597).unwrap().ce_ipv6,
            CE_RFC
        );
        assert_eq!(
            rule.map_prefix(&eup, IidFormat::Draft03).unwrap().ce_ipv6,
            CE_DRAFT
        );
    }

    /// RFC 7597 Appendix A, Example 1 provisioned from `eup` (RFC 7597 layout).
    fn example1(eup: &str) -> Provisioned {
        use mape_rules::{MapDomain, Rule, RuleSpec};
        let spec = RuleSpec::new(
            "2001:db8::/40".parse().unwrap(),
            "192.0.2.0/24".parse().unwrap(),
            16,
        );
        let bmr = Rule::new(spec).unwrap();
        let mapping = bmr
            .map_prefix(&eup.parse().unwrap(), IidFormat::Rfc7597)
            .unwrap();
        Provisioned {
            bmr,
            domain: MapDomain::new(vec![bmr], vec![BR], IidFormat::Rfc7597),
            mapping,
            profile: None,
            origin: "test".into(),
        }
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn onlink_needs_the_map_address_on_the_wan_64() {
        let on = MapAddressMode::Onlink;
        // The MAP address 2001:db8:12:3400:0:c000:212:34 and the WAN share 2001:db8:12:3400::/64.
        let c = map_address_check(
            "eth1",
            on,
            &example1("2001:db8:12:3400::/64"),
            &[v6("2001:db8:12:3400::2")],
        );
        assert_eq!((c.name, c.level), ("prefix", Level::Ok), "{}", c.message);
        assert_eq!(c.message, "map.prefix 2001:db8:12:3400::/64 is on eth1");
        // A /56 given: the WAN is on 2001:db8:12:3401::/64, the MAP address on ...3400::/64.
        let c = map_address_check(
            "eth1",
            on,
            &example1("2001:db8:12:3400::/56"),
            &[v6("2001:db8:12:3401::2")],
        );
        assert_eq!(c.level, Level::Fail);
        assert_eq!(c.message, "eth1 has 2001:db8:12:3401::2 in map.prefix 2001:db8:12:3400::/56, but the MAP address 2001:db8:12:3400:0:c000:212:34 lies in 2001:db8:12:3400::/64, not on eth1's /64 2001:db8:12:3401::/64: the ISP's router never looks it up on this link");
        assert!(c
            .fix
            .unwrap()
            .starts_with("set map.prefix to the WAN's /64"));
        // The prefix moved inside the rule; or nothing of the rule on the WAN at all.
        let c = map_address_check(
            "eth1",
            on,
            &example1("2001:db8:12:3400::/64"),
            &[v6("2001:db8:12:5600::2")],
        );
        assert!(
            c.message
                .contains("inside the rule 2001:db8::/40 but outside map.prefix"),
            "{}",
            c.message
        );
        let c = map_address_check(
            "eth1",
            on,
            &example1("2001:db8:12:3400::/64"),
            &[v6("2001:db9::2")],
        );
        assert_eq!(
            c.message,
            "no address of eth1 lies in map.prefix 2001:db8:12:3400::/64"
        );
        assert_eq!(
            map_address_check("eth1", on, &example1("2001:db8:12:3400::/64"), &[]).level,
            Level::Fail
        );
    }

    #[test]
    fn routed_with_the_map_address_on_the_wan_link_asks_for_onlink() {
        let routed = MapAddressMode::Routed;
        let p = example1("2001:db8:12:3400::/56");
        let c = map_address_check("eth1", routed, &p, &[v6("2001:db8:12:3400::2")]);
        assert_eq!((c.name, c.level), ("prefix", Level::Warn));
        assert!(c.message.starts_with("eth1 has 2001:db8:12:3400::2, in the same /64 2001:db8:12:3400::/64 as the MAP address 2001:db8:12:3400:0:c000:212:34"), "{}", c.message);
        assert_eq!(c.fix.as_deref(), Some("set wan.map_address = \"onlink\" (mape then answers neighbour discovery for the MAP address)"));
        // The lab's routed line: the WAN on its own /64, the /56 routed to the CE.
        for addrs in [
            vec![v6("2001:db8:0:1::2")],
            vec![],
            vec![v6("2001:db8:12:3401::1")],
        ] {
            let c = map_address_check("eth1", routed, &p, &addrs);
            assert_eq!(c.level, Level::Ok, "{addrs:?}: {}", c.message);
        }
    }
}
