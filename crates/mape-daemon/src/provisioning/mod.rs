//! Where the CE's MAP rule comes from at start and while the daemon runs (issue #14):
//! `[provisioning]` ([`settings`]), the HB46PP answer and the DHCPv6 lease kept on disk
//! ([`store`], [`lease`]), the WAN's address ([`wan`]), what `show status` says about it
//! ([`tracker`]) and the two clients driven on the control-plane runtime: HB46PP
//! ([`runner`]: a first round before the daemon starts, then refreshes at the answer's
//! `ttl`, the spec's back-offs, and a re-fetch when the WAN's address changes) and mape's
//! own DHCPv6 client ([`dhcpv6`]: a first exchange before the start, then Renew, Rebind
//! and the lease's end). [`prepare`] runs the one the configuration names ([`Run`]); its
//! reports ([`Update`]) reach the daemon, which puts a changed rule in force in place.
//!
//! What a source learnt enters the configuration through [`crate::config::Inputs`] (the
//! HB46PP offer, the DHCPv6 lease, the End-user prefix), and a changed rule is put in
//! force by re-resolving [`crate::config::Settings::parse_with`] and the in-place step of
//! [`apply`] (pipeline `reprovision`, `replace_map`, the event), which do not depend on
//! the source.

pub mod apply;
pub mod dhcpv6;
pub mod lease;
pub mod runner;
pub mod settings;
pub mod store;
pub mod tracker;
pub mod wan;

use std::path::Path;

use crate::config::{ConfigFile, Inputs};

pub use dhcpv6::{Dhcpv6Run, LeaseReport};
pub use runner::{prepare, Hb46ppRun, Report};
pub use tracker::Tracker;

/// The client the daemon runs, after its first round ([`prepare`]).
#[derive(Debug)]
pub enum Run {
    /// HB46PP.
    Hb46pp(Box<Hb46ppRun>),
    /// mape's DHCPv6 client.
    Dhcpv6(Box<Dhcpv6Run>),
}

impl Run {
    /// Drives the client on the control-plane runtime until the receiver is gone.
    pub async fn drive(self, tx: tokio::sync::mpsc::Sender<Update>) {
        match self {
            Run::Hb46pp(r) => r.drive(tx).await,
            Run::Dhcpv6(r) => r.drive(tx).await,
        }
    }
}

/// What a client reports to the daemon.
#[derive(Debug, Clone)]
pub enum Update {
    /// An HB46PP round.
    Hb46pp(Report),
    /// A DHCPv6 Reply, loss or failure.
    Dhcpv6(LeaseReport),
}

/// The stored answer's path for a configuration file's sections.
pub fn store_path(file: &ConfigFile) -> std::path::PathBuf {
    store::path(&file.state.dir, &file.tun.name)
}

/// What the host says: the stored answer (a refused one is logged and not used) and the
/// WAN's global address as the End-user /128.
pub fn host_inputs(file: &ConfigFile) -> Inputs {
    let hb46pp = match store::load(&store_path(file)) {
        Ok(lg) => lg.and_then(|l| l.offer().ok()),
        Err(e) => {
            tracing::warn!(error = %e, "stored HB46PP answer not used");
            None
        }
    };
    let dhcpv6 = match lease::load(&lease_path(file), runner::now().as_secs()) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "stored DHCPv6 lease not used");
            None
        }
    };
    let dhcpv6_info = match lease::load_info(&info_path(file)) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "stored DHCPv6 information not used");
            None
        }
    };
    Inputs {
        hb46pp,
        end_user: wan_end_user(file),
        dhcpv6,
        dhcpv6_info,
    }
}

/// The stored configuration of the stateless DHCPv6 client.
pub fn info_path(file: &ConfigFile) -> std::path::PathBuf {
    lease::info_path(&file.state.dir, &file.tun.name)
}

/// The stored DHCPv6 lease's path.
pub fn lease_path(file: &ConfigFile) -> std::path::PathBuf {
    lease::path(&file.state.dir, &file.tun.name)
}

/// The WAN's global address as an End-user /128.
pub fn wan_end_user(file: &ConfigFile) -> Option<mape_rules::Ipv6Net> {
    let iface = file.wan.as_ref().map(|w| w.interface.as_str());
    wan::global_address(iface).and_then(wan::as_end_user)
}

/// Deletes the stored HB46PP answer of the configuration at `config`
/// (`mape provision erase`); returns its path and whether there was one.
pub fn erase(config: &Path) -> Result<(std::path::PathBuf, bool), crate::config::ConfigError> {
    let text =
        std::fs::read_to_string(config).map_err(|source| crate::config::ConfigError::Read {
            path: config.display().to_string(),
            source,
        })?;
    let file = crate::config::Settings::file(&text, config)?;
    let path = store_path(&file);
    let existed =
        store::erase(&path).map_err(|e| crate::config::ConfigError::Hb46pp(e.to_string()))?;
    Ok((path, existed))
}
