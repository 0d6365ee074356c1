//! registry:2's configuration read by Berth: its `config.yml`, its
//! `REGISTRY_*` variables, what Berth refuses or ignores of it, and a root
//! registry:2 wrote, served in place without any setting.

use crate::common::clients::{assert_registry_has, serial, skopeo_push};
use crate::common::content::bytes;
use crate::common::distribution::Registry2;
use crate::common::{Berth, free_port, images, push, sha256_digest};
use reqwest::blocking::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

/// An htpasswd file with `USER` (bcrypt, as `htpasswd -B` writes it).
fn htpasswd(dir: &Path) -> PathBuf {
    let hash = bcrypt::hash_with_result(PASSWORD, 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{USER}:{hash}\n")).expect("htpasswd");
    path
}

/// registry:2's `config.yml` with htpasswd logins, `delete.enabled` when
/// `delete`.
fn registry2_yaml(dir: &Path, delete: bool) -> PathBuf {
    let delete = if delete {
        "  delete:\n    enabled: true\n"
    } else {
        ""
    };
    let text = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         {delete}http:\n  addr: :5000\nauth:\n  htpasswd:\n    realm: Registry Realm\n    \
         path: {}\n",
        dir.join("unused-root").display(),
        htpasswd(dir).display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, text).expect("config.yml");
    path
}

/// A client that logs in as `USER` on every request.
fn logged_in() -> Client {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {token}").parse().expect("header"),
    );
    Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Pushes a small image to `repo:1`; the manifest digest, or the status.
fn push_small(http: &Client, base: &str, repo: &str) -> Result<String, u16> {
    push::image(
        http,
        base,
        repo,
        "1",
        b"{\"dropin\":1}",
        &[bytes(repo, 4096)],
    )
}

/// What the test cases below check of a server with htpasswd logins:
/// anonymous pushes refused, logged-in pushes stored, and DELETE answered
/// with the returned status and body.
fn logins_then_delete(berth: &Berth) -> (u16, String) {
    let base = berth.url();
    assert_eq!(
        push_small(&Client::new(), &base, "app/anon"),
        Err(401),
        "anonymous push"
    );
    let http = logged_in();
    let digest = push_small(&http, &base, "app/one").expect("logged-in push");
    let resp = http
        .delete(format!("{base}/v2/app/one/manifests/{digest}"))
        .send()
        .expect("DELETE");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn a_registry2_config_yml_behaves_like_the_equivalent_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = registry2_yaml(dir.path(), true);
    let from_yaml = Berth::builder()
        .args(&["--config", &yaml.to_string_lossy()])
        .start();
    let toml = format!(
        "[auth]\nhtpasswd = \"{}\"\nmode = \"basic\"\nrealm = \"Registry Realm\"\n",
        dir.path().join("htpasswd").display()
    );
    let from_toml = Berth::builder().config(&toml).start();
    for berth in [&from_yaml, &from_toml] {
        let (status, body) = logins_then_delete(berth);
        assert_eq!(status, 202, "{body}");
        // The challenge names registry:2's realm: basic logins, as registry:2.
        let resp = Client::new()
            .get(format!("{}/v2/", berth.url()))
            .send()
            .expect("GET /v2/");
        assert_eq!(resp.status(), 401);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            challenge.starts_with("Basic ") && challenge.contains("Registry Realm"),
            "{challenge}"
        );
    }
}

#[test]
fn without_delete_enabled_every_delete_is_unsupported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = registry2_yaml(dir.path(), false);
    let berth = Berth::builder()
        .args(&["--config", &yaml.to_string_lossy()])
        .start();
    let (status, body) = logins_then_delete(&berth);
    assert_eq!(status, 405, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("error body");
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED", "{body}");
    // Blobs and tags alike, and the manifest is still there.
    let http = logged_in();
    let layer = sha256_digest(&bytes("app/one", 4096));
    let resp = http
        .delete(format!("{}/v2/app/one/blobs/{layer}", berth.url()))
        .send()
        .expect("DELETE blob");
    assert_eq!(resp.status(), 405);
    let resp = http
        .get(format!("{}/v2/app/one/manifests/1", berth.url()))
        .send()
        .expect("GET manifest");
    assert_eq!(resp.status(), 200);
    // REGISTRY_STORAGE_DELETE_ENABLED switches them on over the file.
    let berth = Berth::builder()
        .args(&["--config", &yaml.to_string_lossy()])
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .start();
    assert_eq!(logins_then_delete(&berth).0, 202);
}

/// `berth serve` started with only these arguments and variables, its
/// stderr in a file; killed on drop.
struct Plain {
    child: Child,
    log: PathBuf,
}

