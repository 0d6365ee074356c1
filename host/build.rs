//! Builds the registry guest for `wasm32-wasip2` and embeds it, so that
//! `cargo build`, `cargo run` and `cargo test` of the host need no manual step.
//! The same cargo run builds the two admission policy plugins the binary
//! embeds (`BERTH_BUILD_PLUGIN_IMMUTABLE_TAGS_WASM`,
//! `BERTH_BUILD_PLUGIN_REQUIRED_ANNOTATIONS_WASM`) and the wasi:filesystem storage
//! component of the standalone guest. Components that exist only for tests
//! (a faulty guest, a looping plugin) are built by the tests themselves
//! (tests/common/components.rs), into the same target directory.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    // A target directory of its own: the outer cargo holds the lock on ours.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-build");

    for watched in [
        "oci",
        "guest/src",
        "guest/Cargo.toml",
        "guest/plugins",
        "guest/glob",
        "wit",
        "wit/policy",
        "guest/storage-fs",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_wasm_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--package",
            "berth-guest",
            "--package",
            "berth-plugin-immutable-tags",
            "--package",
            "berth-plugin-required-annotations",
            "--package",
            "berth-storage-fs",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host (coverage, sanitizers) must not leak into the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("failed to run cargo for the guest");
    assert!(status.success(), "building the registry guest failed");

    for (var, file) in [
        ("BERTH_BUILD_GUEST_WASM", "berth_guest.wasm"),
        (
            "BERTH_BUILD_PLUGIN_IMMUTABLE_TAGS_WASM",
            "berth_plugin_immutable_tags.wasm",
        ),
        (
            "BERTH_BUILD_PLUGIN_REQUIRED_ANNOTATIONS_WASM",
            "berth_plugin_required_annotations.wasm",
        ),
    ] {
        let wasm = target_dir.join("wasm32-wasip2/release").join(file);
        assert!(
            wasm.exists(),
            "guest component missing at {}",
            wasm.display()
        );
        println!("cargo:rustc-env={var}={}", wasm.display());
    }

    let standalone = compose_standalone(&target_dir.join("wasm32-wasip2/release"));
    println!(
        "cargo:rustc-env=BERTH_BUILD_STANDALONE_WASM={}",
        standalone.display()
    );
}

/// The guest is built for `wasm32-wasip2`. rust-toolchain.toml names that
/// target, but rustup installs it only with the toolchain itself: a machine
/// that already had Rust 1.95 lacks it, and the guest build would fail with
/// "can't find crate for `core`". Add it through rustup when it is missing;
/// without rustup, say what to install.
fn ensure_wasm_target() {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.as_deref().is_some_and(|dir| dir.exists()) {
        return;
    }
    println!("cargo:warning=adding the {TARGET} target (rustup target add {TARGET}) for the guest");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        added,
        "the registry guest needs the {TARGET} target: run `rustup target add {TARGET}` \
         (or install Rust 1.95 with rustup, which reads rust-toolchain.toml)"
    );
}

/// The registry guest (world `registry-guest`) with its imports
/// (`storage-imports`: `berth:registry/blobs`, `metadata`, `admission`,
/// `catalog`) satisfied by the wasi:filesystem storage component (world
/// `storage-exports`): one component that imports only `wasi:*` and exports
/// `wasi:http/incoming-handler`, for `berth guest export --standalone`.
fn compose_standalone(release: &std::path::Path) -> PathBuf {
    use wac_graph::types::Package;
    use wac_graph::{CompositionGraph, EncodeOptions};
    let read = |file: &str| {
        let path = release.join(file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let mut graph = CompositionGraph::new();
    let guest = Package::from_bytes(
        "berth:guest",
        None,
        read("berth_guest.wasm"),
        graph.types_mut(),
    )
    .expect("the registry guest is a component");
    let guest = graph.register_package(guest).expect("register the guest");
    let storage = Package::from_bytes(
        "berth:storage-fs",
        None,
        read("berth_storage_fs.wasm"),
        graph.types_mut(),
    )
    .expect("the storage component is a component");
    let storage = graph
        .register_package(storage)
        .expect("register the storage component");
    wac_graph::plug(&mut graph, vec![storage], guest).expect("plugging storage into the guest");
    let bytes = graph
        .encode(EncodeOptions::default())
        .expect("encoding the composed component");
    let out = release.join("berth_standalone.wasm");
    std::fs::write(&out, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    out
}
