//! Arbitrary bytes as a control-socket request line (`mape_control::Request::from_line`,
//! what the daemon runs on every line a local client sends): never a panic, an error is
//! one line of words, an accepted request goes out and back in as itself (the wire form
//! the CLI sends parses to the same request), and its row limit stays within the
//! documented maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_control::{Request, Response, SessionQuery};

fuzz_target!(|data: &[u8]| {
    // The server refuses a line that is not UTF-8 before parsing it.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match Request::from_line(line) {
        Ok(req) => {
            let wire = serde_json::to_string(&req.to_envelope()).expect("an envelope encodes");
            let again = Request::from_line(&wire).expect("the wire form parses");
            assert_eq!(again, req, "{line:?} → {wire}");
            if let Request::Sessions(q) = &req {
                assert!(q.rows() as u64 <= SessionQuery::MAX_LIMIT);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "an error of more than one line: {msg:?}");
            // The error goes back to the client as one response line.
            let resp = Response::err(&e).to_line();
            assert!(!resp.contains('\n'));
            let back: Response = serde_json::from_str(&resp).expect("a response line parses");
            assert_eq!(back.error.as_deref(), Some(msg.as_str()));
        }
    }
});
