//! PCP messages (RFC 6887): the common request and response headers (§7.1, §7.2), the
//! MAP opcode payload (§11.1), options (§7.3) and result codes (§7.4); request parsing
//! with the server rules of §7 and §8.3 (which result code a bad request gets), and
//! [`Request`] / [`Response`] with `parse` and `emit` for both directions.
//!
//! PCP shares UDP port 5351 with NAT-PMP (RFC 6886); the first byte tells them apart
//! (RFC 6887 §9): a server that also speaks NAT-PMP hands version 0 to
//! [`crate::natpmp::Request::parse`] before calling [`Request::parse`], which answers every
//! version other than 2 with `UNSUPP_VERSION`.

use core::fmt;
use core::net::Ipv6Addr;

use crate::be;
use crate::{Result, WireError};

/// Byte ranges of PCP messages (RFC 6887 §7.1, §7.2, §7.3, §11.1).
mod field {
    use crate::Field;
    pub(crate) const VERSION: usize = 0;
    pub(crate) const R_OPCODE: usize = 1;
    // Request header (§7.1).
    pub(crate) const REQ_RESERVED: Field = 2..4;
    pub(crate) const LIFETIME: Field = 4..8;
    pub(crate) const CLIENT_IP: Field = 8..24;
    // Response header (§7.2).
    pub(crate) const RESP_RESERVED: usize = 2;
    pub(crate) const RESULT: usize = 3;
    pub(crate) const EPOCH: Field = 8..12;
    pub(crate) const RESP_RESERVED_96: Field = 12..24;
    // MAP payload, relative to its start (§11.1).
    pub(crate) const NONCE: Field = 0..12;
    pub(crate) const PROTOCOL: usize = 12;
    pub(crate) const MAP_RESERVED: Field = 13..16;
    pub(crate) const INTERNAL_PORT: Field = 16..18;
    pub(crate) const EXTERNAL_PORT: Field = 18..20;
    pub(crate) const EXTERNAL_IP: Field = 20..36;
    // Option header, relative to its start (§7.3).
    pub(crate) const OPT_CODE: usize = 0;
    pub(crate) const OPT_RESERVED: usize = 1;
    pub(crate) const OPT_LENGTH: Field = 2..4;
}

/// The PCP version number (RFC 6887 §7.1).
pub const VERSION: u8 = 2;
/// UDP port the server listens on (RFC 6887 §19.1), shared with NAT-PMP.
pub const SERVER_PORT: u16 = 5351;
/// The R bit in the opcode byte: set in responses (§7.1, §7.2).
pub const R_BIT: u8 = 0x80;
/// Length of the request and of the response header (§7.1, §7.2).
pub const HEADER_LEN: usize = 24;
/// Longest PCP message (§7).
pub const MAX_MESSAGE_LEN: usize = 1100;
/// Length of the MAP opcode payload (§11.1).
pub const MAP_PAYLOAD_LEN: usize = 36;
/// Length of an option header (code, reserved, length; §7.3).
pub const OPTION_HEADER_LEN: usize = 4;

/// Opcodes (RFC 6887 §19.2).
pub mod opcode {
    /// ANNOUNCE (§14.1): no payload.
    pub const ANNOUNCE: u8 = 0;
    /// MAP (§11).
    pub const MAP: u8 = 1;
    /// PEER (§12); not parsed here, answered `UNSUPP_OPCODE`.
    pub const PEER: u8 = 2;
}

/// Option codes (RFC 6887 §19.4); 0-127 are mandatory to process (§7.3).
pub mod option {
    /// THIRD_PARTY (§13.1): a mapping for another host.
    pub const THIRD_PARTY: u8 = 1;
    /// PREFER_FAILURE (§13.2): the suggested external port or nothing.
    pub const PREFER_FAILURE: u8 = 2;
    /// FILTER (§13.3): remote peers allowed in.
    pub const FILTER: u8 = 3;
}

/// Result codes (RFC 6887 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResultCode {
    /// 0: success.
    Success = 0,
    /// 1: the version number is not supported.
    UnsuppVersion = 1,
    /// 2: the request is not authorized (e.g. mapping disabled).
    NotAuthorized = 2,
    /// 3: the request could not be parsed.
    MalformedRequest = 3,
    /// 4: the opcode is not supported.
    UnsuppOpcode = 4,
    /// 5: a mandatory option is not supported.
    UnsuppOption = 5,
    /// 6: an option is malformed.
    MalformedOption = 6,
    /// 7: the server or device has a network failure (e.g. no external address).
    NetworkFailure = 7,
    /// 8: out of resources (no ports left).
    NoResources = 8,
    /// 9: the protocol is not supported.
    UnsuppProtocol = 9,
    /// 10: the host's quota is exceeded.
    UserExQuota = 10,
    /// 11: the suggested external port/address cannot be provided (PREFER_FAILURE).
    CannotProvideExternal = 11,
    /// 12: the client's IP address field does not match the packet's source.
    AddressMismatch = 12,
    /// 13: too many remote peers (PEER).
    ExcessiveRemotePeers = 13,
}

