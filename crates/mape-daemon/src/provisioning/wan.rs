//! The WAN's global IPv6 address, read from /proc/net/if_inet6: the End-user /128 when
//! `[map] prefix` is not given, and what the HB46PP client watches to re-fetch when it
//! changes (HB46PP §3.6 k).

use std::net::Ipv6Addr;

use mape_rules::Ipv6Net;

/// The first global IPv6 address that is neither temporary, deprecated, tentative nor
/// failed DAD, on `iface` (any interface when `None`), from /proc/net/if_inet6's text.
pub fn global_address_in(if_inet6: &str, iface: Option<&str>) -> Option<Ipv6Addr> {
    if_inet6.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (hex, scope, flags, name) = (f.first()?, f.get(3)?, f.get(4)?, f.get(5)?);
        if iface.is_some_and(|i| i != *name) {
            return None;
        }
        let addr = Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        // IFA_F_TEMPORARY 0x01, IFA_F_DADFAILED 0x08, IFA_F_DEPRECATED 0x20,
        // IFA_F_TENTATIVE 0x40.
        let usable = *scope == "00" && flags & 0x69 == 0 && addr.segments()[0] & 0xe000 == 0x2000;
        usable.then_some(addr)
    })
}

/// [`global_address_in`] of this host.
pub fn global_address(iface: Option<&str>) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    global_address_in(&text, iface)
}

/// The address as an End-user /128.
pub fn as_end_user(a: Ipv6Addr) -> Option<Ipv6Net> {
    Ipv6Net::new(a, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_usable_global_address_of_the_interface() {
        // Columns: address, ifindex, prefix length, scope, flags, name (as the kernel
        // prints them; scope 20 = link, flags 80 = permanent, 01 temporary, 40 tentative).
        let text = "\
fe800000000000000000000000000001 02 40 20 80 ce-wan
20010db8000000010000000000000009 03 40 00 01 ce-wan
20010db8000000010000000000000008 03 40 00 40 ce-wan
20010db8000000020000000000000002 04 40 00 80 lan0
20010db8000000010000000000000002 03 40 00 80 ce-wan
";
        assert_eq!(
            global_address_in(text, Some("ce-wan")),
            Some("2001:db8:0:1::2".parse().unwrap())
        );
        assert_eq!(
            global_address_in(text, None),
            Some("2001:db8:0:2::2".parse().unwrap())
        );
        assert_eq!(global_address_in(text, Some("eth9")), None);
    }
}
