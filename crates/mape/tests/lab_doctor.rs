//! `mape doctor` names each misconfiguration injected into a running lab (issue 14, part 4):
//! the CE's daemon is restarted with one wrong setting, and doctor's end-to-end IPv4 probe
//! (ICMP echo from the CE through the tunnel to the internet server) must fail with the
//! finding and the fix that name the cause; the healthy lab passes, so each test can fail.
//!
//! Needs root and the lab's tools; skips otherwise (fails under CI).

use std::time::Duration;

use mape_lab::{addr, Lab, LabOptions};

mod common;
use common::{bin as mape, text};

/// A CE MAP address of another host that is no BR: held by the ISP router's kernel (on its
/// loopback), which has no MAP-E tunnel.
const NOT_A_BR: &str = "2001:db8:fffe::1";
/// The BR's second address (`LabOptions::br`, after the lab's BR): it accepts tunnel packets
/// sent there and answers from `addr::BR`.
const BR_SECOND: &str = "2001:db8:ffff::2";
/// The RFC 7597 Appendix A Example 1 CE's MAP address in the draft-03 layout (bytes 9-12
/// the IPv4 address 192.0.2.18, 13-14 the PSID 0x34).
const CE_MAP_DRAFT03: &str = "2001:db8:12:3400:c0:2:1200:3400";

/// `mape doctor --json --probe-ipv4 203.0.113.10` in the CE namespace: its exit code and
/// its checks by name (a name may repeat, e.g. `forwarding`: the last wins).
fn doctor(lab: &Lab) -> (Option<i32>, serde_json::Map<String, serde_json::Value>) {
    let m = mape().display().to_string();
    let cfg = lab.ce_config_path().display().to_string();
    let target = addr::SERVER.to_string();
    let o = lab
        .exec(
            &lab.ns("ce"),
            &[
                &m,
                "doctor",
                "--config",
                &cfg,
                "--json",
                "--probe-ipv4",
                &target,
            ],
        )
        .expect("doctor");
    (o.status.code(), by_name(&o))
}

/// Doctor's `--json` checks by name.
fn by_name(o: &std::process::Output) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), c.clone())))
        .collect()
}

/// The check `name`, which must have level `level`: its message and fix.
fn expect(
    checks: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    level: &str,
) -> (String, String) {
    let c = checks
        .get(name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"));
    assert_eq!(c["level"], level, "{name}: {c}");
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("message"), s("fix"))
}

/// A lab whose CE runs `change` applied to its configuration (the lab came up healthy).
fn lab_with(opts: LabOptions, change: impl Fn(&str) -> String) -> Option<Lab> {
    if !mape_lab::possible_or_skip("doctor lab tests") {
        return None;
    }
    let mut lab = Lab::up(opts).expect("lab up");
    let cfg = change(&lab.ce_config());
    assert_ne!(cfg, lab.ce_config(), "the change changed nothing");
    if let Err(e) = lab.restart_ce(&cfg, "ce-changed") {
        panic!("{e}: {}", lab.log("ce-changed"));
    }
    Some(lab)
}

fn with_br(cfg: &str, br: &str) -> String {
    cfg.replace(
        &format!("br = [\"{}\"]", addr::BR),
        &format!("br = [\"{br}\"]"),
    )
}

#[test]
fn a_healthy_line_passes_the_ipv4_probe() {
    if !mape_lab::possible_or_skip("doctor lab tests") {
        return;
    }
    let lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let (code, checks) = doctor(&lab);
    let (msg, _) = expect(&checks, "ipv4_probe", "ok");
    assert!(msg.contains("answered by 203.0.113.10 (3 of 3)"), "{msg}");
    assert_eq!(code, Some(0), "{checks:?}");
    for name in ["tunnel_source", "rule_match", "br_replies"] {
        expect(&checks, name, "ok");
    }
}

