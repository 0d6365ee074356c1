//! Garbage collection, fsck and usage against a running server: what GC
//! frees and keeps, a SIGKILL in the middle of a pass, corruption found by
//! fsck, and many pushers racing a collector that never stops.

mod common;

use common::race::*;
use common::{Berth, push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
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

/// Deterministic filler bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    common::content::bytes(seed.to_le_bytes(), len)
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
        out.contains(&format!("removed 3 blobs, freeing {freed_bytes} bytes")),
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
    assert!(
        text.contains(&format!("blob {d1} is corrupt: its bytes hash to sha256:"))
            && text.contains("; --repair moves it to quarantine/"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            == format!(
                "repository fsck/app: links blob {d2}, which is missing from the blob store; \
                 --repair removes the link"
            )),
        "{text}"
    );
    // One line for the manifest, naming both blobs it lost and its tag.
    let manifest_line = |text: &str, action: &str| {
        text.lines().any(|l| {
            l.starts_with("repository fsck/app: manifest sha256:")
                && l.contains(&format!(
                    " names blob {d2}, which is missing, and names blob {d1}, which is corrupt; "
                ))
                && l.ends_with(action)
        })
    };
    assert!(
        manifest_line(&text, "; --repair drops the manifest and its tag 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "repository fsck/app: links blob {d1}, which is corrupt; --repair removes the link"
        )),
        "{text}"
    );
    assert!(!text.contains("Manifest {"), "debug text: {text}");
    let repaired = must_succeed(berth_cmd(&berth.root, &["fsck", "--repair"]));
    assert!(repaired.contains("; moved it to quarantine/"), "{repaired}");
    // What it dropped, by name: the link, and the manifest that needed d2.
    assert!(
        repaired.contains(&format!(
            "repository fsck/app: links blob {d2}, which is missing from the blob store; \
             removed the link"
        )),
        "{repaired}"
    );
    assert!(
        manifest_line(&repaired, "; dropped the manifest and its tag 1"),
        "{repaired}"
    );
    assert!(repaired.contains("repaired as listed above"), "{repaired}");
    let tags = http
        .get(format!("{base}/v2/fsck/app/tags/list"))
        .send()
        .expect("tags");
    assert!(
        !tags.text().unwrap_or_default().contains("\"1\""),
        "the broken image's tag went with it"
    );
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

/// A `berth gc` killed half way leaves a consistent store; the next pass
/// finishes its deletions.
#[test]
fn gc_killed_mid_pass_leaves_a_consistent_store_and_resumes() {
    let berth = Berth::start();
    common::race::killed_pass_is_finished_by_the_next(&berth, &[]);
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
        let berth = Berth::builder().root(&root).start();
        push::blob(&Client::new(), &berth.url(), "ro", b"before read-only").expect("push")
    };
    let berth = Berth::builder()
        .root(&root)
        .env("BERTH_SERVER_READ_ONLY", "true")
        .start();
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

