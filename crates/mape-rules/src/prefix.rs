//! Small IPv4 / IPv6 prefix types: `addr/len` with host bits zeroed.
//!
//! MAP-E needs nothing more than parse, display, containment and bit access, so these are
//! our own (no `ipnet` dependency). Host bits are always zero: `2001:db8::1/32` parses as
//! `2001:db8::/32`.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a prefix string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The address part is not a valid address of the family.
    #[error("{input:?} is not a valid IPv{family} prefix (bad address)")]
    BadAddress {
        /// The text given.
        input: String,
        /// 4 or 6.
        family: u8,
    },
    /// The length part is not a number or too large.
    #[error("{input:?} is not a valid IPv{family} prefix (length must be 0-{max})")]
    BadLength {
        /// The text given.
        input: String,
        /// 4 or 6.
        family: u8,
        /// 32 or 128.
        max: u8,
    },
}

/// Mask of the top `len` bits of a 128-bit value.
pub(crate) const fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else if len >= 128 {
        u128::MAX
    } else {
        !(u128::MAX >> len)
    }
}

/// Mask of the top `len` bits of a 32-bit value.
pub(crate) const fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else if len >= 32 {
        u32::MAX
    } else {
        !(u32::MAX >> len)
    }
}

/// An IPv4 prefix, host bits zero.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// The prefix `addr/len` with host bits cleared; `None` if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask32(len)),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is `0.0.0.0/0`-style zero-length prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The network address as a number.
    pub fn bits(&self) -> u32 {
        u32::from(self.addr)
    }

    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask32(self.len) == self.bits()
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = PrefixError;

    /// `a.b.c.d/len`, or a bare address meaning `/32`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| PrefixError::BadAddress {
            input: s.to_owned(),
            family: 4,
        })?;
        let bad_len = || PrefixError::BadLength {
            input: s.to_owned(),
            family: 4,
            max: 32,
        };
        let len: u8 = l.trim().parse().map_err(|_| bad_len())?;
        Self::new(addr, len).ok_or_else(bad_len)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = PrefixError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// An IPv6 prefix, host bits zero.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Net {
    /// The prefix `addr/len` with host bits cleared; `None` if `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then(|| Self {
            addr: Ipv6Addr::from(u128::from(addr) & mask128(len)),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is a zero-length prefix (`::/0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The network address as a number.
    pub fn bits(&self) -> u128 {
        u128::from(self.addr)
    }

    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask128(self.len) == self.bits()
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Ipv6Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Net {
    type Err = PrefixError;

    /// `x:y::/len`, or a bare address meaning `/128`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').unwrap_or((s, "128"));
        let addr: Ipv6Addr = a.trim().parse().map_err(|_| PrefixError::BadAddress {
            input: s.to_owned(),
            family: 6,
        })?;
        let bad_len = || PrefixError::BadLength {
            input: s.to_owned(),
            family: 6,
            max: 128,
        };
        let len: u8 = l.trim().parse().map_err(|_| bad_len())?;
        Self::new(addr, len).ok_or_else(bad_len)
    }
}

impl TryFrom<String> for Ipv6Net {
    type Error = PrefixError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv6Net> for String {
    fn from(n: Ipv6Net) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_zeroes_host_bits_and_displays() {
        let n: Ipv6Net = "2001:db8:12:34ff::1/56".parse().unwrap();
        assert_eq!(n.to_string(), "2001:db8:12:3400::/56");
        let n: Ipv4Net = "192.0.2.77/24".parse().unwrap();
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!("192.0.2.1".parse::<Ipv4Net>().unwrap().len(), 32);
        assert_eq!("2001:db8::1".parse::<Ipv6Net>().unwrap().len(), 128);
        let z: Ipv6Net = "::/0".parse().unwrap();
        assert!(z.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "/",
            "2001:db8::/129",
            "2001:db8::/-1",
            "2001:db8::/x",
            "1.2.3.4/8",
            "::/",
        ] {
            assert!(s.parse::<Ipv6Net>().is_err(), "{s}");
        }
        for s in ["", "1.2.3.4/33", "1.2.3/8", "::/0", "1.2.3.4/"] {
            assert!(s.parse::<Ipv4Net>().is_err(), "{s}");
        }
    }

    #[test]
    fn containment() {
        let r: Ipv6Net = "2001:db8::/40".parse().unwrap();
        let u: Ipv6Net = "2001:db8:12:3400::/56".parse().unwrap();
        assert!(r.covers(&u) && !u.covers(&r));
        let other: Ipv6Net = "2001:db9::/56".parse().unwrap();
        assert!(!r.covers(&other));
        let v4: Ipv4Net = "192.0.2.0/24".parse().unwrap();
        assert!(v4.contains(Ipv4Addr::new(192, 0, 2, 18)));
        assert!(!v4.contains(Ipv4Addr::new(192, 0, 3, 18)));
    }
}
