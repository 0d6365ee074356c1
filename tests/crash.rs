//! Crash safety: `berth serve` is SIGKILLed at chosen points of pushes
//! (while a PATCH streams, around the commit PUT, during a manifest PUT or a
//! tag move), restarted over the same root, and then nothing partial may be
//! visible and every image acknowledged before the kill must pull intact.
//!
//! One data root is reused across all rounds, so every round also checks that
//! the debris of earlier crashes breaks nothing later. Rounds come from
//! `BERTH_TEST_CRASH_ROUNDS` (default 25), the seed from
//! `BERTH_TEST_CRASH_SEED` (default: the clock). The seed is printed: it
//! repeats the plan (images, sizes, kill targets and delays), though not the
//! scheduler's timing.

mod common;

use common::push::{MANIFEST, image_manifest};
use common::{Berth, sha256_digest};
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_ROUNDS: u64 = 25;
const REPOS: [&str; 3] = ["crash/a", "crash/b", "crash/c/deep"];
/// The tag that moves between images.
const MOVING_TAG: &str = "latest";
/// Throttled request bodies hand out this much per read, one read per ms, so
/// a PATCH of a few MiB stays on the wire for tens of milliseconds.
const THROTTLE_STEP: usize = 64 * 1024;
/// Images of earlier rounds whose every blob is re-read in full each round
/// (all of them are HEADed, and all are re-read at the end).
const OLD_IMAGES_REREAD: usize = 3;

// ---------------------------------------------------------------------------
// A seeded PRNG (the SplitMix64 of common::content): a seed replays a plan.
// ---------------------------------------------------------------------------

struct Rng(common::content::Filler);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(common::content::Filler::from_state(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next()
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.next() as usize % items.len())
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        common::content::bytes(self.next().to_le_bytes(), n)
    }
}

// ---------------------------------------------------------------------------
// What the pusher does, and where it is
// ---------------------------------------------------------------------------

/// The request the pusher has in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Head,
    Post,
    Patch,
    /// `PUT <upload>?digest=`, with or without the bytes.
    Commit,
    /// `POST ?digest=` with the whole blob.
    Monolithic,
    Manifest,
    TagMove,
}

impl Phase {
    const COUNT: usize = 7;

    fn label(self) -> &'static str {
        match self {
            Phase::Head => "HEAD",
            Phase::Post => "POST",
            Phase::Patch => "PATCH",
            Phase::Commit => "commit PUT",
            Phase::Monolithic => "monolithic POST",
            Phase::Manifest => "manifest PUT",
            Phase::TagMove => "tag move",
        }
    }
}

/// Where a kill was aimed: the k-th request of a phase plus a delay, or a
/// delay after the start of the round.
#[derive(Clone, Copy, Debug)]
enum Target {
    Nth(Phase, u32, Duration),
    Clock(Duration),
}

/// Kill targets, one per round, in turn.
const TARGETS: [Option<Phase>; 8] = [
    Some(Phase::Patch),
    Some(Phase::Commit),
    Some(Phase::Manifest),
    Some(Phase::Patch),
    Some(Phase::Commit),
    Some(Phase::Manifest),
    Some(Phase::TagMove),
    None,
];

#[derive(Clone, Copy)]
enum Upload {
    /// `POST ?digest=` with the bytes.
    Monolithic,
    /// `POST`, then `PUT ?digest=` with the bytes.
    PostPut,
    /// `POST`, `PATCH` per chunk (throttled; with `Content-Range`, or
    /// streamed without a length as docker does), then an empty `PUT`.
    Chunked { chunk: usize, streamed: bool },
}

struct BlobPlan {
    digest: String,
    data: Vec<u8>,
    upload: Upload,
}

enum Step {
    Image {
        image: Image,
        /// Config first, then the new layers. Blobs of `image` missing here
        /// are layers of an acknowledged image of the same repository: the
        /// pusher HEADs them and skips the upload, as clients do.
        uploads: Vec<BlobPlan>,
    },
    /// Moves `MOVING_TAG` to an acknowledged image of the repository.
    MoveTag { repo: String },
}

/// An image as the verifier knows it.
#[derive(Clone, Debug)]
struct Image {
    repo: String,
    tag: String,
    digest: String,
    manifest: Vec<u8>,
    /// `(digest, size)`: the config, then the layers.
    blobs: Vec<(String, u64)>,
    round: u64,
}

/// What the pusher was doing when the server went away.
#[derive(Debug)]
enum Pending {
    Blob {
        repo: String,
        digest: String,
        data: Vec<u8>,
        location: Option<String>,
    },
    Manifest(Image),
    TagMove(Image),
}