impl ResultCode {
    /// The code for a wire value, `None` for values RFC 6887 does not define.
    pub const fn from_u8(v: u8) -> Option<ResultCode> {
        use ResultCode::*;
        Some(match v {
            0 => Success,
            1 => UnsuppVersion,
            2 => NotAuthorized,
            3 => MalformedRequest,
            4 => UnsuppOpcode,
            5 => UnsuppOption,
            6 => MalformedOption,
            7 => NetworkFailure,
            8 => NoResources,
            9 => UnsuppProtocol,
            10 => UserExQuota,
            11 => CannotProvideExternal,
            12 => AddressMismatch,
            13 => ExcessiveRemotePeers,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The RFC's name (`"NO_RESOURCES"`, ...), usable as a log field.
    pub const fn as_str(self) -> &'static str {
        use ResultCode::*;
        match self {
            Success => "SUCCESS",
            UnsuppVersion => "UNSUPP_VERSION",
            NotAuthorized => "NOT_AUTHORIZED",
            MalformedRequest => "MALFORMED_REQUEST",
            UnsuppOpcode => "UNSUPP_OPCODE",
            UnsuppOption => "UNSUPP_OPTION",
            MalformedOption => "MALFORMED_OPTION",
            NetworkFailure => "NETWORK_FAILURE",
            NoResources => "NO_RESOURCES",
            UnsuppProtocol => "UNSUPP_PROTOCOL",
            UserExQuota => "USER_EX_QUOTA",
            CannotProvideExternal => "CANNOT_PROVIDE_EXTERNAL",
            AddressMismatch => "ADDRESS_MISMATCH",
            ExcessiveRemotePeers => "EXCESSIVE_REMOTE_PEERS",
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The options of a message (§7.3), validated: every option's header and data (padded
/// to 4 bytes) lies within the bytes. Iterate for `(code, data)` (data without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Options<'a> {
    bytes: &'a [u8],
}

impl<'a> Options<'a> {
    /// Validate encoded options; [`WireError::BadOption`] when one is truncated (its
    /// header, or its data plus padding, runs past the end).
    pub fn new(bytes: &'a [u8]) -> Result<Options<'a>> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (_, _, total) = Self::split(rest).ok_or(WireError::BadOption)?;
            rest = &rest[total..];
        }
        Ok(Options { bytes })
    }

    /// No options.
    pub const fn empty() -> Options<'static> {
        Options { bytes: &[] }
    }

    /// The encoded options, as on the wire.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `(code, data, encoded length)` of the first option, `None` if truncated.
    fn split(b: &[u8]) -> Option<(u8, &[u8], usize)> {
        if b.len() < OPTION_HEADER_LEN {
            return None;
        }
        let len = usize::from(be::u16_at(b, field::OPT_LENGTH.start));
        let total = OPTION_HEADER_LEN + len.next_multiple_of(4);
        if b.len() < total {
            return None;
        }
        Some((
            b[field::OPT_CODE],
            &b[OPTION_HEADER_LEN..OPTION_HEADER_LEN + len],
            total,
        ))
    }

    /// Iterate `(code, data)`.
    pub fn iter(&self) -> OptionsIter<'a> {
        OptionsIter { rest: self.bytes }
    }
}

impl<'a> IntoIterator for Options<'a> {
    type Item = (u8, &'a [u8]);
    type IntoIter = OptionsIter<'a>;
    fn into_iter(self) -> OptionsIter<'a> {
        self.iter()
    }
}

/// Iterator over `(code, data)` of validated [`Options`].
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (code, data, total) = Options::split(self.rest)?;
        self.rest = &self.rest[total..];
        Some((code, data))
    }
}

