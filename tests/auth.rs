//! Authentication and access over HTTPS, driven by the real clients: a
//! server with `--tls-self-signed`, htpasswd users, rules per repository,
//! and Berth's own token endpoint. The matrix: anonymous, wrong password,
//! right password, and tokens with and without the needed scope, through
//! the protocol itself, skopeo and the docker CLI (whose daemon has no
//! `insecure-registries` setting and trusts Berth only through the CA in
//! `/etc/docker/certs.d`).

mod common;

use common::clients::{self, Dockerd, exec, run, skopeo};
use common::{Berth, images};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALICE: (&str, &str) = ("alice", "alice-Pa55word!");
const BOB: (&str, &str) = ("bob", "bob-Pa55word!");

/// alice may do anything in team/**, bob may only pull there; public/**
/// is pullable by everyone, anonymous callers included, and alice pushes it;
/// private/** is alice's alone.
const RULES: &str = r#"
[[auth.rules]]
repositories = ["team/**"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[auth.rules]]
repositories = ["team/**"]
users = ["bob"]
actions = ["pull"]

[[auth.rules]]
repositories = ["public/**"]
users = ["*"]
anonymous = true
actions = ["pull"]

[[auth.rules]]
repositories = ["public/**"]
users = ["alice"]
actions = ["push"]

[[auth.rules]]
repositories = ["private/**"]
users = ["alice"]
actions = ["pull", "push"]
"#;

/// A Berth serving HTTPS on all interfaces, reached through a
/// non-loopback address (docker treats 127.0.0.0/8 as insecure and would
/// skip verification there, so the address proves the certificate).
struct SecureBerth {
    host: String,
    ca: PathBuf,
    log: PathBuf,
    berth: Berth,
    _dir: tempfile::TempDir,
}

