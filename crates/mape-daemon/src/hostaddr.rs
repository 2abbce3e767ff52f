//! This host's own IPv4 addresses (getifaddrs(3)): the router's internal sources when
//! `lan.router_addresses` is not given. The CE's own traffic toward the IPv4 internet
//! leaves through the default route into the TUN, which has no IPv4 address, so the kernel
//! gives it a source from another interface (RFC 1812 §4.2.2.11's "any of its addresses";
//! Linux `inet_select_addr`): one of the addresses listed here, and only those inside
//! `lan.prefixes` reach the NAT at all (`source_outside_lan`).

use std::net::Ipv4Addr;

use mape_rules::Ipv4Net;

/// Every IPv4 address of this host's interfaces (loopback included; empty when the
/// call fails).
pub fn ipv4_addresses() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own and free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*at };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names; AF_INET is a
            // sockaddr_in.
            let fam = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(fam) == libc::AF_INET {
                // SAFETY: as above, the family is AF_INET.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        at = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort_unstable();
    out.dedup();
    out
}

/// The router's addresses: `explicit` when given, else this host's inside `lan`.
pub fn router_addresses(explicit: Option<&[Ipv4Addr]>, lan: &[Ipv4Net]) -> Vec<Ipv4Addr> {
    match explicit {
        Some(list) => list.to_vec(),
        None => inside(&ipv4_addresses(), lan),
    }
}

/// The addresses of `all` inside one of `lan`.
fn inside(all: &[Ipv4Addr], lan: &[Ipv4Net]) -> Vec<Ipv4Addr> {
    all.iter()
        .copied()
        .filter(|a| lan.iter().any(|n| n.contains(*a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_only_lan_addresses_are_the_router() {
        assert!(ipv4_addresses().contains(&Ipv4Addr::LOCALHOST));
        let lan: Vec<Ipv4Net> = vec!["192.168.10.0/24".parse().unwrap()];
        let all = [
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(192, 168, 10, 1),
            Ipv4Addr::new(10, 0, 0, 1),
        ];
        assert_eq!(inside(&all, &lan), [Ipv4Addr::new(192, 168, 10, 1)]);
        let given = [Ipv4Addr::new(192, 168, 10, 254)];
        assert_eq!(router_addresses(Some(&given), &lan), given);
    }
}
