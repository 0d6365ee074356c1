//! Real registry clients for the end-to-end tests: command plumbing, skopeo,
//! a private dockerd, podman, and the client flows several test files run
//! against differently configured servers.
//!
//! A missing client is a test failure, never a skip: `tests/run.sh` installs
//! skopeo, docker.io and podman.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Registry;
use super::images::{self, TestImage};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------

pub static SERIAL: Mutex<()> = Mutex::new(());

/// One client flow at a time; a failed test must not block the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics with a clear message if `tool` is not on PATH.
pub fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if let Ok(meta) = fs::metadata(&candidate)
            && meta.is_file()
        {
            return candidate;
        }
    }
    panic!(
        "required client `{tool}` is not installed (not on PATH); run the test command \
         `bash tests/run.sh`, which installs skopeo, docker.io and podman with apt-get"
    );
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// Runs a command to completion (killing it after `timeout`), capturing output.
pub fn exec(mut cmd: Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {shown}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{shown} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    };
    eprintln!("[{:>7.2?}] {shown} -> {}", start.elapsed(), output.status);
    output
}

pub const CMD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Runs a command that must succeed; returns its output.
pub fn run(cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = exec(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "command failed: {shown}\nexit: {}",
        out.describe()
    );
    out
}

pub fn command<S: AsRef<OsStr>>(program: &str, args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = Command::new(require(program));
    cmd.args(args);
    cmd
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("http client")
}

/// A client that reports redirects instead of following them (a blob GET
/// may answer 307 to a presigned URL of the bucket).
pub fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// GET a JSON document from the registry; must be 200.
pub fn get_json(url: &str) -> Value {
    let resp = http()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    assert_eq!(status.as_u16(), 200, "GET {url} -> {status}: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {url}: body is not JSON ({e}): {body}"))
}

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// GET a manifest from the registry; checks that `Docker-Content-Digest`
/// matches the body. Returns (digest, bytes, parsed).
pub fn registry_manifest(
    berth: &dyn Registry,
    repo: &str,
    reference: &str,
) -> (String, Vec<u8>, Value) {
    let url = format!("{}/v2/{repo}/manifests/{reference}", berth.url());
    let resp = http()
        .get(&url)
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let header = resp
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().expect("ascii digest header").to_string());
    let bytes = resp.bytes().expect("manifest body").to_vec();
    assert_eq!(
        status.as_u16(),
        200,
        "GET {url} -> {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let digest = super::sha256_digest(&bytes);
    assert_eq!(
        header.as_deref(),
        Some(digest.as_str()),
        "GET {url}: Docker-Content-Digest vs body"
    );
    let parsed = serde_json::from_slice(&bytes).expect("manifest is JSON");
    (digest, bytes, parsed)
}