#[test]
fn the_other_iid_layout_is_named_when_the_br_expects_rfc7597() {
    // The BR derives the CE address in the RFC 7597 layout: whatever it sends goes to
    // that address, and nothing comes back to the draft-03 one the CE holds.
    let Some(lab) = lab_with(LabOptions::new(mape(), "mape"), |c| {
        c.replace("[map]\n", "[map]\niid_format = \"draft03\"\n")
    }) else {
        return;
    };
    let st = lab.ce_status().expect("status");
    assert!(
        serde_json::to_string(&st.map)
            .unwrap()
            .contains(CE_MAP_DRAFT03),
        "the CE does not use the draft-03 address"
    );
    let (code, checks) = doctor(&lab);
    assert_eq!(code, Some(1), "{checks:?}");
    let (msg, fix) = expect(&checks, "ipv4_probe", "fail");
    assert!(msg.contains("nothing came back"), "{msg}");
    assert!(
        msg.contains(&format!(
            "MAP address {CE_MAP_DRAFT03}, whose interface ID is in the draft03 layout"
        )),
        "{msg}"
    );
    assert!(
        fix.starts_with(&format!(
            "try the RFC 7597 layout: map.iid_format = \"rfc7597\" (the MAP address becomes {})",
            addr::CE_MAP
        )),
        "{fix}"
    );
}

#[test]
fn a_map_br_that_is_no_br_is_named() {
    let Some(lab) = lab_with(LabOptions::new(mape(), "mape"), |c| with_br(c, NOT_A_BR)) else {
        return;
    };
    let isp = lab.ns("isp");
    lab.exec_ok(
        &isp,
        &["ip", "addr", "add", &format!("{NOT_A_BR}/128"), "dev", "lo"],
    )
    .expect("address");
    let (code, checks) = doctor(&lab);
    assert_eq!(code, Some(1), "{checks:?}");
    // The host answers the tunnel packets with ICMPv6 errors (no IPv4-in-IPv6 there),
    // which the CE drops as unknown_tunnel_source; a host silent instead would leave
    // "nothing came back". Both name map.br.
    let (msg, fix) = expect(&checks, "ipv4_probe", "fail");
    assert!(
        msg.contains(&format!("map.br ({NOT_A_BR})"))
            || msg.contains(&format!("map.br {NOT_A_BR}")),
        "{msg}"
    );
    assert!(fix.contains("map.br"), "{fix}");
}

#[test]
fn a_br_answering_from_another_address_is_tunnel_source() {
    let mut opts = LabOptions::new(mape(), "mape");
    opts.br = vec![mape_lab::addr::BR.into(), BR_SECOND.into()];
    let Some(lab) = lab_with(opts, |c| with_br(c, BR_SECOND)) else {
        return;
    };
    // Enough traffic for the counters' finding (20 drops): 25 echo requests from lan1.
    let lan1 = lab.ns("lan1");
    let o = lab
        .exec(
            &lan1,
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                "25",
                "-i",
                "0.05",
                "-W",
                "1",
                "203.0.113.10",
            ],
        )
        .expect("ping");
    assert!(
        text(&o).contains("25 packets transmitted, 0 received"),
        "{}",
        text(&o)
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (code, checks) = doctor(&lab);
    assert_eq!(code, Some(1), "{checks:?}");
    let (msg, fix) = expect(&checks, "tunnel_source", "fail");
    assert!(
        msg.contains(&format!(
            "BR address is probably wrong (configured {BR_SECOND})"
        )),
        "{msg}"
    );
    assert!(fix.contains("map.br"), "{fix}");
    let (msg, fix) = expect(&checks, "ipv4_probe", "fail");
    assert!(
        msg.contains("as unknown_tunnel_source") && msg.contains(&format!("map.br ({BR_SECOND})")),
        "{msg}"
    );
    assert!(fix.contains("map.br"), "{fix}");
}

