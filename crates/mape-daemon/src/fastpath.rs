//! The kernel fast path in the daemon (issue #13, crate `mape-fastpath`): what each
//! pipeline holds ([`FastPath`]), the engine's journal applied to the CE's maps in the
//! same step as the engine's change, the fold-back of what the kernel saw (last packet,
//! the LAN host's ACK, traffic; the maps read with the datapath lock released,
//! [`SweepJob`]), the deadline renewed, and what `show status` and the metrics say about
//! it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use mape_control::reply::{FastPathStatus, Flow};
use mape_dataplane::{Counters as PipelineCounters, Traffic};
use mape_fastpath::layout::{Counter, Counters, EntrySeen};
use mape_fastpath::{BrFastPath, CeFastPath, CeSweeper};
use mape_nat::{FlowSeen, Nat, OffloadFlow, OffloadOp, Timestamp};
use mape_rules::MapDomain;

use crate::config::FastPathMode;
use crate::metrics::Metrics;

/// Ops after a removal looked at for an install over its inbound entry.
const REUSE_LOOKAHEAD: usize = 4;

/// Whether one of the next few ops installs a flow over `removed`'s inbound entry: a TCP
/// port reclaimed from a closing session for a new SYN to the same remote (RFC 7857
/// §3.2) keeps the inbound key (remote, external port), so the arm that follows
/// overwrites it and the removal needs only the outbound entry: one `bpf()` call less
/// per reclaimed connection.
fn inbound_reused(later: &[OffloadOp], removed: &OffloadFlow) -> bool {
    later.iter().take(REUSE_LOOKAHEAD).any(
        |op| matches!(op, OffloadOp::Install(g) | OffloadOp::Arm(g) if g.shares_inbound(removed)),
    )
}

/// Entries of one run of `Remove` ops, deleted together.
#[derive(Default)]
struct Removals {
    outbound: Vec<OffloadFlow>,
    inbound: Vec<OffloadFlow>,
}

impl Removals {
    fn flush(&mut self, fp: &CeFastPath) {
        if !self.outbound.is_empty() || !self.inbound.is_empty() {
            fp.remove_batch(&self.outbound, &self.inbound);
            self.outbound.clear();
            self.inbound.clear();
        }
    }
}

/// How often the fold-back reads the maps and the deadline is renewed.
const FOLD_EVERY_MS: u64 = 1_000;

/// The programs a pipeline runs, or why it runs none.
pub enum FastPath {
    /// Not running: the mode and why.
    Inactive {
        /// As configured.
        mode: FastPathMode,
        /// Why not (`off` in the configuration, the kernel's refusal, ...).
        reason: String,
    },
    /// The CE's programs.
    Ce(Box<CeOffload>),
    /// The BR's programs.
    Br(Box<BrOffload>),
}

impl FastPath {
    /// Not running, because the configuration says `off`.
    pub fn off() -> Self {
        FastPath::Inactive {
            mode: FastPathMode::Off,
            reason: "off in the configuration ([datapath] fast_path)".into(),
        }
    }

    /// What `show status` says.
    pub fn status(&self) -> FastPathStatus {
        match self {
            FastPath::Inactive { mode, reason } => FastPathStatus {
                mode: mode.as_str().into(),
                active: false,
                reason: Some(reason.clone()),
                interfaces: Vec::new(),
                entries: 0,
                out: Flow::default(),
                back: Flow::default(),
                passed: BTreeMap::new(),
                fins: 0,
                syn_acks: 0,
            },
            FastPath::Ce(o) => {
                active_status(o.mode, &o.names, o.tracked.len() as u64, &o.fp.counters())
            }
            FastPath::Br(o) => {
                active_status(o.mode, &o.names, o.fp.rules() as u64, &o.fp.counters())
            }
        }
    }

