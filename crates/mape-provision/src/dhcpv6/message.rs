//! DHCPv6 messages as the client sends and reads them (RFC 8415 §8, §16, §21): framing by
//! `dhcproto`, a length guard in front of its decoder, and the typed view of an Advertise
//! or Reply that the state machine uses.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAPrefix, Message, MessageType, OptionCode, Status, IAPD, ORO,
};
use dhcproto::{Decodable, Encodable};
use mape_rules::Ipv6Net;

use super::s46;

/// The client's UDP port (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;
/// The servers' and relays' UDP port (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// A message the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// §18.2.1: find servers.
    Solicit,
    /// §18.2.2: ask the chosen server for the prefix.
    Request,
    /// §18.2.4: extend the lease with the server that gave it (at T1).
    Renew,
    /// §18.2.5: extend it with any server (at T2).
    Rebind,
    /// §18.2.6: configuration only, no prefix (a stateless client on an RA-only line).
    InformationRequest,
}

impl ClientKind {
    /// The message name (RFC 8415 §7.3).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Solicit => "Solicit",
            ClientKind::Request => "Request",
            ClientKind::Renew => "Renew",
            ClientKind::Rebind => "Rebind",
            ClientKind::InformationRequest => "Information-request",
        }
    }

    fn msg_type(self) -> MessageType {
        match self {
            ClientKind::Solicit => MessageType::Solicit,
            ClientKind::Request => MessageType::Request,
            ClientKind::Renew => MessageType::Renew,
            ClientKind::Rebind => MessageType::Rebind,
            ClientKind::InformationRequest => MessageType::InformationRequest,
        }
    }
}

/// A prefix delegated in an IA_PD (an IAPREFIX, RFC 8415 §21.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delegated {
    /// The prefix.
    pub prefix: Ipv6Net,
    /// Preferred lifetime, seconds (0xffffffff = infinity, §7.7).
    pub preferred: u32,
    /// Valid lifetime, seconds (0xffffffff = infinity).
    pub valid: u32,
}

/// A Status Code option (RFC 8415 §21.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// The code.
    pub status: Status,
    /// The server's words (UTF-8, may be empty).
    pub message: String,
}

impl StatusInfo {
    fn from_option(o: &DhcpOption) -> Option<Self> {
        match o {
            DhcpOption::StatusCode(s) => Some(Self {
                status: s.status,
                message: s.msg.clone(),
            }),
            _ => None,
        }
    }

    /// Whether it says Success (code 0).
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }
}

impl std::fmt::Display for StatusInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.status, u16::from(self.status))?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// An IA_PD the server sent (RFC 8415 §21.21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaPd {
    /// IAID.
    pub iaid: u32,
    /// T1, seconds.
    pub t1: u32,
    /// T2, seconds.
    pub t2: u32,
    /// The IA's Status Code, if any (absent = Success).
    pub status: Option<StatusInfo>,
    /// The prefixes; those with preferred > valid are already left out (§21.22).
    pub prefixes: Vec<Delegated>,
}

/// Which server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// §18.3.9: an offer.
    Advertise,
    /// §18.3.10: the answer to Request, Renew or Rebind.
    Reply,
}

/// An Advertise or Reply, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// Advertise or Reply.
    pub kind: ServerKind,
    /// Transaction ID.
    pub xid: [u8; 3],
    /// Server DUID (§21.3).
    pub server_id: Vec<u8>,
    /// Client DUID echoed (§21.2).
    pub client_id: Option<Vec<u8>>,
    /// Preference (§21.8), 0 when absent.
    pub preference: u8,
    /// Message-level Status Code.
    pub status: Option<StatusInfo>,
    /// The IA_PDs.
    pub ia_pd: Vec<IaPd>,
    /// Every OPTION_S46_CONT_MAPE (94), re-framed as an option area for
    /// [`mape_rules::dhcpv6::decode_option_area`]; empty when none.
    pub s46: Vec<u8>,
    /// DNS recursive name servers (option 23, RFC 3646).
    pub dns: Vec<Ipv6Addr>,
    /// Whether a Rapid Commit option is present (§21.14).
    pub rapid_commit: bool,
    /// Information Refresh Time (§21.23), seconds, when present.
    pub refresh: Option<u32>,
    /// SOL_MAX_RT (§21.24), seconds, when present (not yet range-checked).
    pub sol_max_rt: Option<u32>,
    /// INF_MAX_RT (§21.25), seconds, when present (not yet range-checked).
    pub inf_max_rt: Option<u32>,
}

