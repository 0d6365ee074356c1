//! Offline, deterministic generator of test images as OCI image layouts.
//!
//! Every image is written as an OCI image layout directory (`oci-layout`,
//! `index.json` carrying an `org.opencontainers.image.ref.name` annotation,
//! `blobs/sha256/...`). Each layer is a reproducible tar (hand-written ustar
//! headers, mtime 0, uid/gid 0) holding one regular file of pseudo-random
//! bytes from a seeded PRNG, streamed to disk in chunks so that even the
//! 1 GiB layer never sits in memory. Layouts are cached under
//! `target/test-images/<name>-<parameters>` and regenerated only if missing or
//! incomplete, so the big image is made once per machine.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::content::{Filler, Manifest};
pub use super::content::{OCI_LAYER as MEDIA_TYPE_LAYER_TAR, OCI_MANIFEST as MEDIA_TYPE_MANIFEST};
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Bumped whenever the generator's output format changes, so stale caches are
/// not reused.
const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub name: &'static str,
    pub tag: &'static str,
    pub layers: usize,
    pub layer_size: u64,
    pub gzip: bool,
}

/// A generated image in an OCI layout on disk.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub name: String,
    /// The OCI layout directory (use as `oci:<layout>:<tag>`).
    pub layout: PathBuf,
    pub tag: String,
    pub manifest_digest: String,
    pub config_digest: String,
    /// Digests of the layer blobs as stored (compressed for gzip layers).
    pub layer_digests: Vec<String>,
    /// Digests of the uncompressed layer tars (config `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
}

impl TestImage {
    /// `oci:<layout>:<tag>` for skopeo / podman.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// The raw manifest bytes.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        fs::read(blob_path(&self.layout, &self.manifest_digest)).expect("read manifest blob")
    }
}

/// Small image: one layer with ~1 MiB of data, gzip-compressed.
pub fn small() -> TestImage {
    ensure(&ImageSpec {
        name: "small",
        tag: "v1",
        layers: 1,
        layer_size: 1 << 20,
        gzip: true,
    })
}

/// Multi-layer image: 20 layers of 5 MiB each, uncompressed tars.
pub fn multi() -> TestImage {
    ensure(&ImageSpec {
        name: "multi",
        tag: "v1",
        layers: 20,
        layer_size: 5 << 20,
        gzip: false,
    })
}

/// Big image: a single 1 GiB layer, uncompressed tar.
pub fn big() -> TestImage {
    ensure(&ImageSpec {
        name: "big",
        tag: "v1",
        layers: 1,
        layer_size: 1 << 30,
        gzip: false,
    })
}

