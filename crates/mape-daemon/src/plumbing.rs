//! Linux set-up and teardown through netlink (no shelling out to `ip`), after the proven
//! recipe in reference/linux-plumbing.md: the TUN up at MTU 1500 without a link-local
//! address, the IPv4 default route into it with MTU 1460 on the route, the CE's MAP /128
//! into it, an `unreachable` route for the rest of the delegated prefix, proxy NDP for an
//! on-link MAP address, and the forwarding sysctls.
//!
//! Everything created is recorded in a state file before it is created, so a daemon that
//! crashed is cleaned up by the next start, and SIGTERM leaves the host as it was found.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMetric, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

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

/// Set-up in progress or done; teardown undoes it in reverse.
pub struct Plumbing {
    handle: Handle,
    created: Vec<Created>,
    state_file: PathBuf,
}

impl Plumbing {
    /// Opens a netlink connection (spawned on the current tokio runtime). Cleans up what a
    /// previous, crashed run recorded in `state_file`.
    pub async fn new(state_file: PathBuf) -> Result<Self, PlumbingError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(PlumbingError::Socket)?;
        tokio::spawn(conn);
        let mut p = Self {
            handle,
            created: Vec::new(),
            state_file,
        };
        if let Ok(text) = std::fs::read_to_string(&p.state_file) {
            if let Ok(old) = serde_json::from_str::<Vec<Created>>(&text) {
                tracing::warn!(
                    state = %p.state_file.display(),
                    items = old.len(),
                    "cleaning up after a previous run that did not stop cleanly"
                );
                p.created = old;
                p.teardown().await;
            }
        }
        Ok(p)
    }

    fn save(&self) -> Result<(), PlumbingError> {
        if let Some(dir) = self.state_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let text = serde_json::to_string_pretty(&self.created).unwrap_or_default();
        std::fs::write(&self.state_file, text).map_err(|source| PlumbingError::State {
            path: self.state_file.display().to_string(),
            source,
        })
    }

    /// Records `c` (state file first, so a crash in between is still cleaned up), then does it.
    async fn create(&mut self, c: Created) -> Result<(), PlumbingError> {
        self.created.push(c.clone());
        self.save()?;
        self.apply(&c).await
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
        self.create(Created::ProxyNeighbour {
            dev: dev.into(),
            addr,
        })
        .await
    }

    async fn apply(&self, c: &Created) -> Result<(), PlumbingError> {
        match c {
            Created::Route4 { dst, len, dev, mtu } => {
                let idx = self.index(dev).await?;
                let mut msg = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(*dst, *len)
                    .output_interface(idx)
                    .build();
                if let Some(m) = mtu {
                    msg.attributes
                        .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(*m)]));
                }
                self.handle
                    .route()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(nl(format!("route {dst}/{len} dev {dev}")))
            }
            Created::Route6 { dst, len, dev } => {
                let idx = self.index(dev).await?;
                let msg = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*dst, *len)
                    .output_interface(idx)
                    .build();
                self.handle
                    .route()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(nl(format!("route {dst}/{len} dev {dev}")))
            }
            Created::Unreachable6 { dst, len } => {
                let msg = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*dst, *len)
                    .kind(RouteType::Unreachable)
                    .build();
                self.handle
                    .route()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(nl(format!("unreachable {dst}/{len}")))
            }
            Created::ProxyNeighbour { dev, addr } => {
                let idx = self.index(dev).await?;
                self.handle
                    .neighbours()
                    .add(idx, IpAddr::V6(*addr))
                    .flags(NeighbourFlags::Proxy)
                    .execute()
                    .await
                    .map_err(nl(format!("proxy neighbour {addr} dev {dev}")))
            }
            Created::Sysctl { .. } => Ok(()),
        }
    }

    async fn undo(&self, c: &Created) -> Result<(), String> {
        match c {
            Created::Route4 { dst, len, dev, .. } => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(*dst, *len);
                if let Ok(idx) = self.index(dev).await {
                    b = b.output_interface(idx);
                }
                self.handle
                    .route()
                    .del(b.build())
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            }
            Created::Route6 { dst, len, dev } => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(*dst, *len);
                if let Ok(idx) = self.index(dev).await {
                    b = b.output_interface(idx);
                }
                self.handle
                    .route()
                    .del(b.build())
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            }
            Created::Unreachable6 { dst, len } => {
                let msg = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*dst, *len)
                    .kind(RouteType::Unreachable)
                    .build();
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

    /// Removes everything created, newest first, and the state file. Routes through the TUN
    /// vanish with it anyway; "not found" is fine.
    pub async fn teardown(&mut self) {
        while let Some(c) = self.created.pop() {
            if let Err(e) = self.undo(&c).await {
                tracing::debug!(item = ?c, error = %e, "teardown: already gone");
            }
        }
        let _ = std::fs::remove_file(&self.state_file);
    }
}

fn sysctl_path(path: &str) -> PathBuf {
    Path::new("/proc/sys").join(path)
}

fn read_sysctl(path: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(sysctl_path(path))?
        .trim()
        .to_string())
}

fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(sysctl_path(path), value)
}
