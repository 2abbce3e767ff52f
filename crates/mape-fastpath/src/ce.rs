//! The CE's fast path: its two programs attached (LAN ingress, WAN ingress), the
//! configuration and deadline, and the entries kept in step with the engine's journal.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{mpsc, Arc};

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, RingBuffer, RingBufferBuilder};
use mape_nat::OffloadFlow;

use crate::layout::{self, Counters, EntrySeen, TcpEvent};
use crate::objects::{self, CE_OBJECT};
use crate::tc::Hooks;
use crate::{FastPathError, DEADLINE};

const OBJECT: &str = "ce";
/// Room [`CeSweeper::seen_all`] leaves above the entries it expects.
const SWEEP_SLACK: usize = 256;

/// What the CE's programs need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeParams {
    /// The CE's MAP IPv6 address (outer source, and destination of what it accepts).
    pub ce_addr: Ipv6Addr,
    /// The shared IPv4 address.
    pub ext_addr: Ipv4Addr,
    /// The tunnel MTU for the inner IPv4 packet; larger packets take the slow path.
    pub ipv4_mtu: u32,
    /// The outer hop limit the CE writes (the slow path's `hop_limit`).
    pub hop_limit: u8,
    /// Most entries per direction (sessions the fast path may hold).
    pub max_entries: u32,
    /// The largest MSS a SYN-ACK toward the LAN may carry (the slow path's clamp:
    /// `mss_clamp` within the tunnel MTU); 0 for none.
    pub mss_in: u16,
}

/// The `ce_events` ring: the FINs and SYN-ACKs the programs forwarded, read without a
/// system call.
struct Events {
    ring: RingBuffer<'static>,
    rx: mpsc::Receiver<TcpEvent>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// Both flow maps, opened a second time for the sweep ([`CeSweeper::seen_all`]), which
/// the daemon runs with its datapath lock released.
#[derive(Debug)]
pub struct CeSweeper {
    out_map: MapHandle,
    in_map: MapHandle,
    max_entries: u32,
}

impl CeSweeper {
    /// What every entry recorded (outbound, inbound), by flow, for a sweep that expects
    /// about `expected` entries: each map read in one system call
    /// (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6) instead of two calls per flow. An entry the
    /// batch did not return (the call failed, or the map holds more than expected) is
    /// simply absent: [`CeFastPath::seen`] reads it.
    ///
    /// One call per map because libbpf-rs's batch iterator takes a short batch for the
    /// last one, and the kernel returns short batches in the middle of a hash map too
    /// (it copies whole buckets only): asked for all entries at once, it returns them
    /// all, then ENOENT.
    pub fn seen_all(&self, expected: usize) -> Vec<(OffloadFlow, (EntrySeen, EntrySeen))> {
        let count = u32::try_from(expected.saturating_add(SWEEP_SLACK))
            .unwrap_or(u32::MAX)
            .min(self.max_entries.max(1));
        let back: HashMap<u128, EntrySeen> =
            match self
                .in_map
                .lookup_batch(count, MapFlags::ANY, MapFlags::ANY)
            {
                Ok(it) => it
                    .map(|(k, v)| (layout::packed_key(&k), layout::in_seen(&v)))
                    .collect(),
                Err(_) => HashMap::new(),
            };
        let Ok(out) = self
            .out_map
            .lookup_batch(count, MapFlags::ANY, MapFlags::ANY)
        else {
            return Vec::new();
        };
        out.filter_map(|(k, v)| {
            let flow = layout::flow_of_out(&k, &v)?;
            let b = back
                .get(&layout::packed_key(&layout::ce_in_key(&flow)))
                .copied()
                .unwrap_or_default();
            Some((flow, (layout::out_seen(&v), b)))
        })
        .collect()
    }
}

/// The CE's loaded programs and maps.
#[derive(Debug)]
pub struct CeFastPath {
    // Before `obj`: the ring is unmapped before the object's maps close.
    events: Events,
    obj: Object,
    out_map: MapHandle,
    in_map: MapHandle,
    sweeper: Arc<CeSweeper>,
    config: MapHandle,
    stats: MapHandle,
    params: CeParams,
    hooks: Hooks,
}

impl CeFastPath {
    /// Loads the programs (nothing is attached yet) with a deadline already renewed.
    pub fn load(params: CeParams) -> Result<Self, FastPathError> {
        let n = Some(params.max_entries.max(1));
        let obj = objects::load(OBJECT, CE_OBJECT, &[("ce_out", n), ("ce_in", n)])?;
        let m = |name, k, v| objects::map(OBJECT, &obj, name, k, v);
        let out_map = m("ce_out", layout::CE_OUT_KEY_LEN, layout::CE_OUT_VAL_LEN)?;
        let in_map = m("ce_in", layout::CE_IN_KEY_LEN, layout::CE_IN_VAL_LEN)?;
        let config = m("ce_config", 4, layout::CE_CONFIG_LEN)?;
        let stats = m("stats", 4, 8)?;
        let events = events(&obj)?;
        let dup = |map: &MapHandle, name| {
            MapHandle::try_from(map).map_err(|source| FastPathError::Map { map: name, source })
        };
        let sweeper = Arc::new(CeSweeper {
            out_map: dup(&out_map, "ce_out")?,
            in_map: dup(&in_map, "ce_in")?,
            max_entries: params.max_entries.max(1),
        });
        let fp = Self {
            events,
            obj,
            out_map,
            in_map,
            sweeper,
            config,
            stats,
            params,
            hooks: Hooks::default(),
        };
        fp.renew(crate::monotonic_ns())?;
        Ok(fp)
    }

