//! Compiles the BPF programs (`bpf/*.bpf.c`) with clang for the `bpf` target; the
//! objects are embedded in the crate (`objects.rs`). Debian: `apt-get install clang
//! libbpf-dev` (scripts/install-deps.sh does).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("MAPE_BPF_CLANG").unwrap_or_else(|_| "clang".to_string());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // The multiarch include directory holds asm/types.h for linux/bpf.h.
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "riscv64" => "riscv64-linux-gnu",
        other => other,
    };
    println!("cargo:rerun-if-env-changed=MAPE_BPF_CLANG");
    for f in [
        "bpf/common.h",
        "bpf/layout.h",
        "bpf/ce.bpf.c",
        "bpf/br.bpf.c",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    for name in ["ce", "br"] {
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I/usr/include/{multiarch}"))
            .arg("-c")
            .arg(format!("bpf/{name}.bpf.c"))
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed on bpf/{name}.bpf.c ({s})"),
            Err(e) => panic!(
                "cannot run {clang} ({e}): the BPF programs need clang and libbpf-dev \
                 (scripts/install-deps.sh installs them)"
            ),
        }
    }
}
