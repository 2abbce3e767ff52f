//! NAT-PMP messages (RFC 6886): request parsing with the server rules of §3.5 (which
//! result code a bad request gets), and [`Request`] / [`Response`] with `parse` and `emit`
//! for both directions (a server emits responses; a test client emits requests).
//!
//! Layouts (all big-endian): every message starts with version (0) and opcode; a response
//! has opcode `128 + request opcode`, a 16-bit result code and the 32-bit "seconds since
//! start of epoch" (§3.2, §3.3).

use core::fmt;
use core::net::Ipv4Addr;

use crate::be;
use crate::{Result, WireError};

/// Byte ranges of NAT-PMP messages (RFC 6886 §3.2, §3.3).
mod field {
    use crate::Field;
    pub(crate) const VERSION: usize = 0;
    pub(crate) const OPCODE: usize = 1;
    // Mapping request (§3.3).
    pub(crate) const REQ_RESERVED: Field = 2..4;
    pub(crate) const REQ_INTERNAL_PORT: Field = 4..6;
    pub(crate) const REQ_EXTERNAL_PORT: Field = 6..8;
    pub(crate) const REQ_LIFETIME: Field = 8..12;
    // Responses (§3.2, §3.3).
    pub(crate) const RESULT: Field = 2..4;
    pub(crate) const EPOCH: Field = 4..8;
    pub(crate) const EXTERNAL_ADDRESS: Field = 8..12;
    pub(crate) const RESP_INTERNAL_PORT: Field = 8..10;
    pub(crate) const RESP_EXTERNAL_PORT: Field = 10..12;
    pub(crate) const RESP_LIFETIME: Field = 12..16;
}

/// The NAT-PMP version number (RFC 6886 §3.2). PCP (RFC 6887) is version 2 on the same port.
pub const VERSION: u8 = 0;
/// UDP port the server listens on (RFC 6886 §3.1).
pub const SERVER_PORT: u16 = 5351;
/// UDP port clients listen on for address-change announcements (RFC 6886 §3.2.1).
pub const CLIENT_PORT: u16 = 5350;
/// Added to the request opcode in a response (RFC 6886 §3.2).
pub const RESPONSE_BIT: u8 = 0x80;

/// Length of an external-address request (§3.2).
pub const EXTERNAL_ADDRESS_REQUEST_LEN: usize = 2;
/// Length of a mapping request (§3.3).
pub const MAP_REQUEST_LEN: usize = 12;
/// Length of the response header every response starts with (version, opcode, result
/// code, epoch); also the whole response to a request with an unsupported version (§3.5).
pub const RESPONSE_HEADER_LEN: usize = 8;
/// Length of an external-address response (§3.2).
pub const EXTERNAL_ADDRESS_RESPONSE_LEN: usize = 12;
/// Length of a mapping response (§3.3).
pub const MAP_RESPONSE_LEN: usize = 16;

/// Request opcodes (RFC 6886 §3.2, §3.3).
pub mod opcode {
    /// Ask for the external IPv4 address.
    pub const EXTERNAL_ADDRESS: u8 = 0;
    /// Map a UDP port.
    pub const MAP_UDP: u8 = 1;
    /// Map a TCP port.
    pub const MAP_TCP: u8 = 2;
}

/// Result codes (RFC 6886 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ResultCode {
    /// 0: success.
    Success = 0,
    /// 1: unsupported version.
    UnsupportedVersion = 1,
    /// 2: not authorized / refused (e.g. mapping disabled by the administrator).
    NotAuthorized = 2,
    /// 3: network failure (e.g. no external address yet).
    NetworkFailure = 3,
    /// 4: out of resources (no ports left).
    OutOfResources = 4,
    /// 5: unsupported opcode.
    UnsupportedOpcode = 5,
}

