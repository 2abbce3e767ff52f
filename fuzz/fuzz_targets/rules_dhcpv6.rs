//! RFC 7598 decoder on arbitrary bytes: never panics; whatever decodes re-encodes and
//! re-decodes to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_rules::dhcpv6::{decode_option_area, decode_option_area_lenient, encode_option_area};
use mape_rules::IidFormat;

fuzz_target!(|data: &[u8]| {
    if let Ok(containers) = decode_option_area(data) {
        let bytes = encode_option_area(&containers).expect("decoded containers re-encode");
        let again = decode_option_area(&bytes).expect("re-encoded containers decode");
        assert_eq!(again, containers);
        assert_eq!(encode_option_area(&again).expect("stable"), bytes);
        for c in &containers {
            for iid in [IidFormat::Rfc7597, IidFormat::Draft03] {
                let _ = c.to_domain(iid);
            }
        }
    }
    let (ok, _errors) = decode_option_area_lenient(data);
    for c in &ok {
        let _ = c.to_domain(IidFormat::Rfc7597);
    }
});
