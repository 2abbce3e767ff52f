//! What a child of the daemon does not inherit: the daemon runs with `CAP_NET_ADMIN`,
//! `CAP_BPF` and `CAP_NET_BIND_SERVICE` (and as root before systemd's hardening), the
//! user's event hook must run with no capability at all. [`no_capabilities`] arranges that between fork and exec.

use rustix::thread::{
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    set_no_new_privs, CapabilitySet, CapabilitySets,
};

/// Makes `cmd`'s child drop every capability before it execs: the ambient set cleared,
/// the bounding set emptied (when the daemon may: it needs `CAP_SETPCAP`), no new
/// privileges (so that neither a set-uid file nor file capabilities nor, for a root
/// daemon, exec's "root gets the bounding set" rule gives any back, capabilities(7)), and
/// the effective, permitted and inheritable sets emptied. If any required step fails,
/// the spawn fails and the hook does not run.
pub fn no_capabilities(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec; it only makes raw
    // prctl/capset system calls (rustix's linux_raw backend: no allocation, no lock), which
    // are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| drop_all().map_err(std::io::Error::from));
    }
}

fn drop_all() -> rustix::io::Result<()> {
    clear_ambient_capability_set()?;
    // Every bit the kernel may know (it refuses those past cap_last_cap with EINVAL, and
    // all of them with EPERM without CAP_SETPCAP; no new privileges covers that case).
    for bit in 0..64 {
        let _ = remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << bit));
    }
    set_no_new_privs(true)?;
    set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
}
