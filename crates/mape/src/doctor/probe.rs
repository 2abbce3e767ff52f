//! `mape doctor`'s end-to-end IPv4 probe (`ipv4_probe`): ICMP echo from the CE host
//! itself through the tunnel to a few targets, judged by the daemon's counters read before
//! and after, so that a failure says where the probe got lost and what to fix.
//!
//! ICMP echo rather than a TCP connect: every host answers echo from its kernel whatever
//! service it runs (a TCP connect needs an open or an actively refusing port, and a
//! firewall's silent drop of a SYN looks like a lost packet), one request is one packet
//! each way (no SYN retries to tell apart), and the NAT maps the echo identifier to a port
//! of the set like a TCP or UDP port (RFC 7597 §8.2: an ICMP identifier is the port).
//! The kernel gives the router's own traffic a LAN address as source, so the probe goes
//! through the NAT's router share (`lan.router_addresses`, `nat.router_reserve_ports`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mape_control::reply::{Status, Traffic};
use mape_control::{request_typed, Request};
use mape_rules::IidFormat;

use super::{silent_br_cause, silent_br_fix, Check, Level, RULE_FIX, TUNNEL_SOURCE_FIX};

/// Targets probed when `--probe-ipv4` is not given: the anycast addresses of two public
/// resolvers, which answer echo from everywhere (a real line only: a lab or a line without
/// the internet has to name its own target).
pub(super) const DEFAULT_TARGETS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)];
/// Echo requests per target.
const PROBES: u32 = 3;
/// `ping -W`: seconds to wait for the last reply (the requests go 0.2 s apart; `-w` would
/// count replies and keep sending while none comes).
const PROBE_WAIT_S: u32 = 2;
/// Wait after the probe before reading the counters again: the kernel fast path folds its
/// counts into the daemon's at its tick.
const SETTLE: Duration = Duration::from_millis(1200);

/// The daemon's counters the probe compares (from `show status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LineCounters {
    /// IPv6 packets in from the WAN (to the MAP address).
    pub wan_in: u64,
    /// IPv6 packets out to the WAN (to the BR).
    pub wan_out: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
}

impl LineCounters {
    /// The counters of a CE's status; `None` for a BR.
    pub(super) fn of(st: &Status) -> Option<Self> {
        match &st.traffic {
            Traffic::Ce {
                wan_in, wan_out, ..
            } => Some(Self {
                wan_in: wan_in.packets,
                wan_out: wan_out.packets,
                drops: st.drops.clone(),
            }),
            _ => None,
        }
    }
}

/// One target's probe: echo requests sent and answered, the counters around it.
#[derive(Debug, Clone)]
pub(super) struct ProbeRun {
    pub target: Ipv4Addr,
    pub sent: u32,
    pub answered: u32,
    /// The ICMP errors `ping` got instead of replies: who sent each, and what.
    pub errors: Vec<(Ipv4Addr, String)>,
    pub before: LineCounters,
    pub after: LineCounters,
}

/// What the probe's verdict names: the line as configured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub tun: &'a str,
    pub br: &'a [Ipv6Addr],
    pub rule: &'a str,
    pub iid: IidFormat,
    pub ce_ipv6: Ipv6Addr,
    /// The MAP address with the other interface-ID layout.
    pub other: Option<Ipv6Addr>,
    /// The source of the ICMP errors the CE itself sends to its LAN (`lan.icmp_source`):
    /// an error from it is an ICMPv6 error from the IPv6 path, translated (RFC 7597 §8.3,
    /// RFC 2473 §8).
    pub icmp_source: Ipv4Addr,
}

/// Packets in from the WAN that the CE did not drop (every drop counted as if it came
/// from the WAN: a LAN drop only makes this smaller).
fn delivered(c: &LineCounters) -> u64 {
    c.wan_in.saturating_sub(c.drops.values().sum())
}

/// Drops that grew between `before` and `after`, largest first (ties by name).
fn grown(before: &LineCounters, after: &LineCounters) -> Vec<(String, u64)> {
    let mut d: Vec<(String, u64)> = after
        .drops
        .iter()
        .filter_map(|(k, &v)| {
            let was = before.drops.get(k).copied().unwrap_or(0);
            (v > was).then(|| (k.clone(), v - was))
        })
        .collect();
    d.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    d
}