    /// Attaches `ce_lan` at ingress of each LAN interface and `ce_wan` at ingress of the
    /// WAN interface. On failure what was attached is detached again.
    pub fn attach(&mut self, lan: &[u32], wan: u32) -> Result<(), FastPathError> {
        let plan: Vec<(&str, u32)> = lan
            .iter()
            .map(|&i| ("ce_lan", i))
            .chain(std::iter::once(("ce_wan", wan)))
            .collect();
        self.hooks.attach(OBJECT, &self.obj, &plan)
    }

    /// Detaches every filter this instance attached (errors are ignored: the interface
    /// may be gone, taking its filters with it).
    pub fn detach(&mut self) {
        self.hooks.detach();
    }

    /// The interfaces it is attached to.
    pub fn attached(&self) -> Vec<u32> {
        self.hooks.ifindexes()
    }

    /// Lets the programs forward until [`DEADLINE`] after `now_ns` (CLOCK_MONOTONIC).
    pub fn renew(&self, now_ns: u64) -> Result<(), FastPathError> {
        self.write_config(now_ns.saturating_add(DEADLINE.as_nanos() as u64))
    }

    /// Holds the programs to another tunnel MTU and SYN-ACK clamp (a learned Packet Too
    /// Big lowered them, or it expired); whether they changed. Renews the deadline.
    pub fn set_mtu(&mut self, ipv4_mtu: u32, mss_in: u16) -> Result<bool, FastPathError> {
        if (self.params.ipv4_mtu, self.params.mss_in) == (ipv4_mtu, mss_in) {
            return Ok(false);
        }
        self.params.ipv4_mtu = ipv4_mtu;
        self.params.mss_in = mss_in;
        self.renew(crate::monotonic_ns())?;
        Ok(true)
    }

    /// Stops the programs forwarding at once (everything goes to the slow path).
    pub fn suspend(&self) -> Result<(), FastPathError> {
        self.write_config(0)
    }

    fn write_config(&self, deadline_ns: u64) -> Result<(), FastPathError> {
        let p = &self.params;
        let c = layout::ce_config(
            p.ce_addr,
            p.ext_addr,
            p.ipv4_mtu,
            deadline_ns,
            p.hop_limit,
            p.mss_in,
        );
        self.config
            .update(&0u32.to_ne_bytes(), &c, MapFlags::ANY)
            .map_err(|source| FastPathError::Map {
                map: "ce_config",
                source,
            })
    }

