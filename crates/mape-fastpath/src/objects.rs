//! The BPF objects built by `build.rs` from `bpf/*.bpf.c`, embedded in the binary, and
//! opening one with the checks that it is the object this crate was written against.

use libbpf_rs::{MapCore, MapHandle, Object, ObjectBuilder};

use crate::FastPathError;

/// The CE's programs (`bpf/ce.bpf.c`).
pub(crate) const CE_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ce.bpf.o"));
/// The BR's programs (`bpf/br.bpf.c`).
pub(crate) const BR_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/br.bpf.o"));

/// Opens and loads `bytes`, with `sizes` (map name, entries or `None` to keep the
/// object's) applied before the load.
pub(crate) fn load(
    object: &'static str,
    bytes: &[u8],
    sizes: &[(&str, Option<u32>)],
) -> Result<Object, FastPathError> {
    let load_err = |source| FastPathError::Load { object, source };
    let mut open = ObjectBuilder::default()
        .name(format!("mape_{object}"))
        .and_then(|b| b.open_memory(bytes))
        .map_err(load_err)?;
    for mut m in open.maps_mut() {
        let want = sizes.iter().find(|(n, _)| m.name() == *n);
        if let Some((_, Some(n))) = want {
            m.set_max_entries(*n).map_err(load_err)?;
        }
    }
    open.load().map_err(load_err)
}

/// An owned handle on map `name` of `obj`, checked to have the key and value sizes of
/// `bpf/layout.h` as this crate encodes them.
pub(crate) fn map(
    object: &'static str,
    obj: &Object,
    name: &str,
    key: usize,
    value: usize,
) -> Result<MapHandle, FastPathError> {
    let m = obj
        .maps()
        .find(|m| m.name() == name)
        .ok_or_else(|| FastPathError::Mismatch {
            object,
            what: format!("no map {name}"),
        })?;
    if m.key_size() as usize != key || m.value_size() as usize != value {
        return Err(FastPathError::Mismatch {
            object,
            what: format!(
                "map {name}: key {} value {} bytes, expected {key} and {value}",
                m.key_size(),
                m.value_size()
            ),
        });
    }
    MapHandle::try_from(&m).map_err(|source| FastPathError::Load { object, source })
}

/// The per-CPU counters of the `stats` map, summed.
pub(crate) fn counters(stats: &MapHandle) -> crate::layout::Counters {
    let mut out = crate::layout::Counters::default();
    for (i, slot) in out.0.iter_mut().enumerate() {
        let key = (i as u32).to_ne_bytes();
        if let Ok(Some(per_cpu)) = stats.lookup_percpu(&key, libbpf_rs::MapFlags::ANY) {
            *slot = per_cpu
                .iter()
                .map(|v| {
                    let mut w = [0u8; 8];
                    if let Some(b) = v.get(..8) {
                        w.copy_from_slice(b);
                    }
                    u64::from_ne_bytes(w)
                })
                .sum();
        }
    }
    out
}
