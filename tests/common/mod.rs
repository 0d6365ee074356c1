//! Shared harness for end-to-end tests: runs the real `berth` binary as a
//! subprocess on a free loopback port with a temporary data root.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `berth serve` and the directory it stores into.
pub struct Berth {
    pub addr: String,
    pub root: PathBuf,
    env: Vec<(String, String)>,
    /// Extra `berth serve` arguments, kept for restarts.
    args: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Berth {
    /// Starts a server on a fresh temporary root.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("data");
        let mut berth = Self::start_at(&root);
        berth._tmp = Some(tmp);
        berth
    }

    /// Starts a server over an existing (or new) data root.
    pub fn start_at(root: &Path) -> Self {
        Self::start_with(root, Vec::new())
    }

    /// Starts a server over `root` with extra environment (e.g. `BERTH_*`
    /// configuration variables), kept for restarts.
    pub fn start_with(root: &Path, env: Vec<(String, String)>) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut berth = Self {
            addr,
            root: root.to_path_buf(),
            env,
            args: Vec::new(),
            child: None,
            _tmp: None,
        };
        berth.spawn();
        berth
    }

    /// Starts a server on a fresh temporary root with extra environment
    /// and extra `berth serve` arguments (e.g. `--guest FILE`).
    pub fn start_args(env: Vec<(String, String)>, args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut berth = Self {
            addr: format!("127.0.0.1:{}", free_port()),
            root: tmp.path().join("data"),
            env,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            _tmp: Some(tmp),
        };
        berth.spawn();
        berth
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still alive (not exited, not reaped).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts a server configured by `env` on a fresh temporary root.
    pub fn start_env(env: Vec<(String, String)>) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut berth = Self::start_with(&tmp.path().join("data"), env);
        berth._tmp = Some(tmp);
        berth
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--addr", &self.addr, "--root"])
            .arg(&self.root)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            // Some environments point this at a CA file, which plain-HTTP
            // S3 clients then trip over; the tests' S3 server is plain HTTP.
            .env_remove("AWS_CA_BUNDLE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn berth");
        self.child = Some(child);
        self.wait_ready();
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth did not stop within 20 s of SIGTERM");
        }
    }

    /// Kills the server with SIGKILL (no shutdown, nothing flushed) and
    /// reaps it; `restart` brings it back over the same root and port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again over the same root and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(resp) = reqwest::blocking::get(format!("{}/v2/", self.url()))
                && resp.status().is_success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berth at {} did not become ready", self.addr);
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Anything the client flows can talk to: Berth, or registry:2 in the
/// interoperability tests.
pub trait Registry {
    /// `127.0.0.1:PORT`
    fn addr(&self) -> &str;
    /// `http://127.0.0.1:PORT`
    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
}

impl Registry for Berth {
    fn addr(&self) -> &str {
        &self.addr
    }
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub mod clients;
pub mod distribution;
pub mod images;
pub mod push;
pub mod seaweed;