    /// Installs both directions of `flow`, tunnelled to and accepted from `peer` (the BR,
    /// or the CE an FMR names). `pending`: armed at the SYN, the programs forward only its
    /// SYN-ACK until one passes (a fresh value either way: the counters start at 0).
    pub fn install(
        &self,
        flow: &OffloadFlow,
        peer: Ipv6Addr,
        pending: bool,
    ) -> Result<(), FastPathError> {
        let map_err = |map| move |source| FastPathError::Map { map, source };
        self.in_map
            .update(
                &layout::ce_in_key(flow),
                &layout::ce_in_val(flow, peer, pending),
                MapFlags::ANY,
            )
            .map_err(map_err("ce_in"))?;
        if let Err(e) = self.out_map.update(
            &layout::ce_out_key(flow),
            &layout::ce_out_val(flow, peer, pending),
            MapFlags::ANY,
        ) {
            let _ = self.in_map.delete(&layout::ce_in_key(flow));
            return Err(map_err("ce_out")(e));
        }
        Ok(())
    }

    /// Removes both directions of `flow`: one system call each, nothing read back (the
    /// traffic is in the programs' counters, and the engine's timer has no use for the
    /// last packet of a flow it ends). Whether there was an outbound entry.
    pub fn remove(&self, flow: &OffloadFlow) -> bool {
        let had = self.out_map.delete(&layout::ce_out_key(flow)).is_ok();
        let _ = self.in_map.delete(&layout::ce_in_key(flow));
        had
    }

    /// Removes only the tunnel side's entry of `flow`.
    pub fn remove_inbound(&self, flow: &OffloadFlow) {
        let _ = self.in_map.delete(&layout::ce_in_key(flow));
    }

    /// Removes the LAN side's entries of `outbound` and the tunnel side's of `inbound`:
    /// one system call per map for the lot ([`delete_all`]).
    pub fn remove_batch(&self, outbound: &[OffloadFlow], inbound: &[OffloadFlow]) {
        delete_all(&self.out_map, outbound.iter().map(layout::ce_out_key));
        delete_all(&self.in_map, inbound.iter().map(layout::ce_in_key));
    }

    /// What both directions of `flow` recorded (outbound, inbound); read into the stack.
    pub fn seen(&self, flow: &OffloadFlow) -> Option<(EntrySeen, EntrySeen)> {
        let mut out = [0u8; layout::CE_OUT_VAL_LEN];
        let found = self
            .out_map
            .lookup_into(&layout::ce_out_key(flow), &mut out, MapFlags::ANY)
            .unwrap_or(false);
        if !found {
            return None;
        }
        let mut back = [0u8; layout::CE_IN_VAL_LEN];
        let back = match self
            .in_map
            .lookup_into(&layout::ce_in_key(flow), &mut back, MapFlags::ANY)
        {
            Ok(true) => layout::in_seen(&back),
            _ => EntrySeen::default(),
        };
        Some((layout::out_seen(&out), back))
    }

    /// Whether `flow`'s entries are pending (LAN → tunnel, tunnel → LAN); `None` when it
    /// has no LAN → tunnel entry.
    pub fn pending(&self, flow: &OffloadFlow) -> Option<(bool, bool)> {
        let mut out = [0u8; layout::CE_OUT_VAL_LEN];
        let mut back = [0u8; layout::CE_IN_VAL_LEN];
        let found = self
            .out_map
            .lookup_into(&layout::ce_out_key(flow), &mut out, MapFlags::ANY)
            .unwrap_or(false);
        let back_found = self
            .in_map
            .lookup_into(&layout::ce_in_key(flow), &mut back, MapFlags::ANY)
            .unwrap_or(false);
        found.then(|| (layout::pending(&out), back_found && layout::pending(&back)))
    }