impl SecureBerth {
    fn start(extra_config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let htpasswd = dir.path().join("htpasswd");
        let entries: String = [ALICE, BOB]
            .iter()
            .map(|(user, password)| {
                // $2y$, as `htpasswd -B` writes.
                let hash = bcrypt::hash_with_result(password, 5)
                    .expect("bcrypt")
                    .format_for_version(bcrypt::Version::TwoY);
                format!("{user}:{hash}\n")
            })
            .collect();
        std::fs::write(&htpasswd, entries).expect("htpasswd");
        let ip = non_loopback_ipv4();
        let log = dir.path().join("berth.log");
        // Debug logging: secrets must stay out of even the chattiest log.
        let berth = Berth::builder()
            .root(&dir.path().join("data"))
            .config(&format!(
                "[auth]\nhtpasswd = {:?}\n{extra_config}\n{RULES}",
                htpasswd.display().to_string()
            ))
            .listen("0.0.0.0", &ip)
            .tls_self_signed(&ip)
            .log(&log)
            .start();
        Self {
            host: berth.addr.clone(),
            ca: berth.ca(),
            log,
            berth,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.berth.url()
    }

    /// An HTTPS client that trusts only Berth's CA.
    fn client(&self) -> Client {
        self.berth.client()
    }

    /// A directory with `ca.crt`, for skopeo's `--cert-dir`.
    fn cert_dir(&self) -> PathBuf {
        let dir = self._dir.path().join("certs");
        std::fs::create_dir_all(&dir).expect("certs dir");
        std::fs::copy(&self.ca, dir.join("ca.crt")).expect("copy CA");
        dir
    }

    fn token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> (StatusCode, Value) {
        let mut req = self
            .client()
            .get(format!("{}/auth/token", self.url()))
            .query(&[("service", "berth")]);
        for scope in scopes {
            req = req.query(&[("scope", scope)]);
        }
        if let Some((user, password)) = creds {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().expect("token request");
        let status = resp.status();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn token_for(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let (status, body) = self.token(creds, scopes);
        assert_eq!(status, StatusCode::OK, "token for {creds:?}: {body}");
        body["token"].as_str().expect("token field").to_string()
    }
}

/// The first IPv4 address of an interface that is up and not loopback.
fn non_loopback_ipv4() -> String {
    let mut found = None;
    // SAFETY: getifaddrs/freeifaddrs per their contract; we only read the
    // list between the two calls.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        assert_eq!(libc::getifaddrs(&mut list), 0, "getifaddrs");
        let mut cursor = list;
        while !cursor.is_null() {
            let entry = &*cursor;
            let up = entry.ifa_flags & libc::IFF_UP as u32 != 0;
            let loopback = entry.ifa_flags & libc::IFF_LOOPBACK as u32 != 0;
            if up
                && !loopback
                && !entry.ifa_addr.is_null()
                && i32::from((*entry.ifa_addr).sa_family) == libc::AF_INET
            {
                let addr = &*(entry.ifa_addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
                found = Some(ip.to_string());
                break;
            }
            cursor = entry.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found.expect("this test needs a non-loopback IPv4 address (docker skips TLS checks on 127/8)")
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or("")
}

fn challenge(resp: &reqwest::blocking::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[test]
fn protocol_matrix_over_https() {
    let berth = SecureBerth::start("");
    let http = berth.client();
    let url = berth.url();

    // Anonymous: a challenge naming the realm, the service and the scope.
    let resp = http.get(format!("{url}/v2/")).send().expect("GET /v2/");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let realm = format!("Bearer realm=\"{url}/auth/token\",service=\"berth\"");
    assert_eq!(challenge(&resp), realm);
    let resp = http
        .get(format!("{url}/v2/team/app/manifests/1"))
        .send()
        .expect("GET manifest");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp),
        format!("{realm},scope=\"repository:team/app:pull\"")
    );
    assert_eq!(error_code(&resp.json().expect("json")), "UNAUTHORIZED");

    // Wrong password: no token.
    let (status, body) = berth.token(Some((ALICE.0, "wrong")), &["repository:team/app:pull"]);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = berth.token(Some(("mallory", "x")), &["repository:team/app:pull"]);
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Right password: alice's token carries what she asked for; bob's is
    // cut down to pull; an anonymous one to nothing in team/.
    let both = "repository:team/app:pull,push";
    let alice = berth.token_for(Some(ALICE), &[both]);
    let bob = berth.token_for(Some(BOB), &[both]);
    let anonymous = berth.token_for(None, &[both]);

    // alice pushes a blob and a manifest with her token.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = common::sha256_digest(config);
    let push_config = |token: &str, repo: &str| {
        http.post(format!(
            "{url}/v2/{repo}/blobs/uploads/?digest={config_digest}"
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(config.to_vec())
        .send()
        .expect("monolithic upload")
        .status()
    };
    assert_eq!(push_config(&alice, "team/app"), StatusCode::CREATED);
    let manifest = common::content::Manifest::image(&config_digest, config.len()).bytes();
    let put = |token: &str, repo: &str| {
        http.put(format!("{url}/v2/{repo}/manifests/1"))
            .bearer_auth(token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .expect("PUT manifest")
    };
    assert_eq!(put(&alice, "team/app").status(), StatusCode::CREATED);

    // A token without the scope: bob's has no push, alice's names another
    // repository; both get the insufficient_scope challenge and DENIED.
    for (who, token, repo) in [("bob", &bob, "team/app"), ("alice", &alice, "team/other")] {
        let resp = put(token, repo);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{who} on {repo}");
        assert!(
            challenge(&resp).ends_with(&format!(
                "scope=\"repository:{repo}:pull,push\",error=\"insufficient_scope\""
            )),
            "{who}: {}",
            challenge(&resp)
        );
        assert_eq!(error_code(&resp.json().expect("json")), "DENIED");
    }

    // Pulls: bob and alice may, the anonymous token may not.
    let get = |token: &str| {
        http.get(format!("{url}/v2/team/app/manifests/1"))
            .bearer_auth(token)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .expect("GET manifest")
            .status()
    };
    assert_eq!(get(&alice), StatusCode::OK);
    assert_eq!(get(&bob), StatusCode::OK);
    assert_eq!(get(&anonymous), StatusCode::UNAUTHORIZED);

    // Forged and garbage tokens are refused like no token at all.
    let mut forged = alice.clone();
    forged.insert(forged.len() - 5, 'A');
    assert_eq!(get(&forged), StatusCode::UNAUTHORIZED);
    assert_eq!(get("e30.e30.e30"), StatusCode::UNAUTHORIZED);

    // Basic credentials work directly too (curl -u), and wrong ones do not.
    let basic = |creds: (&str, &str)| {
        http.get(format!("{url}/v2/team/app/tags/list"))
            .basic_auth(creds.0, Some(creds.1))
            .send()
            .expect("tags")
            .status()
    };
    assert_eq!(basic(BOB), StatusCode::OK);
    assert_eq!(basic((BOB.0, "nope")), StatusCode::UNAUTHORIZED);

    // The catalog lists only what the caller may pull.
    let alice_public = berth.token_for(Some(ALICE), &["repository:public/x:push"]);
    assert_eq!(push_config(&alice_public, "public/x"), StatusCode::CREATED);
    assert_eq!(put(&alice_public, "public/x").status(), StatusCode::CREATED);
    let catalog = |token: &str| -> Value {
        http.get(format!("{url}/v2/_catalog"))
            .bearer_auth(token)
            .send()
            .expect("catalog")
            .json()
            .expect("json")
    };
    let alice_private = berth.token_for(Some(ALICE), &["repository:private/x:push"]);
    assert_eq!(
        push_config(&alice_private, "private/x"),
        StatusCode::CREATED
    );
    assert_eq!(
        put(&alice_private, "private/x").status(),
        StatusCode::CREATED
    );
    let scope = ["registry:catalog:*"];
    assert_eq!(
        catalog(&berth.token_for(Some(ALICE), &scope))["repositories"],
        serde_json::json!(["private/x", "public/x", "team/app"])
    );
    assert_eq!(
        catalog(&berth.token_for(None, &scope))["repositories"],
        serde_json::json!(["public/x"])
    );
    // Page by page, hidden repositories appear neither in a page nor in its
    // Link (private/x sorts first: a page cut before filtering would end
    // with it and link past it).
    let anonymous_catalog = berth.token_for(None, &scope);
    let mut next = Some("/v2/_catalog?n=1".to_string());
    let (mut seen, mut links) = (Vec::new(), Vec::new());
    while let Some(path) = next.take() {
        assert!(links.len() < 10, "pagination does not end: {links:?}");
        let resp = http
            .get(format!("{url}{path}"))
            .bearer_auth(&anonymous_catalog)
            .send()
            .expect("catalog page");
        assert_eq!(resp.status(), StatusCode::OK);
        if let Some(link) = resp.headers().get("link") {
            let link = link.to_str().expect("ascii").to_string();
            next = link
                .strip_prefix('<')
                .and_then(|l| l.split_once('>'))
                .map(|(target, _)| target.to_string());
            links.push(link);
        }
        let page: Value = resp.json().expect("json");
        let names = page["repositories"].as_array().expect("list").clone();
        assert!(names.len() <= 1, "{page}");
        seen.extend(names);
    }
    assert_eq!(seen, [serde_json::json!("public/x")], "links: {links:?}");
    for link in &links {
        assert!(
            !link.contains("private") && !link.contains("team"),
            "{link}"
        );
    }

    // HTTP/2 is offered through ALPN, HTTP/1.1 still works.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = run(clients::command(
            "curl",
            [
                "-sS",
                flag,
                "--cacert",
                berth.ca.to_str().expect("utf-8"),
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
                &format!("{url}/health"),
            ],
        ));
        assert_eq!(out.stdout_str(), version, "curl {flag}");
    }

    // Neither passwords nor tokens reach the log, even at debug level.
    let log = std::fs::read_to_string(&berth.log).expect("log");
    assert!(
        log.contains("issued a registry token"),
        "log is being written"
    );
    for secret in [ALICE.1, BOB.1, alice.as_str(), bob.as_str()] {
        assert!(!log.contains(secret), "a secret appears in the log");
    }
}

/// skopeo against the HTTPS server, trusting it through `--cert-dir`.
#[test]
fn skopeo_matrix_over_https() {
    let _serial = clients::serial();
    let berth = SecureBerth::start("");
    let image = images::small();
    let certs = berth.cert_dir();
    let certs = certs.to_str().expect("utf-8 path");
    let copy = |creds: Option<(&str, &str)>, src: &str, dest: &str| {
        let mut args = vec!["copy".to_string(), "--preserve-digests".to_string()];
        if dest.starts_with("docker://") {
            args.extend(["--dest-cert-dir".into(), certs.into()]);
            if let Some((u, p)) = creds {
                args.extend(["--dest-creds".into(), format!("{u}:{p}")]);
            } else {
                args.push("--dest-no-creds".into());
            }
        } else {
            args.extend(["--src-cert-dir".into(), certs.into()]);
            if let Some((u, p)) = creds {
                args.extend(["--src-creds".into(), format!("{u}:{p}")]);
            } else {
                args.push("--src-no-creds".into());
            }
        }
        args.extend([src.to_string(), dest.to_string()]);
        exec(skopeo(args), Duration::from_secs(300))
    };
    let team = format!("docker://{}/team/app:{}", berth.host, image.tag);
    let public = format!("docker://{}/public/app:{}", berth.host, image.tag);
    let out_dir = tempfile::tempdir().expect("tmp");
    let pulled = |name: &str| format!("oci:{}:{name}", out_dir.path().display());

    // Anonymous: skopeo fetches an anonymous token, which grants nothing
    // in team/, and the first blob check is refused.
    let anonymous = copy(None, &image.oci_ref(), &team);
    assert!(!anonymous.status.success(), "anonymous push must fail");
    assert!(
        String::from_utf8_lossy(&anonymous.stderr)
            .contains("requested access to the resource is denied"),
        "{}",
        anonymous.describe()
    );
    let wrong = copy(Some((ALICE.0, "wrong")), &image.oci_ref(), &team);
    assert!(!wrong.status.success(), "wrong password must fail");
    let denied = copy(Some(BOB), &image.oci_ref(), &team);
    assert!(!denied.status.success(), "bob may not push to team/");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("denied"),
        "{}",
        denied.describe()
    );

    let pushed = copy(Some(ALICE), &image.oci_ref(), &team);
    assert!(pushed.status.success(), "{}", pushed.describe());
    let pushed = copy(Some(ALICE), &image.oci_ref(), &public);
    assert!(pushed.status.success(), "{}", pushed.describe());

    // bob pulls team/app; anonymous pulls public/app but not team/app.
    let out = copy(Some(BOB), &team, &pulled("bob"));
    assert!(out.status.success(), "{}", out.describe());
    let out = copy(None, &public, &pulled("anon"));
    assert!(out.status.success(), "{}", out.describe());
    let out = copy(None, &team, &pulled("anon-team"));
    assert!(
        !out.status.success(),
        "anonymous pull of team/app must fail"
    );

    // `skopeo login` stores a login the next command uses.
    let authfile = out_dir.path().join("auth.json");
    let authfile = authfile.to_str().expect("utf-8");
    run(skopeo([
        "login",
        "--authfile",
        authfile,
        "--cert-dir",
        certs,
        "-u",
        BOB.0,
        "-p",
        BOB.1,
        &berth.host,
    ]));
    let out = run(skopeo([
        "inspect",
        "--raw",
        "--authfile",
        authfile,
        "--cert-dir",
        certs,
        &team,
    ]));
    assert_eq!(common::sha256_digest(&out.stdout), image.manifest_digest);
    let wrong_login = exec(
        skopeo([
            "login",
            "--authfile",
            authfile,
            "--cert-dir",
            certs,
            "-u",
            BOB.0,
            "-p",
            "nope",
            &berth.host,
        ]),
        Duration::from_secs(60),
    );
    assert!(
        !wrong_login.status.success(),
        "skopeo login with a wrong password"
    );
}

/// The docker CLI over HTTPS with no insecure-registries setting: refused
/// until the CA is in /etc/docker/certs.d, then the login matrix.
#[test]
fn docker_matrix_over_https() {
    let _serial = clients::serial();
    let berth = SecureBerth::start("");
    let dockerd = Dockerd::start();
    let image = images::small();
    let archive = dockerd.path().join("small.docker.tar");
    run(skopeo([
        "copy".to_string(),
        image.oci_ref(),
        format!("docker-archive:{}:test/small:v1", archive.display()),
    ]));
    dockerd.docker(&["load", "-i", archive.to_str().expect("utf-8")]);
    let team = format!("{}/team/app:1", berth.host);
    let public = format!("{}/public/app:1", berth.host);
    dockerd.docker(&["tag", "test/small:v1", &team]);
    dockerd.docker(&["tag", "test/small:v1", &public]);
    let docker = |args: &[&str]| exec(dockerd.cmd(args), Duration::from_secs(300));
    let login = |creds: (&str, &str)| docker(&["login", "-u", creds.0, "-p", creds.1, &berth.host]);

    // Not trusted yet: the certificate is refused (the address is not on
    // docker's default insecure list, so there is no fallback).
    let untrusted = login(ALICE);
    assert!(!untrusted.status.success(), "login before trusting the CA");
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("certificate"),
        "{}",
        untrusted.describe()
    );

    let _trust = TrustedCa::install(&berth.host, &berth.ca);

    let anonymous = docker(&["push", &team]);
    assert!(!anonymous.status.success(), "anonymous push");
    let wrong = login((ALICE.0, "wrong"));
    assert!(!wrong.status.success(), "wrong password");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("unauthorized"),
        "{}",
        wrong.describe()
    );

    let ok = login(ALICE);
    assert!(ok.status.success(), "{}", ok.describe());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Login Succeeded"));
    let pushed = docker(&["push", &team]);
    assert!(pushed.status.success(), "{}", pushed.describe());
    let pushed = docker(&["push", &public]);
    assert!(pushed.status.success(), "{}", pushed.describe());

    // bob: his token has pull but not push for team/.
    dockerd.docker(&["logout", &berth.host]);
    assert!(login(BOB).status.success());
    let bob_push = docker(&["push", &team]);
    assert!(!bob_push.status.success(), "bob may not push");
    assert!(
        String::from_utf8_lossy(&bob_push.stderr).contains("denied"),
        "{}",
        bob_push.describe()
    );
    dockerd.docker(&["rmi", &team, &public]);
    let pulled = docker(&["pull", &team]);
    assert!(pulled.status.success(), "{}", pulled.describe());

    // Anonymous: public/ pulls, team/ does not.
    dockerd.docker(&["logout", &berth.host]);
    dockerd.docker(&["rmi", &team]);
    let pulled = docker(&["pull", &public]);
    assert!(pulled.status.success(), "{}", pulled.describe());
    let refused = docker(&["pull", &team]);
    assert!(!refused.status.success(), "anonymous pull of team/");
}

/// `/etc/docker/certs.d/<host:port>/ca.crt`, removed again on drop.
struct TrustedCa(PathBuf);

impl TrustedCa {
    fn install(host: &str, ca: &Path) -> Self {
        let dir = PathBuf::from("/etc/docker/certs.d").join(host);
        std::fs::create_dir_all(&dir).expect("create certs.d (the tests run as root)");
        std::fs::copy(ca, dir.join("ca.crt")).expect("install CA");
        Self(dir)
    }
}

impl Drop for TrustedCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// registry:2's htpasswd mode: basic challenges, 403 for a login without
/// the access, plain HTTP.
#[test]
fn basic_mode_over_http() {
    let dir = tempfile::tempdir().expect("tmp");
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash(BOB.1, 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("{}:{hash}\n", BOB.0)).expect("write");
    let berth = Berth::builder()
        .config(&format!(
            "[auth]\nmode = \"basic\"\nhtpasswd = {:?}\n[[auth.rules]]\nrepositories = [\"team/**\"]\nusers = [\"bob\"]\nactions = [\"pull\"]\n",
            htpasswd.display().to_string()
        ))
        .start();
    let url = berth.url();
    let http = Client::new();
    let resp = http.get(format!("{url}/v2/")).send().expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&resp), "Basic realm=\"berth\"");
    let as_bob = |method: reqwest::Method, path: &str, password: &str| {
        http.request(method, format!("{url}{path}"))
            .basic_auth(BOB.0, Some(password))
            .send()
            .expect("request")
    };
    assert_eq!(
        as_bob(reqwest::Method::GET, "/v2/", BOB.1).status(),
        StatusCode::OK
    );
    assert_eq!(
        as_bob(reqwest::Method::GET, "/v2/", "wrong").status(),
        StatusCode::UNAUTHORIZED
    );
    // Native endpoints, by the front's route table: health for anyone,
    // usage for a named user only.
    let health = http.get(format!("{url}/health")).send().expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    let anonymous = http
        .get(format!("{url}/berth/v1/usage"))
        .send()
        .expect("usage");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        as_bob(reqwest::Method::GET, "/berth/v1/usage", BOB.1).status(),
        StatusCode::OK
    );
    let resp = as_bob(reqwest::Method::POST, "/v2/team/app/blobs/uploads/", BOB.1);
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "bob may not push");
    assert_eq!(error_code(&resp.json().expect("json")), "DENIED");
    let resp = as_bob(reqwest::Method::GET, "/v2/team/app/tags/list", BOB.1);
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "allowed, and unknown");
    assert_eq!(error_code(&resp.json().expect("json")), "NAME_UNKNOWN");

    // Users added to the file while the server runs can log in (it looks
    // for changes every 2 s); removed ones cannot.
    let carol = ("carol", "carols-password");
    let carol_hash = bcrypt::hash(carol.1, 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("{}:{carol_hash}\n", carol.0)).expect("rewrite");
    let as_carol = || {
        http.get(format!("{url}/v2/"))
            .basic_auth(carol.0, Some(carol.1))
            .send()
            .expect("request")
            .status()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while as_carol() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the new user never got in");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        as_bob(reqwest::Method::GET, "/v2/", BOB.1).status(),
        StatusCode::UNAUTHORIZED,
        "bob was removed from the file"
    );
}

