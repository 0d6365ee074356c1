//! The `berth serve` command line beyond the defaults: `--guest` runs the
//! component it is given, and the compiled guest is cached under the root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The guest build.rs embedded, as a file `--guest` can load.
const BUILT_GUEST: &str = env!("BERTH_GUEST_WASM");

fn cached_guests(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root.join(".cache"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn serves_with_the_guest_given_by_flag() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", &addr, "--guest", BUILT_GUEST, "--root"])
        .arg(&root)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn berth");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = None;
    while Instant::now() < deadline && answered.is_none() {
        answered = reqwest::blocking::get(format!("http://{addr}/v2/_catalog"))
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.text().ok());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answered.as_deref(), Some(r#"{"repositories":[]}"#));
}

#[test]
fn refuses_to_start_with_a_guest_that_is_not_a_component() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let bogus = tmp.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").expect("write bogus guest");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", &addr, "--root"])
        .arg(tmp.path().join("data"))
        .arg("--guest")
        .arg(&bogus)
        .stdin(Stdio::null())
        .output()
        .expect("run berth");
    assert!(!out.status.success(), "berth served a bogus guest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("compiling the guest"),
        "unexpected error: {stderr}"
    );
}

#[test]
fn compiled_guest_is_cached_and_reused_across_restarts() {
    let mut berth = common::Berth::start();
    let first = cached_guests(&berth.root);
    assert_eq!(first.len(), 1, "expected one cached guest, found {first:?}");
    let path = berth.root.join(".cache").join(&first[0]);
    let written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    berth.restart();
    assert_eq!(
        cached_guests(&berth.root),
        first,
        "restart changed the cache"
    );
    let after = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(
        written, after,
        "restart recompiled the guest instead of loading it"
    );
}
