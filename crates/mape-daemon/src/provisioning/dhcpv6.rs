//! mape's own DHCPv6 client in the daemon (`method = "dhcpv6"` without `[map]
//! dhcpv6_file`): [`prepare`] runs the first exchange on `[wan] interface` before the
//! daemon starts (up to `[provisioning.dhcpv6] timeout_s`; its lease, or the stored one
//! while the server does not answer, gives the rule the daemon starts with); then
//! [`Dhcpv6Run::drive`] runs the machine (`mape_provision::dhcpv6`: Renew at T1, Rebind at
//! T2, Solicit again when the lease is lost) on the control-plane runtime and sends a
//! [`LeaseReport`] for every Reply, loss and failure. Every lease is stored
//! ([`super::lease`]). The lease in force when the client has none (the stored one) ends
//! at its own valid lifetime: that is a loss too.
//!
//! With `[provisioning.dhcpv6] mode = "stateless"` (an RA-only line: no prefix is
//! delegated) the client sends Information-requests instead (RFC 8415 §18.2.6): each Reply
//! is stored (`<tun>.dhcpv6-info.json`) and reported, refreshed at its Information Refresh
//! Time; nothing expires, so MAP-E never stops for it.

use std::net::SocketAddrV6;
use std::path::PathBuf;
use std::time::Duration;

use mape_provision::dhcpv6::shell::{self, Socket};
use mape_provision::dhcpv6::{
    Client, Config, Event, Information, Lease, Step, ALL_SERVERS, SERVER_PORT,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;

use super::runner::{now, PrepareError};
use super::{lease, Update};
use crate::config::ConfigFile;

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReport {
    /// When (seconds since the UNIX epoch).
    pub at: u64,
    /// What (the machine's event: a Reply, the lease's end — MAP-E stops until a new one
    /// — or a failed exchange).
    pub event: Event,
}

/// The DHCPv6 client between its exchanges.
pub struct Dhcpv6Run {
    client: Client<StdRng>,
    socket: Option<Socket>,
    store: PathBuf,
    /// The lease in force: the client's, or the stored one until the client has one.
    held: Option<Lease>,
    /// The first exchange's lease (None: no Reply within the time-out).
    pub first: Option<Lease>,
    /// The stored lease read at start (still valid).
    pub stored: Option<Lease>,
    /// Stateless: the configuration in force (the client's, or the stored one).
    info: Option<Information>,
    /// Stateless: whether the first exchange got a Reply.
    pub first_informed: bool,
    info_store: PathBuf,
    /// The interface.
    pub interface: String,
}

impl std::fmt::Debug for Dhcpv6Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dhcpv6Run")
            .field("interface", &self.interface)
            .field("first", &self.first)
            .finish()
    }
}

fn save(path: &std::path::Path, l: &Lease) {
    if let Err(e) = lease::save(path, l) {
        tracing::error!(error = %e, "DHCPv6 lease not stored");
    }
}

fn save_info(path: &std::path::Path, i: &Information) {
    if let Err(e) = lease::save_info(path, i) {
        tracing::error!(error = %e, "DHCPv6 information not stored");
    }
}

/// Opens the client's socket on the WAN and runs the first exchange (blocking; call it
/// before the daemon's runtime starts). A lease is stored at once, so that
/// [`crate::config::Settings::load`] reads it.
pub fn prepare(file: &ConfigFile) -> Result<Dhcpv6Run, PrepareError> {
    let timeout = file.provisioning.dhcpv6.timeout()?;
    let interface = file.wan.as_ref().map(|w| w.interface.clone()).ok_or(
        crate::config::ConfigError::Missing {
            key: "wan.interface",
            expected: "the WAN interface the DHCPv6 client runs on",
        },
    )?;
    let stateless = file.provisioning.dhcpv6.mode == super::settings::Dhcpv6Mode::Stateless;
    let info_store = super::info_path(file);
    let store = super::lease_path(file);
    let stored = match lease::load(&store, now().as_secs()) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "stored DHCPv6 lease not used");
            None
        }
    };
    let mac = shell::mac(&interface)?;
    let _ = std::fs::create_dir_all(&file.state.dir);
    let duid_path = lease::duid_path(&file.state.dir, &file.tun.name);
    let duid = shell::load_or_create_duid(&duid_path, mac, now().as_secs())?;
    let socket = Socket::open(&interface)?;
    let config = Config {
        duid,
        iaid: shell::iaid(mac),
        // RFC 8415 §18.2.1: the prefix held before, as a hint.
        hint: stored.as_ref().map(|l| l.prefix),
    };
    let rng = StdRng::from_os_rng();
    let mut client = if stateless {
        Client::stateless(config, rng)
    } else {
        Client::new(config, rng)
    };
    client.start(now());
    let log = shell::run(&mut client, &socket, now, now() + timeout, |e| {
        matches!(e, Event::Bound { .. } | Event::Informed { .. })
    })?;
    if stateless {
        let stored_info = lease::load_info(&info_store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored DHCPv6 information not used");
            None
        });
        let first = client.information().cloned();
        match &first {
            Some(i) => {
                save_info(&info_store, i);
                tracing::info!(
                    interface = %interface,
                    s46 = i.has_s46(),
                    refresh = i.refresh,
                    "DHCPv6 information obtained (stateless)"
                );
            }
            None => tracing::warn!(
                interface = %interface,
                stored = stored_info.is_some(),
                error = client.last_failure().map_or("no Reply".into(), |f| f.detail.clone()),
                "no Reply to Information-request within {}s at start{}",
                timeout.as_secs(),
                if stored_info.is_some() { "; the stored one is used" } else { "" }
            ),
        }
        return Ok(Dhcpv6Run {
            client,
            socket: Some(socket),
            store,
            held: None,
            first: None,
            stored: None,
            first_informed: first.is_some(),
            info: first.or(stored_info),
            info_store,
            interface,
        });
    }
    let first = log.events.iter().rev().find_map(|e| match e {
        Event::Bound { lease, .. } => Some(lease.clone()),
        _ => None,
    });
    match &first {
        Some(l) => {
            save(&store, l);
            tracing::info!(
                interface = %interface,
                prefix = %l.prefix.prefix,
                s46 = l.has_s46(),
                t1 = l.t1,
                "DHCPv6 lease obtained"
            );
        }
        None => tracing::warn!(
            interface = %interface,
            stored = stored.is_some(),
            error = client.last_failure().map_or("no Reply".into(), |f| f.detail.clone()),
            "no DHCPv6 lease within {}s at start{}",
            timeout.as_secs(),
            if stored.is_some() { "; the stored lease is used" } else { "" }
        ),
    }
    Ok(Dhcpv6Run {
        client,
        socket: Some(socket),
        store,
        held: first.clone().or_else(|| stored.clone()),
        first,
        stored,
        info: None,
        first_informed: false,
        info_store,
        interface,
    })
}

