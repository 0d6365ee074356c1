//! The guest beyond Berth: `berth guest export --standalone` writes the
//! registry guest composed with the wasi:filesystem storage component, and
//! `wasmtime serve` (a runtime nobody here wrote) serves it from a data
//! directory. skopeo and the docker CLI push and pull through it.

mod common;

use common::Registry;
use common::clients::{self, require};
use common::{free_port, images};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `wasmtime serve` of the exported standalone component.
struct WasmtimeServe {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl WasmtimeServe {
    fn start() -> Self {
        let wasmtime = require("wasmtime");
        let dir = tempfile::tempdir().expect("tmp");
        let component = dir.path().join("berth-standalone.wasm");
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["guest", "export", "--standalone"])
            .arg(&component)
            .output()
            .expect("berth guest export");
        assert!(out.status.success(), "export: {out:?}");
        let data: PathBuf = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let addr = format!("127.0.0.1:{}", free_port());
        // The README's command, with <DIR>, <FILE> and the port filled in.
        let child = Command::new(wasmtime)
            .args(["serve", "-S", "cli", "--dir"])
            .arg(format!("{}::/data", data.display()))
            .args(["--addr", &addr])
            .arg(&component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn wasmtime serve");
        let server = Self {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(resp) = reqwest::blocking::get(format!("{}/v2/", server.url()))
                && resp.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "wasmtime serve did not answer /v2/"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }
}

impl Registry for WasmtimeServe {
    fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn skopeo_round_trip_under_wasmtime_serve() {
    let _serial = clients::serial();
    let server = WasmtimeServe::start();
    clients::skopeo_roundtrip(&server, images::multi(), "app/multi");
}

#[test]
fn docker_push_and_pull_under_wasmtime_serve() {
    let _serial = clients::serial();
    let server = WasmtimeServe::start();
    clients::docker_seed_flow(&server);
}
