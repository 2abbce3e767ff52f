//! Learned tunnel path MTUs (RFC 8201: ICMPv6 Packet Too Big about encapsulated packets).

use core::net::Ipv6Addr;

use mape_nat::Timestamp;

/// How long a learned tunnel path MTU is kept (RFC 8201 §4: 10 minutes recommended).
const PMTU_TTL_MS: u64 = 600_000;

/// Learned IPv6 path MTUs toward tunnel peers (from ICMPv6 Packet Too Big), a few entries
/// with expiry; empty on the common path so the lookup is one length test.
#[derive(Debug, Default)]
pub(crate) struct PmtuCache {
    entries: Vec<(Ipv6Addr, u16, u64)>,
}

impl PmtuCache {
    const MAX: usize = 16;

    #[inline]
    pub(crate) fn get(&mut self, dst: &Ipv6Addr, now: Timestamp) -> Option<u16> {
        if self.entries.is_empty() {
            return None;
        }
        let now = now.millis();
        self.entries.retain(|e| e.2 > now);
        self.entries.iter().find(|e| e.0 == *dst).map(|e| e.1)
    }

    pub(crate) fn learn(&mut self, dst: Ipv6Addr, mtu: u16, now: Timestamp) {
        let exp = now.millis().saturating_add(PMTU_TTL_MS);
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == dst) {
            e.1 = e.1.min(mtu);
            e.2 = exp;
            return;
        }
        if self.entries.len() >= Self::MAX {
            // Drop the entry closest to expiry.
            if let Some(i) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].2) {
                self.entries.swap_remove(i);
            }
        }
        self.entries.push((dst, mtu, exp));
    }
}
