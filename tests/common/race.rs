//! The GC race's clients: pushers that share layers, mount across
//! repositories, move tags and delete, against collectors at zero grace;
//! and the checks afterwards (fsck's dangling count, every manifest that
//! answers pulls whole). `tests/gc.rs` runs it on one host, and
//! `tests/postgres.rs` on several hosts over one bucket and one database.
//! Also a collection pass killed half way, for either metadata kind.

use super::{Berth, push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The digest of what a blob GET returns, when it answers 200.
pub fn get_blob_digest(http: &Client, base: &str, repo: &str, digest: &str) -> Option<String> {
    let resp = http
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .ok()?;
    (resp.status() == 200).then(|| sha256_digest(&resp.bytes().unwrap_or_default()))
}

/// How long the race runs and with how many: BERTH_TEST_GC_RACE_* (the
/// defaults are CI's short run; bench/gc-race.sh runs the long one).
pub struct RaceSize {
    pub pushers: u64,
    pub collectors: usize,
    /// Pushes per pusher, unless `seconds` is set.
    pub iterations: u64,
    pub seconds: Option<u64>,
}

impl RaceSize {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(format!("BERTH_TEST_GC_RACE_{name}"))
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
        };
        Self {
            pushers: var("PUSHERS").unwrap_or(4),
            collectors: var("COLLECTORS").map_or(2, |n| n as usize),
            iterations: var("ITERATIONS").unwrap_or(60),
            seconds: var("SECONDS"),
        }
    }
}

/// What one pusher did.
#[derive(Default)]
pub struct PusherTally {
    /// (repository, manifest digest) of every image acknowledged with 201.
    pub pushed: Vec<(String, String)>,
    pub retried: u64,
    pub deleted: u64,
    pub mounted: u64,
    pub statuses: Vec<u16>,
}

/// Cheap deterministic randomness for one pusher.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Makes `data` present in `repo` the way clients do: HEAD first; when
/// missing, a cross-repository mount from `from`, and an upload when the
/// registry answers the mount with a session (202) instead.
pub fn ensure_blob(
    http: &Client,
    base: &str,
    repo: &str,
    from: &str,
    data: &[u8],
    mounted: &mut u64,
) -> Result<String, u16> {
    let digest = sha256_digest(data);
    if push::blob_exists(http, base, repo, &digest) {
        return Ok(digest);
    }
    let resp = http
        .post(format!(
            "{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
        ))
        .send()
        .map_err(|_| 0u16)?;
    match resp.status().as_u16() {
        201 => {
            *mounted += 1;
            return Ok(digest);
        }
        202 => {
            if let Some(location) = resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                let url = if location.starts_with('/') {
                    format!("{base}{location}")
                } else {
                    location.to_owned()
                };
                let _ = http.delete(url).send();
            }
        }
        status => return Err(status),
    }
    push::blob(http, base, repo, data)
}

/// One image: three layers from the shared pool, a fresh config, then the
/// manifest under `tag` (the order docker pushes in: the config last, so it
/// is unreferenced for the shortest time). The manifest digest, or the
/// first failure.
pub fn push_image(
    http: &Client,
    base: &str,
    (repo, from): (&str, &str),
    tag: &str,
    config: &[u8],
    layers: &[&Vec<u8>],
    mounted: &mut u64,
) -> Result<String, u16> {
    let mut descs = Vec::new();
    for layer in layers {
        descs.push((
            ensure_blob(http, base, repo, from, layer, mounted)?,
            layer.len(),
        ));
    }
    let config_digest = push::blob(http, base, repo, config)?;
    let manifest = push::image_manifest((&config_digest, config.len()), &descs);
    match push::manifest_answer(http, base, repo, tag, &manifest) {
        (201, _) => Ok(sha256_digest(&manifest)),
        (status, body) => {
            eprintln!("gc race: manifest PUT to {repo}: {status} {body}");
            Err(status)
        }
    }
}

/// The repositories the race pushes into.
pub const REPOS: [&str; 4] = ["race/a", "race/b", "race/c", "race/d"];

/// Runs `size.pushers` [`race_pusher`]s through `hosts` until `size` says
/// stop: their tallies, and how long they pushed.
pub fn run_pushers(hosts: &[String], size: &RaceSize) -> (Vec<PusherTally>, Duration) {
    // Layers many images share, so they swing between referenced and
    // unreferenced as images come and go: the blobs a collector at zero
    // grace may take while a pusher is about to reuse them.
    let pool: Vec<Vec<u8>> = (0..8u64)
        .map(|i| super::content::bytes((500 + i).to_le_bytes(), 8_000))
        .collect();
    let started = Instant::now();
    let deadline = size.seconds.map(|s| started + Duration::from_secs(s));
    let done = |i: u64| match deadline {
        Some(deadline) => Instant::now() >= deadline,
        None => i >= size.iterations,
    };
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size.pushers)
            .map(|p| {
                let (pool, done) = (&pool, &done);
                scope.spawn(move || race_pusher(hosts, p, pool, done))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pusher"))
            .collect()
    });
    (tallies, started.elapsed())
}

