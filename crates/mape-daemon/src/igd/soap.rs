//! The IGD's WANIPConnection control (UPnP IGD:1 / IGD:2 WANIPConnection service): SOAP
//! request bodies read with quick-xml, the actions answered from the engine's mapping
//! calls, and the response and fault envelopes (UPnP Device Architecture 1.1 §3.2).
//! IO-free: [`control`] takes the engine, the time and the HTTP peer's address.

use std::net::Ipv4Addr;

use mape_nat::{Endpoint, MappingOrigin, MappingRefusal, MappingRequest, Nat, Protocol, Timestamp};
use quick_xml::events::Event;
use quick_xml::Reader;

/// The service type of WANIPConnection version 1 (what IGD:1 clients look for).
pub const WANIP_V1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";

/// A UPnP error (the `UPnPError` in a SOAP fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpnpError {
    /// errorCode.
    pub code: u16,
    /// errorDescription.
    pub description: &'static str,
}

impl UpnpError {
    const fn new(code: u16, description: &'static str) -> Self {
        Self { code, description }
    }
}

const INVALID_ACTION: UpnpError = UpnpError::new(401, "Invalid Action");
const INVALID_ARGS: UpnpError = UpnpError::new(402, "Invalid Args");
const NOT_AUTHORIZED: UpnpError = UpnpError::new(606, "Action not authorized");
const ARRAY_INDEX_INVALID: UpnpError = UpnpError::new(713, "SpecifiedArrayIndexInvalid");
const NO_SUCH_ENTRY: UpnpError = UpnpError::new(714, "NoSuchEntryInArray");
/// WANIPConnection 718: the port is taken, or (on MAP-E) outside the port set, which
/// could never work (RFC 7597 §8).
pub const CONFLICT: UpnpError = UpnpError::new(718, "ConflictInMappingEntry");
const NO_RESOURCES: UpnpError = UpnpError::new(728, "NoPortMapsAvailable");

/// A parsed SOAP action: its name and its arguments in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// e.g. `AddPortMapping`.
    pub name: String,
    /// (argument, text).
    pub args: Vec<(String, String)>,
}

impl Action {
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }
}

