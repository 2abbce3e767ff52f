//! `mape provision hb46pp` against real servers (HB46PP §3.1-§3.4, §3.6): dnsmasq answers
//! the TXT record of `4over6.info`, python3's http.server the GET, over http, https
//! without verification (t=a) and https verified against a CA openssl made for the run
//! (t=b). Each case checks the JSON or the exit code of the failure class.
//!
//! Expected values are RFC 7597 Appendix A example 1 (2001:db8:12:3400::/56 with
//! 2001:db8::/40 → 192.0.2.0/24, EA 16, PSID offset 6: 192.0.2.18, PSID 0x34, 252 ports,
//! first range 1232-1235), and its draft-03 interface ID computed by hand: `8 bits 0 |
//! IPv4 | PSID (16) | 8 bits 0` = 00c0:0002:1200:3400.
//!
//! Needs root and the tools of scripts/install-deps.sh; skips without them, except under
//! CI=true. Servers are killed by PID and the namespaces removed also when a test fails.

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::fails;
use mape_lab::hb46pp::{Hb46ppLab, HTTP, HTTPS, HTTPS_NAME};
use serde_json::Value;

const PREFIX: &str = "2001:db8:12:3400::/56";

fn mape() -> String {
    PathBuf::from(env!("CARGO_BIN_EXE_mape"))
        .display()
        .to_string()
}

fn lab(tag: &str) -> Option<Hb46ppLab> {
    if !mape_lab::possible_or_skip("HB46PP lab tests") {
        return None;
    }
    Some(Hb46ppLab::up(tag).expect("lab up"))
}

fn answer(version: u8) -> String {
    format!(
        r#"{{"enabler_name": "Lab VNE", "service_name": "Lab 4over6", "ttl": 86400,
           "order": ["dslite", "map_e"], "dslite": {{"aftr": "aftr.lab.example"}},
           "map_e": {{"version": {version}, "mesh": 0, "br": "2001:db8:ffff::1",
           "rules": [{{"ipv6": "2001:db8::/40", "ipv4": "192.0.2.0/24", "ea_length": 16,
           "psid_offset": 6}}, {{"ipv6": "2001:db8:100::/40", "ipv4": "198.51.100.0/24",
           "ea_length": 16, "psid_offset": 6}}]}}}}"#
    )
}

fn route(path: &str, status: u16, body: &str, location: Option<&str>) -> String {
    let headers = match location {
        Some(l) => serde_json::json!({ "Location": l }),
        None => serde_json::json!({}),
    };
    serde_json::json!({ path: { "status": status, "body": body, "headers": headers } }).to_string()
}

fn provision(lab: &Hb46ppLab, extra: &[&str]) -> Output {
    provision_for(lab, PREFIX, extra)
}

fn provision_for(lab: &Hb46ppLab, prefix: &str, extra: &[&str]) -> Output {
    let m = mape();
    let dns = mape_lab::hb46pp::DNS;
    let mut args = vec![
        m.as_str(),
        "provision",
        "hb46pp",
        "--dns",
        dns,
        "--prefix",
        prefix,
        "--timeout",
        "2",
    ];
    args.extend_from_slice(extra);
    lab.exec_ce(&args).expect("run mape provision")
}

fn json_ok(o: &Output) -> Value {
    common::one_json_object(o, "")
}