impl Dhcpv6Run {
    /// The client's lease, or the stored one while the client has none.
    pub fn held(&self) -> Option<&Lease> {
        self.held.as_ref()
    }

    /// Stateless: the configuration in force (the client's, or the stored one).
    pub fn information(&self) -> Option<&Information> {
        self.info.as_ref()
    }

    /// When the stored lease in force ends, while the client has none.
    fn held_expiry(&self) -> Option<Duration> {
        if self.client.lease().is_some() {
            return None;
        }
        self.held.as_ref().and_then(Lease::expires_at)
    }

    fn reports(&mut self, events: Vec<Event>) -> Vec<LeaseReport> {
        let at = now().as_secs();
        events
            .into_iter()
            .map(|event| {
                match &event {
                    Event::Bound { lease, .. } => {
                        save(&self.store, lease);
                        self.held = Some(lease.clone());
                    }
                    Event::Lost { .. } => self.held = None,
                    Event::Informed { info, .. } => {
                        save_info(&self.info_store, info);
                        self.info = Some(info.clone());
                    }
                    Event::Failed(_) => {}
                }
                LeaseReport { at, event }
            })
            .collect()
    }

    /// Drives the client until the receiver is gone.
    pub async fn drive(mut self, tx: mpsc::Sender<Update>) {
        let ifindex = shell::ifindex(&self.interface).unwrap_or(0);
        let to = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, ifindex);
        let Some(std) = self.socket.take().map(Socket::into_std) else {
            return;
        };
        let sock = match std
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UdpSocket::from_std(std))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "DHCPv6 socket: the client stops");
                return;
            }
        };
        let mut buf = vec![0u8; 65_536];
        // Stateless: the End-user prefix is the WAN's address; a new one (a new RA prefix)
        // is a link change, so the client asks again (RFC 8415 §18.2.12) and the Reply
        // is resolved for it.
        let stateless = self.client.is_stateless();
        let interface = self.interface.clone();
        let wan = || super::wan::global_address(Some(interface.as_str()));
        let mut addr = if stateless { wan() } else { None };
        let mut watch = tokio::time::interval(super::runner::ADDRESS_POLL);
        loop {
            let wake = match (self.client.next_timer(), self.held_expiry()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait = wake.map_or(Duration::from_secs(3600), |w| w.saturating_sub(now()));
            let step: Step = tokio::select! {
                _ = watch.tick(), if stateless => {
                    let a = wan();
                    if a == addr {
                        continue;
                    }
                    tracing::info!(old = ?addr, new = ?a, "WAN address changed: DHCPv6 Information-request");
                    addr = a;
                    self.client.rebind_now(now())
                }
                _ = tokio::time::sleep(wait) => {
                    let t = now();
                    if self.held_expiry().is_some_and(|e| t >= e) {
                        let prefix = self.held.as_ref().map(|l| l.prefix);
                        let mut step = self.client.on_timer(t);
                        if let Some(prefix) = prefix {
                            step.events.insert(0, Event::Lost {
                                prefix,
                                reason: "the stored lease's valid lifetime is over without a Reply".into(),
                            });
                        }
                        step
                    } else {
                        self.client.on_timer(t)
                    }
                }
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) if from.port() == SERVER_PORT => {
                        self.client.on_packet(now(), buf.get(..n).unwrap_or(&[]))
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "DHCPv6 recv");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            };
            if let Some(b) = &step.send {
                if let Err(e) = sock.send_to(b, to).await {
                    tracing::warn!(error = %e, to = %to.ip(), "DHCPv6 send");
                }
            }
            for r in self.reports(step.events) {
                if tx.send(Update::Dhcpv6(r)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// When the client Renews next (T1 of its lease), seconds since the UNIX epoch.
    pub fn next_renew(l: &Lease) -> Option<u64> {
        l.t1_at().map(|t| t.as_secs())
    }
}