/// The interleaving behind issue 11, stepped across three processes:
/// collector A (this test, through the storage crate) condemns a blob and
/// is slow to delete it; collector B (`berth gc`) runs meanwhile; a client
/// pushes the same blob through the server. B used to finish A's tombstone
/// (delete, bury), the push then went through at once, and A's delete,
/// arriving last, took the pushed bytes: a 201 for a blob that was gone.
/// Now B leaves A's tombstone alone, the push waits for A, and the blob the
/// client was told about is there.
#[test]
fn a_second_collector_never_finishes_a_live_passes_deletion() {
    use berth_storage::{Digest, FsBlobStore, GracePeriods, MetadataStore, SqliteMetadata};
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let data = bytes(77, 40_000);
    let digest = push::blob(&http, &base, "step/a", &data).expect("push");
    let resp = http
        .delete(format!("{base}/v2/step/a/blobs/{digest}"))
        .send()
        .expect("unlink");
    assert_eq!(resp.status(), 202);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let meta = SqliteMetadata::open(&berth.root.join("metadata.db")).expect("open");
    let store = FsBlobStore::open(&berth.root).expect("blobs");
    let gc = meta.gc().expect("sqlite collects");
    let zero = GracePeriods {
        unreferenced: 0,
        uploaded: 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Step 1: A condemns the blob; its bytes are still there.
    let (lease, _) = runtime.block_on(gc.gc_begin()).expect("A begins");
    assert!(
        runtime
            .block_on(gc.gc_condemn(&lease, &digest, now, zero))
            .expect("condemn")
    );
    // Step 2: B, a whole `berth gc` pass, while A is alive.
    let b = must_succeed(berth_gc(
        &berth.root,
        &["--grace", "0s", "--upload-grace", "0s"],
    ));
    assert!(
        b.contains("resumed 0 deletions"),
        "B finished A's tombstone: {b}"
    );
    assert!(blob_file(&berth.root, &digest).exists(), "B deleted: {b}");
    // Step 3: a client pushes the blob again; the server waits for A.
    let pusher = {
        let (base, data) = (base.clone(), data.clone());
        std::thread::spawn(move || push::blob(&Client::new(), &base, "step/b", &data))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pusher.is_finished(), "the push did not wait for A");
    // Step 4: A deletes the bytes and buries the tombstone, late.
    let parsed: Digest = digest.parse().expect("digest");
    runtime
        .block_on(berth_storage::BlobStore::delete(&store, &parsed))
        .expect("A deletes");
    runtime
        .block_on(gc.gc_bury(&lease, &digest))
        .expect("A buries");
    assert_eq!(pusher.join().expect("pusher"), Ok(digest.clone()));
    assert_eq!(
        get_blob_digest(&http, &base, "step/b", &digest),
        Some(digest.clone()),
        "the blob the client was told about is there"
    );
    drop(lease);
    let fsck = must_succeed(berth_cmd(&berth.root, &["fsck"]));
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
}

/// Pushers (shared layers, mounts, tag moves, deletes) against the
/// server's collector and `berth gc` processes that never stop, every
/// grace period at zero. Afterwards fsck finds nothing dangling, and every
/// manifest that answers 200, tagged or not, pulls whole.
#[test]
fn gc_races_concurrent_pushes_without_losing_blobs() {
    let size = RaceSize::from_env();
    let berth = Berth::builder()
        .env("BERTH_GC_INTERVAL", "1s")
        .env("BERTH_GC_GRACE", "0s")
        .env("BERTH_GC_UPLOAD_GRACE", "0s")
        .start();
    let root = berth.root.clone();
    let base = berth.url();
    let hosts = [base.clone()];
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let removed = Arc::new(AtomicU64::new(0));
    let zero = ["--grace", "0s", "--upload-grace", "0s"];
    let collectors: Vec<_> = (0..size.collectors)
        .map(|_| {
            let (stop, passes, removed) = (stop.clone(), passes.clone(), removed.clone());
            let root = root.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = must_succeed(berth_gc(&root, &zero));
                    let blobs = out
                        .lines()
                        .filter(|l| l.starts_with("removed blob"))
                        .count();
                    removed.fetch_add(blobs as u64, Ordering::Relaxed);
                    passes.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let (tallies, pushing) = run_pushers(&hosts, &size);
    stop.store(true, Ordering::Relaxed);
    for collector in collectors {
        collector.join().expect("collector");
    }
    let sum = |f: fn(&PusherTally) -> u64| tallies.iter().map(f).sum::<u64>();
    let pushed = sum(|t| t.pushed.len() as u64);
    let statuses: Vec<u16> = tallies.iter().flat_map(|t| t.statuses.clone()).collect();

    // Still serving, nothing collecting from outside: what is dangling now
    // was lost by the race.
    let fsck = berth_cmd(&root, &["fsck"]);
    let dangling = dangling_of(&stdout(&fsck));
    let http = Client::new();
    let (mut answering, mut verified, mut broken) = (0, HashSet::new(), Vec::new());
    for (repo, digest) in tallies.iter().flat_map(|t| &t.pushed) {
        match pull(&http, &base, repo, digest) {
            Pull::Gone => {}
            Pull::Whole(blobs) => {
                answering += 1;
                verified.extend(blobs);
            }
            Pull::Broken(lost) => broken.push(format!("{repo}@{digest} lost {lost:?}")),
        }
    }
    eprintln!(
        "gc race: {} pushers, {} berth gc processes + the server's collector (every 1 s), \
         every grace 0 s: {pushed} images pushed in {pushing:.1?} ({} retried, {} mounts, \
         {} manifests deleted), {} gc passes from the CLI removing {} blobs; {answering} manifests answer 200 \
         and pull whole ({} blobs), {} answer 200 and do not; fsck: {} dangling",
        size.pushers,
        size.collectors,
        sum(|t| t.retried),
        sum(|t| t.mounted),
        sum(|t| t.deleted),
        passes.load(Ordering::Relaxed),
        removed.load(Ordering::Relaxed),
        verified.len(),
        broken.len(),
        dangling.map_or("?".to_owned(), |d| d.to_string()),
    );
    assert_eq!(dangling, Some(0), "{}", stdout(&fsck));
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    assert!(broken.is_empty(), "acknowledged images broken: {broken:#?}");
    assert!(
        statuses.iter().all(|s| (400..500).contains(s)),
        "pushes failed with server errors: {statuses:?}"
    );

    for repo in REPOS {
        let tags: Value = http
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .expect("tags")
            .json()
            .expect("tags JSON");
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("tag");
            match pull(&http, &base, repo, tag) {
                Pull::Whole(_) => {}
                Pull::Gone => panic!("{repo}:{tag} listed but gone"),
                Pull::Broken(lost) => panic!("{repo}:{tag} lost {lost:?}"),
            }
        }
    }
    // Quiet now: one last pass with every grace at zero leaves nothing
    // unreferenced and everything referenced.
    must_succeed(berth_gc(&root, &zero));
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
}

/// Starts an upload session in `repo`; returns its URL.
fn start_upload(http: &Client, base: &str, repo: &str) -> String {
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    }
}

/// Starts an upload session in `repo`, sends `data` into it and leaves it
/// open, as a client that went away would; returns the session's URL.
fn abandoned_upload(http: &Client, base: &str, repo: &str, data: Vec<u8>) -> String {
    let url = start_upload(http, base, repo);
    let resp = http
        .patch(&url)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .expect("PATCH");
    assert_eq!(resp.status(), 202);
    url
}

#[test]
fn gc_purges_abandoned_upload_sessions() {
    let berth = Berth::start();
    let http = Client::new();
    let url = abandoned_upload(&http, &berth.url(), "purge", bytes(77, 50_000));
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

/// `berth <args> --root <root>` with extra environment.
fn berth_cmd_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--root")
        .arg(root)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A mistyped `--root` is refused, not made into an empty store that
/// fsck then calls healthy; so is a directory that holds no store.
#[test]
fn maintenance_commands_refuse_a_root_without_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("typo");
    for args in [&["fsck"][..], &["gc"], &["gc", "--dry-run"], &["du"]] {
        let out = berth_cmd(&typo, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} accepted {}", stdout(&out));
        assert!(err.contains(&typo.display().to_string()), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(
            err.contains("--root") && err.contains("storage.root"),
            "{err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (metadata, what) in [("sqlite", "metadata.db"), ("layout", "docker/registry/v2")] {
        let out = berth_cmd_env(&empty, &["fsck"], &[("BERTH_METADATA_KIND", metadata)]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{metadata}: {}", stdout(&out));
        assert!(err.contains("holds no") && err.contains(what), "{err}");
        let left: Vec<_> = std::fs::read_dir(&empty).expect("list").collect();
        assert!(left.is_empty(), "{metadata}: fsck created {left:?}");
    }
    // Layout metadata outside the filesystem: the bucket is the store, and
    // one holding nothing is refused (in memory, always).
    let out = berth_cmd_env(
        &empty,
        &["du"],
        &[
            ("BERTH_METADATA_KIND", "layout"),
            ("BERTH_STORAGE_KIND", "memory"),
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(err.contains("no store in in-memory storage"), "{err}");
}

/// `serve` on registry:2's tree with SQLite metadata set explicitly stops
/// and names the setting, instead of showing an empty registry beside the
/// real one; with layout metadata it serves the tree (left unset, the tree
/// picks layout itself: tests/dropin/config.rs).
#[test]
fn serve_refuses_a_registry2_tree_with_sqlite_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("r2");
    std::fs::create_dir_all(root.join("docker/registry/v2/repositories")).expect("tree");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr"])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .arg("--root")
        .arg(&root)
        .env("RUST_LOG", "warn")
        .env("BERTH_METADATA_KIND", "sqlite")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running on a registry:2 tree with sqlite metadata");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let err = stderr(&out);
    assert!(!status.success());
    assert!(err.contains("metadata.kind = \"layout\""), "{err}");
    assert!(err.contains("BERTH_METADATA_KIND=layout"), "{err}");
    assert!(
        !root.join("metadata.db").exists(),
        "created a store beside it"
    );
    assert!(!root.join("blobs").exists(), "created a store beside it");

    let berth = Berth::builder().root(&root).metadata("layout").start();
    let resp = Client::new()
        .get(format!("{}/v2/_catalog", berth.url()))
        .send()
        .expect("catalog");
    assert_eq!(resp.status(), 200);
}

/// Layout metadata on one host: `berth du` and `/berth/v1/usage` report
/// what was pushed, the same way as with SQLite.
#[test]
fn du_and_usage_work_with_layout_metadata() {
    let berth = Berth::builder().metadata("layout").start();
    let (http, base) = (Client::new(), berth.url());
    let shared = bytes(60, 30_000);
    let own = bytes(61, 12_000);
    push::image(
        &http,
        &base,
        "lay/one",
        "1",
        b"{\"l\":1}",
        &[shared.clone(), own.clone()],
    )
    .expect("one");
    push::image(
        &http,
        &base,
        "lay/two",
        "v",
        b"{\"l\":2}",
        std::slice::from_ref(&shared),
    )
    .expect("two");
    let resp = http
        .get(format!("{base}/berth/v1/usage"))
        .send()
        .expect("usage");
    assert_eq!(resp.status(), 200);
    let usage: Value = resp.json().expect("usage JSON");
    let one = &usage["repositories"][0];
    assert_eq!(one["name"], "lay/one");
    assert_eq!(one["tags"], serde_json::json!(["1"]));
    assert_eq!(one["manifests"], 1);
    let descs: Vec<_> = [&shared, &own]
        .iter()
        .map(|l| (sha256_digest(l), l.len()))
        .collect();
    let manifest = push::image_manifest((&sha256_digest(b"{\"l\":1}"), 7), &descs).len();
    assert_eq!(
        one["size"].as_u64(),
        Some((shared.len() + own.len() + 7 + manifest) as u64)
    );
    assert_eq!(
        one["exclusive_size"].as_u64(),
        Some((own.len() + 7 + manifest) as u64)
    );
    assert_eq!(usage["repositories"][1]["name"], "lay/two");
    let layout = [("BERTH_METADATA_KIND", "layout")];
    let cli: Value = serde_json::from_str(&must_succeed(berth_cmd_env(
        &berth.root,
        &["du", "--json"],
        &layout,
    )))
    .expect("du JSON");
    assert_eq!(cli, usage);
    let table = must_succeed(berth_cmd_env(&berth.root, &["du"], &layout));
    assert!(
        table.contains("lay/one") && table.contains("lay/two"),
        "{table}"
    );
}

/// With layout metadata `berth gc` purges abandoned uploads (and their
/// owner records) and says why it leaves blobs alone.
#[test]
fn gc_purges_abandoned_layout_uploads() {
    let berth = Berth::builder().metadata("layout").start();
    let http = Client::new();
    let url = abandoned_upload(&http, &berth.url(), "lay/purge", bytes(78, 20_000));
    let count = |dir: &str| std::fs::read_dir(berth.root.join(dir)).map_or(0, |d| d.count());
    assert_eq!(count("uploads"), 1);
    assert_eq!(count("berth/upload-owners"), 1);

    // An owner record whose session is gone (its commit failed to end it).
    let stale = berth
        .root
        .join("berth/upload-owners/0b6c2e2a-0000-4000-8000-000000000000");
    std::fs::write(&stale, "lay/purge").expect("stale owner");

    let layout = ("BERTH_METADATA_KIND", "layout");
    let kept = must_succeed(berth_cmd_env(&berth.root, &["gc"], &[layout]));
    assert!(kept.contains("removed 0 upload sessions"), "{kept}");
    assert!(
        kept.contains("Forgot 1 upload owner records whose sessions were already gone"),
        "{kept}"
    );
    assert!(!stale.exists(), "stale owner record kept");
    assert_eq!(
        count("berth/upload-owners"),
        1,
        "the live session's owner went"
    );
    assert!(
        kept.contains("layout metadata keeps no review queue"),
        "{kept}"
    );
    assert_eq!(count("uploads"), 1, "a young session was purged");
    let purged = must_succeed(berth_cmd_env(
        &berth.root,
        &["gc"],
        &[layout, ("BERTH_GC_UPLOAD_MAX_AGE", "0s")],
    ));
    assert!(purged.contains("removed upload session"), "{purged}");
    assert!(purged.contains("removed 1 upload sessions"), "{purged}");
    assert_eq!(count("uploads"), 0, "session data left behind");
    assert_eq!(count("berth/upload-owners"), 0, "owner record left behind");
    let resp = http.get(&url).send().expect("status of a purged session");
    assert_eq!(resp.status(), 404);
}

/// fsck on layout metadata checks references too: a deleted layer is
/// reported against the manifest that names it, in words, and `--repair`
/// drops that manifest and its tag.
#[test]
fn fsck_checks_layout_references_and_repairs_them() {
    let berth = Berth::builder().metadata("layout").start();
    let (http, base) = (Client::new(), berth.url());
    let (keep, lose) = (bytes(70, 20_000), bytes(71, 10_000));
    let manifest = push::image(
        &http,
        &base,
        "lay/fsck",
        "1",
        b"{\"f\":2}",
        &[keep.clone(), lose.clone()],
    )
    .expect("push");
    push::image(
        &http,
        &base,
        "lay/fine",
        "ok",
        b"{\"f\":3}",
        std::slice::from_ref(&keep),
    )
    .expect("push");
    let layout = [("BERTH_METADATA_KIND", "layout")];
    let clean = must_succeed(berth_cmd_env(&berth.root, &["fsck"], &layout));
    assert!(clean.contains("0 corrupt, 0 dangling"), "{clean}");
    assert!(clean.contains("nothing is wrong"), "{clean}");

    let lost = sha256_digest(&lose);
    let hex = lost.trim_start_matches("sha256:");
    std::fs::remove_file(
        berth
            .root
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"),
    )
    .expect("delete a layer");
    let found = berth_cmd_env(&berth.root, &["fsck"], &layout);
    let text = stdout(&found);
    assert!(!found.status.success(), "{text}");
    let line = format!(
        "repository lay/fsck: manifest {manifest} names blob {lost}, which is missing; \
         --repair drops the manifest and its tag 1"
    );
    assert!(text.lines().any(|l| l == line), "{text}");
    assert!(
        text.contains(&format!(
            "repository lay/fsck: links blob {lost}, which is missing from the blob store; \
             --repair removes the link"
        )),
        "{text}"
    );
    assert!(text.contains("0 corrupt, 2 dangling references"), "{text}");

    let repaired = must_succeed(berth_cmd_env(&berth.root, &["fsck", "--repair"], &layout));
    assert!(
        repaired.contains(&format!(
            "repository lay/fsck: manifest {manifest} names blob {lost}, which is missing; \
             dropped the manifest and its tag 1"
        )),
        "{repaired}"
    );
    let after = must_succeed(berth_cmd_env(&berth.root, &["fsck"], &layout));
    assert!(after.contains("0 corrupt, 0 dangling"), "{after}");
    let gone = http
        .get(format!("{base}/v2/lay/fsck/manifests/1"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET");
    assert_eq!(gone.status(), 404);
    let fine = http
        .get(format!("{base}/v2/lay/fine/manifests/ok"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET");
    assert_eq!(fine.status(), 200);
}

/// A dry run says what waits out the grace periods, and until when.
#[test]
fn gc_dry_run_reports_blobs_waiting_for_their_grace_period() {
    let berth = Berth::start();
    let (http, base) = (Client::new(), berth.url());
    let layer = bytes(80, 4096);
    let manifest = push::image(
        &http,
        &base,
        "wait/app",
        "1",
        b"{\"w\":1}",
        std::slice::from_ref(&layer),
    )
    .expect("push");
    let idle = must_succeed(berth_gc(&berth.root, &["--dry-run"]));
    assert!(
        idle.contains("No unreferenced blob is waiting out gc.grace (1h)"),
        "{idle}"
    );
    assert_eq!(
        push::delete_manifest(&http, &base, "wait/app", &manifest),
        202
    );
    let dry = must_succeed(berth_gc(&berth.root, &["--dry-run"]));
    assert!(dry.contains("would remove 0 blobs"), "{dry}");
    assert!(
        dry.contains("3 unreferenced blobs (")
            && dry.contains("are waiting out gc.grace (1h) or gc.upload_grace (1d)"),
        "{dry}"
    );
    assert!(dry.contains("the first becomes collectable at 20"), "{dry}");
    // A manifest named them, so the upload grace no longer applies: they
    // go an hour after the delete.
    assert!(
        dry.contains(" UTC (in 1h).") || dry.contains(" UTC (in 59m"),
        "{dry}"
    );
    // With the grace periods at zero nothing waits and everything goes.
    let now = must_succeed(berth_gc(
        &berth.root,
        &["--dry-run", "--grace", "0s", "--upload-grace", "0s"],
    ));
    assert!(now.contains("would remove 3 blobs"), "{now}");
    assert!(now.contains("No unreferenced blob is waiting"), "{now}");
}

/// The server's background pass purges abandoned layout uploads too.
#[test]
fn the_server_purges_abandoned_layout_uploads() {
    let berth = Berth::builder()
        .metadata("layout")
        .env("BERTH_GC_INTERVAL", "1s")
        .env("BERTH_GC_UPLOAD_MAX_AGE", "0s")
        .start();
    let http = Client::new();
    let url = start_upload(&http, &berth.url(), "lay/bg");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http.get(&url).send().expect("status").status();
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session still there after 20 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sessions = std::fs::read_dir(berth.root.join("uploads")).map_or(0, |d| d.count());
    assert_eq!(sessions, 0, "session data left behind");
}

/// A layout tag whose manifest is gone from its repository (its revision
/// link deleted by hand) is reported and, with --repair, removed.
#[test]
fn fsck_finds_a_layout_tag_without_its_manifest() {
    let berth = Berth::builder().metadata("layout").start();
    let (http, base) = (Client::new(), berth.url());
    let manifest = push::image(
        &http,
        &base,
        "lay/tagged",
        "stale",
        b"{\"t\":1}",
        &[bytes(90, 5000)],
    )
    .expect("push");
    let hex = manifest.trim_start_matches("sha256:");
    std::fs::remove_file(
        berth
            .root
            .join("docker/registry/v2/repositories/lay/tagged/_manifests/revisions/sha256")
            .join(hex)
            .join("link"),
    )
    .expect("delete the revision link");
    let layout = [("BERTH_METADATA_KIND", "layout")];
    let found = berth_cmd_env(&berth.root, &["fsck"], &layout);
    let text = stdout(&found);
    assert!(!found.status.success(), "{text}");
    let line = format!(
        "repository lay/tagged: tag stale points at manifest {manifest}, which the repository \
         does not hold; --repair removes the tag"
    );
    assert!(text.lines().any(|l| l == line), "{text}");
    let repaired = must_succeed(berth_cmd_env(&berth.root, &["fsck", "--repair"], &layout));
    assert!(repaired.contains("; removed the tag"), "{repaired}");
    let after = must_succeed(berth_cmd_env(&berth.root, &["fsck"], &layout));
    assert!(after.contains("0 corrupt, 0 dangling"), "{after}");
    let tags = http
        .get(format!("{base}/v2/lay/tagged/tags/list"))
        .send()
        .expect("tags")
        .text()
        .unwrap_or_default();
    assert!(!tags.contains("stale"), "{tags}");
}