#[test]
fn http_answers_and_every_server_branch() {
    let Some(mut lab) = lab("h") else { return };
    lab.set_txt(Some(&format!("v=v6mig-1 url=http://[{HTTP}]/config t=a")))
        .unwrap();

    // The normal answer, RFC 7597 interface ID.
    lab.set_routes(&route("/config", 200, &answer(1), None))
        .unwrap();
    let j = json_ok(&provision(&lab, &["--json"]));
    assert_eq!(j["ipv4"], "192.0.2.18");
    assert_eq!(j["psid"], 52);
    assert_eq!(j["psid_len"], 8);
    assert_eq!(j["port_count"], 252);
    assert_eq!(j["port_ranges"][0], serde_json::json!([1232, 1235]));
    assert_eq!(j["port_ranges"].as_array().map(Vec::len), Some(63));
    assert_eq!(j["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(j["br"], "2001:db8:ffff::1");
    assert_eq!(j["rule"]["ipv4_prefix"], "192.0.2.0/24");
    assert_eq!(j["source"], "hb46pp");
    assert_eq!(j["rule_source"], "hb46pp");
    assert_eq!(j["enabler_name"], "Lab VNE");
    assert_eq!(j["service_name"], "Lab 4over6");
    assert_eq!(j["ttl"], 86400);
    assert_eq!(j["mesh"], false);
    assert_eq!(j["iid_format"], "rfc7597");
    assert_eq!(j["rules_count"], 2);
    assert_eq!(j["url"], format!("http://[{HTTP}]/config"));
    assert_eq!(j["unsupported"], serde_json::json!(["dslite"]));
    // The GET carried the §3.3 parameters.
    let req = lab.requests().pop().unwrap();
    assert!(
        req.starts_with("/config?vendorid=acde48-mape&product=mape&version=0_"),
        "{req}"
    );
    assert!(
        req.ends_with("&capability=map_e%2Chubspoke%2Cmesh"),
        "{req}"
    );

    // Text output: what the server said, then the parameters.
    let o = provision(&lab, &[]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    for words in [
        "txt 4over6.info \"v=v6mig-1 url=http://",
        ": 200 (",
        "enabler Lab VNE",
        "offered, not run by mape: dslite",
        "ipv4 192.0.2.18/32 psid 52",
    ] {
        assert!(text.contains(words), "{words:?} not in {text}");
    }

    // version 0: the draft-03 interface ID.
    lab.set_routes(&route("/config", 200, &answer(0), None))
        .unwrap();
    let j = json_ok(&provision(&lab, &["--json"]));
    assert_eq!(j["ce_ipv6"], "2001:db8:12:3400:c0:2:1200:3400");
    assert_eq!(j["iid_format"], "draft03");
    assert_eq!(j["ipv4"], "192.0.2.18");

    // 307 to another path and then another server (https t=a keeps working).
    let routes = serde_json::json!({
        "/config": {"status": 307, "headers": {"Location": "/moved"}},
        "/moved": {"status": 307, "headers": {"Location": format!("https://[{HTTPS}]/final")}},
        "/final": {"status": 200, "body": answer(1)},
    });
    lab.set_routes(&routes.to_string()).unwrap();
    let j = json_ok(&provision(&lab, &["--json"]));
    assert_eq!(j["url"], format!("https://[{HTTPS}]/final"));
    assert_eq!(j["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");

    for status in [403, 404] {
        lab.set_routes(&route("/config", status, "", None)).unwrap();
        fails(&provision(&lab, &["--json"]), 6, &format!("{status}"));
    }
    lab.set_routes(&route("/config", 200, r#"{"order": []}"#, None))
        .unwrap();
    fails(&provision(&lab, &["--json"]), 7, "nothing is offered");
    let only = r#"{"order": ["dslite", "lw4o6", "map_t", "464xlat", "ipip"], "dslite": {"aftr": "a.example"}}"#;
    lab.set_routes(&route("/config", 200, only, None)).unwrap();
    fails(
        &provision(&lab, &["--json"]),
        7,
        "offers only dslite, lw4o6, map_t, 464xlat, ipip",
    );
    lab.set_routes(&route(
        "/config",
        200,
        "{\"order\": [\"map_e\"], \"ttl\": 9999999}",
        None,
    ))
    .unwrap();
    fails(&provision(&lab, &["--json"]), 8, "ttl 9999999 exceeds");
    lab.set_routes(&route("/config", 200, "<html>", None))
        .unwrap();
    fails(&provision(&lab, &["--json"]), 8, "not an HB46PP answer");
    lab.set_routes(&route("/config", 200, &answer(1), None))
        .unwrap();
    let o = provision_for(&lab, "2001:db8:ff00::/56", &["--json"]);
    fails(&o, 8, "no map_e rule covers 2001:db8:ff00::/56");

    // Nothing listens where the record points: unreachable.
    lab.set_txt(Some(
        "v=v6mig-1 url=http://[2001:db8:0:1::1]:8080/config t=a",
    ))
    .unwrap();
    fails(&provision(&lab, &["--json"]), 5, "no answer");
}

#[test]
fn https_with_and_without_verification() {
    let Some(mut lab) = lab("s") else { return };
    lab.set_routes(&route("/config", 200, &answer(1), None))
        .unwrap();
    let (ca, other) = (
        lab.ca().display().to_string(),
        lab.other_ca().display().to_string(),
    );

    // t=a: the lab CA is unknown to the client, and that is fine.
    lab.set_txt(Some(&format!("v=v6mig-1 url=https://[{HTTPS}]/config t=a")))
        .unwrap();
    assert_eq!(json_ok(&provision(&lab, &["--json"]))["ipv4"], "192.0.2.18");

    // t=b: verified against the lab CA; refused with an unknown CA or the public roots.
    lab.set_txt(Some(&format!("v=v6mig-1 url=https://[{HTTPS}]/config t=b")))
        .unwrap();
    let j = json_ok(&provision(&lab, &["--json", "--ca-file", &ca]));
    assert_eq!(j["url"], format!("https://[{HTTPS}]/config"));
    fails(
        &provision(&lab, &["--json", "--ca-file", &other]),
        5,
        "no answer",
    );
    fails(&provision(&lab, &["--json"]), 5, "no answer");

    // By name: the AAAA comes from the line's resolver (this host's resolv.conf does not
    // know the lab zone), the certificate is checked against the name.
    lab.set_txt(Some(&format!(
        "v=v6mig-1 url=https://{HTTPS_NAME}/config t=b"
    )))
    .unwrap();
    let j = json_ok(&provision(&lab, &["--json", "--ca-file", &ca]));
    assert_eq!(j["url"], format!("https://{HTTPS_NAME}/config"));
    lab.set_txt(Some(&format!("v=v6mig-1 url=https://[{HTTPS}]/config t=b")))
        .unwrap();

    // user/pass pinned to another server name: not sent; to this one: sent.
    let n = lab.requests().len();
    for server in ["prov.other.example", HTTPS] {
        let args = [
            "--json",
            "--ca-file",
            &ca,
            "--user",
            "u1",
            "--pass",
            "p1",
            "--server-name",
            server,
        ];
        json_ok(&provision(&lab, &args));
    }
    let reqs = lab.requests();
    assert!(!reqs[n].contains("user="), "{}", reqs[n]);
    assert!(reqs[n + 1].ends_with("&user=u1&pass=p1"), "{}", reqs[n + 1]);

    // t=b with an http url is not a usable record.
    lab.set_txt(Some(&format!("v=v6mig-1 url=http://[{HTTP}]/config t=b")))
        .unwrap();
    fails(&provision(&lab, &["--json"]), 8, "t=b with an http url");
}

#[test]
fn no_record_and_no_resolver() {
    let Some(mut lab) = lab("n") else { return };
    lab.set_txt(None).unwrap();
    fails(
        &provision(&lab, &["--json"]),
        3,
        "no TXT record for 4over6.info",
    );
    // A TXT record that is not HB46PP's.
    lab.set_txt(Some("v=spf1 -all")).unwrap();
    fails(&provision(&lab, &["--json"]), 8, "no v=v6mig-1");
    // A resolver address where nothing answers.
    let m = mape();
    let o = lab
        .exec_ce(&[
            &m,
            "provision",
            "hb46pp",
            "--dns",
            "2001:db8:0:1::1",
            "--prefix",
            PREFIX,
            "--timeout",
            "1",
            "--json",
        ])
        .unwrap();
    fails(&o, 4, "TXT lookup of 4over6.info failed");
}

/// `mape show status --json` of the lab's CE daemon.
fn status(lab: &Hb46ppLab) -> Value {
    common::status_json(|a| lab.exec_ce(a).expect("exec"), &lab.ce_socket())
}

fn status_until(lab: &Hb46ppLab, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    common::status_until(|| status(lab), secs, done)
}

fn routes6(lab: &Hb46ppLab) -> String {
    let o = lab
        .exec_ce(&["ip", "-6", "route", "show", "dev", "mape0"])
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The daemon with `method = "hb46pp"`: provisioned from the lab server; started again
/// while the server refuses connections, it runs on the stored answer and says so; when
/// the server is back (re-fetched at once on a WAN address change, HB46PP §3.6 k) with
/// another IPv4 prefix, it re-provisions in place: new address, routes replaced, the
/// change in status and in the log. `mape provision erase` then removes the answer.
#[test]
fn daemon_provisions_uses_the_stored_answer_and_changes_in_place() {
    let Some(mut lab) = lab("d") else { return };
    let good_txt = format!("v=v6mig-1 url=http://[{HTTP}]/config t=a");
    lab.set_txt(Some(&good_txt)).unwrap();
    lab.set_routes(&route("/config", 200, &answer(1), None))
        .unwrap();
    let config = lab.ce_config("");
    let m = mape();
    // 1. Provisioned from the server.
    let pid = lab.start_ce(&m, &config, "ce1").expect("CE daemon starts");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}");
    assert_eq!(s["map"]["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(s["map"]["rule_source"], "hb46pp");
    let p = &s["provisioning"];
    assert_eq!(p["method"], "hb46pp", "{s}");
    assert_eq!(p["source"], "hb46pp");
    assert_eq!(p["url"], format!("http://[{HTTP}]/config"));
    assert_eq!(p["enabler_name"], "Lab VNE");
    assert_eq!(p["from_store"], false);
    let fetched = p["fetched_at"].as_u64().expect("fetched_at");
    // ttl 86400: the next round a day after the fetch.
    assert_eq!(p["next_refresh_at"].as_u64(), Some(fetched + 86400), "{p}");
    assert!(p.get("last_failure").is_none(), "{p}");
    let store = lab.dir().join("ce-state/mape0.hb46pp.json");
    assert!(store.exists(), "answer stored");
    let st = lab.stop(pid);
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}\n{}",
        lab.log("ce1")
    );

    // 2. The server refuses connections at start: the stored answer is used.
    lab.set_txt(Some(&format!("v=v6mig-1 url=http://[{HTTP}]:8/config t=a")))
        .unwrap();
    let pid = lab
        .start_ce(&m, &config, "ce2")
        .expect("CE starts on the stored answer");
    let s = status(&lab);
    assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}");
    let p = &s["provisioning"];
    assert_eq!(p["from_store"], true, "{p}");
    assert_eq!(p["fetched_at"].as_u64(), Some(fetched));
    assert_eq!(p["last_failure"]["step"], "unreachable", "{p}");
    assert_eq!(p["last_failure"]["count"], 1);
    assert!(p["last_failure"]["since"].as_u64().unwrap() >= fetched);
    // The spec's back-off after no answer: 10 to 30 minutes.
    let wait =
        p["next_refresh_at"].as_u64().unwrap() - p["last_failure"]["since"].as_u64().unwrap();
    assert!((590..=1810).contains(&wait), "{wait}");

    // 3. The server is back with another IPv4 prefix; a WAN address change re-fetches.
    lab.set_txt(Some(&good_txt)).unwrap();
    let changed = answer(1).replacen("192.0.2.0/24", "198.51.100.0/24", 1);
    lab.set_routes(&route("/config", 200, &changed, None))
        .unwrap();
    for args in [
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:0:1::7/64",
            "dev",
            "ce-wan",
            "nodad",
        ][..],
        &["ip", "addr", "del", "2001:db8:0:1::2/64", "dev", "ce-wan"][..],
    ] {
        let o = lab.exec_ce(args).unwrap();
        assert!(o.status.success(), "{args:?}");
    }
    let s = status_until(&lab, 20, |s| s["provisioning"]["changes"] == 1);
    let p = &s["provisioning"];
    assert_eq!(p["changes"], 1, "{s}\n{}", lab.log("ce2"));
    assert_eq!(p["from_store"], false);
    assert!(p.get("last_failure").is_none(), "{p}");
    common::assert_moved_to_198_51_100_18(&s);
    let c = &p["last_change"];
    assert_eq!(c["sessions_dropped"], 0);
    let r = routes6(&lab);
    assert!(r.contains("2001:db8:12:3400:0:c633:6412:34"), "{r}");
    assert!(!r.contains("2001:db8:12:3400:0:c000:212:34"), "{r}");
    let log = lab.log("ce2");
    assert!(log.contains("provisioning_changed"), "{log}");
    assert!(log.contains("provisioning_recovered"), "{log}");
    // The stored answer is the new one.
    assert!(std::fs::read_to_string(&store)
        .unwrap()
        .contains("198.51.100.0/24"));
    let st = lab.stop(pid);
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}\n{}",
        lab.log("ce2")
    );

    // 4. Erased: nothing to start on while the server is down.
    let cfg_path = lab.dir().join("ce.toml").display().to_string();
    let o = lab
        .exec_ce(&[&m, "provision", "erase", "--config", &cfg_path])
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("erased "));
    assert!(!store.exists());
}
