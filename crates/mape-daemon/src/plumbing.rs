//! Linux set-up and teardown through netlink (no shelling out to `ip`), after the proven
//! recipe in docs/linux-plumbing.md: the TUN up at MTU 1500 without a link-local
//! address, the IPv4 default route into it with MTU 1460 on the route, the CE's MAP /128
//! into it, an `unreachable` route for the rest of the delegated prefix, proxy NDP for an
//! on-link MAP address, and the forwarding sysctls.
//!
//! Everything created is recorded in a state file (in the state directory, which outlives
//! the process and a systemd stop) before it is created, so a daemon that crashed is
//! cleaned up by the next start, and SIGTERM leaves the host as it was found.
//!
//! Touch only what we created (issue #12, items 2 and 3):
//! - Routes and proxy entries carry protocol [`RTPROT_MAPE`] (rtnetlink(7) `rtm_protocol`,
//!   `NDA_PROTOCOL`; values above `RTPROT_STATIC` are not interpreted by the kernel), so
//!   `ip route show proto 77` lists them and a leftover of an earlier run is told from a
//!   foreign route without the state file.
//! - Set-up is idempotent: an add that meets "File exists" (EEXIST, `NLM_F_EXCL`) looks at
//!   what exists: ours from an earlier run is replaced (`NLM_F_REPLACE`), a foreign
//!   `unreachable` route or proxy entry is left as found and not removed at stop, and a
//!   foreign route that would shadow ours is a clear error, never a loop.
//! - Deletes name the interface, table, metric and protocol, so the kernel cannot pick
//!   another route with the same destination (a foreign `default via … metric 500`);
//!   routes through a device that is gone went with it and are not deleted by prefix.
//!   The daemon tears down before it closes the TUN.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

/// The routing protocol number on everything mape creates (`ip route show proto 77`).
/// rtnetlink.h: "values of protocol >= RTPROT_STATIC are not interpreted by kernel"; 77
/// is none of the numbers the kernel headers or iproute2's rt_protos assign.
pub const RTPROT_MAPE: u8 = 77;
/// Metric of mape's IPv6 routes: the kernel's default for user routes (IP6_RT_PRIO_USER),
/// given explicitly so deletes match it and nothing else.
pub const METRIC6: u32 = 1024;
/// Metric of mape's IPv4 routes (the kernel's default; a foreign default route at another
/// metric, e.g. a fallback at 500, is a different route and left alone).
pub const METRIC4: u32 = 0;
/// The main routing table (rtnetlink(7) RT_TABLE_MAIN).
const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;
const EEXIST: i32 = 17;

/// One thing the daemon created and must remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Created {
    /// An IPv4 route through an interface (with an MTU metric).
    Route4 {
        /// Destination.
        dst: Ipv4Addr,
        /// Prefix length.
        len: u8,
        /// Interface name.
        dev: String,
        /// MTU on the route.
        mtu: Option<u32>,
    },
    /// An IPv6 route through an interface.
    Route6 {
        /// Destination.
        dst: Ipv6Addr,
        /// Prefix length.
        len: u8,
        /// Interface name.
        dev: String,
    },
    /// An IPv6 `unreachable` route.
    Unreachable6 {
        /// Destination.
        dst: Ipv6Addr,
        /// Prefix length.
        len: u8,
    },
    /// A proxy neighbour entry.
    ProxyNeighbour {
        /// Interface name.
        dev: String,
        /// Address answered for.
        addr: Ipv6Addr,
    },
    /// A sysctl changed from `old`.
    Sysctl {
        /// Path under /proc/sys.
        path: String,
        /// Previous value.
        old: String,
    },
}

/// Why set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    /// A netlink request failed.
    #[error("netlink: {what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// Kernel's answer.
        source: rtnetlink::Error,
    },
    /// An interface does not exist.
    #[error("interface {0} not found")]
    NoInterface(String),
    /// A route that is not mape's occupies the place of one mape needs.
    #[error("{what}: a route that mape did not create is in the way ({existing}); remove it or give it another metric")]
    Conflict {
        /// What mape wanted to add.
        what: String,
        /// The route found, in `ip route` words.
        existing: String,
    },
    /// A sysctl could not be written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// The netlink socket could not be opened.
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    /// The state file could not be written.
    #[error("state file {path}: {source}")]
    State {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> PlumbingError {
    let what = what.into();
    move |source| PlumbingError::Netlink { what, source }
}

fn is_eexist(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -EEXIST)
}

