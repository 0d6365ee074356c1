//! Shared harness for end-to-end tests: runs the real `berth` binary as a
//! subprocess on a free loopback port with a temporary data root.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `berth serve` and the directory it stores into.
pub struct Berth {
    /// `host:port` clients use.
    pub addr: String,
    /// What `--addr` binds.
    bind: String,
    /// `https` with a self-signed certificate, else `http`.
    tls: bool,
    /// Where the server's log goes (RUST_LOG=debug), when asked for.
    log: Option<PathBuf>,
    pub root: PathBuf,
    env: Vec<(String, String)>,
    /// Extra `berth serve` arguments, kept for restarts.
    args: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// How to start a `berth serve`: the one way every test starts a server.
/// Storage, metadata, auth, TLS, limits and plugins are all configuration:
/// `BERTH_*` variables ([`BerthBuilder::env`], [`BerthBuilder::storage`],
/// [`BerthBuilder::metadata`]) or a TOML file ([`BerthBuilder::config`]).
#[derive(Default)]
pub struct BerthBuilder {
    root: Option<PathBuf>,
    /// (ip to bind, host clients use)
    listen: Option<(String, String)>,
    tls_hostname: Option<String>,
    log: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    config: Option<String>,
}

impl BerthBuilder {
    /// Serves `root` (kept by the caller) instead of a fresh temporary one.
    pub fn root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    /// One `BERTH_*` (or other) environment variable, kept for restarts.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs(mut self, env: Vec<(String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// `storage.kind`: `filesystem` (default), `s3` or `memory`.
    pub fn storage(self, kind: &str) -> Self {
        self.env("BERTH_STORAGE_KIND", kind)
    }

    /// `metadata.kind`: `sqlite` (default) or `layout`.
    pub fn metadata(self, kind: &str) -> Self {
        self.env("BERTH_METADATA_KIND", kind)
    }

    /// A configuration file with this TOML (auth, TLS, limits, plugins…),
    /// passed as `--config`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// Binds `bind_ip` (e.g. `0.0.0.0`) and is reached as `host`.
    pub fn listen(mut self, bind_ip: &str, host: &str) -> Self {
        self.listen = Some((bind_ip.to_owned(), host.to_owned()));
        self
    }

    /// HTTPS with a certificate Berth makes for `hostname` on first start
    /// (`--tls-self-signed`); [`Berth::client`] trusts its CA.
    pub fn tls_self_signed(mut self, hostname: &str) -> Self {
        self.tls_hostname = Some(hostname.to_owned());
        self
    }

    /// Debug logging into `path` instead of warnings on stderr.
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Extra `berth serve` arguments (e.g. `--guest FILE`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn start(self) -> Berth {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = self.root.unwrap_or_else(|| tmp.path().join("data"));
        let mut args = self.args;
        if let Some(toml) = &self.config {
            let path = tmp.path().join("berth.toml");
            std::fs::write(&path, toml).expect("write config");
            args.extend(["--config".to_owned(), path.to_string_lossy().into_owned()]);
        }
        if let Some(hostname) = &self.tls_hostname {
            args.extend(["--tls-self-signed", "--hostname", hostname].map(String::from));
        }
        let port = free_port();
        let (bind_ip, host) = self
            .listen
            .unwrap_or_else(|| ("127.0.0.1".into(), "127.0.0.1".into()));
        let mut berth = Berth {
            addr: format!("{host}:{port}"),
            bind: format!("{bind_ip}:{port}"),
            tls: self.tls_hostname.is_some(),
            log: self.log,
            root,
            env: self.env,
            args,
            child: None,
            _tmp: Some(tmp),
        };
        berth.spawn();
        berth
    }
}

impl Berth {
    /// A builder for a server with more than the defaults.
    pub fn builder() -> BerthBuilder {
        BerthBuilder::default()
    }

    /// Starts a server with the defaults on a fresh temporary root.
    pub fn start() -> Self {
        Self::builder().start()
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

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        match &self.log {
            Some(log) => {
                let file = std::fs::File::create(log).expect("log file");
                cmd.env("RUST_LOG", "debug").stderr(file);
            }
            None => {
                cmd.env("RUST_LOG", "warn");
            }
        }
        let child = cmd
            .args(["serve", "--addr", &self.bind, "--root"])
            .arg(&self.root)
            .args(&self.args)
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

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The self-signed CA Berth wrote on first start (TLS only).
    pub fn ca(&self) -> PathBuf {
        self.root.join("tls/ca.crt")
    }

    /// A blocking client for this server: with TLS, one that trusts only
    /// Berth's CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut builder = reqwest::blocking::Client::builder();
        if self.tls {
            let ca = std::fs::read(self.ca()).expect("CA written on first start");
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"));
        }
        builder.build().expect("client")
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
            // `/health` answers whatever the logins: `/v2/` may want one.
            let ready = (!self.tls || self.ca().exists())
                && self
                    .client()
                    .get(format!("{}/health", self.url()))
                    .send()
                    .is_ok_and(|resp| resp.status().is_success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.log.as_ref().map(std::fs::read_to_string);
        panic!("berth at {} did not become ready: {log:?}", self.addr);
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
    free_ports(1)[0]
}

/// `n` distinct free ports on 127.0.0.1. All are held until every one is
/// chosen: picking them one at a time can hand out the same port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound address").port())
        .collect()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub mod clients;
pub mod components;
pub mod containerd;
pub mod content;
pub mod distribution;
pub mod images;
pub mod metrics;
pub mod push;
pub mod race;
pub mod seaweed;

/// `berth <args> --root <root>` with `env` (a maintenance command), run to
/// completion; its stdout, after asserting it succeeded.
pub fn berth_ok(root: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--root")
        .arg(root)
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("run berth");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