/// HEAD a blob: must exist with the given size.
pub fn assert_blob(berth: &dyn Registry, repo: &str, digest: &str, size: u64) {
    let url = format!("{}/v2/{repo}/blobs/{digest}", berth.url());
    let resp = http()
        .head(&url)
        .send()
        .unwrap_or_else(|e| panic!("HEAD {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "HEAD {url}");
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(len, Some(size), "HEAD {url}: Content-Length");
}

pub fn tags(berth: &dyn Registry, repo: &str) -> Value {
    get_json(&format!("{}/v2/{repo}/tags/list", berth.url()))
}

pub fn catalog(berth: &dyn Registry) -> Value {
    get_json(&format!("{}/v2/_catalog", berth.url()))
}

/// Removes whatever is mounted below `dir` (deepest first), so that deleting
/// `dir` can never reach into a mount.
pub fn unmount_below(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: umount2 on a path we own; failure is harmless.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A short-path temp dir under /tmp (unix socket paths are limited to 108 bytes).
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp")
}

// ---------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------

pub fn skopeo<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    // --insecure-policy: don't depend on /etc/containers/policy.json existing.
    let mut cmd = command("skopeo", ["--insecure-policy"]);
    cmd.args(args);
    cmd
}

pub fn skopeo_push(berth: &dyn Registry, image: &TestImage, repo: &str) {
    let dest = format!("docker://{}/{repo}:{}", berth.addr(), image.tag);
    run(skopeo([
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &image.oci_ref(),
        &dest,
    ]));
}

/// `skopeo inspect --raw` must return the source manifest byte for byte.
pub fn skopeo_inspect_raw(berth: &dyn Registry, image: &TestImage, repo: &str) {
    let src = format!("docker://{}/{repo}:{}", berth.addr(), image.tag);
    let out = run(skopeo(["inspect", "--raw", "--tls-verify=false", &src]));
    assert_eq!(
        super::sha256_digest(&out.stdout),
        image.manifest_digest,
        "skopeo inspect --raw {src}: digest of the raw manifest"
    );
    assert_eq!(
        out.stdout,
        image.manifest_bytes(),
        "skopeo inspect --raw {src}: manifest bytes"
    );
}

/// Everything the registry holds for `repo:tag` matches the source image.
pub fn assert_registry_has(berth: &dyn Registry, image: &TestImage, repo: &str) {
    let (digest, bytes, manifest) = registry_manifest(berth, repo, &image.tag);
    assert_eq!(
        digest, image.manifest_digest,
        "manifest digest of {repo}:{}",
        image.tag
    );
    assert_eq!(
        bytes,
        image.manifest_bytes(),
        "manifest bytes of {repo}:{}",
        image.tag
    );
    // By digest too.
    let (by_digest, _, _) = registry_manifest(berth, repo, &image.manifest_digest);
    assert_eq!(by_digest, image.manifest_digest);
    let mut blobs = vec![manifest["config"].clone()];
    blobs.extend(
        manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .cloned(),
    );
    for blob in blobs {
        assert_blob(
            berth,
            repo,
            blob["digest"].as_str().unwrap(),
            blob["size"].as_u64().unwrap(),
        );
    }
    let tags = tags(berth, repo);
    assert_eq!(tags["name"], repo, "tags list name: {tags}");
    let list: Vec<&str> = tags["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        list.contains(&image.tag.as_str()),
        "tag {} missing from {tags}",
        image.tag
    );
}

/// Pulls `repo:tag` into a fresh OCI layout and checks every digest (and
/// every blob's content) against the source image.
pub fn skopeo_pull_and_compare(berth: &dyn Registry, image: &TestImage, repo: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let layout = tmp.path().join("pulled");
    let src = format!("docker://{}/{repo}:{}", berth.addr(), image.tag);
    let dest = format!("oci:{}:{}", layout.display(), image.tag);
    // --preserve-digests: without it skopeo gzips uncompressed layers when
    // writing an OCI layout, which would change every digest.
    run(skopeo([
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &src,
        &dest,
    ]));

    let (digest, bytes, manifest) = images::read_layout(&layout, &image.tag);
    assert_eq!(digest, image.manifest_digest, "pulled manifest digest");
    assert_eq!(bytes, image.manifest_bytes(), "pulled manifest bytes");
    assert_eq!(
        manifest["config"]["digest"],
        image.config_digest.as_str(),
        "pulled config digest"
    );
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("layer digest").to_string())
        .collect();
    assert_eq!(layers, image.layer_digests, "pulled layer digests");
    // The blobs on disk really have those digests.
    for digest in std::iter::once(&image.config_digest).chain(&image.layer_digests) {
        let path = images::blob_path(&layout, digest);
        assert_eq!(
            &images::sha256_file(&path),
            digest,
            "content of pulled blob {}",
            path.display()
        );
    }
    let config: Value = serde_json::from_slice(
        &fs::read(images::blob_path(&layout, &image.config_digest)).unwrap(),
    )
    .expect("config JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!(image.diff_ids),
        "pulled config diff_ids"
    );
}