/// Encode one option (§7.3: code, reserved 0, length, data, zero padding to 4 bytes) into
/// `buf`; returns the encoded length.
pub fn emit_option(code: u8, data: &[u8], buf: &mut [u8]) -> Result<usize> {
    let len = u16::try_from(data.len()).map_err(|_| WireError::FieldOverflow)?;
    let total = OPTION_HEADER_LEN + data.len().next_multiple_of(4);
    let b = buf.get_mut(..total).ok_or(WireError::BufferTooSmall)?;
    b[field::OPT_CODE] = code;
    b[field::OPT_RESERVED] = 0;
    be::set_u16(b, field::OPT_LENGTH.start, len);
    let (d, pad) = b[OPTION_HEADER_LEN..].split_at_mut(data.len());
    d.copy_from_slice(data);
    pad.fill(0);
    Ok(total)
}

/// The MAP opcode payload (RFC 6887 §11.1), the same layout in requests (suggested
/// external port and address) and responses (assigned ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapPayload {
    /// 96-bit mapping nonce chosen by the client; echoed in the response.
    pub nonce: [u8; 12],
    /// IANA protocol number (6 TCP, 17 UDP; 0 all protocols).
    pub protocol: u8,
    /// Internal port (0 with protocol 0: all ports).
    pub internal_port: u16,
    /// Suggested (request) or assigned (response) external port.
    pub external_port: u16,
    /// Suggested or assigned external address; IPv4 as IPv4-mapped IPv6 (§5).
    pub external_ip: Ipv6Addr,
}

impl MapPayload {
    fn parse(b: &[u8]) -> MapPayload {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&b[field::NONCE]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[field::EXTERNAL_IP]);
        MapPayload {
            nonce,
            protocol: b[field::PROTOCOL],
            internal_port: be::u16_at(b, field::INTERNAL_PORT.start),
            external_port: be::u16_at(b, field::EXTERNAL_PORT.start),
            external_ip: Ipv6Addr::from(ip),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[field::NONCE].copy_from_slice(&self.nonce);
        b[field::PROTOCOL] = self.protocol;
        b[field::MAP_RESERVED].fill(0);
        be::set_u16(b, field::INTERNAL_PORT.start, self.internal_port);
        be::set_u16(b, field::EXTERNAL_PORT.start, self.external_port);
        b[field::EXTERNAL_IP].copy_from_slice(&self.external_ip.octets());
    }
}

/// The opcode of a request and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOp {
    /// ANNOUNCE (§14.1).
    Announce,
    /// MAP (§11.1).
    Map(MapPayload),
}

impl RequestOp {
    /// The opcode.
    pub const fn opcode(&self) -> u8 {
        match self {
            RequestOp::Announce => opcode::ANNOUNCE,
            RequestOp::Map(_) => opcode::MAP,
        }
    }

    const fn payload_len(&self) -> usize {
        match self {
            RequestOp::Announce => 0,
            RequestOp::Map(_) => MAP_PAYLOAD_LEN,
        }
    }
}

/// Why [`Request::parse`] did not yield a request, and what the server answers (§8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestError {
    /// Shorter than 2 bytes, or a version 2 request shorter than its 24-byte header:
    /// silently dropped (§8.3).
    Truncated,
    /// The R bit is set (a response): silently dropped (§8.3).
    NotARequest,
    /// Answer with `result` (see [`RequestError::response`]).
    Answer {
        /// `UNSUPP_VERSION` (version ≠ 2, §9), `MALFORMED_REQUEST` (shorter than the
        /// opcode's payload, longer than 1100, not a multiple of 4; §7, §8.3), `UNSUPP_OPCODE` or `MALFORMED_OPTION` (a truncated option, §7.3).
        result: ResultCode,
        /// The request opcode (R bit cleared), echoed in the response.
        opcode: u8,
        /// The MAP payload when it was readable, echoed in the response (§11.4).
        map: Option<MapPayload>,
    },
}

impl RequestError {
    /// The result code the server answers with, `None` when it stays silent.
    pub const fn result_code(&self) -> Option<ResultCode> {
        match self {
            RequestError::Truncated | RequestError::NotARequest => None,
            RequestError::Answer { result, .. } => Some(*result),
        }
    }

    /// The error response to send, `None` when the server stays silent. `lifetime` says
    /// how long the error holds (§7.2: e.g. 30 min for a long-lived error); `epoch` is the
    /// server's epoch time.
    pub const fn response(&self, lifetime: u32, epoch: u32) -> Option<Response<'static>> {
        match *self {
            RequestError::Truncated | RequestError::NotARequest => None,
            RequestError::Answer {
                result,
                opcode,
                map,
            } => Some(Response {
                result: result.as_u8(),
                lifetime,
                epoch,
                op: match map {
                    Some(m) => ResponseOp::Map(m),
                    // A header-only ANNOUNCE is an ANNOUNCE response.
                    None if opcode == self::opcode::ANNOUNCE => ResponseOp::Announce,
                    None => ResponseOp::HeaderOnly { opcode },
                },
                options: Options::empty(),
            }),
        }
    }
}

