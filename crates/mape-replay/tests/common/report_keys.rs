//! What every JSON replay report carries (the keys users rely on, see
//! `/work/shared/checks/contracts.py`), checked on the library's `render_json` by
//! `acceptance.rs` and on the `mape replay --json` output by `crates/mape/tests/replay.rs`,
//! which includes this file.

use serde_json::Value;

/// The report's top-level keys, a budget of 240 ports, and each policy's keys.
pub(crate) fn assert_report_keys(v: &Value) {
    for k in ["budget", "duration_s", "packets", "skipped", "policies"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["budget"], 240);
    for p in v["policies"].as_array().expect("policies") {
        for k in [
            "name",
            "peak_ports",
            "exhausted_at_s",
            "refused",
            "refused_by_host",
            "culprit",
            "culprit_pattern",
            "advice",
        ] {
            assert!(p.get(k).is_some(), "{}: missing {k}", p["name"]);
        }
    }
}