    /// The scrape's part: `mape_fast_path_active`, entries, forwarded and passed.
    pub fn metrics(&self) -> impl FnOnce(&mut Metrics) + Send + 'static {
        let status = self.status();
        move |m: &mut Metrics| {
            m.gauge(
                "mape_fast_path_active",
                "Whether the kernel fast path is attached and forwarding (mode as configured)",
                &[("mode", status.mode.as_str())],
                u64::from(status.active),
            );
            m.gauge(
                "mape_fast_path_entries",
                "Flows the kernel fast path holds (CE) or rules it serves (BR)",
                &[],
                status.entries,
            );
            for (dir, f) in [("out", status.out), ("in", status.back)] {
                m.counter(
                    "mape_fast_path_packets",
                    "Packets the kernel fast path forwarded, by direction",
                    &[("direction", dir)],
                    f.packets,
                );
            }
            m.counter(
                "mape_fast_path_fins",
                "TCP FINs the kernel fast path forwarded itself, each fed to the engine's state machine",
                &[],
                status.fins,
            );
            m.counter(
                "mape_fast_path_syn_acks",
                "TCP SYN-ACKs of connections armed at their SYN the kernel fast path forwarded itself, each fed to the engine's state machine",
                &[],
                status.syn_acks,
            );
            for c in Counter::ALL {
                if let Some(reason) = c.reason() {
                    m.counter(
                        "mape_fast_path_passed",
                        "Packets the kernel fast path left to the TUN path, by reason (helper_failed: dropped)",
                        &[("reason", reason)],
                        status.passed.get(reason).copied().unwrap_or(0),
                    );
                }
            }
        }
    }
}

fn active_status(
    mode: FastPathMode,
    names: &[String],
    entries: u64,
    c: &Counters,
) -> FastPathStatus {
    FastPathStatus {
        mode: mode.as_str().into(),
        active: true,
        reason: None,
        interfaces: names.to_vec(),
        entries,
        out: Flow {
            packets: c.get(Counter::OutPackets),
            bytes: c.get(Counter::OutBytes),
        },
        back: Flow {
            packets: c.get(Counter::InPackets),
            bytes: c.get(Counter::InBytes),
        },
        passed: Counter::ALL
            .iter()
            .filter_map(|&k| Some((k.reason()?.to_string(), c.get(k))))
            .filter(|(_, n)| *n > 0)
            .collect(),
        fins: c.get(Counter::FinEvents),
        syn_acks: c.get(Counter::SynAckEvents),
    }
}

/// The once-a-second step both pipelines share: when it is due, the deadline's renewal,
/// and the traffic forwarded since the last one, from the programs' cumulative counters.
struct Fold {
    last: Option<Timestamp>,
    base: Counters,
}

impl Fold {
    fn new(base: Counters) -> Self {
        Self { last: None, base }
    }

    /// Whether a fold is due at `now` (then it counts as done).
    fn due(&mut self, now: Timestamp) -> bool {
        if self
            .last
            .is_some_and(|t| now.millis() < t.millis() + FOLD_EVERY_MS)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// Traffic since the last call (out, in), from the counters `now`.
    fn traffic(&mut self, now: Counters) -> (Traffic, Traffic) {
        let d = |c| now.get(c).saturating_sub(self.base.get(c));
        let t = (
            Traffic {
                packets: d(Counter::OutPackets),
                bytes: d(Counter::OutBytes),
            },
            Traffic {
                packets: d(Counter::InPackets),
                bytes: d(Counter::InBytes),
            },
        );
        self.base = now;
        t
    }
}

/// Logs a failed renewal: the programs stop forwarding at the deadline.
fn renewed(r: Result<(), mape_fastpath::FastPathError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "fast path deadline not renewed; it stops forwarding within 3 s");
    }
}

/// The once-a-second read of the CE's maps, taken under the datapath lock
/// ([`CeOffload::sweep_job`]) and run without it: at 50 000 flows the two batched reads
/// take ~80 ms (`cargo bench -p mape-fastpath --bench sweep`), which no packet of the TUN
/// path should wait for.
pub struct SweepJob {
    sweeper: Arc<CeSweeper>,
    expected: usize,
}

/// What a [`SweepJob`] read: each entry's record, by flow.
pub struct Swept(Vec<(OffloadFlow, (EntrySeen, EntrySeen))>);

impl SweepJob {
    /// Reads both maps (two system calls).
    pub fn run(self) -> Swept {
        Swept(self.sweeper.seen_all(self.expected))
    }
}

