//! Real clients through the cache: dockerd with registry-mirrors,
//! containerd with a hosts.toml mirror, skopeo and podman through a
//! prefix, against real upstreams on loopback (Debian's registry:2, plain
//! and with htpasswd over TLS, and a Berth with logins in token mode).
//! No internet: a pull that does not come through Berth fails.

use crate::common::clients::{
    Dockerd, Podman, catalog, exec, run, serial, skopeo, skopeo_pull_and_compare, skopeo_push,
};
use crate::common::containerd::Containerd;
use crate::common::distribution::Registry2;
use crate::common::images::{self, ImageSpec, TestImage};
use crate::common::{Berth, Registry, sha256_digest};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Prints these logs when the test fails (Berth's debug log, dockerd's…).
struct ShowOnPanic(Vec<PathBuf>);

impl Drop for ShowOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for path in &self.0 {
                let log = fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(120).collect();
                eprintln!("--- last lines of {} ---", path.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// The repositories of a catalog answer.
fn repositories(berth: &dyn Registry) -> Vec<String> {
    catalog(berth)["repositories"]
        .as_array()
        .expect("catalog repositories")
        .iter()
        .map(|r| r.as_str().expect("repository name").to_owned())
        .collect()
}

/// A second small image, the other platform of the multi-arch index.
fn small_arm64() -> TestImage {
    images::ensure(&ImageSpec {
        name: "small-arm64",
        tag: "v1",
        layers: 1,
        layer_size: 256 << 10,
        gzip: true,
    })
}

/// A multi-arch image: an OCI layout at `dir` whose tag `v1` is an image
/// index over `small` (linux/amd64) and `small-arm64` (linux/arm64).
/// Returns the index digest and the two images.
fn multiarch_layout(dir: &Path) -> (String, Vec<TestImage>) {
    let children = vec![images::small(), small_arm64()];
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (image, arch) in children.iter().zip(["amd64", "arm64"]) {
        let digests = [&image.manifest_digest, &image.config_digest]
            .into_iter()
            .chain(&image.layer_digests);
        for digest in digests {
            fs::copy(
                images::blob_path(&image.layout, digest),
                images::blob_path(dir, digest),
            )
            .unwrap();
        }
        manifests.push(json!({
            "mediaType": images::MEDIA_TYPE_MANIFEST,
            "digest": image.manifest_digest,
            "size": image.manifest_bytes().len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let digest = sha256_digest(&index);
    fs::write(images::blob_path(dir, &digest), &index).unwrap();
    let layout_index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": INDEX,
            "digest": digest,
            "size": index.len(),
            "annotations": {REF_NAME: "v1"},
        }],
    });
    fs::write(dir.join("index.json"), layout_index.to_string()).unwrap();
    (digest, children)
}

/// `skopeo copy --all` of `repo:v1` out of `berth` into a fresh OCI
/// layout; the index, every child manifest and every blob must arrive with
/// the source's digests and bytes.
fn pull_multiarch_and_compare(berth: &Berth, repo: &str, index: &str, children: &[TestImage]) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("pulled");
    run(skopeo([
        "copy".to_owned(),
        "--all".to_owned(),
        "--preserve-digests".to_owned(),
        "--src-tls-verify=false".to_owned(),
        format!("docker://{}/{repo}:v1", berth.addr),
        format!("oci:{}:v1", layout.display()),
    ]));
    let (digest, _, parsed) = images::read_layout(&layout, "v1");
    assert_eq!(digest, index, "pulled index digest of {repo}:v1");
    let listed: Vec<&str> = parsed["manifests"]
        .as_array()
        .expect("index manifests")
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = children
        .iter()
        .map(|c| c.manifest_digest.as_str())
        .collect();
    assert_eq!(listed, expected, "child manifests of the pulled index");
    for child in children {
        let digests = [&child.manifest_digest, &child.config_digest]
            .into_iter()
            .chain(&child.layer_digests);
        for digest in digests {
            let path = images::blob_path(&layout, digest);
            assert!(
                path.exists(),
                "blob {digest} of {} missing after skopeo copy --all",
                child.name
            );
            assert_eq!(
                &images::sha256_file(&path),
                digest,
                "content of pulled {}",
                path.display()
            );
        }
    }
}

fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash_with_result(password, 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    fs::write(path, format!("{user}:{hash}\n")).expect("htpasswd");
}

/// GET a manifest without credentials: (status, body, how long it took).
fn manifest_answer(berth: &Berth, repo: &str, reference: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .get(format!("{}/v2/{repo}/manifests/{reference}", berth.url()))
        .header("Accept", crate::common::clients::MANIFEST_ACCEPT)
        .send()
        .expect("GET manifest");
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    (status, body, started.elapsed())
}

#[test]
fn docker_registry_mirror_pulls_through_berth() {
    let _serial = serial();
    let image = images::small();
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Registry2::filesystem(&tmp.path().join("upstream"));
    skopeo_push(&upstream, &image, "library/berthmirror");

    let log = tmp.path().join("berth.log");
    let berth = Berth::builder()
        .args(&["--proxy", &upstream.url()])
        .log(&log)
        .start();
    let dockerd = Dockerd::start_with(&json!({
        "registry-mirrors": [berth.url()],
        "insecure-registries": [berth.addr],
    }));
    let _logs = ShowOnPanic(vec![log.clone(), dockerd.path().join("dockerd.log")]);

    // docker.io/library/berthmirror:v1: Docker Hub is out of reach, so
    // only the mirror can answer.
    dockerd.docker(&["pull", "berthmirror:v1"]);
    let id = dockerd.image_id("berthmirror:v1");
    assert_eq!(id, image.config_digest, "image ID = the upstream's config");
    let repo_digests = dockerd.docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        "berthmirror:v1",
    ]);
    assert!(
        repo_digests.contains(&format!("berthmirror@{}", image.manifest_digest)),
        "RepoDigests {repo_digests} should name the manifest {}",
        image.manifest_digest
    );
    let repos = repositories(&berth);
    assert!(
        repos.contains(&"library/berthmirror".to_owned()),
        "catalog after the mirrored pull: {repos:?}"
    );

    // The upstream goes away: the cached tag still pulls.
    drop(upstream);
    dockerd.docker(&["rmi", "berthmirror:v1"]);
    let gone = exec(
        dockerd.cmd(["image", "inspect", &id]),
        Duration::from_secs(60),
    );
    assert!(!gone.status.success(), "image {id} still present after rmi");
    dockerd.docker(&["pull", "berthmirror:v1"]);
    assert_eq!(
        dockerd.image_id("berthmirror:v1"),
        image.config_digest,
        "image ID of the cached pull"
    );
}