/// A token-mode server over plain HTTP behind a TLS-terminating load
/// balancer: the challenge names the realm the client can reach, as the
/// balancer forwarded it, and only when the balancer is trusted.
#[test]
fn token_realm_follows_a_trusted_proxy_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash(BOB.1, 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("{}:{hash}\n", BOB.0)).expect("write");
    let start = |trusted: &str| {
        Berth::builder()
            .config(&format!(
                "[server]\ntrusted_proxies = [{trusted}]\n[auth]\nhtpasswd = {:?}\n",
                htpasswd.display().to_string()
            ))
            .start()
    };
    let forwarded_challenge = |berth: &Berth| {
        let resp = Client::new()
            .get(format!("{}/v2/", berth.url()))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "registry.example.com")
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .expect("GET /v2/");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        challenge(&resp)
    };

    let behind = start("\"127.0.0.1/32\", \"10.0.0.0/8\"");
    assert_eq!(
        forwarded_challenge(&behind),
        "Bearer realm=\"https://registry.example.com/auth/token\",service=\"berth\""
    );
    // RFC 7239's header says the same.
    let resp = Client::new()
        .get(format!("{}/v2/", behind.url()))
        .header(
            "forwarded",
            "for=203.0.113.9;proto=https;host=registry.example.com",
        )
        .send()
        .expect("GET /v2/");
    assert_eq!(
        challenge(&resp),
        "Bearer realm=\"https://registry.example.com/auth/token\",service=\"berth\""
    );
    // A request that does not come through the balancer's headers gets the
    // server's own URL.
    let resp = Client::new()
        .get(format!("{}/v2/", behind.url()))
        .send()
        .expect("GET /v2/");
    assert_eq!(
        challenge(&resp),
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"berth\"",
            behind.url()
        )
    );

    // The loopback peer is not one of these proxies: its headers are ignored.
    let direct = start("\"192.0.2.0/24\"");
    assert_eq!(
        forwarded_challenge(&direct),
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"berth\"",
            direct.url()
        )
    );
}