/// The pusher loop of the GC race: pushes until `done`, retrying an image
/// from the start when refused, and deletes about 30% of its manifests.
fn race_pusher(
    hosts: &[String],
    p: u64,
    pool: &[Vec<u8>],
    done: &dyn Fn(u64) -> bool,
) -> PusherTally {
    let http = Client::new();
    let mut rng = Xorshift(p * 7919 + 17);
    let mut tally = PusherTally::default();
    let mut alive: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while !done(i) {
        // Each image through one host, chosen at random: with several
        // hosts, a layer one host's collector takes may be pushed again
        // through another.
        let base = hosts[rng.below(hosts.len() as u64) as usize].as_str();
        let r = rng.below(REPOS.len() as u64) as usize;
        let (repo, from) = (REPOS[r], REPOS[(r + 1) % REPOS.len()]);
        let tag = format!("t{}", rng.below(3));
        let layers: Vec<&Vec<u8>> = (0..3)
            .map(|_| &pool[rng.below(pool.len() as u64) as usize])
            .collect();
        let config = format!("{{\"pusher\":{p},\"i\":{i}}}").into_bytes();
        let mut attempt = 0u64;
        let first_try = Instant::now();
        loop {
            match push_image(
                &http,
                base,
                (repo, from),
                &tag,
                &config,
                &layers,
                &mut tally.mounted,
            ) {
                Ok(digest) => {
                    tally.pushed.push((repo.to_owned(), digest.clone()));
                    alive.push((repo.to_owned(), digest));
                    break;
                }
                Err(status) => {
                    // Backing off as clients do: at zero grace the
                    // collectors may take a shared layer again and again
                    // between its upload and the manifest.
                    // Retrying is the contract; starving for a minute
                    // would be a liveness bug worth failing on.
                    tally.statuses.push(status);
                    tally.retried += 1;
                    attempt += 1;
                    assert!(
                        first_try.elapsed() < Duration::from_secs(60),
                        "one image kept failing for a minute ({attempt} tries): {:?}",
                        tally.statuses
                    );
                    std::thread::sleep(Duration::from_millis((5 * attempt).min(200)));
                }
            }
        }
        if rng.below(10) < 3 {
            let (repo, digest) = alive.remove(rng.below(alive.len() as u64) as usize);
            let status = push::delete_manifest(&http, base, &repo, &digest);
            assert!(status == 202 || status == 404, "delete: {status}");
            tally.deleted += 1;
        }
        i += 1;
    }
    tally
}

/// The dangling-reference count of an fsck report line.
pub fn dangling_of(fsck: &str) -> Option<u64> {
    let line = fsck.lines().find(|l| l.contains("dangling references"))?;
    let before = line.split(" dangling references").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// What pulling one manifest found.
pub enum Pull {
    /// 404: deleted.
    Gone,
    /// 200, and its config and layers came back with their digests.
    Whole(Vec<String>),
    /// 200, but these blobs did not come back.
    Broken(Vec<String>),
}

pub fn pull(http: &Client, base: &str, repo: &str, reference: &str) -> Pull {
    let resp = http
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("manifest");
    if resp.status() == 404 {
        return Pull::Gone;
    }
    assert_eq!(resp.status(), 200, "{repo}@{reference}");
    let manifest: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("JSON");
    let config = manifest["config"]["digest"].as_str().expect("config");
    let digests: Vec<String> = std::iter::once(config)
        .chain(
            manifest["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .filter_map(|l| l["digest"].as_str()),
        )
        .map(str::to_owned)
        .collect();
    let lost: Vec<String> = digests
        .iter()
        .filter(|d| get_blob_digest(http, base, repo, d).as_deref() != Some(d.as_str()))
        .cloned()
        .collect();
    if lost.is_empty() {
        Pull::Whole(digests)
    } else {
        Pull::Broken(lost)
    }
}

/// Unreferenced blobs, a `berth gc` pass at zero grace killed with SIGKILL
/// after 25 deletions (with `env`: the store's configuration), and what
/// must hold afterwards: fsck is clean, the next pass finishes the killed
/// pass's deletions, and the image that was kept still pulls. For
/// `berth`'s filesystem store in Berth's own layout.
pub fn killed_pass_is_finished_by_the_next(berth: &Berth, env: &[(String, String)]) {
    const BLOBS: u64 = 400;
    let berth_cmd = |args: &[&str]| super::berth_ok(&berth.root, env, args);
    let bytes = |seed: u64, len: usize| super::content::bytes(seed.to_le_bytes(), len);
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
        .envs(env.iter().cloned())
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

    let fsck = berth_cmd(&["fsck"]);
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
    let out = berth_cmd(&["gc", "--grace", "0s", "--upload-grace", "0s"]);
    // A kill between two deletions leaves no tombstone: 0 is possible.
    assert!(
        out.contains("deletions an interrupted pass had left"),
        "{out}"
    );
    let left: Vec<_> = doomed
        .iter()
        .filter(|d| blob_file(&berth.root, d).exists())
        .collect();
    assert!(
        left.is_empty(),
        "{} doomed blobs survived: {out}",
        left.len()
    );
    let resp = http
        .get(format!("{base}/v2/keep/app/manifests/{keep}"))
        .header("accept", push::MANIFEST)
        .send()
        .expect("GET kept");
    assert_eq!(resp.status(), 200);
    let fsck = berth_cmd(&["fsck"]);
    assert!(fsck.contains("0 corrupt, 0 dangling"), "{fsck}");
}

/// Where the filesystem store in Berth's own layout keeps a blob.
pub fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}