impl RequestError {
    /// Stable snake_case name, usable as a metric label or log field (an answered error
    /// is named after its result code).
    pub const fn as_str(&self) -> &'static str {
        match self {
            RequestError::Truncated => "truncated",
            RequestError::NotARequest => "not_a_request",
            RequestError::Answer { result, .. } => match result {
                ResultCode::UnsuppVersion => "unsupp_version",
                ResultCode::MalformedRequest => "malformed_request",
                ResultCode::UnsuppOpcode => "unsupp_opcode",
                ResultCode::MalformedOption => "malformed_option",
                _ => "other",
            },
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Truncated => f.write_str("PCP request truncated"),
            RequestError::NotARequest => f.write_str("PCP response sent to the server"),
            RequestError::Answer { result, opcode, .. } => {
                write!(f, "PCP request (opcode {opcode}) answered {result}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// A PCP request (RFC 6887 §7.1) with its opcode payload and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request<'a> {
    /// Requested lifetime in seconds (0: delete).
    pub lifetime: u32,
    /// The PCP client's IP address field; IPv4 as IPv4-mapped IPv6 (§7.1). The server
    /// compares it with the packet's source (`ADDRESS_MISMATCH`, §8.3).
    pub client_ip: Ipv6Addr,
    /// Opcode and payload.
    pub op: RequestOp,
    /// Options after the payload.
    pub options: Options<'a>,
}

impl<'a> Request<'a> {
    /// Parse a request under RFC 6887 §7 and §8.3 (see [`RequestError`] for what each
    /// failure answers). Checks in §8.3's order: length ≥ 2, R bit clear, version 2,
    /// length ≥ 24 (else dropped), length ≤ 1100 and a multiple of 4, opcode ANNOUNCE or
    /// MAP, room for its payload, options well formed. What §8.3 checks after parsing
    /// (the client address, ADDRESS_MISMATCH) and the opcode's own rules (§11.3) are the
    /// server's.
    pub fn parse(data: &'a [u8]) -> core::result::Result<Request<'a>, RequestError> {
        let (version, r_op) = match data {
            [v, o, ..] => (*v, *o),
            _ => return Err(RequestError::Truncated),
        };
        let op = r_op & !R_BIT;
        let answer = |result, map| RequestError::Answer {
            result,
            opcode: op,
            map,
        };
        // §8.3 lists the silent drops first: shorter than 2 octets, then the R bit, and
        // only then the version. A response of any version is never answered (two
        // servers answering each other's errors would loop).
        if r_op & R_BIT != 0 {
            return Err(RequestError::NotARequest);
        }
        if version != VERSION {
            // §8.3, §9: NAT-PMP (version 0) is the caller's to route before this.
            return Err(answer(ResultCode::UnsuppVersion, None));
        }
        // §8.3: "if the version is supported but the received message is shorter than 24
        // octets, the message is silently dropped"; then longer than 1100 octets, not a
        // multiple of 4 or too short for the opcode is MALFORMED_REQUEST.
        if data.len() < HEADER_LEN {
            return Err(RequestError::Truncated);
        }
        if data.len() > MAX_MESSAGE_LEN || !data.len().is_multiple_of(4) {
            return Err(answer(ResultCode::MalformedRequest, None));
        }
        let body = &data[HEADER_LEN..];
        let (op, rest) = match op {
            opcode::ANNOUNCE => (RequestOp::Announce, body),
            opcode::MAP => {
                if body.len() < MAP_PAYLOAD_LEN {
                    return Err(answer(ResultCode::MalformedRequest, None));
                }
                let (p, rest) = body.split_at(MAP_PAYLOAD_LEN);
                (RequestOp::Map(MapPayload::parse(p)), rest)
            }
            _ => return Err(answer(ResultCode::UnsuppOpcode, None)),
        };
        let map = match op {
            RequestOp::Map(m) => Some(m),
            RequestOp::Announce => None,
        };
        let options = Options::new(rest).map_err(|_| answer(ResultCode::MalformedOption, map))?;
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&data[field::CLIENT_IP]);
        // The reserved field is ignored on receipt (§7.1).
        Ok(Request {
            lifetime: be::u32_at(data, field::LIFETIME.start),
            client_ip: Ipv6Addr::from(ip),
            op,
            options,
        })
    }

    /// Length of the emitted request.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.op.payload_len() + self.options.bytes.len()
    }

    /// Write the request into `buf[..buffer_len()]` (reserved bits zero, options as
    /// encoded); returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        b[field::VERSION] = VERSION;
        b[field::R_OPCODE] = self.op.opcode();
        b[field::REQ_RESERVED].fill(0);
        be::set_u32(b, field::LIFETIME.start, self.lifetime);
        b[field::CLIENT_IP].copy_from_slice(&self.client_ip.octets());
        let body = &mut b[HEADER_LEN..];
        if let RequestOp::Map(m) = &self.op {
            m.emit(&mut body[..MAP_PAYLOAD_LEN]);
        }
        body[self.op.payload_len()..].copy_from_slice(self.options.bytes);
        Ok(len)
    }
}

/// The opcode of a response and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseOp {
    /// ANNOUNCE (§14.1): sent unsolicited after a restart (or as the reply to one).
    Announce,
    /// MAP (§11.1) with the assigned external port and address (on error the request's
    /// payload, §11.4).
    Map(MapPayload),
    /// Header only: the reply to a request whose opcode or payload the server could not
    /// read (UNSUPP_VERSION, UNSUPP_OPCODE, MALFORMED_REQUEST). With opcode ANNOUNCE it is
    /// the same bytes as [`ResponseOp::Announce`], which is what parsing yields.
    HeaderOnly {
        /// The request opcode (R bit cleared).
        opcode: u8,
    },
}

