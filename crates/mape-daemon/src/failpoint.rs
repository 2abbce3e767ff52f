//! Test-only fault injection, compiled only with the `failpoints` cargo feature (never in a
//! default or release build). The control request
//! `{"v":1,"cmd":"failpoint","args":{"name":"datapath_panic"}}` makes the next datapath
//! worker that runs its loop panic; `"datapath_stall"` makes it stop making progress (it
//! sleeps without beating its heartbeat until the daemon stops), as a worker caught in a
//! loop or a deadlock would. Each arms one fault for one worker, once.
//! crates/mape/tests/lab_failsafe.rs uses both.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

const NONE: u8 = 0;
const PANIC: u8 = 1;
const STALL: u8 = 2;

static ARMED: AtomicU8 = AtomicU8::new(NONE);

/// Arms the fault `name`; returns what was armed or why not.
pub fn arm(name: &str) -> Result<&'static str, String> {
    let (code, what) = match name {
        "datapath_panic" => (PANIC, "a datapath worker panics"),
        "datapath_stall" => (STALL, "a datapath worker stalls"),
        other => {
            return Err(format!(
                "unknown failpoint {other:?} (datapath_panic, datapath_stall)"
            ))
        }
    };
    ARMED.store(code, Ordering::SeqCst);
    Ok(what)
}

/// Called by worker `worker` once per loop iteration: fires an armed fault in this worker.
pub fn check(worker: usize, stop: &AtomicBool) {
    if ARMED.load(Ordering::Relaxed) == NONE {
        return;
    }
    match ARMED.swap(NONE, Ordering::SeqCst) {
        PANIC => panic!("failpoint datapath_panic fired in datapath worker {worker}"),
        STALL => {
            tracing::warn!(
                worker,
                "failpoint datapath_stall: this worker stops making progress"
            );
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => {}
    }
}
