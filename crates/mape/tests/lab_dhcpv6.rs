//! `mape provision dhcpv6` against a real DHCPv6 server: ISC Kea in the ISP namespace
//! delegates 2001:db8:12:3400::/56 and serves OPTION_S46_CONT_MAPE (RFC 7598 §5) with a
//! v6plus-shaped rule (PSID offset 4, PSID length 8: 240 ports in 15 ranges of 16).
//!
//! Expected values by hand (RFC 7597 §5.1, §6): rule 2001:db8::/40 → 192.0.2.0/24, EA 16;
//! the EA bits of 2001:db8:12:34 are 0x1234 → IPv4 suffix 0x12 (192.0.2.18), PSID 0x34
//! (52). With a = 4, k = 8 the ports are A·4096 + 52·16 + j for A = 1..15, j = 0..15: first
//! range 4928-4943, last 62272-62287. CE address 2001:db8:12:3400:0:c000:212:34. The same
//! rule is run through `mape calc` and the two JSON objects compared.
//!
//! Needs root and kea-dhcp6 (Debian kea-dhcp6-server, .ci/apt-packages.txt); skips without
//! them, except under CI=true. Kea is killed by PID and the namespaces removed also when a
//! test fails.

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::fails;
use mape_lab::dhcpv6::{Dhcpv6Lab, Offer, Timers, CE_WAN, DELEGATED};
use serde_json::Value;

fn mape() -> String {
    PathBuf::from(env!("CARGO_BIN_EXE_mape"))
        .display()
        .to_string()
}

fn lab(tag: &str) -> Option<Dhcpv6Lab> {
    if !mape_lab::possible_or_skip("DHCPv6 lab tests") {
        return None;
    }
    if !std::path::Path::new("/usr/sbin/kea-dhcp6").exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "kea-dhcp6 missing under CI (scripts/install-deps.sh installs it)"
        );
        eprintln!("skipping DHCPv6 lab tests: no kea-dhcp6");
        return None;
    }
    Some(Dhcpv6Lab::up(tag).expect("lab up"))
}

const TIMERS: Timers = Timers {
    t1: 3,
    t2: 5,
    preferred: 6,
    valid: 8,
};

fn offer() -> Offer {
    Offer::lab(TIMERS)
}

fn provision(lab: &Dhcpv6Lab, extra: &[&str]) -> Output {
    let m = mape();
    let mut args = vec![m.as_str(), "provision", "dhcpv6", "--interface", CE_WAN];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "8"]);
    }
    args.extend_from_slice(extra);
    lab.exec_ce(&args).expect("run mape provision dhcpv6")
}