#[derive(Default)]
struct Progress {
    in_flight: Option<Phase>,
    entered: [u32; Phase::COUNT],
    done: bool,
}

#[derive(Default)]
struct Tracker {
    state: Mutex<Progress>,
    cv: Condvar,
}

impl Tracker {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut state = self.state.lock().expect("tracker lock");
        f(&mut state);
        self.cv.notify_all();
    }

    /// Waits until the `n`-th request of `phase` has started; false when the
    /// pusher stopped first or `limit` passed.
    fn wait_for(&self, phase: Phase, n: u32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().expect("tracker lock");
        loop {
            if state.entered[phase as usize] >= n {
                return true;
            }
            let now = Instant::now();
            if state.done || now >= deadline {
                return false;
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .expect("tracker lock")
                .0;
        }
    }

    fn in_flight(&self) -> Option<Phase> {
        self.state.lock().expect("tracker lock").in_flight
    }
}

enum Stop {
    /// A request failed at the transport level: the kill.
    Killed(Phase),
    /// The server answered something it must not have: a test failure.
    Unexpected(String),
}

#[derive(Default)]
struct Outcome {
    acked: Vec<Image>,
    /// Acknowledged moves of `MOVING_TAG`: (repo, manifest digest).
    moves: Vec<(String, String)>,
    /// Every blob an upload was started for: (repo, digest, size).
    attempted: Vec<(String, String, u64)>,
    /// The phase whose request failed, and what it was part of.
    interrupted: Option<(Phase, Option<Pending>)>,
    /// Per phase: total time and number of the requests that completed.
    timing: [(Duration, u32); Phase::COUNT],
}

struct Pusher {
    http: Client,
    base: String,
    tracker: Arc<Tracker>,
    rng: Rng,
    /// Acknowledged images, earlier rounds included (tag moves pick here).
    known: Vec<Image>,
    current: Option<Pending>,
    outcome: Outcome,
}

impl Pusher {
    fn run(mut self, steps: Vec<Step>) -> Result<Outcome, String> {
        let mut result = Ok(());
        for step in steps {
            result = match step {
                Step::Image { image, uploads } => self.image(image, uploads),
                Step::MoveTag { repo } => self.move_tag(&repo),
            };
            if result.is_err() {
                break;
            }
        }
        self.tracker.update(|p| {
            p.in_flight = None;
            p.done = true;
        });
        match result {
            Ok(()) => Ok(self.outcome),
            Err(Stop::Killed(phase)) => {
                self.outcome.interrupted = Some((phase, self.current.take()));
                Ok(self.outcome)
            }
            Err(Stop::Unexpected(what)) => Err(what),
        }
    }

    fn send(&mut self, phase: Phase, request: RequestBuilder) -> Result<Response, Stop> {
        self.tracker.update(|p| {
            p.in_flight = Some(phase);
            p.entered[phase as usize] += 1;
        });
        let started = Instant::now();
        let response = request.send();
        self.tracker.update(|p| p.in_flight = None);
        let response = response.map_err(|_| Stop::Killed(phase))?;
        let (total, n) = &mut self.outcome.timing[phase as usize];
        *total += started.elapsed();
        *n += 1;
        Ok(response)
    }