    /// What every entry recorded (outbound, inbound), by flow: [`CeSweeper::seen_all`].
    pub fn seen_all(&self, expected: usize) -> Vec<(OffloadFlow, (EntrySeen, EntrySeen))> {
        self.sweeper.seen_all(expected)
    }

    /// The maps' reader for the once-a-second sweep, shared: it reads without this
    /// object (and without the daemon's datapath lock).
    pub fn sweeper(&self) -> Arc<CeSweeper> {
        Arc::clone(&self.sweeper)
    }

    /// Every flow in the LAN → tunnel map.
    pub fn flows(&self) -> Vec<OffloadFlow> {
        self.out_map
            .keys()
            .filter_map(|k| {
                let v = self.out_map.lookup(&k, MapFlags::ANY).ok().flatten()?;
                layout::flow_of_out(&k, &v)
            })
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for map in [&self.out_map, &self.in_map] {
            let keys: Vec<Vec<u8>> = map.keys().collect();
            for k in keys {
                let _ = map.delete(&k);
            }
        }
    }

    /// Appends the FINs and SYN-ACKs forwarded since the last call, oldest first (shared memory: no
    /// system call when there is none).
    pub fn drain_events(&self, out: &mut Vec<TcpEvent>) {
        // The callback cannot fail; a negative return would only stop early.
        let _ = self.events.ring.consume();
        out.extend(self.events.rx.try_iter());
    }

    /// The flow of an event (the external address is the CE's).
    pub fn flow_of(&self, e: &TcpEvent) -> OffloadFlow {
        OffloadFlow {
            proto: mape_nat::Protocol::Tcp,
            internal: e.internal,
            remote: e.remote,
            external: mape_nat::Endpoint::new(self.params.ext_addr, e.ext_port),
        }
    }

    /// The programs' counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        objects::counters(&self.stats)
    }

    /// The parameters it was loaded with.
    pub fn params(&self) -> &CeParams {
        &self.params
    }

    /// The loaded object (for tests that run a program on a buffer).
    pub fn object(&self) -> &Object {
        &self.obj
    }
}

/// Deletes `keys` from `map` in one `BPF_MAP_DELETE_BATCH` (Linux 5.6). The kernel stops
/// a batch at a key it does not find (an entry already gone) without saying where to
/// libbpf-rs, and an older kernel may not know the command: then every key is deleted
/// on its own (a key already gone is no error; nothing else is left behind).
fn delete_all<const N: usize>(map: &MapHandle, keys: impl Iterator<Item = [u8; N]>) {
    let mut buf = Vec::new();
    let mut count = 0u32;
    for k in keys {
        buf.extend_from_slice(&k);
        count += 1;
    }
    match count {
        0 => {}
        1 => {
            let _ = map.delete(&buf);
        }
        _ => {
            if map
                .delete_batch(&buf, count, MapFlags::ANY, MapFlags::ANY)
                .is_err()
            {
                for k in buf.chunks_exact(N) {
                    let _ = map.delete(k);
                }
            }
        }
    }
}

/// Opens the `ce_events` ring of `obj`; its callback hands each event to the receiver.
fn events(obj: &Object) -> Result<Events, FastPathError> {
    let load_err = |source| FastPathError::Load {
        object: OBJECT,
        source,
    };
    let map = obj
        .maps()
        .find(|m| m.name() == "ce_events")
        .ok_or_else(|| FastPathError::Mismatch {
            object: OBJECT,
            what: "no map ce_events".into(),
        })?;
    let (tx, rx) = mpsc::channel();
    let mut b = RingBufferBuilder::new();
    b.add(&map, move |bytes: &[u8]| {
        if let Some(e) = layout::ce_event(bytes) {
            let _ = tx.send(e);
        }
        0
    })
    .map_err(load_err)?;
    let ring = b.build().map_err(load_err)?;
    Ok(Events { ring, rx })
}

impl Drop for CeFastPath {
    fn drop(&mut self) {
        self.detach();
    }
}
