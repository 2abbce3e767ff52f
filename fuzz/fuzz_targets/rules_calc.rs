//! Arbitrary rule parameters and End-user prefix: building the rule and mapping never
//! panic, and any computed port set / CE address round-trips (RFC 7597 §5.2, §5.3, §6).
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mape_rules::{IidFormat, Ipv4Net, Ipv6Net, Rule, RuleSpec};

#[derive(Arbitrary, Debug)]
struct Input {
    v6: u128,
    n: u8,
    v4: u32,
    r: u8,
    ea_len: u8,
    offset: u8,
    psid_len: Option<u8>,
    psid: Option<u16>,
    fmr: bool,
    end_user: u128,
    end_user_len: u8,
    draft03: bool,
    port: u16,
    other_v4: u32,
}

fuzz_target!(|i: Input| {
    let (Some(v6), Some(v4)) = (
        Ipv6Net::new(Ipv6Addr::from(i.v6), i.n % 129),
        Ipv4Net::new(Ipv4Addr::from(i.v4), i.r % 33),
    ) else {
        return;
    };
    let spec = RuleSpec {
        ipv6_prefix: v6,
        ipv4_prefix: v4,
        ea_len: i.ea_len % 64,
        psid_offset: i.offset % 20,
        psid_len: i.psid_len.map(|k| k % 20),
        psid: i.psid,
        forwarding: i.fmr,
    };
    let Ok(rule) = Rule::new(spec) else { return };
    let iid = if i.draft03 {
        IidFormat::Draft03
    } else {
        IidFormat::Rfc7597
    };
    // Any IPv4/port: reverse mapping never panics.
    let _ = rule.ce_ipv6_for(Ipv4Addr::from(i.other_v4), i.port, iid);
    let _ = rule.share_of_ipv6(Ipv6Addr::from(i.end_user));
    // Put the End-user prefix inside the rule prefix most of the time.
    let raw = if i.end_user_len & 0x80 == 0 {
        let m = if v6.len() == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(v6.len()))
        };
        (i.end_user & !m) | v6.bits()
    } else {
        i.end_user
    };
    let Some(eu) = Ipv6Net::new(Ipv6Addr::from(raw), (i.end_user_len & 0x7f) % 129) else {
        return;
    };
    let Ok(m) = rule.map_prefix(&eu, iid) else {
        return;
    };
    let share = m.share;
    assert!(rule.ipv4_prefix().covers(&share.ipv4));
    assert_eq!(
        rule.share_of_ipv6(m.ce_ipv6),
        Ok(share),
        "CE address → IPv4/PSID"
    );
    let set = share.port_set;
    let idx = u32::from(i.port) % set.count();
    let port = set.nth(idx).expect("index below count");
    assert!(set.contains(port));
    assert_eq!(set.index_of(port), Some(idx));
    let ce = rule
        .ce_ipv6_for(share.ipv4.addr(), port, iid)
        .expect("a port of the set maps back");
    assert_eq!(rule.share_of_ipv6(ce), Ok(share));
    // The BR only knows n + o bits of the End-user prefix (§5.3): its address equals the
    // CE's when the prefix has no bits beyond n + o and does not overwrite the IID
    // differently (prefix ≤ /64, or exactly n + o long).
    let eu = m.end_user_prefix;
    let min = Ipv6Net::new(eu.addr(), rule.min_end_user_len()).expect("len ≤ 128");
    if min.addr() == eu.addr() && (eu.len() <= 64 || eu.len() == rule.min_end_user_len()) {
        assert_eq!(ce, m.ce_ipv6, "BR view = CE view");
        assert!(rule.source_is_valid(m.ce_ipv6, share.ipv4.addr(), port, iid));
    }
    // §8.1 accepts exactly the address the BR derives (all 128 bits).
    assert!(rule.source_is_valid(ce, share.ipv4.addr(), port, iid));
});
