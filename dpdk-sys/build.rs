//! Build script for `rvs-dpdk-sys`.
//!
//! 1. Ask `pkg-config` for libdpdk's CFLAGS and pass the tokens *unchanged*
//!    to bindgen and to the C compiler (the `pkg-config` crate would drop
//!    `-include rte_config.h` and `-march=corei7`; without the latter
//!    `rte_memcpy.h` fails with "target specific option mismatch").
//! 2. Compile `shim.c` (callable wrappers for DPDK's static inlines).
//! 3. Generate bindings for `wrapper.h` (+ `shim.h`) with allowlists.
//! 4. Link libdpdk dynamically from `pkg-config --libs libdpdk`: with shared
//!    linking EAL dlopens the poll-mode drivers from its PMD path itself.
//!
//! With the `docs-only` feature, none of this runs and the crate is empty.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| panic!("rvs-dpdk-sys: cannot run pkg-config: {e}"));
    assert!(
        out.status.success(),
        "rvs-dpdk-sys: `pkg-config {} libdpdk` failed (is libdpdk-dev installed?): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Types `RTE_BIT64()`-style flag macros as `u64` (bindgen would pick the
/// smallest fitting type, so `RTE_ETH_RSS_IP` would be `u32` but
/// `RTE_ETH_RSS_PROTO_MASK` `u64`).
#[derive(Debug)]
struct FlagTypes;

impl bindgen::callbacks::ParseCallbacks for FlagTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        let is_flag = name.starts_with("RTE_ETH_RX_OFFLOAD_")
            || name.starts_with("RTE_ETH_TX_OFFLOAD_")
            || (name.starts_with("RTE_ETH_RSS_") && !name.starts_with("RTE_ETH_RSS_RETA_SIZE_"))
            || name.starts_with("RTE_MBUF_F_");
        is_flag.then_some(bindgen::callbacks::IntKind::U64)
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=shim_consts.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bindings_rs = out_dir.join("bindings.rs");

    if env::var_os("CARGO_FEATURE_DOCS_ONLY").is_some() {
        std::fs::write(&bindings_rs, "// docs-only: no DPDK bindings generated\n")
            .expect("write empty bindings.rs");
        return;
    }

    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let cflags = pkg_config(&["--cflags"]);
    let libs = pkg_config(&["--libs"]);

    // --- C shim ---------------------------------------------------------
    let mut cc = cc::Build::new();
    cc.file(manifest_dir.join("shim.c"))
        .include(&manifest_dir)
        .warnings(true)
        .extra_warnings(false);
    for flag in &cflags {
        cc.flag(flag);
    }
    cc.compile("rvs_dpdk_shim");

    // --- bindings --------------------------------------------------------
    let bindings = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", manifest_dir.display()))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .parse_callbacks(Box::new(FlagTypes))
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rvs_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("E_RTE_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        // Evaluates object-like macros cexpr cannot (`RTE_BIT64(n)`,
        // `UINT64_C`): gives real `const RTE_ETH_RSS_IP: u64` etc. The shim
        // also exports them as `rvs_RTE_ETH_*` statics; a test compares both.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&out_dir)
        // Per-lcore TLS variables link but segfault when touched from Rust:
        // reach them through the shim (rvs_rte_errno, rvs_rte_lcore_id).
        .blocklist_item("per_lcore_.*")
        // Packed structs inside packed structs: rustc rejects the layout.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .no_debug("rte_flow_item_gtp_psc")
        .derive_default(true)
        .derive_debug(true)
        .derive_copy(true)
        .layout_tests(true)
        .generate_comments(true)
        .generate_cstr(true)
        .rust_target(bindgen::RustTarget::stable(80, 0).unwrap_or_default())
        .generate()
        .expect("rvs-dpdk-sys: bindgen failed on wrapper.h");
    bindings
        .write_to_file(&bindings_rs)
        .expect("rvs-dpdk-sys: cannot write bindings.rs");

    // --- linking ---------------------------------------------------------
    for tok in &libs {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // `-Wl,--as-needed` and the like: rustc already links as-needed.
    }
}
