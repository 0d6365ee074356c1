//! Seeing inside a running registry: `/metrics` read by a Prometheus text
//! parser, `/debug/health`, the access log, the debug listener, logins in
//! front of `/metrics`, CORS for browser UIs and registry:2's
//! `http.headers`.

mod common;

use common::metrics::Scrape;
use common::{Berth, free_port, push};
use std::time::{Duration, Instant};

/// The access lines (JSON) in `log` so far.
fn access_lines(log: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "berth::access")
        .collect()
}

/// The access line of the request with this user agent, once written
/// (when its body ended or was dropped).
fn access_line_of(log: &std::path::Path, user_agent: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = access_lines(log)
            .into_iter()
            .find(|l| l["fields"]["user_agent"] == user_agent)
        {
            return line;
        }
        assert!(Instant::now() < deadline, "no access line for {user_agent}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `[auth]` with basic logins for one user, `ops` / `secret`, whose
/// htpasswd file is written into `dir`.
fn basic_logins(dir: &tempfile::TempDir) -> String {
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("secret", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("ops:{hash}\n")).expect("htpasswd");
    format!(
        "[auth]\nmode = \"basic\"\nhtpasswd = {:?}\n",
        htpasswd.display().to_string()
    )
}

fn requests(scrape: &Scrape, handler: &str, code: &str, method: &str) -> f64 {
    scrape.value(
        "registry_http_requests_total",
        &[("handler", handler), ("code", code), ("method", method)],
    )
}

#[test]
fn counters_move_by_what_was_pushed_pulled_and_collected() {
    let berth = Berth::builder()
        .env("BERTH_GC_INTERVAL", "1s")
        .env("BERTH_GC_GRACE", "0s")
        .env("BERTH_GC_UPLOAD_GRACE", "0s")
        .start();
    let http = berth.client();
    let base = berth.url();
    let metrics = format!("{base}/metrics");
    let before = Scrape::of(&http, &metrics);

    let layer = common::content::bytes("observe layer", 300_000);
    let digest = push::image(&http, &base, "obs/app", "v1", b"{\"c\":1}", &[layer]).expect("push");
    for _ in 0..3 {
        let resp = http
            .get(format!("{base}/v2/obs/app/manifests/v1"))
            .header("accept", push::MANIFEST)
            .send()
            .expect("pull");
        assert_eq!(resp.status(), 200);
    }
    let missing = http
        .get(format!("{base}/v2/obs/app/manifests/nope"))
        .send()
        .expect("pull");
    assert_eq!(missing.status(), 404);
    assert_eq!(push::delete_manifest(&http, &base, "obs/app", &digest), 202);

    let after = Scrape::of(&http, &metrics);
    let moved = |handler, code, method| {
        requests(&after, handler, code, method) - requests(&before, handler, code, method)
    };
    assert_eq!(moved("manifest", "201", "put"), 1.0);
    assert_eq!(moved("manifest", "200", "get"), 3.0);
    assert_eq!(moved("manifest", "404", "get"), 1.0);
    assert_eq!(moved("manifest", "202", "delete"), 1.0);
    // Config and layer, each one monolithic POST.
    assert_eq!(moved("blob_upload", "201", "post"), 2.0);
    assert_eq!(
        after.value(
            "registry_http_request_duration_seconds",
            &[("handler", "manifest"), ("method", "get")]
        ) - before.value(
            "registry_http_request_duration_seconds",
            &[("handler", "manifest"), ("method", "get")]
        ),
        4.0,
        "every manifest GET is timed"
    );
    let stored = after.value(
        "registry_storage_action_seconds",
        &[("driver", "filesystem"), ("action", "commit")],
    );
    assert!(stored >= 3.0, "blob commits timed: {stored}");
    assert!(after.value("berth_guest_instantiation_seconds", &[]) >= 9.0);
    assert!(after.has("registry_http_in_flight_requests"));

    // The collector (every second, zero grace) frees the manifest, the
    // config and the layer.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = Scrape::of(&http, &metrics);
        let removed = scrape.value("berth_gc_blobs_removed_total", &[]);
        if removed >= 3.0 {
            assert_eq!(removed, 3.0, "only the deleted image's blobs");
            assert!(scrape.value("berth_gc_passes_total", &[("outcome", "ok")]) >= 1.0);
            assert!(scrape.value("berth_gc_bytes_removed_total", &[]) >= 300_000.0);
            assert!(scrape.value("berth_gc_last_pass_timestamp_seconds", &[]) > 1.7e9);
            break;
        }
        assert!(Instant::now() < deadline, "no pass removed the blobs");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn per_repository_bytes_are_shown_without_logins() {
    let berth = Berth::start();
    let http = berth.client();
    let base = berth.url();
    let layer = common::content::bytes("per repo", 50_000);
    push::image(&http, &base, "sized/one", "1", b"{\"s\":1}", &[layer]).expect("push");
    // The gauges are read at start and after each collector pass; a
    // restart reads them again.
    let mut berth = berth;
    berth.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = Scrape::of(&http, &format!("{}/metrics", berth.url()));
        let bytes = scrape.value(
            "berth_repository_stored_bytes",
            &[("repository", "sized/one")],
        );
        if bytes > 0.0 {
            assert!(bytes >= 50_000.0, "{bytes}");
            break;
        }
        assert!(Instant::now() < deadline, "no per-repository bytes");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_access_log_has_one_json_line_per_request() {
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("berth.log");
    let berth = Berth::builder()
        .log(&log)
        .env("BERTH_LOG_FORMAT", "json")
        .start();
    let http = berth.client();
    let base = berth.url();
    let blob = common::content::bytes("logged", 12_345);
    let digest = push::blob(&http, &base, "logged/repo", &blob).expect("push");
    let resp = http
        .get(format!("{base}/v2/logged/repo/blobs/{digest}?secret=1"))
        .header("user-agent", "observe-test/1.0")
        .send()
        .expect("pull");
    assert_eq!(resp.bytes().expect("body").len(), 12_345);
    let line = access_line_of(&log, "observe-test/1.0");
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], format!("/v2/logged/repo/blobs/{digest}"));
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["bytes_out"], 12_345);
    assert_eq!(fields["client"], "127.0.0.1");
    assert_eq!(fields["complete"], true);
    assert!(fields["micros"].as_u64().is_some());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("secret=1"),
        "query strings stay out of the log"
    );
    let pushed = access_lines(&log)
        .iter()
        .filter(|l| l["fields"]["method"] == "POST")
        .count();
    assert_eq!(pushed, 1, "one line per request");
}