/// What an add found when the kernel said "File exists".
enum Existing {
    /// Ours, from an earlier run: replaced.
    Replaced,
    /// Foreign but doing the same job: left as found, not ours to remove.
    Foreign(String),
}

fn mape_proto() -> RouteProtocol {
    RouteProtocol::from(RTPROT_MAPE)
}

/// Set-up in progress or done; teardown undoes it in reverse.
pub struct Plumbing {
    handle: Handle,
    created: Vec<Created>,
    state_file: PathBuf,
}

impl Plumbing {
    /// Opens a netlink connection (spawned on the current tokio runtime). Cleans up what a
    /// previous, crashed run recorded in `state_file`. The caller holds the instance lock,
    /// so that run is dead: nothing here can touch a running daemon's plumbing.
    pub async fn new(state_file: PathBuf) -> Result<Self, PlumbingError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(PlumbingError::Socket)?;
        tokio::spawn(conn);
        let mut p = Self {
            handle,
            created: Vec::new(),
            state_file,
        };
        if let Ok(text) = std::fs::read_to_string(&p.state_file) {
            match serde_json::from_str::<Vec<Created>>(&text) {
                Ok(old) => {
                    tracing::warn!(
                        state = %p.state_file.display(),
                        items = old.len(),
                        "cleaning up after a previous run that did not stop cleanly"
                    );
                    p.created = old;
                    p.teardown().await;
                }
                Err(e) => tracing::warn!(
                    state = %p.state_file.display(),
                    error = %e,
                    "unreadable state file ignored; leftovers of an earlier run are found by their protocol"
                ),
            }
        }
        Ok(p)
    }

    /// Writes the record atomically (temporary file, then rename(2)), mode 0600.
    fn save(&self) -> Result<(), PlumbingError> {
        let err = |source| PlumbingError::State {
            path: self.state_file.display().to_string(),
            source,
        };
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = serde_json::to_string_pretty(&self.created).unwrap_or_default();
        let tmp = self.state_file.with_extension("state.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.state_file).map_err(err)
    }

    /// Records `c` (state file first, so a crash in between is still cleaned up), then does
    /// it; on "File exists", replaces a leftover of ours or leaves a foreign equivalent.
    async fn create(&mut self, c: Created) -> Result<(), PlumbingError> {
        self.created.push(c.clone());
        self.save()?;
        match self.apply(&c, false).await {
            Ok(()) => Ok(()),
            Err(PlumbingError::Netlink { source, what }) if is_eexist(&source) => {
                match self.existing(&c, &what).await? {
                    Existing::Replaced => {
                        tracing::info!(item = %what, "replaced what an earlier run left");
                        Ok(())
                    }
                    Existing::Foreign(found) => {
                        tracing::warn!(item = %what, existing = %found, "already present and not mape's: left as found");
                        self.created.pop();
                        self.save()
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The kernel index of interface `name`.
    pub async fn index(&self, name: &str) -> Result<u32, PlumbingError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            _ => Err(PlumbingError::NoInterface(name.to_string())),
        }
    }

    /// The Ethernet interfaces of this network namespace that are not enslaved to a
    /// bridge or bond (their master is where packets are routed): where the fast path
    /// attaches (`crate::fastpath`).
    pub async fn ethernet_links(&self) -> Vec<(String, u32)> {
        use rtnetlink::packet_route::link::{LinkAttribute, LinkLayerType};
        let mut out = Vec::new();
        let mut links = self.handle.link().get().execute();
        while let Ok(Some(msg)) = links.try_next().await {
            if msg.header.link_layer_type != LinkLayerType::Ether {
                continue;
            }
            let mut name = None;
            let mut enslaved = false;
            for a in &msg.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Controller(_) => enslaved = true,
                    _ => {}
                }
            }
            if let (Some(n), false) = (name, enslaved) {
                out.push((n, msg.header.index));
            }
        }
        out
    }

    /// Whether an interface `name` exists in this network namespace.
    pub async fn link_exists(&self, name: &str) -> bool {
        self.index(name).await.is_ok()
    }

    async fn link_name(&self, index: u32) -> String {
        let mut links = self.handle.link().get().match_index(index).execute();
        if let Ok(Some(msg)) = links.try_next().await {
            for a in msg.attributes {
                if let rtnetlink::packet_route::link::LinkAttribute::IfName(n) = a {
                    return n;
                }
            }
        }
        format!("if{index}")
    }

    /// Brings `dev` up at `mtu` with no IPv6 link-local address (addr_gen_mode none).
    pub async fn link_up(&mut self, dev: &str, mtu: u32) -> Result<(), PlumbingError> {
        let _ = write_sysctl(&format!("net/ipv6/conf/{dev}/addr_gen_mode"), "1");
        let idx = self.index(dev).await?;
        let msg = LinkUnspec::new_with_index(idx).up().mtu(mtu).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(format!("set {dev} up mtu {mtu}")))
    }

    /// Sets a sysctl, remembering the old value for teardown.
    pub async fn sysctl(&mut self, path: &str, value: &str) -> Result<(), PlumbingError> {
        let old = read_sysctl(path).map_err(|source| PlumbingError::Sysctl {
            path: path.to_string(),
            source,
        })?;
        if old == value {
            return Ok(());
        }
        self.created.push(Created::Sysctl {
            path: path.to_string(),
            old,
        });
        self.save()?;
        write_sysctl(path, value).map_err(|source| PlumbingError::Sysctl {
            path: path.to_string(),
            source,
        })
    }

    /// Adds an IPv4 route through `dev`.
    pub async fn route4(
        &mut self,
        dst: Ipv4Addr,
        len: u8,
        dev: &str,
        mtu: Option<u32>,
    ) -> Result<(), PlumbingError> {
        self.create(Created::Route4 {
            dst,
            len,
            dev: dev.into(),
            mtu,
        })
        .await
    }

    /// Adds an IPv6 route through `dev`.
    pub async fn route6(&mut self, dst: Ipv6Addr, len: u8, dev: &str) -> Result<(), PlumbingError> {
        self.create(Created::Route6 {
            dst,
            len,
            dev: dev.into(),
        })
        .await
    }

    /// Adds an IPv6 unreachable route.
    pub async fn unreachable6(&mut self, dst: Ipv6Addr, len: u8) -> Result<(), PlumbingError> {
        self.create(Created::Unreachable6 { dst, len }).await
    }

    /// Answers neighbour discovery for `addr` on `dev` (proxy NDP; set proxy_delay 0 too).
    pub async fn proxy_neighbour(
        &mut self,
        dev: &str,
        addr: Ipv6Addr,
    ) -> Result<(), PlumbingError> {
        self.sysctl(&format!("net/ipv6/conf/{dev}/proxy_ndp"), "1")
            .await?;
        self.sysctl(&format!("net/ipv6/neigh/{dev}/proxy_delay"), "0")
            .await?;
        // The kernel answers an add of an existing proxy entry with success, not EEXIST
        // (neigh_add: pneigh_lookup(..., creat = 1)): look first, so an entry someone else
        // made is left as found and not removed at stop.
        if let Some(found) = self.proxy_protocol(dev, addr).await {
            if found != Some(RTPROT_MAPE) {
                tracing::warn!(
                    item = %format!("neigh proxy {addr} dev {dev}"),
                    proto = ?found,
                    "already present and not mape's: left as found"
                );
                return Ok(());
            }
        }
        self.create(Created::ProxyNeighbour {
            dev: dev.into(),
            addr,
        })
        .await
    }

    /// The route message for `c` (routes only), with interface, table, metric and protocol:
    /// the same message adds it and deletes exactly it. `None` when its device is gone.
    async fn route_message(&self, c: &Created) -> Result<Option<RouteMessage>, PlumbingError> {
        let msg = match c {
            Created::Route4 { dst, len, dev, .. } => {
                let Ok(idx) = self.index(dev).await else {
                    return Ok(None);
                };
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(*dst, *len)
                    .output_interface(idx)
                    .table_id(TABLE_MAIN)
                    .priority(METRIC4)
                    .protocol(mape_proto())
                    .build()
            }
            Created::Route6 { dst, len, dev } => {
                let Ok(idx) = self.index(dev).await else {
                    return Ok(None);
                };
                RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*dst, *len)
                    .output_interface(idx)
                    .table_id(TABLE_MAIN)
                    .priority(METRIC6)
                    .protocol(mape_proto())
                    .build()
            }
            Created::Unreachable6 { dst, len } => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(*dst, *len)
                .kind(RouteType::Unreachable)
                .table_id(TABLE_MAIN)
                .priority(METRIC6)
                .protocol(mape_proto())
                .build(),
            Created::ProxyNeighbour { .. } | Created::Sysctl { .. } => return Ok(None),
        };
        Ok(Some(msg))
    }

    async fn apply(&self, c: &Created, replace: bool) -> Result<(), PlumbingError> {
        let what = describe(c);
        match c {
            Created::Route4 { dev, .. } | Created::Route6 { dev, .. } => {
                let Some(mut msg) = self.route_message(c).await? else {
                    return Err(PlumbingError::NoInterface(dev.clone()));
                };
                if let Created::Route4 { mtu: Some(m), .. } = c {
                    msg.attributes
                        .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(*m)]));
                }
                self.add_route(msg, replace).await.map_err(nl(what))
            }
            Created::Unreachable6 { .. } => {
                let Some(msg) = self.route_message(c).await? else {
                    return Ok(());
                };
                self.add_route(msg, replace).await.map_err(nl(what))
            }
            Created::ProxyNeighbour { dev, addr } => {
                let idx = self.index(dev).await?;
                let mut req = self
                    .handle
                    .neighbours()
                    .add(idx, IpAddr::V6(*addr))
                    .flags(NeighbourFlags::Proxy);
                req.message_mut()
                    .attributes
                    .push(NeighbourAttribute::Protocol(mape_proto()));
                let req = if replace { req.replace() } else { req };
                req.execute().await.map_err(nl(what))
            }
            Created::Sysctl { .. } => Ok(()),
        }
    }

    async fn add_route(&self, msg: RouteMessage, replace: bool) -> Result<(), rtnetlink::Error> {
        let req = self.handle.route().add(msg);
        if replace {
            req.replace().execute().await
        } else {
            req.execute().await
        }
    }

    /// After "File exists": who owns what is there? Ours (protocol 77, an earlier run
    /// whose record was lost) is replaced; a foreign `unreachable` route or proxy entry is
    /// left; a foreign route in the way of one through the TUN is a conflict.
    async fn existing(&self, c: &Created, what: &str) -> Result<Existing, PlumbingError> {
        if let Created::ProxyNeighbour { dev, addr } = c {
            let proto = self.proxy_protocol(dev, *addr).await.flatten();
            return if proto == Some(RTPROT_MAPE) {
                self.apply(c, true).await.map(|()| Existing::Replaced)
            } else {
                Ok(Existing::Foreign(format!(
                    "proxy {addr} dev {dev} proto {}",
                    proto.map_or("none".into(), |p| p.to_string())
                )))
            };
        }
        let (family, dst, len, metric) = match c {
            Created::Route4 { dst, len, .. } => {
                (AddressFamily::Inet, IpAddr::V4(*dst), *len, METRIC4)
            }
            Created::Route6 { dst, len, .. } | Created::Unreachable6 { dst, len } => {
                (AddressFamily::Inet6, IpAddr::V6(*dst), *len, METRIC6)
            }
            _ => return Ok(Existing::Foreign(String::new())),
        };
        let Some(found) = self.find_route(family, dst, len, metric).await? else {
            // Gone meanwhile: try once more as a plain add.
            return self.apply(c, false).await.map(|()| Existing::Replaced);
        };
        if u8::from(found.header.protocol) == RTPROT_MAPE {
            return self.apply(c, true).await.map(|()| Existing::Replaced);
        }
        let text = self.describe_route(&found).await;
        match c {
            Created::Unreachable6 { .. } => Ok(Existing::Foreign(text)),
            _ => Err(PlumbingError::Conflict {
                what: what.to_string(),
                existing: text,
            }),
        }
    }

    /// The main-table route to exactly `dst/len` at `metric`, if any.
    async fn find_route(
        &self,
        family: AddressFamily,
        dst: IpAddr,
        len: u8,
        metric: u32,
    ) -> Result<Option<RouteMessage>, PlumbingError> {
        let query = match family {
            AddressFamily::Inet => RouteMessageBuilder::<Ipv4Addr>::new().build(),
            _ => RouteMessageBuilder::<Ipv6Addr>::new().build(),
        };
        let mut routes = self.handle.route().get(query).execute();
        while let Some(r) = routes
            .try_next()
            .await
            .map_err(nl(format!("list routes to {dst}/{len}")))?
        {
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            let prio = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Priority(p) => Some(*p),
                    _ => None,
                })
                .unwrap_or(0);
            let rdst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            });
            let rdst = rdst.unwrap_or(match family {
                AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
            if table == TABLE_MAIN
                && r.header.destination_prefix_length == len
                && rdst == dst
                && prio == metric
            {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    async fn describe_route(&self, r: &RouteMessage) -> String {
        let mut parts = vec![format!("{:?}", r.header.kind).to_lowercase()];
        for a in &r.attributes {
            match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => parts.push(format!("via {g}")),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => parts.push(format!("via {g}")),
                RouteAttribute::Oif(i) => parts.push(format!("dev {}", self.link_name(*i).await)),
                _ => {}
            }
        }
        parts.push(format!("proto {}", u8::from(r.header.protocol)));
        parts.join(" ")
    }

    /// `Some(protocol)` when a proxy entry for `addr` on `dev` exists (the inner `None`:
    /// it has no protocol), `None` when there is none.
    async fn proxy_protocol(&self, dev: &str, addr: Ipv6Addr) -> Option<Option<u8>> {
        let idx = self.index(dev).await.ok()?;
        let mut entries = self
            .handle
            .neighbours()
            .get()
            .proxies()
            .set_address_family(AddressFamily::Inet6)
            .execute();
        while let Ok(Some(n)) = entries.try_next().await {
            let is_it = n.header.ifindex == idx
                && n.attributes.iter().any(|a| {
                    matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Inet6(x)) if *x == addr)
                });
            if is_it {
                return Some(n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Protocol(p) => Some(u8::from(*p)),
                    _ => None,
                }));
            }
        }
        None
    }

    async fn undo(&self, c: &Created) -> Result<(), String> {
        match c {
            Created::Route4 { .. } | Created::Route6 { .. } | Created::Unreachable6 { .. } => {
                // A device route whose device is gone went with it: never delete by prefix
                // alone, which could take another route to the same destination.
                let Some(msg) = self.route_message(c).await.map_err(|e| e.to_string())? else {
                    return Err("its device is gone, and the route with it".into());
                };
                self.handle
                    .route()
                    .del(msg)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            }
            Created::ProxyNeighbour { dev, addr } => {
                let idx = self.index(dev).await.map_err(|e| e.to_string())?;
                let mut msg = NeighbourMessage::default();
                msg.header.family = AddressFamily::Inet6;
                msg.header.ifindex = idx;
                msg.header.state = NeighbourState::Permanent;
                msg.header.flags = NeighbourFlags::Proxy;
                msg.attributes
                    .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                        *addr,
                    )));
                self.handle
                    .neighbours()
                    .del(msg)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            }
            Created::Sysctl { path, old } => write_sysctl(path, old).map_err(|e| e.to_string()),
        }
    }

    /// Removes one thing created earlier (a MAP address's route when the rule changes in
    /// place) and its record; `false` when it was not recorded. "Not found" is fine.
    pub async fn remove(&mut self, c: &Created) -> Result<bool, PlumbingError> {
        let Some(i) = self.created.iter().position(|x| x == c) else {
            return Ok(false);
        };
        if let Err(e) = self.undo(c).await {
            tracing::debug!(item = %describe(c), error = %e, "remove: already gone");
        }
        self.created.remove(i);
        self.save()?;
        Ok(true)
    }

    /// Whether `c` is recorded as created.
    pub fn has(&self, c: &Created) -> bool {
        self.created.contains(c)
    }

    /// Removes everything created, newest first, and the state file. Call it while the TUN
    /// is still open, so routes through it are deleted by interface; "not found" is fine.
    pub async fn teardown(&mut self) {
        while let Some(c) = self.created.pop() {
            if let Err(e) = self.undo(&c).await {
                tracing::debug!(item = %describe(&c), error = %e, "teardown: already gone");
            }
        }
        let _ = std::fs::remove_file(&self.state_file);
    }
}

/// `c` in `ip` words, for logs and errors.
fn describe(c: &Created) -> String {
    match c {
        Created::Route4 { dst, len, dev, mtu } => format!(
            "route {dst}/{len} dev {dev}{}",
            mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
        ),
        Created::Route6 { dst, len, dev } => format!("route {dst}/{len} dev {dev}"),
        Created::Unreachable6 { dst, len } => format!("unreachable {dst}/{len}"),
        Created::ProxyNeighbour { dev, addr } => format!("neigh proxy {addr} dev {dev}"),
        Created::Sysctl { path, old } => format!("sysctl {path} (was {old})"),
    }
}

fn sysctl_path(path: &str) -> PathBuf {
    Path::new("/proc/sys").join(path)
}

/// The value of sysctl `path` (under /proc/sys), trimmed.
pub(crate) fn read_sysctl(path: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(sysctl_path(path))?
        .trim()
        .to_string())
}

fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(sysctl_path(path), value)
}