/// `a (3), b (1)`.
fn list(d: &[(String, u64)]) -> String {
    d.iter()
        .map(|(k, n)| format!("{k} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `ipv4_probe` finding (IO-free) from the probes of each target. Ok when a target
/// answered; otherwise the first target's probe says where it got lost: it never entered
/// the tunnel (nothing went out to the WAN: no route to the TUN, or the CE dropped it, by
/// reason); it came back and was dropped (by reason: an unknown tunnel source is a wrong
/// map.br, a spoofed source or a port outside the set a wrong rule, §8.1); it came back as
/// ICMPv6 errors from the IPv6 path (the tunnel packets reach no BR: map.br); or it went
/// out and nothing came back (map.br is no BR, the BR drops our ports as spoofed under
/// another rule, or it does not reach the MAP address: the interface-ID layout). An ICMP
/// error from beyond the BR, or a BR that delivered other packets, makes a silent target
/// only a warning: the tunnel works and the target is unreachable or ignores echo.
pub(super) fn ipv4_probe_check(runs: &[ProbeRun], line: &Line<'_>) -> Check {
    let check = |level, message: String, fix: Option<String>| Check {
        name: "ipv4_probe",
        level,
        message,
        fix,
    };
    let brs = line
        .br
        .iter()
        .map(Ipv6Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let answered: Vec<String> = runs
        .iter()
        .filter(|r| r.answered > 0)
        .map(|r| format!("{} ({} of {})", r.target, r.answered, r.sent))
        .collect();
    if !answered.is_empty() {
        let silent: Vec<String> = runs
            .iter()
            .filter(|r| r.answered == 0)
            .map(|r| r.target.to_string())
            .collect();
        let also = if silent.is_empty() {
            String::new()
        } else {
            format!(
                "; {} did not answer (a host may ignore echo)",
                silent.join(", ")
            )
        };
        return check(
            Level::Ok,
            format!(
                "IPv4 echo through the tunnel (BR {brs}) answered by {}{also}",
                answered.join(", ")
            ),
            None,
        );
    }
    let Some(r) = runs.first() else {
        return check(Level::Warn, "no IPv4 target probed".into(), None);
    };
    let (t, sent) = (r.target, r.sent);
    let out = r.after.wan_out.saturating_sub(r.before.wan_out);
    let back = r.after.wan_in.saturating_sub(r.before.wan_in);
    let drops = grown(&r.before, &r.after);
    let from_path = r.errors.iter().find(|(from, _)| *from == line.icmp_source);
    let from_beyond = r.errors.iter().find(|(from, _)| *from != line.icmp_source);
    if out == 0 {
        return match drops.as_slice() {
            [] => check(
                Level::Fail,
                format!("{sent} IPv4 echo requests to {t} never entered the tunnel: nothing went out to the BR and the CE dropped nothing, so the kernel did not route them to {}", line.tun),
                Some(format!("`ip route get {t}` must name dev {}: remove a competing IPv4 default route, or restart mape so that it adds its own", line.tun)),
            ),
            d => check(
                Level::Fail,
                format!("{sent} IPv4 echo requests to {t} never entered the tunnel: the CE dropped them as {}", list(d)),
                Some(match d[0].0.as_str() {
                    "destination_filtered" => "the NAT refuses the destination: add it to nat.allow_destinations (or remove nat.deny_destinations' entry), or probe another target with --probe-ipv4".to_string(),
                    "ports_exhausted" | "host_quota" | "host_limit" | "session_limit" => "the port set is used up: see `mape show ports` and `mape show culprits`; nat.router_reserve_ports keeps ports for the router's own traffic".to_string(),
                    _ => "see `mape show status` (drops by reason) and the daemon's log for that reason".to_string(),
                }),
            ),
        };
    }
    let came_back = format!("{sent} IPv4 echo requests to {t} went out to the BR ({out} packets) and {back} packets came back");
    if let Some((reason, n)) = drops.first() {
        let (cause, fix) = match reason.as_str() {
            "unknown_tunnel_source" => (
                format!("they arrive from an IPv6 source that is not the configured BR, so map.br ({brs}) is wrong or the BR answers from another address"),
                TUNNEL_SOURCE_FIX.to_string(),
            ),
            "spoofed_source" | "port_outside_set" => (
                format!("the BR maps addresses and ports otherwise than the rule {}", line.rule),
                RULE_FIX.to_string(),
            ),
            "ipv6_not_for_us" => (
                format!("they are addressed to another IPv6 address than the MAP address: {}", silent_br_cause(line.iid, line.ce_ipv6)),
                silent_br_fix(line.iid, line.other),
            ),
            _ => (
                "see the daemon's log for that reason".to_string(),
                "see `mape show status` (drops by reason)".to_string(),
            ),
        };
        return check(
            Level::Fail,
            format!("{came_back}, and the CE dropped {n} as {reason}: {cause} (all drops meanwhile: {})", list(&drops)),
            Some(fix),
        );
    }
    if let Some((_, what)) = from_path {
        return check(
            Level::Fail,
            format!("{came_back} as ICMPv6 errors from the IPv6 path (the CE passed them on as \"{what}\"): the tunnel packets to map.br {brs} reach no BR that takes them, so map.br is probably wrong"),
            Some("check map.br against the line's BR (the profile or the provisioning answer); `tcpdump -ni WAN icmp6` shows which host answers the tunnel packets and why".into()),
        );
    }
    if let Some((from, what)) = from_beyond {
        return check(
            Level::Warn,
            format!("{came_back}: the tunnel works, but {from} answered \"{what}\": {t} is unreachable beyond the BR"),
            Some("probe a host known to answer ping: --probe-ipv4 ADDR".into()),
        );
    }
    let (now_in, was_in) = (
        delivered(&r.after).saturating_sub(delivered(&r.before)),
        delivered(&r.before),
    );
    if now_in > 0 || was_in > 0 {
        let seen = if now_in > 0 {
            format!("{now_in} packets of other flows came back meanwhile")
        } else {
            format!("the BR delivered {was_in} packets to this CE before")
        };
        return check(
            Level::Warn,
            format!("{sent} IPv4 echo requests to {t} went out to the BR and none was answered, but {seen}: the tunnel works and {t} may ignore echo"),
            Some("probe a host known to answer ping: --probe-ipv4 ADDR".into()),
        );
    }
    check(
        Level::Fail,
                format!("{sent} IPv4 echo requests to {t} went out to the BR {brs} ({out} packets) and nothing came back since mape started: either map.br {brs} is not the line's BR, or the BR derives other ports from the rule {} and drops ours as spoofed (RFC 7597 §8.1), or {}", line.rule, silent_br_cause(line.iid, line.ce_ipv6)),
        Some(format!("{}; if the BR still answers nothing, {RULE_FIX}", silent_br_fix(line.iid, line.other))),
    )
}

/// `(transmitted, received)` from the summary line of iputils `ping` (`3 packets
/// transmitted, 0 received, +3 errors, 100% packet loss, time 2049ms`).
pub(super) fn ping_counts(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = line.split(',').map(str::trim);
    let sent = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let got = fields
        .find(|f| f.ends_with("received"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((sent, got))
}

/// The ICMP errors in `ping -n` output (`From 192.0.2.18 icmp_seq=1 Destination Port
/// Unreachable`): the sender and the text, once per sender and text.
pub(super) fn ping_errors(out: &str) -> Vec<(Ipv4Addr, String)> {
    let mut errors: Vec<(Ipv4Addr, String)> = Vec::new();
    for l in out.lines() {
        let Some(rest) = l.strip_prefix("From ") else {
            continue;
        };
        let mut f = rest.splitn(3, ' ');
        let (Some(from), Some(_seq), Some(what)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(from) = from.parse::<Ipv4Addr>() else {
            continue;
        };
        let e = (from, what.trim().to_string());
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    errors
}

/// Why a target could not be probed.
#[derive(Debug)]
pub(super) enum ProbeError {
    /// No answer on the control socket.
    Status(String),
    /// `ping` could not run, or printed no summary.
    Ping(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Status(e) => write!(f, "the daemon's status: {e}"),
            ProbeError::Ping(e) => write!(f, "ping -4: {e}"),
        }
    }
}

/// Probes `target` (the IO): the daemon's counters, `ping -4`, a pause, the counters.
pub(super) fn probe(socket: &Path, target: Ipv4Addr) -> Result<ProbeRun, ProbeError> {
    let counters = || {
        request_typed::<Status>(socket, &Request::Status)
            .map_err(|e| ProbeError::Status(e.to_string()))
            .and_then(|st| {
                LineCounters::of(&st).ok_or_else(|| ProbeError::Status("not a CE".into()))
            })
    };
    let before = counters()?;
    let out = Command::new("ping")
        .args(["-4", "-n", "-i", "0.2"])
        .args(["-c", &PROBES.to_string(), "-W", &PROBE_WAIT_S.to_string()])
        .arg(target.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProbeError::Ping(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, answered) = ping_counts(&text).ok_or_else(|| {
        ProbeError::Ping(format!(
            "no summary: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })?;
    std::thread::sleep(SETTLE);
    let after = counters()?;
    Ok(ProbeRun {
        target,
        sent,
        answered,
        errors: ping_errors(&text),
        before,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7597 Appendix A, Example 1: the CE 2001:db8:12:3400::/56 → 192.0.2.18 PSID
    /// 0x34, RFC 7597 §6 IID; the draft-03 layout gives 2001:db8:12:3400:c0:2:1200:3400.
    const CE_RFC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0x3400, 0, 0xc000, 0x212, 0x34);
    const CE_DRAFT: Ipv6Addr =
        Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0x3400, 0xc0, 0x2, 0x1200, 0x3400);
    const BR: [Ipv6Addr; 1] = [Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)];
    const RULE: &str = "2001:db8::/40 -> 192.0.2.0/24 ea-len 16 psid-offset 6 psid-len 8";
    const T: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    /// The CE's external address, the source of its own ICMP errors.
    const CE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 18);

    fn line() -> Line<'static> {
        Line {
            tun: "mape0",
            br: &BR,
            rule: RULE,
            iid: IidFormat::Rfc7597,
            ce_ipv6: CE_RFC,
            other: Some(CE_DRAFT),
            icmp_source: CE_V4,
        }
    }

    fn counters(wan_in: u64, wan_out: u64, drops: &[(&str, u64)]) -> LineCounters {
        LineCounters {
            wan_in,
            wan_out,
            drops: drops.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn run(answered: u32, before: LineCounters, after: LineCounters) -> ProbeRun {
        ProbeRun {
            target: T,
            sent: 3,
            answered,
            errors: Vec::new(),
            before,
            after,
        }
    }

    #[test]
    fn an_answer_is_ok_and_a_silent_second_target_is_named() {
        let ok = run(3, counters(10, 10, &[]), counters(13, 13, &[]));
        let mut silent = run(0, counters(13, 13, &[]), counters(13, 16, &[]));
        silent.target = Ipv4Addr::new(198, 51, 100, 99);
        let c = ipv4_probe_check(&[ok, silent], &line());
        assert_eq!((c.name, c.level), ("ipv4_probe", Level::Ok));
        assert_eq!(c.message, "IPv4 echo through the tunnel (BR 2001:db8:ffff::1) answered by 203.0.113.10 (3 of 3); 198.51.100.99 did not answer (a host may ignore echo)");
        assert!(c.fix.is_none());
    }

    #[test]
    fn nothing_out_is_the_route_or_the_named_nat_refusal() {
        let c = ipv4_probe_check(&[run(0, counters(5, 5, &[]), counters(5, 5, &[]))], &line());
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.message.contains("never entered the tunnel"),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("did not route them to mape0"),
            "{}",
            c.message
        );
        assert!(c
            .fix
            .unwrap()
            .starts_with("`ip route get 203.0.113.10` must name dev mape0"));
        // 3 refused by the destination filter; an older, unchanged count is not named.
        let before = counters(5, 5, &[("destination_filtered", 4), ("ttl_expired", 2)]);
        let after = counters(5, 5, &[("destination_filtered", 7), ("ttl_expired", 2)]);
        let c = ipv4_probe_check(&[run(0, before, after)], &line());
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.message.ends_with(
                "never entered the tunnel: the CE dropped them as destination_filtered (3)"
            ),
            "{}",
            c.message
        );
        assert!(c.fix.unwrap().contains("nat.allow_destinations"));
    }

    #[test]
    fn replies_from_another_source_name_map_br() {
        // 3 out, 3 back, all dropped: the BR answers from another address.
        let before = counters(0, 0, &[("unknown_tunnel_source", 25)]);
        let after = counters(3, 3, &[("unknown_tunnel_source", 28)]);
        let c = ipv4_probe_check(&[run(0, before, after)], &line());
        assert_eq!((c.name, c.level), ("ipv4_probe", Level::Fail));
        assert_eq!(c.message, "3 IPv4 echo requests to 203.0.113.10 went out to the BR (3 packets) and 3 packets came back, and the CE dropped 3 as unknown_tunnel_source: they arrive from an IPv6 source that is not the configured BR, so map.br (2001:db8:ffff::1) is wrong or the BR answers from another address (all drops meanwhile: unknown_tunnel_source (3))");
        assert_eq!(c.fix.as_deref(), Some(TUNNEL_SOURCE_FIX));
    }

    #[test]
    fn replies_dropped_as_spoofed_name_the_rule() {
        let after = counters(3, 3, &[("spoofed_source", 2), ("port_outside_set", 1)]);
        let c = ipv4_probe_check(&[run(0, counters(0, 0, &[]), after)], &line());
        assert_eq!(c.level, Level::Fail);
        assert!(c.message.contains("dropped 2 as spoofed_source: the BR maps addresses and ports otherwise than the rule 2001:db8::/40"), "{}", c.message);
        assert!(
            c.message
                .ends_with("(all drops meanwhile: spoofed_source (2), port_outside_set (1))"),
            "{}",
            c.message
        );
        assert_eq!(c.fix.as_deref(), Some(RULE_FIX));
    }

    #[test]
    fn silence_since_start_names_map_br_and_the_other_layout() {
        let c = ipv4_probe_check(&[run(0, counters(0, 2, &[]), counters(0, 5, &[]))], &line());
        assert_eq!(c.level, Level::Fail);
        // Packets in that the CE dropped (kernel noise on the TUN) are no delivery.
        let noise = counters(2, 2, &[("ipv6_not_ipip", 2)]);
        let c2 = ipv4_probe_check(
            &[run(
                0,
                noise.clone(),
                LineCounters {
                    wan_out: 5,
                    ..noise
                },
            )],
            &line(),
        );
        assert_eq!(c2.level, Level::Fail, "{}", c2.message);
        assert!(c.message.starts_with("3 IPv4 echo requests to 203.0.113.10 went out to the BR 2001:db8:ffff::1 (3 packets) and nothing came back since mape started: either map.br 2001:db8:ffff::1 is not the line's BR, or the BR derives other ports"), "{}", c.message);
        assert!(c.message.contains("(RFC 7597 §8.1), or the BR does not reach the MAP address 2001:db8:12:3400:0:c000:212:34, whose interface ID is in the rfc7597 layout"), "{}", c.message);
        assert!(c.message.contains("or the BR derives other ports from the rule 2001:db8::/40 -> 192.0.2.0/24 ea-len 16 psid-offset 6 psid-len 8 and drops ours as spoofed"), "{}", c.message);
        // The same words as br_replies (the other layout and the address it gives), then
        // the rule's.
        let br_replies = super::super::br_replies_check(
            (0, 40),
            1,
            120,
            IidFormat::Rfc7597,
            CE_RFC,
            Some(CE_DRAFT),
        );
        assert_eq!(
            c.fix,
            Some(format!(
                "{}; if the BR still answers nothing, {RULE_FIX}",
                br_replies.fix.unwrap_or_default()
            ))
        );
        assert!(c.fix.unwrap().contains("map.iid_format = \"draft03\" (the MAP address becomes 2001:db8:12:3400:c0:2:1200:3400)"));
        // A draft-03 CE is offered the RFC 7597 layout.
        let l = Line {
            iid: IidFormat::Draft03,
            ce_ipv6: CE_DRAFT,
            other: Some(CE_RFC),
            ..line()
        };
        let c = ipv4_probe_check(&[run(0, counters(0, 2, &[]), counters(0, 5, &[]))], &l);
        assert!(c.fix.unwrap().starts_with("try the RFC 7597 layout: map.iid_format = \"rfc7597\" (the MAP address becomes 2001:db8:12:3400:0:c000:212:34)"));
    }

    #[test]
    fn icmp_errors_from_the_ipv6_path_name_map_br_and_others_the_target() {
        // The CE translated 3 ICMPv6 errors (a host that is no BR) into ICMPv4 from 192.0.2.18.
        let mut r = run(0, counters(0, 0, &[]), counters(3, 3, &[]));
        r.errors = vec![(CE_V4, "Destination Port Unreachable".into())];
        let c = ipv4_probe_check(&[r.clone()], &line());
        assert_eq!(c.level, Level::Fail);
        assert_eq!(c.message, "3 IPv4 echo requests to 203.0.113.10 went out to the BR (3 packets) and 3 packets came back as ICMPv6 errors from the IPv6 path (the CE passed them on as \"Destination Port Unreachable\"): the tunnel packets to map.br 2001:db8:ffff::1 reach no BR that takes them, so map.br is probably wrong");
        assert!(c
            .fix
            .unwrap()
            .starts_with("check map.br against the line's BR"));
        // An error from the internet's router: the tunnel works, the target is away.
        r.errors = vec![(
            Ipv4Addr::new(203, 0, 113, 1),
            "Destination Host Unreachable".into(),
        )];
        let c = ipv4_probe_check(&[r], &line());
        assert_eq!(c.level, Level::Warn);
        assert!(c.message.ends_with("the tunnel works, but 203.0.113.1 answered \"Destination Host Unreachable\": 203.0.113.10 is unreachable beyond the BR"), "{}", c.message);
    }

    #[test]
    fn a_silent_target_on_a_working_tunnel_is_a_warning() {
        // The BR delivered 40 packets before; or other flows' replies came in meanwhile.
        for (before, after) in [
            (counters(40, 50, &[]), counters(40, 53, &[])),
            (counters(0, 0, &[]), counters(2, 5, &[])),
        ] {
            let c = ipv4_probe_check(&[run(0, before, after)], &line());
            assert_eq!(c.level, Level::Warn, "{}", c.message);
            assert!(
                c.message.contains("203.0.113.10 may ignore echo"),
                "{}",
                c.message
            );
        }
    }

    #[test]
    fn the_ping_summary_is_read() {
        let ok = "PING 203.0.113.10 (203.0.113.10) 56(84) bytes of data.\n\n--- 203.0.113.10 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 402ms\nrtt min/avg/max/mdev = 0.061/0.080/0.101/0.016 ms\n";
        assert_eq!(ping_counts(ok), Some((3, 3)));
        let lost = "--- 1.1.1.1 ping statistics ---\n3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2049ms\n";
        assert_eq!(ping_counts(lost), Some((3, 0)));
        assert_eq!(ping_counts("ping: connect: Network is unreachable\n"), None);
        let errs = "PING 203.0.113.10 (203.0.113.10) 56(84) bytes of data.\nFrom 192.0.2.18 icmp_seq=1 Destination Port Unreachable\nFrom 192.0.2.18 icmp_seq=2 Destination Port Unreachable\nFrom 203.0.113.1 icmp_seq=3 Destination Host Unreachable\n64 bytes from 203.0.113.10: icmp_seq=4 ttl=62 time=0.1 ms\n";
        assert_eq!(
            ping_errors(errs),
            vec![
                (
                    Ipv4Addr::new(192, 0, 2, 18),
                    "Destination Port Unreachable".to_string()
                ),
                (
                    Ipv4Addr::new(203, 0, 113, 1),
                    "Destination Host Unreachable".to_string()
                ),
            ]
        );
    }
}
