//! UPnP IGD on the LAN side: SSDP discovery (UPnP Device Architecture 1.1 §1.3: M-SEARCH
//! on 239.255.255.250:1900 answered by unicast) and an HTTP server (axum) with the device
//! description and the WANIPConnection control ([`soap`]), every mapping through the
//! engine's mapping calls, so inside the port set. Only LAN sources are answered; the
//! HTTP server listens on the CE's LAN addresses only.

pub mod soap;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use mape_rules::Ipv4Net;

use crate::clock::now_since;
use crate::pipeline::Shared;

/// The SSDP multicast group and port (UDA 1.1 §1.1.2).
pub const SSDP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);

const DEVICE_IGD: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
const DEVICE_WAN: &str = "urn:schemas-upnp-org:device:WANDevice:1";
const DEVICE_WANCONN: &str = "urn:schemas-upnp-org:device:WANConnectionDevice:1";
const SERVICE_CIF: &str = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1";
/// The device's UUID (one CE, one device).
const UUID: &str = "uuid:6d617065-0000-4000-8000-6d6170650001";
const CONTROL: &str = "/ctl/IPConn";

/// The search targets this device answers, each with its USN.
fn targets() -> [(&'static str, String); 6] {
    [
        ("upnp:rootdevice", format!("{UUID}::upnp:rootdevice")),
        (UUID, UUID.to_owned()),
        (DEVICE_IGD, format!("{UUID}::{DEVICE_IGD}")),
        (DEVICE_WAN, format!("{UUID}::{DEVICE_WAN}")),
        (DEVICE_WANCONN, format!("{UUID}::{DEVICE_WANCONN}")),
        (soap::WANIP_V1, format!("{UUID}::{}", soap::WANIP_V1)),
    ]
}

/// The unicast answers to one SSDP datagram (none when it is not an M-SEARCH for
/// `ssdp:discover` of something this device is): UDA 1.1 §1.3.3.
pub fn ssdp_answers(datagram: &[u8], location: &str) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(datagram) else {
        return Vec::new();
    };
    let mut lines = text.split("\r\n");
    if !lines
        .next()
        .is_some_and(|l| l.trim().eq_ignore_ascii_case("M-SEARCH * HTTP/1.1"))
    {
        return Vec::new();
    }
    let mut man = false;
    let mut st = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("MAN") {
            man = v.trim_matches('"') == "ssdp:discover";
        } else if k.eq_ignore_ascii_case("ST") {
            st = Some(v.to_owned());
        }
    }
    let Some(st) = st.filter(|_| man) else {
        return Vec::new();
    };
    targets()
        .into_iter()
        .filter(|(t, _)| st == "ssdp:all" || st == *t)
        .map(|(t, usn)| {
            format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: {location}\r\nSERVER: Linux UPnP/1.1 mape/{}\r\nST: {t}\r\nUSN: {usn}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        })
        .collect()
}

/// The root device description (UDA 1.1 §2.3): IGD → WANDevice → WANConnectionDevice
/// with WANIPConnection:1, the service IGD:1 clients control.
fn description(base: &str) -> String {
    let service = |ty: &str, id: &str, ctl: &str| {
        format!(
            "<service><serviceType>{ty}</serviceType><serviceId>urn:upnp-org:serviceId:{id}</serviceId><controlURL>{ctl}</controlURL><eventSubURL>{ctl}/evt</eventSubURL><SCPDURL>/scpd/{id}.xml</SCPDURL></service>"
        )
    };
    format!(
        "<?xml version=\"1.0\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major><minor>1</minor></specVersion><URLBase>{base}</URLBase><device><deviceType>{DEVICE_IGD}</deviceType><friendlyName>mape MAP-E CE</friendlyName><manufacturer>mape</manufacturer><modelName>mape</modelName><UDN>{UUID}</UDN><deviceList><device><deviceType>{DEVICE_WAN}</deviceType><friendlyName>WAN</friendlyName><manufacturer>mape</manufacturer><modelName>mape</modelName><UDN>{UUID}-wan</UDN><serviceList>{cif}</serviceList><deviceList><device><deviceType>{DEVICE_WANCONN}</deviceType><friendlyName>WAN connection</friendlyName><manufacturer>mape</manufacturer><modelName>mape</modelName><UDN>{UUID}-conn</UDN><serviceList>{ip}</serviceList></device></deviceList></device></deviceList></device></root>\r\n",
        cif = service(SERVICE_CIF, "WANCommonIFC1", "/ctl/CmnIfCfg"),
        ip = service(soap::WANIP_V1, "WANIPConn1", CONTROL),
    )
}

/// What the HTTP handlers share.
#[derive(Clone)]
struct Ctx {
    shared: Shared,
    clock: Instant,
    lan: Arc<Vec<Ipv4Net>>,
    stats: Arc<crate::portmap::Stats>,
}

fn lan_peer(ctx: &Ctx, peer: SocketAddr) -> Option<Ipv4Addr> {
    match peer {
        SocketAddr::V4(p) if ctx.lan.iter().any(|n| n.contains(*p.ip())) => Some(*p.ip()),
        _ => None,
    }
}