#[test]
fn a_client_that_stops_reading_leaves_an_incomplete_line_and_no_request_in_flight() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("berth.log");
    let berth = Berth::builder()
        .log(&log)
        .env("BERTH_LOG_FORMAT", "json")
        .start();
    let http = berth.client();
    let base = berth.url();
    let blob = common::content::bytes("cut short", 32 << 20);
    let digest = push::blob(&http, &base, "cut/short", &blob).expect("push");
    {
        let mut conn = std::net::TcpStream::connect(&berth.addr).expect("connect");
        write!(
            conn,
            "GET /v2/cut/short/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nUser-Agent: quitter\r\n\r\n",
            berth.addr
        )
        .expect("request");
        let mut first = [0u8; 64 << 10];
        conn.read_exact(&mut first).expect("the first bytes");
        // Dropped here: the connection closes with most of the body unsent.
    }
    let line = access_line_of(&log, "quitter");
    assert_eq!(line["fields"]["complete"], false, "{line}");
    let sent = line["fields"]["bytes_out"].as_u64().expect("bytes_out");
    assert!(sent < 32 << 20, "{sent}");
    let scrape = Scrape::of(&http, &format!("{base}/metrics"));
    assert_eq!(
        scrape.value("registry_http_in_flight_requests", &[("handler", "blob")]),
        0.0
    );
}

#[test]
fn the_debug_listener_takes_metrics_and_health_off_the_main_one() {
    let debug = format!("127.0.0.1:{}", free_port());
    let berth = Berth::builder()
        .env("BERTH_SERVER_OBSERVE_DEBUG_ADDR", &debug)
        .start();
    let http = berth.client();
    let main = berth.url();
    let on_main = http.get(format!("{main}/metrics")).send().expect("main");
    assert_eq!(on_main.status(), 404, "metrics live on the debug address");
    let health = http
        .get(format!("http://{debug}/debug/health"))
        .send()
        .expect("debug health");
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().expect("json");
    assert_eq!(body, serde_json::json!({}), "registry:2's healthy answer");
    http.get(format!("{main}/v2/")).send().expect("base");
    let scrape = Scrape::of(&http, &format!("http://{debug}/metrics"));
    assert!(requests(&scrape, "base", "200", "get") >= 1.0);
}

