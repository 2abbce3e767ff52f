//! Arbitrary bytes as a capture file: the pcap/pcapng reader and the whole replay behind
//! it (frame decoding, the engines under every policy, the report) never panic, and a
//! reader error is always a typed one.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mape_replay::{budget_port_set, replay_capture, CaptureReader, ReplayConfig};

fuzz_target!(|data: &[u8]| {
    // The reader alone, to the end or the first error.
    if let Ok(mut r) = CaptureReader::new(Cursor::new(data)) {
        let mut n = 0u32;
        while let Ok(Some(f)) = r.next_frame() {
            assert!(f.data.len() <= mape_replay::capture::MAX_BLOCK);
            n += 1;
            if n > 100_000 {
                break;
            }
        }
    }
    // The full replay.
    let Ok(ports) = budget_port_set(240) else {
        return;
    };
    let mut cfg = ReplayConfig::new(ports);
    cfg.max_points = 64;
    if let Ok(report) = replay_capture(Cursor::new(data), cfg, "fuzz", |_, _| {}) {
        let _ = mape_replay::render_text(&report);
        let _ = mape_replay::render_json(&report);
    }
});
