//! The services `mape run` starts beside the datapath on the CE's LAN side: the PCP /
//! NAT-PMP server, the UPnP IGD, and the metrics endpoint's scrape.

use std::sync::{Arc, Mutex};

use crate::clock::now_since;
use crate::config::{Role, Settings};
use crate::control::Context;

/// The PCP / NAT-PMP server on the CE's LAN addresses (`[mappings]`), one task per
/// address; none when the section switches nothing on, or when binding fails (logged:
/// the datapath runs on without it).
pub(super) async fn start_portmap(
    settings: &Settings,
    ctx: &Context,
    stats: &Arc<crate::portmap::Stats>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Role::Ce(ce) = &settings.role else {
        return Vec::new();
    };
    let m = &ce.mappings;
    let mut tasks = start_igd(ce, ctx, stats).await;
    if !m.any() {
        return tasks;
    }
    let socks = match crate::portmap::bind(&m.listen).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "port mapping server not started; continuing without");
            return Vec::new();
        }
    };
    let responder = Arc::new(Mutex::new(crate::portmap::Responder::new(
        m.pcp,
        m.natpmp,
        ce.lan_prefixes.clone(),
        m.requests_per_sec,
        now_since(ctx.start),
    )));
    tracing::info!(
        pcp = m.pcp,
        natpmp = m.natpmp,
        listen = ?m.listen,
        "port mappings served on the LAN side (UDP 5351)"
    );
    tasks.push(tokio::spawn(crate::portmap::announce(
        socks.clone(),
        responder.clone(),
        ctx.shared.clone(),
        ctx.start,
    )));
    tasks.extend(socks.into_iter().map(|s| {
        tokio::spawn(crate::portmap::serve(
            s,
            responder.clone(),
            ctx.shared.clone(),
            ctx.start,
            stats.clone(),
        ))
    }));
    tasks
}

/// The UPnP IGD (`[mappings] upnp`): SSDP and HTTP on each LAN address; an address that
/// cannot be bound is logged and skipped.
pub(super) async fn start_igd(
    ce: &crate::config::CeSettings,
    ctx: &Context,
    stats: &Arc<crate::portmap::Stats>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let m = &ce.mappings;
    let mut tasks = Vec::new();
    if !m.upnp {
        return tasks;
    }
    for &addr in &m.listen {
        match crate::igd::bind(addr, m.upnp_port).await {
            Ok((group, reply, http)) => {
                let location = format!("http://{addr}:{}/rootDesc.xml", m.upnp_port);
                tracing::info!(%location, "UPnP IGD served on the LAN side");
                tasks.push(tokio::spawn(crate::igd::serve_ssdp(
                    group,
                    reply,
                    location,
                    ce.lan_prefixes.clone(),
                )));
                tasks.push(tokio::spawn(crate::igd::serve_http(
                    http,
                    ctx.shared.clone(),
                    ctx.start,
                    ce.lan_prefixes.clone(),
                    stats.clone(),
                )));
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "UPnP IGD not started on this address");
            }
        }
    }
    tasks
}

/// The metrics endpoint's scrape: the pipeline's metrics, the port mapping requests, the
/// io counters, the uptime.
pub(super) fn scraper(
    ctx: &Context,
    portmap: Arc<crate::portmap::Stats>,
) -> crate::metrics::Scraper {
    let ctx = ctx.clone();
    Arc::new(move || {
        let now = now_since(ctx.start);
        // Only the copy is taken under the datapath lock; the text is built after it.
        let fill = ctx.shared.lock().ok().map(|p| p.metrics(now));
        crate::metrics::scrape(
            |m| {
                if let Some(fill) = fill {
                    fill(m);
                }
                if let Some(t) = ctx.provisioning.as_ref().and_then(|t| t.lock().ok()) {
                    t.metrics(m);
                }
                portmap.metrics(m);
            },
            &ctx.counters.snapshot(),
            ctx.up_since.elapsed(),
        )
    })
}
