//! Garbage collection, fsck and usage against a running server: what GC
//! frees and keeps, a SIGKILL in the middle of a pass, corruption found by
//! fsck, and many pushers racing a collector that never stops.

mod common;

use common::{Berth, push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `berth <args> --root <root>`, run to completion.
fn berth_cmd(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--root")
        .arg(root)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn must_succeed(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Where the default filesystem store keeps a blob.
fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Deterministic filler bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn get_blob_digest(http: &Client, base: &str, repo: &str, digest: &str) -> Option<String> {
    let resp = http
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .ok()?;
    (resp.status() == 200).then(|| sha256_digest(&resp.bytes().unwrap_or_default()))
}

#[test]
fn gc_frees_a_deleted_image_and_keeps_shared_layers() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let shared = bytes(1, 200_000);
    let only_a = bytes(2, 300_000);
    let a = push::image(
        &http,
        &base,
        "team/a",
        "1",
        b"{\"a\":1}",
        &[shared.clone(), only_a.clone()],
    )
    .expect("push a");
    let b = push::image(
        &http,
        &base,
        "team/b",
        "1",
        b"{\"b\":1}",
        std::slice::from_ref(&shared),
    )
    .expect("push b");
    assert_eq!(push::delete_manifest(&http, &base, "team/a", &a), 202);

    let freed: Vec<String> = vec![
        sha256_digest(&only_a),
        sha256_digest(b"{\"a\":1}"),
        a.clone(),
    ];
    let kept: Vec<String> = vec![
        sha256_digest(&shared),
        sha256_digest(b"{\"b\":1}"),
        b.clone(),
    ];
    let dry = must_succeed(berth_gc(&berth.root, &["--dry-run", "--grace", "0s"]));
    for digest in &freed {
        assert!(
            dry.contains(&format!("would remove blob {digest}")),
            "{dry}"
        );
        assert!(
            blob_file(&berth.root, digest).exists(),
            "dry run removed {digest}"
        );
    }
    let out = must_succeed(berth_gc(&berth.root, &["--grace", "0s"]));
    for digest in &freed {
        assert!(out.contains(&format!("removed blob {digest}")), "{out}");
        assert!(
            !blob_file(&berth.root, digest).exists(),
            "{digest} still on disk"
        );
    }
    let freed_bytes = only_a.len() + 7 + manifest_len_of_a(&shared, &only_a);
    assert!(
        out.contains(&format!("removed 3 blobs, {freed_bytes} bytes freed")),
        "{out}"
    );
    for digest in &kept {
        assert!(
            !out.contains(digest.as_str()),
            "kept {digest} listed: {out}"
        );
        assert!(
            blob_file(&berth.root, digest).exists(),
            "{digest} was removed"
        );
    }
    // b still pulls whole; a is gone.
    assert_eq!(
        get_blob_digest(&http, &base, "team/b", &sha256_digest(&shared)),
        Some(sha256_digest(&shared))
    );
    let resp = http
        .get(format!("{base}/v2/team/b/manifests/1"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET b");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        get_blob_digest(&http, &base, "team/a", &sha256_digest(&only_a)),
        None
    );
    // A second pass finds nothing more.
    let again = must_succeed(berth_gc(&berth.root, &["--grace", "0s"]));
    assert!(again.contains("removed 0 blobs"), "{again}");
}

/// The size of the manifest `push::image` wrote for `a`.
fn manifest_len_of_a(shared: &[u8], only_a: &[u8]) -> usize {
    push::image_manifest(
        (&sha256_digest(b"{\"a\":1}"), 7),
        &[
            (sha256_digest(shared), shared.len()),
            (sha256_digest(only_a), only_a.len()),
        ],
    )
    .len()
}

fn berth_gc(root: &Path, args: &[&str]) -> Output {
    let mut all = vec!["gc"];
    all.extend_from_slice(args);
    berth_cmd(root, &all)
}

#[test]
fn fsck_finds_corruption_and_dangling_references_and_repairs_them() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let (l1, l2) = (bytes(10, 100_000), bytes(11, 50_000));
    push::image(
        &http,
        &base,
        "fsck/app",
        "1",
        b"{\"f\":1}",
        &[l1.clone(), l2.clone()],
    )
    .expect("push");
    let clean = must_succeed(berth_cmd(&berth.root, &["fsck"]));
    assert!(clean.contains("0 corrupt, 0 dangling"), "{clean}");

    let (d1, d2) = (sha256_digest(&l1), sha256_digest(&l2));
    let mut corrupted = l1.clone();
    corrupted[5000] ^= 0xff;
    std::fs::write(blob_file(&berth.root, &d1), &corrupted).expect("corrupt a blob");
    std::fs::remove_file(blob_file(&berth.root, &d2)).expect("remove a blob");

    let found = berth_cmd(&berth.root, &["fsck"]);
    let text = stdout(&found);
    assert!(
        !found.status.success(),
        "fsck must fail on a damaged store: {text}"
    );
    assert!(text.contains(&format!("corrupt blob {d1}")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("dangling reference") && l.contains(&d2)),
        "{text}"
    );
    let repaired = must_succeed(berth_cmd(&berth.root, &["fsck", "--repair"]));
    assert!(repaired.contains("(quarantined)"), "{repaired}");
    assert!(
        berth
            .root
            .join("quarantine/sha256")
            .join(d1.trim_start_matches("sha256:"))
            .exists(),
        "corrupt blob kept in quarantine"
    );
    let after = must_succeed(berth_cmd(&berth.root, &["fsck"]));
    assert!(after.contains("0 corrupt, 0 dangling"), "{after}");
    // The server kept serving throughout.
    assert_eq!(get_blob_digest(&http, &base, "fsck/app", &d1), None);
    assert!(
        http.get(format!("{base}/v2/"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    );
}

#[test]
fn gc_killed_mid_pass_leaves_a_consistent_store_and_resumes() {
    const BLOBS: u64 = 400;
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let keep = push::image(
        &http,
        &base,
        "keep/app",
        "1",
        b"{\"k\":1}",
        &[bytes(99, 30_000)],
    )
    .expect("keep");
    let mut doomed = Vec::new();
    for i in 0..BLOBS {
        let digest = push::blob(&http, &base, "doomed", &bytes(1000 + i, 2_000)).expect("blob");
        let resp = http
            .delete(format!("{base}/v2/doomed/blobs/{digest}"))
            .send()
            .expect("unlink");
        assert_eq!(resp.status(), 202);
        doomed.push(digest);
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--grace", "0s", "--upload-grace", "0s", "--root"])
        .arg(&berth.root)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gc");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut removed = 0;
    while removed < 25 {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("removed blob") => removed += 1,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the pass finished before it could be killed; make it longer"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let left = doomed
        .iter()
        .filter(|d| blob_file(&berth.root, d).exists())
        .count();
    assert!(
        left > 0 && left < doomed.len(),
        "killed mid-pass: {left} left"
    );

    let fsck = must_succeed(berth_cmd(&berth.root, &["fsck"]));
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
    let out = must_succeed(berth_gc(
        &berth.root,
        &["--grace", "0s", "--upload-grace", "0s"],
    ));
    assert!(out.contains("resumed"), "{out}");
    let left: Vec<_> = doomed
        .iter()
        .filter(|d| blob_file(&berth.root, d).exists())
        .collect();
    assert!(
        left.is_empty(),
        "{} doomed blobs survived: {out}",
        left.len()
    );
    assert!(berth.root.join("metadata.db").exists());
    let resp = http
        .get(format!("{base}/v2/keep/app/manifests/{keep}"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET kept");
    assert_eq!(resp.status(), 200);
    let fsck = must_succeed(berth_cmd(&berth.root, &["fsck"]));
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
}

#[test]
fn du_and_the_usage_endpoint_report_per_repository_sizes() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let shared = bytes(20, 40_000);
    let own = bytes(21, 10_000);
    push::image(
        &http,
        &base,
        "du/one",
        "1",
        b"{\"u\":1}",
        &[shared.clone(), own.clone()],
    )
    .expect("one");
    push::image(
        &http,
        &base,
        "du/two",
        "v",
        b"{\"u\":2}",
        std::slice::from_ref(&shared),
    )
    .expect("two");
    let usage: Value = http
        .get(format!("{base}/berth/v1/usage"))
        .send()
        .expect("usage")
        .json()
        .expect("usage JSON");
    let one = &usage["repositories"][0];
    assert_eq!(one["name"], "du/one");
    assert_eq!(one["tags"], serde_json::json!(["1"]));
    assert_eq!(one["manifests"], 1);
    let manifest_len = |config: &[u8], layers: &[&Vec<u8>]| {
        let descs: Vec<_> = layers.iter().map(|l| (sha256_digest(l), l.len())).collect();
        push::image_manifest((&sha256_digest(config), config.len()), &descs).len()
    };
    let one_manifest = manifest_len(b"{\"u\":1}", &[&shared, &own]);
    assert_eq!(
        one["size"].as_u64(),
        Some((shared.len() + own.len() + 7 + one_manifest) as u64)
    );
    assert_eq!(
        one["exclusive_size"].as_u64(),
        Some((own.len() + 7 + one_manifest) as u64)
    );
    let cli: Value = serde_json::from_str(&must_succeed(berth_cmd(&berth.root, &["du", "--json"])))
        .expect("du JSON");
    assert_eq!(cli, usage);
}

#[test]
fn read_only_mode_refuses_writes_and_serves_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("data");
    let digest = {
        let berth = Berth::start_at(&root);
        push::blob(&Client::new(), &berth.url(), "ro", b"before read-only").expect("push")
    };
    let berth = Berth::start_with(
        &root,
        vec![("BERTH_SERVER_READ_ONLY".into(), "true".into())],
    );
    let (http, base) = (Client::new(), berth.url());
    let refused = http
        .post(format!("{base}/v2/ro/blobs/uploads/"))
        .send()
        .expect("POST");
    assert_eq!(refused.status(), 405);
    let body: Value = refused.json().expect("error JSON");
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only"))
    );
    for (method, path) in [
        (reqwest::Method::PUT, "/v2/ro/manifests/x"),
        (reqwest::Method::DELETE, &*format!("/v2/ro/blobs/{digest}")),
        (reqwest::Method::PATCH, "/v2/ro/blobs/uploads/x"),
    ] {
        let resp = http
            .request(method, format!("{base}{path}"))
            .send()
            .expect("write");
        assert_eq!(resp.status(), 405, "{path}");
    }
    assert_eq!(
        get_blob_digest(&http, &base, "ro", &digest),
        Some(digest.clone()),
        "reads keep working"
    );
}

/// Pushers (new and shared layers, tag moves, deletes) against a collector
/// that never stops, at zero grace for what it may take. Afterwards every
/// tag pulls whole and nothing unreferenced is left. The iteration count
/// per pusher comes from BERTH_TEST_GC_RACE_ITERATIONS (bench/gc-race.sh runs
/// hundreds).
#[test]
fn gc_races_concurrent_pushes_without_losing_blobs() {
    const PUSHERS: u64 = 4;
    let iterations: u64 = std::env::var("BERTH_TEST_GC_RACE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let berth = Berth::start_env(vec![
        ("BERTH_GC_INTERVAL".into(), "1s".into()),
        ("BERTH_GC_GRACE".into(), "0s".into()),
    ]);
    let root = berth.root.clone();
    let base = berth.url();
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    // A second collector, from the command line, back to back.
    let collector = {
        let (stop, passes, root) = (stop.clone(), passes.clone(), root.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                must_succeed(berth_gc(&root, &["--grace", "0s"]));
                passes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let repos = ["race/a", "race/b", "race/c"];
    // Layers many images share, so they swing between referenced and
    // unreferenced as images come and go: the blobs a collector at zero
    // grace may take while a pusher is about to reuse them.
    let pool: Vec<Vec<u8>> = (0..12).map(|i| bytes(500 + i, 8_000)).collect();
    let started = Instant::now();
    let results: Vec<(u64, u64, Vec<u16>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PUSHERS)
            .map(|p| {
                let (base, pool) = (base.clone(), &pool);
                scope.spawn(move || {
                    let http = Client::new();
                    let mut rng = p * 7919 + 17;
                    let mut next = move |n: u64| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng % n
                    };
                    let (mut pushed, mut retried, mut errors) = (0, 0, Vec::new());
                    let mut mine: Vec<(&str, String)> = Vec::new();
                    for i in 0..iterations {
                        let repo = repos[next(3) as usize];
                        let tag = format!("t{}", next(4));
                        let layers = vec![
                            pool[next(12) as usize].clone(),
                            pool[next(12) as usize].clone(),
                            bytes(p * 1_000_000 + i + 7, 16_000),
                        ];
                        let config = format!("{{\"pusher\":{p},\"i\":{i}}}").into_bytes();
                        let mut attempt = 0;
                        loop {
                            match push::image(&http, &base, repo, &tag, &config, &layers) {
                                Ok(digest) => {
                                    pushed += 1;
                                    mine.push((repo, digest));
                                    break;
                                }
                                Err(status) => {
                                    // Backing off as clients do: at zero grace
                                    // two collectors may take the same shared
                                    // layer again and again between the upload
                                    // and the manifest.
                                    errors.push(status);
                                    attempt += 1;
                                    retried += 1;
                                    assert!(attempt < 20, "push kept failing: {errors:?}");
                                    std::thread::sleep(Duration::from_millis(10 * attempt));
                                }
                            }
                        }
                        // Keep one or two images alive per pusher: pool layers
                        // then often have no manifest left at all.
                        while mine.len() > 1 + next(2) as usize {
                            let (repo, digest) = mine.remove(0);
                            let status = push::delete_manifest(&http, &base, repo, &digest);
                            assert!(status == 202 || status == 404, "delete: {status}");
                        }
                    }
                    (pushed, retried, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pusher"))
            .collect()
    });
    stop.store(true, Ordering::Relaxed);
    collector.join().expect("collector");
    let pushed: u64 = results.iter().map(|r| r.0).sum();
    let retried: u64 = results.iter().map(|r| r.1).sum();
    let statuses: Vec<u16> = results.iter().flat_map(|r| r.2.clone()).collect();
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "pushes failed with server errors: {statuses:?}"
    );

    // Quiet now: one last pass with every grace at zero.
    must_succeed(berth_gc(&root, &["--grace", "0s", "--upload-grace", "0s"]));
    let http = Client::new();
    let mut checked = HashSet::new();
    for repo in repos {
        let tags: Value = http
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .expect("tags")
            .json()
            .expect("tags JSON");
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("tag");
            let resp = http
                .get(format!("{base}/v2/{repo}/manifests/{tag}"))
                .header("accept", push::MANIFEST)
                .send()
                .expect("manifest");
            assert_eq!(resp.status(), 200, "{repo}:{tag}");
            let manifest: Value =
                serde_json::from_slice(&resp.bytes().expect("body")).expect("JSON");
            let config = manifest["config"]["digest"].as_str().expect("config");
            for digest in std::iter::once(config).chain(
                manifest["layers"]
                    .as_array()
                    .expect("layers")
                    .iter()
                    .filter_map(|l| l["digest"].as_str()),
            ) {
                assert_eq!(
                    get_blob_digest(&http, &base, repo, digest).as_deref(),
                    Some(digest),
                    "{repo}:{tag} lost {digest}"
                );
                checked.insert(digest.to_string());
            }
        }
    }
    let dry = must_succeed(berth_gc(
        &root,
        &["--dry-run", "--grace", "0s", "--upload-grace", "0s"],
    ));
    assert!(
        dry.contains("would remove 0 blobs"),
        "unreferenced blobs left: {dry}"
    );
    let fsck = must_succeed(berth_cmd(&root, &["fsck"]));
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
    eprintln!(
        "gc race: {PUSHERS} pushers x {iterations} iterations = {pushed} images pushed \
         ({retried} retried pushes, statuses {statuses:?}), {} collector passes from the CLI \
         plus the server's every second, {} blobs of tagged images verified, {:.1?}",
        passes.load(Ordering::Relaxed),
        checked.len(),
        started.elapsed()
    );
}

#[test]
fn gc_purges_abandoned_upload_sessions() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let resp = http
        .post(format!("{base}/v2/purge/blobs/uploads/"))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let resp = http
        .patch(&url)
        .header("content-type", "application/octet-stream")
        .body(bytes(77, 50_000))
        .send()
        .expect("PATCH");
    assert_eq!(resp.status(), 202);
    let sessions = || std::fs::read_dir(berth.root.join("uploads")).map_or(0, |d| d.count());
    assert_eq!(sessions(), 1);

    // Young sessions stay.
    let kept = must_succeed(berth_cmd(&berth.root, &["gc"]));
    assert!(kept.contains("0 upload sessions"), "{kept}");
    assert_eq!(sessions(), 1);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--root"])
        .arg(&berth.root)
        .env("BERTH_GC_UPLOAD_MAX_AGE", "0s")
        .output()
        .expect("gc");
    let text = must_succeed(out);
    assert!(text.contains("removed upload session"), "{text}");
    assert_eq!(sessions(), 0, "session data left behind");
    let resp = http.get(&url).send().expect("status of a purged session");
    assert_eq!(resp.status(), 404);
}

/// With `gc.untagged = true`, a manifest whose tag moved away is deleted,
/// and the layer only it used goes with it; the tagged one stays whole.
#[test]
fn gc_collects_untagged_manifests_when_enabled() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let (old_layer, new_layer) = (bytes(40, 20_000), bytes(41, 20_000));
    let old = push::image(
        &http,
        &base,
        "moving/app",
        "latest",
        b"{\"v\":1}",
        std::slice::from_ref(&old_layer),
    )
    .expect("push v1");
    let new = push::image(
        &http,
        &base,
        "moving/app",
        "latest",
        b"{\"v\":2}",
        std::slice::from_ref(&new_layer),
    )
    .expect("push v2");
    // Untagged selection counts whole seconds since the manifest was stored.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let plain = must_succeed(berth_gc(&berth.root, &["--grace", "0s"]));
    assert!(
        plain.contains("0 untagged manifests"),
        "off by default: {plain}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--grace", "0s", "--root"])
        .arg(&berth.root)
        .env("BERTH_GC_UNTAGGED", "true")
        .output()
        .expect("gc");
    let text = must_succeed(out);
    assert!(
        text.contains(&format!("removed untagged manifest moving/app@{old}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("removed blob {}", sha256_digest(&old_layer))),
        "{text}"
    );
    assert!(!text.contains(&new), "{text}");
    let gone = http
        .get(format!("{base}/v2/moving/app/manifests/{old}"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET old");
    assert_eq!(gone.status(), 404);
    assert_eq!(
        get_blob_digest(&http, &base, "moving/app", &sha256_digest(&new_layer)),
        Some(sha256_digest(&new_layer))
    );
}
