//! `berth export` and `berth import` between stores, and with skopeo and
//! docker on the other side: identical digests and bytes after a round
//! trip in every format, shared blobs written once, damaged archives
//! refused whole with the bad entry named, `--verify-only` storing
//! nothing, and an import killed in the middle of a big layer finishing
//! on the next run.

use super::support::{OCI_INDEX, OCI_MANIFEST, berth, berth_ok, image, path, put, sign};
use crate::common::clients::{self, Dockerd, skopeo};
use crate::common::content::{bytes, descriptor};
use crate::common::{Berth, images, sha256_digest};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// What the source store holds.
struct Source {
    server: Berth,
    /// `multi:1`: an index of two platforms, and a signature of it.
    index: String,
    signature: String,
    /// Every blob digest (manifests included) the exported images need.
    digests: BTreeSet<String>,
}

/// `app:1` (one image), `multi:1` (amd64 + arm64, a signature of the
/// index), `shared/a:1` and `shared/b:1` (sharing a 2 MiB layer).
fn source() -> Source {
    let server = Berth::start();
    let (http, base) = (server.client(), server.url());
    let mut digests = BTreeSet::new();
    let app_layer = bytes("app layer", 3 << 20);
    image(&http, &base, "app", "1", "amd64", &[&app_layer]);
    let mut entries = Vec::new();
    let shared = bytes("platform shared", 500_000);
    for arch in ["amd64", "arm64"] {
        let own = bytes(format!("{arch} layer"), 300_000);
        let (digest, size) = image(&http, &base, "multi", "", arch, &[&shared, &own]);
        let mut entry = descriptor(OCI_MANIFEST, &digest, size);
        entry["platform"] = json!({"os": "linux", "architecture": arch});
        entries.push(entry);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        .to_string()
        .into_bytes();
    let index_digest = sha256_digest(&index);
    put(&http, &base, "multi", "1", OCI_INDEX, &index);
    let (signature_digest, _) = sign(&http, &base, "multi", &index_digest, index.len());
    let common = bytes("common layer", 2 << 20);
    for name in ["a", "b"] {
        let own = bytes(format!("{name} own layer"), 100_000);
        image(
            &http,
            &base,
            &format!("shared/{name}"),
            "1",
            "amd64",
            &[&common, &own],
        );
    }
    for (repo, tag) in [
        ("app", "1"),
        ("multi", "1"),
        ("shared/a", "1"),
        ("shared/b", "1"),
    ] {
        collect(&server, repo, tag, &mut digests);
    }
    collect(&server, "multi", &signature_digest, &mut digests);
    Source {
        server,
        index: index_digest,
        signature: signature_digest,
        digests,
    }
}

/// GET a manifest: (digest, bytes, parsed).
fn manifest(server: &Berth, repo: &str, reference: &str) -> Option<(String, Vec<u8>, Value)> {
    let url = format!("{}/v2/{repo}/manifests/{reference}", server.url());
    let resp = clients::http()
        .get(&url)
        .header("accept", ACCEPT)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200, "GET {url}");
    let bytes = resp.bytes().expect("body").to_vec();
    let parsed = serde_json::from_slice(&bytes).expect("JSON manifest");
    Some((sha256_digest(&bytes), bytes, parsed))
}