/// A containerd hosts directory whose `docker.io/hosts.toml` names
/// `berth` as the mirror, with Docker Hub (out of reach) as the server.
fn hosts_dir(dir: &Path, berth: &Berth) -> PathBuf {
    fs::create_dir_all(dir.join("docker.io")).unwrap();
    fs::write(
        dir.join("docker.io/hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n\n\
             [host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            berth.url()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

/// `ctr images pull --hosts-dir HOSTS --snapshotter native [extra] REF`.
fn ctr_pull(containerd: &Containerd, hosts: &Path, extra: &[&str], reference: &str) {
    let mut args = vec![
        "images",
        "pull",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        "--snapshotter",
        "native",
    ];
    args.extend_from_slice(extra);
    args.push(reference);
    containerd.ctr(&args);
}

/// containerd's store holds every blob of `image`.
fn assert_content_has(containerd: &Containerd, image: &TestImage) {
    let content = containerd.content_digests();
    let digests = [&image.manifest_digest, &image.config_digest]
        .into_iter()
        .chain(&image.layer_digests);
    for digest in digests {
        assert!(
            content.contains(digest),
            "blob {digest} of {} missing from containerd's content store: {content:?}",
            image.name
        );
    }
}

#[test]
fn containerd_hosts_dir_mirror_maps_ns_to_the_prefix() {
    let _serial = serial();
    let image = images::small();
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Registry2::filesystem(&tmp.path().join("upstream"));
    skopeo_push(&upstream, &image, "library/berthctr");
    skopeo_push(&upstream, &image, "library/berthplain");
    let (index, children) = multiarch_layout(&tmp.path().join("multiarch"));
    run(skopeo([
        "copy".to_owned(),
        "--all".to_owned(),
        "--preserve-digests".to_owned(),
        "--dest-tls-verify=false".to_owned(),
        format!("oci:{}:v1", tmp.path().join("multiarch").display()),
        format!("docker://{}/library/berthmulti:v1", upstream.addr()),
    ]));

    // `?ns=docker.io` maps to the prefix of the entry with that registry.
    let log = tmp.path().join("berth.log");
    let berth = Berth::builder()
        .config(&format!(
            "[[proxy]]\nprefix = \"hub\"\nurl = {:?}\nregistry = \"docker.io\"\n",
            upstream.url()
        ))
        .log(&log)
        .start();
    // An unprefixed mirror: the same requests land under the plain name.
    let plain_log = tmp.path().join("berth-plain.log");
    let plain = Berth::builder()
        .args(&["--proxy", &upstream.url()])
        .log(&plain_log)
        .start();
    let hosts = hosts_dir(&tmp.path().join("certs.d"), &berth);
    let plain_hosts = hosts_dir(&tmp.path().join("plain.d"), &plain);
    let containerd = Containerd::start();
    let _logs = ShowOnPanic(vec![
        log.clone(),
        plain_log.clone(),
        containerd.path().join("containerd.log"),
    ]);

    let reference = "docker.io/library/berthctr:v1";
    ctr_pull(&containerd, &hosts, &[], reference);
    assert_eq!(
        containerd.image_digest(reference).as_deref(),
        Some(image.manifest_digest.as_str()),
        "digest of the image containerd pulled through the mirror"
    );
    assert_content_has(&containerd, &image);

    // A multi-arch index, every platform.
    let multi = "docker.io/library/berthmulti:v1";
    ctr_pull(&containerd, &hosts, &["--all-platforms"], multi);
    assert_eq!(
        containerd.image_digest(multi).as_deref(),
        Some(index.as_str()),
        "digest of the multi-arch index containerd pulled"
    );
    assert!(
        containerd.content_digests().contains(&index),
        "the index is in containerd's store"
    );
    for child in &children {
        assert_content_has(&containerd, child);
    }

    let repos = repositories(&berth);
    assert_eq!(
        repos,
        ["hub/library/berthctr", "hub/library/berthmulti"],
        "?ns=docker.io should land under the prefix, nothing under the plain names"
    );

    let reference = "docker.io/library/berthplain:v1";
    ctr_pull(&containerd, &plain_hosts, &[], reference);
    assert_eq!(
        containerd.image_digest(reference).as_deref(),
        Some(image.manifest_digest.as_str()),
        "digest of the image containerd pulled through the unprefixed mirror"
    );
    assert_eq!(
        repositories(&plain),
        ["library/berthplain"],
        "the unprefixed mirror keeps the plain name"
    );
}

#[test]
fn skopeo_and_podman_through_a_prefix_cold_and_warm() {
    const USER: (&str, &str) = ("carol", "carol-Upstream-9!");
    let _serial = serial();
    let image = images::small();
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Registry2::filesystem_tls_htpasswd(&tmp.path().join("upstream"), USER.0, USER.1);
    let creds = format!("{}:{}", USER.0, USER.1);
    let cert_dir = upstream.cert_dir().display().to_string();
    run(skopeo([
        "copy".to_owned(),
        "--preserve-digests".to_owned(),
        format!("--dest-cert-dir={cert_dir}"),
        format!("--dest-creds={creds}"),
        image.oci_ref(),
        format!("docker://{}/library/small:v1", upstream.addr()),
    ]));
    let (index, children) = multiarch_layout(&tmp.path().join("multiarch"));
    run(skopeo([
        "copy".to_owned(),
        "--all".to_owned(),
        "--preserve-digests".to_owned(),
        format!("--dest-cert-dir={cert_dir}"),
        format!("--dest-creds={creds}"),
        format!("oci:{}:v1", tmp.path().join("multiarch").display()),
        format!("docker://{}/library/multiarch:v1", upstream.addr()),
    ]));

    let password_file = tmp.path().join("upstream-password");
    fs::write(&password_file, format!("{}\n", USER.1)).unwrap();
    let log = tmp.path().join("berth.log");
    let mut berth = Berth::builder()
        .config(&format!(
            "[[proxy]]\nprefix = \"hub\"\nurl = {:?}\nca_file = {:?}\nusername = {:?}\n\
             password_file = {:?}\ntag_ttl = \"0\"\n",
            upstream.url(),
            upstream.ca().display().to_string(),
            USER.0,
            password_file.display().to_string(),
        ))
        .log(&log)
        .start();
    let _logs = ShowOnPanic(vec![log.clone()]);

    // Cold: everything comes from the upstream (over TLS with its own CA,
    // with the login from the password file).
    skopeo_pull_and_compare(&berth, &image, "hub/library/small");
    pull_multiarch_and_compare(&berth, "hub/library/multiarch", &index, &children);

    let podman = Podman::new();
    let target = format!("{}/hub/library/small:v1", berth.addr);
    let pulled = podman.podman(&["pull", "--tls-verify=false", &target]);
    assert_eq!(
        format!("sha256:{}", pulled.lines().last().unwrap_or_default()),
        image.config_digest,
        "podman image ID = the upstream's config digest"
    );
    assert_eq!(
        podman.podman(&["image", "inspect", "--format", "{{.Digest}}", &target]),
        image.manifest_digest,
        "podman's digest of the pulled image"
    );

    // A push into the prefix is refused (tried while the upstream is up:
    // with it down, skopeo's first blob HEAD already gets a 503).
    let refused = exec(
        skopeo([
            "copy".to_owned(),
            "--dest-tls-verify=false".to_owned(),
            "--preserve-digests".to_owned(),
            image.oci_ref(),
            format!("docker://{}/hub/library/pushed:v1", berth.addr),
        ]),
        Duration::from_secs(120),
    );
    assert!(
        !refused.status.success(),
        "a push into hub/... should be refused: {}",
        refused.describe()
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .to_lowercase()
            .contains("denied"),
        "skopeo should report denied: {}",
        refused.describe()
    );
    assert!(
        !repositories(&berth).contains(&"hub/library/pushed".to_owned()),
        "nothing was stored for the refused push"
    );

    // Warm: the upstream is gone, the cache answers alone. With
    // `tag_ttl = "0"` every tag is checked upstream again, so this is the
    // stale path: the check fails and the cached tag is served.
    let upstream_addr = upstream.addr().to_owned();
    drop(upstream);
    skopeo_pull_and_compare(&berth, &image, "hub/library/small");
    pull_multiarch_and_compare(&berth, "hub/library/multiarch", &index, &children);
    podman.podman(&["rmi", "-f", &target]);
    let pulled = podman.podman(&["pull", "--tls-verify=false", &target]);
    assert_eq!(
        format!("sha256:{}", pulled.lines().last().unwrap_or_default()),
        image.config_digest,
        "podman image ID of the cached pull"
    );

    // Something never cached fails fast and names what went wrong.
    let (status, body, took) = manifest_answer(&berth, "hub/library/never", "v1");
    assert_eq!(status, 503, "uncached tag with the upstream down: {body}");
    assert!(
        body.contains("UNAVAILABLE") && body.contains(&upstream_addr),
        "the 503 should be UNAVAILABLE and name the upstream {upstream_addr}: {body}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the answer took {took:?}: {body}"
    );
    assert!(berth.running(), "berth is still up");
}

/// Seeds `root` with `image` as `repo` through an open Berth, so that a
/// Berth with logins started on it later already holds it.
fn seed(root: &Path, image: &TestImage, repo: &str) {
    let mut open = Berth::builder().root(root).start();
    skopeo_push(&open, image, repo);
    open.stop();
}

#[test]
fn token_upstream_berth_with_logins() {
    const ALICE: (&str, &str) = ("alice", "alice-Pa55word!");
    let _serial = serial();
    let image = images::small();
    let tmp = tempfile::tempdir().unwrap();
    let upstream_root = tmp.path().join("upstream");
    seed(&upstream_root, &image, "library/small");
    let htpasswd = tmp.path().join("htpasswd");
    write_htpasswd(&htpasswd, ALICE.0, ALICE.1);
    let upstream_log = tmp.path().join("upstream.log");
    let upstream = Berth::builder()
        .root(&upstream_root)
        .config(&format!(
            "[auth]\nmode = \"token\"\nhtpasswd = {:?}\n",
            htpasswd.display().to_string()
        ))
        .log(&upstream_log)
        .start();

    let log = tmp.path().join("berth.log");
    let mut cache = Berth::builder()
        .config(&format!(
            "[[proxy]]\nprefix = \"hub\"\nurl = {:?}\nusername = {:?}\npassword = {:?}\n",
            upstream.url(),
            ALICE.0,
            ALICE.1
        ))
        .log(&log)
        .start();
    let anon_log = tmp.path().join("anonymous.log");
    let mut anonymous = Berth::builder()
        .config(&format!(
            "[[proxy]]\nprefix = \"hub\"\nurl = {:?}\n",
            upstream.url()
        ))
        .log(&anon_log)
        .start();
    let _logs = ShowOnPanic(vec![log.clone(), anon_log.clone(), upstream_log.clone()]);

    skopeo_pull_and_compare(&cache, &image, "hub/library/small");
    let tokens = fs::read_to_string(&upstream_log)
        .unwrap_or_default()
        .matches("issued a registry token")
        .count();
    assert!(tokens >= 1, "the cache should have logged in with a token");
    assert!(
        repositories(&cache).contains(&"hub/library/small".to_owned()),
        "catalog of the cache"
    );

    // Without credentials: a clear refusal naming the upstream, no hang.
    let (status, body, took) = manifest_answer(&anonymous, "hub/library/small", "v1");
    assert!(
        status == 403 || status == 503,
        "a cache without credentials: {status} {body}"
    );
    assert!(
        body.contains("DENIED") || body.contains("UNAVAILABLE"),
        "error code in {body}"
    );
    assert!(
        body.contains(&upstream.addr),
        "the error should name the upstream {}: {body}",
        upstream.addr
    );
    assert!(took < Duration::from_secs(15), "the answer took {took:?}");
    let src = format!("docker://{}/hub/library/small:v1", anonymous.addr);
    let out = exec(
        skopeo(["inspect", "--raw", "--tls-verify=false", &src]),
        Duration::from_secs(120),
    );
    assert!(
        !out.status.success(),
        "skopeo through a cache without credentials: {}",
        out.describe()
    );
    assert!(cache.running() && anonymous.running());
    anonymous.stop();
    cache.stop();
}

/// GET `/v2/_catalog` as `user`.
fn catalog_as(berth: &Berth, user: (&str, &str)) -> Value {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v2/_catalog", berth.url()))
        .basic_auth(user.0, Some(user.1))
        .send()
        .expect("catalog");
    assert_eq!(resp.status().as_u16(), 200, "catalog as {}", user.0);
    resp.json().expect("catalog JSON")
}

/// Under both login modes: an anonymous pull of `hub/...` is refused
/// (token mode: 401 with a Bearer challenge, then an anonymous token that
/// grants nothing, so skopeo reports `denied`, as with Docker Hub; basic
/// mode: `unauthorized`), it makes the cache fetch nothing, and the same
/// pull with a login works.
#[test]
fn anonymous_callers_refused_where_rules_say_so() {
    const DAVE: (&str, &str) = ("dave", "dave-Cache-Login-3");
    let _serial = serial();
    let image = images::small();
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Registry2::filesystem(&tmp.path().join("upstream"));
    skopeo_push(&upstream, &image, "library/small");
    let htpasswd = tmp.path().join("htpasswd");
    write_htpasswd(&htpasswd, DAVE.0, DAVE.1);

    for (mode, challenge, says) in [
        ("token", "Bearer ", "denied"),
        ("basic", "Basic ", "unauthorized"),
    ] {
        let log = tmp.path().join(format!("berth-{mode}.log"));
        let berth = Berth::builder()
            .config(&format!(
                "[auth]\nmode = {mode:?}\nhtpasswd = {:?}\n\n\
                 [[auth.rules]]\nrepositories = [\"hub/**\"]\nusers = [\"*\"]\nactions = [\"pull\"]\n\n\
                 [[proxy]]\nprefix = \"hub\"\nurl = {:?}\n",
                htpasswd.display().to_string(),
                upstream.url()
            ))
            .log(&log)
            .start();
        let _logs = ShowOnPanic(vec![log.clone()]);

        let resp = reqwest::blocking::Client::new()
            .get(format!("{}/v2/hub/library/small/manifests/v1", berth.url()))
            .header("Accept", crate::common::clients::MANIFEST_ACCEPT)
            .send()
            .expect("anonymous GET");
        assert_eq!(
            resp.status().as_u16(),
            401,
            "{mode}: anonymous manifest GET"
        );
        let www = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(www.starts_with(challenge), "{mode}: challenge {www:?}");

        let src = format!("docker://{}/hub/library/small:v1", berth.addr);
        let anon = exec(
            skopeo(["inspect", "--raw", "--tls-verify=false", &src]),
            Duration::from_secs(120),
        );
        assert!(
            !anon.status.success(),
            "{mode}: an anonymous pull of hub/... should be refused: {}",
            anon.describe()
        );
        let stderr = String::from_utf8_lossy(&anon.stderr).to_lowercase();
        assert!(
            stderr.contains(says),
            "{mode}: skopeo should report {says}: {}",
            anon.describe()
        );
        // The refused caller made the cache fetch nothing.
        assert_eq!(
            catalog_as(&berth, DAVE),
            json!({"repositories": []}),
            "{mode}: catalog after the refused pull"
        );

        let creds = format!("--creds={}:{}", DAVE.0, DAVE.1);
        let out = run(skopeo([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &creds,
            &src,
        ]));
        assert_eq!(
            sha256_digest(&out.stdout),
            image.manifest_digest,
            "{mode}: manifest pulled with a login"
        );
        assert_eq!(
            catalog_as(&berth, DAVE),
            json!({"repositories": ["hub/library/small"]}),
            "{mode}: catalog after the pull with a login"
        );
    }
}
