//! The web UI (`/ui/`) in a real browser: Debian's chromium driven by
//! playwright-core (tests/ui/*.mjs, `npm ci --prefix tests/ui`), against a
//! Berth holding images pushed over the protocol. The browser finds a
//! repository, opens a tag, sees its layers and a referrer, and deletes a
//! tag; hostile annotations render as text under a strict CSP; with logins
//! on, an anonymous browser sees only public repositories. Screenshots go
//! to `target/test-artifacts/ui/`. The CSRF checks run without a browser.

mod common;

use common::content::{self, Manifest};
use common::{Berth, push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const ALICE: (&str, &str) = ("alice", "alice-Pa55word!");
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `target/test-artifacts/ui/<name>`, emptied.
fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts/ui")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Runs `tests/ui/<script>.mjs` against `url`; its one JSON line.
fn browse(script: &str, url: &str, artifacts: &Path, args: Value) -> Value {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/ui` (tests/run.sh does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: apt-get install chromium (tests/run.sh does)"
    );
    let out = Command::new("node")
        .arg(ui.join(format!("{script}.mjs")))
        .arg(url)
        .arg(artifacts)
        .arg(args.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script}.mjs printed no report\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && report["ok"] == true,
        "{script}.mjs failed: {}\nstderr: {}",
        report["error"].as_str().unwrap_or("(no error)"),
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Uploads `data` to `repo` (once).
fn upload(http: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    if push::blob_exists(http, base, repo, &digest) {
        return digest;
    }
    push::blob(http, base, repo, data).unwrap_or_else(|s| panic!("blob upload to {repo}: {s}"))
}

/// Pushes an image with `layers` and a config holding `config` as its
/// run configuration and history; returns the manifest digest and size.
fn image(
    http: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    layers: &[Vec<u8>],
    config: Value,
    annotations: Option<Value>,
) -> (String, usize) {
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = upload(http, base, repo, &config);
    let mut manifest = Manifest::image(&config_digest, config.len());
    for layer in layers {
        let digest = upload(http, base, repo, layer);
        manifest = manifest.layer(&digest, layer.len());
    }
    if let Some(annotations) = annotations {
        manifest = manifest.field("annotations", annotations);
    }
    let bytes = manifest.bytes();
    let status = push::manifest(http, base, repo, tag, &bytes);
    assert_eq!(status, 201, "push {repo}:{tag}");
    (sha256_digest(&bytes), bytes.len())
}

/// A referrer of `subject` (an SBOM, say) of `artifact_type`.
fn referrer(
    http: &Client,
    base: &str,
    repo: &str,
    subject: (&str, usize),
    artifact_type: &str,
) -> String {
    let empty = upload(http, base, repo, b"{}");
    let body = upload(http, base, repo, b"{\"sbom\":\"contents\"}");
    let bytes = json!({
        "schemaVersion": 2,
        "mediaType": content::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": content::descriptor("application/vnd.oci.empty.v1+json", &empty, 2),
        "layers": [content::descriptor("application/json", &body, 19)],
        "subject": content::descriptor(content::OCI_MANIFEST, subject.0, subject.1),
        "annotations": {"org.opencontainers.image.created": "2026-12-05T00:00:00Z"},
    })
    .to_string()
    .into_bytes();
    let digest = sha256_digest(&bytes);
    assert_eq!(
        push::manifest(http, base, repo, &digest, &bytes),
        201,
        "push referrer"
    );
    digest
}

fn run_config(created_by: &str) -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-12-01T10:00:00Z",
        "config": {
            "Entrypoint": ["/app/server"],
            "Env": ["PATH=/usr/bin"],
            "Labels": {"org.example.team": "registry"},
        },
        "history": [{"created": "2026-12-01T10:00:00Z", "created_by": created_by}],
        "rootfs": {"type": "layers", "diff_ids": []},
    })
}

#[test]
fn browse_search_open_and_delete() {
    let berth = Berth::start();
    let (http, base) = (berth.client(), berth.url());
    let layers = [
        content::bytes("ui-layer-1", 3000),
        content::bytes("ui-layer-2", 5000),
    ];
    let subject = image(
        &http,
        &base,
        "team/webshop",
        "v1",
        &layers,
        run_config("created_by step one"),
        Some(json!({"org.opencontainers.image.title": "webshop"})),
    );
    let old = image(
        &http,
        &base,
        "team/webshop",
        "old",
        &layers[..1],
        run_config("created_by step zero"),
        None,
    );
    // An index over both, for the platforms column and its own page.
    let child = |(digest, size): &(String, usize), arch: &str| {
        let mut d = content::descriptor(content::OCI_MANIFEST, digest, *size);
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [child(&subject, "amd64"), child(&old, "arm64")],
    })
    .to_string()
    .into_bytes();
    let status = http
        .put(format!("{base}/v2/team/webshop/manifests/multi"))
        .header("content-type", OCI_INDEX)
        .body(index)
        .send()
        .expect("push index")
        .status();
    assert_eq!(status, 201, "push index");
    // Another repository sharing a layer, and one the search leaves out.
    image(
        &http,
        &base,
        "team/cache",
        "v1",
        &layers[..1],
        run_config("x"),
        None,
    );
    referrer(
        &http,
        &base,
        "team/webshop",
        (&subject.0, subject.1),
        "application/spdx+json",
    );
    let dir = artifacts("flow");
    let report = browse(
        "flow",
        &base,
        &dir,
        json!({
            "repository": "team/webshop",
            "tag": "v1",
            "layers": 2,
            "referrer_type": "application/spdx+json",
            "doomed": "old",
        }),
    );
    assert!(report["steps"].as_array().is_some_and(|s| s.len() >= 3));
    // The browser's delete is a registry delete: the protocol agrees.
    let tags: Value = http
        .get(format!("{base}/v2/team/webshop/tags/list"))
        .send()
        .and_then(|r| r.json())
        .expect("tags");
    assert_eq!(tags["tags"], json!(["multi", "v1"]));
    assert!(dir.join("5-deleted.png").is_file(), "screenshots saved");
    // The index: its platforms in the tags table, its children on its page.
    let page = |path: &str| {
        http.get(format!("{base}{path}"))
            .send()
            .and_then(|r| r.text())
            .expect("page")
    };
    assert!(page("/ui/repo/team/webshop").contains("linux/amd64, linux/arm64"));
    let index_page = page("/ui/manifest/team/webshop?ref=multi");
    assert!(index_page.contains(&format!("ref=sha256%3A{}", &subject.0[7..])));
    assert!(index_page.contains("linux/arm64"));
}

#[test]
fn hostile_content_renders_as_text() {
    let berth = Berth::start();
    let (http, base) = (berth.client(), berth.url());
    let img = "<img src=x onerror=alert(1)>";
    let script = "<script>alert(2)</script>";
    let (digest, size) = image(
        &http,
        &base,
        "evil/app",
        "latest",
        &[content::bytes("evil-layer", 100)],
        json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"x": script}, "Env": [format!("E={img}")]},
            "history": [{"created_by": format!("RUN echo '{img}'")}],
        }),
        Some(json!({"org.example.note": img, "org.example.script": script})),
    );
    referrer(
        &http,
        &base,
        "evil/app",
        (&digest, size),
        "text/x-<b>bold</b>",
    );
    // A sanity check the browser cannot make: the bytes on the wire.
    let page = http
        .get(format!("{base}/ui/manifest/evil/app?ref=latest"))
        .send()
        .expect("page");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let html = page.text().expect("body");
    assert!(!html.contains(img) && !html.contains(script), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    browse(
        "hostile",
        &base,
        &artifacts("hostile"),
        json!({
            "repository": "evil/app",
            "tag": "latest",
            "texts": [img, script, format!("x={script}"), "text/x-<b>bold</b>"],
        }),
    );
}

#[test]
fn logins_show_only_what_the_caller_may_pull() {
    let dir = tempfile::tempdir().expect("temp dir");
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash(ALICE.1, 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("{}:{hash}\n", ALICE.0)).expect("htpasswd");
    let berth = Berth::builder()
        .config(&format!(
            r#"
[auth]
mode = "basic"
htpasswd = {:?}
[[auth.rules]]
repositories = ["public/**"]
anonymous = true
users = ["*"]
actions = ["pull"]
[[auth.rules]]
repositories = ["**"]
users = ["alice"]
actions = ["pull", "push", "delete"]
"#,
            htpasswd.display().to_string()
        ))
        .start();
    let base = berth.url();
    let alice = Client::builder()
        .default_headers({
            let mut headers = reqwest::header::HeaderMap::new();
            let value = format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{}:{}", ALICE.0, ALICE.1)
                )
            );
            headers.insert(
                reqwest::header::AUTHORIZATION,
                value.parse().expect("header"),
            );
            headers
        })
        .build()
        .expect("client");
    for repo in ["public/tools", "private/secrets"] {
        image(
            &alice,
            &base,
            repo,
            "v1",
            &[content::bytes(repo, 200)],
            run_config("x"),
            None,
        );
    }
    let report = browse(
        "logins",
        &base,
        &artifacts("logins"),
        json!({
            "public": "public/tools",
            "private": "private/secrets",
            "user": ALICE.0,
            "password": ALICE.1,
        }),
    );
    assert_eq!(report["anonymous"], json!(["public/tools"]));
    // Wrong credentials get the browser's login dialog again.
    let wrong = Client::new()
        .get(format!("{base}/ui/"))
        .basic_auth(ALICE.0, Some("wrong"))
        .send()
        .expect("ui");
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic "))
    );
    // An anonymous form POST cannot delete what anonymous may only pull.
    let (token, cookie) = csrf_token(&Client::new(), &base, "public/tools");
    let refused = Client::new()
        .post(format!("{base}/ui/delete"))
        .header("cookie", cookie)
        .form(&[
            ("repository", "public/tools"),
            ("reference", "v1"),
            ("csrf", token.as_str()),
        ])
        .send()
        .expect("post");
    assert_eq!(refused.status(), 401, "anonymous is asked to log in");
    assert_eq!(tags(&alice, &base, "public/tools"), json!(["v1"]));
}

/// The CSRF token of a page and the cookie that goes with it.
fn csrf_token(http: &Client, base: &str, repo: &str) -> (String, String) {
    let resp = http
        .get(format!("{base}/ui/repo/{repo}"))
        .send()
        .expect("page");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let html = resp.text().expect("body");
    let token = cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .expect("cookie value");
    // The page's forms repeat it (when the caller may delete).
    if html.contains("name=\"csrf\"") {
        assert!(html.contains(&format!("value=\"{token}\"")));
    }
    (token, cookie)
}

fn tags(http: &Client, base: &str, repo: &str) -> Value {
    http.get(format!("{base}/v2/{repo}/tags/list"))
        .send()
        .and_then(|r| r.json::<Value>())
        .map(|v| v["tags"].clone())
        .expect("tags")
}

#[test]
fn deletes_need_the_csrf_token_and_our_origin() {
    let berth = Berth::start();
    let (http, base) = (berth.client(), berth.url());
    image(
        &http,
        &base,
        "csrf/app",
        "v1",
        &[content::bytes("csrf", 100)],
        run_config("x"),
        None,
    );
    let (token, cookie) = csrf_token(&http, &base, "csrf/app");
    let post = |fields: &[(&str, String)], cookie: Option<&str>, origin: Option<&str>| {
        let mut req = Client::new().post(format!("{base}/ui/delete")).form(fields);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send().expect("post").status().as_u16()
    };
    let fields = |csrf: &str| {
        [
            ("repository", "csrf/app".to_owned()),
            ("reference", "v1".to_owned()),
            ("csrf", csrf.to_owned()),
        ]
    };
    // No token, a wrong one, no cookie, a foreign origin: refused.
    assert_eq!(post(&fields(""), Some(&cookie), None), 403);
    assert_eq!(post(&fields(&"0".repeat(64)), Some(&cookie), None), 403);
    assert_eq!(post(&fields(&token), None, None), 403);
    assert_eq!(
        post(&fields(&token), Some(&cookie), Some("http://evil.example")),
        403
    );
    assert_eq!(post(&fields(&token), Some(&cookie), Some("null")), 403);
    assert_eq!(
        tags(&http, &base, "csrf/app"),
        json!(["v1"]),
        "nothing deleted"
    );
    // The same form from our own page deletes.
    let own = base.clone();
    let status = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{base}/ui/delete"))
        .header("cookie", &cookie)
        .header("origin", own)
        .form(&fields(&token))
        .send()
        .expect("post")
        .status();
    assert_eq!(status, 303);
    assert_eq!(tags(&http, &base, "csrf/app"), json!([]));
}

#[test]
fn root_redirects_browsers_only() {
    let berth = Berth::start();
    let base = berth.url();
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let browser = http
        .get(format!("{base}/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .expect("get");
    assert!(browser.status().is_redirection());
    assert_eq!(
        browser
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/ui/")
    );
    let client = http.get(format!("{base}/")).send().expect("get");
    assert!(!client.status().is_redirection(), "{}", client.status());
    assert!(
        client.headers().get("content-security-policy").is_none(),
        "registry answers are not UI pages"
    );
}

#[test]
fn deletes_follow_the_server_switches() {
    for config in ["[server]\ndelete = false\n", "[server]\nread_only = true\n"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("data");
        // Content first, on a server that takes pushes.
        {
            let berth = Berth::builder().root(&root).start();
            image(
                &berth.client(),
                &berth.url(),
                "kept/app",
                "v1",
                &[content::bytes("kept", 100)],
                run_config("x"),
                None,
            );
        }
        let berth = Berth::builder().root(&root).config(config).start();
        let (http, base) = (berth.client(), berth.url());
        let (token, cookie) = csrf_token(&http, &base, "kept/app");
        let page = http
            .get(format!("{base}/ui/repo/kept/app"))
            .header("cookie", &cookie)
            .send()
            .and_then(|r| r.text())
            .expect("page");
        assert!(!page.contains("Delete tag"), "{config}: no delete buttons");
        let status = Client::new()
            .post(format!("{base}/ui/delete"))
            .header("cookie", &cookie)
            .header("origin", &base)
            .form(&[
                ("repository", "kept/app"),
                ("reference", "v1"),
                ("csrf", token.as_str()),
            ])
            .send()
            .expect("post")
            .status();
        assert_eq!(status, 405, "{config}: the delete is refused");
        assert_eq!(tags(&http, &base, "kept/app"), json!(["v1"]), "{config}");
    }
}

/// Token mode (the default with `auth.htpasswd`): the browser logs in with
/// basic authentication against the same local users; anonymous callers,
/// whom token mode keeps out of the catalog, are checked per repository.
#[test]
fn token_mode_logins_use_the_local_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("data");
    {
        let berth = Berth::builder().root(&root).start();
        for repo in ["public/tools", "private/secrets"] {
            image(
                &berth.client(),
                &berth.url(),
                repo,
                "v1",
                &[content::bytes(repo, 200)],
                run_config("x"),
                None,
            );
        }
    }
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash(ALICE.1, 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("{}:{hash}\n", ALICE.0)).expect("htpasswd");
    let berth = Berth::builder()
        .root(&root)
        .config(&format!(
            r#"
[auth]
htpasswd = {:?}
[[auth.rules]]
repositories = ["public/**"]
anonymous = true
actions = ["pull"]
[[auth.rules]]
repositories = ["**"]
users = ["alice"]
actions = ["pull"]
"#,
            htpasswd.display().to_string()
        ))
        .start();
    let base = berth.url();
    let listed = |req: reqwest::blocking::RequestBuilder| {
        let html = req.send().and_then(|r| r.text()).expect("page");
        ["public/tools", "private/secrets"]
            .into_iter()
            .filter(|repo| html.contains(&format!("<a href=\"/ui/repo/{repo}\">")))
            .collect::<Vec<_>>()
    };
    let http = Client::new();
    assert_eq!(listed(http.get(format!("{base}/ui/"))), ["public/tools"]);
    assert_eq!(
        listed(
            http.get(format!("{base}/ui/"))
                .basic_auth(ALICE.0, Some(ALICE.1))
        ),
        ["public/tools", "private/secrets"]
    );
    let hidden = http
        .get(format!("{base}/ui/manifest/private/secrets?ref=v1"))
        .send()
        .expect("page");
    assert_eq!(hidden.status(), 404);
    let login = http.get(format!("{base}/ui/login")).send().expect("login");
    assert_eq!(login.status(), 401);
}
