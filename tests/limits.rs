//! Connection limits: an oversized request head, a client that never
//! finishes its head (slowloris), one that stalls in the middle of a body,
//! and one that opens too many uploads at once. Each gets a clear answer
//! or a closed connection, and the server keeps serving everyone else.
//! Behind a trusted load balancer, each client behind it is counted on
//! its own; nobody else can choose the address they are counted as.

mod common;

use common::Berth;
use reqwest::blocking::Client;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn limits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (format!("BERTH_LIMITS_{k}"), v.to_string()))
        .collect()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what it said and how long it took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&said).into_owned(), start.elapsed())
}

/// Starts an upload session in `repo`; returns its path (no scheme, host).
fn start_upload(http: &Client, berth: &Berth, repo: &str) -> String {
    let resp = http
        .post(format!("{}/v2/{repo}/blobs/uploads/", berth.url()))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("location")
        .to_string();
    location
        .strip_prefix(&berth.url())
        .unwrap_or(&location)
        .to_string()
}

/// A PATCH to `path` that declares 1 MiB and sends only `sent` bytes of
/// `fill`, left open.
fn unfinished_patch(berth: &Berth, path: &str, fill: u8, sent: usize) -> TcpStream {
    unfinished_patch_from(berth, path, fill, sent, None)
}

/// [`unfinished_patch`], saying it comes `from` a client behind a proxy
/// (`X-Forwarded-For`).
fn unfinished_patch_from(
    berth: &Berth,
    path: &str,
    fill: u8,
    sent: usize,
    from: Option<&str>,
) -> TcpStream {
    let mut stream = TcpStream::connect(&berth.addr).expect("connect");
    let forwarded = from
        .map(|addr| format!("X-Forwarded-For: {addr}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: x\r\n{forwarded}Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n"
    )
    .expect("send head");
    stream.write_all(&vec![fill; sent]).expect("send some body");
    stream
}

fn still_serving(berth: &Berth) {
    let resp = reqwest::blocking::get(format!("{}/v2/", berth.url())).expect("GET /v2/");
    assert_eq!(resp.status(), 200, "the server keeps serving");
}

#[test]
fn oversized_request_head_gets_431() {
    let berth = Berth::builder()
        .envs(limits(&[("MAX_HEADER_BYTES", "8192")]))
        .start();
    let mut stream = TcpStream::connect(&berth.addr).expect("connect");
    let big = "x".repeat(16 << 10);
    // One write (`write!` makes several, and the server may answer and
    // close between them); should the server still close first, a broken
    // pipe here is it doing its job.
    let head = format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    if let Err(e) = stream.write_all(head.as_bytes()) {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "send: {e}"
        );
    }
    let (said, _) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(said.starts_with("HTTP/1.1 431"), "answer: {said:?}");
    // Just under the cap is fine.
    let fits = "y".repeat(6 << 10);
    let resp = Client::new()
        .get(format!("{}/v2/", berth.url()))
        .header("x-fits", fits)
        .send()
        .expect("GET");
    assert_eq!(resp.status(), 200);
}

#[test]
fn slowloris_is_cut_off_at_the_header_deadline() {
    let berth = Berth::builder()
        .envs(limits(&[("HEADER_TIMEOUT", "2s"), ("IDLE_TIMEOUT", "60s")]))
        .start();
    // Many connections that each trickle an unfinished head.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&berth.addr).expect("connect");
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("send");
            s
        })
        .collect();
    // Meanwhile everyone else is served.
    still_serving(&berth);
    for stream in &mut slow {
        let _ = stream.write_all(b"a");
    }
    for stream in &mut slow {
        let (said, took) = read_until_closed(stream, Duration::from_secs(20));
        assert!(
            took < Duration::from_secs(10),
            "a slow head was held {took:?} (answer {said:?})"
        );
        assert!(
            said.is_empty() || said.starts_with("HTTP/1.1 408"),
            "answer: {said:?}"
        );
    }
    still_serving(&berth);
}

#[test]
fn stalled_upload_body_is_cut_off_and_stores_nothing() {
    let berth = Berth::builder()
        .envs(limits(&[("IDLE_TIMEOUT", "2s")]))
        .start();
    let http = Client::new();
    let path = start_upload(&http, &berth, "stall");
    let mut stream = unfinished_patch(&berth, &path, 7, 1000);
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(30));
    assert!(
        took < Duration::from_secs(15),
        "a stalled body held the connection {took:?}"
    );
    still_serving(&berth);
    // The session did not take a partial chunk as a whole one.
    let status = http
        .get(format!("{}{path}", berth.url()))
        .send()
        .expect("upload status");
    if status.status() == 204 {
        let range = status
            .headers()
            .get("range")
            .and_then(|r| r.to_str().ok())
            .unwrap_or("0-0")
            .to_string();
        assert_ne!(
            range, "0-1048575",
            "a partial chunk was recorded as complete"
        );
    }
    // Nothing the stalled client sent became a blob.
    let partial = common::sha256_digest(&[7u8; 1000]);
    let head = http
        .head(format!("{}/v2/stall/blobs/{partial}", berth.url()))
        .send()
        .expect("HEAD");
    assert_eq!(head.status(), 404);
}