impl ResponseOp {
    const fn opcode(&self) -> u8 {
        match self {
            ResponseOp::Announce => opcode::ANNOUNCE,
            ResponseOp::Map(_) => opcode::MAP,
            ResponseOp::HeaderOnly { opcode } => *opcode & !R_BIT,
        }
    }

    const fn payload_len(&self) -> usize {
        match self {
            ResponseOp::Map(_) => MAP_PAYLOAD_LEN,
            ResponseOp::Announce | ResponseOp::HeaderOnly { .. } => 0,
        }
    }
}

/// A PCP response (RFC 6887 §7.2) with its opcode payload and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response<'a> {
    /// Result code as sent (see [`Response::result_code`]); a client keeps a code RFC
    /// 6887 does not define.
    pub result: u8,
    /// Granted lifetime (success) or how long the error holds (§7.2), in seconds.
    pub lifetime: u32,
    /// The server's epoch time in seconds (§8.5).
    pub epoch: u32,
    /// Opcode and payload.
    pub op: ResponseOp,
    /// Options after the payload (e.g. those the server processed, echoed, §7.3).
    pub options: Options<'a>,
}

impl<'a> Response<'a> {
    /// The typed result code, `None` for a value RFC 6887 does not define.
    pub const fn result_code(&self) -> Option<ResultCode> {
        ResultCode::from_u8(self.result)
    }

