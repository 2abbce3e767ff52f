//! Arbitrary bytes as a PCP request (what the server parses from any LAN host) and as a
//! response (what a client parses): never a panic; whatever parses is emitted and parses
//! back as itself (options included); a request error the server answers emits a
//! response that parses with that result code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_wire::pcp::{Request, Response, MAX_MESSAGE_LEN};

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    match Request::parse(data) {
        Ok(req) => {
            let n = req.emit(&mut buf).expect("a parsed request fits 1100 bytes");
            assert_eq!(n, data.len());
            assert_eq!(Request::parse(&buf[..n]), Ok(req));
            let _ = req.options.iter().count();
        }
        Err(e) => {
            if let Some(resp) = e.response(30, 0x0102_0304) {
                let n = resp.emit(&mut buf).expect("an error response fits");
                let back = Response::parse(&buf[..n]).expect("an error response parses");
                assert_eq!(back, resp);
                assert_eq!(back.result_code(), e.result_code());
            }
        }
    }
    if let Ok(resp) = Response::parse(data) {
        let n = resp.emit(&mut buf).expect("a parsed response fits 1100 bytes");
        assert_eq!(Response::parse(&buf[..n]), Ok(resp));
    }
});