#[test]
fn too_many_uploads_from_one_client_get_429() {
    let berth = Berth::builder()
        .envs(limits(&[
            ("UPLOADS_PER_CLIENT", "2"),
            ("IDLE_TIMEOUT", "60s"),
        ]))
        .start();
    let http = Client::new();
    // Starting an upload (POST) counts too, so start them all first.
    let paths: Vec<String> = (0..3)
        .map(|_| start_upload(&http, &berth, "busy"))
        .collect();
    // Two uploads in flight: heads sent, bodies unfinished.
    let mut open: Vec<TcpStream> = paths[..2]
        .iter()
        .map(|path| unfinished_patch(&berth, path, 1, 4096))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let third = &paths[2];
    let resp = http
        .patch(format!("{}{third}", berth.url()))
        .header("content-type", "application/octet-stream")
        .body(vec![2u8; 1024])
        .send()
        .expect("third PATCH");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().expect("json");
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    // Reads are not uploads: still served.
    still_serving(&berth);
    // When the open uploads end, the slots come back.
    open.clear();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http
            .patch(format!("{}{third}", berth.url()))
            .header("content-type", "application/octet-stream")
            .body(vec![2u8; 1024])
            .send()
            .expect("PATCH again");
        if resp.status() == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots never came back: {}",
            resp.status()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A complete 1 KiB PATCH to `path`, from a client behind a proxy.
fn patch_from(http: &Client, berth: &Berth, path: &str, from: &str) -> reqwest::StatusCode {
    http.patch(format!("{}{path}", berth.url()))
        .header("content-type", "application/octet-stream")
        .header("x-forwarded-for", from)
        .body(vec![3u8; 1024])
        .send()
        .expect("PATCH")
        .status()
}

/// One upload slot per client; this test's two "clients" are the same
/// loopback peer, naming different addresses in `X-Forwarded-For`.
fn one_upload_per_client(trusted_proxies: &str) -> Berth {
    Berth::builder()
        .envs(limits(&[
            ("UPLOADS_PER_CLIENT", "1"),
            ("IDLE_TIMEOUT", "60s"),
        ]))
        .env("BERTH_SERVER_TRUSTED_PROXIES", trusted_proxies)
        .start()
}

#[test]
fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Proxies are configured, but the loopback peer is not one of them.
    let berth = one_upload_per_client("192.0.2.0/24,2001:db8::/32");
    let http = Client::new();
    let paths: Vec<String> = (0..2)
        .map(|_| start_upload(&http, &berth, "spoof"))
        .collect();
    let _open = unfinished_patch_from(&berth, &paths[0], 1, 4096, Some("203.0.113.1"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        patch_from(&http, &berth, &paths[1], "203.0.113.2"),
        429,
        "a client named another address and got a second slot"
    );
}

#[test]
fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let berth = one_upload_per_client("127.0.0.1/32");
    let http = Client::new();
    let paths: Vec<String> = (0..3).map(|_| start_upload(&http, &berth, "lb")).collect();
    let _open = unfinished_patch_from(&berth, &paths[0], 1, 4096, Some("203.0.113.1"));
    std::thread::sleep(Duration::from_millis(500));
    // Another client behind the same balancer has a slot of its own.
    assert_eq!(patch_from(&http, &berth, &paths[1], "203.0.113.2"), 202);
    // The first client still has only one; the balancer's own address
    // (appended by a second proxy on the same host) is skipped.
    assert_eq!(
        patch_from(&http, &berth, &paths[2], "203.0.113.1, 127.0.0.1"),
        429
    );
}

#[test]
fn zero_uploads_per_client_means_unlimited() {
    let berth = Berth::builder()
        .envs(limits(&[
            ("UPLOADS_PER_CLIENT", "0"),
            ("IDLE_TIMEOUT", "60s"),
        ]))
        .start();
    let http = Client::new();
    let paths: Vec<String> = (0..3)
        .map(|_| start_upload(&http, &berth, "free"))
        .collect();
    let _open: Vec<TcpStream> = paths[..2]
        .iter()
        .map(|path| unfinished_patch(&berth, path, 1, 4096))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let resp = http
        .patch(format!("{}{}", berth.url(), paths[2]))
        .header("content-type", "application/octet-stream")
        .body(vec![2u8; 1024])
        .send()
        .expect("third PATCH");
    assert_eq!(resp.status(), 202);
}