/// Where cached layouts live: `<target dir>/test-images`.
pub fn cache_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp` for integration tests.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-images")
}

/// Path of a blob in an OCI layout.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    layout.join("blobs").join("sha256").join(hex)
}

static GENERATE: Mutex<()> = Mutex::new(());

/// Returns the cached image for `spec`, generating it first if needed.
pub fn ensure(spec: &ImageSpec) -> TestImage {
    let _guard = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!(
        "{}-{}x{}-{}-{}-g{}",
        spec.name,
        spec.layers,
        spec.layer_size,
        if spec.gzip { "gzip" } else { "tar" },
        spec.tag,
        GENERATOR_VERSION
    );
    let dir = cache_dir().join(&key);
    if let Some(image) = load_cached(spec, &dir) {
        return image;
    }
    fs::create_dir_all(cache_dir()).expect("create test image cache dir");
    let _ = fs::remove_dir_all(&dir);
    // Build in a private directory and rename into place, so a concurrent
    // process never sees a half-written layout.
    let tmp = cache_dir().join(format!(".{key}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let start = std::time::Instant::now();
    generate(spec, &tmp).unwrap_or_else(|e| panic!("generate test image {key}: {e}"));
    if fs::rename(&tmp, &dir).is_err() {
        // Someone else finished first; use theirs.
        let _ = fs::remove_dir_all(&tmp);
    }
    eprintln!(
        "generated test image {} in {:.1?}",
        dir.display(),
        start.elapsed()
    );
    load_cached(spec, &dir)
        .unwrap_or_else(|| panic!("generated image at {} is incomplete", dir.display()))
}

/// Reads a complete cached layout, or `None` if anything is missing.
fn load_cached(spec: &ImageSpec, dir: &Path) -> Option<TestImage> {
    let summary: Value =
        serde_json::from_slice(&fs::read(dir.join("berth-test-image.json")).ok()?).ok()?;
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).ok()?).ok()?;
    fs::metadata(dir.join("oci-layout")).ok()?;
    let desc = index["manifests"].as_array()?.first()?.clone();
    if desc["annotations"][REF_NAME] != spec.tag {
        return None;
    }
    let manifest_digest = desc["digest"].as_str()?.to_string();
    let manifest_bytes = fs::read(blob_path(dir, &manifest_digest)).ok()?;
    if sha256_hex(&manifest_bytes) != manifest_digest {
        return None;
    }
    let manifest: Value = serde_json::from_slice(&manifest_bytes).ok()?;
    let mut blobs = vec![manifest["config"].clone()];
    blobs.extend(manifest["layers"].as_array()?.iter().cloned());
    for blob in &blobs {
        let meta = fs::metadata(blob_path(dir, blob["digest"].as_str()?)).ok()?;
        if meta.len() != blob["size"].as_u64()? {
            return None;
        }
    }
    let layer_digests: Vec<String> = manifest["layers"]
        .as_array()?
        .iter()
        .map(|l| l["digest"].as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    if layer_digests.len() != spec.layers {
        return None;
    }
    let diff_ids: Vec<String> = summary["diff_ids"]
        .as_array()?
        .iter()
        .map(|d| d.as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    Some(TestImage {
        name: spec.name.to_string(),
        layout: dir.to_path_buf(),
        tag: spec.tag.to_string(),
        manifest_digest,
        config_digest: manifest["config"]["digest"].as_str()?.to_string(),
        layer_digests,
        diff_ids,
    })
}

/// Writes the whole layout for `spec` into `dir`.
fn generate(spec: &ImageSpec, dir: &Path) -> io::Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for i in 1..=spec.layers {
        let seed = format!("{}/layer-{i}", spec.name);
        let file_name = format!("{}-layer-{i}.bin", spec.name);
        let tmp = blobs.join(format!(".layer-{i}.partial"));
        let (diff_id, digest, size) =
            write_layer(&tmp, &file_name, spec.layer_size, &seed, spec.gzip)?;
        fs::rename(&tmp, blob_path(dir, &digest))?;
        layers.push(json!({
            "mediaType": if spec.gzip { MEDIA_TYPE_LAYER_GZIP } else { MEDIA_TYPE_LAYER_TAR },
            "digest": digest,
            "size": size,
        }));
        diff_ids.push(diff_id);
        history.push(json!({
            "created": "1970-01-01T00:00:00Z",
            "created_by": format!("berth test image {} layer {i}", spec.name),
        }));
    }

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = put_blob(dir, &config_bytes)?;

    let manifest = layers
        .into_iter()
        .fold(
            Manifest::image(&config_digest, config_bytes.len()),
            Manifest::layer_descriptor,
        )
        .json();
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = put_blob(dir, &manifest_bytes)?;

    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_TYPE_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": { REF_NAME: spec.tag },
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    // Written last: its presence marks the layout as complete.
    let summary = json!({ "spec": format!("{spec:?}"), "diff_ids": diff_ids });
    fs::write(
        dir.join("berth-test-image.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(())
}

fn put_blob(dir: &Path, bytes: &[u8]) -> io::Result<String> {
    let digest = sha256_hex(bytes);
    fs::write(blob_path(dir, &digest), bytes)?;
    Ok(digest)
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A writer that hashes and counts everything passing through it.
struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.len,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one layer blob to `path`: a tar with a single regular file of
/// `size` pseudo-random bytes, optionally gzip-compressed. Returns
/// (diff_id, blob digest, blob size).
fn write_layer(
    path: &Path,
    file_name: &str,
    size: u64,
    seed: &str,
    gzip: bool,
) -> io::Result<(String, String, u64)> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let blob = HashWriter::new(file);
    let (blob, diff_id) = if gzip {
        let enc = flate2::GzBuilder::new()
            .mtime(0)
            .write(blob, flate2::Compression::fast());
        let mut tar = HashWriter::new(enc);
        write_tar(&mut tar, file_name, size, seed)?;
        let (enc, diff_id, _) = tar.finish();
        (enc.finish()?, diff_id)
    } else {
        let mut tar = HashWriter::new(blob);
        write_tar(&mut tar, file_name, size, seed)?;
        let (blob, diff_id, _) = tar.finish();
        (blob, diff_id)
    };
    let (mut file, digest, len) = blob.finish();
    file.flush()?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((diff_id, digest, len))
}

/// A reproducible ustar archive holding one regular file.
fn write_tar(out: &mut impl Write, file_name: &str, size: u64, seed: &str) -> io::Result<()> {
    out.write_all(&ustar_header(file_name, size))?;
    let mut rng = Filler::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let pad = (512 - (size % 512) as usize) % 512;
    out.write_all(&vec![0u8; pad])?;
    // End of archive: two zero blocks.
    out.write_all(&[0u8; 1024])
}

/// A POSIX ustar header for a regular file: mode 0644, uid/gid 0, mtime 0.
fn ustar_header(name: &str, size: u64) -> [u8; 512] {
    assert!(name.len() < 100, "tar member name too long: {name}");
    assert!(size < 8 << 30, "ustar size field holds < 8 GiB");
    let mut h = [0u8; 512];
    fn put(h: &mut [u8; 512], off: usize, bytes: &[u8]) {
        h[off..off + bytes.len()].copy_from_slice(bytes);
    }
    put(&mut h, 0, name.as_bytes()); // name
    put(&mut h, 100, b"0000644\0"); // mode
    put(&mut h, 108, b"0000000\0"); // uid
    put(&mut h, 116, b"0000000\0"); // gid
    put(&mut h, 124, format!("{size:011o}\0").as_bytes()); // size
    put(&mut h, 136, b"00000000000\0"); // mtime
    put(&mut h, 148, b"        "); // checksum placeholder (spaces)
    h[156] = b'0'; // typeflag: regular file
    put(&mut h, 257, b"ustar\0"); // magic
    put(&mut h, 263, b"00"); // version
    put(&mut h, 265, b"root"); // uname
    put(&mut h, 297, b"root"); // gname
    put(&mut h, 329, b"0000000\0"); // devmajor
    put(&mut h, 337, b"0000000\0"); // devminor
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> String {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The manifest referenced by `tag` in an OCI layout (e.g. one written by
/// `skopeo copy ... oci:<dir>:<tag>`): (manifest digest, raw bytes, parsed).
pub fn read_layout(layout: &Path, tag: &str) -> (String, Vec<u8>, Value) {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_slice(
        &fs::read(&index_path).unwrap_or_else(|e| panic!("read {}: {e}", index_path.display())),
    )
    .expect("index.json is JSON");
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json has manifests");
    let desc = manifests
        .iter()
        .find(|m| m["annotations"][REF_NAME] == tag)
        .unwrap_or_else(|| {
            panic!(
                "no manifest tagged {tag:?} in {}: {index}",
                index_path.display()
            )
        });
    let digest = desc["digest"]
        .as_str()
        .expect("descriptor digest")
        .to_string();
    let bytes = fs::read(blob_path(layout, &digest)).expect("read manifest blob");
    let manifest = serde_json::from_slice(&bytes).expect("manifest is JSON");
    (digest, bytes, manifest)
}