/// Why a datagram is not a usable server message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not decodable (header, or an option's framing).
    #[error("malformed DHCPv6 message: {0}")]
    Malformed(String),
    /// A message type a client does not act on (Solicit, Relay-forw, ...).
    #[error("DHCPv6 message type {0} is not for a client")]
    NotForClient(u8),
    /// A Reconfigure (§18.2.11). The client never sends a Reconfigure Accept option
    /// (§21.20), so no server may send it one and there is no reconfigure key to
    /// authenticate it with: it is discarded.
    #[error("Reconfigure: not accepted (no Reconfigure Accept was sent, §18.2.11)")]
    Reconfigure,
    /// Advertise or Reply without Server Identifier (§16.10, §16.11: discard).
    #[error("{0:?} without Server Identifier")]
    NoServerId(ServerKind),
}

/// What goes into a client message.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The message type.
    pub kind: ClientKind,
    /// Transaction ID.
    pub xid: [u8; 3],
    /// The client DUID.
    pub duid: &'a [u8],
    /// The IA_PD's IAID (not used by an Information-request, which carries no IA).
    pub iaid: u32,
    /// Server Identifier (Request, Renew; never Solicit, Rebind or Information-request,
    /// §18.2).
    pub server_id: Option<&'a [u8]>,
    /// The prefix held or offered, put in the IA_PD as an IAPREFIX.
    pub prefix: Option<Delegated>,
    /// Hundredths of a second since the exchange began (§21.9), capped at 0xffff.
    pub elapsed_cs: u16,
}

/// Builds a client message. The options are those RFC 8415 §18.2 asks for: Client
/// Identifier, Elapsed Time, an ORO with OPTION_S46_CONT_MAPE (RFC 7598 §3: the client
/// MUST ask for it), DNS servers and SOL_MAX_RT (§18.2.1, §21.24), one IA_PD, Server
/// Identifier where the type has one. An Information-request (§18.2.6) carries no IA and
/// asks for the Information Refresh Time and INF_MAX_RT instead of SOL_MAX_RT (§21.23,
/// §21.25). No Rapid Commit: the client always takes the four-message exchange; no
/// Reconfigure Accept (§21.20): it does not take Reconfigure messages.
pub fn build(o: &Outgoing<'_>) -> Result<Vec<u8>, MessageError> {
    let mut m = Message::new_with_id(o.kind.msg_type(), o.xid);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::ClientId(o.duid.to_vec()));
    if let Some(s) = o.server_id {
        opts.insert(DhcpOption::ServerId(s.to_vec()));
    }
    opts.insert(DhcpOption::ElapsedTime(o.elapsed_cs));
    let stateless = o.kind == ClientKind::InformationRequest;
    let asked = if stateless {
        vec![
            OptionCode::S46ContMape,
            OptionCode::DomainNameServers,
            OptionCode::InformationRefreshTime,
            OptionCode::InfMaxRt,
        ]
    } else {
        vec![
            OptionCode::S46ContMape,
            OptionCode::DomainNameServers,
            OptionCode::SolMaxRt,
        ]
    };
    opts.insert(DhcpOption::ORO(ORO { opts: asked }));
    if !stateless {
        let mut ia = DhcpOptions::new();
        if let Some(d) = o.prefix {
            ia.insert(DhcpOption::IAPrefix(IAPrefix {
                preferred_lifetime: d.preferred,
                valid_lifetime: d.valid,
                prefix_len: d.prefix.len(),
                prefix_ip: d.prefix.addr(),
                opts: DhcpOptions::new(),
            }));
        }
        // T1 = T2 = 0: no preference (§18.2.1).
        opts.insert(DhcpOption::IAPD(IAPD {
            id: o.iaid,
            t1: 0,
            t2: 0,
            opts: ia,
        }));
    }
    m.to_vec()
        .map_err(|e| MessageError::Malformed(format!("encoding {}: {e}", o.kind.as_str())))
}