    /// Sends and insists on `status`; returns the absolute `Location`, if any.
    fn expect(
        &mut self,
        phase: Phase,
        request: RequestBuilder,
        status: u16,
        what: &str,
    ) -> Result<Option<String>, Stop> {
        let response = self.send(phase, request)?;
        if response.status().as_u16() != status {
            let got = response.status().as_u16();
            let body = response.text().unwrap_or_default();
            return Err(Stop::Unexpected(format!(
                "{what}: expected {status}, got {got}: {body}"
            )));
        }
        Ok(response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| absolute(&self.base, l)))
    }

    fn image(&mut self, image: Image, uploads: Vec<BlobPlan>) -> Result<(), Stop> {
        let new: HashSet<&str> = uploads.iter().map(|b| b.digest.as_str()).collect();
        for (digest, _) in image
            .blobs
            .iter()
            .filter(|(d, _)| !new.contains(d.as_str()))
        {
            // A layer of an acknowledged image: it must still be there.
            let url = format!("{}/v2/{}/blobs/{digest}", self.base, image.repo);
            self.expect(
                Phase::Head,
                self.http.head(url),
                200,
                "HEAD of a reused layer",
            )?;
        }
        for blob in uploads {
            self.blob(&image.repo, blob)?;
        }
        let url = format!("{}/v2/{}/manifests/{}", self.base, image.repo, image.tag);
        let request = self
            .http
            .put(url)
            .header("content-type", MANIFEST)
            .body(image.manifest.clone());
        self.current = Some(Pending::Manifest(image.clone()));
        self.expect(Phase::Manifest, request, 201, "manifest PUT")?;
        self.current = None;
        self.known.push(image.clone());
        self.outcome.acked.push(image);
        Ok(())
    }

    fn move_tag(&mut self, repo: &str) -> Result<(), Stop> {
        let candidates: Vec<Image> = self
            .known
            .iter()
            .filter(|i| i.repo == repo)
            .cloned()
            .collect();
        let Some(image) = self.rng.pick(&candidates).cloned() else {
            return Ok(());
        };
        let url = format!("{}/v2/{repo}/manifests/{MOVING_TAG}", self.base);
        let request = self
            .http
            .put(url)
            .header("content-type", MANIFEST)
            .body(image.manifest.clone());
        let digest = image.digest.clone();
        self.current = Some(Pending::TagMove(image));
        self.expect(Phase::TagMove, request, 201, "tag move")?;
        self.current = None;
        self.outcome.moves.push((repo.to_string(), digest));
        Ok(())
    }

    fn blob(&mut self, repo: &str, blob: BlobPlan) -> Result<(), Stop> {
        let BlobPlan {
            digest,
            data,
            upload,
        } = blob;
        let size = data.len() as u64;
        self.outcome
            .attempted
            .push((repo.to_string(), digest.clone(), size));
        let uploads = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let head = self
            .http
            .head(format!("{}/v2/{repo}/blobs/{digest}", self.base));
        if self.send(Phase::Head, head)?.status() == 200 {
            return Err(Stop::Unexpected(format!(
                "{repo}: fresh blob {digest} already there before its upload"
            )));
        }
        match upload {
            Upload::Monolithic => {
                let request = self
                    .http
                    .post(format!("{uploads}?digest={digest}"))
                    .header("content-type", "application/octet-stream")
                    .body(data.clone());
                self.current = Some(Pending::Blob {
                    repo: repo.to_string(),
                    digest,
                    data,
                    location: None,
                });
                self.expect(Phase::Monolithic, request, 201, "monolithic POST")?;
            }
            Upload::PostPut => {
                self.current = Some(Pending::Blob {
                    repo: repo.to_string(),
                    digest: digest.clone(),
                    data: data.clone(),
                    location: None,
                });
                let location = self.start_upload(&uploads)?;
                self.set_location(&location);
                let request = self
                    .http
                    .put(with_digest(&location, &digest))
                    .header("content-type", "application/octet-stream")
                    .body(data);
                self.expect(Phase::Commit, request, 201, "PUT with the blob")?;
            }
            Upload::Chunked { chunk, streamed } => {
                self.current = Some(Pending::Blob {
                    repo: repo.to_string(),
                    digest: digest.clone(),
                    data: data.clone(),
                    location: None,
                });
                let mut location = self.start_upload(&uploads)?;
                self.set_location(&location);
                for (i, piece) in data.chunks(chunk).enumerate() {
                    let start = i * chunk;
                    let reader = Throttled {
                        data: piece.to_vec(),
                        pos: 0,
                    };
                    let mut request = self
                        .http
                        .patch(&location)
                        .header("content-type", "application/octet-stream");
                    request = if streamed {
                        request.body(Body::new(reader))
                    } else {
                        let end = start + piece.len() - 1;
                        request
                            .header("content-range", format!("{start}-{end}"))
                            .body(Body::sized(reader, piece.len() as u64))
                    };
                    location = self
                        .expect(Phase::Patch, request, 202, "PATCH")?
                        .ok_or_else(|| Stop::Unexpected("PATCH without Location".into()))?;
                    self.set_location(&location);
                }
                let request = self.http.put(with_digest(&location, &digest));
                self.expect(Phase::Commit, request, 201, "commit PUT")?;
            }
        }
        self.current = None;
        Ok(())
    }

    fn start_upload(&mut self, uploads: &str) -> Result<String, Stop> {
        self.expect(Phase::Post, self.http.post(uploads), 202, "POST")?
            .ok_or_else(|| Stop::Unexpected("POST without Location".into()))
    }

    fn set_location(&mut self, new: &str) {
        if let Some(Pending::Blob { location, .. }) = &mut self.current {
            *location = Some(new.to_string());
        }
    }
}