fn status(server: &Berth, repo: &str, reference: &str) -> u16 {
    let url = format!("{}/v2/{repo}/manifests/{reference}", server.url());
    clients::http()
        .get(&url)
        .header("accept", ACCEPT)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Every digest `repo:reference` needs: manifests, configs, layers.
fn collect(server: &Berth, repo: &str, reference: &str, out: &mut BTreeSet<String>) {
    let (digest, _, doc) = manifest(server, repo, reference)
        .unwrap_or_else(|| panic!("{repo}:{reference} is not there"));
    out.insert(digest);
    if let Some(children) = doc["manifests"].as_array() {
        for child in children {
            collect(server, repo, child["digest"].as_str().expect("digest"), out);
        }
    } else {
        out.insert(doc["config"]["digest"].as_str().expect("config").to_owned());
        for layer in doc["layers"].as_array().expect("layers") {
            out.insert(layer["digest"].as_str().expect("layer").to_owned());
        }
    }
}

/// `repo:reference` in `dst` is `src`'s, byte for byte, down to every
/// blob (whose bytes are hashed).
fn assert_same(src: &Berth, dst: &Berth, repo: &str, reference: &str) {
    assert_same_in(src, repo, dst, repo, reference);
}

fn assert_same_in(src: &Berth, src_repo: &str, dst: &Berth, dst_repo: &str, reference: &str) {
    let (want, want_bytes, doc) = manifest(src, src_repo, reference).expect("source manifest");
    let (got, got_bytes, _) = manifest(dst, dst_repo, reference)
        .unwrap_or_else(|| panic!("{dst_repo}:{reference} was not imported"));
    assert_eq!(got, want, "{dst_repo}:{reference}: manifest digest");
    assert_eq!(
        got_bytes, want_bytes,
        "{dst_repo}:{reference}: manifest bytes"
    );
    if let Some(children) = doc["manifests"].as_array() {
        for child in children {
            let child = child["digest"].as_str().expect("digest");
            assert_same_in(src, src_repo, dst, dst_repo, child);
        }
        return;
    }
    let mut blobs = vec![doc["config"].clone()];
    blobs.extend(doc["layers"].as_array().expect("layers").iter().cloned());
    for blob in blobs {
        let digest = blob["digest"].as_str().expect("digest");
        let url = format!("{}/v2/{dst_repo}/blobs/{digest}", dst.url());
        let body = clients::http().get(&url).send().expect("GET blob");
        assert_eq!(body.status(), 200, "GET {url}");
        let body = body.bytes().expect("blob body");
        assert_eq!(sha256_digest(&body), digest, "bytes of {url}");
        assert_eq!(
            Some(body.len() as u64),
            blob["size"].as_u64(),
            "size of {url}"
        );
    }
}

/// The referrers `dst` lists for `subject` in `repo`.
fn referrers(server: &Berth, repo: &str, subject: &str) -> Vec<String> {
    let url = format!("{}/v2/{repo}/referrers/{subject}", server.url());
    let doc = clients::get_json(&url);
    doc["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Paths of the regular files of a tar, any compression.
fn tar_files(archive: &Path) -> Vec<String> {
    let mut head = [0u8; 4];
    std::fs::File::open(archive)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read archive");
    let file = std::fs::File::open(archive).expect("open archive");
    let reader: Box<dyn std::io::Read> = match head {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::Decoder::new(file).expect("zstd")),
        _ => Box::new(file),
    };
    let mut tar = tar::Archive::new(reader);
    let mut files = Vec::new();
    for entry in tar.entries().expect("entries") {
        let entry = entry.expect("entry");
        if entry.header().entry_type().is_file() {
            files.push(entry.path().expect("path").display().to_string());
        }
    }
    files
}

fn blob_entries(files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| f.strip_prefix("blobs/sha256/"))
        .map(|hex| format!("sha256:{hex}"))
        .collect()
}

/// Every image, every format: export from one store, import into another
/// (while a server runs on it), identical digests and bytes; each blob
/// once in the archive.
#[test]
fn round_trip_in_every_format() {
    let src = source();
    let tmp = tempfile::tempdir().expect("tempdir");
    let refs = ["app:1", "multi", "shared/a:1", "shared/b"];
    for name in ["all.tar", "all.tar.gz", "all.tar.zst", "layout"] {
        let out = tmp.path().join(name);
        let mut args = vec!["export", "--root", path(&src.server.root), "-o", path(&out)];
        args.extend(refs);
        let exported = berth_ok(&args);
        assert!(
            exported.stdout_str().contains("exported 4 images"),
            "{}",
            exported.describe()
        );
        let written: Vec<String> = if out.is_dir() {
            std::fs::read_dir(out.join("blobs/sha256"))
                .expect("blobs")
                .map(|e| format!("sha256:{}", e.expect("entry").file_name().to_string_lossy()))
                .collect()
        } else {
            let files = tar_files(&out);
            assert_eq!(
                files[..2],
                ["oci-layout", "index.json"],
                "{name}: images first"
            );
            blob_entries(&files)
        };
        let unique: BTreeSet<String> = written.iter().cloned().collect();
        assert_eq!(unique.len(), written.len(), "{name}: a blob written twice");
        assert_eq!(
            unique, src.digests,
            "{name}: the blobs of the images, each once"
        );

        let dst = Berth::start();
        let imported = berth_ok(&["import", "--root", path(&dst.root), path(&out)]);
        assert!(
            imported.stdout_str().contains("imported 5 of 5 images"),
            "{name}: {}",
            imported.describe()
        );
        for (repo, tag) in [
            ("app", "1"),
            ("multi", "1"),
            ("shared/a", "1"),
            ("shared/b", "1"),
        ] {
            assert_same(&src.server, &dst, repo, tag);
        }
        assert_same(&src.server, &dst, "multi", &src.signature);
        assert_eq!(
            referrers(&dst, "multi", &src.index),
            std::slice::from_ref(&src.signature),
            "{name}"
        );
        // Nothing else came along, and a second import stores nothing new.
        let again = berth_ok(&["import", "--root", path(&dst.root), path(&out)]);
        assert!(
            again.stdout_str().contains("(0 blobs stored"),
            "{}",
            again.describe()
        );
    }

    // --no-referrers leaves the signature out.
    let out = tmp.path().join("plain.tar");
    berth_ok(&[
        "export",
        "--root",
        path(&src.server.root),
        "--no-referrers",
        "-o",
        path(&out),
        "multi:1",
    ]);
    let written: HashSet<String> = blob_entries(&tar_files(&out)).into_iter().collect();
    assert!(written.contains(&src.index));
    assert!(
        !written.contains(&src.signature),
        "the signature was exported"
    );
}

/// skopeo reads Berth's export; Berth reads skopeo's (a tag-only name
/// needs --repo) and what `docker save` wrote; `docker load` takes
/// `--format docker`.
#[test]
fn skopeo_and_docker_on_the_other_side() {
    let _serial = clients::serial();
    let small = images::small();
    let src = Berth::start();
    clients::skopeo_push(&src, &small, "small");
    let tmp = tempfile::tempdir().expect("tempdir");

    // skopeo copy oci-archive:OUT:repo:tag docker://...
    let out = tmp.path().join("small.tar");
    berth_ok(&[
        "export",
        "--root",
        path(&src.root),
        "-o",
        path(&out),
        "small:v1",
    ]);
    let dst = Berth::start();
    clients::run(skopeo([
        "copy".to_owned(),
        "--preserve-digests".to_owned(),
        "--dest-tls-verify=false".to_owned(),
        format!("oci-archive:{}:small:v1", out.display()),
        format!("docker://{}/from-berth:v1", dst.addr),
    ]));
    assert_same_in(&src, "small", &dst, "from-berth", "v1");

    // skopeo copy docker://... oci-archive:x.tar:v1 (a tag alone).
    let from_skopeo = tmp.path().join("skopeo.tar");
    clients::run(skopeo([
        "copy".to_owned(),
        "--preserve-digests".to_owned(),
        "--src-tls-verify=false".to_owned(),
        format!("docker://{}/small:v1", src.addr),
        format!("oci-archive:{}:v1", from_skopeo.display()),
    ]));
    let dst = Berth::start();
    let refused = berth(&["import", "--root", path(&dst.root), path(&from_skopeo)]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--repo"), "{said}");
    berth_ok(&[
        "import",
        "--root",
        path(&dst.root),
        "--repo",
        "from-skopeo",
        path(&from_skopeo),
    ]);
    assert_same_in(&src, "small", &dst, "from-skopeo", "v1");

    // docker save of an image pulled from Berth (the legacy format, with
    // uncompressed layer.tar files), renamed on the way in.
    let dockerd = Dockerd::start();
    let pulled = format!("{}/small:v1", src.addr);
    dockerd.docker(&["pull", &pulled]);
    let saved = tmp.path().join("saved.tar");
    dockerd.docker(&["save", "-o", path(&saved), &pulled]);
    let dst = Berth::start();
    let imported = berth_ok(&[
        "import",
        "--root",
        path(&dst.root),
        "--repo-prefix",
        "saved",
        path(&saved),
    ]);
    assert!(
        imported.stdout_str().contains("imported saved/small:v1"),
        "{}",
        imported.describe()
    );
    let (_, _, doc) = manifest(&dst, "saved/small", "v1").expect("the saved image");
    assert_eq!(
        doc["config"]["digest"],
        small.config_digest.as_str(),
        "config digest"
    );
    let layers: Vec<&str> = doc["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(layers, small.diff_ids, "layers are the uncompressed tars");
    for layer in doc["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    }
    assert_eq!(
        status(&dst, "saved/small", &format!("sha256:{}", "0".repeat(64))),
        404
    );

    // A flipped byte in a legacy layer.tar: its digest no longer matches
    // the config's diff_id.
    let layer_entry = {
        let mut tar = tar::Archive::new(std::fs::File::open(&saved).expect("saved"));
        let found = tar
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry"))
            .find(|e| {
                e.header().entry_type().is_file() && e.path().expect("path").ends_with("layer.tar")
            })
            .map(|e| {
                (
                    e.path().expect("path").display().to_string(),
                    e.raw_file_position(),
                )
            });
        found.expect("a layer.tar in docker save's archive")
    };
    let mut damaged = std::fs::read(&saved).expect("saved");
    damaged[layer_entry.1 as usize + 700] ^= 0x01;
    let flipped = tmp.path().join("flipped-save.tar");
    std::fs::write(&flipped, damaged).expect("write");
    let dst = Berth::start();
    let refused = berth(&["import", "--root", path(&dst.root), path(&flipped)]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&layer_entry.0) && said.contains("hash to"),
        "{said}"
    );
    assert_eq!(status(&dst, "small", "v1"), 404);

    // docker load of --format docker.
    let for_docker = tmp.path().join("for-docker.tar");
    berth_ok(&[
        "export",
        "--root",
        path(&src.root),
        "--format",
        "docker",
        "-o",
        path(&for_docker),
        "small:v1",
    ]);
    dockerd.docker(&["rmi", &pulled]);
    let loaded = dockerd.docker(&["load", "-i", path(&for_docker)]);
    assert!(loaded.contains("small:v1"), "docker load said: {loaded}");
    assert_eq!(
        dockerd.image_id("small:v1"),
        small.config_digest,
        "loaded image id"
    );
}

/// `--format docker` takes the `--platform` child of an index.
#[test]
fn docker_format_picks_one_platform() {
    let src = source();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("arm.tar");
    let root = path(&src.server.root);
    berth_ok(&[
        "export",
        "--root",
        root,
        "--format",
        "docker",
        "--platform",
        "linux/arm64",
        "-o",
        path(&out),
        "multi:1",
    ]);
    let (_, _, index) = manifest(&src.server, "multi", "1").expect("index");
    let arm = index["manifests"][1]["digest"]
        .as_str()
        .expect("arm64 child");
    let (_, _, arm) = manifest(&src.server, "multi", arm).expect("arm64 image");
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("archive"));
    let mut manifest_json = None;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("manifest.json");
            manifest_json = Some(serde_json::from_str::<Value>(&text).expect("JSON"));
        }
    }
    let manifest_json = manifest_json.expect("a manifest.json");
    let hex = arm["config"]["digest"]
        .as_str()
        .expect("config")
        .trim_start_matches("sha256:");
    assert_eq!(manifest_json[0]["Config"], format!("blobs/sha256/{hex}"));
    assert_eq!(manifest_json[0]["RepoTags"], json!(["multi:1"]));
    let refused = berth(&[
        "export",
        "--root",
        root,
        "--format",
        "docker",
        "--platform",
        "linux/s390x",
        "-o",
        path(&tmp.path().join("x.tar")),
        "multi:1",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("linux/amd64, linux/arm64"));
}

/// Two images in one archive, `app:1` and `other:1`; returns the archive
/// and `app:1`'s layer digest.
fn two_images(tmp: &Path, name: &str) -> (Berth, PathBuf, String) {
    let src = Berth::start();
    let (http, base) = (src.client(), src.url());
    let layer = bytes("the app layer", 3 << 20);
    image(&http, &base, "app", "1", "amd64", &[&layer]);
    image(
        &http,
        &base,
        "other",
        "1",
        "amd64",
        &[&bytes("the other layer", 1 << 20)],
    );
    let out = tmp.join(name);
    berth_ok(&[
        "export",
        "--root",
        path(&src.root),
        "-o",
        path(&out),
        "app:1",
        "other:1",
    ]);
    (src, out, sha256_digest(&layer))
}

/// The offset in a plain tar of the bytes of entry `wanted`.
fn data_offset(archive: &Path, wanted: &str) -> u64 {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    for entry in tar.entries().expect("entries") {
        let entry = entry.expect("entry");
        if entry.path().expect("path").to_str() == Some(wanted) {
            return entry.raw_file_position();
        }
    }
    panic!("{wanted} is not in {}", archive.display());
}

/// Import must refuse `app:1` with a message naming `needle`, exit 1,
/// and leave nothing of it visible; `other:1` may still go in.
fn assert_refused(archive: &Path, needle: &[&str], other_imported: bool) {
    let dst = Berth::start();
    let out = berth(&["import", "--root", path(&dst.root), path(archive)]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("refused app:1"), "{said}");
    for needle in needle {
        assert!(said.contains(needle), "{needle:?} not in: {said}");
    }
    assert_eq!(status(&dst, "app", "1"), 404, "app:1 became visible");
    if other_imported {
        assert!(
            out.stdout_str().contains("imported other:1"),
            "{}",
            out.describe()
        );
        assert_eq!(status(&dst, "other", "1"), 200);
    }
    let fsck = berth_ok(&["fsck", "--root", path(&dst.root)]);
    assert!(
        fsck.stdout_str().contains("nothing is wrong"),
        "{}",
        fsck.describe()
    );
}

#[test]
fn a_flipped_byte_refuses_that_image_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_src, archive, layer) = two_images(tmp.path(), "flipped.tar");
    let entry = format!("blobs/sha256/{}", layer.trim_start_matches("sha256:"));
    let at = data_offset(&archive, &entry) + 1000;
    let mut bytes = std::fs::read(&archive).expect("archive");
    bytes[at as usize] ^= 0x01;
    std::fs::write(&archive, &bytes).expect("flip");
    assert_refused(&archive, &[&entry, &layer, "hash to"], true);
    // --verify-only finds it too, and writes nothing.
    let root = tmp.path().join("never");
    let out = berth(&[
        "import",
        "--verify-only",
        "--root",
        path(&root),
        path(&archive),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&layer));
    assert!(!root.exists(), "--verify-only created the store");
}