/// Decodes a datagram from port 547 into a [`ServerMessage`].
pub fn parse(bytes: &[u8]) -> Result<ServerMessage, MessageError> {
    let [t, _, _, _, area @ ..] = bytes else {
        return Err(MessageError::Malformed(format!(
            "{} bytes, shorter than the 4-byte header",
            bytes.len()
        )));
    };
    let kind = match MessageType::from(*t) {
        MessageType::Advertise => ServerKind::Advertise,
        MessageType::Reply => ServerKind::Reply,
        MessageType::Reconfigure => return Err(MessageError::Reconfigure),
        _ => return Err(MessageError::NotForClient(*t)),
    };
    check_area(area, 0)?;
    let m = Message::from_bytes(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
    let mut out = ServerMessage {
        kind,
        xid: m.xid(),
        server_id: Vec::new(),
        client_id: None,
        preference: 0,
        status: None,
        ia_pd: Vec::new(),
        s46: Vec::new(),
        dns: Vec::new(),
        rapid_commit: false,
        refresh: None,
        sol_max_rt: None,
        inf_max_rt: None,
    };
    let mut server_id = None;
    for o in m.opts().iter() {
        match o {
            DhcpOption::ServerId(s) => server_id = server_id.or(Some(s.clone())),
            DhcpOption::ClientId(c) => out.client_id = out.client_id.take().or(Some(c.clone())),
            DhcpOption::Preference(p) => out.preference = *p,
            DhcpOption::StatusCode(_) => out.status = StatusInfo::from_option(o),
            DhcpOption::IAPD(ia) => out.ia_pd.push(ia_pd(ia)),
            DhcpOption::DomainNameServers(d) => out.dns.extend_from_slice(d),
            DhcpOption::RapidCommit => out.rapid_commit = true,
            DhcpOption::InformationRefreshTime(t) => out.refresh = Some(*t),
            // dhcproto 0.15 encodes option 32 but decodes it as an unknown option.
            DhcpOption::Unknown(u) if u.code() == OptionCode::InformationRefreshTime => {
                out.refresh = be32(u.data());
            }
            DhcpOption::Unknown(u) if u.code() == OptionCode::SolMaxRt => {
                out.sol_max_rt = be32(u.data());
            }
            DhcpOption::Unknown(u) if u.code() == OptionCode::InfMaxRt => {
                out.inf_max_rt = be32(u.data());
            }
            DhcpOption::Unknown(u) if u.code() == OptionCode::S46ContMape => {
                s46::reframe(u.data(), &mut out.s46);
            }
            _ => {}
        }
    }
    out.server_id = server_id.ok_or(MessageError::NoServerId(kind))?;
    Ok(out)
}

/// A 4-octet value (the guard has checked the length; anything else reads as absent).
fn be32(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

fn ia_pd(ia: &IAPD) -> IaPd {
    let mut out = IaPd {
        iaid: ia.id,
        t1: ia.t1,
        t2: ia.t2,
        status: None,
        prefixes: Vec::new(),
    };
    for o in ia.opts.iter() {
        match o {
            DhcpOption::StatusCode(_) => out.status = StatusInfo::from_option(o),
            // §21.22: a prefix whose preferred lifetime exceeds its valid one is discarded.
            DhcpOption::IAPrefix(p) if p.preferred_lifetime <= p.valid_lifetime => {
                if let Some(prefix) = Ipv6Net::new(p.prefix_ip, p.prefix_len) {
                    out.prefixes.push(Delegated {
                        prefix,
                        preferred: p.preferred_lifetime,
                        valid: p.valid_lifetime,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The length guard: walks `area` (an option area, `depth` containers deep) and rejects
/// framing that `dhcproto`'s decoder does not check itself — a value shorter than a field
/// it reads before looking at the length (Status Code, Vendor Class/Options: an
/// arithmetic underflow), a fixed-size option of another size (it would read past its
/// end), an option running past the area — and recurses into the options that carry
/// options (IA_NA/IA_TA/IA_PD §21.4-21.5/§21.21, IAADDR/IAPREFIX §21.6/§21.22, Vendor
/// Options §21.17). A client never receives a Relay Message option: it is refused.
fn check_area(mut area: &[u8], depth: u8) -> Result<(), MessageError> {
    if depth > 4 {
        return Err(MessageError::Malformed("options nested too deep".into()));
    }
    while !area.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = area else {
            return Err(MessageError::Malformed(format!(
                "{} stray bytes after the last option",
                area.len()
            )));
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((value, next)) = rest.split_at_checked(len) else {
            return Err(MessageError::Malformed(format!(
                "option {code}: length {len}, {} bytes left",
                rest.len()
            )));
        };
        let fixed = |n: usize| {
            if len == n {
                Ok(())
            } else {
                Err(MessageError::Malformed(format!(
                    "option {code}: length {len}, expected {n}"
                )))
            }
        };
        let at_least = |n: usize| {
            if len >= n {
                Ok(())
            } else {
                Err(MessageError::Malformed(format!(
                    "option {code}: length {len}, needs at least {n}"
                )))
            }
        };
        match code {
            7 | 19 => fixed(1)?, // Preference, Reconfigure Message
            8 => fixed(2)?,      // Elapsed Time
            // Information Refresh Time, SOL_MAX_RT, INF_MAX_RT (§21.23-21.25)
            32 | 82 | 83 => fixed(4)?,
            12 => fixed(16)?,   // Server Unicast
            13 => at_least(2)?, // Status Code
            16 => at_least(4)?, // Vendor Class
            9 => {
                return Err(MessageError::Malformed(
                    "Relay Message option in a server message".into(),
                ))
            }
            3 | 25 => {
                at_least(12)?;
                check_area(&value[12..], depth + 1)?;
            }
            4 | 17 => {
                at_least(4)?;
                check_area(&value[4..], depth + 1)?;
            }
            5 => {
                at_least(24)?;
                check_area(&value[24..], depth + 1)?;
            }
            26 => {
                at_least(25)?;
                check_area(&value[25..], depth + 1)?;
            }
            _ => {}
        }
        area = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        mape_rules::provision::parse_hex(s).unwrap()
    }

    /// A Solicit as RFC 8415 §18.2.1 (ORO with SOL_MAX_RT, §21.24) and RFC 7598 §3 ask,
    /// checked byte by byte.
    #[test]
    fn solicit_bytes() {
        let duid = hex("0003 0001 02 00 00 00 00 01");
        let b = build(&Outgoing {
            kind: ClientKind::Solicit,
            xid: [0x12, 0x34, 0x56],
            duid: &duid,
            iaid: 1,
            server_id: None,
            prefix: None,
            elapsed_cs: 0,
        })
        .unwrap();
        let want = hex("01 123456
             0001 000a 0003 0001 020000000001
             0006 0006 005e 0017 0052
             0008 0002 0000
             0019 000c 00000001 00000000 00000000");
        assert_eq!(b, want);
    }

    /// An Information-request as §18.2.6 asks: Client ID, Elapsed Time, an ORO with 94,
    /// DNS, the Information Refresh Time (32) and INF_MAX_RT (83); no IA, no Server ID.
    #[test]
    fn information_request_bytes() {
        let duid = hex("0003 0001 02 00 00 00 00 01");
        let b = build(&Outgoing {
            kind: ClientKind::InformationRequest,
            xid: [0xab, 0xcd, 0xef],
            duid: &duid,
            iaid: 1,
            server_id: None,
            prefix: None,
            elapsed_cs: 7,
        })
        .unwrap();
        let want = hex("0b abcdef
             0001 000a 0003 0001 020000000001
             0006 0008 005e 0017 0020 0053
             0008 0002 0007");
        assert_eq!(b, want);
    }

    /// The timer options a server may send (§21.23-21.25) are read, Reconfigure is its
    /// own error, and a timer option of the wrong length is malformed.
    #[test]
    fn timer_options_and_reconfigure() {
        let m = parse(&hex("07 010203
             0002 000a 0003 0001 0a0000000001
             0020 0004 00000e10
             0052 0004 0000003c
             0053 0004 00015180"))
        .unwrap();
        assert_eq!(
            (m.refresh, m.sol_max_rt, m.inf_max_rt),
            (Some(3600), Some(60), Some(86_400))
        );
        assert_eq!(
            parse(&hex("0a 010203 0002 000a 0003 0001 0a0000000001")),
            Err(MessageError::Reconfigure)
        );
        for code in ["0020", "0052", "0053"] {
            let e = parse(&hex(&format!(
                "07 010203 0002 000a 0003 0001 0a0000000001 {code} 0002 0001"
            )))
            .unwrap_err();
            assert!(matches!(e, MessageError::Malformed(_)), "{code}: {e:?}");
        }
    }

    /// A Reply built by hand (RFC 8415 §21 layouts) with an IA_PD and option 94.
    pub(crate) fn reply_bytes(xid: &str, status_in_ia: Option<u16>) -> Vec<u8> {
        let ia_status = match status_in_ia {
            Some(c) => format!("000d 0006 {c:04x} 6e6f6e65"),
            None => String::new(),
        };
        let ia_len = 12 + 29 + if status_in_ia.is_some() { 10 } else { 0 };
        hex(&format!(
            "07 {xid}
             0001 000a 0003 0001 020000000001
             0002 000a 0003 0001 0a0000000001
             0019 {ia_len:04x} 00000001 00000e10 00001518
               001a 0019 00001c20 00002a30 38 20010db8001234000000000000000000
               {ia_status}
             005e 002d
               0059 0015 00 10 18 c0000200 28 20010db800
                 005d 0004 04 08 0000
               005a 0010 20010db8ffff00000000000000000001"
        ))
    }

    #[test]
    fn reply_decodes() {
        let m = parse(&reply_bytes("abcdef", None)).unwrap();
        assert_eq!(m.kind, ServerKind::Reply);
        assert_eq!(m.xid, [0xab, 0xcd, 0xef]);
        assert_eq!(m.server_id, hex("0003 0001 0a0000000001"));
        assert_eq!(m.client_id, Some(hex("0003 0001 020000000001")));
        assert_eq!(m.ia_pd.len(), 1);
        let ia = &m.ia_pd[0];
        assert_eq!((ia.iaid, ia.t1, ia.t2), (1, 3600, 5400));
        assert_eq!(
            ia.prefixes,
            vec![Delegated {
                prefix: "2001:db8:12:3400::/56".parse().unwrap(),
                preferred: 7200,
                valid: 10800,
            }]
        );
        // Option 94 handed over as an option area, header included.
        assert_eq!(&m.s46[..4], &hex("005e 002d")[..]);
        let c = mape_rules::dhcpv6::decode_option_area(&m.s46).unwrap();
        assert_eq!(c[0].rules[0].ea_len, 16);
        assert_eq!(c[0].rules[0].port_params.unwrap().offset, 4);
        let m = parse(&reply_bytes("abcdef", Some(6))).unwrap();
        let st = m.ia_pd[0].status.clone().unwrap();
        assert_eq!(st.status, Status::NoPrefixAvail);
        assert_eq!(st.to_string(), "NoPrefixAvail (6): none");
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        assert!(matches!(parse(&[7, 0]), Err(MessageError::Malformed(_))));
        assert_eq!(parse(&hex("01 000000")), Err(MessageError::NotForClient(1)));
        assert_eq!(
            parse(&hex("07 000000 0001 0002 0001")),
            Err(MessageError::NoServerId(ServerKind::Reply))
        );
        // Status Code of length 0 followed by bytes: dhcproto would underflow `len - 2`.
        let e = parse(&hex("07 000000 0002 0002 0001 000d 0000 0000 0000")).unwrap_err();
        assert_eq!(
            e,
            MessageError::Malformed("option 13: length 0, needs at least 2".into())
        );
        // The same inside an IA_PD.
        let e = parse(&hex(
            "07 000000 0002 0002 0001 0019 0010 00000001 00000000 00000000 000d 0000 0000",
        ))
        .unwrap_err();
        assert!(matches!(e, MessageError::Malformed(_)), "{e:?}");
        // An option longer than the message.
        assert!(matches!(
            parse(&hex("07 000000 0002 0010 0001")),
            Err(MessageError::Malformed(_))
        ));
        // IAPREFIX with preferred > valid is dropped (§21.22).
        let m = parse(&hex("07 000000 0002 0002 0001
             0019 0029 00000001 00000000 00000000
               001a 0019 00000010 00000008 38 20010db8001234000000000000000000"))
        .unwrap();
        assert!(m.ia_pd[0].prefixes.is_empty());
    }
}