/// The CE's programs and the bookkeeping that keeps them in step with the engine.
pub struct CeOffload {
    fp: CeFastPath,
    mode: FastPathMode,
    names: Vec<String>,
    domain: MapDomain,
    /// CLOCK_MONOTONIC at the pipeline's time 0, to turn the kernel's times into
    /// [`Timestamp`]s.
    origin_ns: u64,
    /// Flows with an entry, and the kernel's last-packet time folded last.
    tracked: HashMap<OffloadFlow, u64>,
    /// The once-a-second step.
    fold: Fold,
    /// Installs the maps refused (full): those flows stay on the TUN path.
    refused: u64,
    /// FIN and SYN-ACK events read from the programs' ring, reused.
    events: Vec<mape_fastpath::layout::TcpEvent>,
    /// A sweep is due: the next [`Self::sweep_job`] hands it out.
    sweep_due: bool,
    /// A sweep is out (read without the lock): the flows installed meanwhile, whose
    /// fresh entries its read may predate (not folded from it).
    sweeping: Option<HashSet<OffloadFlow>>,
}

impl CeOffload {
    /// Wraps attached programs; `origin_ns` is CLOCK_MONOTONIC at pipeline time 0.
    pub fn new(
        fp: CeFastPath,
        mode: FastPathMode,
        names: Vec<String>,
        domain: MapDomain,
        origin_ns: u64,
    ) -> Self {
        let fold = Fold::new(fp.counters());
        Self {
            fp,
            mode,
            names,
            domain,
            origin_ns,
            tracked: HashMap::new(),
            fold,
            refused: 0,
            events: Vec::new(),
            sweep_due: false,
            sweeping: None,
        }
    }

    /// Feeds the FINs and SYN-ACKs the programs forwarded since the last call to the
    /// engine's state machine, in order, then applies what that journals. Called before
    /// every TUN batch (so that a new flow's port choice sees the closes first, and a
    /// packet of a connection its answer) and at every tick.
    pub fn take_events(&mut self, nat: &mut Nat, now: Timestamp) {
        self.fp.drain_events(&mut self.events);
        if self.events.is_empty() {
            return;
        }
        for e in self.events.drain(..) {
            let pkt = mape_nat::OffloadedTcp {
                outbound: e.outbound,
                flags: mape_nat::TcpFlags(e.flags),
                seq: e.seq,
                ack: e.ack,
            };
            nat.offload_tcp(now, &self.fp.flow_of(&e), pkt);
        }
        self.apply(nat, now);
    }

    /// Applies the engine's journal to the maps (the datapath lock is held: the change
    /// and its entry happen in one step). A refresh folds what the kernel saw at once,
    /// which may journal more (a reset believed): the loop runs until the journal is
    /// empty.
    pub fn apply(&mut self, nat: &mut Nat, now: Timestamp) {
        for _ in 0..4 {
            let drain = nat.drain_offload();
            if drain.resync {
                self.fp.clear();
                self.tracked.clear();
                for op in nat.offload_resync() {
                    match op {
                        OffloadOp::Install(f) => {
                            self.install(&f, false);
                        }
                        OffloadOp::Arm(f) => {
                            self.install(&f, true);
                        }
                        OffloadOp::Remove(_) | OffloadOp::Refresh(_) => {}
                    }
                }
            }
            if drain.ops.is_empty() {
                return;
            }
            // Removed flows whose inbound entry a later op of this drain overwrites.
            let mut kept_inbound: Vec<OffloadFlow> = Vec::new();
            // A run of removals goes to the maps as one batch per map, before the next
            // op of another kind (which may install the same keys again).
            let mut gone = Removals::default();
            for (i, op) in drain.ops.iter().enumerate() {
                if !matches!(op, OffloadOp::Remove(_)) {
                    gone.flush(&self.fp);
                }
                match *op {
                    OffloadOp::Install(f) => self.install_over(&f, false, &mut kept_inbound),
                    OffloadOp::Arm(f) => self.install_over(&f, true, &mut kept_inbound),
                    OffloadOp::Remove(f) => {
                        gone.outbound.push(f);
                        if inbound_reused(&drain.ops[i + 1..], &f) {
                            kept_inbound.push(f);
                        } else {
                            gone.inbound.push(f);
                        }
                        self.tracked.remove(&f);
                    }
                    OffloadOp::Refresh(f) => self.fold_one(nat, now, &f, true),
                }
            }
            gone.flush(&self.fp);
            // Not overwritten after all (never expected): removed now, as journaled.
            for f in kept_inbound {
                self.fp.remove_inbound(&f);
            }
        }
    }

    /// [`Self::install`] over the inbound entries of removed flows in `kept`: the one
    /// `f` shares is overwritten by the install, or removed when the install fails.
    fn install_over(&mut self, f: &OffloadFlow, pending: bool, kept: &mut Vec<OffloadFlow>) {
        let ok = self.install(f, pending);
        if let Some(i) = kept.iter().position(|k| k.shares_inbound(f)) {
            let old = kept.swap_remove(i);
            if !ok {
                self.fp.remove_inbound(&old);
            }
        }
    }

