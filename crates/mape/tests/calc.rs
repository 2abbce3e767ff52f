//! End-to-end checks of `mape calc`: runs the built binary.

use serde_json::Value;

mod common;
use common::run as mape;

fn json(args: &[&str]) -> Value {
    let text = common::stdout_ok(args);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "exactly one JSON object: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Bad input → exit 2, exactly one line on stderr containing `needle`, no panic.
fn fails(args: &[&str], needle: &str) {
    let out = mape(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    assert!(err.starts_with("mape: "), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
}

const EX1: &[&str] = &[
    "calc",
    "--prefix",
    "2001:db8:12:3400::/56",
    "--ipv6-prefix",
    "2001:db8::/40",
    "--ipv4-prefix",
    "192.0.2.0/24",
    "--ea-len",
    "16",
];

/// RFC 7597 Appendix A, example 1, the JSON contract.
#[test]
fn rfc7597_appendix_a_example_1_json() {
    let mut args = EX1.to_vec();
    args.extend(["--psid-offset", "6", "--json"]);
    let d = json(&args);
    assert_eq!(d["ipv4"], "192.0.2.18");
    assert_eq!(d["ipv4_len"], 32);
    assert_eq!(d["psid"], 52);
    assert_eq!(d["psid_len"], 8);
    assert_eq!(d["psid_offset"], 6);
    assert_eq!(d["ea_len"], 16);
    assert_eq!(d["port_count"], 252);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(d["br"], Value::Null);
    assert_eq!(d["rule"]["ipv6_prefix"], "2001:db8::/40");
    assert_eq!(d["rule"]["ipv4_prefix"], "192.0.2.0/24");
    let r = d["port_ranges"].as_array().unwrap();
    assert_eq!(r.len(), 63);
    assert_eq!(r[0], serde_json::json!([1232, 1235]));
    assert_eq!(r[1], serde_json::json!([2256, 2259]));
    assert_eq!(r[62], serde_json::json!([64720, 64723]));
    // --psid-offset defaults to 6; --br fills "br".
    let mut args = EX1.to_vec();
    args.extend(["--br", "2001:db8:ffff::1", "--json"]);
    let d2 = json(&args);
    assert_eq!(d2["psid_offset"], 6);
    assert_eq!(d2["port_ranges"], d["port_ranges"]);
    assert_eq!(d2["br"], "2001:db8:ffff::1");
}

/// Human output: the summary and folded ranges, within 80 columns.
#[test]
fn text_output_fits_80_columns() {
    let out = mape(EX1);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ipv4 192.0.2.18/32 psid 52"), "{text}");
    assert!(text.contains("ce 2001:db8:12:3400:0:c000:212:34"), "{text}");
    assert!(text.contains("64720-64723"), "{text}");
    assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    assert!(text.lines().count() < 20, "{text}");
}

/// RFC 7597 App. A ex. 4 (k = 0) and ex. 5 (--psid from DHCPv6 PORTPARAMS).
#[test]
fn rfc7597_appendix_a_examples_4_and_5() {
    let base = [
        "calc",
        "--prefix",
        "2001:db8:12:3400::/56",
        "--ipv6-prefix",
        "2001:db8:12:3400::/56",
        "--ipv4-prefix",
        "192.0.2.18/32",
        "--ea-len",
        "0",
        "--json",
    ];
    let d = json(&base);
    assert_eq!(d["psid"], Value::Null);
    assert_eq!(d["psid_len"], 0);
    assert_eq!(d["port_count"], 65536);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:0");
    let mut args = base.to_vec();
    args.extend(["--psid-len", "8", "--psid", "0x34"]);
    let d = json(&args);
    assert_eq!(d["psid"], 52);
    assert_eq!(d["port_count"], 252);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
}

/// EA bits shorter than the IPv4 suffix: an IPv4 prefix, psid_len 0.
#[test]
fn ipv4_prefix_result() {
    let d = json(&[
        "calc",
        "--prefix",
        "2001:db8:12:3400::/56",
        "--ipv6-prefix",
        "2001:db8::/40",
        "--ipv4-prefix",
        "10.0.0.0/8",
        "--ea-len",
        "16",
        "--json",
    ]);
    assert_eq!(d["ipv4"], "10.18.52.0");
    assert_eq!(d["ipv4_len"], 24);
    assert_eq!(d["psid_len"], 0);
}

/// mape-facts §4: the v6plus worked example through the profile, both IID formats, and a
/// CE address given instead of the prefix.
#[test]
fn v6plus_profile() {
    let d = json(&[
        "calc",
        "--prefix",
        "240b:13:1a65:a100::/56",
        "--profile",
        "v6plus",
        "--json",
    ]);
    assert_eq!(d["ipv4"], "14.9.26.101");
    assert_eq!(d["psid"], 161);
    assert_eq!(d["psid_offset"], 4);
    assert_eq!(d["port_count"], 240);
    assert_eq!(d["port_ranges"][0], serde_json::json!([6672, 6687]));
    assert_eq!(d["port_ranges"][14], serde_json::json!([64016, 64031]));
    assert_eq!(d["ce_ipv6"], "240b:13:1a65:a100:e:91a:6500:a100");
    assert_eq!(d["br"], "2404:9200:225:100::64");
    assert_eq!(d["rule"]["ipv6_prefix"], "240b:12::/31");
    assert_eq!(d["profile"], "v6plus");
    assert_eq!(d["rule_source"], "community-measured");
    let d = json(&[
        "calc",
        "--prefix",
        "240b:13:1a65:a100::/56",
        "--profile",
        "v6plus",
        "--iid-format",
        "rfc7597",
        "--json",
    ]);
    assert_eq!(d["ce_ipv6"], "240b:13:1a65:a100:0:e09:1a65:a1");
    let d = json(&[
        "calc",
        "--prefix",
        "240b:13:1a65:a100:e:91a:6500:a100",
        "--profile",
        "v6plus",
        "--json",
    ]);
    assert_eq!(d["ce_ipv6"], "240b:13:1a65:a100:e:91a:6500:a100");
    assert_eq!(d["psid"], 161);
    // Explicit rule with --legacy-iid gives the same as the profile.
    let d = json(&[
        "calc",
        "--prefix",
        "240b:13:1a65:a100::/56",
        "--ipv6-prefix",
        "240b:12::/31",
        "--ipv4-prefix",
        "14.8.0.0/15",
        "--ea-len",
        "25",
        "--psid-offset",
        "4",
        "--legacy-iid",
        "--json",
    ]);
    assert_eq!(d["ce_ipv6"], "240b:13:1a65:a100:e:91a:6500:a100");
}

#[test]
fn ocn_profile_and_list() {
    let d = json(&[
        "calc",
        "--prefix",
        "2400:4050:123:4500::/56",
        "--profile",
        "ocn",
        "--json",
    ]);
    assert_eq!(d["port_count"], 1008);
    assert_eq!(d["br"], "2001:380:a120::9");
    let out = mape(&["calc", "--list-profiles"]);
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    for name in ["v6plus", "biglobe", "ocn"] {
        assert!(t.contains(name), "{t}");
    }
}

/// RFC 7598 options as hex: RFC 7597 App. A ex. 1 and ex. 5 domains.
#[test]
fn dhcpv6_hex() {
    let ex1 = "005e002d 00590015 01 10 18 c0000200 28 20010db800 005d0004 06 08 0000 \
               005a0010 20010db8ffff00000000000000000001";
    let d = json(&[
        "calc",
        "--dhcpv6",
        ex1,
        "--prefix",
        "2001:db8:12:3400::/56",
        "--json",
    ]);
    assert_eq!(d["ipv4"], "192.0.2.18");
    assert_eq!(d["psid"], 52);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(d["br"], "2001:db8:ffff::1");
    assert_eq!(d["rule_source"], "dhcpv6");
    let ex5 = "005e002f00590017000020c0000212382001 0db8001234005d0004060834 00005a0010\
               20010db8ffff00000000000000000001";
    let d = json(&[
        "calc",
        "--dhcpv6",
        ex5,
        "--prefix",
        "2001:db8:12:3400::/56",
        "--json",
    ]);
    assert_eq!(d["psid"], 52);
    assert_eq!(d["port_count"], 252);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let rule = [
        "--ipv6-prefix",
        "2001:db8::/40",
        "--ipv4-prefix",
        "192.0.2.0/24",
        "--ea-len",
        "16",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["calc"];
        v.extend(rule);
        v.extend(extra);
        v
    };
    fails(
        &with(&["--prefix", "2001:db9::/56", "--json"]),
        "--prefix 2001:db9::/56 is not inside rule prefix 2001:db8::/40",
    );
    fails(&with(&["--prefix", "2001:db8:12::/48"]), "needs /56");
    fails(&with(&["--prefix", "2001:db8:12:3400::/129"]), "--prefix");
    fails(&with(&["--prefix", "banana"]), "--prefix");
    fails(
        &with(&["--prefix", "2001:db8:12:3400::/56", "--psid-len", "7"]),
        "impossible rule",
    );
    fails(
        &with(&["--prefix", "2001:db8:12:3400::/56", "--psid-offset", "9"]),
        "impossible rule",
    );
    fails(
        &with(&["--prefix", "2001:db8:12:3400::/56", "--br", "nope"]),
        "--br",
    );
    fails(
        &[
            "calc",
            "--prefix",
            "2001:db8::/56",
            "--ipv6-prefix",
            "2001:db8::/8",
            "--ipv4-prefix",
            "0.0.0.0/0",
            "--ea-len",
            "48",
        ],
        "impossible rule",
    );
    fails(
        &[
            "calc",
            "--prefix",
            "2001:db8::/56",
            "--ipv6-prefix",
            "2001:db8::/40",
            "--ipv4-prefix",
            "192.0.2.0/33",
            "--ea-len",
            "16",
        ],
        "--ipv4-prefix",
    );
    fails(&["calc", "--prefix", "2001:db8::/56"], "--ipv6-prefix");
    fails(
        &["calc", "--prefix", "2001:db8::/56", "--profile", "v6plus"],
        "not covered by any rule of profile v6plus",
    );
    fails(
        &["calc", "--prefix", "2001:db8::/56", "--profile", "nosuch"],
        "unknown profile",
    );
    fails(
        &["calc", "--prefix", "2001:db8::/56", "--dhcpv6", "xyz"],
        "--dhcpv6",
    );
    fails(
        &["calc", "--prefix", "2001:db8::/56", "--dhcpv6", "005e00"],
        "--dhcpv6",
    );
    fails(
        &[
            "calc",
            "--prefix",
            "2001:db8::/56",
            "--dhcpv6",
            "0001000100",
        ],
        "--dhcpv6",
    );
    fails(
        &[
            "calc",
            "--prefix",
            "2001:db8::/56",
            "--dhcpv6",
            "005e0004005b0000",
        ],
        "not permitted",
    );
    fails(
        &["calc", "--prefix", "2001:db8::/56", "--iid-format", "weird"],
        "--iid-format",
    );
    fails(&["calc"], "--prefix");
    // clap's own usage errors also exit 2 and never panic.
    let out = mape(&["calc", "--ea-len", "300"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