#[test]
fn a_truncated_archive_refuses_what_it_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_src, archive, layer) = two_images(tmp.path(), "cut.tar");
    let entry = format!("blobs/sha256/{}", layer.trim_start_matches("sha256:"));
    let at = data_offset(&archive, &entry) + (1 << 20);
    let bytes = std::fs::read(&archive).expect("archive");
    std::fs::write(&archive, &bytes[..at as usize]).expect("truncate");
    assert_refused(&archive, &[&entry, &layer, "truncated"], false);

    // The same cut through gzip.
    let (_src, gz, layer) = two_images(tmp.path(), "cut.tar.gz");
    let bytes = std::fs::read(&gz).expect("archive");
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).expect("truncate");
    assert_refused(&gz, &[&layer], false);
}

#[test]
fn a_manifest_naming_a_missing_blob_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_src, layout, layer) = two_images(tmp.path(), "layout");
    let entry = format!("blobs/sha256/{}", layer.trim_start_matches("sha256:"));
    std::fs::remove_file(layout.join(&entry)).expect("remove the layer");
    assert_refused(&layout, &[&entry, &layer, "not in the layout"], true);
}

#[test]
fn verify_only_checks_everything_and_stores_nothing() {
    let src = source();
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["all.tar.zst", "layout"] {
        let out = tmp.path().join(name);
        berth_ok(&[
            "export",
            "--root",
            path(&src.server.root),
            "--all",
            "-o",
            path(&out),
        ]);
        let root = tmp.path().join(format!("{name}-store"));
        let verified = berth_ok(&["import", "--verify-only", "--root", path(&root), path(&out)]);
        assert!(
            verified.stdout_str().contains("verified 5 of 5 images"),
            "{}",
            verified.describe()
        );
        assert!(!root.exists(), "--verify-only created {}", root.display());
    }
    // A damaged blob no image uses: the images are good, the archive not.
    let layout = tmp.path().join("layout");
    let stray = sha256_digest(b"what it should be");
    let stray_path = format!("blobs/sha256/{}", stray.trim_start_matches("sha256:"));
    std::fs::write(layout.join(&stray_path), b"what it is").expect("stray blob");
    let out = berth(&["import", "--verify-only", path(&layout)]);
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no image uses it") && said.contains(&stray_path),
        "{said}"
    );
}

