//! Putting a provisioning source's report in force while the daemon runs (issue #14 §3):
//! the configuration re-resolved with the new answer; when the MAP parameters differ, the
//! pipeline re-provisioned under the datapath lock (sessions moved by the NAT engine's
//! save and restore: those whose port stays are kept, the rest dropped and counted), the
//! MAP address's routes replaced, the status updated and one event logged (and passed to
//! the hook) with before and after. A failure is an event too (its step and since when).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mape_control::reply::ProvisioningChange;
use mape_provision::dhcpv6::{Change, Event as LeaseEvent};
use mape_provision::{LastGood, Offer};
use serde_json::json;

use super::dhcpv6::LeaseReport;
use super::runner::{Report, RoundResult};
use super::tracker::Tracker;
use super::wan_end_user;
use crate::clock::now_since;
use crate::config::{CeSettings, Inputs, MapAddressMode, Role, Settings};
use crate::pipeline::Shared;
use crate::plumbing::{Created, Plumbing, PlumbingError};

/// What the daemon's loop lends to [`on_report`].
pub struct Apply<'a> {
    /// The settings the daemon started with (path, TUN name, hook).
    pub settings: &'a Settings,
    /// The CE parameters in force.
    pub current: &'a mut Box<CeSettings>,
    /// The pipeline.
    pub shared: &'a Shared,
    /// Its clock.
    pub clock: Instant,
    /// The host's set-up.
    pub plumbing: &'a mut Plumbing,
    /// The status.
    pub tracker: &'a Arc<Mutex<Tracker>>,
    /// Hook slots.
    pub hook_slots: &'a Arc<tokio::sync::Semaphore>,
}

/// The routes and neighbour entry of the CE's MAP address (not the sysctls they need).
pub fn map_items(tun: &str, ce: &CeSettings) -> Vec<Created> {
    let m = &ce.map.mapping;
    let mut items = vec![Created::Route6 {
        dst: m.ce_ipv6,
        len: 128,
        dev: tun.into(),
    }];
    if ce.map_address == MapAddressMode::Onlink {
        items.push(Created::ProxyNeighbour {
            dev: ce.wan_interface.clone(),
            addr: m.ce_ipv6,
        });
    } else if m.end_user_prefix.len() < 128 {
        // The rest of the delegated prefix must not ping-pong with the ISP.
        items.push(Created::Unreachable6 {
            dst: m.end_user_prefix.addr(),
            len: m.end_user_prefix.len(),
        });
    }
    items
}

async fn add(p: &mut Plumbing, c: &Created) -> Result<(), PlumbingError> {
    match c {
        Created::Route6 { dst, len, dev } => p.route6(*dst, *len, dev).await,
        Created::Unreachable6 { dst, len } => p.unreachable6(*dst, *len).await,
        Created::ProxyNeighbour { dev, addr } => p.proxy_neighbour(dev, *addr).await,
        // Not among a MAP address's items.
        Created::Route4 { .. } | Created::Sysctl { .. } => Ok(()),
    }
}

/// Sets up the MAP address's routes for `ce` (at start).
pub async fn setup_map(p: &mut Plumbing, tun: &str, ce: &CeSettings) -> Result<(), PlumbingError> {
    for c in map_items(tun, ce) {
        add(p, &c).await?;
    }
    Ok(())
}

/// Replaces the MAP address's routes of `old` by those of `new`: the new ones first, then
/// those of `old` that `new` has not (the same route is left in place).
pub async fn replace_map(
    p: &mut Plumbing,
    tun: &str,
    old: &CeSettings,
    new: &CeSettings,
) -> Result<(), PlumbingError> {
    let (was, will) = (map_items(tun, old), map_items(tun, new));
    for c in will.iter().filter(|c| !was.contains(c)) {
        add(p, c).await?;
    }
    for c in was.iter().filter(|c| !will.contains(c)) {
        p.remove(c).await?;
    }
    Ok(())
}

/// `ipv4 psid ports ce_ipv6 br`, for the change event.
pub fn describe(ce: &CeSettings) -> String {
    let m = &ce.map.mapping;
    let brs: Vec<String> = ce.map.domain.br().iter().map(|b| b.to_string()).collect();
    format!(
        "ipv4 {} psid {} ports {} ce_ipv6 {} br {}",
        m.share.ipv4.addr(),
        m.share.psid.map_or("-".into(), |p| p.to_string()),
        m.share.port_set.count(),
        m.ce_ipv6,
        brs.join(",")
    )
}

fn hook(a: &Apply<'_>, body: serde_json::Value) {
    if let Some(h) = &a.settings.events_hook {
        crate::events::run_hook_line(h, format!("{body}\n"), a.hook_slots);
    }
}

fn failed(a: &Apply<'_>, at: u64, next: Option<u64>, step: &str, detail: &str) {
    if let Ok(mut t) = a.tracker.lock() {
        t.failed(at, next, step, detail);
    }
    tracing::warn!(
        mape_event = "provisioning_failed",
        mape_step = step,
        mape_detail = detail,
        mape_next_refresh_at = next,
        "provisioning failed at {step}: {detail}"
    );
    hook(
        a,
        json!({"kind": "provisioning_failed", "at": at, "step": step, "detail": detail,
               "next_refresh_at": next}),
    );
}