    /// Installs `f`'s entries, `pending` when armed at the SYN; whether they are in.
    fn install(&mut self, f: &OffloadFlow, pending: bool) -> bool {
        let Some(peer) = self.domain.tunnel_destination(f.remote.addr, f.remote.port) else {
            return false;
        };
        match self.fp.install(f, peer, pending) {
            Ok(()) => {
                self.tracked.insert(*f, 0);
                if let Some(fresh) = &mut self.sweeping {
                    fresh.insert(*f);
                }
                true
            }
            Err(e) => {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    tracing::warn!(error = %e, refused = self.refused, "fast path entry refused; the flow stays on the TUN path");
                }
                false
            }
        }
    }

    /// Folds one flow: its last packet restarts its engine timer, the LAN host's ACK
    /// is recorded. A flow the engine no longer has loses its entry.
    fn fold_one(&mut self, nat: &mut Nat, now: Timestamp, f: &OffloadFlow, always: bool) {
        let seen = self.fp.seen(f);
        self.fold_seen(nat, now, f, seen, always);
    }

    /// [`Self::fold_one`] with what the entry recorded already read (`None`: no entry).
    fn fold_seen(
        &mut self,
        nat: &mut Nat,
        now: Timestamp,
        f: &OffloadFlow,
        seen: Option<(EntrySeen, EntrySeen)>,
        always: bool,
    ) {
        let Some((out, back)) = seen else {
            return;
        };
        let last = out.last_seen_ns.max(back.last_seen_ns);
        let folded = self.tracked.get(f).copied().unwrap_or(0);
        if last <= folded && !always {
            return;
        }
        let at = Timestamp::from_millis(last.saturating_sub(self.origin_ns) / 1_000_000);
        let seen = FlowSeen {
            last_seen: at,
            lan_ack: out.lan_ack,
        };
        if nat.offload_seen(now, f, seen) {
            self.tracked.insert(*f, last);
        } else {
            self.fp.remove(f);
            self.tracked.remove(f);
        }
    }

    /// Once a second: the deadline renewed, and the sweep due (the caller takes it with
    /// [`Self::sweep_job`] and hands its result to [`Self::sweep_done`]).
    pub fn tick(&mut self, now: Timestamp) {
        if !self.fold.due(now) {
            return;
        }
        renewed(self.fp.renew(mape_fastpath::monotonic_ns()));
        self.sweep_due = true;
    }

    /// The due sweep, to be run with the datapath lock released (`None`: none is due, or
    /// one is out).
    pub fn sweep_job(&mut self) -> Option<SweepJob> {
        if !self.sweep_due || self.sweeping.is_some() {
            return None;
        }
        self.sweep_due = false;
        self.sweeping = Some(HashSet::new());
        Some(SweepJob {
            sweeper: self.fp.sweeper(),
            expected: self.tracked.len(),
        })
    }

    /// Folds what a sweep read: every flow's last packet into the engine (a flow that
    /// ended meanwhile is no longer tracked, one installed meanwhile is skipped: its
    /// fresh entry may be newer than the read), the traffic into the pipeline's counters.
    /// A tracked flow the batch missed is read on its own.
    pub fn sweep_done(
        &mut self,
        nat: &mut Nat,
        counters: &mut PipelineCounters,
        now: Timestamp,
        swept: Swept,
    ) {
        // Not this instance's (the fast path came up again meanwhile): its maps are new.
        let Some(fresh) = self.sweeping.take() else {
            return;
        };
        let expected = self.tracked.len()
            - fresh
                .iter()
                .filter(|f| self.tracked.contains_key(f))
                .count();
        let mut visited = 0;
        for (f, s) in &swept.0 {
            if self.tracked.contains_key(f) && !fresh.contains(f) {
                visited += 1;
                self.fold_seen(nat, now, f, Some(*s), false);
            }
        }
        // Only when the batch missed some: the set of what it read, and those read alone.
        if visited < expected {
            let got: HashSet<OffloadFlow> = swept.0.iter().map(|(f, _)| *f).collect();
            let missed: Vec<OffloadFlow> = (self.tracked.keys())
                .filter(|f| !got.contains(f) && !fresh.contains(f))
                .copied()
                .collect();
            for f in &missed {
                self.fold_one(nat, now, f, false);
            }
        }
        self.apply(nat, now);
        let (out, back) = self.fold.traffic(self.fp.counters());
        counters.add_fast_path(out, back);
    }

    /// Holds the programs to the slow path's tunnel MTU toward the BR and its SYN-ACK
    /// clamp (`Ce::fast_path_limits`): a Packet Too Big that lowered them sends the larger
    /// packets to the slow path, which answers or fragments them (RFC 8201, RFC 7597
    /// §8.3.1), instead of a black hole in the kernel.
    pub fn follow_mtu(&mut self, (mtu4, mss_in): (u16, u16)) {
        match self.fp.set_mtu(u32::from(mtu4), mss_in) {
            Ok(true) => tracing::info!(
                ipv4_mtu = mtu4,
                mss = mss_in,
                "fast path held to the tunnel MTU toward the BR"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "fast path MTU not updated"),
        }
    }

    /// Detaches the programs (stop).
    pub fn detach(&mut self) {
        self.fp.detach();
    }

    /// As configured.
    pub fn mode(&self) -> FastPathMode {
        self.mode
    }
}