/// `mape calc --json` with the lab's rule (the one Kea serves) for `prefix`.
fn calc(prefix: &str) -> Value {
    let out = common::stdout_ok(&[
        "calc",
        "--prefix",
        prefix,
        "--ipv6-prefix",
        "2001:db8::/40",
        "--ipv4-prefix",
        "192.0.2.0/24",
        "--ea-len",
        "16",
        "--psid-offset",
        "4",
        "--br",
        "2001:db8:ffff::1",
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn json_ok(lab: &Dhcpv6Lab, o: &Output) -> Value {
    common::one_json_object(o, &format!("\nkea: {}", lab.server_log()))
}

/// The lease lines Kea wrote for the delegated prefix: (expire, valid lifetime).
fn kea_leases(lab: &Dhcpv6Lab) -> Vec<(u64, u64)> {
    // memfile v6 columns: address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,
    // lease_type,iaid,prefix_len,...
    lab.leases()
        .lines()
        .filter(|l| l.starts_with("2001:db8:12:3400::,"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.get(3)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn kea_delegates_a_prefix_with_option_94_and_a_renew_extends_it() {
    let Some(mut lab) = lab("a") else { return };
    lab.serve(&offer()).unwrap();

    let j = json_ok(&lab, &provision(&lab, &["--json"]));
    assert_eq!(j["source"], "dhcpv6");
    assert_eq!(j["rule_source"], "dhcpv6");
    assert_eq!(j["interface"], CE_WAN);
    assert_eq!(j["delegated_prefix"], DELEGATED);
    assert_eq!(j["end_user_prefix"], DELEGATED);
    assert_eq!(j["t1"], 3);
    assert_eq!(j["t2"], 5);
    assert_eq!(j["preferred_lifetime"], 6);
    assert_eq!(j["valid_lifetime"], 8);
    assert_eq!(j["ipv4"], "192.0.2.18");
    assert_eq!(j["psid"], 52);
    assert_eq!(j["psid_len"], 8);
    assert_eq!(j["psid_offset"], 4);
    assert_eq!(j["port_count"], 240);
    let ranges = j["port_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 15);
    assert_eq!(ranges[0], serde_json::json!([4928, 4943]));
    assert_eq!(ranges[14], serde_json::json!([62272, 62287]));
    assert_eq!(j["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(j["br"], "2001:db8:ffff::1");
    assert_eq!(j["rule"]["ipv6_prefix"], "2001:db8::/40");
    assert_eq!(j["rule"]["ipv4_prefix"], "192.0.2.0/24");
    assert_eq!(j["rule"]["ea_len"], 16);
    assert_eq!(j["dns"], serde_json::json!(["2001:db8:0:1::53"]));
    assert_eq!(j["server_duid"], "00:03:00:01:0a:00:00:00:00:01");
    assert_eq!(j["renewed"], false);

    // The same rule through `mape calc`: every key calc prints agrees.
    let c = calc(DELEGATED);
    for (k, v) in c.as_object().unwrap() {
        if k != "rule_source" {
            assert_eq!(&j[k], v, "key {k}");
        }
    }

    // Kea recorded the lease for the client's DUID-LL.
    let first = kea_leases(&lab);
    assert!(!first.is_empty(), "leases: {}", lab.leases());

    // --renew: T1 (3 s) later a Renew, answered; the lease in Kea's file now ends later.
    let o = provision(&lab, &["--renew"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    for words in [
        "send Solicit xid",
        "recv Advertise xid",
        "send Request xid",
        "send Renew xid",
        "prefix 2001:db8:12:3400::/56 valid 8",
        "s46-cont-mape",
        "(renewed)",
        "ipv4 192.0.2.18/32 psid 52",
    ] {
        assert!(text.contains(words), "{words:?} not in {text}");
    }
    let after = kea_leases(&lab);
    let max = |v: &[(u64, u64)]| v.iter().map(|l| l.0).max().unwrap_or(0);
    assert!(
        after.len() > first.len(),
        "the Renew was recorded: {after:?}"
    );
    // The Renew, at least T1 (3 s) after the first lease, moved its end by as much.
    assert!(
        max(&after) >= max(&first) + 3,
        "Renew extended the lease: {first:?} -> {after:?}"
    );
    assert!(after.iter().all(|l| l.1 == 8));

    // --renew --json says renewed.
    let j = json_ok(&lab, &provision(&lab, &["--renew", "--json"]));
    assert_eq!(j["renewed"], true);
    assert_eq!(j["delegated_prefix"], DELEGATED);
}

#[test]
fn failure_classes_have_their_exit_codes() {
    let Some(mut lab) = lab("f") else { return };
    // No server: 5 after --timeout.
    fails(
        &provision(&lab, &["--json", "--timeout", "2"]),
        5,
        "no DHCPv6 server answered on ce-wan",
    );
    // No pool: Kea answers NoPrefixAvail: 7.
    lab.serve(&Offer {
        pool: None,
        ..offer()
    })
    .unwrap();
    fails(
        &provision(&lab, &["--json", "--timeout", "3"]),
        7,
        "NoPrefixAvail",
    );
    // A prefix but no option 94: 7.
    lab.serve(&Offer {
        s46: false,
        ..offer()
    })
    .unwrap();
    fails(
        &provision(&lab, &["--json"]),
        7,
        "no OPTION_S46_CONT_MAPE (94)",
    );
    // A prefix the rule does not cover: 8.
    lab.serve(&Offer {
        pool: Some("2001:db9:12:3400::/56"),
        ..offer()
    })
    .unwrap();
    fails(
        &provision(&lab, &["--json"]),
        8,
        "not covered by any S46_RULE",
    );
    // An unknown interface: usage error.
    let o = lab
        .exec_ce(&[&mape(), "provision", "dhcpv6", "--interface", "nope0"])
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// An RA-only line: Kea delegates nothing (no pool: a Solicit gets NoPrefixAvail) but
/// answers an Information-request (RFC 8415 §18.2.6) with option 94 and an Information
/// Refresh Time of 900 s. `--stateless` resolves the rule for `--prefix` (by hand, module
/// documentation: 192.0.2.18, PSID 52) and, without it, for ce-wan's global address
/// 2001:db8:0:1::2: its EA bits (bits 40-55) are 0, so 192.0.2.0, PSID 0, CE address
/// 2001:db8:0:1:0:c000:200:0 (RFC 7597 §6). Both are checked against `mape calc` too.
#[test]
fn stateless_information_request_gets_option_94_on_an_ra_only_line() {
    let Some(mut lab) = lab("s") else { return };
    lab.serve(&Offer {
        pool: None,
        refresh: Some(900),
        ..offer()
    })
    .unwrap();
    fails(
        &provision(&lab, &["--json", "--timeout", "3"]),
        7,
        "NoPrefixAvail",
    );
    let j = json_ok(
        &lab,
        &provision(
            &lab,
            &["--stateless", "--prefix", "2001:db8:12:3400::/64", "--json"],
        ),
    );
    assert_eq!(j["source"], "dhcpv6");
    assert_eq!(j["mode"], "stateless");
    assert_eq!(j["ipv4"], "192.0.2.18", "{j}");
    assert_eq!(j["psid"], 52);
    assert_eq!(j["refresh"], 900);
    assert_eq!(j["server_duid"], "00:03:00:01:0a:00:00:00:00:01");
    assert_eq!(j["dns"][0], "2001:db8:0:1::53");
    let c = calc("2001:db8:12:3400::/64");
    for k in [
        "ipv4",
        "psid",
        "psid_len",
        "port_ranges",
        "port_count",
        "ce_ipv6",
    ] {
        assert_eq!(j[k], c[k], "{k}: {j}\n{c}");
    }
    let j = json_ok(&lab, &provision(&lab, &["--stateless", "--json"]));
    assert_eq!(j["end_user_prefix"], "2001:db8:0:1::2/128", "{j}");
    assert_eq!(j["ipv4"], "192.0.2.0");
    assert_eq!(j["psid"], 0);
    assert_eq!(j["ce_ipv6"], "2001:db8:0:1:0:c000:200:0");
    let c = calc("2001:db8:0:1::2/128");
    for k in ["ipv4", "psid", "port_ranges", "ce_ipv6"] {
        assert_eq!(j[k], c[k], "{k}: {j}\n{c}");
    }
    // Without option 94: nothing offered.
    lab.serve(&Offer {
        pool: None,
        s46: false,
        ..offer()
    })
    .unwrap();
    fails(
        &provision(&lab, &["--stateless", "--json"]),
        7,
        "Information-request has no OPTION_S46_CONT_MAPE (94)",
    );
}

/// The daemon on that RA-only line (`mode = "stateless"`, the MAP address on-link): the
/// rule from Kea's Reply to Information-request for the WAN's address, the refresh time in
/// status; a new WAN address (a new RA prefix) re-provisions in place; restarted with Kea
/// down, it runs on the stored Reply (nothing expires).
#[test]
fn daemon_runs_stateless_on_an_ra_only_line() {
    let Some(mut lab) = lab("t") else { return };
    lab.serve(&Offer {
        pool: None,
        refresh: Some(900),
        ..offer()
    })
    .unwrap();
    let m = mape();
    let config = lab.ce_config("mode = \"stateless\"\n").replace(
        "interface = \"ce-wan\"\n",
        "interface = \"ce-wan\"\nmap_address = \"onlink\"\n",
    );
    let pid = lab.start_ce(&m, &config, "ce1").expect("CE daemon starts");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "192.0.2.0", "{s}\n{}", lab.log("ce1"));
    assert_eq!(s["map"]["psid"], 0);
    assert_eq!(s["map"]["ce_ipv6"], "2001:db8:0:1:0:c000:200:0");
    assert_eq!(s["map"]["rule_source"], "dhcpv6");
    let p = &s["provisioning"];
    assert_eq!(p["source"], "dhcpv6", "{s}");
    assert_eq!(p["stateless_end_user"], "2001:db8:0:1::/64", "{p}");
    assert!(p.get("delegated_prefix").is_none(), "{p}");
    assert!(p.get("expires_at").is_none(), "{p}");
    assert_eq!(p["from_store"], false);
    let fetched = p["fetched_at"].as_u64().expect("fetched_at");
    assert_eq!(p["next_refresh_at"].as_u64(), Some(fetched + 900), "{p}");
    assert!(routes(&lab, "-4").contains("default"));
    assert!(lab.dir().join("ce-state/mape0.dhcpv6-info.json").exists());

    // A new RA prefix: the WAN's address moves to 2001:db8:12:3400::1. The client asks
    // again (§18.2.12) and the same rule, resolved for the new address, gives RFC 7597
    // example 1's values (module documentation): changed in place.
    for cmd in [
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:12:3400::1/64",
            "dev",
            CE_WAN,
            "nodad",
        ][..],
        &[
            "ip",
            "-6",
            "addr",
            "del",
            "2001:db8:0:1::2/64",
            "dev",
            CE_WAN,
        ][..],
    ] {
        assert!(lab.exec_ce(cmd).unwrap().status.success(), "{cmd:?}");
    }
    let s = status_until(&lab, 20, |s| s["map"]["ipv4"] == "192.0.2.18");
    assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}\n{}", lab.log("ce1"));
    assert_eq!(s["map"]["psid"], 52);
    assert_eq!(s["map"]["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(s["provisioning"]["changes"], 1, "{s}");
    assert_eq!(
        s["provisioning"]["stateless_end_user"],
        "2001:db8:12:3400::/64"
    );
    assert!(routes(&lab, "-6").contains("2001:db8:12:3400:0:c000:212:34"));
    assert!(lab.log("ce1").contains("provisioning_changed"));
    stop_ok(&mut lab, pid, "ce1");

    lab.stop();
    let pid = lab
        .start_ce(&m, &config, "ce2")
        .expect("CE starts on the stored Reply");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}\n{}", lab.log("ce2"));
    assert_eq!(s["provisioning"]["from_store"], true, "{s}");
    assert!(s["provisioning"].get("stopped").is_none(), "{s}");
    stop_ok(&mut lab, pid, "ce2");
}

/// Stops the CE daemon `pid` and requires a clean exit (its log `log` otherwise).
fn stop_ok(lab: &mut Dhcpv6Lab, pid: u32, log: &str) {
    let st = lab.stop_pid(pid);
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", lab.log(log));
}

fn status(lab: &Dhcpv6Lab) -> Value {
    common::status_json(|a| lab.exec_ce(a).expect("exec"), &lab.ce_socket())
}

fn status_until(lab: &Dhcpv6Lab, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    common::status_until(|| status(lab), secs, done)
}

fn routes(lab: &Dhcpv6Lab, family: &str) -> String {
    let o = lab
        .exec_ce(&["ip", family, "route", "show", "dev", "mape0"])
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The daemon with `method = "dhcpv6"` and no rule in `[map]`: mape's own client gets the
/// prefix and option 94 from Kea and the daemon runs on them (values by hand in the module
/// documentation; the Kea lab has no BR, so the resolved parameters, routes and status are
/// checked, not IPv4 through a BR). Kea then serves another IPv4 prefix: the Renew at T1
/// re-provisions in place. Restarted while Kea is down, the daemon runs on the stored
/// lease; when that lease's valid lifetime ends MAP-E stops (IPv4 default route removed,
/// status and event), and Kea back gives a new lease: MAP-E runs again.
#[test]
fn daemon_provisions_from_kea_renews_changes_in_place_and_stops_at_lease_end() {
    let Some(mut lab) = lab("d") else { return };
    let timers = Timers {
        t1: 3,
        t2: 5,
        preferred: 10,
        valid: 12,
    };
    lab.serve(&Offer { timers, ..offer() }).unwrap();
    let m = mape();
    let config = lab.ce_config("");
    // 1. Provisioned from Kea.
    let pid = lab.start_ce(&m, &config, "ce1").expect("CE daemon starts");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}\n{}", lab.log("ce1"));
    assert_eq!(s["map"]["psid"], 52);
    assert_eq!(s["map"]["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(s["map"]["rule_source"], "dhcpv6");
    let p = &s["provisioning"];
    assert_eq!(p["method"], "dhcpv6", "{s}");
    assert_eq!(p["source"], "dhcpv6");
    assert_eq!(p["delegated_prefix"], DELEGATED);
    // Kea's server-id: DUID-LL, htype 1, 0a:00:00:00:00:01 (the lab's Kea config).
    assert_eq!(p["server"], "00:03:00:01:0a:00:00:00:00:01");
    assert_eq!(p["from_store"], false);
    let fetched = p["fetched_at"].as_u64().expect("fetched_at");
    assert_eq!(p["next_refresh_at"].as_u64(), Some(fetched + 3), "{p}");
    assert_eq!(p["rebind_at"].as_u64(), Some(fetched + 5), "{p}");
    assert_eq!(p["expires_at"].as_u64(), Some(fetched + 12), "{p}");
    assert!(p.get("stopped").is_none(), "{p}");
    assert!(routes(&lab, "-6").contains("2001:db8:12:3400:0:c000:212:34"));
    assert!(routes(&lab, "-4").contains("default"));
    let store = lab.dir().join("ce-state/mape0.dhcpv6.json");
    assert!(store.exists(), "lease stored");

    // 2. Kea serves another IPv4 prefix; the Renew at T1 brings it: changed in place.
    lab.serve(&Offer {
        timers,
        ipv4: "198.51.100.0",
        ..offer()
    })
    .unwrap();
    let s = status_until(&lab, 15, |s| s["provisioning"]["changes"] == 1);
    let p = &s["provisioning"];
    assert_eq!(p["changes"], 1, "{s}\n{}", lab.log("ce1"));
    common::assert_moved_to_198_51_100_18(&s);
    let r = routes(&lab, "-6");
    assert!(r.contains("2001:db8:12:3400:0:c633:6412:34"), "{r}");
    assert!(!r.contains("2001:db8:12:3400:0:c000:212:34"), "{r}");
    assert!(lab.log("ce1").contains("provisioning_changed"));
    stop_ok(&mut lab, pid, "ce1");

    // 3. Kea down at start: the stored lease (still valid) is used.
    lab.stop();
    let pid = lab
        .start_ce(&m, &config, "ce2")
        .expect("CE starts on the stored lease");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "198.51.100.18", "{s}\n{}", lab.log("ce2"));
    assert_eq!(s["provisioning"]["from_store"], true, "{s}");
    let fast = s["fast_path"]["active"].clone();

    // 4. Its valid lifetime ends without a Reply: MAP-E stops.
    let s = status_until(&lab, 20, |s| s["provisioning"].get("stopped").is_some());
    let p = &s["provisioning"];
    assert!(
        p["stopped"]
            .as_str()
            .is_some_and(|w| w.contains("DHCPv6 lease of 2001:db8:12:3400::/56 ended")),
        "{s}\n{}",
        lab.log("ce2")
    );
    assert!(
        !routes(&lab, "-4").contains("default"),
        "IPv4 route removed"
    );
    // No flow goes on through the kernel fast path either.
    assert_eq!(s["fast_path"]["active"], false, "{s}");
    assert!(lab.log("ce2").contains("provisioning_stopped"));

    // 5. Kea back: a new lease, MAP-E runs again.
    lab.serve(&Offer {
        timers,
        ipv4: "198.51.100.0",
        ..offer()
    })
    .unwrap();
    let s = status_until(&lab, 45, |s| s["provisioning"].get("stopped").is_none());
    let p = &s["provisioning"];
    assert!(p.get("stopped").is_none(), "{s}\n{}", lab.log("ce2"));
    assert_eq!(p["from_store"], false);
    assert_eq!(s["map"]["ipv4"], "198.51.100.18");
    assert!(routes(&lab, "-4").contains("default"));
    assert!(routes(&lab, "-6").contains("2001:db8:12:3400:0:c633:6412:34"));
    assert!(lab.log("ce2").contains("provisioning_resumed"));
    assert_eq!(
        s["fast_path"]["active"], fast,
        "fast path as before the stop: {s}"
    );
    stop_ok(&mut lab, pid, "ce2");
}

/// End to end on the full lab (LAN hosts, the BR, the internet): its CE started with
/// `method = "dhcpv6"` and no rule (not even `[map] prefix`) gets the delegated prefix and
/// the rule from Kea on the ISP link, and IPv4 from lan1 reaches the internet through the
/// BR (ping, and an HTTP fetch); the MAP address and CE address are the hand-computed ones
/// of the module documentation.
#[test]
fn ipv4_goes_through_the_br_on_the_rule_kea_serves() {
    if !mape_lab::possible_or_skip("DHCPv6 lab tests")
        || !std::path::Path::new("/usr/sbin/kea-dhcp6").exists()
    {
        return;
    }
    let mut lab = mape_lab::Lab::up(mape_lab::LabOptions::new(PathBuf::from(mape()), "mape"))
        .expect("lab up");
    // The lab's CE runs the explicit rule: stopped, started again with none.
    let first = lab.ce_pid().expect("CE pid");
    assert!(lab.stop_pid(first).is_some_and(|s| s.success()));
    lab.serve_dhcpv6(&Offer {
        timers: Timers {
            t1: 30,
            t2: 50,
            preferred: 60,
            valid: 90,
        },
        ..offer()
    })
    .expect("Kea on the ISP link");
    let config = lab.dhcpv6_ce_config();
    let (ce, sock) = (lab.ns("ce"), lab.ce_socket());
    let m = mape();
    let pid = lab
        .start_ce_in(&ce, &m, &config, &sock, "ce-dhcpv6")
        .expect("CE daemon starts on Kea's rule");
    let s = common::status_json(|a| lab.exec(&ce, a).expect("exec"), &sock);
    assert_eq!(
        s["map"]["ipv4"],
        "192.0.2.18",
        "{s}\n{}",
        lab.log("ce-dhcpv6")
    );
    assert_eq!(s["map"]["ce_ipv6"], mape_lab::addr::CE_MAP);
    assert_eq!(s["provisioning"]["source"], "dhcpv6");
    assert_eq!(s["provisioning"]["delegated_prefix"], DELEGATED);
    let lan1 = lab.ns("lan1");
    let o = lab
        .exec(&lan1, &["ping", "-c", "3", "-W", "2", "203.0.113.10"])
        .unwrap();
    assert!(
        o.status.success(),
        "ping through the BR: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        lab.log("ce-dhcpv6")
    );
    let o = lab
        .exec(
            &lan1,
            &[
                "curl",
                "-s",
                "-f",
                "-m",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://203.0.113.10/10mb.bin",
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "200",
        "HTTP through the BR"
    );
    assert!(lab.stop_pid(pid).is_some_and(|s| s.success()));
}
