//! The batch calls: the verdicts of many packets with the cache misses of their lookups
//! overlapped, and the prefetch hints that load buckets and sessions without a verdict.

use crate::index::FlowIndex;
use crate::list::NIL;
use crate::types::{InboundPacket, OutboundPacket, Timestamp};

use super::{InboundVerdict, Lookup, Nat, OutboundVerdict};

/// Lookups whose cache misses [`Nat::prefetch_outbound`] overlaps at once (about what a
/// core keeps in flight).
const PREFETCH_BATCH: usize = 64;

impl Nat {
    /// Loads the index buckets and sessions the packets of a batch will look up, so that
    /// their cache misses overlap instead of coming one after another: with a million
    /// sessions every lookup misses the cache twice (bucket, then session), and a batch pays
    /// for those misses roughly once. A pure hint: it changes no state and no verdict.
    pub fn prefetch_outbound(&self, pkts: &[OutboundPacket]) {
        self.prefetch_all(pkts);
    }

    /// [`Nat::prefetch_outbound`] for packets from the tunnel.
    pub fn prefetch_inbound(&self, pkts: &[InboundPacket]) {
        self.prefetch_all(pkts);
    }

    /// Translates a batch of packets from the LAN: the verdicts, in order, that
    /// [`Nat::outbound`] gives one packet at a time, with the cache misses of up to 64
    /// lookups overlapped (see [`Nat::prefetch_outbound`]). `verdicts` is cleared first;
    /// reuse it and nothing is allocated.
    pub fn outbound_batch(
        &mut self,
        now: Timestamp,
        pkts: &[OutboundPacket],
        verdicts: &mut Vec<OutboundVerdict>,
    ) {
        self.batch(now, pkts, verdicts);
    }

    /// [`Nat::outbound_batch`] for packets from the tunnel.
    pub fn inbound_batch(
        &mut self,
        now: Timestamp,
        pkts: &[InboundPacket],
        verdicts: &mut Vec<InboundVerdict>,
    ) {
        self.batch(now, pkts, verdicts);
    }

    fn prefetch_all<P: Lookup>(&self, pkts: &[P]) {
        let mut hashes = [0u64; PREFETCH_BATCH];
        for chunk in pkts.chunks(PREFETCH_BATCH) {
            let hashes = self.hash_chunk(chunk, &mut hashes);
            self.prefetch_hashed(P::index(self), hashes, &mut [NIL; PREFETCH_BATCH]);
        }
    }

    /// The key hashes of a chunk of at most `PREFETCH_BATCH` packets, in `buf`.
    fn hash_chunk<'a, P: Lookup>(
        &self,
        chunk: &[P],
        buf: &'a mut [u64; PREFETCH_BATCH],
    ) -> &'a [u64] {
        let hashes = &mut buf[..chunk.len()];
        for (h, p) in hashes.iter_mut().zip(chunk) {
            *h = p.hash(self);
        }
        hashes
    }

    fn batch<P: Lookup>(&mut self, now: Timestamp, pkts: &[P], verdicts: &mut Vec<P::Verdict>) {
        verdicts.clear();
        let mut hashes = [0u64; PREFETCH_BATCH];
        for chunk in pkts.chunks(PREFETCH_BATCH) {
            let hashes = self.hash_chunk(chunk, &mut hashes);
            let mut hints = [NIL; PREFETCH_BATCH];
            self.prefetch_hashed(P::index(self), hashes, &mut hints);
            for ((p, &h), &hint) in chunk.iter().zip(hashes.iter()).zip(&hints) {
                verdicts.push(p.translate(self, now, h, hint));
            }
        }
    }

    /// Loads the buckets of `hashes`, then the sessions of their first candidates, which it
    /// leaves in `ids` (`NIL` for none) for the lookups to try first.
    fn prefetch_hashed(&self, index: &FlowIndex, hashes: &[u64], ids: &mut [u32; PREFETCH_BATCH]) {
        // Independent loads with no branch on their results: the CPU issues them all before
        // the first one returns. `black_box` keeps the compiler from dropping them.
        let mut acc = 0u32;
        for &h in hashes {
            acc ^= index.touch(h);
        }
        std::hint::black_box(acc);
        // The buckets are in the cache now: find the candidates first, then load their
        // sessions in a loop as tight as the first, so that as many misses are in flight.
        for (id, &h) in ids.iter_mut().zip(hashes) {
            *id = index.candidate(h);
        }
        let mut acc = 0u64;
        for &id in &ids[..hashes.len()] {
            if let Some(x) = self.sessions.get(id as usize) {
                acc ^= x.last_seen;
            }
        }
        std::hint::black_box(acc);
    }
}