#[test]
fn debug_health_names_the_failing_store() {
    let dir = tempfile::tempdir().expect("temp");
    let root = dir.path().join("data");
    let berth = Berth::builder()
        .root(&root)
        .env("BERTH_SERVER_HEALTH_INTERVAL", "100ms")
        .start();
    let http = berth.client();
    // The blob store's upload directory made unwritable: the write probe
    // fails, three times in a row.
    let uploads = root.join("uploads");
    std::fs::remove_dir_all(&uploads).expect("remove uploads");
    std::fs::write(&uploads, b"not a directory").expect("block uploads");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http
            .get(format!("{}/debug/health", berth.url()))
            .send()
            .expect("health");
        if resp.status() == 503 {
            let body: serde_json::Value = resp.json().expect("json");
            let failing = body["storagedriver_filesystem"]
                .as_str()
                .unwrap_or_default();
            assert!(failing.contains("checks failed"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "health never turned 503");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_logins_metrics_need_one_and_hide_repository_names() {
    let dir = tempfile::tempdir().expect("temp");
    let berth = Berth::builder().config(&basic_logins(&dir)).start();
    let http = berth.client();
    let url = format!("{}/metrics", berth.url());
    let anonymous = http.get(&url).send().expect("anonymous");
    assert_eq!(anonymous.status(), 401);
    let resp = http
        .get(&url)
        .basic_auth("ops", Some("secret"))
        .send()
        .expect("logged in");
    assert_eq!(resp.status(), 200);
    let text = resp.text().expect("text");
    assert!(text.contains("registry_http_requests_total"), "{text}");
    assert!(
        !text.contains("berth_repository_stored_bytes"),
        "repository names stay on the debug address"
    );
}

#[test]
fn cors_preflight_passes_without_login_and_headers_are_added() {
    let dir = tempfile::tempdir().expect("temp");
    let berth = Berth::builder()
        .config(&format!(
            "{}[server.cors]\nallowed_origins = [\"https://ui.example\"]\nallow_credentials = true\n\
             [server.headers]\nX-Content-Type-Options = [\"nosniff\"]\n",
            basic_logins(&dir)
        ))
        .start();
    let http = berth.client();
    let base = berth.url();
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v2/_catalog"))
        .header("origin", "https://ui.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .expect("preflight");
    assert_eq!(preflight.status(), 200, "no login asked of a preflight");
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://ui.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );

    let get = http
        .get(format!("{base}/v2/_catalog"))
        .header("origin", "https://ui.example")
        .basic_auth("ops", Some("secret"))
        .send()
        .expect("catalog");
    assert_eq!(get.status(), 200);
    let h = get.headers();
    assert_eq!(h["access-control-allow-origin"], "https://ui.example");
    assert!(
        h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Docker-Content-Digest")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");

    let foreign = http
        .get(format!("{base}/v2/"))
        .header("origin", "https://evil.example")
        .send()
        .expect("foreign");
    assert_eq!(foreign.status(), 401, "a foreign origin is not let in");
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(foreign.headers()["x-content-type-options"], "nosniff");
}

#[test]
fn metrics_and_access_logs_can_be_switched_off() {
    let dir = tempfile::tempdir().expect("temp");
    let log = dir.path().join("berth.log");
    let berth = Berth::builder()
        .log(&log)
        .env("BERTH_LOG_FORMAT", "json")
        .env("BERTH_SERVER_OBSERVE_METRICS", "false")
        .env("BERTH_LOG_ACCESS", "false")
        .start();
    let resp = berth
        .client()
        .get(format!("{}/metrics", berth.url()))
        .send()
        .expect("metrics");
    assert_eq!(resp.status(), 404);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("berth is serving"),
        "the log is written: {text}"
    );
    assert!(!text.contains("berth::access"), "{text}");
}
