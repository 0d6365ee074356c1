//! Notifications end to end: a webhook receiver run by the test gets
//! registry:2's envelope for pushes, pulls, mounts and deletes; with the
//! receiver down, hanging or refusing connections, and Berth killed and
//! restarted meanwhile, every push and delete still arrives, in order per
//! repository, a redelivery carrying its first id, and pushes stay fast.

mod common;

use common::{Berth, content, push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

/// How the receiver treats a POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200, recording the envelope.
    Up,
    /// 503, recording nothing.
    Down,
    /// Accepts the connection and never answers.
    Hang,
    /// Not listening: connections are refused.
    Refused,
    /// Records the envelope, then answers 503: the sender must send it
    /// again (a receiver whose answer was lost).
    Flaky,
}

/// One POST the receiver accepted.
#[derive(Clone, Debug)]
struct Delivery {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// A webhook receiver on a fixed loopback port, switchable between modes.
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let port = common::free_port();
        let receiver = Receiver {
            port,
            mode: Arc::new(Mutex::new(mode)),
            got: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (mode, got, stop) = (
            receiver.mode.clone(),
            receiver.got.clone(),
            receiver.stop.clone(),
        );
        std::thread::spawn(move || serve(port, &mode, &got, &stop));
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().expect("deliveries").clone()
    }