impl Plain {
    fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = cwd.join("berth.log");
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn berth");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/health` at `base`.
    fn wait_ready(&mut self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("berth exited ({status}): {}", self.log());
            }
            if Client::new()
                .get(format!("{base}/health"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berth did not become ready: {}", self.log());
    }

    /// Waits for the process to stop on its own; its exit status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "berth kept running: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn registry_addr_and_rootdirectory_alone_start_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("var-lib-registry");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut berth = Plain::spawn(
        dir.path(),
        &[],
        &[
            ("REGISTRY_HTTP_ADDR", &addr),
            (
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                &root.to_string_lossy(),
            ),
        ],
    );
    let base = format!("http://{addr}");
    berth.wait_ready(&base);
    push_small(&Client::new(), &base, "lands/here").expect("push");
    let layer = sha256_digest(&bytes("lands/here", 4096));
    let hex = layer.trim_start_matches("sha256:");
    assert!(
        root.join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .is_file(),
        "the layer is under REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"
    );
    assert!(
        !dir.path().join("registry-data").exists(),
        "nothing under Berth's default root"
    );
}

/// `REGISTRY_PROXY_REMOTEURL`: a mirror of the upstream that, like
/// registry:2's, takes no pushes (a push must not stand in for the
/// upstream's image of the same name).
#[test]
fn a_registry2_proxy_serves_the_upstream_and_takes_no_pushes() {
    let upstream = Berth::start();
    let pushed = push_small(&upstream.client(), &upstream.url(), "library/tool")
        .expect("push into the upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let root = dir.path().join("cache");
    let mut berth = Plain::spawn(
        dir.path(),
        &[],
        &[
            ("REGISTRY_HTTP_ADDR", &addr),
            (
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                &root.to_string_lossy(),
            ),
            ("REGISTRY_PROXY_REMOTEURL", &upstream.url()),
        ],
    );
    let base = format!("http://{addr}");
    berth.wait_ready(&base);
    let http = Client::new();
    let pulled = http
        .get(format!("{base}/v2/library/tool/manifests/{pushed}"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("pull through");
    assert_eq!(pulled.status(), 200);
    assert_eq!(sha256_digest(&pulled.bytes().expect("body")), pushed);
    let refused = http
        .post(format!("{base}/v2/mine/blobs/uploads/"))
        .send()
        .expect("POST");
    assert_eq!(refused.status(), 405);
    let body: serde_json::Value = refused.json().expect("error body");
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED", "{body}");
    assert_eq!(
        push::manifest(&http, &base, "library/tool", "mine", b"{}"),
        405,
        "a manifest PUT over the upstream's name"
    );
}

#[test]
fn token_auth_in_a_config_yml_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = dir.path().join("config.yml");
    std::fs::write(
        &yaml,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: \
             127.0.0.1:{}\nauth:\n  token:\n    realm: https://auth.example.com/token\n    \
             service: registry\n    issuer: auth\n    rootcertbundle: /certs/bundle.pem\n",
            dir.path().join("root").display(),
            free_port()
        ),
    )
    .expect("config.yml");
    let mut berth = Plain::spawn(dir.path(), &["--config", &yaml.to_string_lossy()], &[]);
    let status = berth.wait_exit();
    let log = berth.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("auth.token: "), "{log}");
    assert!(log.contains("token authentication"), "{log}");
    assert!(!dir.path().join("root").exists(), "nothing was created");
}

#[test]
fn unsupported_harmless_settings_are_named_in_one_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let yaml = dir.path().join("config.yml");
    std::fs::write(
        &yaml,
        format!(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {addr}\n  \
             secret: s3cret\nnotifications:\n  events:\n    includereferences: true\nredis:\n  \
             addr: localhost:6379\n",
            dir.path().join("root").display(),
        ),
    )
    .expect("config.yml");
    let mut berth = Plain::spawn(dir.path(), &["--config", &yaml.to_string_lossy()], &[]);
    berth.wait_ready(&format!("http://{addr}"));
    let log = berth.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("registry:2 settings Berth ignores"))
        .collect();
    let [warning] = warnings.as_slice() else {
        panic!("one warning: {log}");
    };
    assert!(warning.contains("WARN"), "{warning}");
    for name in ["notifications", "redis", "log.fields"] {
        assert!(warning.contains(name), "{name}: {warning}");
    }
    // Accepted, not ignored: said at INFO.
    assert!(!warning.contains("http.secret"), "{warning}");
    assert!(log.contains("http.secret is not needed"), "{log}");
    drop(berth);
    // `config check` prints the same warning and accepts the file.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&yaml)
        .output()
        .expect("config check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: ")
            && err.contains("registry:2 settings Berth ignores: ")
            && err.contains("notifications"),
        "{err}"
    );
}

#[test]
fn a_root_registry2_wrote_is_served_in_place() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("registry");
    let image = images::small();
    {
        let registry = Registry2::filesystem(&root);
        skopeo_push(&registry, &image, "library/small");
    }
    let log = dir.path().join("berth.log");
    let berth = Berth::builder().root(&root).log(&log).start();
    assert_registry_has(&berth, &image, "library/small");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("serving registry:2's tree in place"), "{log}");
    drop(berth);
    // The maintenance commands take the same root as it is.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["du", "--root"])
        .arg(&root)
        .output()
        .expect("berth du");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("library/small"), "{text}");
    assert!(
        !root.join("metadata.db").exists(),
        "no Berth store beside registry:2's"
    );
}
