//! tc attachment: one direct-action cls_bpf filter per (interface, ingress), at a fixed
//! handle and priority so that a start replaces what a killed daemon left (never a
//! duplicate), and a stop removes exactly its own.

use std::os::fd::AsFd;

use libbpf_rs::{Object, Program, TcHookBuilder, TC_INGRESS};

use crate::FastPathError;

/// The handle of mape's filters (`tc filter show dev X ingress` shows it).
pub const FILTER_HANDLE: u32 = 0x6d61;
/// Their priority.
pub const FILTER_PRIORITY: u32 = 0x6d65;

/// An attached filter, named by its interface (with [`FILTER_HANDLE`] and
/// [`FILTER_PRIORITY`], that is all a detach needs).
#[derive(Debug)]
pub struct Hook {
    ifindex: u32,
}

impl Hook {
    /// Attaches `prog` at ingress of `ifindex` (creating the clsact qdisc if needed),
    /// replacing a filter of ours already there.
    pub(crate) fn attach(prog: &Program<'_>, ifindex: u32) -> Result<Self, FastPathError> {
        let err = |action, source| FastPathError::Tc {
            action,
            ifindex,
            source,
        };
        let mut hook = TcHookBuilder::new(prog.as_fd())
            .ifindex(ifindex as i32)
            .replace(true)
            .handle(FILTER_HANDLE)
            .priority(FILTER_PRIORITY)
            .hook(TC_INGRESS);
        hook.create().map_err(|e| err("qdisc", e))?;
        hook.attach().map_err(|e| err("attach", e))?;
        Ok(Self { ifindex })
    }

    /// The interface it is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Removes the filter (the clsact qdisc stays: others may use it).
    pub fn detach(self) -> Result<(), FastPathError> {
        remove_ours(self.ifindex).map(|_| ())
    }
}

/// The filters one loaded object has attached.
#[derive(Debug, Default)]
pub(crate) struct Hooks(Vec<Hook>);

impl Hooks {
    /// Attaches each `(program, interface)` of `plan` from `obj`; on a failure the ones
    /// attached by this call are detached again and nothing of it stays.
    pub(crate) fn attach(
        &mut self,
        object: &'static str,
        obj: &Object,
        plan: &[(&str, u32)],
    ) -> Result<(), FastPathError> {
        self.0.extend(attach_all(object, obj, plan)?);
        Ok(())
    }

    /// Detaches every filter (errors are ignored: the interface may be gone, taking its
    /// filters with it).
    pub(crate) fn detach(&mut self) {
        for h in self.0.drain(..) {
            let _ = h.detach();
        }
    }

    /// The interfaces they are attached to.
    pub(crate) fn ifindexes(&self) -> Vec<u32> {
        self.0.iter().map(Hook::ifindex).collect()
    }
}

fn attach_all(
    object: &'static str,
    obj: &Object,
    plan: &[(&str, u32)],
) -> Result<Vec<Hook>, FastPathError> {
    let mut hooks: Vec<Hook> = Vec::new();
    for &(name, ifindex) in plan {
        let attached = obj
            .progs()
            .find(|p| p.name() == name)
            .ok_or_else(|| FastPathError::Mismatch {
                object,
                what: format!("no program {name}"),
            })
            .and_then(|p| Hook::attach(&p, ifindex));
        match attached {
            Ok(h) => hooks.push(h),
            Err(e) => {
                for h in hooks {
                    let _ = h.detach();
                }
                return Err(e);
            }
        }
    }
    Ok(hooks)
}

/// Removes a filter of ours left at ingress of `ifindex` (a killed daemon's), if any,
/// without loading anything: a start with the fast path off leaves no stale program.
pub fn remove_ours(ifindex: u32) -> Result<bool, FastPathError> {
    // The hook only carries the program fd into an attach; a detach names the filter
    // by interface, handle and priority. Any open descriptor serves as the placeholder.
    let placeholder = std::io::stdin();
    let mut hook = TcHookBuilder::new(placeholder.as_fd())
        .ifindex(ifindex as i32)
        .handle(FILTER_HANDLE)
        .priority(FILTER_PRIORITY)
        .hook(TC_INGRESS);
    match hook.query() {
        Ok(_) => {}
        Err(_) => return Ok(false),
    }
    hook.detach().map_err(|source| FastPathError::Tc {
        action: "detach",
        ifindex,
        source,
    })?;
    Ok(true)
}