/// Handles one report of the HB46PP client.
pub async fn on_report(a: &mut Apply<'_>, r: Report) {
    match r.result {
        RoundResult::Failed(f) => failed(
            a,
            r.at,
            Some(r.next),
            f.class.as_str(),
            &format!(
                "{}{}",
                f.detail,
                if f.disable {
                    " (the server says to stop MAP-E; the rule in force is kept)"
                } else {
                    ""
                }
            ),
        ),
        RoundResult::Answer(lg) => {
            let recovered = a.tracker.lock().ok().and_then(|mut t| {
                let was = t.status.last_failure.take();
                t.succeeded(r.at, r.next);
                was
            });
            if let Some(f) = recovered {
                tracing::info!(
                    mape_event = "provisioning_recovered",
                    mape_step = %f.step,
                    mape_since = f.since,
                    "provisioning works again (failed at {} since {})",
                    f.step,
                    f.since
                );
                hook(
                    a,
                    json!({"kind": "provisioning_recovered", "at": r.at, "step": f.step,
                           "since": f.since}),
                );
            }
            answer(a, r.at, &lg).await;
        }
    }
}

/// Re-resolves the configuration with the answer and applies a different rule.
async fn answer(a: &mut Apply<'_>, at: u64, lg: &LastGood) {
    let offer: Offer = match lg.offer() {
        Ok(o) => o,
        Err(e) => return failed(a, at, None, "apply", &e.to_string()),
    };
    let inputs = |f: &crate::config::ConfigFile| Inputs {
        hb46pp: Some(offer.clone()),
        end_user: wan_end_user(f),
        dhcpv6: None,
        dhcpv6_info: None,
    };
    let changed = put_in_force(a, at, &inputs, ("hb46pp", "url", &lg.url)).await;
    if let (Some(change), Ok(mut t)) = (changed.clone(), a.tracker.lock()) {
        t.in_force(lg, &offer, false);
        if let Some(c) = change {
            t.changed(c);
        }
    }
}

/// Re-resolves the configuration with `inputs` and, when the MAP parameters differ from
/// those in force, re-provisions in place and logs the change (`source` and one detail
/// `(key, value)` go into the event). `None`: it failed (reported); `Some(None)`: the
/// same parameters; `Some(Some(change))`: changed.
async fn put_in_force(
    a: &mut Apply<'_>,
    at: u64,
    inputs: &dyn Fn(&crate::config::ConfigFile) -> Inputs,
    (source, key, detail): (&str, &str, &str),
) -> Option<Option<ProvisioningChange>> {
    let path = &a.settings.path;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            failed(a, at, None, "apply", &format!("{}: {e}", path.display()));
            return None;
        }
    };
    let new = match Settings::parse_with(&text, path, inputs) {
        Ok(n) => n,
        Err(e) => {
            failed(a, at, None, "apply", &e.to_string());
            return None;
        }
    };
    let Role::Ce(new_ce) = &new.role else {
        failed(
            a,
            at,
            None,
            "apply",
            "the configuration is no longer a CE's",
        );
        return None;
    };
    if new_ce.map == a.current.map && new_ce.br_sources == a.current.br_sources {
        return Some(None);
    }
    let now = now_since(a.clock);
    let done = match a.shared.lock() {
        Ok(mut p) => p.reprovision(now, &new),
        Err(_) => return None,
    };
    let moved = match done {
        Ok(m) => m,
        Err(e) => {
            failed(a, at, None, "apply", &e.to_string());
            return None;
        }
    };
    let tun = a.settings.tun.name.as_str();
    if let Err(e) = replace_map(a.plumbing, tun, a.current, new_ce).await {
        failed(a, at, None, "apply", &format!("routes: {e}"));
    }
    let change = ProvisioningChange {
        at,
        before: describe(a.current),
        after: describe(new_ce),
        sessions_kept: moved.kept(),
        sessions_dropped: moved.dropped(),
    };
    tracing::warn!(
        mape_event = "provisioning_changed",
        mape_source = source,
        mape_detail = %detail,
        mape_before = %change.before,
        mape_after = %change.after,
        mape_sessions_kept = change.sessions_kept,
        mape_sessions_dropped = change.sessions_dropped,
        "MAP rule changed in place: {} -> {} ({} sessions kept, {} dropped)",
        change.before,
        change.after,
        change.sessions_kept,
        change.sessions_dropped
    );
    hook(
        a,
        json!({"kind": "provisioning_changed", "at": at, "source": source, key: detail,
               "before": change.before, "after": change.after,
               "sessions_kept": change.sessions_kept,
               "sessions_dropped": change.sessions_dropped}),
    );
    *a.current = new_ce.clone();
    Some(Some(change))
}