impl ResultCode {
    /// The code for a wire value, `None` for values RFC 6886 does not define.
    pub const fn from_u16(v: u16) -> Option<ResultCode> {
        Some(match v {
            0 => ResultCode::Success,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// Stable snake_case name, usable as a metric label or log field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultCode::Success => "success",
            ResultCode::UnsupportedVersion => "unsupported_version",
            ResultCode::NotAuthorized => "not_authorized",
            ResultCode::NetworkFailure => "network_failure",
            ResultCode::OutOfResources => "out_of_resources",
            ResultCode::UnsupportedOpcode => "unsupported_opcode",
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport protocol of a mapping: opcode 1 (UDP) or 2 (TCP) (RFC 6886 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapProtocol {
    /// Opcode 1.
    Udp,
    /// Opcode 2.
    Tcp,
}

impl MapProtocol {
    /// The request opcode (1 or 2).
    pub const fn opcode(self) -> u8 {
        match self {
            MapProtocol::Udp => opcode::MAP_UDP,
            MapProtocol::Tcp => opcode::MAP_TCP,
        }
    }

    /// The protocol of a request opcode, `None` for anything but 1 and 2.
    pub const fn from_opcode(op: u8) -> Option<MapProtocol> {
        match op {
            opcode::MAP_UDP => Some(MapProtocol::Udp),
            opcode::MAP_TCP => Some(MapProtocol::Tcp),
            _ => None,
        }
    }
}

/// Why [`Request::parse`] did not yield a request, and what the server answers (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestError {
    /// Shorter than the opcode's layout (or than 2 bytes): RFC 6886 names no result code
    /// for it, so the server drops it (and counts the drop).
    Truncated,
    /// Opcode ≥ 128: a response, which the server MUST silently ignore (§3.5).
    NotARequest,
    /// Version ≠ 0: answer [`ResultCode::UnsupportedVersion`] with opcode `128 + opcode`
    /// (§3.5), i.e. [`Response::error`]. A server that also speaks PCP handles version 2
    /// itself before calling this parser (RFC 6887 §9).
    UnsupportedVersion {
        /// The version the request carried.
        version: u8,
        /// The request opcode, echoed in the response.
        opcode: u8,
    },
    /// Opcode < 128 but not 0, 1 or 2: answer [`ResultCode::UnsupportedOpcode`] (§3.5).
    /// §3.5 says to return "the entire request" with the response bit and result code
    /// set; an unknown opcode has no known layout, so [`RequestError::response`] gives the
    /// 8-byte response header (version, opcode, result, epoch), which is what a client
    /// reads first.
    UnsupportedOpcode {
        /// The request opcode, echoed in the response.
        opcode: u8,
    },
}

impl RequestError {
    /// The result code the server answers with, `None` when it stays silent.
    pub const fn result_code(self) -> Option<ResultCode> {
        match self {
            RequestError::Truncated | RequestError::NotARequest => None,
            RequestError::UnsupportedVersion { .. } => Some(ResultCode::UnsupportedVersion),
            RequestError::UnsupportedOpcode { .. } => Some(ResultCode::UnsupportedOpcode),
        }
    }

    /// The response to send, `None` when the server stays silent; its `epoch` is the
    /// server's seconds since start of epoch.
    pub const fn response(self, epoch: u32) -> Option<Response> {
        match self {
            RequestError::Truncated | RequestError::NotARequest => None,
            RequestError::UnsupportedVersion { opcode, .. } => Some(Response::error(
                opcode,
                ResultCode::UnsupportedVersion,
                epoch,
            )),
            RequestError::UnsupportedOpcode { opcode } => Some(Response::error(
                opcode,
                ResultCode::UnsupportedOpcode,
                epoch,
            )),
        }
    }

    /// Stable snake_case name, usable as a metric label or log field.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestError::Truncated => "truncated",
            RequestError::NotARequest => "not_a_request",
            RequestError::UnsupportedVersion { .. } => "unsupported_version",
            RequestError::UnsupportedOpcode { .. } => "unsupported_opcode",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Truncated => f.write_str("NAT-PMP request truncated"),
            RequestError::NotARequest => f.write_str("NAT-PMP response sent to the server"),
            RequestError::UnsupportedVersion { version, opcode } => {
                write!(
                    f,
                    "NAT-PMP version {version} (opcode {opcode}) not supported"
                )
            }
            RequestError::UnsupportedOpcode { opcode } => {
                write!(f, "NAT-PMP opcode {opcode} not supported")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// A NAT-PMP request (RFC 6886 §3.2, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// Opcode 0: what is the external address? (§3.2)
    ExternalAddress,
    /// Opcode 1 or 2: create, renew (lifetime > 0) or delete (lifetime 0) a mapping (§3.3).
    Map {
        /// UDP or TCP.
        protocol: MapProtocol,
        /// The client's port. With lifetime 0, internal port 0 means "all mappings of
        /// this client for this protocol" (§3.4).
        internal_port: u16,
        /// The external port the client would like (0: no preference); a hint only.
        suggested_external_port: u16,
        /// Requested lifetime in seconds (the RFC recommends 7200); 0 deletes.
        lifetime: u32,
    },
}

impl Request {
    /// Parse a request under the rules of RFC 6886 §3.5: a version other than 0 and an
    /// unknown opcode below 128 are errors the server answers (see
    /// [`RequestError::response`]); a response (opcode ≥ 128) and a truncated request are
    /// dropped. Bytes beyond the opcode's layout are ignored.
    pub fn parse(data: &[u8]) -> core::result::Result<Request, RequestError> {
        let (version, op) = match data {
            [v, o, ..] => (*v, *o),
            _ => return Err(RequestError::Truncated),
        };
        if version != VERSION {
            return Err(RequestError::UnsupportedVersion {
                version,
                opcode: op,
            });
        }
        if op & RESPONSE_BIT != 0 {
            return Err(RequestError::NotARequest);
        }
        if op == opcode::EXTERNAL_ADDRESS {
            return Ok(Request::ExternalAddress);
        }
        let protocol =
            MapProtocol::from_opcode(op).ok_or(RequestError::UnsupportedOpcode { opcode: op })?;
        if data.len() < MAP_REQUEST_LEN {
            return Err(RequestError::Truncated);
        }
        // The reserved field is ignored on receipt (§3.3).
        Ok(Request::Map {
            protocol,
            internal_port: be::u16_at(data, field::REQ_INTERNAL_PORT.start),
            suggested_external_port: be::u16_at(data, field::REQ_EXTERNAL_PORT.start),
            lifetime: be::u32_at(data, field::REQ_LIFETIME.start),
        })
    }

    /// The request opcode.
    pub const fn opcode(&self) -> u8 {
        match self {
            Request::ExternalAddress => opcode::EXTERNAL_ADDRESS,
            Request::Map { protocol, .. } => protocol.opcode(),
        }
    }

    /// Length of the emitted request (2 or 12).
    pub const fn buffer_len(&self) -> usize {
        match self {
            Request::ExternalAddress => EXTERNAL_ADDRESS_REQUEST_LEN,
            Request::Map { .. } => MAP_REQUEST_LEN,
        }
    }

    /// Write the request into `buf[..buffer_len()]` (reserved bits zero); returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        b[field::VERSION] = VERSION;
        b[field::OPCODE] = self.opcode();
        if let Request::Map {
            internal_port,
            suggested_external_port,
            lifetime,
            ..
        } = *self
        {
            be::set_u16(b, field::REQ_RESERVED.start, 0);
            be::set_u16(b, field::REQ_INTERNAL_PORT.start, internal_port);
            be::set_u16(b, field::REQ_EXTERNAL_PORT.start, suggested_external_port);
            be::set_u32(b, field::REQ_LIFETIME.start, lifetime);
        }
        Ok(len)
    }
}

/// The body of a response after its 8-byte header (RFC 6886 §3.2, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseBody {
    /// Opcode 128: the external address (0.0.0.0 when the server has none, §3.2).
    ExternalAddress(Ipv4Addr),
    /// Opcode 129 / 130: the mapping as granted. On failure the internal port is still the
    /// requested one and external port and lifetime are 0 (§3.5).
    Map {
        /// UDP or TCP.
        protocol: MapProtocol,
        /// The request's internal port.
        internal_port: u16,
        /// The external port the server mapped (may differ from the suggestion).
        external_port: u16,
        /// Granted lifetime in seconds.
        lifetime: u32,
    },
    /// Header only, for a request the server could not read: unsupported version or
    /// opcode (§3.5). Carries the request opcode (without the response bit).
    HeaderOnly {
        /// The request opcode (0..=127).
        opcode: u8,
    },
}

/// A NAT-PMP response (RFC 6886 §3.2, §3.3, §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// Result code as sent (see [`Response::result_code`] for the typed value); a client
    /// keeps a code RFC 6886 does not define.
    pub result: u16,
    /// Seconds since the server's start of epoch (§3.6).
    pub epoch: u32,
    /// What follows the header.
    pub body: ResponseBody,
}

impl Response {
    /// A header-only error response to request opcode `opcode` (§3.5).
    pub const fn error(opcode: u8, result: ResultCode, epoch: u32) -> Response {
        Response {
            result: result.as_u16(),
            epoch,
            body: ResponseBody::HeaderOnly {
                opcode: opcode & !RESPONSE_BIT,
            },
        }
    }

    /// The typed result code, `None` for a value RFC 6886 does not define.
    pub const fn result_code(&self) -> Option<ResultCode> {
        ResultCode::from_u16(self.result)
    }

    /// The response opcode (`128 + request opcode`).
    pub const fn opcode(&self) -> u8 {
        RESPONSE_BIT
            | match self.body {
                ResponseBody::ExternalAddress(_) => opcode::EXTERNAL_ADDRESS,
                ResponseBody::Map { protocol, .. } => protocol.opcode(),
                ResponseBody::HeaderOnly { opcode } => opcode & !RESPONSE_BIT,
            }
    }

    /// Length of the emitted response (8, 12 or 16).
    pub const fn buffer_len(&self) -> usize {
        match self.body {
            ResponseBody::ExternalAddress(_) => EXTERNAL_ADDRESS_RESPONSE_LEN,
            ResponseBody::Map { .. } => MAP_RESPONSE_LEN,
            ResponseBody::HeaderOnly { .. } => RESPONSE_HEADER_LEN,
        }
    }

    /// Parse a response (the client side). Opcode 128 needs 12 bytes, 129/130 need 16;
    /// another opcode ≥ 128 parses as [`ResponseBody::HeaderOnly`]. A header-only 8-byte
    /// message for opcode 128..=130 (the §3.5 error shape) parses as header-only too.
    pub fn parse(data: &[u8]) -> Result<Response> {
        if data.len() < RESPONSE_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if data[field::VERSION] != VERSION {
            return Err(WireError::BadVersion);
        }
        let op = data[field::OPCODE];
        if op & RESPONSE_BIT == 0 {
            return Err(WireError::BadVersion);
        }
        let req_op = op & !RESPONSE_BIT;
        let result = be::u16_at(data, field::RESULT.start);
        let epoch = be::u32_at(data, field::EPOCH.start);
        let body = if data.len() == RESPONSE_HEADER_LEN {
            ResponseBody::HeaderOnly { opcode: req_op }
        } else if req_op == opcode::EXTERNAL_ADDRESS {
            if data.len() < EXTERNAL_ADDRESS_RESPONSE_LEN {
                return Err(WireError::Truncated);
            }
            let a = &data[field::EXTERNAL_ADDRESS];
            ResponseBody::ExternalAddress(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else if let Some(protocol) = MapProtocol::from_opcode(req_op) {
            if data.len() < MAP_RESPONSE_LEN {
                return Err(WireError::Truncated);
            }
            ResponseBody::Map {
                protocol,
                internal_port: be::u16_at(data, field::RESP_INTERNAL_PORT.start),
                external_port: be::u16_at(data, field::RESP_EXTERNAL_PORT.start),
                lifetime: be::u32_at(data, field::RESP_LIFETIME.start),
            }
        } else {
            ResponseBody::HeaderOnly { opcode: req_op }
        };
        Ok(Response {
            result,
            epoch,
            body,
        })
    }

    /// Write the response into `buf[..buffer_len()]`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        b[field::VERSION] = VERSION;
        b[field::OPCODE] = self.opcode();
        be::set_u16(b, field::RESULT.start, self.result);
        be::set_u32(b, field::EPOCH.start, self.epoch);
        match self.body {
            ResponseBody::ExternalAddress(a) => {
                b[field::EXTERNAL_ADDRESS].copy_from_slice(&a.octets());
            }
            ResponseBody::Map {
                internal_port,
                external_port,
                lifetime,
                ..
            } => {
                be::set_u16(b, field::RESP_INTERNAL_PORT.start, internal_port);
                be::set_u16(b, field::RESP_EXTERNAL_PORT.start, external_port);
                be::set_u32(b, field::RESP_LIFETIME.start, lifetime);
            }
            ResponseBody::HeaderOnly { .. } => {}
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6886 §3.2, external address request: Vers = 0 | OP = 0.
    const EXT_REQ: [u8; 2] = [0x00, 0x00];

    // RFC 6886 §3.2, external address response: Vers = 0 | OP = 128 | Result Code (16) |
    // Seconds Since Start of Epoch (32) | External IPv4 Address (32).
    // Result 0, epoch 3600 (0x00000e10), address 192.0.2.7.
    const EXT_RESP: [u8; 12] = [
        0x00, 0x80, 0x00, 0x00, // version 0, opcode 128, result 0
        0x00, 0x00, 0x0e, 0x10, // epoch 3600
        0xc0, 0x00, 0x02, 0x07, // 192.0.2.7
    ];

    // RFC 6886 §3.3, mapping request: Vers = 0 | OP = x | Reserved (16) | Internal Port |
    // Suggested External Port | Requested Port Mapping Lifetime in Seconds.
    // TCP (OP 2), internal 8080 (0x1f90), suggested 2000 (0x07d0), lifetime 7200 (0x1c20).
    const MAP_REQ: [u8; 12] = [
        0x00, 0x02, 0x00, 0x00, // version 0, opcode 2, reserved
        0x1f, 0x90, 0x07, 0xd0, // internal 8080, suggested 2000
        0x00, 0x00, 0x1c, 0x20, // lifetime 7200
    ];

    // RFC 6886 §3.3, mapping response: Vers = 0 | OP = 128 + x | Result Code | Seconds
    // Since Start of Epoch | Internal Port | Mapped External Port | Lifetime.
    // UDP (OP 129), result 0, epoch 1 000 000 (0x000f4240), internal 5000 (0x1388),
    // external 4100 (0x1004), lifetime 3600 (0x0e10).
    const MAP_RESP: [u8; 16] = [
        0x00, 0x81, 0x00, 0x00, // version 0, opcode 129, result 0
        0x00, 0x0f, 0x42, 0x40, // epoch 1000000
        0x13, 0x88, 0x10, 0x04, // internal 5000, external 4100
        0x00, 0x00, 0x0e, 0x10, // lifetime 3600
    ];

    #[test]
    fn external_address_request_and_response() {
        assert_eq!(Request::parse(&EXT_REQ), Ok(Request::ExternalAddress));
        let mut b = [0xffu8; 2];
        assert_eq!(Request::ExternalAddress.emit(&mut b), Ok(2));
        assert_eq!(b, EXT_REQ);

        let r = Response {
            result: 0,
            epoch: 3600,
            body: ResponseBody::ExternalAddress(Ipv4Addr::new(192, 0, 2, 7)),
        };
        let mut b = [0xffu8; 12];
        assert_eq!(r.emit(&mut b), Ok(12));
        assert_eq!(b, EXT_RESP);
        assert_eq!(Response::parse(&EXT_RESP), Ok(r));
        assert_eq!(r.result_code(), Some(ResultCode::Success));
        assert_eq!(r.emit(&mut b[..11]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn mapping_request_and_response() {
        let q = Request::Map {
            protocol: MapProtocol::Tcp,
            internal_port: 8080,
            suggested_external_port: 2000,
            lifetime: 7200,
        };
        assert_eq!(Request::parse(&MAP_REQ), Ok(q));
        let mut b = [0xffu8; 12];
        assert_eq!(q.emit(&mut b), Ok(12));
        assert_eq!(b, MAP_REQ);
        // Reserved bits are ignored on receipt (§3.3), trailing bytes too.
        let mut odd = [0u8; 14];
        odd[..12].copy_from_slice(&MAP_REQ);
        odd[2] = 0xaa;
        assert_eq!(Request::parse(&odd), Ok(q));

        let r = Response {
            result: 0,
            epoch: 1_000_000,
            body: ResponseBody::Map {
                protocol: MapProtocol::Udp,
                internal_port: 5000,
                external_port: 4100,
                lifetime: 3600,
            },
        };
        let mut b = [0xffu8; 16];
        assert_eq!(r.emit(&mut b), Ok(16));
        assert_eq!(b, MAP_RESP);
        assert_eq!(Response::parse(&MAP_RESP), Ok(r));
        assert_eq!(Response::parse(&MAP_RESP[..15]), Err(WireError::Truncated));
    }

    #[test]
    fn section_3_5_request_errors() {
        // Truncated: fewer than 2 bytes, or a mapping request shorter than 12.
        assert_eq!(Request::parse(&[]), Err(RequestError::Truncated));
        assert_eq!(Request::parse(&[0]), Err(RequestError::Truncated));
        for n in 2..12 {
            assert_eq!(
                Request::parse(&MAP_REQ[..n]),
                Err(RequestError::Truncated),
                "len {n}"
            );
        }
        // Version 2 (PCP) or 1: "Unsupported Version", answered as 0 | 128 + OP | 1 | epoch.
        let mut v = MAP_REQ;
        v[0] = 2;
        let e = Request::parse(&v).unwrap_err();
        assert_eq!(
            e,
            RequestError::UnsupportedVersion {
                version: 2,
                opcode: 2
            }
        );
        assert_eq!(e.result_code(), Some(ResultCode::UnsupportedVersion));
        let resp = e.response(7).unwrap();
        let mut b = [0xffu8; 8];
        assert_eq!(resp.emit(&mut b), Ok(8));
        assert_eq!(b, [0x00, 0x82, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07]);
        assert_eq!(Response::parse(&b), Ok(resp));
        // Opcode ≥ 128: a response, silently ignored.
        assert_eq!(Request::parse(&MAP_RESP), Err(RequestError::NotARequest));
        assert_eq!(RequestError::NotARequest.response(0), None);
        // Unknown opcode < 128: result 5.
        let e = Request::parse(&[0, 3]).unwrap_err();
        assert_eq!(e, RequestError::UnsupportedOpcode { opcode: 3 });
        let resp = e.response(9).unwrap();
        assert_eq!(resp.result_code(), Some(ResultCode::UnsupportedOpcode));
        assert_eq!(resp.emit(&mut b), Ok(8));
        assert_eq!(b, [0x00, 0x83, 0x00, 0x05, 0x00, 0x00, 0x00, 0x09]);
        assert_eq!(e.to_string(), "NAT-PMP opcode 3 not supported");
        assert_eq!(e.as_str(), "unsupported_opcode");
    }

    #[test]
    fn result_codes() {
        for v in 0..=5u16 {
            let c = ResultCode::from_u16(v).unwrap();
            assert_eq!(c.as_u16(), v);
        }
        assert_eq!(ResultCode::from_u16(6), None);
        assert_eq!(ResultCode::OutOfResources.as_u16(), 4);
        assert_eq!(ResultCode::NotAuthorized.to_string(), "not_authorized");
        // A failed mapping keeps the internal port, zero external port and lifetime (§3.5).
        let r = Response {
            result: ResultCode::OutOfResources.as_u16(),
            epoch: 5,
            body: ResponseBody::Map {
                protocol: MapProtocol::Tcp,
                internal_port: 8080,
                external_port: 0,
                lifetime: 0,
            },
        };
        let mut b = [0u8; 16];
        r.emit(&mut b).unwrap();
        assert_eq!(b, [0, 0x82, 0, 4, 0, 0, 0, 5, 0x1f, 0x90, 0, 0, 0, 0, 0, 0]);
        // A response parser rejects requests and other versions.
        assert_eq!(Response::parse(&MAP_REQ), Err(WireError::BadVersion));
        let mut v = MAP_RESP;
        v[0] = 2;
        assert_eq!(Response::parse(&v), Err(WireError::BadVersion));
    }

    use proptest::prelude::*;

    proptest! {
        /// Every request and response emits and parses back as itself.
        #[test]
        fn emit_parse_round_trip(tcp in any::<bool>(), ip in any::<u16>(), ep in any::<u16>(),
                                 life in any::<u32>(), result in any::<u16>(), epoch in any::<u32>(),
                                 addr in any::<[u8; 4]>()) {
            let protocol = if tcp { MapProtocol::Tcp } else { MapProtocol::Udp };
            let q = Request::Map { protocol, internal_port: ip, suggested_external_port: ep, lifetime: life };
            let mut b = [0u8; 16];
            let n = q.emit(&mut b).unwrap();
            prop_assert_eq!(Request::parse(&b[..n]), Ok(q));
            for body in [
                ResponseBody::ExternalAddress(addr.into()),
                ResponseBody::Map { protocol, internal_port: ip, external_port: ep, lifetime: life },
                ResponseBody::HeaderOnly { opcode: (ip as u8) & 0x7f },
            ] {
                let r = Response { result, epoch, body };
                let n = r.emit(&mut b).unwrap();
                prop_assert_eq!(Response::parse(&b[..n]), Ok(r));
            }
        }
    }
}