/// A request body that trickles out, so that a kill lands mid-body.
struct Throttled {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos > 0 && self.pos < self.data.len() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let n = buf.len().min(THROTTLE_STEP).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

// ---------------------------------------------------------------------------
// Planning a round
// ---------------------------------------------------------------------------

/// Model: what must be true of the registry.
#[derive(Default)]
struct Model {
    /// Every acknowledged image, oldest first (nothing is ever deleted).
    images: Vec<Image>,
    /// (repo, tag) -> manifest digest.
    tags: BTreeMap<(String, String), String>,
    /// Manifest bytes by digest.
    manifests: HashMap<String, Vec<u8>>,
}

impl Model {
    fn add_image(&mut self, image: &Image) {
        self.tags.insert(
            (image.repo.clone(), image.tag.clone()),
            image.digest.clone(),
        );
        self.manifests
            .insert(image.digest.clone(), image.manifest.clone());
        self.images.push(image.clone());
    }

    fn move_tag(&mut self, repo: &str, digest: &str) {
        self.tags.insert(
            (repo.to_string(), MOVING_TAG.to_string()),
            digest.to_string(),
        );
    }
}

fn plan_round(rng: &mut Rng, seed: u64, round: u64, model: &Model) -> Vec<Step> {
    const MIB: u64 = 1024 * 1024;
    let mut steps = Vec::new();
    for i in 0..rng.range(3, 5) {
        let repo = rng.pick(&REPOS).copied().unwrap_or(REPOS[0]).to_string();
        let config = format!("{{\"seed\":{seed},\"round\":{round},\"image\":{i}}}").into_bytes();
        let mut uploads = vec![BlobPlan {
            digest: sha256_digest(&config),
            data: config,
            upload: Upload::Monolithic,
        }];
        for _ in 0..rng.range(1, 3) {
            let upload = match rng.range(0, 3) {
                0 => Upload::Monolithic,
                1 => Upload::PostPut,
                _ => Upload::Chunked {
                    chunk: rng.range(MIB, 2 * MIB) as usize,
                    streamed: rng.chance(40),
                },
            };
            let size = match upload {
                Upload::Chunked { .. } => rng.range(2 * MIB, 5 * MIB),
                _ => rng.range(1, 2 * MIB),
            };
            let data = rng.bytes(size as usize);
            uploads.push(BlobPlan {
                digest: sha256_digest(&data),
                data,
                upload,
            });
        }
        let mut blobs: Vec<(String, u64)> = uploads
            .iter()
            .map(|b| (b.digest.clone(), b.data.len() as u64))
            .collect();
        // Sometimes a layer an acknowledged image of this repository has.
        let earlier: Vec<&Image> = model.images.iter().filter(|m| m.repo == repo).collect();
        if rng.chance(30)
            && let Some(layer) = rng
                .pick(&earlier)
                .and_then(|m| m.blobs.get(1..).and_then(|l| rng.pick(l)))
            && !blobs.contains(layer)
        {
            let at = rng.range(1, blobs.len() as u64) as usize;
            blobs.insert(at, layer.clone());
        }
        let layers: Vec<(String, usize)> = blobs[1..]
            .iter()
            .map(|(d, s)| (d.clone(), *s as usize))
            .collect();
        let manifest = image_manifest((&blobs[0].0, blobs[0].1 as usize), &layers);
        let image = Image {
            digest: sha256_digest(&manifest),
            tag: format!("r{round}-{i}"),
            repo: repo.clone(),
            manifest,
            blobs,
            round,
        };
        steps.push(Step::Image { image, uploads });
        if rng.chance(50) {
            steps.push(Step::MoveTag { repo });
        }
    }
    steps
}

fn count(steps: &[Step], phase: Phase) -> u32 {
    let mut n = 0;
    for step in steps {
        match step {
            Step::Image { uploads, .. } => match phase {
                Phase::Manifest => n += 1,
                Phase::Patch | Phase::Commit => {
                    for b in uploads {
                        n += match (b.upload, phase) {
                            (Upload::Chunked { chunk, .. }, Phase::Patch) => {
                                b.data.len().div_ceil(chunk) as u32
                            }
                            (Upload::Chunked { .. } | Upload::PostPut, Phase::Commit) => 1,
                            _ => 0,
                        };
                    }
                }
                _ => {}
            },
            Step::MoveTag { .. } => n += u32::from(phase == Phase::TagMove),
        }
    }
    n
}

/// Aims this round's kill: at the n-th request of the round's target phase,
/// after a delay spread over 0 to 1.5 times how long such a request has
/// taken so far (`typical`), so kills land before, inside and just after the
/// server's work however fast or loaded the machine is.
fn pick_target(rng: &mut Rng, round: u64, steps: &[Step], typical: &Timing) -> Target {
    let aim = TARGETS[round as usize % TARGETS.len()];
    if let Some(phase) = aim {
        let n = count(steps, phase);
        if n > 0 {
            let permille = rng.range(0, 1500) as u32;
            return Target::Nth(
                phase,
                rng.range(1, u64::from(n)) as u32,
                typical.of(phase) * permille / 1000,
            );
        }
    }
    Target::Clock(Duration::from_millis(rng.range(0, 700)))
}

/// How long each kind of request takes, over all rounds so far.
#[derive(Default)]
struct Timing([(Duration, u32); Phase::COUNT]);

impl Timing {
    fn add(&mut self, more: &[(Duration, u32); Phase::COUNT]) {
        for (mine, (total, n)) in self.0.iter_mut().zip(more) {
            mine.0 += *total;
            mine.1 += n;
        }
    }

