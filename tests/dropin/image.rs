//! The container image `deploy/build-image.sh` builds, checked as docker
//! keeps it: its config (entrypoint, port, volume, healthcheck, user, stop
//! signal) from `docker save`, and its root filesystem unpacked and run.
//! Containers do not run on this machine, so the image's own command runs
//! under `chroot` as the image's user, with nothing from the host but the
//! kernel and the listen address.

use crate::common::clients::{Dockerd, command, exec, require, run};
use crate::common::{Berth, content, free_port, push, sha256_digest};
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "65534:65534";
const UID: u32 = 65534;
const DATA: &str = "var/lib/registry";
/// The variable that moves the image's server off `:5000`: registry:2's.
const ADDR_VAR: &str = "REGISTRY_HTTP_ADDR";

/// An image built by the script, saved by docker and unpacked.
struct Unpacked {
    /// The image config's `config` object (Entrypoint, Env, ...).
    config: Value,
    rootfs: PathBuf,
    _dir: tempfile::TempDir,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf()
}

/// Builds the image with the script (packaging the binary this test run
/// built, never building one), saves it and unpacks its layers in order.
fn build_save_unpack() -> Unpacked {
    let dockerd = Dockerd::start();
    let tag = "berth-dropin:test";
    let mut build = command("bash", [repository().join("deploy/build-image.sh")]);
    build
        .arg(tag)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dockerd.path().join("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", dockerd.path().join("cli"))
        .env("BERTH_BINARY", env!("CARGO_BIN_EXE_berth"));
    run(build);

    let dir = tempfile::tempdir().expect("temp dir");
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).expect("mkdir");
    let archive = dir.path().join("image.tar");
    dockerd.docker(&["save", "-o", archive.to_str().expect("utf-8 path"), tag]);
    untar(&archive, &saved);

    // Both `docker save` formats (the classic one and the OCI layout of
    // docker 25+) have manifest.json naming the config and the layer tars.
    let manifest = read_json(&saved.join("manifest.json"));
    let image = &manifest[0];
    let config_path = image["Config"].as_str().expect("manifest.json Config");
    let config = read_json(&saved.join(config_path));
    let layers = image["Layers"].as_array().expect("manifest.json Layers");
    assert!(!layers.is_empty(), "no layers: {manifest}");

    // The root a container would see; 0755 like any `/`.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("mkdir rootfs");
    std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for layer in layers {
        untar(&saved.join(layer.as_str().expect("layer path")), &rootfs);
    }
    Unpacked {
        config: config["config"].clone(),
        rootfs,
        _dir: dir,
    }
}