async fn root_desc(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> impl IntoResponse {
    if lan_peer(&ctx, peer).is_none() {
        return (StatusCode::FORBIDDEN, String::new()).into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")],
        description(&format!("http://{host}")),
    )
        .into_response()
}

async fn control(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> impl IntoResponse {
    let xml = [(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")];
    let Some(me) = lan_peer(&ctx, peer) else {
        return (StatusCode::FORBIDDEN, xml, String::new());
    };
    let Some(action) = soap::parse_action(&body) else {
        tracing::debug!(client = %me, "UPnP IGD: not a SOAP action");
        return (StatusCode::BAD_REQUEST, xml, String::new());
    };
    let now = now_since(ctx.clock);
    let uptime = ctx.clock.elapsed().as_secs();
    let answer = {
        let Ok(mut p) = ctx.shared.lock() else {
            return (StatusCode::SERVICE_UNAVAILABLE, xml, String::new());
        };
        match p.nat_mut() {
            Some(nat) => {
                let outside = soap::asked_port(&action).and_then(|(proto, port)| {
                    crate::portmap::outside_set(nat.port_set(), proto, port)
                });
                if let Some((proto, port)) = outside {
                    ctx.stats.note_outside(me, "upnp", proto, port);
                }
                soap::control(nat, now, me, uptime, &action)
            }
            None => return (StatusCode::SERVICE_UNAVAILABLE, xml, String::new()),
        }
    };
    tracing::debug!(client = %me, action = %action.name, ok = answer.is_ok(), "UPnP IGD action");
    match answer {
        Ok(out) => (
            StatusCode::OK,
            xml,
            soap::response(&action.name, soap::WANIP_V1, &out),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, xml, soap::fault(e)),
    }
}

/// Serves HTTP (description and control) on `addr` until the task is dropped.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    shared: Shared,
    clock: Instant,
    lan: Vec<Ipv4Net>,
    stats: Arc<crate::portmap::Stats>,
) {
    let ctx = Ctx {
        shared,
        clock,
        lan: Arc::new(lan),
        stats,
    };
    let app = Router::new()
        .route("/rootDesc.xml", get(root_desc))
        .route(CONTROL, post(control))
        .with_state(ctx);
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        tracing::warn!(error = %e, "UPnP IGD HTTP server stopped");
    }
}

/// Answers SSDP searches from the LAN until the task is dropped: `group` is bound to the
/// multicast group (joined on each LAN address), answers go from `reply`.
pub async fn serve_ssdp(
    group: tokio::net::UdpSocket,
    reply: tokio::net::UdpSocket,
    location: String,
    lan: Vec<Ipv4Net>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = group.recv_from(&mut buf).await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let SocketAddr::V4(src) = from else {
            continue;
        };
        if !lan.iter().any(|p| p.contains(*src.ip())) {
            continue;
        }
        for a in ssdp_answers(&buf[..n], &location) {
            let _ = reply.send_to(a.as_bytes(), from).await;
        }
    }
}

/// Binds the IGD's sockets on the LAN address `lan_addr`: the SSDP group (joined there),
/// the unicast reply socket and the HTTP listener on `http_port`.
pub async fn bind(
    lan_addr: Ipv4Addr,
    http_port: u16,
) -> std::io::Result<(
    tokio::net::UdpSocket,
    tokio::net::UdpSocket,
    tokio::net::TcpListener,
)> {
    let group = std::net::UdpSocket::bind(SSDP)?;
    group.join_multicast_v4(SSDP.ip(), &lan_addr)?;
    group.set_nonblocking(true)?;
    let group = tokio::net::UdpSocket::from_std(group)?;
    let reply = tokio::net::UdpSocket::bind(SocketAddrV4::new(lan_addr, 0)).await?;
    let http = tokio::net::TcpListener::bind(SocketAddrV4::new(lan_addr, http_port)).await?;
    Ok((group, reply, http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m_search_is_answered_for_what_this_device_is() {
        let loc = "http://192.168.1.1:5000/rootDesc.xml";
        let search = |st: &str| {
            format!(
                "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: {st}\r\n\r\n"
            )
        };
        let a = ssdp_answers(search(DEVICE_IGD).as_bytes(), loc);
        assert_eq!(a.len(), 1);
        assert!(a[0].starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(a[0].contains(&format!("LOCATION: {loc}\r\n")));
        assert!(a[0].contains(&format!("ST: {DEVICE_IGD}\r\n")));
        assert_eq!(ssdp_answers(search("ssdp:all").as_bytes(), loc).len(), 6);
        assert!(ssdp_answers(search("urn:other:device:Printer:1").as_bytes(), loc).is_empty());
        // Not a search, or no MAN: nothing.
        let notify = "NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\n\r\n";
        assert!(ssdp_answers(notify.as_bytes(), loc).is_empty());
        let no_man = search("ssdp:all").replace("MAN: \"ssdp:discover\"\r\n", "");
        assert!(ssdp_answers(no_man.as_bytes(), loc).is_empty());
        assert!(ssdp_answers(&[0xff, 0xfe], loc).is_empty());
    }

    #[test]
    fn the_description_names_the_wanip_service() {
        let d = description("http://192.168.1.1:5000");
        assert!(d.contains("<controlURL>/ctl/IPConn</controlURL>"));
        assert!(d.contains(soap::WANIP_V1));
        assert!(d.contains("<URLBase>http://192.168.1.1:5000</URLBase>"));
    }
}