    fn of(&self, phase: Phase) -> Duration {
        match self.0[phase as usize] {
            (total, n) if n > 0 => total / n,
            // Before any measurement: a throttled chunk is ~16-32 ms on the
            // wire, a commit or manifest PUT a few ms.
            _ if phase == Phase::Patch => Duration::from_millis(30),
            _ => Duration::from_millis(5),
        }
    }
}

// ---------------------------------------------------------------------------
// Checking the registry after a restart
// ---------------------------------------------------------------------------

struct Checker<'a> {
    http: Client,
    base: String,
    failures: Vec<String>,
    /// (repo, digest) read in full this round.
    read: HashSet<(String, String)>,
    notes: Vec<String>,
    root: &'a Path,
}

impl Checker<'_> {
    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    fn get(&mut self, url: &str) -> Option<(u16, Vec<u8>)> {
        match self
            .http
            .get(url)
            .header("accept", MANIFEST)
            .send()
            .and_then(|r| {
                let status = r.status().as_u16();
                r.bytes().map(|b| (status, b.to_vec()))
            }) {
            Ok(answer) => Some(answer),
            Err(e) => {
                self.fail(format!("GET {url}: {e}"));
                None
            }
        }
    }

    fn head_status(&mut self, url: &str) -> Option<(u16, Option<u64>)> {
        match self.http.head(url).send() {
            Ok(r) => {
                let len = r
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Some((r.status().as_u16(), len))
            }
            Err(e) => {
                self.fail(format!("HEAD {url}: {e}"));
                None
            }
        }
    }

    /// A blob that must be there, whole.
    fn blob_intact(&mut self, repo: &str, digest: &str, size: u64, full: bool) {
        let key = (repo.to_string(), digest.to_string());
        if self.read.contains(&key) {
            return;
        }
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        if !full {
            match self.head_status(&url) {
                Some((200, Some(len))) if len == size => {}
                Some(other) => self.fail(format!(
                    "{repo}: blob {digest} of an acknowledged image: HEAD {other:?}, size {size}"
                )),
                None => {}
            }
            return;
        }
        match self.get(&url) {
            Some((200, body)) => self.content_matches(repo, digest, size, &body),
            Some((status, body)) => self.fail(format!(
                "{repo}: blob {digest} of an acknowledged image: GET {status}: {}",
                String::from_utf8_lossy(&body)
            )),
            None => {}
        }
        self.read.insert(key);
    }

    fn content_matches(&mut self, repo: &str, digest: &str, size: u64, body: &[u8]) {
        let actual = sha256_digest(body);
        if actual != digest || body.len() as u64 != size {
            self.fail(format!(
                "{repo}: blob {digest} ({size} bytes) served {} bytes hashing to {actual}",
                body.len()
            ));
        }
    }

    /// A blob that may or may not have been committed: absent, or whole.
    fn blob_absent_or_intact(&mut self, repo: &str, digest: &str, size: u64) -> bool {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        match self.head_status(&url) {
            Some((200, _)) => {
                self.blob_intact(repo, digest, size, true);
                true
            }
            Some((404, _)) => false,
            Some((status, _)) => {
                self.fail(format!("{repo}: HEAD blob {digest}: {status}"));
                false
            }
            None => false,
        }
    }

    /// `GET manifests/<reference>`: Some(bytes) on 200, None on 404
    /// MANIFEST_UNKNOWN; anything else is a failure (and None).
    fn manifest(&mut self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        match self.get(&url)? {
            (200, body) => Some(body),
            (404, body) if String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN") => None,
            (status, body) => {
                self.fail(format!(
                    "GET {repo} manifest {reference}: {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
                None
            }
        }
    }

    fn image_intact(&mut self, image: &Image, by_tag: bool, full: bool) {
        for reference in [Some(&image.digest), by_tag.then_some(&image.tag)]
            .into_iter()
            .flatten()
        {
            match self.manifest(&image.repo, reference) {
                Some(bytes) if bytes == image.manifest => {}
                Some(_) => self.fail(format!(
                    "{}:{reference}: manifest bytes differ from what was pushed",
                    image.repo
                )),
                None => self.fail(format!(
                    "{}:{reference}: acknowledged manifest is gone",
                    image.repo
                )),
            }
        }
        for (digest, size) in &image.blobs {
            self.blob_intact(&image.repo, digest, *size, full);
        }
    }

    /// A fresh monolithic upload of a blob the kill interrupted.
    fn upload_again(&mut self, repo: &str, digest: &str, data: &[u8]) {
        let url = format!("{}/v2/{repo}/blobs/uploads/?digest={digest}", self.base);
        match self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
        {
            Ok(r) if r.status() == 201 => self.blob_intact(repo, digest, data.len() as u64, true),
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().unwrap_or_default();
                self.fail(format!(
                    "{repo}: uploading {digest} again: {status}: {body}"
                ));
            }
            Err(e) => self.fail(format!("{repo}: uploading {digest} again: {e}")),
        }
    }

    /// Finishes an upload interrupted by the kill, if the server still has
    /// it: the bytes it kept must be a prefix of ours.
    fn resume(&mut self, repo: &str, digest: &str, data: &[u8], location: &str) -> bool {
        let status = match self.http.get(location).send() {
            Ok(r) => r,
            Err(e) => {
                self.fail(format!("GET {location}: {e}"));
                return false;
            }
        };
        match status.status().as_u16() {
            404 => return false,
            204 => {}
            other => {
                self.fail(format!("{repo}: upload status after restart: {other}"));
                return false;
            }
        }
        let range = status
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let Some(last) = range
            .strip_prefix("0-")
            .and_then(|l| l.parse::<usize>().ok())
        else {
            self.fail(format!("{repo}: upload status Range {range:?}"));
            return false;
        };
        // "0-0" is either no byte or one byte.
        let offsets = if last == 0 {
            vec![1, 0]
        } else {
            vec![last + 1]
        };
        for offset in offsets {
            if offset > data.len() {
                self.fail(format!(
                    "{repo}: interrupted upload holds {offset} bytes of {}",
                    data.len()
                ));
                return false;
            }
            let rest = &data[offset..];
            let mut location = location.to_string();
            if !rest.is_empty() {
                let end = data.len() - 1;
                let answer = self
                    .http
                    .patch(&location)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{offset}-{end}"))
                    .body(rest.to_vec())
                    .send();
                match answer {
                    Ok(r) if r.status() == 202 => {
                        if let Some(l) = r.headers().get("location").and_then(|v| v.to_str().ok()) {
                            location = absolute(&self.base, l);
                        }
                    }
                    Ok(r) if r.status() == 416 && last == 0 && offset == 1 => continue,
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().unwrap_or_default();
                        self.fail(format!("{repo}: resuming PATCH: {status}: {body}"));
                        return false;
                    }
                    Err(e) => {
                        self.fail(format!("{repo}: resuming PATCH: {e}"));
                        return false;
                    }
                }
            }
            match self.http.put(with_digest(&location, digest)).send() {
                Ok(r) if r.status() == 201 => {
                    self.blob_intact(repo, digest, data.len() as u64, true);
                    return true;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.text().unwrap_or_default();
                    self.fail(format!(
                        "{repo}: committing the resumed upload of {digest}: {status}: {body}"
                    ));
                }
                Err(e) => self.fail(format!("{repo}: committing the resumed upload: {e}")),
            }
            return false;
        }
        false
    }

    /// Catalog and tag lists name exactly the tags the model has, and every
    /// tag resolves to a complete image.
    fn listings(&mut self, model: &Model) {
        let Some((200, body)) = self.get(&format!("{}/v2/_catalog", self.base)) else {
            self.fail("GET /v2/_catalog did not answer 200".into());
            return;
        };
        let catalog: serde_json::Value = serde_json::from_slice(&body).expect("catalog JSON");
        let listed: BTreeSet<String> = catalog["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let with_tags: BTreeSet<String> = model.tags.keys().map(|(r, _)| r.clone()).collect();
        for repo in with_tags.difference(&listed) {
            self.fail(format!("catalog lacks {repo}, which has tags: {listed:?}"));
        }
        for repo in &listed {
            if !REPOS.contains(&repo.as_str()) {
                self.fail(format!("catalog lists {repo}, which nobody pushed to"));
                continue;
            }
            let expected: BTreeSet<String> = model
                .tags
                .keys()
                .filter(|(r, _)| r == repo)
                .map(|(_, t)| t.clone())
                .collect();
            let url = format!("{}/v2/{repo}/tags/list", self.base);
            let tags: BTreeSet<String> = match self.get(&url) {
                Some((200, body)) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).expect("tags list JSON");
                    v["tags"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|t| t.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                }
                Some((404, _)) => BTreeSet::new(),
                Some((status, _)) => {
                    self.fail(format!("{repo}: tags/list answered {status}"));
                    continue;
                }
                None => continue,
            };
            if tags != expected {
                self.fail(format!(
                    "{repo}: tags listed {:?}, expected {:?}",
                    tags.difference(&expected).collect::<Vec<_>>(),
                    expected.difference(&tags).collect::<Vec<_>>()
                ));
            }
        }
        // Every tag (the moving one included) serves the manifest the model
        // says, and that manifest's blobs are all there.
        for ((repo, tag), digest) in &model.tags {
            match self.manifest(repo, tag) {
                Some(bytes) if Some(&bytes) == model.manifests.get(digest) => {}
                Some(bytes) => self.fail(format!(
                    "{repo}:{tag} serves {}, expected {digest}",
                    sha256_digest(&bytes)
                )),
                None => self.fail(format!("{repo}:{tag} is gone")),
            }
        }
    }

    fn fsck(&mut self) {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("fsck")
            .arg("--root")
            .arg(self.root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run berth fsck");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("0 corrupt, 0 dangling") {
            self.fail(format!(
                "berth fsck: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}

/// Resolves what the kill interrupted against the restarted server; the
/// model learns whatever landed. Returns a note for the round line.
fn settle(checker: &mut Checker, model: &mut Model, pending: Option<Pending>) -> String {
    match pending {
        None => "nothing pending".into(),
        Some(Pending::Blob {
            repo,
            digest,
            data,
            location,
        }) => {
            let size = data.len() as u64;
            let present = checker.blob_absent_or_intact(&repo, &digest, size);
            if present {
                return "blob committed".into();
            }
            if let Some(location) = location
                && checker.resume(&repo, &digest, &data, &location)
            {
                return "blob absent, upload resumed".into();
            }
            // What a client does next: upload it again. The bytes may already
            // be under blobs/ (committed, not yet linked, when the kill came).
            checker.upload_again(&repo, &digest, &data);
            "blob absent, uploaded again".into()
        }
        Some(Pending::Manifest(image)) => {
            let by_tag = checker.manifest(&image.repo, &image.tag);
            let by_digest = checker.manifest(&image.repo, &image.digest);
            match (by_tag, by_digest) {
                (None, None) => "manifest absent".into(),
                (Some(t), Some(d)) if t == image.manifest && d == image.manifest => {
                    model.add_image(&image);
                    checker.image_intact(&image, true, true);
                    "manifest landed".into()
                }
                (t, d) => {
                    checker.fail(format!(
                        "{}:{} half there after the kill: by tag {}, by digest {}",
                        image.repo,
                        image.tag,
                        t.map_or("404".into(), |b| sha256_digest(&b)),
                        d.map_or("404".into(), |b| sha256_digest(&b)),
                    ));
                    "manifest half there".into()
                }
            }
        }
        Some(Pending::TagMove(image)) => {
            let before = model
                .tags
                .get(&(image.repo.clone(), MOVING_TAG.to_string()))
                .cloned();
            match checker.manifest(&image.repo, MOVING_TAG) {
                Some(bytes) if bytes == image.manifest => {
                    model.move_tag(&image.repo, &image.digest);
                    "tag moved".into()
                }
                Some(bytes)
                    if before.as_ref().and_then(|d| model.manifests.get(d)) == Some(&bytes) =>
                {
                    "tag kept".into()
                }
                None if before.is_none() => "tag absent".into(),
                other => {
                    checker.fail(format!(
                        "{}:{MOVING_TAG} after an interrupted move to {}: {}, was {before:?}",
                        image.repo,
                        image.digest,
                        other.map_or("404".into(), |b| sha256_digest(&b))
                    ));
                    "tag broken".into()
                }
            }
        }
    }
}

#[derive(Default)]
struct Totals {
    kills: BTreeMap<&'static str, u64>,
    images: u64,
    landed: u64,
    /// How what the kill interrupted turned out, and how often.
    settled: BTreeMap<String, u64>,
    timing: Timing,
}

fn tally<K: std::fmt::Display>(counts: &BTreeMap<K, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[test]
fn sigkill_during_pushes_leaves_nothing_partial_and_loses_nothing_acknowledged() {
    let rounds = env_u64("BERTH_TEST_CRASH_ROUNDS").unwrap_or(DEFAULT_ROUNDS);
    let seed = env_u64("BERTH_TEST_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("crash: {rounds} rounds, BERTH_TEST_CRASH_SEED={seed}");
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("data");
    let mut berth = Berth::builder().root(&root).start();
    let mut model = Model::default();
    let mut totals = Totals::default();

    for round in 0..rounds {
        let mut rng = Rng::new(seed ^ round.wrapping_mul(0xa076_1d64_78bd_642f));
        let steps = plan_round(&mut rng, seed, round, &model);
        let target = pick_target(&mut rng, round, &steps, &totals.timing);
        let tracker = Arc::new(Tracker::default());
        let pusher = Pusher {
            http: Client::new(),
            base: berth.url(),
            tracker: tracker.clone(),
            rng: Rng::new(rng.next()),
            known: model.images.clone(),
            current: None,
            outcome: Outcome::default(),
        };
        let handle = std::thread::spawn(move || pusher.run(steps));

        let reached = match target {
            Target::Nth(phase, n, delay) => {
                let reached = tracker.wait_for(phase, n, Duration::from_secs(60));
                std::thread::sleep(delay);
                reached
            }
            Target::Clock(delay) => {
                std::thread::sleep(delay);
                true
            }
        };
        let in_flight = tracker.in_flight();
        berth.kill();
        let outcome = match handle.join().expect("pusher thread") {
            Ok(outcome) => outcome,
            Err(what) => {
                panic!("round {round} (BERTH_TEST_CRASH_SEED={seed}): before the kill, {what}")
            }
        };
        let class = match (&outcome.interrupted, in_flight) {
            (None, _) => "after the push",
            (Some(_), None) => "between requests",
            (Some((phase, _)), Some(_)) => phase.label(),
        };
        *totals.kills.entry(class).or_default() += 1;

        berth.restart();
        let mut checker = Checker {
            http: Client::new(),
            base: berth.url(),
            failures: Vec::new(),
            read: HashSet::new(),
            notes: Vec::new(),
            root: &root,
        };
        for image in &outcome.acked {
            model.add_image(image);
        }
        for (repo, digest) in &outcome.moves {
            model.move_tag(repo, digest);
        }
        let landed_before = model.images.len();
        totals.timing.add(&outcome.timing);
        let pending = outcome.interrupted.and_then(|(_, p)| p);
        let note = settle(&mut checker, &mut model, pending);
        totals.landed += (model.images.len() - landed_before) as u64;
        *totals.settled.entry(note.clone()).or_default() += 1;
        // Every blob an upload started for: absent, or whole.
        for (repo, digest, size) in &outcome.attempted {
            checker.blob_absent_or_intact(repo, digest, *size);
        }
        // Every acknowledged image: manifests byte-identical, blobs there;
        // this round's and a few older ones read back in full.
        let old: Vec<usize> = (0..model.images.len())
            .filter(|&i| model.images[i].round < round)
            .collect();
        let mut reread = HashSet::new();
        for _ in 0..OLD_IMAGES_REREAD {
            if let Some(&i) = rng.pick(&old) {
                reread.insert(i);
            }
        }
        for (i, image) in model.images.iter().enumerate() {
            let by_tag =
                model.tags.get(&(image.repo.clone(), image.tag.clone())) == Some(&image.digest);
            let full = image.round == round || reread.contains(&i);
            checker.image_intact(image, by_tag, full);
        }
        checker.listings(&model);
        checker.fsck();
        totals.images = model.images.len() as u64;
        eprintln!(
            "crash round {round}: target {target:?}{}, kill: {class}; {} acked, {} moves, {}; {} images in store ({:.1}s)",
            if reached { "" } else { " (not reached)" },
            outcome.acked.len(),
            outcome.moves.len(),
            note,
            model.images.len(),
            started.elapsed().as_secs_f64(),
        );
        for note in &checker.notes {
            eprintln!("  note: {note}");
        }
        assert!(
            checker.failures.is_empty(),
            "round {round} (BERTH_TEST_CRASH_SEED={seed}), killed during {class}:\n{}",
            checker.failures.join("\n")
        );
    }

    // At the end, every acknowledged image is read back in full.
    let mut checker = Checker {
        http: Client::new(),
        base: berth.url(),
        failures: Vec::new(),
        read: HashSet::new(),
        notes: Vec::new(),
        root: &root,
    };
    for image in &model.images {
        let by_tag =
            model.tags.get(&(image.repo.clone(), image.tag.clone())) == Some(&image.digest);
        checker.image_intact(image, by_tag, true);
    }
    assert!(
        checker.failures.is_empty(),
        "final read-back (BERTH_TEST_CRASH_SEED={seed}):\n{}",
        checker.failures.join("\n")
    );
    berth.stop();
    eprintln!(
        "crash: {rounds} rounds in {:.1}s; kills by request: {}; what the kill interrupted: {}; {} images verified ({} landed despite the kill)",
        started.elapsed().as_secs_f64(),
        tally(&totals.kills),
        tally(&totals.settled),
        totals.images,
        totals.landed,
    );
}