/// Reads the action out of a SOAP envelope: the first element inside `Body`, its child
/// elements the arguments. `None` for anything that is not such an envelope.
pub fn parse_action(body: &[u8]) -> Option<Action> {
    let mut r = Reader::from_reader(body);
    let mut depth_in_body: Option<usize> = None;
    let mut depth = 0usize;
    let mut action: Option<Action> = None;
    let mut arg: Option<(String, String)> = None;
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf).ok()? {
            Event::Start(e) => {
                depth += 1;
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (depth_in_body, action.as_ref()) {
                    (None, _) if local == "Body" => depth_in_body = Some(depth),
                    (Some(b), None) if depth == b + 1 => {
                        action = Some(Action {
                            name: local,
                            args: Vec::new(),
                        })
                    }
                    (Some(b), Some(_)) if depth == b + 2 => arg = Some((local, String::new())),
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (depth_in_body, action.as_mut()) {
                    (Some(b), None) if depth == b => {
                        return Some(Action {
                            name: local,
                            args: Vec::new(),
                        })
                    }
                    (Some(b), Some(a)) if depth == b + 1 => a.args.push((local, String::new())),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, v)) = arg.as_mut() {
                    v.push_str(&t.decode().ok()?);
                }
            }
            Event::GeneralRef(g) => {
                // The five predefined entities (a description may hold `&amp;`).
                if let Some((_, v)) = arg.as_mut() {
                    let name = g.decode().ok()?;
                    v.push(match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return None,
                    });
                }
            }
            Event::End(_) => {
                if let (Some(b), Some(a)) = (depth_in_body, action.as_mut()) {
                    if depth == b + 2 {
                        if let Some(x) = arg.take() {
                            a.args.push(x);
                        }
                    } else if depth == b + 1 {
                        return action;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// The protocol and external port an AddPortMapping / AddAnyPortMapping asks for (what
/// the server counts when it is outside the port set); `None` for other actions and
/// unreadable arguments.
pub fn asked_port(a: &Action) -> Option<(Protocol, u16)> {
    if !matches!(a.name.as_str(), "AddPortMapping" | "AddAnyPortMapping") {
        return None;
    }
    let proto = proto_of(a.arg("NewProtocol")).ok()?;
    Some((proto, port_of(a.arg("NewExternalPort")).ok()?))
}

fn proto_of(s: Option<&str>) -> Result<Protocol, UpnpError> {
    match s.map(str::to_ascii_uppercase).as_deref() {
        Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        _ => Err(INVALID_ARGS),
    }
}

fn port_of(s: Option<&str>) -> Result<u16, UpnpError> {
    s.and_then(|v| v.parse().ok()).ok_or(INVALID_ARGS)
}

fn refusal(r: &MappingRefusal) -> UpnpError {
    match r {
        MappingRefusal::OutsidePortSet { .. } | MappingRefusal::Conflict { .. } => CONFLICT,
        MappingRefusal::Protocol(_) | MappingRefusal::Invalid => INVALID_ARGS,
        _ => NO_RESOURCES,
    }
}

/// Answers one action for the LAN host `peer` (the HTTP client: mappings are only ever
/// made for, and deleted by, the host that asks). Returns the output arguments.
pub fn control(
    nat: &mut Nat,
    now: Timestamp,
    peer: Ipv4Addr,
    uptime_s: u64,
    a: &Action,
) -> Result<Vec<(&'static str, String)>, UpnpError> {
    match a.name.as_str() {
        "GetExternalIPAddress" => Ok(vec![("NewExternalIPAddress", nat.external().to_string())]),
        "GetStatusInfo" => Ok(vec![
            ("NewConnectionStatus", "Connected".into()),
            ("NewLastConnectionError", "ERROR_NONE".into()),
            ("NewUptime", uptime_s.to_string()),
        ]),
        "GetConnectionTypeInfo" => Ok(vec![
            ("NewConnectionType", "IP_Routed".into()),
            ("NewPossibleConnectionTypes", "IP_Routed".into()),
        ]),
        "AddPortMapping" | "AddAnyPortMapping" => {
            let any = a.name == "AddAnyPortMapping";
            let proto = proto_of(a.arg("NewProtocol"))?;
            let external = port_of(a.arg("NewExternalPort"))?;
            let internal_port = port_of(a.arg("NewInternalPort"))?;
            let client: Ipv4Addr = a
                .arg("NewInternalClient")
                .and_then(|c| c.parse().ok())
                .ok_or(INVALID_ARGS)?;
            if client != peer {
                return Err(NOT_AUTHORIZED);
            }
            // IGD:1: a lease of 0 is "as long as possible": the longest allowed here.
            let lease: u32 = a
                .arg("NewLeaseDuration")
                .map_or(Ok(0), str::parse)
                .map_err(|_| INVALID_ARGS)?;
            let req = MappingRequest {
                proto,
                internal: Endpoint::new(client, internal_port),
                suggested: external,
                lifetime_s: if lease == 0 { u32::MAX } else { lease },
                exact: !any,
                origin: MappingOrigin::Upnp,
            };
            let g = nat.request_mapping(now, &req).map_err(|r| refusal(&r))?;
            Ok(if any {
                vec![("NewReservedPort", g.external.port.to_string())]
            } else {
                Vec::new()
            })
        }
        "DeletePortMapping" => {
            let proto = proto_of(a.arg("NewProtocol"))?;
            let external = port_of(a.arg("NewExternalPort"))?;
            let m = nat
                .port_mappings(now)
                .into_iter()
                .find(|m| m.proto == proto && m.external.port == external)
                .ok_or(NO_SUCH_ENTRY)?;
            if m.internal.addr != peer {
                return Err(NOT_AUTHORIZED);
            }
            nat.delete_mapping(now, proto, m.internal);
            Ok(Vec::new())
        }
        "GetGenericPortMappingEntry" | "GetSpecificPortMappingEntry" => {
            let all = nat.port_mappings(now);
            let m = if a.name == "GetGenericPortMappingEntry" {
                let i: usize = a
                    .arg("NewPortMappingIndex")
                    .and_then(|v| v.parse().ok())
                    .ok_or(INVALID_ARGS)?;
                all.into_iter().nth(i).ok_or(ARRAY_INDEX_INVALID)?
            } else {
                let proto = proto_of(a.arg("NewProtocol"))?;
                let external = port_of(a.arg("NewExternalPort"))?;
                all.into_iter()
                    .find(|m| m.proto == proto && m.external.port == external)
                    .ok_or(NO_SUCH_ENTRY)?
            };
            let mut out = Vec::new();
            if a.name == "GetGenericPortMappingEntry" {
                out.push(("NewRemoteHost", String::new()));
                out.push(("NewExternalPort", m.external.port.to_string()));
                out.push((
                    "NewProtocol",
                    if m.proto == Protocol::Tcp {
                        "TCP"
                    } else {
                        "UDP"
                    }
                    .into(),
                ));
            }
            out.extend([
                ("NewInternalPort", m.internal.port.to_string()),
                ("NewInternalClient", m.internal.addr.to_string()),
                ("NewEnabled", "1".into()),
                ("NewPortMappingDescription", m.origin.as_str().into()),
                ("NewLeaseDuration", (m.left_ms / 1000).to_string()),
            ]);
            Ok(out)
        }
        _ => Err(INVALID_ACTION),
    }
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The SOAP response envelope of `action` with its output arguments.
pub fn response(action: &str, service: &str, out: &[(&str, String)]) -> String {
    let mut body = String::new();
    for (n, v) in out {
        body.push_str(&format!("<{n}>{}</{n}>", escape(v)));
    }
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action}Response xmlns:u=\"{service}\">{body}</u:{action}Response></s:Body></s:Envelope>\r\n"
    )
}

/// The SOAP fault envelope of a UPnP error (sent with HTTP 500).
pub fn fault(e: UpnpError) -> String {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{}</errorCode><errorDescription>{}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n",
        e.code, e.description
    )
}

#[cfg(test)]
mod tests {
    use mape_nat::NatConfig;
    use mape_rules::PortSet;

    use super::*;

    /// What miniupnpc sends for `upnpc -a 192.168.1.10 8080 6680 TCP` (its
    /// upnpcommands.c argument order).
    const ADD: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>6680</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>8080</NewInternalPort><NewInternalClient>192.168.1.10</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>a &amp; b</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>"#;

    fn nat() -> Nat {
        Nat::new(
            NatConfig::mape(),
            Ipv4Addr::new(14, 9, 26, 101),
            PortSet::new(161, 8, 4).unwrap(),
        )
        .unwrap()
    }

    fn with_port(port: &str) -> Action {
        parse_action(ADD.replace(">6680<", &format!(">{port}<")).as_bytes()).unwrap()
    }

    #[test]
    fn soap_actions_parse() {
        let a = parse_action(ADD.as_bytes()).unwrap();
        assert_eq!(a.name, "AddPortMapping");
        assert_eq!(a.args.len(), 8);
        assert_eq!(a.arg("NewExternalPort"), Some("6680"));
        assert_eq!(a.arg("NewRemoteHost"), Some(""));
        assert_eq!(a.arg("NewPortMappingDescription"), Some("a & b"));
        let empty = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"/></s:Body></s:Envelope>"#;
        assert_eq!(
            parse_action(empty.as_bytes()).unwrap().name,
            "GetExternalIPAddress"
        );
        assert_eq!(parse_action(b"<a><b>"), None);
        assert_eq!(parse_action(b"not xml at all"), None);
    }

    /// What an Add action asks for, read from miniupnpc's bytes; 8080 is outside PSID
    /// 161's set, 6680 inside.
    #[test]
    fn asked_port_of_add_actions_only() {
        let set = nat().port_set();
        assert_eq!(asked_port(&with_port("8080")), Some((Protocol::Tcp, 8080)));
        assert_eq!(
            crate::portmap::outside_set(set, Protocol::Tcp, 8080),
            Some((Protocol::Tcp, 8080))
        );
        assert_eq!(asked_port(&with_port("6680")), Some((Protocol::Tcp, 6680)));
        assert_eq!(crate::portmap::outside_set(set, Protocol::Tcp, 6680), None);
        let mut get = with_port("8080");
        get.name = "GetExternalIPAddress".into();
        assert_eq!(asked_port(&get), None);
        assert_eq!(asked_port(&with_port("x")), None);
    }

    /// 6680 is in the set (PSID 161: 6672-6687): granted; 8080 is not: 718 (an IGD:1
    /// client cannot be told another port); AddAnyPortMapping gets the nearest in-set
    /// port, 6687.
    #[test]
    fn add_delete_and_list() {
        let mut n = nat();
        let t = Timestamp::from_secs(1);
        let me = Ipv4Addr::new(192, 168, 1, 10);
        assert_eq!(control(&mut n, t, me, 5, &with_port("6680")), Ok(vec![]));
        assert_eq!(n.port_mappings(t)[0].lifetime_s, 7200);
        assert_eq!(control(&mut n, t, me, 5, &with_port("8080")), Err(CONFLICT));
        let mut any = with_port("8000");
        any.name = "AddAnyPortMapping".into();
        any.args[3].1 = "8081".into();
        assert_eq!(
            control(&mut n, t, me, 5, &any),
            Ok(vec![("NewReservedPort", "6687".to_string())])
        );
        // For another host: not authorized.
        let other = Ipv4Addr::new(192, 168, 1, 11);
        assert_eq!(
            control(&mut n, t, other, 5, &with_port("6681")),
            Err(NOT_AUTHORIZED)
        );
        let entry = |i: &str| Action {
            name: "GetGenericPortMappingEntry".into(),
            args: vec![("NewPortMappingIndex".into(), i.into())],
        };
        let e0 = control(&mut n, t, me, 5, &entry("0")).unwrap();
        assert_eq!(e0[1], ("NewExternalPort", "6680".to_string()));
        assert_eq!(e0[4], ("NewInternalClient", "192.168.1.10".to_string()));
        assert_eq!(
            control(&mut n, t, me, 5, &entry("2")),
            Err(ARRAY_INDEX_INVALID)
        );
        let del = |port: &str| Action {
            name: "DeletePortMapping".into(),
            args: vec![
                ("NewRemoteHost".into(), String::new()),
                ("NewExternalPort".into(), port.into()),
                ("NewProtocol".into(), "TCP".into()),
            ],
        };
        assert_eq!(
            control(&mut n, t, other, 5, &del("6680")),
            Err(NOT_AUTHORIZED)
        );
        assert_eq!(control(&mut n, t, me, 5, &del("6680")), Ok(vec![]));
        assert_eq!(control(&mut n, t, me, 5, &del("6680")), Err(NO_SUCH_ENTRY));
        assert_eq!(n.mapping_count(), 1);
        let ip = Action {
            name: "GetExternalIPAddress".into(),
            args: vec![],
        };
        assert_eq!(
            control(&mut n, t, me, 5, &ip),
            Ok(vec![("NewExternalIPAddress", "14.9.26.101".to_string())])
        );
        let bogus = Action {
            name: "ForceTermination".into(),
            args: vec![],
        };
        assert_eq!(control(&mut n, t, me, 5, &bogus), Err(INVALID_ACTION));
        assert!(fault(CONFLICT).contains("<errorCode>718</errorCode>"));
        assert!(response("X", WANIP_V1, &[("A", "<&>".into())]).contains("<A>&lt;&amp;&gt;</A>"));
    }
}