/// An HB46PP line whose server refuses connections at the CE's first start (no answer
/// stored yet): `mape run` has no rule and stops; doctor runs the same first round and
/// names its failing step with the fix.
#[test]
fn hb46pp_down_at_the_first_start_names_the_failing_step() {
    use mape_lab::hb46pp::{Hb46ppLab, HTTP};
    if !mape_lab::possible_or_skip("doctor lab tests") {
        return;
    }
    let mut lab = Hb46ppLab::up("doc").expect("HB46PP lab up");
    // Nothing listens on port 8 of the provisioning host: the connection is refused.
    lab.set_txt(Some(&format!("v=v6mig-1 url=http://[{HTTP}]:8/config t=a")))
        .expect("TXT");
    let cfg = lab.dir().join("ce.toml");
    std::fs::write(&cfg, lab.ce_config("")).expect("config");
    let (m, cfg) = (mape().display().to_string(), cfg.display().to_string());
    assert!(!lab.dir().join("ce-state/mape0.hb46pp.json").exists());
    let o = lab
        .exec_ce(&["timeout", "20", &m, "run", "ce", "--config", &cfg])
        .expect("mape run");
    let code = o.status.code();
    assert!(
        code.is_some_and(|c| c != 0 && c != 124),
        "mape run without a rule: {code:?} {}",
        text(&o)
    );
    let o = lab
        .exec_ce(&[&m, "doctor", "--config", &cfg, "--json", "--no-probe"])
        .expect("doctor");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let checks = by_name(&o);
    expect(&checks, "config", "fail");
    let (msg, fix) = expect(&checks, "provisioning", "fail");
    assert!(
        msg.starts_with("no rule to start with: the HB46PP round fails at unreachable"),
        "{msg}"
    );
    assert!(fix.contains("IPv6 default route"), "{fix}");
}

#[test]
fn a_psid_offset_other_than_the_brs_names_the_rule() {
    // The CE takes its ports with PSID offset 6, the BR derives the PSID with offset 4:
    // for every port of the CE's set (A << 10 | 0x34 << 2 | j) the BR's PSID is
    // (A & 3) << 6 | 0x0d, never 0x34, so it drops every packet as spoofed (§8.1).
    let Some(lab) = lab_with(LabOptions::new(mape(), "mape"), |c| {
        c.replace("psid_offset = 4\n", "psid_offset = 6\n")
    }) else {
        return;
    };
    let (code, checks) = doctor(&lab);
    assert_eq!(code, Some(1), "{checks:?}");
    let (msg, fix) = expect(&checks, "ipv4_probe", "fail");
    assert!(
        msg.contains("the BR derives other ports from the rule") && msg.contains("psid-offset 6"),
        "{msg}"
    );
    assert!(fix.contains("PSID offset"), "{fix}");
    let br = lab.br_status().expect("BR status");
    assert!(
        br.drops.get("spoofed_source").copied().unwrap_or(0) >= 3,
        "the BR dropped no probe as spoofed: {:?}",
        br.drops
    );
}

#[test]
fn routed_mode_on_an_onlink_line_asks_for_onlink() {
    // An RA-only line (the MAP address on the WAN's /64, found by neighbour discovery)
    // with the CE in routed mode: nobody answers the ISP router's neighbour
    // solicitations for the MAP address, so nothing comes back.
    let mut opts = LabOptions::new(mape(), "mape");
    opts.onlink = true;
    let Some(lab) = lab_with(opts, |c| {
        c.replace("map_address = \"onlink\"", "map_address = \"routed\"")
    }) else {
        return;
    };
    // The ISP router forgets what the on-link CE answered before the restart.
    lab.exec_ok(
        &lab.ns("isp"),
        &["ip", "-6", "neigh", "flush", "dev", "isp-ce"],
    )
    .expect("neigh flush");
    let (code, checks) = doctor(&lab);
    assert_eq!(code, Some(1), "{checks:?}");
    let (msg, fix) = expect(&checks, "prefix", "warn");
    assert!(
        msg.contains(&format!(
            "in the same /64 2001:db8:12:3400::/64 as the MAP address {}",
            addr::CE_MAP
        )),
        "{msg}"
    );
    assert!(fix.starts_with("set wan.map_address = \"onlink\""), "{fix}");
    let (msg, fix) = expect(&checks, "ipv4_probe", "fail");
    assert!(msg.contains("nothing came back"), "{msg}");
    assert!(
        fix.contains("the ISP routes map.prefix to this router"),
        "{fix}"
    );
}
