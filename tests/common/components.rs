//! Wasm components that exist only for tests (a guest that misbehaves on
//! purpose, a plugin that loops), built on first use so that the release
//! binary's build never compiles them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// `tests/faulty-guest`: `/trap`, `/loop`, `/oom`, `/slow-ok`.
pub fn faulty_guest() -> PathBuf {
    build("berth-faulty-guest", "berth_faulty_guest.wasm")
}

/// `tests/loop-plugin`: a policy plugin that loops or traps on request.
pub fn loop_plugin() -> PathBuf {
    build("berth-loop-plugin", "berth_loop_plugin.wasm")
}

/// Builds `package` for `wasm32-wasip2` into the target directory the
/// host's build.rs uses for the real guest (so its dependencies are already
/// compiled), once per test process.
fn build(package: &str, file: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--package", package])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        // Flags meant for the host (coverage, sanitizers) must not reach wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build {package}: {e}"));
    assert!(
        status.success(),
        "building {package} for wasm32-wasip2 failed"
    );
    let path = target_dir.join("wasm32-wasip2/release").join(file);
    assert!(
        path.exists(),
        "{package} built, but {} is missing",
        path.display()
    );
    built.insert(package.to_owned(), path.clone());
    path
}