    /// Length of the emitted response.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.op.payload_len() + self.options.bytes.len()
    }

    /// Parse a response (the client side): version 2, R bit set, 24..=1100 bytes, a
    /// multiple of 4. A MAP response of exactly 24 bytes and any opcode other than
    /// ANNOUNCE and MAP parse as [`ResponseOp::HeaderOnly`] (the bytes after the header of
    /// an unknown opcode are not read).
    pub fn parse(data: &'a [u8]) -> Result<Response<'a>> {
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if data[field::VERSION] != VERSION {
            return Err(WireError::BadVersion);
        }
        let r_op = data[field::R_OPCODE];
        if r_op & R_BIT == 0 {
            return Err(WireError::BadVersion);
        }
        if data.len() > MAX_MESSAGE_LEN || !data.len().is_multiple_of(4) {
            return Err(WireError::BadTotalLen);
        }
        let op = r_op & !R_BIT;
        let body = &data[HEADER_LEN..];
        let (op, rest) = match op {
            opcode::ANNOUNCE => (ResponseOp::Announce, body),
            opcode::MAP if !body.is_empty() => {
                if body.len() < MAP_PAYLOAD_LEN {
                    return Err(WireError::Truncated);
                }
                let (p, rest) = body.split_at(MAP_PAYLOAD_LEN);
                (ResponseOp::Map(MapPayload::parse(p)), rest)
            }
            _ => (ResponseOp::HeaderOnly { opcode: op }, &[][..]),
        };
        Ok(Response {
            result: data[field::RESULT],
            lifetime: be::u32_at(data, field::LIFETIME.start),
            epoch: be::u32_at(data, field::EPOCH.start),
            op,
            options: Options::new(rest)?,
        })
    }

    /// Write the response into `buf[..buffer_len()]` (R bit set, reserved bits zero,
    /// options as encoded); returns its length. [`WireError::FieldOverflow`] when it would
    /// exceed 1100 bytes (§7).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if len > MAX_MESSAGE_LEN {
            return Err(WireError::FieldOverflow);
        }
        let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        b[field::VERSION] = VERSION;
        b[field::R_OPCODE] = R_BIT | self.op.opcode();
        b[field::RESP_RESERVED] = 0;
        b[field::RESULT] = self.result;
        be::set_u32(b, field::LIFETIME.start, self.lifetime);
        be::set_u32(b, field::EPOCH.start, self.epoch);
        b[field::RESP_RESERVED_96].fill(0);
        let body = &mut b[HEADER_LEN..];
        if let ResponseOp::Map(m) = &self.op {
            m.emit(&mut body[..MAP_PAYLOAD_LEN]);
        }
        body[self.op.payload_len()..].copy_from_slice(self.options.bytes);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const NONCE: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    // RFC 6887 §7.1 request header + §11.1 MAP payload, laid out by hand:
    // Version = 2 | R = 0, Opcode = 1 | Reserved (16) | Requested Lifetime 7200 |
    // PCP Client's IP Address 192.168.1.10 as ::ffff:192.168.1.10 |
    // Mapping Nonce (96) | Protocol 6 | Reserved (24) | Internal Port 8080 |
    // Suggested External Port 2000 | Suggested External IP ::ffff:0.0.0.0 (no preference).
    const MAP_REQ: [u8; 60] = [
        0x02, 0x01, 0x00, 0x00, // version 2, R 0 opcode 1, reserved
        0x00, 0x00, 0x1c, 0x20, // lifetime 7200
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10, // client IP
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, // nonce
        0x06, 0x00, 0x00, 0x00, // protocol TCP, reserved
        0x1f, 0x90, 0x07, 0xd0, // internal 8080, suggested external 2000
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, // suggested external IP
    ];

    // RFC 6887 §7.2 response header + §11.1 MAP payload + §7.3 one option:
    // Version = 2 | R = 1, Opcode = 1 | Reserved (8) | Result Code 0 | Lifetime 3600 |
    // Epoch Time 1000 | Reserved (96) | nonce | protocol 6 | internal 8080 |
    // assigned external 2001 | assigned external IP ::ffff:203.0.113.5 |
    // option code 2 (PREFER_FAILURE, §13.2) with a 3-byte body padded to 4.
    const MAP_RESP: [u8; 68] = [
        0x02, 0x81, 0x00, 0x00, // version 2, R 1 opcode 1, reserved, result 0
        0x00, 0x00, 0x0e, 0x10, // lifetime 3600
        0x00, 0x00, 0x03, 0xe8, // epoch 1000
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reserved 96
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, // nonce
        0x06, 0x00, 0x00, 0x00, // protocol TCP, reserved
        0x1f, 0x90, 0x07, 0xd1, // internal 8080, external 2001
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5, // external IP
        0x02, 0x00, 0x00, 0x03, // option code 2, reserved, length 3
        0xaa, 0xbb, 0xcc, 0x00, // data + 1 byte of padding
    ];

    fn map_req() -> Request<'static> {
        Request {
            lifetime: 7200,
            client_ip: Ipv4Addr::new(192, 168, 1, 10).to_ipv6_mapped(),
            op: RequestOp::Map(MapPayload {
                nonce: NONCE,
                protocol: 6,
                internal_port: 8080,
                external_port: 2000,
                external_ip: Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
            }),
            options: Options::empty(),
        }
    }

    #[test]
    fn map_request_golden() {
        assert_eq!(Request::parse(&MAP_REQ), Ok(map_req()));
        let mut b = [0xffu8; 60];
        assert_eq!(map_req().emit(&mut b), Ok(60));
        assert_eq!(b, MAP_REQ);
        assert_eq!(map_req().emit(&mut b[..59]), Err(WireError::BufferTooSmall));
        // ANNOUNCE: the bare 24-byte header.
        let a = Request::parse(&MAP_REQ[..24]);
        assert_eq!(
            a.unwrap_err().result_code(),
            Some(ResultCode::MalformedRequest)
        );
        let mut ann = [0u8; 24];
        ann.copy_from_slice(&MAP_REQ[..24]);
        ann[1] = opcode::ANNOUNCE;
        let a = Request::parse(&ann).unwrap();
        assert_eq!(a.op, RequestOp::Announce);
        assert_eq!(a.lifetime, 7200);
    }

    #[test]
    fn map_response_golden() {
        let mut opt = [0u8; 8];
        assert_eq!(emit_option(2, &[0xaa, 0xbb, 0xcc], &mut opt), Ok(8));
        let r = Response {
            result: 0,
            lifetime: 3600,
            epoch: 1000,
            op: ResponseOp::Map(MapPayload {
                nonce: NONCE,
                protocol: 6,
                internal_port: 8080,
                external_port: 2001,
                external_ip: Ipv4Addr::new(203, 0, 113, 5).to_ipv6_mapped(),
            }),
            options: Options::new(&opt).unwrap(),
        };
        let mut b = [0xffu8; 68];
        assert_eq!(r.emit(&mut b), Ok(68));
        assert_eq!(b, MAP_RESP);
        let p = Response::parse(&MAP_RESP).unwrap();
        assert_eq!(p, r);
        assert_eq!(p.result_code(), Some(ResultCode::Success));
        let opts: Vec<_> = p.options.iter().collect();
        assert_eq!(opts, vec![(2u8, &[0xaa, 0xbb, 0xcc][..])]);
        assert_eq!(
            Response::parse(&MAP_RESP[..60]).map(|r| r.options.iter().count()),
            Ok(0)
        );
        // The option header without its data and padding: truncated.
        assert_eq!(Response::parse(&MAP_RESP[..64]), Err(WireError::BadOption));
        assert_eq!(
            Response::parse(&MAP_RESP[..66]),
            Err(WireError::BadTotalLen)
        );
    }

    #[test]
    fn options_iterate_and_reject_truncation() {
        let mut req = [0u8; 60 + 12];
        req[..60].copy_from_slice(&MAP_REQ);
        // Option 1 (THIRD_PARTY, §13.1) with 0 bytes, then option 3 (FILTER) with 4 bytes.
        req[60..64].copy_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        req[64..72].copy_from_slice(&[0x03, 0x00, 0x00, 0x04, 9, 8, 7, 6]);
        let r = Request::parse(&req).unwrap();
        let opts: Vec<_> = r.options.iter().collect();
        assert_eq!(opts, vec![(1u8, &[][..]), (3u8, &[9, 8, 7, 6][..])]);
        // Option 3 claims 5 bytes: its data + padding run past the end.
        req[67] = 5;
        let e = Request::parse(&req).unwrap_err();
        assert_eq!(
            e,
            RequestError::Answer {
                result: ResultCode::MalformedOption,
                opcode: opcode::MAP,
                map: Some(match map_req().op {
                    RequestOp::Map(m) => m,
                    RequestOp::Announce => unreachable!(),
                }),
            }
        );
        // The error response echoes the MAP payload (§11.4), 60 bytes.
        let resp = e.response(1800, 77).unwrap();
        let mut b = [0u8; 60];
        assert_eq!(resp.emit(&mut b), Ok(60));
        assert_eq!(&b[..4], &[0x02, 0x81, 0x00, 0x06]);
        assert_eq!(&b[24..], &MAP_REQ[24..]);
        assert_eq!(Options::new(&[1, 0, 0]), Err(WireError::BadOption));
    }

    #[test]
    fn section_8_3_request_errors() {
        assert_eq!(Request::parse(&[]), Err(RequestError::Truncated));
        assert_eq!(Request::parse(&[2]), Err(RequestError::Truncated));
        let rc = |b: &[u8]| Request::parse(b).unwrap_err().result_code();
        // Version 1 or 0 (NAT-PMP, routed elsewhere first): UNSUPP_VERSION.
        let mut v = MAP_REQ;
        v[0] = 1;
        assert_eq!(rc(&v), Some(ResultCode::UnsuppVersion));
        let resp = Request::parse(&v).unwrap_err().response(0, 5).unwrap();
        let mut b = [0u8; 24];
        assert_eq!(resp.emit(&mut b), Ok(24));
        assert_eq!(&b[..4], &[0x02, 0x81, 0x00, 0x01]);
        // Found by the wire_pcp fuzz target: version 1, opcode ANNOUNCE, 4 bytes. Its
        // answer is an ANNOUNCE response that parses back as itself.
        let e = Request::parse(&[1, 0, 1, 0]).unwrap_err();
        let resp = e.response(0, 5).unwrap();
        assert_eq!(resp.op, ResponseOp::Announce);
        resp.emit(&mut b).unwrap();
        assert_eq!(Response::parse(&b), Ok(resp));
        // R bit set: dropped.
        assert_eq!(Request::parse(&MAP_RESP), Err(RequestError::NotARequest));
        // §8.3: the R bit is looked at before the version, so a version-1 response (or a
        // 2-byte one) is dropped, not answered UNSUPP_VERSION.
        assert_eq!(Request::parse(&[1, 0x81]), Err(RequestError::NotARequest));
        let mut v1_resp = MAP_RESP;
        v1_resp[0] = 1;
        assert_eq!(Request::parse(&v1_resp), Err(RequestError::NotARequest));
        // §8.3: version 2 but shorter than the 24-byte header: silently dropped (no
        // answer), unlike a short message of another version (UNSUPP_VERSION above).
        assert_eq!(Request::parse(&MAP_REQ[..20]), Err(RequestError::Truncated));
        assert_eq!(Request::parse(&MAP_REQ[..2]), Err(RequestError::Truncated));
        assert_eq!(rc(&[1, 1, 0, 0]), Some(ResultCode::UnsuppVersion));
        // Too short for MAP, not a multiple of 4, too long.
        assert_eq!(rc(&MAP_REQ[..59]), Some(ResultCode::MalformedRequest));
        assert_eq!(rc(&MAP_REQ[..56]), Some(ResultCode::MalformedRequest));
        let mut long = [0u8; 1104];
        long[..60].copy_from_slice(&MAP_REQ);
        assert_eq!(rc(&long), Some(ResultCode::MalformedRequest));
        // 1100 bytes: 24 + 36 + one option of 1036 bytes is fine.
        long[60..64].copy_from_slice(&[0x80, 0, 0x04, 0x0c]);
        assert_eq!(
            Request::parse(&long[..1100])
                .unwrap()
                .options
                .iter()
                .count(),
            1
        );
        // Unknown opcode (PEER is not served): UNSUPP_OPCODE.
        let mut p = MAP_REQ;
        p[1] = opcode::PEER;
        assert_eq!(rc(&p), Some(ResultCode::UnsuppOpcode));
        assert_eq!(Request::parse(&p).unwrap_err().as_str(), "unsupp_opcode");
        assert_eq!(RequestError::NotARequest.as_str(), "not_a_request");
        assert_eq!(
            Request::parse(&p).unwrap_err().to_string(),
            "PCP request (opcode 2) answered UNSUPP_OPCODE"
        );
    }

    #[test]
    fn result_codes() {
        for v in 0..=13u8 {
            assert_eq!(ResultCode::from_u8(v).unwrap().as_u8(), v);
        }
        assert_eq!(ResultCode::from_u8(14), None);
        assert_eq!(ResultCode::NoResources.as_u8(), 8);
        assert_eq!(ResultCode::ExcessiveRemotePeers.as_u8(), 13);
        assert_eq!(ResultCode::UnsuppOpcode.to_string(), "UNSUPP_OPCODE");
    }

    use proptest::prelude::*;

    proptest! {
        /// A MAP request and response with options built by `emit_option` emit and parse
        /// back as themselves, and the options iterate as built.
        #[test]
        fn emit_parse_round_trip(nonce in any::<[u8; 12]>(), proto in any::<u8>(),
                                 ip in any::<u16>(), ep in any::<u16>(), life in any::<u32>(),
                                 client in any::<[u8; 16]>(), ext in any::<[u8; 16]>(),
                                 result in any::<u8>(), epoch in any::<u32>(),
                                 opts in proptest::collection::vec(
                                     (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..5)) {
            let mut enc = [0u8; 5 * 24];
            let mut n = 0;
            for (code, data) in &opts {
                n += emit_option(*code, data, &mut enc[n..]).unwrap();
            }
            let options = Options::new(&enc[..n]).unwrap();
            let got: Vec<(u8, Vec<u8>)> = options.iter().map(|(c, d)| (c, d.to_vec())).collect();
            prop_assert_eq!(&got, &opts);
            let map = MapPayload { nonce, protocol: proto, internal_port: ip, external_port: ep, external_ip: ext.into() };
            let q = Request { lifetime: life, client_ip: client.into(), op: RequestOp::Map(map), options };
            let mut b = [0u8; MAX_MESSAGE_LEN];
            let len = q.emit(&mut b).unwrap();
            prop_assert_eq!(len, 60 + n);
            prop_assert_eq!(Request::parse(&b[..len]), Ok(q));
            let r = Response { result, lifetime: life, epoch, op: ResponseOp::Map(map), options };
            let len = r.emit(&mut b).unwrap();
            prop_assert_eq!(Response::parse(&b[..len]), Ok(r));
        }
    }
}