/// An import killed (SIGKILL) while it stores a 200 MiB layer completes
/// on the next run without storing again what it had stored, and fsck
/// finds nothing wrong.
#[test]
fn an_import_killed_mid_layer_resumes() {
    let src = Berth::start();
    let (http, base) = (src.client(), src.url());
    let big = bytes("a big layer", 200 << 20);
    let before = bytes("a small layer first", 1 << 20);
    image(&http, &base, "big", "1", "amd64", &[&before, &big]);
    drop(big);
    let tmp = tempfile::tempdir().expect("tempdir");
    // A plain tar is seeked through on the second run, a compressed one
    // decompressed through.
    for name in ["big.tar", "big.tar.zst"] {
        let archive = tmp.path().join(name);
        berth_ok(&[
            "export",
            "--root",
            path(&src.root),
            "-o",
            path(&archive),
            "big:1",
        ]);
        let dst_root = tmp.path().join(format!("{name}-dst"));
        kill_mid_layer(&dst_root, &archive);

        // Nothing of the image is visible; the second run completes while
        // a server uses the store.
        let dst = Berth::builder().root(&dst_root).start();
        assert_eq!(
            status(&dst, "big", "1"),
            404,
            "{name}: visible after the kill"
        );
        let again = berth_ok(&["import", "--root", path(&dst_root), path(&archive)]);
        let said = again.stdout_str();
        assert!(
            said.contains("imported 1 of 1 image"),
            "{}",
            again.describe()
        );
        // The config and the small layer were stored before the kill.
        assert!(
            said.contains("2 already there"),
            "{name}: {}",
            again.describe()
        );
        let fsck = berth_ok(&["fsck", "--root", path(&dst_root)]);
        assert!(
            fsck.stdout_str().contains("nothing is wrong"),
            "{}",
            fsck.describe()
        );
        assert_same(&src, &dst, "big", "1");
    }
}

/// Runs `berth import` of `archive` into `root` and kills it (SIGKILL)
/// once more than 8 MiB of an upload are on disk: inside the big layer.
fn kill_mid_layer(root: &Path, archive: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["import", "--root", path(root), path(archive)])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the import");
    let uploads = root.join("uploads");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_at = 0;
    while Instant::now() < deadline {
        let partial = std::fs::read_dir(&uploads)
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::metadata(e.ok()?.path().join("data")).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if partial > 8 << 20 {
            killed_at = partial;
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the import of {} finished before it was killed",
            archive.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(
        killed_at > 0,
        "no upload appeared under {}",
        uploads.display()
    );
}