/// Push with skopeo, check what the registry holds, pull and compare.
pub fn skopeo_roundtrip(berth: &dyn Registry, image: TestImage, repo: &str) {
    let start = Instant::now();
    skopeo_push(berth, &image, repo);
    assert_registry_has(berth, &image, repo);
    skopeo_inspect_raw(berth, &image, repo);
    skopeo_pull_and_compare(berth, &image, repo);
    eprintln!(
        "skopeo round trip of {} ({} layers) took {:.1?}",
        image.name,
        image.layer_digests.len(),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// docker
// ---------------------------------------------------------------------------

/// A private dockerd in a temp dir under /tmp; killed (with its process
/// group) on drop, even when the test panics.
pub struct Dockerd {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    host: String,
}

impl Dockerd {
    pub fn start() -> Self {
        Self::start_config(None)
    }

    /// A private dockerd with `daemon_json` as its `--config-file` (e.g.
    /// `{"registry-mirrors": [...], "insecure-registries": [...]}`); it
    /// must not repeat an option [`Dockerd::start`] passes as a flag.
    pub fn start_with(daemon_json: &Value) -> Self {
        Self::start_config(Some(daemon_json))
    }

    fn start_config(daemon_json: Option<&Value>) -> Self {
        require("dockerd");
        require("docker");
        let dir = short_tempdir("bd");
        let d = dir.path().to_path_buf();
        let host = format!("unix://{}/docker.sock", d.display());
        assert!(host.len() < 100, "docker socket path too long: {host}");
        for sub in ["data", "exec", "cli"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        let mut dockerd_cmd = Command::new(require("dockerd"));
        if let Some(config) = daemon_json {
            let path = d.join("daemon.json");
            fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
            dockerd_cmd.arg("--config-file").arg(path);
        }
        let child = dockerd_cmd
            .arg("-H")
            .arg(&host)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn dockerd");
        let mut dockerd = Self {
            dir: Some(dir),
            child: Some(child),
            host,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = exec(dockerd.cmd(["version"]), Duration::from_secs(30));
            if out.status.success() {
                break;
            }
            let exited = dockerd
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("wait dockerd");
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "private dockerd did not come up ({exited:?}); last `docker version`: {}\n--- dockerd.log ---\n{}",
                    out.describe(),
                    fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn cmd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut cmd = command("docker", ["-H", &self.host]);
        cmd.env("DOCKER_CONFIG", self.path().join("cli")).args(args);
        cmd
    }

    /// Runs `docker <args>`, which must succeed; returns trimmed stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        run(self.cmd(args)).stdout_str().trim().to_string()
    }

    pub fn image_id(&self, image: &str) -> String {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", image])
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // SAFETY: signals to the process group we created for dockerd.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above; also reaps stragglers in the group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            // containerd started by dockerd runs in its own session; make sure
            // it is gone too (only if it is really ours).
            if let Ok(pid) = fs::read_to_string(dir.path().join("exec/containerd/containerd.pid"))
                && let Ok(pid) = pid.trim().parse::<i32>()
                && fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains(&*dir.path().to_string_lossy())
                })
            {
                // SAFETY: kill(2) on a containerd that belongs to our dockerd.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(200));
            }
            unmount_below(dir.path());
            let _ = fs::remove_dir_all(dir.path());
        }
    }
}

/// The seed flow: docker load, tag, push, catalog and tags list, rmi, pull,
/// same image ID.
pub fn docker_seed_flow(berth: &dyn Registry) {
    require("skopeo");
    let image = images::small();
    let dockerd = Dockerd::start();

    let archive = dockerd.path().join("small.docker.tar");
    run(skopeo([
        "copy".to_string(),
        image.oci_ref(),
        format!("docker-archive:{}:test/small:v1", archive.display()),
    ]));

    let loaded = dockerd.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        loaded.contains("test/small:v1"),
        "docker load output: {loaded}"
    );
    let id = dockerd.image_id("test/small:v1");
    assert!(id.starts_with("sha256:"), "image id {id}");

    let target = format!("{}/app:1", berth.addr());
    dockerd.docker(&["tag", "test/small:v1", &target]);
    let pushed = dockerd.docker(&["push", &target]);

    assert_eq!(
        catalog(berth),
        json!({"repositories": ["app"]}),
        "catalog after docker push"
    );
    assert_eq!(
        tags(berth, "app"),
        json!({"name": "app", "tags": ["1"]}),
        "tags after docker push"
    );
    let (digest, _, manifest) = registry_manifest(berth, "app", "1");
    assert!(
        pushed.contains(&digest),
        "docker push output should name digest {digest}: {pushed}"
    );
    assert_eq!(
        manifest["config"]["digest"],
        id.as_str(),
        "config digest in registry = docker image ID"
    );
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_blob(
            berth,
            "app",
            layer["digest"].as_str().unwrap(),
            layer["size"].as_u64().unwrap(),
        );
    }

    dockerd.docker(&["rmi", &target, "test/small:v1"]);
    let gone = exec(
        dockerd.cmd(["image", "inspect", &id]),
        Duration::from_secs(60),
    );
    assert!(
        !gone.status.success(),
        "image {id} still present after rmi: {}",
        gone.describe()
    );

    dockerd.docker(&["pull", &target]);
    assert_eq!(
        dockerd.image_id(&target),
        id,
        "image ID after pull equals the loaded one"
    );
    let repo_digests = dockerd.docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &target,
    ]);
    assert!(
        repo_digests.contains(&format!("{}/app@{digest}", berth.addr())),
        "RepoDigests {repo_digests} should contain {}/app@{digest}",
        berth.addr()
    );
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