fn untar(archive: &Path, into: &Path) {
    // As root, tar keeps owners and modes; numeric, as the image's ids
    // need not be named on this host.
    let mut tar = command("tar", ["--numeric-owner", "-xpf"]);
    tar.arg(archive).arg("-C").arg(into);
    run(tar);
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Unpacked {
    /// The image's command: Entrypoint then Cmd.
    fn argv(&self) -> Vec<String> {
        let mut argv = strings(&self.config["Entrypoint"]);
        argv.extend(strings(&self.config["Cmd"]));
        argv
    }

    /// `argv` run as the image runs it: inside its root, as its user, with
    /// its environment and `extra` only.
    fn command(&self, argv: &[String], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(require("chroot"));
        cmd.arg(format!("--userspec={USER}"))
            .arg(&self.rootfs)
            .args(argv)
            .env_clear();
        for pair in strings(&self.config["Env"]) {
            if let Some((key, value)) = pair.split_once('=') {
                cmd.env(key, value);
            }
        }
        cmd.envs(extra.iter().copied());
        cmd
    }

    /// The healthcheck's command, run as docker would run it.
    fn healthcheck(&self, extra: &[(&str, &str)]) -> (bool, String) {
        let test = strings(&self.config["Healthcheck"]["Test"]);
        let out = exec(self.command(&test[1..], extra), Duration::from_secs(30));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

#[test]
fn image_is_a_registry2_drop_in() {
    let image = build_save_unpack();
    let config = &image.config;

    // What docker reads from the image.
    assert_eq!(
        config["Entrypoint"],
        json!([
            "/usr/local/bin/berth",
            "serve",
            "--config",
            "/etc/docker/registry/config.yml"
        ]),
        "entrypoint: {config}"
    );
    assert_eq!(config["ExposedPorts"], json!({"5000/tcp": {}}), "{config}");
    assert_eq!(
        config["Volumes"],
        json!({"/var/lib/registry": {}}),
        "{config}"
    );
    assert_eq!(config["User"], USER, "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    // CMD, not CMD-SHELL: there is no shell in the image to run a string.
    let test = strings(&config["Healthcheck"]["Test"]);
    assert_eq!(
        test[..3],
        ["CMD", "/usr/local/bin/berth", "health"],
        "healthcheck: {config}"
    );
    assert!(
        config["Healthcheck"]["Timeout"].as_u64().unwrap_or(0) > 3_000_000_000,
        "the healthcheck must give the probe (3 s) time to answer: {config}"
    );

    // What the root holds: no shell, the volume owned by the user, /tmp
    // writable by anyone, the user named, registry:2's default config.
    let root = &image.rootfs;
    assert!(!root.join("bin/sh").exists(), "a shell in the image");
    let data = std::fs::metadata(root.join(DATA)).expect("/var/lib/registry");
    assert_eq!((data.uid(), data.gid()), (UID, UID), "volume owner");
    let tmp = std::fs::metadata(root.join("tmp")).expect("/tmp");
    assert_eq!(tmp.mode() & 0o7777, 0o1777, "/tmp mode");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("/etc/passwd");
    assert!(passwd.contains(":65534:65534:"), "{passwd}");
    let yml =
        std::fs::read_to_string(root.join("etc/docker/registry/config.yml")).expect("config.yml");
    assert!(yml.contains("rootdirectory: /var/lib/registry"), "{yml}");
    assert!(yml.contains("addr: :5000"), "{yml}");
    assert!(
        std::fs::metadata(root.join("etc/ssl/certs/ca-certificates.crt"))
            .is_ok_and(|m| m.len() > 10_000),
        "CA roots for upstream registries"
    );

    // The image's own command, moved to a free port.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = [(ADDR_VAR, addr.as_str())];
    let log = image.rootfs.parent().expect("temp dir").join("berth.log");
    let mut server = Server::start(&image, &env, &log);
    let base = format!("http://{addr}");
    server.wait_ready(&base);

    let (healthy, said) = image.healthcheck(&env);
    assert!(healthy, "healthcheck while serving: {said}");
    assert!(said.starts_with("healthy: "), "{said}");

    // A push lands in the volume, written by the image's user.
    let http = reqwest::blocking::Client::new();
    let layer = content::bytes("dropin-image-layer", 300_000);
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#;
    let manifest = push::image(
        &http,
        &base,
        "dropin/app",
        "v1",
        config_blob,
        std::slice::from_ref(&layer),
    )
    .expect("push");
    let layer_hex = sha256_digest(&layer)["sha256:".len()..].to_owned();
    let stored = find_file(&root.join(DATA), &layer_hex)
        .unwrap_or_else(|| panic!("layer {layer_hex} not under /{DATA}"));
    assert_eq!(std::fs::read(&stored).expect("stored layer"), layer);
    assert_eq!(
        std::fs::metadata(&stored).expect("stat").uid(),
        UID,
        "{} written as the image's user",
        stored.display()
    );
    let pulled = http
        .get(format!("{base}/v2/dropin/app/manifests/v1"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("pull");
    assert_eq!(pulled.status(), 200);
    assert_eq!(
        pulled.headers()["docker-content-digest"].to_str().ok(),
        Some(manifest.as_str())
    );

    // SIGTERM, the image's stop signal: a clean exit, soon.
    let (status, took) = server.terminate();
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (healthy, said) = image.healthcheck(&env);
    assert!(!healthy, "healthcheck after the stop: {said}");
    assert!(said.starts_with("unhealthy: "), "{said}");

    // The default configuration starts without a complaint.
    let logged = std::fs::read_to_string(&log).expect("server log");
    assert!(logged.contains("berth is serving"), "{logged}");
    assert!(
        !logged.contains(" WARN ") && !logged.contains(" ERROR "),
        "the image's own configuration gave warnings:\n{logged}"
    );

    // A volume registry:2 (which runs as root) wrote belongs to root: the
    // refusal names the directory and what to do, not just EACCES.
    let roots_volume = image.rootfs.join("var/lib/root-owned");
    std::fs::create_dir_all(&roots_volume).expect("root-owned volume");
    let argv = image.argv();
    let out = exec(
        image.command(
            &argv,
            &[
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:1"),
                (
                    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                    "/var/lib/root-owned",
                ),
            ],
        ),
        Duration::from_secs(30),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "served a root-owned volume as nobody"
    );
    assert!(
        said.contains("/var/lib/root-owned is not writable") && said.contains("chown"),
        "{said}"
    );
}

/// The image's server under chroot; killed if a test fails midway.
struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn start(image: &Unpacked, env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        // chroot execs the server, so the child's pid is the server's.
        let child = image
            .command(&image.argv(), env)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn chroot");
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn wait_ready(&mut self, base: &str) {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "the image's server exited ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if http
                .get(format!("{base}/health"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the image's server did not answer within 60 s:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGTERM, then the exit status and how long it took.
    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the image's server ignored SIGTERM for 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first file under `dir` whose path contains `needle` (the blob
/// layout differs between Berth's store and registry:2's tree).
fn find_file(dir: &Path, needle: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            if let Some(found) = find_file(&path, needle) {
                return Some(found);
            }
        } else if kind.is_file() && path.to_string_lossy().contains(needle) {
            return Some(path);
        }
    }
    None
}

/// `berth health` follows the configuration the server reads: the address
/// (an unspecified one reached on loopback) and HTTPS with the server's own
/// certificate, logins or not; and it says so in one line.
#[test]
fn health_follows_the_configuration() {
    let htpasswd_dir = tempfile::tempdir().expect("temp dir");
    let htpasswd = htpasswd_dir.path().join("users");
    let hash = bcrypt::hash("secret", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("htpasswd");
    let berth = Berth::builder()
        .listen("0.0.0.0", "127.0.0.1")
        .tls_self_signed("registry.test")
        .args(&["--htpasswd", htpasswd.to_str().expect("utf-8")])
        .start();
    let port = berth.addr.rsplit(':').next().expect("port").to_owned();
    let probe = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("health")
            .arg("--root")
            .arg(&berth.root)
            .env_clear()
            .envs(vars.iter().copied());
        let out = exec(cmd, Duration::from_secs(30));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let bind = format!("0.0.0.0:{port}");
    let (code, said) = probe(&[
        ("BERTH_SERVER_ADDR", &bind),
        ("BERTH_SERVER_TLS_SELF_SIGNED", "true"),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        said,
        format!("healthy: https://127.0.0.1:{port}/health answered 200 OK\n")
    );

    // Plain HTTP to an HTTPS server is no answer.
    let (code, said) = probe(&[("BERTH_SERVER_ADDR", &bind)]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.starts_with(&format!("unhealthy: http://127.0.0.1:{port}/health")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one line: {said}");

    // Nothing listening: unhealthy, and --url wins over the configuration.
    let nothing = format!("127.0.0.1:{}", free_port());
    let (code, said) = probe(&[("BERTH_SERVER_ADDR", &nothing)]);
    assert_eq!(code, Some(1), "nothing serves {nothing}: {said}");
    assert!(said.contains("Connection refused"), "{said}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["health", "--url", &format!("https://localhost:{port}")])
        .env_clear();
    let out = exec(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.describe());
}