/// The IPv4 default route through the TUN (as `crate::daemon` sets it up).
fn default_route4(settings: &Settings) -> Created {
    Created::Route4 {
        dst: std::net::Ipv4Addr::UNSPECIFIED,
        len: 0,
        dev: settings.tun.name.clone(),
        mtu: Some(u32::from(settings.tun.ipv4_mtu)),
    }
}

/// Handles one report of mape's DHCPv6 client.
pub async fn on_lease(a: &mut Apply<'_>, r: LeaseReport) {
    match r.event {
        LeaseEvent::Failed(f) => failed(a, r.at, None, f.class.as_str(), &f.detail),
        LeaseEvent::Informed { info, .. } => {
            // Stateless (RFC 8415 §18.2.6): nothing expires, so MAP-E never stopped for it.
            // Re-resolved even when the options are the same: the End-user prefix is the
            // WAN's address, which a new RA prefix changes (the client asks again then).
            let i = info.clone();
            let inputs = move |f: &crate::config::ConfigFile| Inputs {
                hb46pp: None,
                end_user: wan_end_user(f),
                dhcpv6: None,
                dhcpv6_info: Some(i.clone()),
            };
            let server = mape_provision::dhcpv6::machine::hex(&info.server_id);
            let changed = put_in_force(a, r.at, &inputs, ("dhcpv6", "server", &server)).await;
            if let (Some(change), Ok(mut t)) = (changed, a.tracker.lock()) {
                t.info_in_force(&info, &a.current.map.mapping.end_user_prefix, false);
                if let Some(c) = change {
                    t.changed(c);
                }
            }
        }
        LeaseEvent::Lost { prefix, reason } => {
            lost(a, r.at, &prefix.prefix.to_string(), &reason).await
        }
        LeaseEvent::Bound { lease, change } => {
            let stopped = a.tracker.lock().ok().and_then(|t| t.status.stopped.clone());
            if stopped.is_some() {
                // A new lease after a loss: MAP-E runs again.
                let tun = a.settings.tun.name.clone();
                let route = default_route4(a.settings);
                let restored = match add_route4(a.plumbing, &route).await {
                    Ok(()) => setup_map(a.plumbing, &tun, a.current).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = restored {
                    failed(a, r.at, None, "apply", &format!("routes: {e}"));
                }
                if let Ok(mut p) = a.shared.lock() {
                    p.pause(false);
                }
                tracing::warn!(
                    mape_event = "provisioning_resumed",
                    mape_prefix = %lease.prefix.prefix,
                    "DHCPv6 lease of {} obtained: MAP-E runs again",
                    lease.prefix.prefix
                );
                hook(
                    a,
                    json!({"kind": "provisioning_resumed", "at": r.at, "source": "dhcpv6",
                           "prefix": lease.prefix.prefix.to_string()}),
                );
            }
            if change == Change::Extended && stopped.is_none() {
                if let Ok(mut t) = a.tracker.lock() {
                    t.lease_in_force(&lease, false);
                }
                return;
            }
            let l = lease.clone();
            let inputs = move |f: &crate::config::ConfigFile| Inputs {
                hb46pp: None,
                end_user: wan_end_user(f),
                dhcpv6: Some(l.clone()),
                dhcpv6_info: None,
            };
            let server = mape_provision::dhcpv6::machine::hex(&lease.server_id);
            let changed = put_in_force(a, r.at, &inputs, ("dhcpv6", "server", &server)).await;
            if let (Some(change), Ok(mut t)) = (changed, a.tracker.lock()) {
                t.lease_in_force(&lease, false);
                if let Some(c) = change {
                    t.changed(c);
                }
            }
        }
    }
}

async fn add_route4(p: &mut Plumbing, c: &Created) -> Result<(), PlumbingError> {
    match c {
        Created::Route4 { dst, len, dev, mtu } => p.route4(*dst, *len, dev, *mtu).await,
        _ => Ok(()),
    }
}

/// The lease ended: MAP-E stops (the IPv4 default route and the MAP address's routes
/// removed), the status says so, one event.
async fn lost(a: &mut Apply<'_>, at: u64, prefix: &str, reason: &str) {
    if let Ok(mut p) = a.shared.lock() {
        p.pause(true);
    }
    let tun = a.settings.tun.name.clone();
    let mut items = map_items(&tun, a.current);
    items.push(default_route4(a.settings));
    for c in &items {
        if let Err(e) = a.plumbing.remove(c).await {
            tracing::error!(error = %e, "route not removed");
        }
    }
    if let Ok(mut t) = a.tracker.lock() {
        t.lease_lost(at, prefix, reason);
    }
    tracing::error!(
        mape_event = "provisioning_stopped",
        mape_source = "dhcpv6",
        mape_prefix = prefix,
        mape_detail = reason,
        "DHCPv6 lease of {prefix} ended ({reason}): MAP-E stopped, IPv4 routes removed until a new lease"
    );
    hook(
        a,
        json!({"kind": "provisioning_stopped", "at": at, "source": "dhcpv6",
               "prefix": prefix, "detail": reason}),
    );
}