pub struct Podman {
    dir: Option<tempfile::TempDir>,
}

impl Podman {
    pub fn new() -> Self {
        require("podman");
        let dir = short_tempdir("bp");
        for sub in ["root", "run", "tmp"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn cmd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let d = self.path();
        let mut cmd = command("podman", ["--root"]);
        cmd.arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .env("TMPDIR", d.join("tmp"))
            .args(args);
        cmd
    }

    pub fn podman(&self, args: &[&str]) -> String {
        run(self.cmd(args)).stdout_str().trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            unmount_below(dir.path());
            let _ = fs::remove_dir_all(dir.path());
        }
    }
}

/// podman pull from an OCI layout, push, rmi, pull again: same IDs and digests.
pub fn podman_flow(berth: &dyn Registry) {
    let image = images::small();
    let podman = Podman::new();

    // podman names the pulled image after the layout's path, which must be
    // lowercase; the checkout (and so the image cache) may not be. Pull
    // through a lowercase symlink instead.
    let link = std::path::PathBuf::from(format!("/tmp/berth-podman-oci-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&image.layout, &link).expect("symlink the OCI layout");
    let pulled = podman.podman(&["pull", &format!("oci:{}:{}", link.display(), image.tag)]);
    let _ = fs::remove_file(&link);
    let id = pulled.lines().last().unwrap_or_default().to_string();
    assert_eq!(
        format!("sha256:{id}"),
        image.config_digest,
        "podman image ID = config digest"
    );

    let target = format!("{}/pod:1", berth.addr());
    let digest_file = podman.path().join("pushed.digest");
    podman.podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digest_file.to_str().unwrap(),
        &id,
        &format!("docker://{target}"),
    ]);
    let pushed_digest = fs::read_to_string(&digest_file)
        .expect("podman --digestfile")
        .trim()
        .to_string();

    assert_eq!(
        tags(berth, "pod"),
        json!({"name": "pod", "tags": ["1"]}),
        "tags after podman push"
    );
    let (digest, _, manifest) = registry_manifest(berth, "pod", "1");
    assert_eq!(
        digest, pushed_digest,
        "registry manifest digest = podman's pushed digest"
    );
    assert_eq!(
        manifest["config"]["digest"],
        image.config_digest.as_str(),
        "config digest"
    );
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_blob(
            berth,
            "pod",
            layer["digest"].as_str().unwrap(),
            layer["size"].as_u64().unwrap(),
        );
    }

    podman.podman(&["rmi", "-f", &id]);
    let exists = exec(
        podman.cmd(["image", "exists", &id]),
        Duration::from_secs(60),
    );
    assert!(
        !exists.status.success(),
        "image {id} still present after rmi: {}",
        exists.describe()
    );

    let pulled = podman.podman(&["pull", "--tls-verify=false", &target]);
    assert_eq!(
        pulled.lines().last().unwrap_or_default(),
        id,
        "image ID after pull"
    );
    let local_digest = podman.podman(&["image", "inspect", "--format", "{{.Digest}}", &target]);
    assert_eq!(
        local_digest, digest,
        "podman's recorded digest = registry manifest digest"
    );
}