    /// Every event received so far, in arrival order.
    fn events(&self) -> Vec<Value> {
        self.deliveries()
            .iter()
            .flat_map(|d| d.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until `done(events)` holds; panics with what arrived if it
    /// does not within `limit`.
    fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not there after {limit:?}; received {} events: {}",
                events.len(),
                serde_json::to_string_pretty(&events).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(port: u16, mode: &Mutex<Mode>, got: &Arc<Mutex<Vec<Delivery>>>, stop: &AtomicBool) {
    let mut listener: Option<TcpListener> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = *mode.lock().expect("mode");
        if now == Mode::Refused {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking");
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(l) = &listener else { continue };
        match l.accept() {
            Ok((stream, _)) => {
                let got = got.clone();
                std::thread::spawn(move || handle(stream, now, &got));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads one HTTP/1.1 request and answers it as `mode` says.
fn handle(mut stream: TcpStream, mode: Mode, got: &Mutex<Vec<Delivery>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let status = match mode {
        Mode::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        Mode::Down | Mode::Refused => "503 Service Unavailable",
        Mode::Up | Mode::Flaky => {
            let body = serde_json::from_slice(&buf[head_end..head_end + length])
                .unwrap_or_else(|e| panic!("the envelope is not JSON: {e}"));
            got.lock().expect("deliveries").push(Delivery {
                path,
                headers,
                body,
            });
            if mode == Mode::Flaky {
                "503 Service Unavailable"
            } else {
                "200 OK"
            }
        }
    };
    let _ = stream.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
}

/// A server notifying `receiver`; `timeout` is the endpoint's.
/// `env` picks the metadata store (`BERTH_METADATA_*`).
fn berth(
    receiver: &Receiver,
    root: Option<&Path>,
    env: &[(String, String)],
    timeout: &str,
) -> Berth {
    let config = format!(
        r#"
[[notifications]]
name = "test-hook"
url = "{url}"
timeout = "{timeout}"
threshold = 2
backoff = "100ms"
headers = {{ Authorization = ["Bearer hook-secret"] }}

[[notifications]]
name = "switched-off"
url = "http://127.0.0.1:9/never"
disabled = true
"#,
        url = receiver.url()
    );
    let mut builder = Berth::builder().config(&config).envs(env.to_vec());
    if let Some(root) = root {
        builder = builder.root(root);
    }
    builder.start()
}

/// `POST` then `PUT ?digest=`: a blob through an upload session.
fn upload_in_two_steps(http: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("start upload");
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect("commit upload");
    assert_eq!(resp.status(), 201, "{:?}", resp.text());
    digest
}

fn text<'a>(event: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(event, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

/// The one event with this action on this target (digest or tag).
fn one<'a>(events: &'a [Value], action: &str, repo: &str, key: &str, value: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| {
            text(e, &["action"]) == action
                && text(e, &["target", "repository"]) == repo
                && text(e, &["target", key]) == value
                && (key == "tag" || action != "delete" || text(e, &["target", "tag"]).is_empty())
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {action} of {repo} {key}={value}, got {found:#?}"
    );
    found[0]
}

#[test]
fn pushes_pulls_mounts_and_deletes_arrive_as_registry2_events() {
    let receiver = Receiver::start(Mode::Up);
    let server = berth(&receiver, None, &[], "5s");
    let http = server.client();
    let base = server.url();
    let repo = "notify/app";

    let config = content::bytes("notify config", 321);
    let layer = content::bytes("notify layer", 4096);
    let config_digest = push::blob(&http, &base, repo, &config).expect("config blob");
    let layer_digest = upload_in_two_steps(&http, &base, repo, &layer);
    let manifest = push::image_manifest(
        (&config_digest, config.len()),
        &[(layer_digest.clone(), layer.len())],
    );
    let manifest_digest = sha256_digest(&manifest);
    assert_eq!(push::manifest(&http, &base, repo, "v1", &manifest), 201);

    let pulled = http
        .get(format!("{base}/v2/{repo}/manifests/v1"))
        .header("accept", push::MANIFEST)
        .header("user-agent", "notify-test/1.0")
        .send()
        .expect("pull manifest");
    assert_eq!(pulled.status(), 200);
    let blob = http
        .get(format!("{base}/v2/{repo}/blobs/{layer_digest}"))
        .send()
        .expect("pull blob");
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().expect("blob").len(), layer.len());
    // HEAD is no pull.
    assert!(push::blob_exists(&http, &base, repo, &layer_digest));

    let mounted = http
        .post(format!(
            "{base}/v2/notify/other/blobs/uploads/?mount={layer_digest}&from={repo}"
        ))
        .send()
        .expect("mount");
    assert_eq!(mounted.status(), 201);
    assert_eq!(
        push::delete_manifest(&http, &base, repo, &manifest_digest),
        202
    );

    // config and layer pushed, manifest pushed, 2 pulls, a mount, the
    // manifest deleted and the tag it took with it.
    receiver.wait_for(Duration::from_secs(20), "8 events", |e| e.len() >= 8);
    std::thread::sleep(Duration::from_millis(700));
    let events = receiver.events();
    assert_eq!(events.len(), 8, "{events:#?}");

    let config_push = one(&events, "push", repo, "digest", &config_digest);
    assert_eq!(
        text(config_push, &["target", "mediaType"]),
        "application/octet-stream"
    );
    assert_eq!(config_push["target"]["size"], config.len());
    assert_eq!(config_push["target"]["length"], config.len());
    assert_eq!(text(config_push, &["request", "method"]), "POST");
    let layer_push = one(&events, "push", repo, "digest", &layer_digest);
    assert_eq!(layer_push["target"]["size"], layer.len());
    assert_eq!(text(layer_push, &["request", "method"]), "PUT");
    assert_eq!(
        text(layer_push, &["target", "url"]),
        format!("{base}/v2/{repo}/blobs/{layer_digest}")
    );

    let manifest_push = one(&events, "push", repo, "digest", &manifest_digest);
    assert_eq!(
        text(manifest_push, &["target", "mediaType"]),
        push::MANIFEST
    );
    assert_eq!(manifest_push["target"]["size"], manifest.len());
    assert_eq!(text(manifest_push, &["target", "tag"]), "v1");
    assert_eq!(text(manifest_push, &["request", "method"]), "PUT");
    assert_eq!(
        text(manifest_push, &["target", "url"]),
        format!("{base}/v2/{repo}/manifests/{manifest_digest}")
    );

    let manifest_pull = events
        .iter()
        .find(|e| text(e, &["action"]) == "pull" && text(e, &["target", "tag"]) == "v1")
        .expect("manifest pull");
    assert_eq!(text(manifest_pull, &["target", "digest"]), manifest_digest);
    assert_eq!(
        text(manifest_pull, &["target", "mediaType"]),
        push::MANIFEST
    );
    assert_eq!(manifest_pull["target"]["size"], manifest.len());
    assert_eq!(text(manifest_pull, &["request", "method"]), "GET");
    assert_eq!(
        text(manifest_pull, &["request", "useragent"]),
        "notify-test/1.0"
    );
    let blob_pull = one(&events, "pull", repo, "digest", &layer_digest);
    assert_eq!(blob_pull["target"]["size"], layer.len());

    let mount = one(&events, "mount", "notify/other", "digest", &layer_digest);
    assert_eq!(text(mount, &["target", "fromRepository"]), repo);
    assert_eq!(mount["target"]["size"], layer.len());
    assert_eq!(text(mount, &["request", "method"]), "POST");

    let deleted = one(&events, "delete", repo, "digest", &manifest_digest);
    assert_eq!(text(deleted, &["request", "method"]), "DELETE");
    assert!(deleted["target"].get("size").is_none(), "{deleted}");
    let untagged = one(&events, "delete", repo, "tag", "v1");
    assert_eq!(
        text(untagged, &["request", "id"]),
        text(deleted, &["request", "id"])
    );

    let port = base.rsplit(':').next().expect("port");
    let mut ids = HashSet::new();
    let mut instances = HashSet::new();
    for event in &events {
        assert!(
            ids.insert(text(event, &["id"]).to_owned()),
            "id reused: {event}"
        );
        let timestamp = text(event, &["timestamp"]);
        assert!(
            timestamp.len() == 30 && timestamp.ends_with('Z') && timestamp.contains('T'),
            "timestamp {timestamp:?}"
        );
        assert!(text(event, &["request", "id"]).len() >= 32, "{event}");
        assert!(
            text(event, &["request", "addr"]).starts_with("127.0.0.1:"),
            "{event}"
        );
        assert_eq!(text(event, &["request", "host"]), server.addr);
        // Anonymous: registry:2's empty actor.
        assert_eq!(event["actor"], serde_json::json!({}), "{event}");
        assert!(
            text(event, &["source", "addr"]).ends_with(&format!(":{port}")),
            "{event}"
        );
        instances.insert(text(event, &["source", "instanceID"]).to_owned());
    }
    assert_eq!(instances.len(), 1);
    assert!(instances.iter().all(|i| i.len() == 36), "{instances:?}");

    for delivery in receiver.deliveries() {
        assert_eq!(delivery.path, "/hook");
        assert_eq!(delivery.headers["content-type"], EVENTS_MEDIA_TYPE);
        assert_eq!(delivery.headers["authorization"], "Bearer hook-secret");
    }

    // registry:2's notification metrics, read with a Prometheus parser:
    // 8 events in, 8 delivered, each POST answered 200.
    let scrape = common::metrics::Scrape::of(&http, &format!("{base}/metrics"));
    let value = |name: &str, labels: &[(&str, &str)]| scrape.value(name, labels);
    let events_of = |kind| {
        value(
            "registry_notifications_events_total",
            &[("type", kind), ("endpoint", "test-hook")],
        )
    };
    assert_eq!(events_of("Events"), 8.0);
    assert_eq!(events_of("Successes"), 8.0);
    assert_eq!(events_of("Failures") + events_of("Errors"), 0.0);
    let posts = receiver.deliveries().len() as f64;
    assert_eq!(
        value(
            "registry_notifications_status_total",
            &[("code", "200 OK"), ("endpoint", "test-hook")]
        ),
        posts
    );
}

/// What the test did, in order, for one repository: `(action, key, value)`
/// with key `digest` or `tag`.
type Expected = HashMap<String, Vec<(String, String, String)>>;

/// One image into `repo` (fresh config and layer), noting its events;
/// returns how long the manifest PUT took.
fn push_image(
    http: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    expected: &mut Expected,
) -> (String, Duration) {
    let config = content::bytes(format!("{repo} {tag} config"), 200);
    let layer = content::bytes(format!("{repo} {tag} layer"), 3000);
    let config_digest = push::blob(http, base, repo, &config).expect("config");
    let layer_digest = push::blob(http, base, repo, &layer).expect("layer");
    let manifest = push::image_manifest(
        (&config_digest, config.len()),
        &[(layer_digest.clone(), layer.len())],
    );
    let started = Instant::now();
    assert_eq!(push::manifest(http, base, repo, tag, &manifest), 201);
    let took = started.elapsed();
    let digest = sha256_digest(&manifest);
    let mine = expected.entry(repo.to_owned()).or_default();
    for d in [config_digest, layer_digest, digest.clone()] {
        mine.push(("push".into(), "digest".into(), d));
    }
    (digest, took)
}

fn event_key(event: &Value) -> (String, String, String) {
    let action = text(event, &["action"]).to_owned();
    let tag = text(event, &["target", "tag"]);
    if action == "delete" && !tag.is_empty() {
        (action, "tag".into(), tag.to_owned())
    } else {
        (
            action,
            "digest".into(),
            text(event, &["target", "digest"]).to_owned(),
        )
    }
}

/// Everything expected arrived, in order per repository (first
/// deliveries), and every duplicate is the first delivery again; returns
/// how many were redelivered.
fn check_outage(events: &[Value], expected: &Expected) -> usize {
    let mut first: HashMap<String, &Value> = HashMap::new();
    let mut order: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
    let mut duplicates = 0;
    for event in events {
        let id = text(event, &["id"]).to_owned();
        if let Some(earlier) = first.get(&id) {
            assert_eq!(*earlier, event, "a redelivery differs from the first");
            duplicates += 1;
            continue;
        }
        first.insert(id, event);
        let repo = text(event, &["target", "repository"]).to_owned();
        order.entry(repo).or_default().push(event_key(event));
    }
    for (repo, wanted) in expected {
        assert_eq!(
            order.get(repo),
            Some(wanted),
            "events of {repo} missing or out of order"
        );
    }
    assert_eq!(
        order.len(),
        expected.len(),
        "events of repositories nobody touched: {:?}",
        order.keys().collect::<Vec<_>>()
    );
    eprintln!("{} events, {duplicates} redelivered", first.len());
    duplicates
}

fn run_outage(env: &[(String, String)]) {
    let receiver = Receiver::start(Mode::Hang);
    let root = tempfile::tempdir().expect("root");
    let root = root.path().join("data");
    let mut server = berth(&receiver, Some(&root), env, "3s");
    let http = server.client();
    let base = server.url();
    let mut expected = Expected::new();
    let repos: Vec<String> = (0..3).map(|i| format!("outage/r{i}")).collect();

    // The receiver accepts and never answers: pushes do not wait for it.
    for repo in &repos {
        let (_, took) = push_image(&http, &base, repo, "one", &mut expected);
        assert!(
            took < Duration::from_millis(1500),
            "a manifest PUT took {took:?} with the receiver hanging"
        );
    }
    receiver.set(Mode::Down);
    let mut doomed = Vec::new();
    for repo in &repos {
        let (digest, took) = push_image(&http, &base, repo, "two", &mut expected);
        assert!(
            took < Duration::from_millis(1500),
            "a manifest PUT took {took:?} with the receiver down"
        );
        doomed.push((repo.clone(), digest));
    }
    // SIGKILL: what was acknowledged is in the outbox already.
    server.kill();
    server.restart();
    receiver.set(Mode::Refused);
    for (repo, digest) in &doomed {
        assert_eq!(push::delete_manifest(&http, &base, repo, digest), 202);
        let mine = expected.entry(repo.clone()).or_default();
        mine.push(("delete".into(), "digest".into(), digest.clone()));
        mine.push(("delete".into(), "tag".into(), "two".into()));
    }
    for repo in &repos {
        push_image(&http, &base, repo, "three", &mut expected);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        receiver.events().is_empty(),
        "nothing can have been delivered yet"
    );
    // A graceful restart too, the receiver still away.
    server.restart();
    push_image(&http, &base, &repos[0], "four", &mut expected);

    receiver.set(Mode::Up);
    let total: usize = expected.values().map(Vec::len).sum();
    let events = receiver.wait_for(
        Duration::from_secs(60),
        "every event after the outage",
        |events| {
            events
                .iter()
                .map(|e| text(e, &["id"]))
                .collect::<HashSet<_>>()
                .len()
                >= total
        },
    );
    // Anything still in flight settles.
    std::thread::sleep(Duration::from_millis(800));
    let events = if receiver.events().len() > events.len() {
        receiver.events()
    } else {
        events
    };
    check_outage(&events, &expected);

    // New events keep flowing once caught up; a receiver whose 2xx got
    // lost sees them again, with the same ids.
    receiver.set(Mode::Flaky);
    push_image(&http, &base, &repos[1], "five", &mut expected);
    let total = total + 3;
    receiver.wait_for(Duration::from_secs(20), "redeliveries", |events| {
        events.len() >= total + 3
    });
    receiver.set(Mode::Up);
    receiver.wait_for(
        Duration::from_secs(20),
        "the flaky deliveries accepted",
        |events| events.len() >= total + 6,
    );
    std::thread::sleep(Duration::from_millis(500));
    let redelivered = check_outage(&receiver.events(), &expected);
    assert!(redelivered >= 3, "only {redelivered} redeliveries");
    if env
        .iter()
        .any(|(k, v)| k == "BERTH_METADATA_KIND" && v == "layout")
    {
        // The spool: everything delivered, only the active segment left.
        let spool = root.join(".notifications");
        let segments = std::fs::read_dir(&spool)
            .expect("spool")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".events"))
            .count();
        assert_eq!(segments, 1, "the spool was not trimmed");
    }
}

#[test]
fn a_receiver_down_and_restarts_lose_nothing_with_sqlite() {
    run_outage(&[]);
}

#[test]
fn a_receiver_down_and_restarts_lose_nothing_with_layout_metadata() {
    run_outage(&[("BERTH_METADATA_KIND".into(), "layout".into())]);
}

#[test]
fn a_receiver_down_and_restarts_lose_nothing_with_postgres() {
    let database = berth_storage::conformance::postgres::TestPostgres::start();
    let url = database.create_database("notify_outage");
    run_outage(&[
        ("BERTH_METADATA_KIND".into(), "postgres".into()),
        ("BERTH_METADATA_POSTGRES_URL".into(), url),
    ]);
}

/// With logins, the event names the caller; an endpoint's `ignore` rules
/// keep what it does not want from it, and only from it.
#[test]
fn the_caller_is_the_actor_and_ignore_rules_filter_per_endpoint() {
    use base64::Engine as _;
    let everything = Receiver::start(Mode::Up);
    let manifests_only = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().expect("tmp");
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("alice-pw", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("htpasswd");
    let config = format!(
        r#"
[auth]
mode = "basic"
htpasswd = {htpasswd:?}

[[auth.rules]]
repositories = ["team/**"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[notifications]]
name = "everything"
url = "{all}"
backoff = "100ms"

[[notifications]]
name = "manifests-only"
url = "{some}"
backoff = "100ms"
ignore = {{ actions = ["pull"] }}
ignoredmediatypes = ["application/octet-stream"]
"#,
        htpasswd = htpasswd.display().to_string(),
        all = everything.url(),
        some = manifests_only.url(),
    );
    let server = Berth::builder().config(&config).start();
    let login = base64::engine::general_purpose::STANDARD.encode("alice:alice-pw");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Basic {login}").parse().expect("header"),
    );
    let http = Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let base = server.url();
    let config_blob = content::bytes("actor config", 150);
    let layer = content::bytes("actor layer", 1500);
    let digest = push::image(
        &http,
        &base,
        "team/app",
        "latest",
        &config_blob,
        std::slice::from_ref(&layer),
    )
    .expect("push as alice");
    let pulled = http
        .get(format!("{base}/v2/team/app/manifests/latest"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("pull");
    assert_eq!(pulled.status(), 200);

    let all = everything.wait_for(Duration::from_secs(20), "4 events", |e| e.len() >= 4);
    manifests_only.wait_for(Duration::from_secs(20), "1 event", |e| !e.is_empty());
    std::thread::sleep(Duration::from_millis(700));
    let (all, some) = (
        everything.events().len().max(all.len()),
        manifests_only.events(),
    );
    assert_eq!(all, 4, "{:#?}", everything.events());
    for event in everything.events() {
        assert_eq!(event["actor"]["name"], "alice", "{event}");
    }
    assert_eq!(some.len(), 1, "{some:#?}");
    assert_eq!(text(&some[0], &["action"]), "push");
    assert_eq!(text(&some[0], &["target", "digest"]), digest);
    assert_eq!(text(&some[0], &["target", "tag"]), "latest");
    assert_eq!(some[0]["actor"]["name"], "alice");
}