/// The BR's programs: stateless, so only the deadline and the traffic.
pub struct BrOffload {
    fp: BrFastPath,
    mode: FastPathMode,
    names: Vec<String>,
    fold: Fold,
}

impl BrOffload {
    /// Wraps attached programs.
    pub fn new(fp: BrFastPath, mode: FastPathMode, names: Vec<String>) -> Self {
        let fold = Fold::new(fp.counters());
        Self {
            fp,
            mode,
            names,
            fold,
        }
    }

    /// Once a second: the deadline renewed, the traffic added to the pipeline's counters
    /// (internet → domain is the BR's IPv4-to-IPv6 way).
    pub fn tick(&mut self, counters: &mut PipelineCounters, now: Timestamp) {
        if !self.fold.due(now) {
            return;
        }
        renewed(self.fp.renew(mape_fastpath::monotonic_ns()));
        let (to_internet, to_domain) = self.fold.traffic(self.fp.counters());
        counters.add_fast_path(to_domain, to_internet);
    }

    /// Detaches the programs (stop).
    pub fn detach(&mut self) {
        self.fp.detach();
    }

    /// As configured.
    pub fn mode(&self) -> FastPathMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mape_nat::{Endpoint, Protocol};
    use std::net::Ipv4Addr;

    fn flow(lan_port: u16, remote: [u8; 4], ext_port: u16) -> OffloadFlow {
        OffloadFlow {
            proto: Protocol::Tcp,
            internal: Endpoint::new(Ipv4Addr::new(192, 168, 10, 10), lan_port),
            remote: Endpoint::new(Ipv4Addr::from(remote), 7010),
            external: Endpoint::new(Ipv4Addr::new(192, 0, 2, 18), ext_port),
        }
    }

    #[test]
    fn a_reclaimed_tuple_armed_next_keeps_its_inbound_entry() {
        let old = flow(40_000, [203, 0, 113, 10], 4_100);
        let new = flow(40_001, [203, 0, 113, 10], 4_100);
        assert!(inbound_reused(&[OffloadOp::Arm(new)], &old));
        assert!(inbound_reused(
            &[OffloadOp::Refresh(old), OffloadOp::Install(new)],
            &old
        ));
    }

    #[test]
    fn another_remote_port_or_protocol_or_a_far_install_does_not() {
        let old = flow(40_000, [203, 0, 113, 10], 4_100);
        let other_remote = flow(40_001, [203, 0, 113, 11], 4_100);
        let other_port = flow(40_001, [203, 0, 113, 10], 4_101);
        let mut udp = flow(40_001, [203, 0, 113, 10], 4_100);
        udp.proto = Protocol::Udp;
        for g in [other_remote, other_port, udp] {
            assert!(!inbound_reused(&[OffloadOp::Arm(g)], &old), "{g:?}");
        }
        // A removal of the same key is not an install over it.
        assert!(!inbound_reused(&[OffloadOp::Remove(old)], &old));
        let far: Vec<OffloadOp> = std::iter::repeat_n(OffloadOp::Refresh(other_port), 4)
            .chain([OffloadOp::Arm(flow(40_001, [203, 0, 113, 10], 4_100))])
            .collect();
        assert!(!inbound_reused(&far, &old));
        assert!(!inbound_reused(&[], &old));
    }
}
