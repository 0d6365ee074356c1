//! The guest sandbox: a guest that traps, spins or exhausts its memory cap
//! costs its own request (a `500` with the spec's error body) and nothing
//! else. The misbehaving guest is `tests/faulty-guest`, served with
//! `berth serve --guest`; the real guest must still push and pull under the
//! default limits.

mod common;

use common::Berth;
use reqwest::blocking::{Client, Response};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Enough for the faulty guest's `/slow-ok` (about 3e8) and far below what
/// a spinning guest burns in a second (about 1e10 on this kind of machine).
const TEST_FUEL: &str = "10000000000";
const TEST_MEMORY_MIB: &str = "16";

/// A spinning guest must be cut off well before this.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(10);

fn faulty_berth() -> Berth {
    Berth::builder()
        .env("BERTH_LIMITS_GUEST_FUEL", TEST_FUEL)
        .env("BERTH_LIMITS_GUEST_MEMORY_MIB", TEST_MEMORY_MIB)
        .args(&[
            "--guest",
            &common::components::faulty_guest().to_string_lossy(),
        ])
        .start()
}

/// Long enough that a guest the budget does not stop makes the test fail
/// instead of hang.
fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Asserts a `500` whose body is the spec's error document with code
/// `UNKNOWN` and a message containing `says`.
fn assert_guest_failure(resp: Response, says: &str) {
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.headers()
            .get("docker-distribution-api-version")
            .and_then(|v| v.to_str().ok()),
        Some("registry/2.0")
    );
    let body: serde_json::Value = resp.json().expect("a JSON error body");
    let errors = body["errors"].as_array().expect("an errors array");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["code"], "UNKNOWN", "{body}");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "message {message:?} should say {says:?}"
    );
}

/// GET `path`, returning the response and how long it took.
fn timed_get(http: &Client, url: &str) -> (Response, Duration) {
    let started = Instant::now();
    let resp = http.get(url).send().expect("request reaches berth");
    (resp, started.elapsed())
}

#[test]
fn a_failing_guest_costs_only_its_request() {
    let mut berth = faulty_berth();
    let pid = berth.pid().expect("berth runs");
    let http = client();
    let base = berth.url();

    for (path, says) in [
        ("/trap", "trapped"),
        ("/oom", "ran out of memory"),
        ("/loop", "exceeded its time budget"),
        // Again, to show each failure left the next request a clean guest.
        ("/trap", "trapped"),
        ("/loop", "exceeded its time budget"),
    ] {
        let (resp, took) = timed_get(&http, &format!("{base}{path}"));
        assert_guest_failure(resp, says);
        assert!(took < CUT_OFF_WITHIN, "{path} took {took:?}");
        let after = http.get(format!("{base}/v2/")).send().expect("still up");
        assert_eq!(after.status(), 200, "after {path}");
    }

    // Real work within the budget is not cut off.
    let (resp, took) = timed_get(&http, &format!("{base}/slow-ok"));
    assert_eq!(resp.status(), 200, "/slow-ok after {took:?}");

    assert!(berth.running(), "berth exited");
    assert_eq!(berth.pid(), Some(pid), "berth restarted");
    let resp = http.get(format!("{base}/v2/")).send().expect("still up");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().expect("body"), "{}");
}

#[test]
fn spinning_guests_do_not_starve_other_requests() {
    // More spinning guests than the machine has cores (and tokio workers):
    // only their fuel yields let anything else run meanwhile.
    let spinners = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut berth = faulty_berth();
    let pid = berth.pid().expect("berth runs");
    let base = berth.url();

    let first_spinner_done: Arc<Mutex<Option<Instant>>> = Arc::default();
    let handles: Vec<_> = (0..spinners)
        .map(|_| {
            let (url, done) = (format!("{base}/loop"), first_spinner_done.clone());
            std::thread::spawn(move || {
                let (resp, took) = timed_get(&client(), &url);
                done.lock().expect("lock").get_or_insert_with(Instant::now);
                (resp, took)
            })
        })
        .collect();

    // Give the spinners time to be inside the guest, then ask for more.
    std::thread::sleep(Duration::from_millis(300));
    let http = client();
    let mut answered = Vec::new();
    for _ in 0..5 {
        let (resp, took) = timed_get(&http, &format!("{base}/v2/"));
        assert_eq!(resp.status(), 200);
        answered.push((Instant::now(), took));
    }
    let (last_answer, _) = *answered.last().expect("five answers");

    for handle in handles {
        let (resp, took) = handle.join().expect("spinner thread");
        assert_guest_failure(resp, "exceeded its time budget");
        assert!(took < 3 * CUT_OFF_WITHIN, "a spinner took {took:?}");
    }
    let first_done = first_spinner_done
        .lock()
        .expect("lock")
        .expect("spinners finished");
    let waits: Vec<Duration> = answered.iter().map(|(_, took)| *took).collect();
    assert!(
        last_answer < first_done,
        "/v2/ answered only once a spinner was stopped (each took {waits:?})"
    );

    assert!(berth.running(), "berth exited");
    assert_eq!(berth.pid(), Some(pid), "berth restarted");
}

#[test]
fn the_registry_guest_pushes_and_pulls_under_the_default_limits() {
    let berth = Berth::start();
    let http = client();
    let base = berth.url();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    // A few MiB, so the upload and the download each take several splices.
    let layer: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    let digest = common::push::image(
        &http,
        &base,
        "sandbox/app",
        "1",
        &config,
        std::slice::from_ref(&layer),
    )
    .expect("push through the real guest");

    let manifest = http
        .get(format!("{base}/v2/sandbox/app/manifests/1"))
        .header("accept", common::push::MANIFEST)
        .send()
        .expect("pull the manifest");
    assert_eq!(manifest.status(), 200);
    let manifest = manifest.bytes().expect("manifest body");
    assert_eq!(common::sha256_digest(&manifest), digest);

    let blob = http
        .get(format!(
            "{base}/v2/sandbox/app/blobs/{}",
            common::sha256_digest(&layer)
        ))
        .send()
        .expect("pull the layer");
    assert_eq!(blob.status(), 200);
    assert!(
        blob.bytes().expect("layer body") == layer,
        "layer bytes differ"
    );
}
