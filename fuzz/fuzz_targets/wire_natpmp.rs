//! Arbitrary bytes as a NAT-PMP request (what the server parses from any LAN host) and as
//! a response (what a client parses): never a panic; whatever parses is emitted and parses
//! back as itself; a request error the server answers emits a response that parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_wire::natpmp::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; 16];
    match Request::parse(data) {
        Ok(req) => {
            let n = req.emit(&mut buf).expect("a request fits 16 bytes");
            assert_eq!(Request::parse(&buf[..n]), Ok(req));
        }
        Err(e) => {
            if let Some(resp) = e.response(0x0102_0304) {
                assert_eq!(resp.result_code(), e.result_code());
                let n = resp.emit(&mut buf).expect("a response fits 16 bytes");
                assert_eq!(Response::parse(&buf[..n]), Ok(resp));
            }
        }
    }
    if let Ok(resp) = Response::parse(data) {
        let n = resp.emit(&mut buf).expect("a response fits 16 bytes");
        assert_eq!(Response::parse(&buf[..n]), Ok(resp));
    }
});
