//! Putting a provisioning source's report in force while the daemon runs (issue #14 §3):
//! the configuration re-resolved with the new answer; when the MAP parameters differ, the
//! pipeline re-provisioned under the datapath lock (sessions moved by the NAT engine's
//! save and restore: those whose port stays are kept, the rest dropped and counted), the
//! MAP address's routes replaced, the status updated and one event logged (and passed to
//! the hook) with before and after. A failure is an event too (its step and since when).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mape_control::reply::ProvisioningChange;
use mape_provision::{LastGood, Offer};
use serde_json::json;

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
    let path = &a.settings.path;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return failed(a, at, None, "apply", &format!("{}: {e}", path.display())),
    };
    let inputs = |f: &crate::config::ConfigFile| Inputs {
        hb46pp: Some(offer.clone()),
        end_user: wan_end_user(f),
    };
    let new = match Settings::parse_with(&text, path, &inputs) {
        Ok(n) => n,
        Err(e) => return failed(a, at, None, "apply", &e.to_string()),
    };
    let Role::Ce(new_ce) = &new.role else {
        return failed(
            a,
            at,
            None,
            "apply",
            "the configuration is no longer a CE's",
        );
    };
    let same = new_ce.map == a.current.map && new_ce.br_sources == a.current.br_sources;
    if same {
        if let Ok(mut t) = a.tracker.lock() {
            t.in_force(lg, &offer, false);
        }
        return;
    }
    let now = now_since(a.clock);
    let done = match a.shared.lock() {
        Ok(mut p) => p.reprovision(now, &new),
        Err(_) => return,
    };
    let moved = match done {
        Ok(m) => m,
        Err(e) => return failed(a, at, None, "apply", &e.to_string()),
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
        mape_source = "hb46pp",
        mape_url = %lg.url,
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
        json!({"kind": "provisioning_changed", "at": at, "source": "hb46pp", "url": lg.url,
               "before": change.before, "after": change.after,
               "sessions_kept": change.sessions_kept,
               "sessions_dropped": change.sessions_dropped}),
    );
    if let Ok(mut t) = a.tracker.lock() {
        t.in_force(lg, &offer, false);
        t.changed(change);
    }
    *a.current = new_ce.clone();
}
